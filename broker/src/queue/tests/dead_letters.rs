//! Queue state machine: dead letters.

use super::*;

#[test]
fn the_last_attempt_nacked_goes_to_the_dead_letter_queue() {
    let q = queue_with(QueueConfig {
        max_attempts: Some(2),
        dead_letter: Some("dlq".into()),
        ..in_memory()
    });
    let w = session(1);
    consume(&q, &w, "w1", 1);
    let headers: Headers = [("k".to_string(), HeaderValue::One("v".into()))]
        .into_iter()
        .collect();
    q.enqueue(Outgoing::new(
        Payload::from_value(&json!({"n": 1})),
        Some(headers.clone()),
    ))
    .unwrap();
    q.dispatch_ready();
    let first = q.settle(&w, 1, nack(true)).unwrap();
    assert!(first.dead_letters.is_empty(), "attempt 1 of 2: requeued");
    q.dispatch_ready();
    let attempts: Vec<Value> = frames(&w).iter().map(|f| f["attempt"].clone()).collect();
    assert_eq!(attempts, vec![json!(1), json!(2)]);

    let last = q.settle(&w, 2, nack(true)).unwrap();
    assert_eq!(last.dead_letters.len(), 1);
    let letter = &last.dead_letters[0];
    assert_eq!(letter.to.as_deref(), Some("dlq"));
    assert_eq!(&*letter.from, "jobs");
    assert_eq!(letter.reason, "max_attempts");
    assert_eq!(letter.data, Payload::from_value(&json!({"n": 1})));
    assert_eq!(letter.headers.as_deref(), Some(&headers));
    assert!(
        letter.settle_source.is_none(),
        "an in-memory source keeps nothing"
    );
    assert_eq!(q.dispatch_ready().delivered, 0);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=1 acked=0 redelivered=1 dead=1"
    );
}

#[test]
fn the_last_attempt_expired_is_dropped_when_there_is_no_dead_letter_queue() {
    let q = queue_with(QueueConfig {
        max_attempts: Some(1),
        ..in_memory()
    });
    let (w, sender) = (session(1), session(2));
    consume(&q, &w, "w1", 1);
    let msg = send_waited(&q, json!("a"), &sender, 7);
    q.dispatch_ready();
    assert_eq!(frames(&w), vec![job("w1", 1, "1", 1, json!("a"))]);

    let (mut effects, next) = q.expire(Instant::now() + ACK_TIMEOUT, now_ms());
    assert_eq!(next, None);
    assert_eq!(effects.delivered, 0);
    assert_eq!(effects.dead_letters.len(), 1);
    let letter = &effects.dead_letters[0];
    assert_eq!(letter.to, None);
    assert_eq!(letter.reason, "max_attempts");
    assert_eq!(
        settlements(&effects),
        vec![(msg, Settlement::Dead("max_attempts".into()))]
    );
    effects.settle_waiters();
    assert_eq!(
        frames(&sender),
        vec![json!({
            "ev": "error", "id": 7, "code": "dead",
            "message": "message 1 is dead: max_attempts",
        })]
    );
    assert!(frames(&w).is_empty());
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=1 acked=0 redelivered=0 dead=1"
    );
}

#[test]
fn a_nack_without_requeue_is_dead_at_once_as_rejected() {
    let q = queue_with(QueueConfig {
        max_attempts: Some(5),
        dead_letter: Some("dlq".into()),
        ..in_memory()
    });
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send(&q, json!("a"));
    q.dispatch_ready();
    let effects = q.settle(&w, 1, nack(false)).unwrap();
    assert_eq!(effects.dead_letters.len(), 1);
    let letter = &effects.dead_letters[0];
    assert_eq!(letter.to.as_deref(), Some("dlq"));
    assert_eq!(letter.reason, "rejected");
    assert_eq!(letter.data, Payload::from_value(&json!("a")));
    assert_eq!(letter.headers, None);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=1 acked=0 redelivered=0 dead=1"
    );
}

#[test]
fn a_rejected_message_with_no_dead_letter_queue_is_dropped() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send(&q, json!("a"));
    q.dispatch_ready();
    let effects = q.settle(&w, 1, nack(false)).unwrap();
    assert_eq!(effects.dead_letters.len(), 1);
    assert_eq!(effects.dead_letters[0].to, None);
    assert_eq!(effects.dead_letters[0].reason, "rejected");
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=1 acked=0 redelivered=0 dead=1"
    );
}

#[test]
fn dead_letter_headers_keep_the_originals_and_say_where_and_why() {
    let original: Headers = [
        ("k".to_string(), HeaderValue::One("v".into())),
        (
            "x-dead-letter-reason".to_string(),
            HeaderValue::One("old".into()),
        ),
    ]
    .into_iter()
    .collect();
    let letter = DeadLetter {
        to: Some("dlq".into()),
        from: Arc::from("jobs"),
        reason: "rejected",
        data: Payload::from_value(&json!(1)),
        headers: Some(Arc::new(original)),
        settle_source: None,
        remote_source: None,
    };
    assert_eq!(
        dead_letter_headers(&letter),
        one_valued(&[
            ("k", "v"),
            ("x-dead-letter-queue", "jobs"),
            ("x-dead-letter-reason", "rejected"),
        ])
    );

    let bare = DeadLetter {
        headers: None,
        reason: "max_attempts",
        ..letter
    };
    assert_eq!(
        dead_letter_headers(&bare),
        one_valued(&[
            ("x-dead-letter-queue", "jobs"),
            ("x-dead-letter-reason", "max_attempts"),
        ])
    );
}

/// Headers of one value each.
fn one_valued(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), HeaderValue::One(v.to_string())))
        .collect()
}
