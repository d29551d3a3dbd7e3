//! Retained topics across Switchyard nodes on one NATS JetStream cluster
//! (`serve --nats`), over real sockets: three `nats-server`s on loopback and
//! `switchyard serve` processes. Every case runs in one test on one cluster
//! (starting one takes seconds), each on topics of its own.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::nats::{runtime, stats_row, NatsCluster, Node, STREAM_WAIT};
use common::*;
use serde_json::{json, Value};

async fn declare(c: &mut Raw, topic: &str, retain: Value) {
    c.send(json!({"op":"declare","id":1,"topic":topic,"retain":retain}))
        .await;
    let answer = c.try_recv(STREAM_WAIT).await.expect("an answer to declare");
    assert_eq!(answer, ok(1, json!({})), "declare {topic}");
}

async fn sub(c: &mut Raw, sid: &str, topic: &str, from: Option<Value>) {
    let mut frame = json!({"op":"sub","id":2,"sid":sid,"topic":topic});
    if let Some(from) = from {
        frame["from"] = from;
    }
    assert_eq!(c.call(frame).await, ok(2, json!({})), "sub {sid} {topic}");
}

/// Publishes `{"n": i}` for each i, each answered; returns the seqs.
async fn publish(p: &mut Raw, topic: &str, range: std::ops::Range<u64>) -> Vec<u64> {
    let mut seqs = vec![];
    for i in range {
        let a = p
            .call(json!({"op":"pub","id":i,"topic":topic,"data":{"n":i}}))
            .await;
        assert_eq!(a["ev"], "ok", "{a}");
        seqs.push(a["seq"].as_u64().expect("a seq"));
    }
    seqs
}

/// The next `n` deliveries of `sid`, as (seq, n) pairs; panics on anything else.
async fn msgs(c: &mut Raw, sid: &str, n: usize) -> Vec<(u64, u64)> {
    let mut out = vec![];
    while out.len() < n {
        let f = c
            .try_recv(WAIT)
            .await
            .unwrap_or_else(|| panic!("{sid}: {} of {n} messages came", out.len()));
        assert_eq!(
            (f["ev"].as_str(), f["sid"].as_str()),
            (Some("msg"), Some(sid)),
            "{f}"
        );
        out.push((f["seq"].as_u64().unwrap(), f["data"]["n"].as_u64().unwrap()));
    }
    out
}

#[test]
fn retained_topics_across_nodes() {
    let mut cluster = NatsCluster::start();
    let a = Node::start(&cluster, "ra");
    let b = Node::start(&cluster, "rb");
    let runtime = runtime();
    runtime.block_on(async {
        messages_from_both_nodes_take_one_order_and_replay_anywhere(&a, &b).await;
        a_node_started_later_knows_the_retained_topics(&cluster).await;
        a_seal_on_one_node_ends_the_others_subscribers(&a, &b).await;
        a_delete_on_one_node_ends_the_others_subscribers(&a, &b).await;
        topics_that_keep_nothing_are_not_sealed_across_nodes(&a).await;
        no_stored_message_is_lost_when_a_nats_server_dies(&a, &b, &mut cluster).await;
    });
}

async fn messages_from_both_nodes_take_one_order_and_replay_anywhere(a: &Node, b: &Node) {
    let (mut pa, mut pb) = (a.client().await, b.client().await);
    declare(&mut pa, "rt.orders", json!({"max_messages": 1000})).await;
    let (mut sa, mut sb) = (a.client().await, b.client().await);
    sub(&mut sa, "live", "rt.orders", None).await;
    // A pattern, with a filter: the retained topic's messages through it too.
    sub(&mut sb, "live", "rt.*", None).await;
    sub(&mut sb, "even", "rt.orders", None).await;
    let mut seqs = publish(&mut pa, "rt.orders", 0..5).await;
    seqs.extend(publish(&mut pb, "rt.orders", 5..10).await);
    // One order for the topic, whichever node took the pub: the stream's.
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    let want: Vec<(u64, u64)> = (1..=10).zip(0..10).collect();
    assert_eq!(msgs(&mut sa, "live", 10).await, want, "A's subscriber");
    // B holds two subscriptions: each message once on each.
    let mut on_b: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for _ in 0..20 {
        let f = sb.try_recv(WAIT).await.expect("B's deliveries");
        assert_eq!(f["ev"], "msg", "{f}");
        on_b.entry(f["sid"].as_str().unwrap().to_string())
            .or_default()
            .push((f["seq"].as_u64().unwrap(), f["data"]["n"].as_u64().unwrap()));
    }
    assert_eq!(on_b["live"], want);
    assert_eq!(on_b["even"], want);
    for c in [&mut sa, &mut sb] {
        c.expect_silence(Duration::from_millis(300)).await;
    }
    // Replays from either node: the whole stream, then live.
    let mut r = b.client().await;
    sub(&mut r, "all", "rt.orders", Some(json!("first"))).await;
    assert_eq!(msgs(&mut r, "all", 10).await, want);
    let mut r2 = a.client().await;
    sub(&mut r2, "tail", "rt.orders", Some(json!({"seq": 8}))).await;
    assert_eq!(msgs(&mut r2, "tail", 3).await, want[7..].to_vec());
    assert_eq!(publish(&mut pb, "rt.orders", 10..11).await, vec![11]);
    for (c, sid) in [(&mut r, "all"), (&mut r2, "tail")] {
        assert_eq!(msgs(c, sid, 1).await, vec![(11, 10)], "{sid} goes on live");
        c.expect_silence(Duration::from_millis(300)).await;
    }
    // `peek` on either node reads the stream.
    let peeked = pb
        .call(json!({"op":"peek","id":5,"topic":"rt.orders","n":2}))
        .await;
    let got: Vec<Value> = peeked["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| json!([m["seq"], m["data"]]))
        .collect();
    assert_eq!(got, vec![json!([10, {"n":9}]), json!([11, {"n":10}])]);
    // Both nodes' rows: retained, and what the stream keeps (read once a second).
    for node in [a, b] {
        let mut c = node.client().await;
        let deadline = Instant::now() + WAIT;
        loop {
            let row = stats_row(&mut c, "topics", "rt.orders").await;
            if row["retained"] == true && row["stored"] == 11 {
                break;
            }
            assert!(Instant::now() < deadline, "row on {}: {row}", node.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn a_node_started_later_knows_the_retained_topics(cluster: &NatsCluster) {
    let c = Node::start(cluster, "rc");
    let mut p = c.client().await;
    // It listed the cluster's retained topics before it was healthy, so its
    // first pub is stored, with the stream's seq.
    let a = p
        .call(json!({"op":"pub","id":1,"topic":"rt.orders","data":{"n":11}}))
        .await;
    assert_eq!(a, ok(1, json!({"seq": 12})));
    let mut r = c.client().await;
    sub(&mut r, "last", "rt.orders", Some(json!({"seq": 12}))).await;
    assert_eq!(msgs(&mut r, "last", 1).await, vec![(12, 11)]);
}

async fn a_seal_on_one_node_ends_the_others_subscribers(a: &Node, b: &Node) {
    let mut pa = a.client().await;
    declare(&mut pa, "rt.sealed", json!({})).await;
    let mut sb = b.client().await;
    sub(&mut sb, "s", "rt.sealed", None).await;
    // Published and sealed without waiting for the answers between: the end
    // still comes after every message stored before the seal.
    for i in 0..20 {
        pa.send(json!({"op":"pub","topic":"rt.sealed","data":{"n":i}}))
            .await;
    }
    assert_eq!(
        pa.call(json!({"op":"seal","id":9,"topic":"rt.sealed"}))
            .await,
        ok(9, json!({}))
    );
    let want: Vec<(u64, u64)> = (1..=20).zip(0..20).collect();
    assert_eq!(msgs(&mut sb, "s", 20).await, want);
    let end = sb.try_recv(WAIT).await.expect("the end");
    assert_eq!(end, json!({"ev":"end","sid":"s","topic":"rt.sealed"}));
    // Sealed on every node: a pub on B is refused, a replay there ends.
    let mut pb = b.client().await;
    let refused = pb
        .call(json!({"op":"pub","id":3,"topic":"rt.sealed","data":1}))
        .await;
    assert_error(&refused, Some(3), "sealed");
    let mut r = b.client().await;
    sub(&mut r, "r", "rt.sealed", Some(json!("first"))).await;
    assert_eq!(msgs(&mut r, "r", 20).await, want);
    let end = r.try_recv(WAIT).await.expect("the replay's end");
    assert_eq!(end, json!({"ev":"end","sid":"r","topic":"rt.sealed"}));
}

async fn a_delete_on_one_node_ends_the_others_subscribers(a: &Node, b: &Node) {
    let mut pa = a.client().await;
    declare(&mut pa, "rt.gone", json!({})).await;
    publish(&mut pa, "rt.gone", 0..3).await;
    let mut sb = b.client().await;
    sub(&mut sb, "g", "rt.gone", Some(json!("first"))).await;
    assert_eq!(msgs(&mut sb, "g", 3).await.len(), 3);
    assert_eq!(
        pa.call(json!({"op":"delete","id":4,"topic":"rt.gone"}))
            .await,
        ok(4, json!({}))
    );
    let end = sb.try_recv(WAIT).await.expect("the end");
    assert_eq!(end, json!({"ev":"end","sid":"g","topic":"rt.gone"}));
    // Declared again, from B: a new stream, its seqs from 1.
    let mut pb = b.client().await;
    declare(&mut pb, "rt.gone", json!({})).await;
    assert_eq!(publish(&mut pb, "rt.gone", 5..6).await, vec![1]);
    let mut r = a.client().await;
    sub(&mut r, "g2", "rt.gone", Some(json!("first"))).await;
    assert_eq!(msgs(&mut r, "g2", 1).await, vec![(1, 5)]);
}

async fn topics_that_keep_nothing_are_not_sealed_across_nodes(a: &Node) {
    let mut c = a.client().await;
    assert_eq!(
        c.call(json!({"op":"declare","id":9,"topic":"plain"})).await,
        ok(9, json!({}))
    );
    for (id, op) in [(1, "seal"), (2, "delete")] {
        let refused = c.call(json!({"op":op,"id":id,"topic":"plain"})).await;
        let message = assert_error(&refused, Some(id), "unavailable");
        assert!(message.contains("declare `plain` retained"), "{message}");
    }
    let refused = c
        .call(json!({"op":"sub","id":3,"sid":"s","topic":"plain","from":"first"}))
        .await;
    assert_error(&refused, Some(3), "not_retained");
}

async fn no_stored_message_is_lost_when_a_nats_server_dies(
    a: &Node,
    b: &Node,
    cluster: &mut NatsCluster,
) {
    let mut p = a.client().await;
    declare(&mut p, "rt.dur", json!({})).await;
    let mut live = b.client().await;
    sub(&mut live, "l", "rt.dur", None).await;
    let sent = 600u64;
    // What each pub was answered: its seq if stored.
    let mut stored: BTreeMap<u64, u64> = BTreeMap::new();
    let mut answered: HashSet<u64> = HashSet::new();
    let mut delivered: Vec<(u64, u64)> = vec![];
    let read = |f: Value, stored: &mut BTreeMap<u64, u64>, answered: &mut HashSet<u64>| {
        if let Some(id) = f["id"].as_u64() {
            answered.insert(id);
            if f["ev"] == "ok" {
                stored.insert(id, f["seq"].as_u64().unwrap());
            }
        }
    };
    for i in 0..sent {
        if i == 200 {
            cluster.kill(0); // SIGKILL, mid-stream
        }
        p.send(json!({"op":"pub","id":i,"topic":"rt.dur","data":{"n":i}}))
            .await;
        let pace = if i < 200 { 2 } else { 20 };
        while let Some(f) = p.try_recv(Duration::from_millis(pace)).await {
            read(f, &mut stored, &mut answered);
        }
        while let Some(f) = live.try_recv(Duration::from_millis(1)).await {
            delivered.push((f["seq"].as_u64().unwrap(), f["data"]["n"].as_u64().unwrap()));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.len() < sent as usize && Instant::now() < deadline {
        if let Some(f) = p.try_recv(Duration::from_millis(100)).await {
            read(f, &mut stored, &mut answered);
        }
    }
    assert_eq!(answered.len(), sent as usize, "every pub answered");
    assert!(
        stored.keys().filter(|n| **n >= 200).count() > 50,
        "pubs stored after the death: {}",
        stored.len()
    );
    // Live: every stored message, once, in seq order (gaps read from the stream).
    while delivered.len() < stored.len() && Instant::now() < deadline {
        match live.try_recv(Duration::from_millis(200)).await {
            Some(f) => {
                delivered.push((f["seq"].as_u64().unwrap(), f["data"]["n"].as_u64().unwrap()))
            }
            None => continue,
        }
    }
    live.expect_silence(Duration::from_millis(500)).await;
    // Replayed from B: the same.
    let mut r = b.client().await;
    sub(&mut r, "r", "rt.dur", Some(json!("first"))).await;
    // Every message the stream kept (those of pubs answered with an error too).
    // (Its first read may wait on a consumer made on the server just lost.)
    let mut replayed = vec![];
    let mut wait = Duration::from_secs(20);
    while let Some(f) = r.try_recv(wait).await {
        wait = Duration::from_secs(1);
        assert_eq!(f["ev"], "msg", "{f}");
        replayed.push((f["seq"].as_u64().unwrap(), f["data"]["n"].as_u64().unwrap()));
    }
    for (what, got) in [("live", &delivered), ("replayed", &replayed)] {
        let seen: HashSet<u64> = got.iter().map(|(_, n)| *n).collect();
        let lost = stored.keys().filter(|n| !seen.contains(n)).count();
        let duplicated = got.len() - seen.len();
        // A message whose pub was answered with an error may still have been
        // stored (its ack lost with the server): not counted as unexpected.
        let unexpected = got
            .iter()
            .filter(|(seq, n)| *n >= sent || stored.get(n).is_some_and(|s| s != seq))
            .count();
        assert_eq!(
            (lost, duplicated, unexpected),
            (0, 0, 0),
            "{what}: lost, duplicated, unexpected ({} stored)",
            stored.len()
        );
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "{what}: in seq order"
        );
    }
    cluster.restart(0);
}
