//! Unit tests of the queue state machine: no sockets and no runtime. A consumer is
//! a real [`Session`]; what it was delivered is read back from its outbound buffer
//! as whole JSON frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::activity::Activity;
use crate::outbound::Batch;
use crate::protocol::{HeaderValue, RequestId};

const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn session(id: u64) -> Arc<Session> {
    let addr = "127.0.0.1:7401".parse().unwrap();
    Arc::new(Session::new(
        id,
        addr,
        1 << 20,
        Arc::new(Activity::default()),
    ))
}

/// A queue `jobs` with no store, set up by `config` (start from [`in_memory`]).
fn queue_with(config: QueueConfig) -> Arc<Queue> {
    Queue::new("jobs", config, None)
}

/// Not durable, with a 10 s ack deadline; the rest as `declare`'s defaults.
fn in_memory() -> QueueConfig {
    QueueConfig {
        durable: false,
        ack_timeout: ACK_TIMEOUT,
        ..QueueConfig::default()
    }
}

fn queue() -> Arc<Queue> {
    queue_with(in_memory())
}

/// Sends `data` (no headers, nobody waiting); returns the message id.
fn send(q: &Arc<Queue>, data: Value) -> String {
    let (msg, ticket) = q
        .enqueue(Payload::from_value(&data), None, None, false)
        .unwrap();
    assert!(ticket.is_none(), "an in-memory queue gives no ticket");
    msg.to_string()
}

/// Sends `data` with someone waiting for its outcome (a `confirm: "done"` send).
fn send_waited(q: &Arc<Queue>, data: Value, sender: &Arc<Session>, id: u64) -> String {
    let waiter = Waiter::new(sender, RequestId::from_value(&json!(id)).unwrap(), false);
    let (msg, _) = q
        .enqueue(Payload::from_value(&data), None, Some(waiter), false)
        .unwrap();
    msg.to_string()
}

fn consume(q: &Arc<Queue>, s: &Arc<Session>, cid: &str, prefetch: u32) {
    q.add_consumer(s, cid, prefetch).unwrap();
}

/// Every frame the session was sent since the last call, parsed.
fn frames(s: &Session) -> Vec<Value> {
    let mut batch = Batch::default();
    s.outbound.take(&mut batch);
    let parsed = batch
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    s.outbound.written(&batch);
    parsed
}

/// The `job` frame a consumer gets for a message sent without headers.
fn job(cid: &str, tag: u64, msg: &str, attempt: u32, data: Value) -> Value {
    json!({
        "ev": "job", "cid": cid, "queue": "jobs", "tag": tag,
        "msg": msg, "attempt": attempt, "data": data,
    })
}

/// The ready messages as (id, attempts so far).
fn ready(q: &Queue) -> Vec<(String, u32)> {
    q.peek(usize::MAX)
        .into_iter()
        .map(|m| (m.msg.unwrap(), m.attempt))
        .collect()
}

/// What the waiters of these effects are to be told, as (msg, outcome).
fn settlements(effects: &Effects) -> Vec<(String, Settlement)> {
    effects
        .settle
        .iter()
        .map(|(_, msg, how)| (msg.to_string(), how.clone()))
        .collect()
}

/// The queue's stats that scenarios change, in one line to compare whole.
fn counts(q: &Queue) -> String {
    let s = q.stats();
    format!(
        "ready={} unacked={} consumers={} in={} acked={} redelivered={} dead={}",
        s.ready, s.unacked, s.consumers, s.msgs_in, s.acked, s.redelivered, s.dead
    )
}

fn nack(requeue: bool) -> Settle {
    Settle::Nack { requeue }
}

// Delivery order and prefetch.

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
    q.enqueue(
        Payload::from_value(&json!({"n": 1})),
        Some(Arc::new(headers)),
        None,
        true,
    )
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

// Redelivery, on each cause, with its attempt count.

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
    let (effects, next) = q.expire(before);
    assert_eq!(effects.delivered, 0);
    let next = next.unwrap();
    assert!(before + ACK_TIMEOUT <= next && next <= after + ACK_TIMEOUT);
    assert!(frames(&w).is_empty());
    assert_eq!(q.unacked_of(1, "w1"), 1);

    // Due: the job comes back and goes out again at once, with a new deadline.
    let (effects, next) = q.expire(next);
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
    assert_eq!(q.expire(Instant::now() + 2 * ACK_TIMEOUT).1, None);
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

    q.expire(Instant::now() + ACK_TIMEOUT);
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

// Dead letters.

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
    q.enqueue(
        Payload::from_value(&json!({"n": 1})),
        Some(Arc::new(headers.clone())),
        None,
        false,
    )
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

    let (mut effects, next) = q.expire(Instant::now() + ACK_TIMEOUT);
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
    };
    let expected: Headers = [
        ("k".to_string(), HeaderValue::One("v".into())),
        (
            "x-dead-letter-queue".to_string(),
            HeaderValue::One("jobs".into()),
        ),
        (
            "x-dead-letter-reason".to_string(),
            HeaderValue::One("rejected".into()),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(dead_letter_headers(&letter), expected);

    let bare = DeadLetter {
        headers: None,
        reason: "max_attempts",
        ..letter
    };
    let expected: Headers = [
        (
            "x-dead-letter-queue".to_string(),
            HeaderValue::One("jobs".into()),
        ),
        (
            "x-dead-letter-reason".to_string(),
            HeaderValue::One("max_attempts".into()),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(dead_letter_headers(&bare), expected);
}

// Settlement.

#[test]
fn ack_and_reply_answer_the_waiting_sender() {
    let q = queue();
    let (w, sender) = (session(1), session(2));
    consume(&q, &w, "w1", 2);
    let m1 = send_waited(&q, json!("a"), &sender, 1);
    let m2 = send_waited(&q, json!("b"), &sender, 2);
    q.dispatch_ready();

    let mut acked = q.settle(&w, 1, Settle::Ack).unwrap();
    assert_eq!(settlements(&acked), vec![(m1, Settlement::Acked)]);
    let answer = Payload::from_value(&json!({"ok": true}));
    let mut replied = q.settle(&w, 2, Settle::Reply(answer.clone())).unwrap();
    assert_eq!(
        settlements(&replied),
        vec![(m2, Settlement::Replied(answer))]
    );
    acked.settle_waiters();
    replied.settle_waiters();
    assert_eq!(
        frames(&sender),
        vec![
            json!({"ev": "ok", "id": 1, "msg": "1"}),
            json!({"ev": "ok", "id": 2, "msg": "2", "data": {"ok": true}}),
        ]
    );
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=2 acked=2 redelivered=0 dead=0"
    );
}

#[test]
fn settling_an_unknown_settled_or_foreign_tag_returns_none() {
    let q = queue();
    let (a, b) = (session(1), session(2));
    consume(&q, &a, "wa", 1);
    send(&q, json!("a"));
    q.dispatch_ready();
    assert_eq!(frames(&a), vec![job("wa", 1, "1", 1, json!("a"))]);

    assert!(q.settle(&a, 42, Settle::Ack).is_none(), "unknown tag");
    // Tag 1 is a's; b has no job with tag 1 here.
    assert!(
        q.settle(&b, 1, Settle::Ack).is_none(),
        "another session's tag"
    );
    assert!(q.settle(&b, 1, nack(false)).is_none());
    assert_eq!(
        counts(&q),
        "ready=0 unacked=1 consumers=1 in=1 acked=0 redelivered=0 dead=0"
    );
    assert!(q.settle(&a, 1, Settle::Ack).is_some());
    assert!(q.settle(&a, 1, Settle::Ack).is_none(), "already settled");
    assert!(q.settle(&a, 1, nack(true)).is_none(), "already settled");
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=1 acked=1 redelivered=0 dead=0"
    );
}

// Purge and delete.

#[test]
fn purge_removes_only_ready_messages_and_tells_their_waiters() {
    let q = queue();
    let (w, sender) = (session(1), session(2));
    consume(&q, &w, "w1", 1);
    send(&q, json!("in flight"));
    let m2 = send_waited(&q, json!("ready"), &sender, 9);
    send(&q, json!("ready too"));
    q.dispatch_ready();
    assert_eq!(frames(&w), vec![job("w1", 1, "1", 1, json!("in flight"))]);

    let (purged, mut effects) = q.purge();
    assert_eq!(purged, 2);
    assert_eq!(
        settlements(&effects),
        vec![(m2, Settlement::Dead("purged".into()))]
    );
    effects.settle_waiters();
    assert_eq!(
        frames(&sender),
        vec![json!({
            "ev": "error", "id": 9, "code": "dead",
            "message": "message 2 is dead: purged",
        })]
    );
    assert!(ready(&q).is_empty());
    assert_eq!(
        counts(&q),
        "ready=0 unacked=1 consumers=1 in=3 acked=0 redelivered=0 dead=0"
    );
    // The in-flight job is untouched: it can still be acked.
    assert!(q.settle(&w, 1, Settle::Ack).is_some());
    assert_eq!(q.dispatch_ready().delivered, 0);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=3 acked=1 redelivered=0 dead=0"
    );
}

#[test]
fn a_purged_queue_takes_new_messages_in_send_order() {
    let q = queue();
    send(&q, json!(1));
    assert_eq!(q.purge().0, 1);
    assert_eq!(q.purge().0, 0);
    assert_eq!(send(&q, json!(2)), "2", "ids are never reused");
    assert_eq!(ready(&q), vec![("2".to_string(), 0)]);
}

#[test]
fn delete_cancels_every_consumer_tells_every_waiter_and_refuses_what_follows() {
    let q = queue();
    let (a, b, sender) = (session(1), session(2), session(3));
    consume(&q, &a, "wa", 1);
    consume(&q, &b, "wb", 1);
    consume(&q, &b, "wb2", 1);
    let m1 = send_waited(&q, json!("in flight"), &sender, 1);
    q.dispatch_ready();
    assert_eq!(frames(&a).len(), 1);
    let m2 = send_waited(&q, json!("in flight too"), &sender, 2);
    let m3 = send_waited(&q, json!("waits"), &sender, 3);
    // Both of b's consumers are full after this: wb gets m2, wb2 gets m3.
    q.dispatch_ready();
    let m4 = send_waited(&q, json!("ready"), &sender, 4);

    let mut effects = q.delete();
    let cancelled: Vec<(u64, String)> = effects
        .cancelled
        .iter()
        .map(|(s, cid)| (s.id, cid.to_string()))
        .collect();
    assert_eq!(
        cancelled,
        vec![(1, "wa".into()), (2, "wb".into()), (2, "wb2".into())]
    );
    let mut told = settlements(&effects);
    told.sort_by(|x, y| x.0.cmp(&y.0));
    let dead = Settlement::Dead("queue deleted".into());
    assert_eq!(
        told,
        vec![
            (m1, dead.clone()),
            (m2, dead.clone()),
            (m3, dead.clone()),
            (m4, dead)
        ]
    );
    effects.settle_waiters();
    assert_eq!(frames(&sender).len(), 4);
    assert!(effects.dead_letters.is_empty());

    assert!(q.is_deleted());
    let err = q
        .enqueue(Payload::from_value(&json!(5)), None, None, false)
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(
        q.add_consumer(&a, "again", 1).err().unwrap().code,
        ErrorCode::NotFound
    );
    assert!(q.settle(&a, 1, Settle::Ack).is_none(), "its jobs are gone");
    assert_eq!(q.dispatch_ready().delivered, 0);
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=0 in=4 acked=0 redelivered=0 dead=0"
    );
}

// Limits and consumers that went away.

#[test]
fn max_len_refuses_a_send_with_limit_while_that_many_are_ready() {
    let q = queue_with(QueueConfig {
        max_len: Some(2),
        ..in_memory()
    });
    send(&q, json!(1));
    send(&q, json!(2));
    let err = q
        .enqueue(Payload::from_value(&json!(3)), None, None, false)
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::Limit);
    assert_eq!(
        counts(&q),
        "ready=2 unacked=0 consumers=0 in=2 acked=0 redelivered=0 dead=0"
    );
    // In-flight messages do not count toward max_len.
    let w = session(1);
    consume(&q, &w, "w1", 1);
    q.dispatch_ready();
    assert_eq!(send(&q, json!(3)), "3");
    assert_eq!(ready(&q), vec![("2".to_string(), 0), ("3".to_string(), 0)]);
}

#[test]
fn a_consumer_whose_outbound_is_closed_gets_nothing_and_is_dropped() {
    let q = queue();
    let (gone, live) = (session(1), session(2));
    consume(&q, &gone, "wg", 5);
    send(&q, json!(1));
    send(&q, json!(2));
    gone.outbound.close();
    let effects = q.dispatch_ready();
    assert_eq!(effects.delivered, 0);
    assert!(frames(&gone).is_empty());
    assert_eq!(ready(&q), vec![("1".to_string(), 0), ("2".to_string(), 0)]);
    assert_eq!(
        counts(&q),
        "ready=2 unacked=0 consumers=0 in=2 acked=0 redelivered=0 dead=0"
    );

    consume(&q, &live, "wl", 5);
    q.dispatch_ready();
    assert_eq!(
        frames(&live),
        vec![
            job("wl", 1, "1", 1, json!(1)),
            job("wl", 2, "2", 1, json!(2))
        ]
    );
}

#[test]
fn a_closed_consumer_leaves_a_redelivery_its_place_and_attempt_count() {
    let q = queue();
    let (a, gone, live) = (session(1), session(2), session(3));
    consume(&q, &a, "wa", 1);
    send(&q, json!(1));
    send(&q, json!(2));
    q.dispatch_ready();
    assert_eq!(frames(&a), vec![job("wa", 1, "1", 1, json!(1))]);
    q.remove_consumer(&a, "wa");
    assert_eq!(ready(&q), vec![("1".to_string(), 1), ("2".to_string(), 0)]);

    consume(&q, &gone, "wg", 1);
    gone.outbound.close();
    consume(&q, &live, "wl", 1);
    // gone's turn comes first: refused, dropped, and live gets message 1 as attempt 2.
    assert_eq!(q.dispatch_ready().delivered, 1);
    assert_eq!(frames(&live), vec![job("wl", 1, "1", 2, json!(1))]);
    assert_eq!(ready(&q), vec![("2".to_string(), 0)]);
    assert_eq!(
        counts(&q),
        "ready=1 unacked=1 consumers=1 in=2 acked=0 redelivered=1 dead=0"
    );
}

#[test]
fn inflight_stats_list_each_job_with_its_consumer_and_attempt() {
    let q = queue();
    let w = session(4);
    consume(&q, &w, "w1", 2);
    send(&q, json!(1));
    send(&q, json!(2));
    q.dispatch_ready();
    q.settle(&w, 2, nack(true)).unwrap();
    q.dispatch_ready();
    let mut out = Vec::new();
    q.inflight_stats(Instant::now(), &mut out);
    let mut seen: Vec<(u64, String, String, String, u32)> = out
        .into_iter()
        .map(|f| (f.tag, f.msg, f.client, f.cid, f.attempt))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (1, "1".into(), "c4".into(), "w1".into(), 1),
            (3, "2".into(), "c4".into(), "w1".into(), 2),
        ]
    );
}

/// `oldest_ready_ms` reads the first ready message only: it must still be the
/// oldest after an older message comes back from a consumer.
#[test]
fn the_oldest_ready_message_is_the_first_even_after_a_redelivery() {
    let q = queue();
    let w = session(1);
    send(&q, json!("old"));
    consume(&q, &w, "w", 1);
    q.dispatch_ready();
    std::thread::sleep(Duration::from_millis(50));
    send(&q, json!("new"));
    assert!(q.stats().oldest_ready_ms.unwrap() < 50);
    q.settle(&w, 1, nack(true)).unwrap();
    assert_eq!(ready(&q), vec![("1".into(), 1), ("2".into(), 0)]);
    assert!(q.stats().oldest_ready_ms.unwrap() >= 50);
}
