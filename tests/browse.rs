//! Browsing messages over real sockets: `peek` paging through a whole queue or
//! retained topic with its `after` cursor, selecting with `filter` and `search`
//! evaluated by the broker, `tail` with the same, and `move` of one message by id.

mod common;

use common::*;
use serde_json::{json, Value};

/// Fills the in-memory queue `q` with `count` messages, n = 1..=count: data
/// `{"n":n}`, header `trace` = `t<n>`; sent in frames of 500 without ids.
async fn queue_of(b: &TestBroker, count: u64) -> Raw {
    let mut c = b.raw().await;
    c.call(json!({"op":"declare","id":0,"queue":"q","durable":false}))
        .await;
    let mut n = 1;
    while n <= count {
        let frame: Vec<String> = (n..=count.min(n + 499))
            .map(|i| {
                json!({"op":"send","queue":"q","data":{"n":i},"headers":{"trace":format!("t{i}")}})
                    .to_string()
            })
            .collect();
        c.send_text(frame.join("\n")).await;
        n += 500;
    }
    eventually(&b.broker, "the queue filled", |s| {
        s.queues.iter().any(|q| q.name == "q" && q.ready == count)
    })
    .await;
    c
}

/// The message ids of a peek's answer.
fn ids(answer: &Value) -> Vec<u64> {
    answer["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {answer}"))
        .iter()
        .map(|m| m["msg"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The answer with each message's `time` checked and taken out, to compare whole.
fn timeless(mut answer: Value) -> Value {
    for m in answer["messages"].as_array_mut().into_iter().flatten() {
        assert!(m["time"].as_u64().unwrap() > 0, "a time in {m}");
        m.as_object_mut().unwrap().remove("time");
    }
    answer
}

#[tokio::test]
async fn peek_pages_through_a_whole_queue_once_in_order() {
    let b = TestBroker::start().await;
    let mut c = queue_of(&b, 2500).await;
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    let mut pages = Vec::new();
    for id in 1..=10 {
        let mut frame = json!({"op":"peek","id":id,"queue":"q","n":1000});
        if let Some(a) = &after {
            frame["after"] = a.clone();
        }
        let answer = c.call(frame).await;
        assert_eq!(answer["ev"], "ok", "{answer}");
        seen.extend(ids(&answer));
        pages.push((ids(&answer).len(), answer.get("next").cloned()));
        match answer.get("next") {
            Some(next) => after = Some(next.clone()),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            (1000, Some(json!(1000))),
            (1000, Some(json!(2000))),
            (500, None)
        ]
    );
    assert_eq!(seen, (1..=2500).collect::<Vec<u64>>());
    // Nothing was consumed; a message id as a string is a cursor too.
    let answer = c
        .call(json!({"op":"peek","id":20,"queue":"q","n":2,"after":"2498"}))
        .await;
    assert_eq!(
        timeless(answer),
        ok(
            20,
            json!({"messages":[
                {"msg":"2499","attempt":0,"data":{"n":2499},"headers":{"trace":"t2499"}},
                {"msg":"2500","attempt":0,"data":{"n":2500},"headers":{"trace":"t2500"}},
            ]})
        )
    );
    // Past the end: nothing, and no `next`.
    let answer = c
        .call(json!({"op":"peek","id":21,"queue":"q","after":2500}))
        .await;
    assert_eq!(answer, ok(21, json!({"messages":[]})));
    b.stop().await;
}

#[tokio::test]
async fn peek_filter_and_search_select_exactly_the_matching_messages() {
    let b = TestBroker::start().await;
    let mut c = queue_of(&b, 2500).await;
    // A header, as `sub` filters name it.
    let answer = c
        .call(json!({"op":"peek","id":1,"queue":"q","filter":"trace = 't7'"}))
        .await;
    assert_eq!(
        timeless(answer),
        ok(
            1,
            json!({"messages":[{"msg":"7","attempt":0,"data":{"n":7},"headers":{"trace":"t7"}}]})
        )
    );
    // A data path; `n` matches a page, `next` goes on after the last one.
    let filter = "data.n IN (5, 1500, 2400) OR data.n > 2498";
    let answer = c
        .call(json!({"op":"peek","id":2,"queue":"q","n":2,"filter":filter}))
        .await;
    assert_eq!(
        (ids(&answer), &answer["next"]),
        (vec![5, 1500], &json!(1500))
    );
    let answer = c
        .call(json!({"op":"peek","id":3,"queue":"q","n":2,"filter":filter,"after":1500}))
        .await;
    assert_eq!(
        (ids(&answer), &answer["next"]),
        (vec![2400, 2499], &json!(2499))
    );
    let answer = c
        .call(json!({"op":"peek","id":4,"queue":"q","n":2,"filter":filter,"after":2499}))
        .await;
    assert_eq!((ids(&answer), answer.get("next")), (vec![2500], None));

    // A substring of the data's compact JSON, or of the headers'.
    let answer = c
        .call(json!({"op":"peek","id":5,"queue":"q","n":100,"search":"\"n\":25"}))
        .await;
    let mut want = vec![25];
    want.extend(250..=259);
    want.push(2500);
    assert_eq!((ids(&answer), answer.get("next")), (want, None));
    let answer = c
        .call(json!({"op":"peek","id":6,"queue":"q","search":"\"t123\""}))
        .await;
    assert_eq!(ids(&answer), vec![123]);
    // Both: the filter and the search hold.
    let answer = c
        .call(json!({"op":"peek","id":7,"queue":"q","search":"\"t12","filter":"data.n < 125"}))
        .await;
    assert_eq!(ids(&answer), vec![12, 120, 121, 122, 123, 124]);
    let answer = c
        .call(json!({"op":"peek","id":8,"queue":"q","search":"nowhere"}))
        .await;
    assert_eq!(answer, ok(8, json!({"messages":[]})));

    // A bad filter is refused with the parser's message, a bad cursor too.
    let e = c
        .call(json!({"op":"peek","id":9,"queue":"q","filter":"n ="}))
        .await;
    assert_eq!(
        assert_error(&e, Some(9), "bad_filter"),
        "expected a value after '=' at 3"
    );
    for (id, after) in [(10, json!("x")), (11, json!(-1)), (12, json!({}))] {
        let e = c
            .call(json!({"op":"peek","id":id,"queue":"q","after":after}))
            .await;
        assert_eq!(
            assert_error(&e, Some(id), "bad_frame"),
            "field `after` must be a non-negative integer (a `next`, a seq or a message id)"
        );
    }
    let e = c
        .call(json!({"op":"peek","id":13,"queue":"q","search":5}))
        .await;
    assert_eq!(
        assert_error(&e, Some(13), "bad_frame"),
        "field `search` must be a string"
    );
    b.stop().await;
}

/// One peek looks at no more than 10,000 messages: a query that matches
/// little answers what it found so far and a `next` to go on from.
#[tokio::test]
async fn a_peek_scans_at_most_ten_thousand_messages() {
    let b = TestBroker::start().await;
    let mut c = queue_of(&b, 12_000).await;
    let answer = c
        .call(json!({"op":"peek","id":1,"queue":"q","filter":"data.n > 11999"}))
        .await;
    assert_eq!(answer, ok(1, json!({"messages":[],"next":10000})));
    let answer = c
        .call(json!({"op":"peek","id":2,"queue":"q","filter":"data.n > 11999","after":10000}))
        .await;
    assert_eq!((ids(&answer), answer.get("next")), (vec![12000], None));
    b.stop().await;
}

#[tokio::test]
async fn peek_pages_a_retained_topic_by_seq() {
    let b = TestBroker::start().await;
    let mut c = b.raw().await;
    c.call(json!({"op":"declare","id":1,"topic":"t","retain":{"max_messages":1000}}))
        .await;
    for n in 1..=25 {
        let answer = c
            .call(json!({"op":"pub","id":100 + n,"topic":"t","data":{"n":n},"headers":{"k":format!("v{n}")}}))
            .await;
        assert_eq!(answer["ev"], "ok");
    }
    let seqs = |answer: &Value| -> Vec<u64> {
        answer["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect()
    };
    let mut pages = Vec::new();
    let mut after = json!(0);
    for id in 2..10 {
        let answer = c
            .call(json!({"op":"peek","id":id,"topic":"t","after":after}))
            .await;
        pages.push((seqs(&answer), answer.get("next").cloned()));
        match answer.get("next") {
            Some(next) => after = next.clone(),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            ((1..=10).collect(), Some(json!(10))),
            ((11..=20).collect(), Some(json!(20))),
            ((21..=25).collect(), None),
        ]
    );
    // Without a cursor or a query: the last `n`, as before.
    let answer = c.call(json!({"op":"peek","id":20,"topic":"t","n":3})).await;
    assert_eq!(
        (seqs(&answer), answer.get("next")),
        (vec![23, 24, 25], None)
    );
    // With a query and no cursor: from the first.
    let answer = c
        .call(json!({"op":"peek","id":21,"topic":"t","n":2,"filter":"data.n > 20 OR k = 'v3'"}))
        .await;
    assert_eq!((seqs(&answer), &answer["next"]), (vec![3, 21], &json!(21)));
    let answer = c
        .call(json!({"op":"peek","id":22,"topic":"t","n":1,"search":"\"v7\""}))
        .await;
    assert_eq!(
        timeless(answer),
        ok(
            22,
            json!({"messages":[{"seq":7,"attempt":0,"data":{"n":7},"headers":{"k":"v7"}}],"next":7})
        )
    );
    let e = c
        .call(json!({"op":"peek","id":23,"topic":"t","filter":"("}))
        .await;
    assert_error(&e, Some(23), "bad_filter");
    b.stop().await;
}

#[tokio::test]
async fn tail_passes_only_what_its_filter_and_search_select() {
    let b = TestBroker::start().await;
    let mut op = b.raw().await;
    assert_eq!(
        op.call(json!({"op":"tail","id":1,"topic":"orders.*","filter":"data.total > 100"}))
            .await,
        ok(1, json!({}))
    );
    let mut p = b.raw().await;
    for (id, total) in [(1, 50), (2, 150), (3, 99), (4, 101)] {
        p.call(json!({"op":"pub","id":id,"topic":"orders.eu","data":{"total":total}}))
            .await;
    }
    assert_eq!(op.recv_ev("tail").await["data"], json!({"total":150}));
    assert_eq!(op.recv_ev("tail").await["data"], json!({"total":101}));
    // A second tail replaces the first: now by substring, of data or headers.
    assert_eq!(
        op.call(json!({"op":"tail","id":2,"topic":"orders.*","search":"abc"}))
            .await,
        ok(2, json!({}))
    );
    p.call(json!({"op":"pub","id":5,"topic":"orders.eu","data":{"total":500}}))
        .await;
    p.call(json!({"op":"pub","id":6,"topic":"orders.eu","data":1,"headers":{"trace":"xabcx"}}))
        .await;
    p.call(json!({"op":"pub","id":7,"topic":"orders.us","data":"abc"}))
        .await;
    let got = op.recv_ev("tail").await;
    assert_eq!(
        (&got["data"], &got["headers"]),
        (&json!(1), &json!({"trace":"xabcx"}))
    );
    assert_eq!(op.recv_ev("tail").await["data"], json!("abc"));
    op.expect_silence(std::time::Duration::from_millis(300))
        .await;
    // A bad filter is refused and leaves the open tail as it was.
    let e = op
        .call(json!({"op":"tail","id":3,"topic":"orders.*","filter":"total >"}))
        .await;
    assert_eq!(
        assert_error(&e, Some(3), "bad_filter"),
        "expected a value after '>' at 7"
    );
    p.call(json!({"op":"pub","id":8,"topic":"orders.eu","data":"abcd"}))
        .await;
    assert_eq!(op.recv_ev("tail").await["data"], json!("abcd"));
    b.stop().await;
}

#[tokio::test]
async fn move_takes_one_message_by_id() {
    let b = TestBroker::start().await;
    let mut c = queue_of(&b, 3).await;
    assert_eq!(
        c.call(json!({"op":"move","id":1,"from":"q","to":"r","msg":"2"}))
            .await,
        ok(1, json!({"moved":1}))
    );
    let answer = c.call(json!({"op":"peek","id":2,"queue":"r"})).await;
    assert_eq!(
        timeless(answer),
        ok(
            2,
            json!({"messages":[{"msg":"1","attempt":0,"data":{"n":2},"headers":{"trace":"t2","x-moved-from":"q"}}]})
        )
    );
    assert_eq!(
        ids(&c.call(json!({"op":"peek","id":3,"queue":"q"})).await),
        vec![1, 3]
    );
    let e = c
        .call(json!({"op":"move","id":4,"from":"q","to":"r","msg":"2"}))
        .await;
    assert_eq!(
        assert_error(&e, Some(4), "not_found"),
        "no ready message `2` in `q` (in flight, gone, or not matching)"
    );
    b.stop().await;
}

/// A page cut to its byte bound goes on from its last message: paging a queue
/// of large messages still gets each once, in order.
#[tokio::test]
async fn a_truncated_page_goes_on_from_its_last_message() {
    let b = TestBroker::with(switchyard_broker::Config {
        max_pending: 4096,
        ..switchyard_broker::Config::default()
    })
    .await;
    let mut c = b.raw().await;
    c.call(json!({"op":"declare","id":0,"queue":"big","durable":false}))
        .await;
    let data = "x".repeat(700);
    for i in 1..=10u64 {
        c.call(json!({"op":"send","id":i,"queue":"big","data":data}))
            .await;
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut truncated = 0;
    for id in 20..40 {
        let mut frame = json!({"op":"peek","id":id,"queue":"big","n":10});
        if let Some(a) = after {
            frame["after"] = json!(a);
        }
        let answer = c.call(frame).await;
        let got = ids(&answer);
        assert!(!got.is_empty(), "{answer}");
        if answer.get("truncated").is_some() {
            truncated += 1;
            assert_eq!(answer["next"], json!(got.last().unwrap()), "{answer}");
        }
        seen.extend(got);
        match answer["next"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    assert!(truncated > 0, "the bound cut some page");
    b.stop().await;
}
