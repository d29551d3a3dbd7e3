//! Topics over real sockets: fan-out, wildcards, order, once per subscription.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn pub_reaches_every_matching_subscription_once_in_order() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    for (i, pattern) in ["orders.*.eu", "orders.>", "orders.new.eu", "billing.>"]
        .iter()
        .enumerate()
    {
        let id = i as u64 + 1;
        let answer = sub
            .call(json!({"op":"sub","id":id,"topic":pattern,"sid":format!("s{id}")}))
            .await;
        assert_eq!(answer, ok(id, json!({})));
    }
    let mut publisher = b.raw().await;
    for n in 1..=3u64 {
        let answer = publisher
            .call(json!({"op":"pub","id":n,"topic":"orders.new.eu","data":{"n":n}}))
            .await;
        assert_eq!(answer, ok(n, json!({"seq": n})));
    }
    // s1, s2 and s3 match; s4 does not. Each gets every message once, in order.
    let mut got: Vec<(String, u64)> = Vec::new();
    for _ in 0..9 {
        let m = sub.recv().await;
        assert_eq!(m["ev"], "msg");
        assert_eq!(m["topic"], "orders.new.eu");
        assert_eq!(m["data"], json!({"n": m["seq"]}));
        assert!(m["time"].as_u64().unwrap() > 1_700_000_000_000);
        got.push((
            m["sid"].as_str().unwrap().to_string(),
            m["seq"].as_u64().unwrap(),
        ));
    }
    for sid in ["s1", "s2", "s3"] {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|(s, _)| s == sid)
            .map(|(_, q)| *q)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3], "sid {sid}");
    }
    sub.expect_silence(Duration::from_millis(100)).await;
    b.stop().await;
}

#[tokio::test]
async fn wildcards_match_tokens_exactly() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    sub.call(json!({"op":"sub","id":1,"topic":"a.*","sid":"star"}))
        .await;
    sub.call(json!({"op":"sub","id":2,"topic":"a.>","sid":"rest"}))
        .await;
    let mut p = b.raw().await;
    for topic in ["a", "a.b", "a.b.c", "b.a"] {
        p.send(json!({"op":"pub","topic":topic,"data":topic})).await;
    }
    p.call(json!({"op":"ping","id":9})).await;
    let mut got = Vec::new();
    while let Some(m) = sub.try_recv(Duration::from_millis(200)).await {
        got.push(format!(
            "{}:{}",
            m["sid"].as_str().unwrap(),
            m["topic"].as_str().unwrap()
        ));
    }
    got.sort();
    assert_eq!(got, vec!["rest:a.b", "rest:a.b.c", "star:a.b"]);
    b.stop().await;
}

#[tokio::test]
async fn late_subscribers_get_nothing_old_and_seq_is_per_topic() {
    let b = TestBroker::start().await;
    let mut p = b.raw().await;
    assert_eq!(
        p.call(json!({"op":"pub","id":1,"topic":"t.one","data":1}))
            .await,
        ok(1, json!({"seq":1}))
    );
    assert_eq!(
        p.call(json!({"op":"pub","id":2,"topic":"t.two","data":1}))
            .await,
        ok(2, json!({"seq":1}))
    );
    assert_eq!(
        p.call(json!({"op":"pub","id":3,"topic":"t.one","data":2}))
            .await,
        ok(3, json!({"seq":2}))
    );
    let mut sub = b.raw().await;
    sub.call(json!({"op":"sub","id":1,"topic":"t.one","sid":"s"}))
        .await;
    sub.expect_silence(Duration::from_millis(100)).await;
    p.call(json!({"op":"pub","id":4,"topic":"t.one","data":3}))
        .await;
    let m = sub.recv().await;
    assert_eq!((m["seq"].as_u64(), m["data"].as_u64()), (Some(3), Some(3)));
    b.stop().await;
}

#[tokio::test]
async fn unsub_stops_delivery_and_errors_are_exact() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    assert_eq!(
        c.call(json!({"op":"sub","id":1,"topic":"x","sid":"s"}))
            .await,
        ok(1, json!({}))
    );
    let again = c
        .call(json!({"op":"sub","id":2,"topic":"y","sid":"s"}))
        .await;
    assert_error(&again, Some(2), "already_subscribed");
    assert_eq!(
        c.call(json!({"op":"unsub","id":3,"sid":"s"})).await,
        ok(3, json!({}))
    );
    let gone = c.call(json!({"op":"unsub","id":4,"sid":"s"})).await;
    assert_error(&gone, Some(4), "not_found");
    c.call(json!({"op":"pub","id":5,"topic":"x","data":null}))
        .await;
    c.expect_silence(Duration::from_millis(100)).await;
    // The sid is free again.
    assert_eq!(
        c.call(json!({"op":"sub","id":6,"topic":"x","sid":"s"}))
            .await,
        ok(6, json!({}))
    );
    b.stop().await;
}

#[tokio::test]
async fn headers_are_delivered_single_and_multi_valued() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"sub","id":1,"topic":"h","sid":"s"}))
        .await;
    c.send(json!({"op":"pub","topic":"h","data":{"k":[1,2]},"headers":{"region":"eu","tag":["a","b"]}})).await;
    let m = c.recv().await;
    assert_eq!(
        m,
        json!({"ev":"msg","sid":"s","topic":"h","seq":1,"time":m["time"],"data":{"k":[1,2]},
               "headers":{"region":"eu","tag":["a","b"]}})
    );
    b.stop().await;
}

#[tokio::test]
async fn any_json_is_data_including_null_and_odd_spacing() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"sub","id":1,"topic":"d","sid":"s"}))
        .await;
    // Literal text, as another language's client might write it.
    let frames = [
        (r#"{"op":"pub","topic":"d","data":null}"#, json!(null)),
        (
            r#"{ "op" : "pub" , "topic" : "d" , "data" : [ 1 , "\u00e9" ] }"#,
            json!([1, "é"]),
        ),
        (
            r#"{"op":"pub","topic":"d","data":-0.5e3,"id":null}"#,
            json!(-500.0),
        ),
        (
            r#"{"op":"pub","topic":"d","data":"tab\tquote\""}"#,
            json!("tab\tquote\""),
        ),
    ];
    for (seq, (frame, data)) in frames.into_iter().enumerate() {
        c.send_text(frame.to_string()).await;
        let m = c.recv().await;
        assert_eq!(
            m,
            json!({"ev":"msg","sid":"s","topic":"d","seq":seq + 1,"time":m["time"],"data":data}),
            "{frame}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn many_publishes_in_one_frame_arrive_in_order() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    sub.call(json!({"op":"sub","id":1,"topic":"bulk","sid":"s"}))
        .await;
    let mut p = b.raw().await;
    let frame: Vec<String> = (1..=500)
        .map(|n| json!({"op":"pub","topic":"bulk","data":n}).to_string())
        .collect();
    p.send_text(frame.join("\n")).await;
    for n in 1..=500u64 {
        let m = sub.recv().await;
        assert_eq!((m["seq"].as_u64(), m["data"].as_u64()), (Some(n), Some(n)));
    }
    let snap = b.broker.snapshot();
    let t = snap.topics.iter().find(|t| t.name == "bulk").unwrap();
    assert_eq!((t.msgs_in, t.msgs_out, t.subscribers), (500, 500, 1));
    b.stop().await;
}

#[tokio::test]
async fn deliveries_of_every_size_arrive_whole_across_frames() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    sub.call(json!({"op":"sub","id":1,"topic":"sizes","sid":"s"}))
        .await;
    let mut p = b.raw().await;
    // Sizes around each WebSocket length encoding, one over the 64 KiB the writer
    // packs into a frame, and a near-1 MiB one; then a burst that must span frames.
    let sizes = [1, 100, 125, 126, 65_535, 65_536, 70_000, 1_000_000];
    for n in sizes {
        p.send(json!({"op":"pub","topic":"sizes","data":"x".repeat(n)}))
            .await;
    }
    let burst: Vec<String> = (0..3_000)
        .map(|i| {
            json!({"op":"pub","topic":"sizes","data":{"i":i,"pad":"y".repeat(100)}}).to_string()
        })
        .collect();
    p.send_text(burst.join("\n")).await;
    for (i, n) in sizes.into_iter().enumerate() {
        let m = sub.recv().await;
        assert_eq!(m["seq"], json!(i + 1));
        assert_eq!(m["data"].as_str().map(str::len), Some(n));
    }
    for i in 0..3_000u64 {
        let m = sub.recv().await;
        assert_eq!(
            (m["seq"].as_u64(), m["data"]["i"].as_u64()),
            (Some(9 + i), Some(i))
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn a_frame_of_mixed_pubs_keeps_order_seqs_filters_and_errors() {
    let b = TestBroker::start().await;
    let mut all = b.raw().await;
    all.call(json!({"op":"sub","id":1,"topic":">","sid":"all"}))
        .await;
    let mut odd = b.raw().await;
    odd.call(json!({"op":"sub","id":1,"topic":"a","sid":"odd","filter":"data.n IN (1, 3, 5)"}))
        .await;
    let mut p = b.raw().await;
    p.call(json!({"op":"seal","id":1,"topic":"shut"})).await;
    assert_eq!(
        all.recv().await,
        json!({"ev":"end","sid":"all","topic":"shut"})
    );
    // Runs of id-less pubs to one topic, broken by another topic, by a pub with an
    // id, by refused topics; each refused message gets its own error.
    let frame = [
        json!({"op":"pub","topic":"a","data":{"n":1}}),
        json!({"op":"pub","topic":"a","data":{"n":2}}),
        json!({"op":"pub","topic":"b","data":{"n":1}}),
        json!({"op":"pub","topic":"a","data":{"n":3}}),
        json!({"op":"pub","id":7,"topic":"a","data":{"n":4}}),
        json!({"op":"pub","topic":"a","data":{"n":5}}),
        json!({"op":"pub","topic":"shut","data":0}),
        json!({"op":"pub","topic":"shut","data":0}),
        json!({"op":"pub","topic":"bad name","data":0}),
        json!({"op":"pub","topic":"a","data":{"n":6},"headers":{"h":"x"}}),
    ];
    let text: Vec<String> = frame.iter().map(Value::to_string).collect();
    p.send_text(text.join("\n")).await;
    assert_eq!(p.recv().await, ok(7, json!({"seq": 4})));
    assert_error(&p.recv().await, None, "sealed");
    assert_error(&p.recv().await, None, "sealed");
    assert_error(&p.recv().await, None, "bad_name");
    let mut msgs = Vec::new();
    for _ in 0..7 {
        msgs.push(all.recv().await);
    }
    let got: Vec<(Value, Value, Value)> = msgs
        .iter()
        .map(|m| (m["topic"].clone(), m["seq"].clone(), m["data"]["n"].clone()))
        .collect();
    let want: Vec<(Value, Value, Value)> = [
        ("a", 1, 1),
        ("a", 2, 2),
        ("b", 1, 1),
        ("a", 3, 3),
        ("a", 4, 4),
        ("a", 5, 5),
        ("a", 6, 6),
    ]
    .iter()
    .map(|(t, s, n)| (json!(t), json!(s), json!(n)))
    .collect();
    assert_eq!(got, want);
    assert_eq!(msgs[6]["headers"], json!({"h":"x"}));
    assert!(msgs[..6].iter().all(|m| m.get("headers").is_none()));
    let odd_seqs: Vec<Value> = [odd.recv().await, odd.recv().await, odd.recv().await]
        .iter()
        .map(|m| m["seq"].clone())
        .collect();
    assert_eq!(odd_seqs, vec![json!(1), json!(3), json!(5)]);
    odd.expect_silence(Duration::from_millis(100)).await;
    let snap = b.broker.snapshot();
    let a = snap.topics.iter().find(|t| t.name == "a").unwrap();
    assert_eq!((a.msgs_in, a.msgs_out), (6, 9));
    b.stop().await;
}

#[tokio::test]
async fn concurrent_publishers_keep_per_topic_order() {
    let b = TestBroker::start().await;
    let mut sub = b.raw().await;
    sub.call(json!({"op":"sub","id":1,"topic":"race","sid":"s"}))
        .await;
    let mut tasks = Vec::new();
    for p in 0..4 {
        let url = b.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::connect(&url).await;
            for i in 0..250 {
                c.send(json!({"op":"pub","topic":"race","data":{"p":p,"i":i}}))
                    .await;
            }
            c.call(json!({"op":"ping","id":1})).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut last_i = [-1i64; 4];
    for seq in 1..=1000u64 {
        let m = sub.recv().await;
        assert_eq!(m["seq"].as_u64(), Some(seq), "seq order is delivery order");
        let p = m["data"]["p"].as_u64().unwrap() as usize;
        let i = m["data"]["i"].as_i64().unwrap();
        assert!(i > last_i[p], "publisher {p} order");
        last_i[p] = i;
    }
    b.stop().await;
}
