//! `move` (dead letters back to work) and `drop`, over real sockets; and a move
//! between durable queues SIGKILLed mid-way, with every message counted: each is
//! in exactly one of the two queues afterwards.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use switchyard_client::Client;

/// Fills `jobs.dead` with three rejected jobs of `jobs` (n = 1, 2, 3).
async fn three_dead_letters(b: &TestBroker) -> Raw {
    let mut c = b.raw().await;
    c.call(json!({"op":"declare","id":1,"queue":"jobs","dead_letter":"jobs.dead"}))
        .await;
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":2,"queue":"jobs","cid":"w","prefetch":10}))
        .await;
    for n in 1..=3 {
        c.call(json!({"op":"send","id":10 + n,"queue":"jobs","data":{"n":n},"headers":{"k":"v"}}))
            .await;
    }
    for _ in 0..3 {
        let job = w.recv_ev("job").await;
        w.send(json!({"op":"nack","tag":job["tag"],"requeue":false}))
            .await;
    }
    w.call(json!({"op":"cancel","id":3,"cid":"w"})).await;
    eventually(&b.broker, "three dead letters", |s| {
        s.queues
            .iter()
            .any(|q| q.name == "jobs.dead" && q.ready == 3)
    })
    .await;
    c
}

fn peeked_data(answer: &Value) -> Vec<Value> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].clone())
        .collect()
}

#[tokio::test]
async fn move_brings_dead_letters_back_keeping_data_and_headers() {
    let b = TestBroker::start().await;
    let mut c = three_dead_letters(&b).await;
    let moved = c
        .call(
            json!({"op":"move","id":4,"from":"jobs.dead","to":"jobs","n":2,
                     "filter":"x-dead-letter-reason = 'rejected'"}),
        )
        .await;
    assert_eq!(moved, ok(4, json!({"moved": 2})));
    let back = c.call(json!({"op":"peek","id":5,"queue":"jobs"})).await;
    assert_eq!(peeked_data(&back), vec![json!({"n":1}), json!({"n":2})]);
    assert_eq!(
        back["messages"][0]["headers"],
        json!({"k":"v","x-dead-letter-queue":"jobs","x-dead-letter-reason":"rejected","x-moved-from":"jobs.dead"})
    );
    let left = c
        .call(json!({"op":"peek","id":6,"queue":"jobs.dead"}))
        .await;
    assert_eq!(peeked_data(&left), vec![json!({"n":3})]);

    // A filter nothing matches moves nothing; without n, all that match move.
    let none = c
        .call(json!({"op":"move","id":7,"from":"jobs.dead","to":"jobs","filter":"x-dead-letter-reason = 'max_attempts'"}))
        .await;
    assert_eq!(none, ok(7, json!({"moved": 0})));
    let rest = c
        .call(json!({"op":"move","id":8,"from":"jobs.dead","to":"jobs"}))
        .await;
    assert_eq!(rest, ok(8, json!({"moved": 1})));
    // A consumer of jobs gets them again, as new messages.
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":9,"queue":"jobs","cid":"again","prefetch":10}))
        .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(w.recv_ev("job").await["data"]["n"].clone());
    }
    assert_eq!(got, vec![json!(1), json!(2), json!(3)]);

    for (frame, code) in [
        (
            json!({"op":"move","id":20,"from":"jobs","to":"jobs"}),
            "bad_frame",
        ),
        (
            json!({"op":"move","id":21,"from":"nowhere","to":"jobs"}),
            "not_found",
        ),
        (
            json!({"op":"move","id":22,"from":"jobs.dead","to":"jobs","filter":"x = "}),
            "bad_filter",
        ),
        (json!({"op":"move","id":23,"from":"jobs.dead"}), "bad_frame"),
    ] {
        let id = frame["id"].as_u64().unwrap();
        assert_error(&c.call(frame).await, Some(id), code);
    }
    b.stop().await;
}

#[tokio::test]
async fn drop_removes_one_ready_message_but_not_one_in_flight() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    for n in 1..=3 {
        c.call(json!({"op":"send","id":n,"queue":"q","data":n}))
            .await;
    }
    assert_eq!(
        c.call(json!({"op":"drop","id":4,"queue":"q","msg":"2"}))
            .await,
        ok(4, json!({}))
    );
    let left = c.call(json!({"op":"peek","id":5,"queue":"q"})).await;
    assert_eq!(peeked_data(&left), vec![json!(1), json!(3)]);
    c.call(json!({"op":"consume","id":6,"queue":"q","cid":"w"}))
        .await;
    c.recv_ev("job").await;
    let busy = c
        .call(json!({"op":"drop","id":7,"queue":"q","msg":"1"}))
        .await;
    assert_eq!(
        assert_error(&busy, Some(7), "not_found"),
        "message 1 of `q` is in flight: requeue it first"
    );
    let gone = c
        .call(json!({"op":"drop","id":8,"queue":"q","msg":"2"}))
        .await;
    assert_eq!(
        assert_error(&gone, Some(8), "not_found"),
        "no ready message 2 in `q`"
    );
    b.stop().await;
}

/// 1,000 durable messages moved from `src` to `dst`, SIGKILLed a little later each
/// round: after the restart every message is in exactly one of the two queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_between_durable_queues_cut_by_sigkill_leaves_each_message_in_one_queue() {
    for round in 0..4u64 {
        let dir = temp_data_dir();
        let (mut child, url) = serve_process("127.0.0.1:0", &dir);
        let c = Client::connect(&url).await.unwrap();
        c.declare_queue("src", json!({})).await.unwrap();
        c.declare_queue("dst", json!({})).await.unwrap();
        let sends: Vec<_> = (0..1000).map(|n| c.send("src", json!(n))).collect();
        for s in futures_util::future::join_all(sends).await {
            s.unwrap();
        }
        let mover = Client::connect(&url).await.unwrap();
        let moving = tokio::spawn(async move {
            mover
                .call(json!({"op":"move","from":"src","to":"dst"}))
                .await
        });
        tokio::time::sleep(Duration::from_millis(round * 3)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let _ = moving.await;

        let (mut child, url) = serve_process("127.0.0.1:0", &dir);
        let c = Client::connect(&url).await.unwrap();
        let mut seen: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for queue in ["src", "dst"] {
            let mut w = c.consume(queue, 1000).await.unwrap();
            while let Ok(Some(job)) =
                tokio::time::timeout(Duration::from_millis(500), w.next()).await
            {
                seen.entry(job.data.as_u64().unwrap())
                    .or_default()
                    .push(queue);
                c.ack(job.tag).await.unwrap();
            }
        }
        let lost: Vec<u64> = (0..1000).filter(|n| !seen.contains_key(n)).collect();
        let duplicated: Vec<_> = seen.iter().filter(|(_, q)| q.len() > 1).collect();
        let unexpected: Vec<_> = seen.keys().filter(|n| **n >= 1000).collect();
        let in_dst = seen.values().filter(|q| q[0] == "dst").count();
        eprintln!("round {round}: {in_dst} of 1000 had moved");
        assert!(lost.is_empty(), "round {round}: lost {lost:?}");
        assert!(
            duplicated.is_empty(),
            "round {round}: {} duplicated, the first {:?}",
            duplicated.len(),
            duplicated.first()
        );
        assert!(
            unexpected.is_empty(),
            "round {round}: unexpected {unexpected:?}"
        );
        stop(&mut child);
        let _ = std::fs::remove_dir_all(dir);
    }
}
