//! Retained topics: stored on disk, replayed from the first message, a seq or a time,
//! then live with no gap and no duplicate; sealed; deleted; kept across restarts.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use switchyard_broker::Config;

async fn declare(c: &mut Raw, topic: &str) {
    let answer = c
        .call(json!({"op":"declare","id":"d","topic":topic,"retain":{"max_messages":100000}}))
        .await;
    assert_eq!(answer, json!({"ev":"ok","id":"d"}));
}

/// Reads `msg` frames for `sid` until `n` arrived; returns their seqs.
async fn seqs(c: &mut Raw, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = c.recv().await;
        if m["ev"] == "msg" {
            out.push(m["seq"].as_u64().unwrap());
        }
    }
    out
}

#[tokio::test]
async fn replay_from_first_then_live_with_no_gap_or_duplicate() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    declare(&mut p, "events").await;
    for n in 1..=5u64 {
        let answer = p
            .call(json!({"op":"pub","id":n,"topic":"events","data":{"n":n}}))
            .await;
        assert_eq!(
            answer,
            ok(n, json!({"seq": n})),
            "a retained pub is confirmed once stored"
        );
    }
    let mut s = b.raw().await;
    assert_eq!(
        s.call(json!({"op":"sub","id":1,"topic":"events","sid":"r","from":"first"}))
            .await,
        ok(1, json!({}))
    );
    let first = s.recv().await;
    assert_eq!(
        first,
        json!({"ev":"msg","sid":"r","topic":"events","seq":1,"time":first["time"],"data":{"n":1}})
    );
    assert_eq!(seqs(&mut s, 4).await, vec![2, 3, 4, 5]);
    p.call(json!({"op":"pub","id":6,"topic":"events","data":{"n":6}}))
        .await;
    assert_eq!(seqs(&mut s, 1).await, vec![6]);
    s.expect_silence(Duration::from_millis(100)).await;

    // Joining while a publisher is running: every seq once, in order.
    let url = b.url.clone();
    let publisher = tokio::spawn(async move {
        let mut p = Raw::connect(&url).await;
        for n in 0..2000 {
            p.send(json!({"op":"pub","topic":"events","data":{"k":n}}))
                .await;
        }
        p.call(json!({"op":"ping","id":"end"})).await;
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut late = b.raw().await;
    late.call(json!({"op":"sub","id":1,"topic":"events","sid":"late","from":"first"}))
        .await;
    publisher.await.unwrap();
    let got = seqs(&mut late, 2006).await;
    assert_eq!(got, (1..=2006).collect::<Vec<u64>>());
    late.expect_silence(Duration::from_millis(200)).await;
    let t = &b.broker.snapshot().topics[0];
    assert_eq!((t.retained, t.stored, t.sealed), (true, 2006, false));
    b.stop().await;
}

#[tokio::test]
async fn a_frame_of_pubs_to_a_retained_topic_is_stored_one_by_one() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    declare(&mut p, "kept").await;
    let mut live = b.raw().await;
    live.call(json!({"op":"sub","id":1,"topic":"kept","sid":"l"}))
        .await;
    let frame: Vec<String> = (1..=3)
        .map(|n| json!({"op":"pub","topic":"kept","data":n}).to_string())
        .collect();
    p.send_text(frame.join("\n")).await;
    assert_eq!(seqs(&mut live, 3).await, vec![1, 2, 3]);
    let mut late = b.raw().await;
    late.call(json!({"op":"sub","id":1,"topic":"kept","sid":"r","from":"first"}))
        .await;
    assert_eq!(seqs(&mut late, 3).await, vec![1, 2, 3]);
    let snap = b.broker.snapshot();
    let t = snap.topics.iter().find(|t| t.name == "kept").unwrap();
    assert_eq!((t.stored, t.msgs_in), (3, 3));
    b.stop().await;
}

#[tokio::test]
async fn replay_from_a_seq_or_a_time_and_errors() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    declare(&mut p, "t").await;
    let mut times = Vec::new();
    for n in 1..=5u64 {
        p.call(json!({"op":"pub","id":n,"topic":"t","data":n}))
            .await;
        times.push(switchyard_broker::time::now_ms());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut s = b.raw().await;
    s.call(json!({"op":"sub","id":1,"topic":"t","sid":"a","from":{"seq":3}}))
        .await;
    assert_eq!(seqs(&mut s, 3).await, vec![3, 4, 5]);
    s.call(json!({"op":"sub","id":2,"topic":"t","sid":"b","from":{"time":times[2] + 1}}))
        .await;
    assert_eq!(seqs(&mut s, 2).await, vec![4, 5]);
    let e = s
        .call(json!({"op":"sub","id":3,"topic":"plain","sid":"c","from":"first"}))
        .await;
    assert_error(&e, Some(3), "not_retained");
    let e = s
        .call(json!({"op":"sub","id":4,"topic":"t","sid":"d","from":{"seq":"x"}}))
        .await;
    assert_error(&e, Some(4), "bad_frame");
    let peek = s.call(json!({"op":"peek","id":5,"topic":"t","n":2})).await;
    let msgs = peek["messages"].as_array().unwrap();
    assert_eq!(
        msgs.iter()
            .map(|m| (m["seq"].as_u64().unwrap(), m["data"].clone()))
            .collect::<Vec<_>>(),
        vec![(4, json!(4)), (5, json!(5))]
    );
    b.stop().await;
}

#[tokio::test]
async fn seal_ends_subscribers_after_the_last_message() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    declare(&mut p, "job.42.log").await;
    let mut live = b.raw().await;
    live.call(json!({"op":"sub","id":1,"topic":"job.42.log","sid":"l"}))
        .await;
    p.send(json!({"op":"pub","topic":"job.42.log","data":"line 1"}))
        .await;
    p.send(json!({"op":"pub","topic":"job.42.log","data":"line 2"}))
        .await;
    assert_eq!(
        p.call(json!({"op":"seal","id":"s","topic":"job.42.log"}))
            .await,
        json!({"ev":"ok","id":"s"})
    );
    assert_eq!(seqs(&mut live, 2).await, vec![1, 2]);
    assert_eq!(
        live.recv().await,
        json!({"ev":"end","sid":"l","topic":"job.42.log"})
    );
    let e = p
        .call(json!({"op":"pub","id":1,"topic":"job.42.log","data":"late"}))
        .await;
    assert_error(&e, Some(1), "sealed");
    // A new subscriber with `from` replays, then ends.
    let mut later = b.raw().await;
    later
        .call(json!({"op":"sub","id":1,"topic":"job.42.log","sid":"x","from":"first"}))
        .await;
    assert_eq!(seqs(&mut later, 2).await, vec![1, 2]);
    assert_eq!(
        later.recv().await,
        json!({"ev":"end","sid":"x","topic":"job.42.log"})
    );
    assert!(b.broker.snapshot().topics[0].sealed);
    // A plain topic can be sealed too.
    assert_eq!(
        p.call(json!({"op":"seal","id":"s2","topic":"plain"})).await,
        json!({"ev":"ok","id":"s2"})
    );
    assert_error(
        &p.call(json!({"op":"pub","id":2,"topic":"plain","data":1}))
            .await,
        Some(2),
        "sealed",
    );
    b.stop().await;
}

#[tokio::test]
async fn delete_removes_the_topic_and_its_messages() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    declare(&mut p, "gone").await;
    let mut s = b.raw().await;
    s.call(json!({"op":"sub","id":1,"topic":"gone","sid":"g"}))
        .await;
    p.call(json!({"op":"pub","id":1,"topic":"gone","data":1}))
        .await;
    assert_eq!(seqs(&mut s, 1).await, vec![1]);
    assert_eq!(
        p.call(json!({"op":"delete","id":2,"topic":"gone"})).await,
        ok(2, json!({}))
    );
    assert_eq!(s.recv().await, json!({"ev":"end","sid":"g","topic":"gone"}));
    assert!(b.broker.snapshot().topics.iter().all(|t| t.name != "gone"));
    assert_error(
        &p.call(json!({"op":"delete","id":3,"topic":"gone"})).await,
        Some(3),
        "not_found",
    );
    let e = p
        .call(json!({"op":"sub","id":4,"topic":"gone","sid":"x","from":"first"}))
        .await;
    assert_error(&e, Some(4), "not_retained");
    // The name is free again: the same publisher starts a new, plain topic at seq 1.
    let mut s2 = b.raw().await;
    s2.call(json!({"op":"sub","id":1,"topic":"gone","sid":"n"}))
        .await;
    assert_eq!(
        p.call(json!({"op":"pub","id":5,"topic":"gone","data":2}))
            .await,
        ok(5, json!({"seq": 1}))
    );
    assert_eq!(seqs(&mut s2, 1).await, vec![1]);
    b.stop().await;
}

fn segment_of(dir: &std::path::Path, topic: &str) -> std::path::PathBuf {
    let d = dir.join("topics").join(topic);
    std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap()
}

#[tokio::test]
async fn kept_across_restarts_and_a_corrupt_record_is_skipped_and_reported() {
    let dir = temp_data_dir();
    let config = Config {
        data_dir: dir.clone(),
        ..Config::default()
    };
    let b = TestBroker::with(config.clone()).await;
    let mut p = b.raw().await;
    declare(&mut p, "audit").await;
    for n in 1..=10u64 {
        p.call(json!({"op":"pub","id":n,"topic":"audit","data":{"entry":n,"pad":"x".repeat(200)}}))
            .await;
    }
    b.stop().await;

    // Flip one bit in the middle of the segment (inside record 5 or so).
    let seg = segment_of(&dir, "audit");
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();

    let b = TestBroker::with(config).await;
    let mut s = b.raw().await;
    s.call(json!({"op":"sub","id":1,"topic":"audit","sid":"a","from":"first"}))
        .await;
    let mut entries: Vec<Value> = Vec::new();
    while let Some(m) = s.try_recv(Duration::from_millis(500)).await {
        entries.push(m["data"]["entry"].clone());
    }
    assert_eq!(
        entries.len(),
        9,
        "one corrupt record skipped, never served: {entries:?}"
    );
    let events = b.broker.snapshot().events;
    assert!(
        events.iter().any(|e| e.text.contains("corrupt")),
        "reported: {events:#?}"
    );
    // The seq continues after the restart.
    assert_eq!(
        p_call(&b, json!({"op":"pub","id":1,"topic":"audit","data":{}})).await,
        ok(1, json!({"seq": 11}))
    );
    b.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn p_call(b: &TestBroker, frame: Value) -> Value {
    let mut c = b.raw().await;
    c.call(frame).await
}

/// Several clients declaring one new retained topic at once: one opens its log,
/// the others find it retained. Each of them is answered `ok`, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_declares_of_one_retained_topic_all_succeed() {
    let b = TestBroker::start().await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(b.raw().await);
    }
    for round in 0..20 {
        let topic = format!("race.{round}");
        let tasks: Vec<_> = clients
            .drain(..)
            .map(|mut c| {
                let topic = topic.clone();
                tokio::spawn(async move {
                    let answer = c
                        .call(json!({"op":"declare","id":"d","topic":topic,"retain":{}}))
                        .await;
                    (c, answer)
                })
            })
            .collect();
        for task in tasks {
            let (c, answer) = task.await.unwrap();
            assert_eq!(answer, json!({"ev":"ok","id":"d"}), "round {round}");
            clients.push(c);
        }
    }
    let retained = b
        .broker
        .snapshot()
        .topics
        .iter()
        .filter(|t| t.retained)
        .count();
    assert_eq!(retained, 20);
    b.stop().await;
}
