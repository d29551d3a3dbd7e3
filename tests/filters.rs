//! Query-filtered subscriptions over real sockets.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn only_matching_messages_are_delivered() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    let filter = "(region = 'eu' OR region = 'uk') AND data.amount > 5 AND NOT data.test EXISTS";
    let answer = sub
        .call(json!({"op":"sub","id":1,"topic":"orders.>","sid":"big","filter":filter}))
        .await;
    assert_eq!(answer, ok(1, json!({})));
    sub.call(json!({"op":"sub","id":2,"topic":"orders.>","sid":"tags",
                    "filter":"data.tags CONTAINS 'urgent' AND status IN ('new', 'paid')"}))
        .await;
    let mut p = b.raw().await;
    let cases = [
        (json!({"region":"eu"}), json!({"amount": 10}), vec!["big"]),
        (json!({"region":"us"}), json!({"amount": 10}), vec![]),
        (
            json!({"region":["us","uk"]}),
            json!({"amount": 6}),
            vec!["big"],
        ),
        (json!({"region":"eu"}), json!({"amount": 5}), vec![]),
        (
            json!({"region":"eu"}),
            json!({"amount": 50, "test": true}),
            vec![],
        ),
        (json!({"region":"eu"}), json!({"amount": "lots"}), vec![]),
        (
            json!({"status":"paid"}),
            json!({"tags": ["urgent", "x"]}),
            vec!["tags"],
        ),
        (
            json!({"status":"old","region":"eu"}),
            json!({"tags": ["urgent"], "amount": 9}),
            vec!["big"],
        ),
        (json!({}), json!(null), vec![]),
    ];
    for (i, (headers, data, _)) in cases.iter().enumerate() {
        p.send(json!({"op":"pub","topic":format!("orders.n{i}"),"data":data,"headers":headers}))
            .await;
    }
    p.call(json!({"op":"ping","id":1})).await;
    let mut got = Vec::new();
    while let Some(m) = sub.try_recv(Duration::from_millis(200)).await {
        got.push((
            m["topic"].as_str().unwrap().to_string(),
            m["sid"].as_str().unwrap().to_string(),
        ));
    }
    let want: Vec<(String, String)> = cases
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, sids))| {
            sids.iter()
                .map(move |s| (format!("orders.n{i}"), s.to_string()))
        })
        .collect();
    assert_eq!(got, want);
    b.stop().await;
}

#[tokio::test]
async fn a_bad_filter_is_refused_with_its_position() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    let e = c
        .call(json!({"op":"sub","id":1,"topic":"t","sid":"s","filter":"data.amount > "}))
        .await;
    let message = assert_error(&e, Some(1), "bad_filter");
    assert_eq!(message, "expected a value after '>' at 14");
    // The sid was not taken by the failed sub.
    assert_eq!(
        c.call(json!({"op":"sub","id":2,"topic":"t","sid":"s","filter":"topic = 't'"}))
            .await,
        ok(2, json!({}))
    );
    let snap = b.broker.snapshot();
    let subs = &snap.clients[0].subscriptions;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].filter.as_deref(), Some("topic = 't'"));
    b.stop().await;
}
