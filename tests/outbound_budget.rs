//! The broker-wide outbound-memory budget (`max_outbound`) over real sockets:
//! when all outbound buffers together pass it, the client holding the most
//! waiting bytes is kicked first (`outbound_budget`), a client that reads is not,
//! and the snapshot, `/metrics` and the flag and config key show it.

use std::time::Duration;

use serde_json::json;
use switchyard_broker::stats::EventKind;
use switchyard_broker::Config;

mod common;

use common::{eventually, http_get_with, serve_process_with, temp_data_dir, TestBroker};

const BUDGET: usize = 256 * 1024;

#[tokio::test]
async fn past_the_budget_the_client_holding_most_is_kicked_first() {
    let b = TestBroker::with(Config {
        max_outbound: BUDGET,
        // Each buffer alone may hold far more than all of them together.
        max_pending: 64 << 20,
        ..Config::default()
    })
    .await;

    // The laggard connects first: the hog is kicked for what it holds, not for
    // its place in the list.
    let mut laggard = b.raw().await;
    let laggard_id = laggard.id();
    laggard
        .call(json!({"op":"sub","id":1,"topic":"firehose","sid":"s"}))
        .await;
    // `hog` and `laggard` subscribe and then never read their sockets again, so
    // once the kernel's socket buffers are full their outbound buffers fill.
    // `hog` subscribes twice to the firehose, so it holds about twice as much.
    // It also holds one unacked job, which must go back to its queue.
    let mut hog = b.raw().await;
    let hog_id = hog.id();
    hog.call(json!({"op":"send","id":1,"queue":"work","data":"job"}))
        .await;
    hog.call(json!({"op":"consume","id":2,"queue":"work","cid":"w","prefetch":1}))
        .await;
    assert_eq!(hog.recv_ev("job").await["data"], "job");
    for sid in ["a", "b"] {
        let subscribed = hog
            .call(json!({"op":"sub","id":3,"topic":"firehose","sid":sid}))
            .await;
        assert_eq!(subscribed["ev"], "ok", "{subscribed}");
    }
    let mut reader = b.raw().await;
    let reader_id = reader.id();
    reader
        .call(json!({"op":"sub","id":1,"topic":"firehose","sid":"s"}))
        .await;
    assert_eq!(b.broker.snapshot().server.outbound_budget, BUDGET as u64);

    // Rounds of 8 messages of 4 kB, read whole by `reader` before the next: when
    // a round ends the broker has pushed all of it.
    let mut publisher = b.raw().await;
    let body = "x".repeat(4000);
    let round: Vec<String> = (0..8)
        .map(|_| json!({"op":"pub","topic":"firehose","data":body}).to_string())
        .collect();
    let round = round.join("\n");
    let mut rounds = 0;
    while b
        .broker
        .snapshot()
        .events
        .iter()
        .all(|e| e.kind != EventKind::Kick)
    {
        rounds += 1;
        assert!(rounds <= 5000, "no kick after 160 MB published");
        publisher.send_text(round.clone()).await;
        for _ in 0..8 {
            assert_eq!(reader.recv().await["ev"], "msg");
        }
    }

    let snap = b.broker.snapshot();
    let kicks: Vec<&str> = snap
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Kick)
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        kicks[0].starts_with(&format!("{hog_id} kicked: outbound_budget (")),
        "{kicks:?}"
    );
    assert!(
        kicks[0].ends_with(&format!("of max_outbound {BUDGET})")),
        "{kicks:?}"
    );
    // Any later kick in the same pass is the laggard's, never the reader's.
    assert!(
        kicks[1..]
            .iter()
            .all(|k| k.starts_with(&format!("{laggard_id} kicked: outbound_budget ("))),
        "{kicks:?}"
    );
    // The kick released what the hog held: the total is back down to the low mark
    // (three quarters of the budget), and it is what the clients left hold.
    assert!(
        snap.server.outbound_bytes <= (BUDGET - BUDGET / 4) as u64,
        "{:?}",
        snap.server
    );
    let held: u64 = snap.clients.iter().map(|c| c.pending_bytes).sum();
    assert_eq!(snap.server.outbound_bytes, held);
    assert_eq!(snap.server.refusals["outbound_budget"], kicks.len() as u64);
    assert_eq!(snap.server.slow_consumers, 0, "no buffer of its own filled");

    // The hog is gone, its job is back in its queue; the reader is still served.
    eventually(&b.broker, "the hog gone and its job requeued", |s| {
        s.clients.iter().all(|c| c.id != hog_id)
            && s.queues
                .iter()
                .any(|q| q.name == "work" && q.ready == 1 && q.unacked == 0)
    })
    .await;
    let snap = b.broker.snapshot();
    assert!(snap.clients.iter().any(|c| c.id == reader_id));
    publisher
        .send(json!({"op":"pub","topic":"firehose","data":"after"}))
        .await;
    assert_eq!(reader.recv_ev("msg").await["data"], "after");

    let metrics = http_get_with(b.addr, "/metrics", &[]).await;
    let refused = format!(
        "switchyard_refusals_total{{reason=\"outbound_budget\"}} {}\n",
        snap.server.refusals["outbound_budget"]
    );
    assert!(metrics.contains(&refused), "{metrics}");
    assert!(
        metrics.contains(&format!("\nswitchyard_outbound_budget_bytes {BUDGET}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE switchyard_outbound_bytes gauge\nswitchyard_outbound_bytes "),
        "{metrics}"
    );
    // The hog's socket ends; whatever reached it before is deliveries, and a
    // `kicked` frame, if one made it through its full socket, says why.
    while let Some(frame) = hog.try_recv(Duration::from_secs(5)).await {
        assert!(
            frame["ev"] == "msg" || frame == json!({"ev":"kicked","reason":"outbound_budget"}),
            "{frame}"
        );
    }
    drop(laggard);
    b.stop().await;
}

/// `MemTotal` from /proc/meminfo, in bytes.
fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The `switchyard_outbound_budget_bytes` a `switchyard serve` with `flags` reports.
async fn served_budget(flags: &[&str]) -> u64 {
    let dir = temp_data_dir();
    let (mut child, url) = serve_process_with("127.0.0.1:0", &dir, flags);
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .parse()
        .unwrap();
    let metrics = http_get_with(addr, "/metrics", &[]).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_outbound_budget_bytes "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_budget_is_a_flag_and_a_config_key_and_defaults_to_a_quarter_of_memory() {
    assert_eq!(served_budget(&[]).await, mem_total() / 4);
    assert_eq!(served_budget(&["--max-outbound", "300000"]).await, 300_000);
    let config =
        std::env::temp_dir().join(format!("switchyard-outbound-{}.toml", std::process::id()));
    std::fs::write(&config, "max_outbound = 123456\n").unwrap();
    let path = config.to_str().unwrap();
    assert_eq!(served_budget(&["--config", path]).await, 123_456);
    assert_eq!(
        served_budget(&["--config", path, "--max-outbound", "300000"]).await,
        300_000,
        "the flag wins over the file"
    );
    let _ = std::fs::remove_file(&config);
}
