//! Queue state machine: redelivery, on each cause, with its attempt count.

use super::*;

#[test]
fn a_nack_with_requeue_redelivers_with_the_next_attempt() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send(&q, json!("a"));
    q.dispatch_ready();
    assert_eq!(frames(&w), vec![job("w1", 1, "1", 1, json!("a"))]);

    let effects = q.settle(&w, 1, nack(true)).unwrap();
    assert!(effects.dead_letters.is_empty());
    assert_eq!(ready(&q), vec![("1".to_string(), 1)]);
    assert_eq!(q.dispatch_ready().delivered, 1);
    assert_eq!(frames(&w), vec![job("w1", 2, "1", 2, json!("a"))]);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=1 consumers=1 in=1 acked=0 redelivered=1 dead=0"
    );
}

#[test]
fn a_passed_ack_deadline_redelivers_with_the_next_attempt() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send(&q, json!("a"));
    let before = Instant::now();
    q.dispatch_ready();
    let after = Instant::now();
    assert_eq!(frames(&w), vec![job("w1", 1, "1", 1, json!("a"))]);

    // Not yet due: nothing moves, and the next deadline is the job's.
    let (effects, next) = q.expire(before, now_ms());
    assert_eq!(effects.delivered, 0);
    let next = next.unwrap();
    assert!(before + ACK_TIMEOUT <= next && next <= after + ACK_TIMEOUT);
    assert!(frames(&w).is_empty());
    assert_eq!(q.unacked_of(1, "w1"), 1);

    // Due: the job comes back and goes out again at once, with a new deadline.
    let (effects, next) = q.expire(next, now_ms());
    assert_eq!(effects.delivered, 1);
    assert_eq!(frames(&w), vec![job("w1", 2, "1", 2, json!("a"))]);
    assert!(next.unwrap() >= after + ACK_TIMEOUT);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=1 consumers=1 in=1 acked=0 redelivered=1 dead=0"
    );
    // The old tag is gone with its delivery; the new one acks.
    assert!(q.settle(&w, 1, Settle::Ack).is_none());
    assert!(q.settle(&w, 2, Settle::Ack).is_some());
    assert_eq!(q.expire(Instant::now() + 2 * ACK_TIMEOUT, now_ms()).1, None);
}

#[test]
fn a_removed_consumer_gives_its_jobs_to_another_with_the_next_attempt() {
    let q = queue();
    let (a, b) = (session(1), session(2));
    consume(&q, &a, "wa", 2);
    send(&q, json!(1));
    send(&q, json!(2));
    q.dispatch_ready();
    assert_eq!(frames(&a).len(), 2);
    consume(&q, &b, "wb", 5);

    let effects = q.remove_consumer(&a, "wa");
    assert_eq!(effects.delivered, 2);
    assert!(frames(&a).is_empty());
    assert_eq!(
        frames(&b),
        vec![
            job("wb", 1, "1", 2, json!(1)),
            job("wb", 2, "2", 2, json!(2))
        ]
    );
    assert_eq!(
        counts(&q),
        "ready=0 unacked=2 consumers=1 in=2 acked=0 redelivered=2 dead=0"
    );
    assert!(
        q.settle(&a, 1, Settle::Ack).is_none(),
        "a's tags went with it"
    );
}

#[test]
fn a_removed_last_consumer_leaves_its_jobs_ready_with_their_attempts() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 5);
    for n in 1..=3 {
        send(&q, json!(n));
    }
    q.dispatch_ready();
    let effects = q.remove_consumer(&w, "w1");
    assert_eq!(effects.delivered, 0);
    assert_eq!(
        ready(&q),
        vec![
            ("1".to_string(), 1),
            ("2".to_string(), 1),
            ("3".to_string(), 1)
        ]
    );
    assert_eq!(
        counts(&q),
        "ready=3 unacked=0 consumers=0 in=3 acked=0 redelivered=0 dead=0"
    );
}

#[test]
fn requeue_msg_puts_an_in_flight_job_back_and_redelivers_it() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send(&q, json!("a"));
    send(&q, json!("b"));
    q.dispatch_ready();
    assert_eq!(frames(&w), vec![job("w1", 1, "1", 1, json!("a"))]);

    let effects = q.requeue_msg("1").unwrap();
    assert_eq!(effects.delivered, 1);
    // Back in its place, ahead of "b".
    assert_eq!(frames(&w), vec![job("w1", 2, "1", 2, json!("a"))]);
    assert_eq!(ready(&q), vec![("2".to_string(), 0)]);

    let err = q.requeue_msg("2").err().unwrap();
    assert_eq!(err.code, ErrorCode::NotFound, "2 is ready, not in flight");
    let err = q.requeue_msg("99").err().unwrap();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(
        counts(&q),
        "ready=1 unacked=1 consumers=1 in=2 acked=0 redelivered=1 dead=0"
    );
}

#[test]
fn attempts_count_every_redelivery_whatever_its_cause() {
    let q = queue();
    let (a, b) = (session(1), session(2));
    consume(&q, &a, "wa", 1);
    send(&q, json!("x"));
    q.dispatch_ready();
    assert_eq!(frames(&a), vec![job("wa", 1, "1", 1, json!("x"))]);

    q.settle(&a, 1, nack(true)).unwrap();
    q.dispatch_ready();
    assert_eq!(frames(&a), vec![job("wa", 2, "1", 2, json!("x"))]);

    q.expire(Instant::now() + ACK_TIMEOUT, now_ms());
    assert_eq!(frames(&a), vec![job("wa", 3, "1", 3, json!("x"))]);

    q.requeue_msg("1").unwrap();
    assert_eq!(frames(&a), vec![job("wa", 4, "1", 4, json!("x"))]);

    consume(&q, &b, "wb", 1);
    q.remove_consumer(&a, "wa");
    assert_eq!(frames(&b), vec![job("wb", 1, "1", 5, json!("x"))]);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=1 consumers=1 in=1 acked=0 redelivered=4 dead=0"
    );
}

#[test]
fn a_returned_message_takes_back_its_place_in_send_order() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 2);
    for n in 1..=4 {
        send(&q, json!(n));
    }
    q.dispatch_ready();
    assert_eq!(frames(&w).len(), 2);
    // 2 then 1 come back, each before 3 and 4 and in id order.
    q.settle(&w, 2, nack(true)).unwrap();
    assert_eq!(
        ready(&q),
        vec![
            ("2".to_string(), 1),
            ("3".to_string(), 0),
            ("4".to_string(), 0)
        ]
    );
    q.settle(&w, 1, nack(true)).unwrap();
    assert_eq!(
        ready(&q),
        vec![
            ("1".to_string(), 1),
            ("2".to_string(), 1),
            ("3".to_string(), 0),
            ("4".to_string(), 0),
        ]
    );
    q.dispatch_ready();
    assert_eq!(
        frames(&w),
        vec![
            job("w1", 3, "1", 2, json!(1)),
            job("w1", 4, "2", 2, json!(2))
        ]
    );
}
