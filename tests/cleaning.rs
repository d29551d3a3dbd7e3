//! Bad input: control characters in names and reasons never reach a log line or
//! a snapshot raw, and a reply to a client's own request never kicks it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use switchyard_broker::Config;

fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

#[tokio::test]
async fn hello_names_and_kick_reasons_are_cleaned_everywhere_they_are_shown() {
    let b = TestBroker::start().await;
    let mut victim = b.raw().await;
    let victim_id = victim.id();
    let name = "evil\nINFO forged line \u{1b}[31mred\u{2028}";
    victim.call(json!({"op":"hello","id":1,"name":name})).await;
    let mut admin = b.raw().await;
    admin
        .call(json!({"op":"hello","id":1,"name":"admin"}))
        .await;
    let reason = "bye\nINFO switchyard: forged";
    let answer = admin
        .call(json!({"op":"kick","id":2,"client":victim_id,"reason":reason}))
        .await;
    assert_eq!(answer, ok(2, json!({})));
    // The kicked client is told the reason as given: it is data for it.
    let kicked = victim.recv_ev("kicked").await;
    assert_eq!(kicked["reason"], reason);

    let snapshot = b.broker.snapshot();
    let admin_stats = snapshot
        .clients
        .iter()
        .find(|c| c.id == admin.id())
        .unwrap();
    assert_eq!(admin_stats.name.as_deref(), Some("admin"));
    let kick = snapshot
        .events
        .iter()
        .find(|e| e.text.contains("kicked") && e.text.contains(&victim_id))
        .expect("the kick is in the event log");
    assert_eq!(
        kick.text,
        format!(
            "{} (admin) kicked {victim_id} (evil\\nINFO forged line \\u{{1b}}[31mred\\u{{2028}}): \
             bye\\nINFO switchyard: forged",
            admin.id()
        )
    );
    for event in &snapshot.events {
        assert!(!has_control(&event.text), "raw control in {:?}", event.text);
    }
    b.stop().await;
}

#[tokio::test]
async fn a_hello_name_is_stored_cleaned_in_the_snapshot() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"hello","id":1,"name":"a\nb\u{1b}[31m\u{7f}\u{85}"}))
        .await;
    let snapshot = b.broker.snapshot();
    let me = snapshot.clients.iter().find(|s| s.id == c.id()).unwrap();
    assert_eq!(me.name.as_deref(), Some("a\\nb\\u{1b}[31m\\u{7f}\\u{85}"));
    assert!(!has_control(me.name.as_deref().unwrap()));
    // The wire's snapshot shows the same name.
    let stats = c.call(json!({"op":"stats","id":2})).await;
    let wire_name = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == c.id())
        .unwrap()["name"]
        .clone();
    assert_eq!(wire_name, json!("a\\nb\\u{1b}[31m\\u{7f}\\u{85}"));
    b.stop().await;
}

#[tokio::test]
async fn a_peek_larger_than_max_pending_is_truncated_not_a_kick() {
    let b = TestBroker::with(Config {
        max_pending: 4096,
        ..Config::default()
    })
    .await;
    let mut c = b.raw().await;
    let data = "x".repeat(1024);
    for i in 0..10u64 {
        let answer = c
            .call(json!({"op":"send","id":i + 1,"queue":"big","data":data}))
            .await;
        assert_eq!(answer["ev"], "ok", "{answer}");
    }
    let answer = c
        .call(json!({"op":"peek","id":20,"queue":"big","n":10}))
        .await;
    assert_eq!(answer["ev"], "ok", "{answer}");
    assert_eq!(answer["id"], 20);
    assert_eq!(answer["truncated"], true, "{answer}");
    let messages = answer["messages"].as_array().unwrap();
    assert!(
        !messages.is_empty() && messages.len() < 10,
        "{} messages",
        messages.len()
    );
    assert_eq!(messages[0]["msg"], "1");
    assert_eq!(messages[0]["data"], json!(data));
    assert!(answer.to_string().len() <= 4096 / 2 + 64);
    // Not kicked: the client goes on.
    assert_eq!(
        c.call(json!({"op":"ping","id":21})).await,
        json!({"ev":"pong","id":21})
    );
    c.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(b.broker.snapshot().server.slow_consumers, 0);

    // A peek that fits says nothing of truncation.
    let small = c
        .call(json!({"op":"peek","id":22,"queue":"big","n":1}))
        .await;
    assert_eq!(small["messages"].as_array().unwrap().len(), 1);
    assert!(small.get("truncated").is_none(), "{small}");
    b.stop().await;
}

#[tokio::test]
async fn stats_and_watch_larger_than_max_pending_are_truncated_not_a_kick() {
    const MAX_PENDING: usize = 64 * 1024;
    let b = TestBroker::with(Config {
        max_pending: MAX_PENDING,
        ..Config::default()
    })
    .await;
    let mut c = b.raw().await;
    // 400 queues of long names: some 130 kB of snapshot, twice the outbound buffer.
    let name = |i: usize| format!("orders.{}.region-{i:04}", "x".repeat(80));
    let declares: Vec<String> = (0..400)
        .map(|i| json!({"op":"declare","queue":name(i),"durable":false}).to_string())
        .collect();
    c.send_text(declares.join("\n")).await;
    assert_eq!(
        c.call(json!({"op":"ping","id":1})).await,
        json!({"ev":"pong","id":1})
    );
    assert_eq!(b.broker.snapshot().queues.len(), 400);

    let stats = c.call(json!({"op":"stats","id":2})).await;
    assert_eq!((&stats["ev"], &stats["id"]), (&json!("stats"), &json!(2)));
    assert_eq!(stats["truncated"], true);
    assert!(
        stats.to_string().len() <= MAX_PENDING / 2,
        "{}",
        stats.to_string().len()
    );
    // The server figures are whole; the queues are the first by name, and nothing
    // after queues in the order of cutting is left.
    assert_eq!(stats["server"]["connections"], 1);
    assert_eq!(stats["server"]["version"], env!("CARGO_PKG_VERSION"));
    let queues = stats["queues"].as_array().unwrap();
    assert!(queues.len() > 50 && queues.len() < 400, "{}", queues.len());
    for (i, q) in queues.iter().enumerate() {
        assert_eq!(q["name"], name(i));
    }
    assert_eq!(stats["topics"], json!([]));
    assert_eq!(stats["clients"], json!([]));

    // `watch` frames are bounded the same way.
    c.send(json!({"op":"watch","id":3,"interval_ms":100})).await;
    for _ in 0..3 {
        let frame = c.recv().await;
        assert_eq!(
            (&frame["ev"], &frame["truncated"]),
            (&json!("stats"), &json!(true))
        );
        assert_eq!(frame["queues"].as_array().unwrap().len(), queues.len());
    }
    // Still served: the `unwatch` is answered (behind any frame already queued).
    c.send(json!({"op":"unwatch","id":4})).await;
    assert_eq!(c.recv_ev("ok").await["id"], 4);
    assert_eq!(b.broker.snapshot().server.slow_consumers, 0);
    assert_eq!(b.broker.snapshot().server.connections, 1);
    b.stop().await;

    // A small broker's snapshot fits: no flag at all.
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    let stats = c.call(json!({"op":"stats","id":1})).await;
    assert_eq!(stats["ev"], "stats");
    assert!(stats.get("truncated").is_none(), "{stats}");
    b.stop().await;
}
