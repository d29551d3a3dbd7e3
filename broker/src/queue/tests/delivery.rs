//! Queue state machine: delivery order and prefetch.

use super::*;

#[test]
fn first_deliveries_follow_send_order() {
    let q = queue();
    let w = session(1);
    for n in 1..=3 {
        assert_eq!(send(&q, json!(n)), n.to_string());
    }
    consume(&q, &w, "w1", 10);
    assert!(frames(&w).is_empty(), "add_consumer alone delivers nothing");
    assert_eq!(q.dispatch_ready().delivered, 3);
    assert_eq!(
        frames(&w),
        vec![
            job("w1", 1, "1", 1, json!(1)),
            job("w1", 2, "2", 1, json!(2)),
            job("w1", 3, "3", 1, json!(3)),
        ]
    );
    assert_eq!(
        counts(&q),
        "ready=0 unacked=3 consumers=1 in=3 acked=0 redelivered=0 dead=0"
    );
}

#[test]
fn a_job_frame_carries_headers_and_marks_a_request() {
    let q = queue();
    let w = session(1);
    let headers: Headers = [
        ("region".to_string(), HeaderValue::One("eu".into())),
        (
            "tags".to_string(),
            HeaderValue::Many(vec!["a".into(), "b".into()]),
        ),
    ]
    .into_iter()
    .collect();
    q.enqueue(Outgoing {
        reply: true,
        ..Outgoing::new(Payload::from_value(&json!({"n": 1})), Some(headers))
    })
    .unwrap();
    consume(&q, &w, "w1", 1);
    q.dispatch_ready();
    assert_eq!(
        frames(&w),
        vec![json!({
            "ev": "job", "cid": "w1", "queue": "jobs", "tag": 1, "msg": "1",
            "attempt": 1, "reply": true, "data": {"n": 1},
            "headers": {"region": "eu", "tags": ["a", "b"]},
        })]
    );
}

#[test]
fn consumers_take_turns_round_robin() {
    let q = queue();
    let (a, b) = (session(1), session(2));
    consume(&q, &a, "wa", 10);
    consume(&q, &b, "wb", 10);
    for n in 1..=5 {
        send(&q, json!(n));
    }
    assert_eq!(q.dispatch_ready().delivered, 5);
    assert_eq!(
        frames(&a),
        vec![
            job("wa", 1, "1", 1, json!(1)),
            job("wa", 2, "3", 1, json!(3)),
            job("wa", 3, "5", 1, json!(5)),
        ]
    );
    assert_eq!(
        frames(&b),
        vec![
            job("wb", 1, "2", 1, json!(2)),
            job("wb", 2, "4", 1, json!(4))
        ]
    );
    assert_eq!((q.unacked_of(1, "wa"), q.unacked_of(2, "wb")), (3, 2));
}

#[test]
fn a_consumer_holds_at_most_prefetch_jobs_and_an_ack_frees_one_slot() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 2);
    for n in 1..=4 {
        send(&q, json!(n));
    }
    assert_eq!(q.dispatch_ready().delivered, 2);
    assert_eq!(
        frames(&w),
        vec![
            job("w1", 1, "1", 1, json!(1)),
            job("w1", 2, "2", 1, json!(2))
        ]
    );
    assert_eq!(q.unacked_of(1, "w1"), 2);
    assert_eq!(q.dispatch_ready().delivered, 0, "no room, nothing more");
    assert!(frames(&w).is_empty());

    let acked = q.settle(&w, 1, Settle::Ack).unwrap();
    assert_eq!(
        acked.delivered, 0,
        "settle leaves delivery to dispatch_ready"
    );
    assert_eq!(q.unacked_of(1, "w1"), 1);
    assert_eq!(q.dispatch_ready().delivered, 1);
    assert_eq!(frames(&w), vec![job("w1", 3, "3", 1, json!(3))]);
    assert_eq!(q.unacked_of(1, "w1"), 2);
    assert_eq!(
        counts(&q),
        "ready=1 unacked=2 consumers=1 in=4 acked=1 redelivered=0 dead=0"
    );
}

#[test]
fn a_consumer_without_room_is_skipped_for_one_with_room() {
    let q = queue();
    let (a, b) = (session(1), session(2));
    consume(&q, &a, "wa", 1);
    consume(&q, &b, "wb", 3);
    for n in 1..=5 {
        send(&q, json!(n));
    }
    assert_eq!(q.dispatch_ready().delivered, 4);
    assert_eq!(frames(&a), vec![job("wa", 1, "1", 1, json!(1))]);
    assert_eq!(
        frames(&b),
        vec![
            job("wb", 1, "2", 1, json!(2)),
            job("wb", 2, "3", 1, json!(3)),
            job("wb", 3, "4", 1, json!(4)),
        ]
    );
    assert_eq!(ready(&q), vec![("5".to_string(), 0)]);
}

#[test]
fn unacked_of_counts_each_consumer_apart() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    consume(&q, &w, "w2", 5);
    for n in 1..=4 {
        send(&q, json!(n));
    }
    q.dispatch_ready();
    assert_eq!(q.unacked_of(1, "w1"), 1);
    assert_eq!(q.unacked_of(1, "w2"), 3);
    assert_eq!(q.unacked_of(1, "nobody"), 0);
    assert_eq!(q.unacked_of(2, "w1"), 0, "another session's cid w1");
    // Tags are the session's: 1 went to w1, 2 to w2.
    q.settle(&w, 2, Settle::Ack).unwrap();
    assert_eq!((q.unacked_of(1, "w1"), q.unacked_of(1, "w2")), (1, 2));
}
