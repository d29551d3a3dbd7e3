//! Queue state machine: settlement, purge and delete.

use super::*;

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
        .enqueue(Outgoing::new(Payload::from_value(&json!(5)), None))
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
