//! Slow readers over real sockets: a subscriber that reads steadily but more
//! slowly than a publisher's burst gets all of it (the publisher is paced), a
//! subscriber that reads nothing is kicked within `slow_timeout`, and a fast
//! reader of the same topic gets everything too; with pacing off
//! (`max_pause` 0) the same burst kicks the slow reader, as before pacing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_broker::stats::EventKind;
use switchyard_broker::Config;

mod common;

use common::{eventually, http_get_with, Raw, TestBroker};

/// A small buffer, so that a burst ten times its size takes seconds, not minutes.
const PENDING: usize = 1 << 20;
/// 2,500 messages of 4,000 bytes: 10 MB, ten times the buffer.
const MESSAGES: usize = 2_500;

fn config(max_pause: Duration, slow_timeout: Duration) -> Config {
    Config {
        max_pending: PENDING,
        max_pause,
        slow_timeout,
        ..Config::default()
    }
}

async fn subscriber(b: &TestBroker) -> Raw {
    let mut c = b.raw().await;
    let ok = c
        .call(json!({"op":"sub","id":1,"topic":"burst","sid":"s"}))
        .await;
    assert_eq!(ok["ev"], "ok", "{ok}");
    c
}

/// Reads until `MESSAGES` arrived (their `data.n` counted in order) or the
/// connection ends; sleeps 10 ms after every 8 messages when `slow` (at most
/// about 3.2 MB/s, far slower than the publisher). What it got, and why it
/// stopped; the connection is handed back, still open if it was.
async fn read_all(mut c: Raw, slow: bool) -> ((usize, Option<String>), Raw) {
    let got = read(&mut c, slow).await;
    (got, c)
}

async fn read(c: &mut Raw, slow: bool) -> (usize, Option<String>) {
    let mut got = 0;
    loop {
        let Some(frame) = c.try_recv(Duration::from_secs(30)).await else {
            return (got, Some("silence".into()));
        };
        match frame["ev"].as_str() {
            Some("msg") => {
                assert_eq!(frame["data"]["n"], got, "in order, none lost");
                got += 1;
                if got == MESSAGES {
                    return (got, None);
                }
                if slow && got % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Some("kicked") => return (got, Some(frame["reason"].to_string())),
            Some("closed") | None => return (got, Some(frame.to_string())),
            _ => {}
        }
    }
}

/// Publishes the burst, one message per frame.
async fn burst(b: &TestBroker) {
    let mut publisher = b.raw().await;
    let pad = "x".repeat(4_000);
    for n in 0..MESSAGES {
        publisher
            .send_text(json!({"op":"pub","topic":"burst","data":{"n":n,"pad":pad}}).to_string())
            .await;
    }
    // Everything sent has been handled once an answer to a later frame comes.
    let ok = publisher.call(json!({"op":"stats","id":9})).await;
    assert_ne!(ok["ev"], "error", "{ok}");
}

fn client<'a>(snapshot: &'a Value, id: &str) -> Option<&'a Value> {
    snapshot["clients"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id))
}

/// A slow, a fast and a stuck reader of one topic, and the burst: what the
/// slow and the fast reader got, and the broker's snapshot once the stuck one
/// is gone.
async fn three_readers(b: &TestBroker) -> (Value, Value, switchyard_broker::Snapshot) {
    let slow = subscriber(b).await;
    let slow_id = slow.id();
    let fast = subscriber(b).await;
    // Subscribes and never reads again.
    let stuck = subscriber(b).await;
    let stuck_id = stuck.id();

    let slow = tokio::spawn(read_all(slow, true));
    let fast = tokio::spawn(read_all(fast, false));
    burst(b).await;
    let ((slow_got, slow_why), _slow) = slow.await.unwrap();
    let ((fast_got, fast_why), _fast) = fast.await.unwrap();

    // The stuck reader is gone, kicked as a slow consumer.
    eventually(&b.broker, "the stuck reader kicked", |s| {
        !s.clients.iter().any(|c| c.id == stuck_id)
    })
    .await;
    let s = b.broker.snapshot();
    let kicked: Vec<String> = s
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Kick)
        .map(|e| {
            let who = e.text.split(' ').next().unwrap_or_default();
            if who == stuck_id {
                "stuck".to_string()
            } else if who == slow_id {
                "slow".to_string()
            } else {
                e.text.clone()
            }
        })
        .collect();
    drop(stuck);
    (
        json!({"got": slow_got, "why": slow_why, "kicked": kicked}),
        json!({"got": fast_got, "why": fast_why}),
        s,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_slow_reader_gets_the_whole_burst_and_a_stuck_one_is_kicked() {
    let b = TestBroker::with(config(Duration::from_millis(10), Duration::from_secs(2))).await;
    let (slow, fast, s) = three_readers(&b).await;
    assert_eq!(
        slow,
        json!({"got": MESSAGES, "why": null, "kicked": ["stuck"]})
    );
    assert_eq!(fast, json!({"got": MESSAGES, "why": null}));
    assert_eq!(s.server.slow_consumers, 1);
    // The publisher was paced.
    assert!(s.server.pauses > 0, "{:?}", s.server);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pacing_the_same_burst_kicks_the_slow_reader() {
    let b = TestBroker::with(config(Duration::ZERO, Duration::from_secs(2))).await;
    let (slow, fast, s) = three_readers(&b).await;
    assert!(slow["got"].as_u64().unwrap() < MESSAGES as u64, "{slow}");
    // Its last frame, `kicked`, is best effort: the socket may close first.
    assert_ne!(slow["why"], Value::Null, "{slow}");
    let kicked = slow["kicked"].as_array().unwrap();
    assert!(
        kicked.contains(&json!("slow")) && kicked.contains(&json!("stuck")),
        "{slow}"
    );
    // The fast reader too may be kicked: unpaced, this burst outruns it as well.
    let _ = fast;
    assert_eq!(s.server.slow_consumers, kicked.len() as u64);
    assert_eq!(s.server.pauses, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_past_its_slow_mark_that_reads_nothing_is_kicked_after_slow_timeout() {
    let b = TestBroker::with(config(Duration::from_millis(10), Duration::from_secs(1))).await;
    let stuck = subscriber(&b).await;
    let stuck_id = stuck.id();
    let mut publisher = b.raw().await;
    let pad = "x".repeat(4_000);
    // Until the broker holds more than half the buffer for it (the kernel's
    // socket buffers take the first megabytes), and well short of all of it.
    let mut sent = 0;
    loop {
        let bytes = b
            .broker
            .snapshot()
            .clients
            .iter()
            .find(|c| c.id == stuck_id)
            .map_or(0, |c| c.pending_bytes);
        if bytes > (PENDING / 2) as u64 {
            break;
        }
        assert!(sent < 100_000, "the buffer never filled");
        for _ in 0..16 {
            publisher
                .send_text(json!({"op":"pub","topic":"burst","data":{"pad":pad}}).to_string())
                .await;
            sent += 1;
        }
        let _ = publisher.call(json!({"op":"stats","id":1})).await;
    }
    let over = Instant::now();
    let snapshot = serde_json::to_value(b.broker.snapshot()).unwrap();
    let row = client(&snapshot, &stuck_id).expect("still connected");
    assert!(
        row["pending_bytes"].as_u64().unwrap() < PENDING as u64,
        "{row}"
    );
    eventually(&b.broker, "the stuck reader kicked", |s| {
        !s.clients.iter().any(|c| c.id == stuck_id)
    })
    .await;
    let after = over.elapsed();
    // slow_timeout is 1 s; the check runs every 250 ms.
    assert!(
        after >= Duration::from_millis(900),
        "kicked after {after:?}"
    );
    assert!(after <= Duration::from_secs(2), "kicked after {after:?}");
    let s = b.broker.snapshot();
    assert_eq!((s.server.slow_consumers, s.server.stuck_consumers), (1, 1));
    let kick = s
        .events
        .iter()
        .find(|e| e.kind == EventKind::Kick)
        .expect("a kick event");
    assert!(
        kick.text.starts_with(&format!(
            "{stuck_id} kicked: slow_consumer (read nothing of its "
        )),
        "{}",
        kick.text
    );
    let metrics = http_get_with(b.addr, "/metrics", &[]).await;
    for line in [
        "switchyard_slow_consumers_total 1\n",
        "switchyard_stuck_consumers_total 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    drop(stuck);
    b.stop().await;
}
