//! `describe`: a queue's and a topic's page over real sockets with the raw client,
//! the history behind it, request latency and timeouts, and a filling client's
//! time to kick.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `describe` until `cond` holds of the page (the history fills once a second).
async fn describe_until(
    c: &mut Raw,
    frame: Value,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = c.call(frame.clone()).await;
        assert_eq!(answer["ev"], "ok", "{answer}");
        let page = if answer.get("queue").is_some() {
            answer["queue"].clone()
        } else {
            answer["topic"].clone()
        };
        if cond(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} in {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sum(v: &Value) -> u64 {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_queue_page_has_its_settings_consumers_dead_letters_and_last_seconds() {
    let b = TestBroker::start().await;
    let mut ops = b.raw().await;
    let mut worker = b.raw().await;
    worker
        .call(json!({"op":"hello","id":1,"name":"billing"}))
        .await;
    ops.call(json!({"op":"declare","id":1,"queue":"jobs.dead"}))
        .await;
    let declared = ops
        .call(
            json!({"op":"declare","id":2,"queue":"jobs","ack_timeout_ms":5000,
            "max_attempts":3,"dead_letter":"jobs.dead","max_len":100}),
        )
        .await;
    assert_eq!(declared, ok(2, json!({})));
    assert_eq!(
        worker
            .call(json!({"op":"consume","id":2,"queue":"jobs","cid":"w","prefetch":5}))
            .await,
        ok(2, json!({}))
    );
    // Sends counted from the queue's first sample on: wait for it.
    let frame = json!({"op":"describe","id":3,"queue":"jobs"});
    describe_until(&mut ops, frame.clone(), "first sample", |p| {
        p["history"]["ready"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    for i in 0..3 {
        ops.send(json!({"op":"send","queue":"jobs","data":i})).await;
    }
    let job = worker.recv_ev("job").await;
    worker.send(json!({"op":"ack","tag":job["tag"]})).await;
    worker.recv_ev("job").await;
    worker.recv_ev("job").await;
    let page = describe_until(&mut ops, frame, "the sends and the ack", |p| {
        sum(&p["history"]["in"]) == 3 && sum(&p["history"]["acked"]) == 1
    })
    .await;
    assert_eq!(page["stats"]["name"], "jobs");
    assert_eq!(
        (
            page["stats"]["ready"].as_u64(),
            page["stats"]["unacked"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(
        (
            &page["ack_timeout_ms"],
            &page["max_attempts"],
            &page["dead_letter"],
            &page["max_len"]
        ),
        (&json!(5000), &json!(3), &json!("jobs.dead"), &json!(100))
    );
    assert_eq!(
        page["consumers"],
        json!([{"client": worker.id(), "name": "billing", "cid": "w", "prefetch": 5,
            "unacked": 2, "acked": 1}])
    );
    assert_eq!(page["dead_letter_stats"]["name"], "jobs.dead");
    assert_eq!(page["dead_letter_stats"]["ready"], 0);
    let h = &page["history"];
    assert_eq!(h["interval_ms"], 1000);
    let n = h["ready"].as_array().unwrap().len();
    for column in ["unacked", "in", "acked", "redelivered"] {
        assert_eq!(h[column].as_array().unwrap().len(), n, "{column}");
    }
    assert_eq!(h["unacked"].as_array().unwrap().last(), Some(&json!(2)));
    assert!(h["end_ms"].as_u64().unwrap() > 1_700_000_000_000, "{h}");
    b.stop().await;
}

#[tokio::test]
async fn describe_refuses_what_it_cannot_describe() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    let e = c.call(json!({"op":"describe","id":1,"queue":"nope"})).await;
    assert_error(&e, Some(1), "not_found");
    let e = c.call(json!({"op":"describe","id":2,"topic":"nope"})).await;
    assert_eq!(assert_error(&e, Some(2), "not_found"), "no topic `nope`");
    let e = c
        .call(json!({"op":"describe","id":3,"queue":"a","topic":"b"}))
        .await;
    assert_eq!(
        assert_error(&e, Some(3), "bad_frame"),
        "`describe` takes `topic` or `queue`, not both"
    );
    let e = c.call(json!({"op":"describe","id":4})).await;
    assert_error(&e, Some(4), "bad_frame");
    let e = c.call(json!({"op":"describe","id":5,"queue":7})).await;
    assert_error(&e, Some(5), "bad_frame");
    b.stop().await;
}

#[tokio::test]
async fn a_topic_page_lists_subscribers_with_filters_and_a_retained_topics_lag() {
    let b = TestBroker::start().await;
    let mut ops = b.raw().await;
    let mut reader = b.raw().await;
    reader
        .call(json!({"op":"hello","id":1,"name":"reader"}))
        .await;
    reader
        .call(json!({"op":"sub","id":2,"topic":"orders.*","sid":"s1","filter":"data.total > 10"}))
        .await;
    ops.call(json!({"op":"pub","id":1,"topic":"orders.eu","data":{"total":1}}))
        .await;
    let frame = json!({"op":"describe","id":2,"topic":"orders.eu"});
    describe_until(&mut ops, frame.clone(), "first sample", |p| {
        p["history"]["in"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    ops.send(json!({"op":"pub","topic":"orders.eu","data":{"total":20}}))
        .await;
    ops.send(json!({"op":"pub","topic":"orders.eu","data":{"total":5}}))
        .await;
    let page = describe_until(&mut ops, frame, "two publishes", |p| {
        sum(&p["history"]["in"]) == 2
    })
    .await;
    assert_eq!(page["stats"]["name"], "orders.eu");
    assert_eq!(sum(&page["history"]["out"]), 1, "the filter passed one");
    assert_eq!(
        page["history"]["subscribers"].as_array().unwrap().last(),
        Some(&json!(1))
    );
    let sub = &page["subscribers"][0];
    assert_eq!(
        (
            &sub["client"],
            &sub["name"],
            &sub["sid"],
            &sub["pattern"],
            &sub["filter"]
        ),
        (
            &json!(reader.id()),
            &json!("reader"),
            &json!("s1"),
            &json!("orders.*"),
            &json!("data.total > 10")
        )
    );
    assert_eq!(sub["pending_limit"], 8 * 1024 * 1024);
    assert_eq!(sub["lag"], Value::Null, "not retained: no lag");
    assert_eq!(page["subscribers"].as_array().unwrap().len(), 1);

    // A retained topic's subscriber that replayed all is not behind.
    ops.call(json!({"op":"declare","id":3,"topic":"log","retain":{"max_messages":100}}))
        .await;
    for i in 0..3 {
        ops.call(json!({"op":"pub","id":10 + i,"topic":"log","data":i}))
            .await;
    }
    reader
        .call(json!({"op":"sub","id":3,"topic":"log","sid":"r","from":"first"}))
        .await;
    for _ in 0..3 {
        reader.recv_ev("msg").await;
    }
    let page = describe_until(
        &mut ops,
        json!({"op":"describe","id":4,"topic":"log"}),
        "the replay's end",
        |p| p["subscribers"][0]["replaying"] == false,
    )
    .await;
    assert_eq!(page["subscribers"][0]["lag"], 0);
    assert_eq!(page["stats"]["stored"], 3);
    b.stop().await;
}

#[tokio::test]
async fn a_topic_page_with_more_than_fits_is_cut_to_half_the_askers_buffer() {
    let b = TestBroker::with(switchyard_broker::Config {
        max_pending: 64 * 1024,
        ..Default::default()
    })
    .await;
    let mut subs = b.raw().await;
    // 200 subscriptions, each with a filter of about 1 KB: some 200 KB of page.
    let long = format!("data.note = '{}'", "x".repeat(1000));
    for i in 0..200 {
        let ok = subs
            .call(json!({"op":"sub","id":i,"topic":"big","sid":format!("s{i}"),"filter":long}))
            .await;
        assert_eq!(ok["ev"], "ok", "{ok}");
    }
    let mut ops = b.raw().await;
    ops.call(json!({"op":"pub","id":1,"topic":"big","data":1}))
        .await;
    let answer = ops
        .call(json!({"op":"describe","id":2,"topic":"big"}))
        .await;
    let page = &answer["topic"];
    assert_eq!(page["truncated"], true);
    assert_eq!(page["stats"]["subscribers"], 200);
    let shown = page["subscribers"].as_array().unwrap();
    assert!(!shown.is_empty() && shown.len() < 200, "{}", shown.len());
    let filter = shown[0]["filter"].as_str().unwrap();
    assert_eq!(filter.chars().count(), 257);
    assert!(filter.ends_with('…'), "{filter}");
    assert!(
        answer.to_string().len() <= 32 * 1024,
        "{}",
        answer.to_string().len()
    );
    b.stop().await;
}

#[tokio::test]
async fn requests_count_their_timeouts_and_reply_times_in_stats_and_metrics() {
    let b = TestBroker::start().await;
    let mut worker = b.raw().await;
    let mut asker = b.raw().await;
    worker
        .call(json!({"op":"consume","id":1,"queue":"rpc","cid":"w","prefetch":10}))
        .await;
    asker
        .send(json!({"op":"request","id":1,"queue":"rpc","data":"ping","timeout_ms":5000}))
        .await;
    let job = worker.recv_ev("job").await;
    worker
        .send(json!({"op":"reply","tag":job["tag"],"data":"pong"}))
        .await;
    let reply = asker.recv().await;
    assert_eq!(reply, json!({"ev":"reply","id":1,"data":"pong"}));
    // Taken and never answered: the requester times out.
    asker
        .send(json!({"op":"request","id":2,"queue":"rpc","data":"ping","timeout_ms":200}))
        .await;
    worker.recv_ev("job").await;
    assert_error(&asker.recv().await, Some(2), "timeout");
    // Nobody takes this one: the queue's own expiry answers it, counted the same.
    let idle = asker
        .call(json!({"op":"request","id":3,"queue":"idle","data":"ping","timeout_ms":100}))
        .await;
    assert_error(&idle, Some(3), "timeout");
    let stats = asker.call(json!({"op":"stats","id":4})).await;
    let idle = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "idle")
        .unwrap();
    assert_eq!(
        (&idle["requests"], &idle["request_timeouts"]),
        (&json!(1), &json!(1))
    );
    let q = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "rpc")
        .unwrap();
    assert_eq!(
        (&q["name"], &q["requests"], &q["request_timeouts"]),
        (&json!("rpc"), &json!(2), &json!(1))
    );
    let p50 = q["reply_p50_ms"].as_f64().unwrap();
    let p99 = q["reply_p99_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 5_000.0 && p50 == p99, "{q}");
    let metrics = http_get_with(b.addr, "/metrics", &[]).await;
    for line in [
        "switchyard_queue_requests_total{queue=\"rpc\"} 2\n",
        "switchyard_queue_request_timeouts_total{queue=\"rpc\"} 1\n",
        "switchyard_request_duration_seconds_count{queue=\"rpc\"} 1\n",
        "switchyard_request_duration_seconds_bucket{queue=\"rpc\",le=\"+Inf\"} 1\n",
        "switchyard_request_duration_seconds_bucket{queue=\"rpc\",le=\"33.554432\"} 1\n",
        "# TYPE switchyard_request_duration_seconds histogram\n",
        "switchyard_history_untracked 0\n",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    b.stop().await;
}

/// A client that reads nothing while a publisher fills its buffer: its row says
/// how fast, and when it would be kicked.
#[tokio::test]
async fn a_filling_client_is_told_its_time_to_kick() {
    let b = TestBroker::with(switchyard_broker::Config {
        max_pending: 64 * 1024 * 1024,
        ..Default::default()
    })
    .await;
    let mut stuck = b.raw().await;
    stuck
        .call(json!({"op":"sub","id":1,"topic":"firehose","sid":"s"}))
        .await;
    let stuck_id = stuck.id();
    let mut publisher = b.raw().await;
    let chunk = "x".repeat(60 * 1024);
    // About 3 MB a second for up to 8 s: past the socket buffers, then into the
    // client's outbound buffer, which fills at that rate and never drains.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let row = loop {
        for _ in 0..10 {
            publisher
                .send(json!({"op":"pub","topic":"firehose","data":chunk}))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let snapshot = b.broker.snapshot();
        let row = snapshot
            .clients
            .into_iter()
            .find(|c| c.id == stuck_id)
            .unwrap();
        if row.kick_in_s.is_some() && row.pending_bytes > 2_000_000 {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "{row:?}");
    };
    assert!(row.fill_rate > 200_000, "{row:?}");
    let expected = (row.pending_limit - row.pending_bytes) / row.fill_rate as u64;
    let kick_in = row.kick_in_s.unwrap();
    assert!(kick_in >= expected && kick_in <= expected + 1, "{row:?}");
    drop(stuck);
    b.stop().await;
}
