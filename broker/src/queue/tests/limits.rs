//! Queue state machine: limits, consumers that went away, and stats.

use super::*;

#[test]
fn max_len_refuses_a_send_with_limit_while_that_many_are_ready() {
    let q = queue_with(QueueConfig {
        max_len: Some(2),
        ..in_memory()
    });
    send(&q, json!(1));
    send(&q, json!(2));
    let err = q
        .enqueue(Outgoing::new(Payload::from_value(&json!(3)), None))
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
