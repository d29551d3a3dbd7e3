//! Queue state machine: messages with a time to live.

use super::*;

/// Sends `data` with a time to live of `ttl_ms`, maybe with someone waiting for it.
fn send_ttl(q: &Arc<Queue>, data: Value, ttl_ms: u64, waiter: Option<Arc<Waiter>>) -> String {
    let (msg, _) = q
        .enqueue(Outgoing {
            ttl_ms: Some(ttl_ms),
            waiter,
            ..Outgoing::new(Payload::from_value(&data), None)
        })
        .unwrap();
    msg.to_string()
}

/// When the queue's timer must look again, in milliseconds from `now`.
fn wake_in_ms(next: Option<Instant>, now: Instant) -> Option<u128> {
    next.map(|at| at.saturating_duration_since(now).as_millis())
}

#[test]
fn a_message_nobody_takes_in_its_time_to_live_is_dead_lettered_as_expired() {
    let q = queue_with(QueueConfig {
        dead_letter: Some("dlq".into()),
        ..in_memory()
    });
    let sender = session(2);
    let waiter = Waiter::new(&sender, RequestId::from_value(&json!(7)).unwrap(), false);
    let sent = now_ms();
    let msg = send_ttl(&q, json!("late"), 60_000, Some(waiter));
    send(&q, json!("no ttl"));
    let expires = q.peek(1, None, &Query::default()).0[0].expires.unwrap();
    assert!((sent + 60_000..=now_ms() + 60_000).contains(&expires));

    // Before its time: it stays, and the timer is to look again when it is due.
    let now = Instant::now();
    let (effects, next) = q.expire(now, expires - 1);
    assert!(effects.dead_letters.is_empty());
    assert_eq!(wake_in_ms(next, now), Some(1));
    assert_eq!(ready(&q), vec![("1".into(), 0), ("2".into(), 0)]);

    let (mut effects, next) = q.expire(Instant::now(), expires);
    assert_eq!(next, None, "nothing else expires and nothing is in flight");
    assert_eq!(effects.dead_letters.len(), 1);
    let letter = &effects.dead_letters[0];
    assert_eq!(
        (letter.to.as_deref(), letter.reason),
        (Some("dlq"), "expired")
    );
    assert_eq!(letter.data, Payload::from_value(&json!("late")));
    assert_eq!(
        settlements(&effects),
        vec![(msg, Settlement::Dead("expired".into()))]
    );
    effects.settle_waiters();
    assert_eq!(
        frames(&sender),
        vec![json!({
            "ev": "error", "id": 7, "code": "dead",
            "message": "message 1 is dead: expired",
        })]
    );
    assert_eq!(ready(&q), vec![("2".into(), 0)]);
    assert_eq!(
        counts(&q),
        "ready=1 unacked=0 consumers=0 in=2 acked=0 redelivered=0 dead=1"
    );
    assert_eq!(q.stats().expired, 1);
}

#[test]
fn the_timer_wakes_for_the_earliest_of_ack_deadlines_and_expiries() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send(&q, json!("taken"));
    q.dispatch_ready();
    let base = now_ms();
    send_ttl(&q, json!("soon"), 2_000, None);
    let now = Instant::now();
    // The job in flight is due in 10 s; the ready message expires in about 2 s.
    let wake = wake_in_ms(q.expire(now, base).1, now).unwrap();
    assert!((1_990..=2_000).contains(&wake), "{wake}");
    // Without it, the ack deadline is next.
    q.purge();
    let wake = wake_in_ms(q.expire(now, base).1, now).unwrap();
    assert!((9_000..=10_000).contains(&wake), "{wake}");
}

#[test]
fn a_job_in_flight_is_not_expired_but_is_when_it_comes_back_too_late() {
    let q = queue_with(in_memory());
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send_ttl(&q, json!("a"), 50, None);
    q.dispatch_ready();
    assert_eq!(frames(&w), vec![job("w1", 1, "1", 1, json!("a"))]);
    std::thread::sleep(Duration::from_millis(60));
    let (effects, _) = q.expire(Instant::now(), now_ms());
    assert!(effects.dead_letters.is_empty(), "in flight: not expired");
    assert_eq!(q.stats().unacked, 1);

    // Nacked with requeue after its time ran out: it is not delivered again.
    let effects = q.settle(&w, 1, nack(true)).unwrap();
    assert_eq!(effects.dead_letters.len(), 1);
    assert_eq!(effects.dead_letters[0].reason, "expired");
    q.dispatch_ready();
    assert!(frames(&w).is_empty());
    assert_eq!(
        counts(&q),
        "ready=0 unacked=0 consumers=1 in=1 acked=0 redelivered=0 dead=1"
    );
    assert_eq!(q.stats().expired, 1);
}

#[test]
fn a_message_whose_time_ran_out_between_ticks_is_not_delivered() {
    let q = queue();
    send_ttl(&q, json!("stale"), 1, None);
    send(&q, json!("fresh"));
    std::thread::sleep(Duration::from_millis(5));
    let w = session(1);
    consume(&q, &w, "w1", 1);
    let effects = q.dispatch_ready();
    assert_eq!(effects.delivered, 1);
    assert_eq!(effects.dead_letters[0].reason, "expired");
    assert_eq!(frames(&w), vec![job("w1", 1, "2", 1, json!("fresh"))]);
    assert_eq!(q.stats().expired, 1);
    // Nothing is left for the timer to expire.
    assert_eq!(q.expire(Instant::now(), now_ms()).0.dead_letters.len(), 0);
}

#[test]
fn a_requeued_message_keeps_its_time_to_live_and_its_place() {
    let q = queue();
    let w = session(1);
    consume(&q, &w, "w1", 1);
    send_ttl(&q, json!("a"), 60_000, None);
    send(&q, json!("b"));
    q.dispatch_ready();
    let expires = q.peek(1, None, &Query::default()).0[0].expires;
    assert_eq!(expires, None, "b, behind the job in flight, has no ttl");
    q.remove_consumer(&w, "w1");
    assert_eq!(ready(&q), vec![("1".into(), 1), ("2".into(), 0)]);
    let at = q.peek(1, None, &Query::default()).0[0].expires.unwrap();
    // Back in `ready`, it expires at its time, as if it had never left.
    let (effects, _) = q.expire(Instant::now(), at);
    assert_eq!(effects.dead_letters[0].reason, "expired");
    assert_eq!(ready(&q), vec![("2".into(), 0)]);
}

#[test]
fn purge_forgets_what_was_to_expire() {
    let q = queue();
    send_ttl(&q, json!("a"), 1_000, None);
    assert_eq!(q.purge().0, 1);
    let (effects, next) = q.expire(Instant::now(), now_ms() + 2_000);
    assert!(effects.dead_letters.is_empty());
    assert_eq!(next, None);
    assert_eq!(q.stats().expired, 0);
}

#[test]
fn an_expired_request_tells_its_requester_timeout_and_is_dropped_not_dead_lettered() {
    let q = queue_with(QueueConfig {
        dead_letter: Some("dlq".into()),
        ..in_memory()
    });
    let requester = session(2);
    let waiter = Waiter::new(
        &requester,
        RequestId::from_value(&json!("r")).unwrap(),
        true,
    );
    let (msg, _) = q
        .enqueue(Outgoing {
            ttl_ms: Some(100),
            waiter: Some(waiter),
            reply: true,
            ..Outgoing::new(Payload::from_value(&json!("ping")), None)
        })
        .unwrap();
    let (effects, _) = q.expire(Instant::now(), now_ms() + 100);
    assert_eq!(
        settlements(&effects),
        vec![(msg.to_string(), Settlement::Timeout)]
    );
    let letter = &effects.dead_letters[0];
    assert_eq!((letter.to.as_deref(), letter.reason), (None, "expired"));
    assert_eq!(q.stats().expired, 1);
}

#[test]
fn a_message_handed_to_a_closing_consumer_keeps_its_expiry() {
    let q = queue();
    let gone = session(1);
    consume(&q, &gone, "w1", 1);
    gone.outbound.close();
    send_ttl(&q, json!("a"), 60_000, None);
    // The push to the closed session fails: the message goes back, expiry and all.
    assert_eq!(q.dispatch_ready().delivered, 0);
    let at = q.peek(1, None, &Query::default()).0[0].expires.unwrap();
    let (effects, _) = q.expire(Instant::now(), at);
    assert_eq!(effects.dead_letters[0].reason, "expired");
    assert!(ready(&q).is_empty());
}
