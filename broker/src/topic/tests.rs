//! Unit tests of the fan-out: which subscriptions a publish reaches, in what order
//! and with which seqs, and how sealing, deleting and slow subscribers end them.
//! Subscribers are real sessions (their outbound buffer read back as JSON frames)
//! or in-process tails.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::*;
use crate::filter::Filter;
use crate::protocol::HeaderValue;
use crate::session::Session;
use crate::stats::EventKind;
use crate::time::now_ms;

fn tail_sub(topics: &Topics, pattern: &str) -> Arc<TailBuffer> {
    let buffer = Arc::new(TailBuffer::new(10));
    let sub = Subscription::new(
        topics.next_key(),
        "t".into(),
        pattern.into(),
        None,
        Target::Tail(buffer.clone()),
    );
    topics.subscribe(Arc::new(sub), || {});
    buffer
}

#[tokio::test]
async fn unsubscribed_topics_are_forgotten_at_the_cap() {
    let mut topics = Topics::new(
        Arc::new(Activity::default()),
        tokio::runtime::Handle::current(),
    );
    topics.max_topics = 3;
    let data = "1";
    let kept = tail_sub(&topics, "kept");
    // One publisher keeps its last topic in its cache, as a connection does.
    let mut cache = None;
    for name in ["a", "b"] {
        topics
            .publish(name, data, None, None, now_ms(), &mut cache)
            .unwrap();
    }
    assert_eq!(topics.stats().len(), 3);
    // A fourth topic: the two nobody listens to are dropped, `kept` stays.
    topics
        .publish("c", data, None, None, now_ms(), &mut None)
        .unwrap();
    let names: Vec<String> = topics.stats().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["c", "kept"]);
    topics
        .publish("kept", data, None, None, now_ms(), &mut None)
        .unwrap();
    assert_eq!(kept.drain(10).len(), 1);
    // The cache still holds the forgotten `b`: a publish through it must reach
    // a new subscriber of `b`, through the topic the broker now tracks.
    let b = tail_sub(&topics, "b");
    topics
        .publish("b", data, None, None, now_ms(), &mut cache)
        .unwrap();
    assert_eq!(
        b.drain(10).iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1]
    );
    let b_stats = topics.stats().into_iter().find(|t| t.name == "b").unwrap();
    assert_eq!((b_stats.msgs_in, b_stats.msgs_out), (1, 1));
    // When every tracked topic is subscribed to, a new one is refused.
    let _x = tail_sub(&topics, "c");
    let _y = tail_sub(&topics, "d");
    let err = topics
        .publish("e", data, None, None, now_ms(), &mut None)
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::Limit);
}

#[tokio::test]
async fn times_never_go_back_along_seqs() {
    let topics = Topics::new(
        Arc::new(Activity::default()),
        tokio::runtime::Handle::current(),
    );
    let tail = tail_sub(&topics, "t");
    // Two publishers whose clock readings arrive out of order.
    for now in [1_000, 900, 1_200] {
        topics
            .publish("t", "1", None, None, now, &mut None)
            .unwrap();
    }
    let got: Vec<(u64, u64)> = tail.drain(10).iter().map(|m| (m.seq, m.time)).collect();
    assert_eq!(got, vec![(1, 1_000), (2, 1_000), (3, 1_200)]);
}

/// The time every publish below is accepted at, so frames are exact.
const T: u64 = 1_000;

fn topics() -> Topics {
    Topics::new(
        Arc::new(Activity::default()),
        tokio::runtime::Handle::current(),
    )
}

fn session_with(id: u64, limit: usize, shared: &Arc<Activity>) -> Arc<Session> {
    let addr = "127.0.0.1:7401".parse().unwrap();
    Arc::new(Session::new(id, addr, limit, shared.clone()))
}

fn session(id: u64) -> Arc<Session> {
    session_with(id, 1 << 20, &Arc::new(Activity::default()))
}

/// Subscribes `session` as `sid` to `pattern`, with an optional filter.
fn sub(
    topics: &Topics,
    session: &Arc<Session>,
    sid: &str,
    pattern: &str,
    filter: Option<&str>,
) -> Arc<Subscription> {
    let sub = Arc::new(Subscription::new(
        topics.next_key(),
        sid.into(),
        pattern.into(),
        filter.map(|f| Filter::parse(f).unwrap()),
        Target::Session(session.clone()),
    ));
    topics.subscribe(sub.clone(), || {});
    sub
}

/// Publishes `data` at time [`T`]; returns how many deliveries were made.
fn publish(topics: &Topics, topic: &str, data: Value) -> u64 {
    publish_with(topics, topic, data, None)
}

fn publish_with(topics: &Topics, topic: &str, data: Value, headers: Option<&Headers>) -> u64 {
    topics
        .publish(topic, &data.to_string(), headers, None, T, &mut None)
        .unwrap()
}

/// The frames of `frames` that belong to subscription `sid`, in order.
fn for_sid(frames: &[Value], sid: &str) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["sid"] == json!(sid))
        .cloned()
        .collect()
}

/// Every frame the session was sent since the last call, parsed.
fn frames(s: &Session) -> Vec<Value> {
    s.take_sent_frames()
}

/// The `msg` frame of a message published without headers at time [`T`].
fn msg(sid: &str, topic: &str, seq: u64, data: Value) -> Value {
    json!({"ev": "msg", "sid": sid, "topic": topic, "seq": seq, "time": T, "data": data})
}

fn end(sid: &str, topic: &str) -> Value {
    json!({"ev": "end", "sid": sid, "topic": topic})
}

/// What a tail got, as (topic, seq).
fn drained(tail: &TailBuffer) -> Vec<(String, u64)> {
    tail.drain(100)
        .into_iter()
        .map(|m| (m.topic, m.seq))
        .collect()
}

fn stats_of(topics: &Topics, name: &str) -> Option<TopicStats> {
    topics.stats().into_iter().find(|t| t.name == name)
}

/// What the `done` callbacks of a [`recorder`] were given, in order.
type Outcomes = Arc<Mutex<Vec<Result<u64, ErrorCode>>>>;

/// Collects what `done` callbacks are given.
fn recorder() -> (Outcomes, impl Fn() -> Done) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let make = {
        let got = got.clone();
        move || -> Done {
            let got = got.clone();
            Box::new(move |r: Result<u64, BrokerError>| got.lock().push(r.map_err(|e| e.code)))
        }
    };
    (got, make)
}

#[tokio::test]
async fn a_publish_reaches_exactly_the_matching_subscriptions_once_each() {
    let topics = topics();
    let patterns = [
        "orders.eu",
        "orders.*",
        "orders.>",
        "*.eu",
        ">",
        "orders.*.x",
        "orders",
        "orders.us",
    ];
    let tails: Vec<Arc<TailBuffer>> = patterns.iter().map(|p| tail_sub(&topics, p)).collect();

    assert_eq!(publish(&topics, "orders.eu", json!(1)), 5);
    assert_eq!(publish(&topics, "orders.eu.x", json!(2)), 3);
    assert_eq!(publish(&topics, "orders", json!(3)), 2);

    let got: Vec<(&str, Vec<(String, u64)>)> = patterns
        .iter()
        .zip(&tails)
        .map(|(p, t)| (*p, drained(t)))
        .collect();
    let e = |topic: &str| (topic.to_string(), 1);
    assert_eq!(
        got,
        vec![
            ("orders.eu", vec![e("orders.eu")]),
            ("orders.*", vec![e("orders.eu")]),
            ("orders.>", vec![e("orders.eu"), e("orders.eu.x")]),
            ("*.eu", vec![e("orders.eu")]),
            (">", vec![e("orders.eu"), e("orders.eu.x"), e("orders")]),
            ("orders.*.x", vec![e("orders.eu.x")]),
            ("orders", vec![e("orders")]),
            ("orders.us", vec![]),
        ]
    );
}

#[tokio::test]
async fn overlapping_subscriptions_of_one_client_each_get_one_copy() {
    let topics = topics();
    let s = session(1);
    let _a = sub(&topics, &s, "a", "orders.*", None);
    let _b = sub(&topics, &s, "b", "orders.>", None);
    let _c = sub(&topics, &s, "c", "orders.eu", None);
    assert_eq!(publish(&topics, "orders.eu", json!({"n": 1})), 3);
    let mut got = frames(&s);
    got.sort_by_key(|f| f["sid"].as_str().unwrap().to_string());
    assert_eq!(
        got,
        vec![
            msg("a", "orders.eu", 1, json!({"n": 1})),
            msg("b", "orders.eu", 1, json!({"n": 1})),
            msg("c", "orders.eu", 1, json!({"n": 1})),
        ]
    );
}

#[tokio::test]
async fn a_delivery_carries_the_headers_it_was_published_with() {
    let topics = topics();
    let s = session(1);
    let _s1 = sub(&topics, &s, "s1", "t", None);
    let headers: Headers = [
        ("region".to_string(), HeaderValue::One("eu".into())),
        (
            "tags".to_string(),
            HeaderValue::Many(vec!["a".into(), "b".into()]),
        ),
    ]
    .into_iter()
    .collect();
    publish_with(&topics, "t", json!("x"), Some(&headers));
    assert_eq!(
        frames(&s),
        vec![json!({
            "ev": "msg", "sid": "s1", "topic": "t", "seq": 1, "time": T, "data": "x",
            "headers": {"region": "eu", "tags": ["a", "b"]},
        })]
    );
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let topics = topics();
    let s = session(1);
    let s1 = sub(&topics, &s, "s1", "t", None);
    assert_eq!(publish(&topics, "t", json!(1)), 1);
    topics.unsubscribe(&s1);
    assert_eq!(publish(&topics, "t", json!(2)), 0);
    assert_eq!(frames(&s), vec![msg("s1", "t", 1, json!(1))]);
    let stats = stats_of(&topics, "t").unwrap();
    assert_eq!(
        (stats.subscribers, stats.msgs_in, stats.msgs_out),
        (0, 2, 1)
    );
}

#[tokio::test]
async fn a_filter_passes_or_drops_each_message() {
    let topics = topics();
    let s = session(1);
    let _all = sub(&topics, &s, "all", "pay.*", None);
    let _big_eu = sub(
        &topics,
        &s,
        "big_eu",
        "pay.*",
        Some("data.amount > 5 AND region = 'eu'"),
    );
    let eu: Headers = [("region".to_string(), HeaderValue::One("eu".into()))]
        .into_iter()
        .collect();
    let us: Headers = [("region".to_string(), HeaderValue::One("us".into()))]
        .into_iter()
        .collect();
    assert_eq!(
        publish_with(&topics, "pay.card", json!({"amount": 3}), Some(&eu)),
        1
    );
    assert_eq!(
        publish_with(&topics, "pay.card", json!({"amount": 7}), Some(&eu)),
        2
    );
    assert_eq!(
        publish_with(&topics, "pay.card", json!({"amount": 9}), Some(&us)),
        1
    );
    assert_eq!(
        publish_with(&topics, "pay.card", json!({"amount": 8}), None),
        1
    );
    assert_eq!(
        publish_with(&topics, "pay.card", json!({"amount": "10"}), Some(&eu)),
        1
    );

    let got = frames(&s);
    let seqs_of = |sid: &str| -> Vec<u64> {
        got.iter()
            .filter(|f| f["sid"] == json!(sid))
            .map(|f| f["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs_of("all"), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs_of("big_eu"), vec![2]);
    assert_eq!(
        got.iter().find(|f| f["sid"] == json!("big_eu")).cloned(),
        Some(json!({
            "ev": "msg", "sid": "big_eu", "topic": "pay.card", "seq": 2, "time": T,
            "data": {"amount": 7}, "headers": {"region": "eu"},
        }))
    );
}

#[tokio::test]
async fn a_filter_can_match_on_the_topic_of_a_wildcard_subscription() {
    let topics = topics();
    let tail = Arc::new(TailBuffer::new(10));
    topics.subscribe(
        Arc::new(Subscription::new(
            topics.next_key(),
            "t".into(),
            "orders.>".into(),
            Some(Filter::parse("topic != 'orders.test'").unwrap()),
            Target::Tail(tail.clone()),
        )),
        || {},
    );
    publish(&topics, "orders.eu", json!(1));
    publish(&topics, "orders.test", json!(2));
    publish(&topics, "orders.us", json!(3));
    assert_eq!(
        drained(&tail),
        vec![("orders.eu".to_string(), 1), ("orders.us".to_string(), 1)]
    );
}

#[tokio::test]
async fn publish_many_delivers_a_run_in_order_with_consecutive_seqs() {
    let topics = topics();
    let s = session(1);
    let _all = sub(&topics, &s, "all", "t", None);
    let _odd = sub(&topics, &s, "odd", "t", Some("data.n IN (1, 3)"));
    assert_eq!(publish(&topics, "t", json!({"n": 0})), 1);
    let bodies: Vec<String> = (1..=3).map(|n| json!({"n": n}).to_string()).collect();
    let run: Vec<(&str, Option<&Headers>)> = bodies.iter().map(|b| (b.as_str(), None)).collect();
    let delivered = topics.publish_many("t", &run, T, &mut None).unwrap();
    assert_eq!(delivered, Some(5));

    let got = frames(&s);
    let of = |sid: &str| for_sid(&got, sid);
    assert_eq!(
        of("all"),
        vec![
            msg("all", "t", 1, json!({"n": 0})),
            msg("all", "t", 2, json!({"n": 1})),
            msg("all", "t", 3, json!({"n": 2})),
            msg("all", "t", 4, json!({"n": 3})),
        ]
    );
    assert_eq!(
        of("odd"),
        vec![
            msg("odd", "t", 2, json!({"n": 1})),
            msg("odd", "t", 4, json!({"n": 3}))
        ]
    );
    // The next publish continues after the run.
    publish(&topics, "t", json!({"n": 4}));
    assert_eq!(frames(&s), vec![msg("all", "t", 5, json!({"n": 4}))]);
    let stats = stats_of(&topics, "t").unwrap();
    assert_eq!((stats.msgs_in, stats.msgs_out), (5, 7));
}

#[tokio::test]
async fn seqs_increase_per_topic_and_independently_across_topics() {
    let topics = topics();
    let s = session(1);
    let _every = sub(&topics, &s, "every", ">", None);
    for (topic, n) in [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("b", 5), ("c", 6)] {
        publish(&topics, topic, json!(n));
    }
    assert_eq!(
        frames(&s),
        vec![
            msg("every", "a", 1, json!(1)),
            msg("every", "a", 2, json!(2)),
            msg("every", "b", 1, json!(3)),
            msg("every", "a", 3, json!(4)),
            msg("every", "b", 2, json!(5)),
            msg("every", "c", 1, json!(6)),
        ]
    );
    // A publish's `done` is told the seq it got.
    let (done, make_done) = recorder();
    topics
        .publish("b", "7", None, Some(make_done()), T, &mut None)
        .unwrap();
    assert_eq!(*done.lock(), vec![Ok(3)]);
}

#[tokio::test]
async fn a_message_with_no_subscriber_is_dropped_but_takes_a_seq() {
    let topics = topics();
    assert_eq!(publish(&topics, "t", json!(1)), 0);
    let s = session(1);
    let _s1 = sub(&topics, &s, "s1", "t", None);
    publish(&topics, "t", json!(2));
    assert_eq!(frames(&s), vec![msg("s1", "t", 2, json!(2))]);
}

#[tokio::test]
async fn sealing_ends_subscribers_after_earlier_messages_and_refuses_later_publishes() {
    let topics = topics();
    let s = session(1);
    let _exact = sub(&topics, &s, "exact", "t", None);
    let _any = sub(&topics, &s, "any", "*", None);
    let tail = tail_sub(&topics, "t");
    let _other = sub(&topics, &s, "other", "u", None);
    publish(&topics, "t", json!(1));
    let (done, make_done) = recorder();
    topics.seal("t", make_done()).unwrap();
    assert_eq!(*done.lock(), vec![Ok(0)]);

    let got = frames(&s);
    // Per subscription: its message, then its end.
    let of = |sid: &str| for_sid(&got, sid);
    assert_eq!(
        of("exact"),
        vec![msg("exact", "t", 1, json!(1)), end("exact", "t")]
    );
    assert_eq!(
        of("any"),
        vec![msg("any", "t", 1, json!(1)), end("any", "t")]
    );
    assert!(of("other").is_empty());
    assert_eq!(drained(&tail), vec![("t".to_string(), 1)]);

    let err = topics
        .publish("t", "2", None, None, T, &mut None)
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::Sealed);
    let err = topics
        .publish_many("t", &[("3", None)], T, &mut None)
        .err()
        .unwrap();
    assert_eq!(err.code, ErrorCode::Sealed);
    assert!(frames(&s).is_empty());
    assert!(drained(&tail).is_empty());
    let stats = stats_of(&topics, "t").unwrap();
    assert!(stats.sealed);
    assert_eq!((stats.msgs_in, stats.msgs_out), (1, 3));

    // Sealing again holds at once and ends nobody twice.
    topics.seal("t", make_done()).unwrap();
    assert_eq!(*done.lock(), vec![Ok(0), Ok(0)]);
    assert!(frames(&s).is_empty());
    // A new subscription to the sealed topic ends at once.
    let late = session(2);
    let _late = sub(&topics, &late, "late", "t", None);
    assert_eq!(frames(&late), vec![end("late", "t")]);
    // Other topics are untouched.
    assert_eq!(publish(&topics, "u", json!(4)), 2);
}

#[tokio::test]
async fn deleting_a_topic_ends_subscribers_and_removes_it_from_stats() {
    let topics = topics();
    let s = session(1);
    let _s1 = sub(&topics, &s, "s1", "t", None);
    let _other = sub(&topics, &s, "other", "u", None);
    publish(&topics, "t", json!(1));
    publish(&topics, "u", json!(2));
    assert!(
        topics.delete("t").unwrap().is_none(),
        "not retained: no store"
    );
    let got = frames(&s);
    assert_eq!(
        got,
        vec![
            msg("s1", "t", 1, json!(1)),
            msg("other", "u", 1, json!(2)),
            end("s1", "t"),
        ]
    );
    let names: Vec<String> = topics.stats().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["u"]);
    assert_eq!(topics.delete("t").err().unwrap().code, ErrorCode::NotFound);
    assert_eq!(
        topics.delete("never").err().unwrap().code,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn stats_count_messages_in_and_out_and_subscribers() {
    let topics = topics();
    let s = session(1);
    let _t = sub(&topics, &s, "t", "t", None);
    let _star = sub(&topics, &s, "star", "*", Some("data.n > 1"));
    let _u = sub(&topics, &s, "u", "u", None);
    for n in 1..=3 {
        publish(&topics, "t", json!({"n": n}));
    }
    publish(&topics, "u", json!({"n": 5}));
    publish(&topics, "v.w", json!({"n": 6}));
    let row = |name: &str, subscribers, msgs_in, msgs_out| TopicStats {
        name: name.into(),
        subscribers,
        msgs_in,
        msgs_out,
        ..TopicStats::default()
    };
    assert_eq!(
        topics.stats(),
        vec![row("t", 2, 3, 5), row("u", 2, 1, 2), row("v.w", 0, 1, 0)]
    );
}

#[tokio::test]
async fn a_full_subscriber_is_kicked_while_another_gets_every_message() {
    let shared = Arc::new(Activity::default());
    let topics = Topics::new(shared.clone(), tokio::runtime::Handle::current());
    let data = json!("x".repeat(20));
    let frame_len = serde_json::to_string(&msg("slow", "prices", 1, data.clone()))
        .unwrap()
        .len();
    // Room for one frame and a half: the second push does not fit.
    let slow = session_with(1, frame_len * 3 / 2, &shared);
    let fast = session_with(2, 1 << 20, &shared);
    let _slow = sub(&topics, &slow, "slow", "prices", None);
    let _fast = sub(&topics, &fast, "fast", "prices", None);

    let delivered: Vec<u64> = (0..5)
        .map(|_| publish(&topics, "prices", data.clone()))
        .collect();
    assert_eq!(delivered, vec![2, 1, 1, 1, 1]);
    assert_eq!(
        frames(&fast),
        (1..=5)
            .map(|seq| msg("fast", "prices", seq, data.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        slow.outbound.kick_reason().as_deref(),
        Some("slow_consumer")
    );
    assert!(frames(&slow).is_empty(), "a kick drops what was buffered");
    assert_eq!(shared.slow_kicks.load(Ordering::Relaxed), 1);
    let kinds: Vec<EventKind> = shared.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Slow, EventKind::Kick]);
    let stats = stats_of(&topics, "prices").unwrap();
    assert_eq!(
        (stats.subscribers, stats.msgs_in, stats.msgs_out),
        (2, 5, 6)
    );
}
