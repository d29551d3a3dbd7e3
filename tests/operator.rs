//! Operator frames, slow consumers, HTTP endpoints and connection limits.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use switchyard_broker::stats::EventKind;
use switchyard_broker::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn stats_snapshot_has_the_documented_shape() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"hello","id":1,"name":"ops-test"})).await;
    c.call(json!({"op":"sub","id":2,"topic":"a.*","sid":"s"}))
        .await;
    c.call(json!({"op":"consume","id":3,"queue":"jobs","cid":"w","prefetch":5}))
        .await;
    // A durable send is confirmed after its fsync, so the job may come first.
    c.send(json!({"op":"send","id":4,"queue":"jobs","data":1}))
        .await;
    let (first, second) = (c.recv().await, c.recv().await);
    let mut evs = [
        first["ev"].as_str().unwrap().to_string(),
        second["ev"].as_str().unwrap().to_string(),
    ];
    evs.sort();
    assert_eq!(evs, ["job", "ok"]);
    // To itself: the msg may come before the pub's ok, so neither is awaited by order.
    c.send(json!({"op":"pub","topic":"a.b","data":1})).await;
    c.recv_ev("msg").await;
    let stats = c.call(json!({"op":"stats","id":6})).await;
    assert_eq!(stats["ev"], "stats");
    assert_eq!(stats["id"], 6);
    let server = &stats["server"];
    assert_eq!(
        (
            server["connections"].as_u64(),
            server["msgs_in"].as_u64(),
            server["msgs_out"].as_u64()
        ),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!(server["listen"], b.addr.to_string());
    assert_eq!(
        stats["topics"],
        json!([{"name":"a.b","subscribers":1,"msgs_in":1,"msgs_out":1,"retained":false,"stored":0,"stored_bytes":0,"sealed":false}])
    );
    let q = &stats["queues"][0];
    assert_eq!(
        (
            q["name"].as_str(),
            q["ready"].as_u64(),
            q["unacked"].as_u64(),
            q["consumers"].as_u64(),
            q["durable"].as_bool()
        ),
        (Some("jobs"), Some(0), Some(1), Some(1), Some(true))
    );
    let client = &stats["clients"][0];
    assert_eq!(client["id"], c.id());
    assert_eq!(client["name"], "ops-test");
    assert_eq!(
        (
            client["subs"].as_u64(),
            client["consumers"].as_u64(),
            client["unacked"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(client["slow"], false);
    assert_eq!(
        client["subscriptions"],
        json!([{"sid":"s","pattern":"a.*","filter":null}])
    );
    let inflight = &stats["inflight"][0];
    assert_eq!(
        (
            inflight["queue"].as_str(),
            inflight["msg"].as_str(),
            inflight["cid"].as_str(),
            inflight["attempt"].as_u64()
        ),
        (Some("jobs"), Some("1"), Some("w"), Some(1))
    );
    assert!(inflight["deadline_in_ms"].as_i64().unwrap() > 29_000);
    b.stop().await;
}

#[tokio::test]
async fn watch_sends_stats_until_unwatch() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.send(json!({"op":"watch","id":"w","interval_ms":100}))
        .await;
    for _ in 0..3 {
        let s = c.recv().await;
        assert_eq!(
            (s["ev"].as_str(), s["id"].as_str()),
            (Some("stats"), Some("w"))
        );
    }
    c.send(json!({"op":"unwatch","id":"u"})).await;
    // Frames already queued may arrive before the ok; nothing comes after it.
    c.recv_ev("ok").await;
    c.expect_silence(Duration::from_millis(300)).await;
    b.stop().await;
}

#[tokio::test]
async fn kick_tells_the_client_and_requeues_its_jobs() {
    let b = TestBroker::start().await;
    let mut victim = b.raw().await;
    victim
        .call(json!({"op":"consume","id":1,"queue":"q","cid":"w"}))
        .await;
    let mut admin = b.raw().await;
    admin
        .call(json!({"op":"send","id":1,"queue":"q","data":1}))
        .await;
    victim.recv_ev("job").await;
    let id = victim.id();
    assert_eq!(
        admin
            .call(json!({"op":"kick","id":2,"client":id,"reason":"maintenance"}))
            .await,
        ok(2, json!({}))
    );
    assert_eq!(
        victim.recv().await,
        json!({"ev":"kicked","reason":"maintenance"})
    );
    assert_eq!(victim.recv_close().await, Some(1008));
    eventually(&b.broker, "the job to be ready again", |s| {
        s.queues[0].ready == 1 && s.server.connections == 1
    })
    .await;
    let e = admin
        .call(json!({"op":"kick","id":3,"client":"c999"}))
        .await;
    assert_error(&e, Some(3), "not_found");
    let events = b.broker.snapshot().events;
    assert!(events.iter().any(|e| e.kind == EventKind::Kick
        && e.text == format!("{} kicked {id}: maintenance", admin.id())));
    b.stop().await;
}

#[tokio::test]
async fn a_slow_subscriber_is_marked_then_kicked_and_memory_stays_bounded() {
    const LIMIT: usize = 256 * 1024;
    let b = TestBroker::with(Config {
        max_pending: LIMIT,
        ..Config::default()
    })
    .await;
    let mut slow = b.raw().await;
    slow.call(json!({"op":"sub","id":1,"topic":"firehose","sid":"s"}))
        .await;
    let slow_id = slow.id();
    let mut fast = b.raw().await;
    fast.call(json!({"op":"sub","id":1,"topic":"firehose","sid":"s"}))
        .await;
    // `slow` never reads again; `fast` reads everything. The publisher goes at the
    // fast reader's pace (100 KB per round, under the buffer: a burst larger than a
    // client's whole buffer would rightly kick even a fast reader) until the slow one
    // is gone.
    let mut publisher = b.raw().await;
    let body = "x".repeat(1000);
    let frame: Vec<String> = (0..100)
        .map(|_| json!({"op":"pub","topic":"firehose","data":body}).to_string())
        .collect();
    let frame = frame.join("\n");
    let mut max_pending = 0u64;
    let mut was_slow = false;
    let mut rounds = 0;
    loop {
        let snap = b.broker.snapshot();
        let Some(c) = snap.clients.iter().find(|c| c.id == slow_id) else {
            break;
        };
        max_pending = max_pending.max(c.pending_bytes);
        was_slow |= c.slow;
        rounds += 1;
        assert!(rounds <= 2000, "slow client never kicked after 200 MB");
        publisher.send_text(frame.clone()).await;
        for _ in 0..100 {
            assert_eq!(fast.recv().await["ev"], "msg");
        }
    }
    assert_eq!(
        publisher.call(json!({"op":"ping","id":"done"})).await["ev"],
        "pong"
    );
    let snap = b.broker.snapshot();
    assert_eq!(
        snap.server.slow_consumers, 1,
        "only the slow client was kicked"
    );
    assert_eq!(snap.server.connections, 2);
    assert!(
        max_pending <= LIMIT as u64,
        "pending {max_pending} over the limit {LIMIT}"
    );
    assert!(
        was_slow,
        "the slow client was marked slow before it was kicked"
    );
    let events = b.broker.snapshot().events;
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::Slow && e.text.starts_with(&format!("{slow_id} is slow"))));
    assert!(events.iter().any(|e| e.kind == EventKind::Kick
        && e.text
            .starts_with(&format!("{slow_id} kicked: slow_consumer"))));
    // The well-behaved subscriber is still served.
    publisher
        .send(json!({"op":"pub","topic":"firehose","data":"after"}))
        .await;
    assert_eq!(fast.recv().await["data"], "after");
    b.stop().await;
}

#[tokio::test]
async fn health_metrics_and_unknown_paths() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"send","id":1,"queue":"jobs","data":1}))
        .await;
    let health = http_get(b.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("\r\n\r\nok\n"));
    let metrics = http_get(b.addr, "/metrics").await;
    assert!(metrics.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(
        metrics.contains("\nswitchyard_connections 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nswitchyard_queue_messages_ready{queue=\"jobs\"} 1\n"));
    assert!(metrics.contains("\nswitchyard_slow_consumers_total 0\n"));
    assert!(http_get(b.addr, "/nope")
        .await
        .starts_with("HTTP/1.1 404 Not Found"));
    assert!(http_get(b.addr, "/ws")
        .await
        .starts_with("HTTP/1.1 426 Upgrade Required"));
    b.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_slow_handshakes_time_out() {
    let b = TestBroker::with(Config {
        max_connections: 2,
        max_connections_per_ip: Some(0),
        handshake_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let _a = b.raw().await;
    let _b = b.raw().await;
    assert!(tokio_tungstenite::connect_async(&b.url).await.is_err());
    drop(_a);
    eventually(&b.broker, "a slot to free", |s| s.server.connections == 1).await;
    // A client that connects and says nothing is cut off after the handshake timeout.
    let mut idle = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, idle.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    b.stop().await;
}

#[tokio::test]
async fn shutdown_tells_clients_going_away() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"sub","id":1,"topic":"t","sid":"s"}))
        .await;
    b.broker.shutdown();
    assert_eq!(c.recv_close().await, Some(1001));
}

/// `requeue` is the console's requeue key as a frame: the same command, one path.
#[tokio::test]
async fn requeue_puts_an_in_flight_job_back_now() {
    let b = TestBroker::start().await;
    let mut worker = b.raw().await;
    worker
        .call(json!({"op":"consume","id":1,"queue":"q","cid":"w"}))
        .await;
    let mut admin = b.raw().await;
    let sent = admin
        .call(json!({"op":"send","id":1,"queue":"q","data":"x"}))
        .await;
    let msg = sent["msg"].as_str().expect("a message id").to_string();
    let first = worker.recv_ev("job").await;
    assert_eq!(
        (first["msg"].as_str(), &first["attempt"]),
        (Some(&*msg), &json!(1))
    );
    assert_eq!(
        admin
            .call(json!({"op":"requeue","id":2,"queue":"q","msg":msg}))
            .await,
        ok(2, json!({}))
    );
    // Its slot is free again, so the same worker gets it back, one attempt on.
    let again = worker.recv_ev("job").await;
    assert_eq!(
        (again["msg"].as_str(), &again["attempt"]),
        (Some(&*msg), &json!(2))
    );
    assert_ne!(again["tag"], first["tag"]);
    let e = admin
        .call(json!({"op":"requeue","id":3,"queue":"q","msg":"999"}))
        .await;
    assert_error(&e, Some(3), "not_found");
    let e = admin.call(json!({"op":"requeue","id":4,"queue":"q"})).await;
    assert_eq!(
        assert_error(&e, Some(4), "bad_frame"),
        "missing field `msg`"
    );
    let events = b.broker.snapshot().events;
    assert!(events.iter().any(|e| e.kind == EventKind::Requeue
        && e.text == format!("{} requeued message {msg} of q", admin.id())));
    b.stop().await;
}

/// The names in a stats frame's list, in order.
fn names(frame: &serde_json::Value, list: &str, key: &str) -> Vec<String> {
    frame[list]
        .as_array()
        .unwrap_or_else(|| panic!("no `{list}` in {frame}"))
        .iter()
        .map(|row| row[key].as_str().unwrap().to_string())
        .collect()
}

/// A `watch` with `changes` sends the whole snapshot first, then only rows that
/// changed, rows gone, and new events: what an idle broker costs is the server
/// figures, whatever it holds.
#[tokio::test]
async fn a_watch_of_changes_sends_only_what_changed() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    for topic in ["t.a", "t.b", "t.c"] {
        p.call(json!({"op":"pub","id":1,"topic":topic,"data":1}))
            .await;
    }
    // A queue with a backlog: the age of its oldest message moves every frame,
    // which the reader advances itself.
    p.call(json!({"op":"send","id":1,"queue":"backlog","data":1}))
        .await;
    let leaver = b.raw().await;
    let leaver_id = leaver.id();
    let mut w = b.raw().await;
    w.send(json!({"op":"watch","id":"w","interval_ms":100,"changes":true}))
        .await;
    let first = w.recv_ev("stats").await;
    assert_eq!(first.get("changes"), None, "{first}");
    assert_eq!(names(&first, "topics", "name"), ["t.a", "t.b", "t.c"]);
    assert_eq!(
        names(&first, "clients", "id"),
        [p.id(), leaver_id.clone(), w.id()]
    );
    assert!(!first["events"].as_array().unwrap().is_empty());
    // Nothing happens: the next frames carry no rows and no events.
    let idle = w.recv_ev("stats").await;
    assert_eq!(idle["changes"], json!(true), "{idle}");
    assert_eq!(
        (&idle["topics"], &idle["queues"], &idle["events"]),
        (&json!([]), &json!([]), &json!([])),
        "{idle}"
    );
    // The watcher's own row changes while a frame waits in its buffer; no other.
    let changed = names(&idle, "clients", "id");
    assert!(changed.iter().all(|c| *c == w.id()), "{idle}");
    assert_eq!(idle.get("gone"), None, "{idle}");
    assert_eq!(idle["server"]["connections"], json!(3));
    // One publish changes one topic (and the publisher's counters); a client
    // leaving is gone, with the event saying so.
    p.call(json!({"op":"pub","id":2,"topic":"t.b","data":2}))
        .await;
    drop(leaver);
    let mut seen_topics = Vec::new();
    let mut gone = None;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while (seen_topics.is_empty() || gone.is_none()) && tokio::time::Instant::now() < deadline {
        let frame = w.recv_ev("stats").await;
        assert_eq!(frame["changes"], json!(true), "{frame}");
        seen_topics.extend(names(&frame, "topics", "name"));
        if let Some(g) = frame.get("gone") {
            gone = Some(g.clone());
        }
        events.extend(names(&frame, "events", "text"));
    }
    assert_eq!(seen_topics, ["t.b"]);
    assert_eq!(gone, Some(json!({"clients":[leaver_id]})));
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("{leaver_id} disconnected"))),
        "{events:?}"
    );
    b.stop().await;
}

/// The first frame of the watch `id`, past frames of the watch it replaced.
async fn first_of(raw: &mut Raw, id: &str) -> serde_json::Value {
    loop {
        let s = raw.recv_ev("stats").await;
        if s["id"] == json!(id) {
            return s;
        }
    }
}

/// `inflight` and `client` choose which in-flight jobs a watch carries, while
/// `server.inflight` counts them all.
#[tokio::test]
async fn a_watch_carries_the_in_flight_jobs_asked_for() {
    let b = TestBroker::start().await;
    let mut one = b.raw().await;
    one.call(json!({"op":"consume","id":1,"queue":"q","cid":"a","prefetch":10}))
        .await;
    let mut two = b.raw().await;
    two.call(json!({"op":"consume","id":1,"queue":"q","cid":"b","prefetch":10}))
        .await;
    let mut admin = b.raw().await;
    for i in 0..6 {
        admin
            .call(json!({"op":"send","id":i,"queue":"q","data":i}))
            .await;
    }
    eventually(&b.broker, "six jobs in flight", |s| s.inflight.len() == 6).await;
    let watch = |id: &str, extra: serde_json::Value| {
        let mut frame = json!({"op":"watch","id":id,"interval_ms":100});
        frame
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        frame
    };
    admin.send(watch("w1", json!({"inflight": 2}))).await;
    let s = first_of(&mut admin, "w1").await;
    assert_eq!(s["inflight"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["server"]["inflight"], json!(6));
    admin
        .send(watch("w2", json!({"inflight": 0, "changes": true})))
        .await;
    let s = first_of(&mut admin, "w2").await;
    assert_eq!(
        (&s["inflight"], &s["server"]["inflight"]),
        (&json!([]), &json!(6))
    );
    // A watch of changes starts whole, even after another watch.
    assert_eq!(s.get("changes"), None, "{s}");
    assert_eq!(names(&s, "queues", "name"), ["q"]);
    admin
        .send(watch("w3", json!({"client": two.id(), "changes": true})))
        .await;
    let s = first_of(&mut admin, "w3").await;
    assert_eq!(s.get("changes"), None, "{s}");
    let holders: Vec<_> = names(&s, "inflight", "client");
    assert!(!holders.is_empty(), "{s}");
    assert!(holders.iter().all(|c| *c == two.id()), "{holders:?}");
    let held = b
        .broker
        .snapshot()
        .clients
        .iter()
        .find(|c| c.id == two.id())
        .map(|c| c.unacked);
    assert_eq!(Some(holders.len() as u64), held);
    b.stop().await;
}

/// `tail` shows an operator every message on a pattern, as the console's tail
/// does, until `untail`; it needs a valid pattern.
#[tokio::test]
async fn tail_sends_each_message_on_the_pattern_until_untail() {
    let b = TestBroker::start().await;
    let mut op = b.raw().await;
    assert_eq!(
        op.call(json!({"op":"tail","id":1,"topic":"orders.*"}))
            .await,
        ok(1, json!({}))
    );
    let mut p = b.raw().await;
    p.call(json!({"op":"pub","id":1,"topic":"orders.eu","data":{"n":1},"headers":{"k":"v"}}))
        .await;
    p.call(json!({"op":"pub","id":2,"topic":"other","data":2}))
        .await;
    p.call(json!({"op":"pub","id":3,"topic":"orders.us","data":3}))
        .await;
    let first = op.recv_ev("tail").await;
    assert_eq!(
        (
            &first["topic"],
            &first["seq"],
            &first["data"],
            &first["headers"]
        ),
        (
            &json!("orders.eu"),
            &json!(1),
            &json!({"n":1}),
            &json!({"k":"v"})
        )
    );
    assert!(first["time"].as_u64().unwrap() > 0);
    let second = op.recv_ev("tail").await;
    assert_eq!(
        (&second["topic"], &second["data"]),
        (&json!("orders.us"), &json!(3))
    );
    assert_eq!(
        op.call(json!({"op":"untail","id":2})).await,
        ok(2, json!({}))
    );
    p.call(json!({"op":"pub","id":4,"topic":"orders.eu","data":4}))
        .await;
    op.expect_silence(Duration::from_millis(400)).await;
    let e = op
        .call(json!({"op":"tail","id":3,"topic":"orders..x"}))
        .await;
    assert_error(&e, Some(3), "bad_name");
    let e = op.call(json!({"op":"tail","id":4})).await;
    assert_eq!(
        assert_error(&e, Some(4), "bad_frame"),
        "missing field `topic`"
    );
    b.stop().await;
}

/// A tail of messages larger than the reader's buffer can take at once paces
/// itself to the buffer: the reader is never kicked, and what it gets comes in
/// order.
#[tokio::test]
async fn a_tail_of_large_messages_never_gets_its_reader_kicked() {
    const LIMIT: usize = 256 * 1024;
    let b = TestBroker::with(Config {
        max_pending: LIMIT,
        ..Config::default()
    })
    .await;
    let mut op = b.raw().await;
    op.call(json!({"op":"tail","id":1,"topic":"big"})).await;
    let mut p = b.raw().await;
    let body = "x".repeat(40 * 1024);
    let frames: Vec<String> = (0..40)
        .map(|n| json!({"op":"pub","topic":"big","data":{"n":n,"body":body}}).to_string())
        .collect();
    // 1.6 MB in four frames under max_payload, six times the reader's whole buffer.
    for four in frames.chunks(10) {
        p.send_text(four.join("\n")).await;
    }
    assert_eq!(p.call(json!({"op":"ping","id":"p"})).await["ev"], "pong");
    let mut seen = Vec::new();
    while let Some(frame) = op.try_recv(Duration::from_millis(500)).await {
        if frame["ev"] == "tail" {
            seen.push(frame["data"]["n"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, (0..40).collect::<Vec<_>>(), "every message, in order");
    assert_eq!(
        op.call(json!({"op":"ping","id":"alive"})).await["ev"],
        "pong"
    );
    assert_eq!(b.broker.snapshot().server.slow_consumers, 0);
    b.stop().await;
}

/// `requeue` with `client` and `cid`: every job one consumer holds goes back at
/// once (the consumer stays, and gets them again with their attempts counted).
#[tokio::test]
async fn requeue_of_a_consumer_puts_all_its_jobs_back() {
    let b = TestBroker::start().await;
    let mut worker = b.raw().await;
    worker
        .call(json!({"op":"consume","id":1,"queue":"q","cid":"w","prefetch":3}))
        .await;
    let mut admin = b.raw().await;
    for n in 1..=3 {
        admin
            .call(json!({"op":"send","id":n,"queue":"q","data":n}))
            .await;
    }
    for _ in 0..3 {
        worker.recv_ev("job").await;
    }
    let answer = admin
        .call(json!({"op":"requeue","id":4,"client":worker.id(),"cid":"w"}))
        .await;
    assert_eq!(answer, ok(4, json!({"requeued": 3})));
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let job = worker.recv_ev("job").await;
        attempts.push((job["data"].clone(), job["attempt"].clone()));
    }
    assert_eq!(
        attempts,
        vec![
            (json!(1), json!(2)),
            (json!(2), json!(2)),
            (json!(3), json!(2))
        ]
    );
    let e = admin
        .call(json!({"op":"requeue","id":5,"client":worker.id(),"cid":"nope"}))
        .await;
    assert_eq!(
        assert_error(&e, Some(5), "not_found"),
        format!("client `{}` has no consumer `nope`", worker.id())
    );
    let e = admin
        .call(json!({"op":"requeue","id":6,"client":"c999"}))
        .await;
    assert_eq!(
        assert_error(&e, Some(6), "bad_frame"),
        "missing field `cid`"
    );
    b.stop().await;
}
