//! Work queues over real sockets: FIFO, prefetch, acks, every kind of redelivery,
//! dead-lettering, confirms, purge, delete, and request/reply.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn job(c: &mut Raw) -> Value {
    let j = c.recv().await;
    assert_eq!(j["ev"], "job", "expected a job, got {j}");
    j
}

#[tokio::test]
async fn fifo_first_deliveries_within_prefetch() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    for n in 1..=5 {
        let answer = p
            .call(json!({"op":"send","id":n,"queue":"jobs","data":{"n":n}}))
            .await;
        assert_eq!(answer, ok(n, json!({"msg": n.to_string()})));
    }
    let mut w = b.raw().await;
    assert_eq!(
        w.call(json!({"op":"consume","id":1,"queue":"jobs","cid":"w1","prefetch":2}))
            .await,
        ok(1, json!({}))
    );
    let j1 = job(&mut w).await;
    let j2 = job(&mut w).await;
    assert_eq!(
        j1,
        json!({"ev":"job","cid":"w1","queue":"jobs","tag":j1["tag"],"msg":"1","attempt":1,"data":{"n":1}})
    );
    assert_eq!(j2["msg"], "2");
    assert_ne!(j1["tag"], j2["tag"]);
    w.expect_silence(Duration::from_millis(100)).await; // prefetch 2: no third job yet
    w.send(json!({"op":"ack","id":2,"tag":j1["tag"]})).await;
    // A durable queue answers the ack once it is on disk, so the job that fills
    // the freed slot may come first.
    let (first, second) = (w.recv().await, w.recv().await);
    let (answer, j3) = if first["ev"] == "ok" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(answer, ok(2, json!({})));
    assert_eq!((&j3["ev"], &j3["msg"]), (&json!("job"), &json!("3")));
    let q = &b.broker.snapshot().queues[0];
    assert_eq!(
        (q.ready, q.unacked, q.consumers, q.msgs_in, q.acked),
        (2, 2, 1, 5, 1)
    );
    b.stop().await;
}

#[tokio::test]
async fn in_one_frame_jobs_are_handed_out_before_the_next_other_op() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"q","cid":"w","prefetch":10}))
        .await;
    let mut p = b.raw().await;
    // The sends' jobs go out (to the waiting consumer) before the purge runs, as if
    // each send had been handled on its own; then a frame of acks frees room once.
    let frame = [
        json!({"op":"send","queue":"q","data":1}),
        json!({"op":"send","queue":"q","data":2}),
        json!({"op":"purge","id":9,"queue":"q"}),
    ];
    let text: Vec<String> = frame.iter().map(|f| f.to_string()).collect();
    p.send_text(text.join("\n")).await;
    assert_eq!(p.recv().await, ok(9, json!({"purged": 0})));
    let (j1, j2) = (job(&mut w).await, job(&mut w).await);
    assert_eq!(
        (j1["data"].clone(), j2["data"].clone()),
        (json!(1), json!(2))
    );
    let acks = [
        json!({"op":"ack","tag":j1["tag"]}),
        json!({"op":"ack","id":5,"tag":j2["tag"]}),
    ];
    let text: Vec<String> = acks.iter().map(|f| f.to_string()).collect();
    w.send_text(text.join("\n")).await;
    assert_eq!(w.recv().await, ok(5, json!({})));
    let q = &b.broker.snapshot().queues[0];
    assert_eq!((q.ready, q.unacked, q.acked), (0, 0, 2));
    b.stop().await;
}

#[tokio::test]
async fn work_is_shared_between_consumers() {
    let b = TestBroker::start().await;
    let mut w1 = b.raw().await;
    let mut w2 = b.raw().await;
    w1.call(json!({"op":"consume","id":1,"queue":"q","cid":"a"}))
        .await;
    w2.call(json!({"op":"consume","id":1,"queue":"q","cid":"b"}))
        .await;
    let mut p = b.raw().await;
    p.call(json!({"op":"send","id":1,"queue":"q","data":1}))
        .await;
    p.call(json!({"op":"send","id":2,"queue":"q","data":2}))
        .await;
    let a = job(&mut w1).await;
    let bb = job(&mut w2).await;
    let mut msgs = vec![
        a["msg"].as_str().unwrap().to_string(),
        bb["msg"].as_str().unwrap().to_string(),
    ];
    msgs.sort();
    assert_eq!(msgs, vec!["1", "2"]);
    b.stop().await;
}

#[tokio::test]
async fn redelivered_when_the_consumer_connection_drops() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    p.call(json!({"op":"send","id":1,"queue":"q","data":"x"}))
        .await;
    let mut w1 = b.raw().await;
    w1.call(json!({"op":"consume","id":1,"queue":"q","cid":"a"}))
        .await;
    assert_eq!(job(&mut w1).await["attempt"], 1);
    drop(w1); // no close handshake: a crashed consumer
    let mut w2 = b.raw().await;
    w2.call(json!({"op":"consume","id":1,"queue":"q","cid":"b"}))
        .await;
    let again = job(&mut w2).await;
    assert_eq!(
        (again["msg"].as_str(), again["attempt"].as_u64()),
        (Some("1"), Some(2))
    );
    assert_eq!(b.broker.snapshot().queues[0].redelivered, 1);
    b.stop().await;
}

#[tokio::test]
async fn cancel_returns_unacked_jobs_and_their_tags_die() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"q","cid":"a"}))
        .await;
    let mut p = b.raw().await;
    p.call(json!({"op":"send","id":1,"queue":"q","data":"x"}))
        .await;
    let first = job(&mut w).await;
    assert_eq!(
        w.call(json!({"op":"cancel","id":2,"cid":"a"})).await,
        ok(2, json!({}))
    );
    let late = w.call(json!({"op":"ack","id":3,"tag":first["tag"]})).await;
    assert_error(&late, Some(3), "unknown_tag");
    let unknown = w.call(json!({"op":"cancel","id":4,"cid":"a"})).await;
    assert_error(&unknown, Some(4), "not_found");
    w.call(json!({"op":"consume","id":5,"queue":"q","cid":"b"}))
        .await;
    let again = job(&mut w).await;
    assert_eq!(
        (again["cid"].as_str(), again["attempt"].as_u64()),
        (Some("b"), Some(2))
    );
    b.stop().await;
}

#[tokio::test]
async fn nack_requeues_or_dead_letters() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"declare","id":1,"queue":"q","dead_letter":"q.dead"}))
        .await;
    w.call(json!({"op":"consume","id":2,"queue":"q","cid":"a"}))
        .await;
    w.send(json!({"op":"send","queue":"q","data":{"v":1},"headers":{"k":"v"}}))
        .await;
    let j = w.recv_ev("job").await;
    assert_eq!(
        w.call(json!({"op":"nack","id":4,"tag":j["tag"]})).await,
        ok(4, json!({}))
    );
    let j = job(&mut w).await;
    assert_eq!(j["attempt"], 2);
    assert_eq!(
        w.call(json!({"op":"nack","id":5,"tag":j["tag"],"requeue":false}))
            .await,
        ok(5, json!({}))
    );
    w.call(json!({"op":"consume","id":6,"queue":"q.dead","cid":"d"}))
        .await;
    let dead = job(&mut w).await;
    assert_eq!(dead["cid"], "d");
    assert_eq!(dead["data"], json!({"v":1}));
    assert_eq!(
        dead["headers"],
        json!({"k":"v","x-dead-letter-queue":"q","x-dead-letter-reason":"rejected"})
    );
    let snap = b.broker.snapshot();
    assert_eq!(snap.server.dead, 1);
    assert_eq!(snap.queues.iter().find(|q| q.name == "q").unwrap().dead, 1);
    b.stop().await;
}

#[tokio::test]
async fn ack_timeout_redelivers_and_the_late_ack_is_refused() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"declare","id":1,"queue":"slow","ack_timeout_ms":150}))
        .await;
    w.call(json!({"op":"consume","id":2,"queue":"slow","cid":"a","prefetch":1}))
        .await;
    w.send(json!({"op":"send","queue":"slow","data":1})).await;
    let first = w.recv_ev("job").await;
    let again = job(&mut w).await; // after ~150 ms, to the same (now free) consumer
    assert_eq!(
        (again["msg"].as_str(), again["attempt"].as_u64()),
        (Some("1"), Some(2))
    );
    let late = w.call(json!({"op":"ack","id":4,"tag":first["tag"]})).await;
    assert_error(&late, Some(4), "unknown_tag");
    assert_eq!(
        w.call(json!({"op":"ack","id":5,"tag":again["tag"]})).await,
        ok(5, json!({}))
    );
    let twice = w.call(json!({"op":"ack","id":6,"tag":again["tag"]})).await;
    assert_error(&twice, Some(6), "unknown_tag");
    b.stop().await;
}

#[tokio::test]
async fn max_attempts_then_dropped_and_counted() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"declare","id":1,"queue":"q","max_attempts":2}))
        .await;
    w.call(json!({"op":"consume","id":2,"queue":"q","cid":"a"}))
        .await;
    w.send(json!({"op":"send","queue":"q","data":1})).await;
    for attempt in 1..=2 {
        let j = w.recv_ev("job").await;
        assert_eq!(j["attempt"], attempt);
        w.send(json!({"op":"nack","tag":j["tag"]})).await;
    }
    w.expect_silence(Duration::from_millis(150)).await;
    let q = &b.broker.snapshot().queues[0];
    assert_eq!((q.ready, q.unacked, q.dead), (0, 0, 1));
    b.stop().await;
}

#[tokio::test]
async fn confirm_done_waits_for_the_ack_or_reply_or_death() {
    let b = TestBroker::start().await;
    let mut sender = b.raw().await;
    let mut w = b.raw().await;
    sender
        .send(json!({"op":"send","id":1,"queue":"q","data":1,"confirm":"done"}))
        .await;
    sender.expect_silence(Duration::from_millis(100)).await;
    w.call(json!({"op":"consume","id":1,"queue":"q","cid":"a"}))
        .await;
    let j = job(&mut w).await;
    w.send(json!({"op":"ack","tag":j["tag"]})).await;
    assert_eq!(sender.recv().await, ok(1, json!({"msg":"1"})));

    sender
        .send(json!({"op":"send","id":2,"queue":"q","data":2,"confirm":"done"}))
        .await;
    let j = job(&mut w).await;
    w.send(json!({"op":"reply","tag":j["tag"],"data":{"answer":42}}))
        .await;
    assert_eq!(
        sender.recv().await,
        ok(2, json!({"msg":"2","data":{"answer":42}}))
    );

    sender
        .send(json!({"op":"send","id":3,"queue":"q","data":3,"confirm":"done"}))
        .await;
    let j = job(&mut w).await;
    w.send(json!({"op":"nack","tag":j["tag"],"requeue":false}))
        .await;
    let dead = sender.recv().await;
    assert_error(&dead, Some(3), "dead");
    b.stop().await;
}

#[tokio::test]
async fn purge_removes_ready_only_and_peek_does_not_consume() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    for n in 1..=4 {
        c.call(json!({"op":"send","id":n,"queue":"q","data":{"n":n},"headers":{"h":"x"}}))
            .await;
    }
    let peek = c.call(json!({"op":"peek","id":10,"queue":"q","n":2})).await;
    assert_eq!(peek["ev"], "ok");
    let msgs = peek["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["msg"], "1");
    assert_eq!(msgs[0]["data"], json!({"n":1}));
    assert_eq!(msgs[0]["headers"], json!({"h":"x"}));
    assert_eq!(msgs[1]["msg"], "2");
    c.call(json!({"op":"consume","id":11,"queue":"q","cid":"a"}))
        .await;
    let j = job(&mut c).await;
    assert_eq!(j["msg"], "1", "peek consumed nothing");
    assert_eq!(
        c.call(json!({"op":"purge","id":12,"queue":"q"})).await,
        ok(12, json!({"purged":3}))
    );
    let q = &b.broker.snapshot().queues[0];
    assert_eq!((q.ready, q.unacked), (0, 1));
    let missing = c.call(json!({"op":"purge","id":13,"queue":"nope"})).await;
    assert_error(&missing, Some(13), "not_found");
    b.stop().await;
}

#[tokio::test]
async fn delete_cancels_consumers() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"q","cid":"a"}))
        .await;
    let mut admin = b.raw().await;
    assert_eq!(
        admin.call(json!({"op":"delete","id":2,"queue":"q"})).await,
        ok(2, json!({}))
    );
    assert_eq!(w.recv().await, json!({"ev":"cancelled","cid":"a"}));
    assert!(b.broker.snapshot().queues.is_empty());
    let again = admin.call(json!({"op":"delete","id":3,"queue":"q"})).await;
    assert_error(&again, Some(3), "not_found");
    b.stop().await;
}

#[tokio::test]
async fn max_len_refuses_with_limit() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"declare","id":1,"queue":"small","max_len":2}))
        .await;
    c.call(json!({"op":"send","id":2,"queue":"small","data":1}))
        .await;
    c.call(json!({"op":"send","id":3,"queue":"small","data":2}))
        .await;
    let full = c
        .call(json!({"op":"send","id":4,"queue":"small","data":3}))
        .await;
    assert_error(&full, Some(4), "limit");
    assert_eq!(b.broker.snapshot().queues[0].ready, 2);
    b.stop().await;
}

#[tokio::test]
async fn request_reply_and_timeout() {
    let b = TestBroker::start().await;
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"rpc","cid":"srv"}))
        .await;
    let mut caller = b.raw().await;
    caller
        .send(json!({"op":"request","id":"r1","queue":"rpc","data":{"q":"ping"},"timeout_ms":5000}))
        .await;
    let j = job(&mut w).await;
    assert_eq!(j["reply"], true);
    assert_eq!(j["data"], json!({"q":"ping"}));
    w.send(json!({"op":"reply","tag":j["tag"],"data":{"a":"pong"}}))
        .await;
    assert_eq!(
        caller.recv().await,
        json!({"ev":"reply","id":"r1","data":{"a":"pong"}})
    );
    // The job is acked by the reply.
    assert_eq!(b.broker.snapshot().queues[0].acked, 1);

    caller
        .send(json!({"op":"request","id":"r2","queue":"nobody.home","data":1,"timeout_ms":100}))
        .await;
    let timeout = caller.recv().await;
    assert_eq!(
        (timeout["ev"].as_str(), timeout["code"].as_str()),
        (Some("error"), Some("timeout"))
    );
    assert_eq!(timeout["id"], "r2");

    let no_id = caller
        .call(json!({"op":"request","queue":"rpc","data":1}))
        .await;
    assert_error(&no_id, None, "bad_frame");
    b.stop().await;
}

#[tokio::test]
async fn the_rust_client_consumes_and_redelivers() {
    use switchyard_client::Client;
    let b = TestBroker::start().await;
    let producer = Client::connect(&b.url).await.unwrap();
    let a = Client::connect(&b.url).await.unwrap();
    let mut ca = a.consume("work", 1).await.unwrap();
    producer.send("work", json!({"job": 1})).await.unwrap();
    let first = ca.next().await.unwrap();
    assert_eq!((first.attempt, first.data.clone()), (1, json!({"job": 1})));
    a.close().await;
    let bclient = Client::connect(&b.url).await.unwrap();
    let mut cb = bclient.consume("work", 1).await.unwrap();
    let again = cb.next().await.unwrap();
    assert_eq!((again.msg.as_str(), again.attempt), (first.msg.as_str(), 2));
    bclient.ack(again.tag).await.unwrap();
    let err = bclient.ack(again.tag).await.unwrap_err();
    assert_eq!(err.code(), Some("unknown_tag"));
    // request/reply through the client
    let server = bclient.clone();
    let responder = tokio::spawn(async move {
        let j = cb.next().await.unwrap();
        server.reply(j.tag, json!({"echo": j.data})).await.unwrap();
    });
    let answer = producer
        .request("work", json!("hi"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer, json!({"echo": "hi"}));
    responder.await.unwrap();
    b.stop().await;
}

/// A durable queue's name can be used again right after its `delete`, every
/// time, even in the same frame: its log is closed and removed first.
#[tokio::test]
async fn a_deleted_durable_queue_can_be_sent_to_and_declared_again_at_once() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    for round in 0..50u64 {
        let q = format!("again.{round}");
        let first = c
            .call(json!({"op":"send","id":1,"queue":q,"data":round}))
            .await;
        assert_eq!(first, ok(1, json!({"msg": "1"})), "round {round}");
        let frame = [
            json!({"op":"delete","id":2,"queue":q}),
            json!({"op":"send","id":3,"queue":q,"data":round}),
            json!({"op":"declare","id":4,"queue":q,"durable":true}),
        ]
        .map(|f| f.to_string())
        .join("\n");
        c.send_text(frame).await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(c.recv().await);
        }
        // The durable send is confirmed after its fsync, so it may come last.
        answers.sort_by_key(|a| a["id"].as_u64());
        assert_eq!(
            answers,
            vec![
                ok(2, json!({})),
                ok(3, json!({"msg": "1"})),
                ok(4, json!({}))
            ],
            "round {round}"
        );
        let ready = b
            .broker
            .snapshot()
            .queues
            .iter()
            .find(|s| s.name == q)
            .map(|s| s.ready);
        assert_eq!(
            ready,
            Some(1),
            "round {round}: the new queue holds the new message"
        );
    }
    b.stop().await;
}

/// A worker's jobs count in its client's `msgs_out`, as a subscriber's messages do
/// (issue 12: a worker taking 20 jobs/s showed Out/s 0).
#[tokio::test]
async fn jobs_count_in_the_consumers_msgs_out() {
    let b = TestBroker::start().await;
    let mut worker = b.raw().await;
    let worker_id = worker.id();
    worker
        .call(json!({"op":"consume","id":1,"queue":"work","cid":"w"}))
        .await;
    let mut sender = b.raw().await;
    for i in 0..3 {
        sender
            .call(json!({"op":"send","id":10 + i,"queue":"work","data":i}))
            .await;
    }
    for _ in 0..3 {
        let job = worker.recv_ev("job").await;
        worker.send(json!({"op":"ack","tag":job["tag"]})).await;
    }
    eventually(&b.broker, "the jobs counted", |s| {
        s.clients
            .iter()
            .any(|c| c.id == worker_id && c.msgs_out == 3)
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn a_request_whose_requester_gave_up_is_not_delivered_later() {
    let b = TestBroker::start().await;
    let mut caller = b.raw().await;
    caller
        .send(json!({"op":"request","id":"r1","queue":"rpc","data":{"q":"ping"},"timeout_ms":100}))
        .await;
    let gave_up = caller.recv().await;
    assert_eq!(
        (&gave_up["ev"], &gave_up["id"], &gave_up["code"]),
        (&json!("error"), &json!("r1"), &json!("timeout"))
    );
    // A consumer that comes later gets nothing: the job lived as long as its
    // requester waited.
    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"rpc","cid":"srv"}))
        .await;
    w.expect_silence(Duration::from_millis(200)).await;
    let q = &b.broker.snapshot().queues[0];
    assert_eq!(
        (q.ready, q.unacked, q.dead, q.expired),
        (0, 0, 1, 1),
        "{q:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_send_with_a_time_to_live_nobody_takes_is_dead_lettered_as_expired() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    p.call(json!({"op":"declare","id":1,"queue":"mail","dead_letter":"mail.dead"}))
        .await;
    let sent = p
        .call(json!({"op":"send","id":2,"queue":"mail","data":"hi","headers":{"to":"ann"},"ttl_ms":150}))
        .await;
    assert_eq!(sent, ok(2, json!({"msg": "1"})));
    let peeked = p.call(json!({"op":"peek","id":3,"queue":"mail"})).await;
    let expires = peeked["messages"][0]["expires"].as_u64().unwrap();
    let time = peeked["messages"][0]["time"].as_u64().unwrap();
    assert_eq!(expires, time + 150);

    let mut w = b.raw().await;
    w.call(json!({"op":"consume","id":1,"queue":"mail.dead","cid":"d"}))
        .await;
    let dead = job(&mut w).await;
    assert_eq!(dead["data"], "hi");
    assert_eq!(
        dead["headers"],
        json!({"to":"ann","x-dead-letter-queue":"mail","x-dead-letter-reason":"expired"})
    );
    let stats = p.call(json!({"op":"stats","id":4})).await;
    let mail = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mail")
        .unwrap();
    assert_eq!(
        (&mail["ready"], &mail["dead"], &mail["expired"]),
        (&json!(0), &json!(1), &json!(1))
    );

    let bad = p
        .call(json!({"op":"send","id":5,"queue":"mail","data":1,"ttl_ms":0}))
        .await;
    assert_eq!(
        assert_error(&bad, Some(5), "bad_frame"),
        "field `ttl_ms` must be from 1 to 31536000000"
    );
    b.stop().await;
}
