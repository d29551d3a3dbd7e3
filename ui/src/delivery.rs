//! Who a tailed message reaches: the subscriptions whose pattern matches the
//! tailed topic, and for each message, which of their filters pass it.
//!
//! Filters are judged with the broker's own filter code
//! (`switchyard_broker::filter`), so the dashboard cannot disagree with the broker
//! about a message. Each filter text is compiled once and kept while some
//! subscription uses it; messages are judged once, when they arrive, never while
//! drawing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchyard_broker::filter::{Filter, FilterError, MessageView};
use switchyard_broker::names::pattern_matches;
use switchyard_broker::stats::{ClientStats, SubscriptionStats};
use switchyard_broker::{Snapshot, TailMessage};

/// One subscription on the tailed topic: a subscriber the tail shows, whose
/// filter each message is judged by (the broker's own `Subscription` is another
/// type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The subscribing client's id.
    pub client: String,
    /// The client's name, if it gave one.
    pub client_name: Option<String>,
    /// The subscription's id, unique within its client.
    pub sid: String,
    /// The topic pattern subscribed to.
    pub pattern: String,
    /// The filter query; without one, every message is delivered.
    pub filter: Option<String>,
}

impl Subscriber {
    fn of(client: &ClientStats, sub: &SubscriptionStats) -> Self {
        Subscriber {
            client: client.id.clone(),
            client_name: client.name.clone(),
            sid: sub.sid.clone(),
            pattern: sub.pattern.clone(),
            filter: sub.filter.clone(),
        }
    }

    fn is(&self, client: &ClientStats, sub: &SubscriptionStats) -> bool {
        self.client == client.id
            && self.client_name == client.name
            && self.sid == sub.sid
            && self.pattern == sub.pattern
            && self.filter == sub.filter
    }

    /// `c4/s1`: client and subscription id, how the tail names a subscription.
    pub fn label(&self) -> String {
        format!("{}/{}", self.client, self.sid)
    }
}

/// What one subscription does with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It has no filter, or its filter passes the message: delivered.
    Delivered,
    /// Its filter rejects the message.
    FilteredOut,
    /// Its filter does not parse here (a broker speaking a newer filter
    /// grammar), so the dashboard cannot tell.
    Unknown,
}

/// The subscriptions on one topic, from the latest snapshot, with their filters
/// compiled.
#[derive(Debug, Clone)]
pub struct Subscribers {
    topic: String,
    /// Shared with every [`Delivery`] judged while the subscriptions stayed the
    /// same, so a thousand tailed messages do not hold a thousand copies.
    list: Arc<[Subscriber]>,
    /// Compiled filters by text.
    filters: HashMap<String, Result<Filter, FilterError>>,
}

impl Subscribers {
    /// The subscriptions in `snapshot` whose pattern matches `topic`.
    pub fn new(topic: &str, snapshot: &Snapshot) -> Self {
        let mut subscribers = Subscribers {
            topic: topic.to_string(),
            list: Arc::from([]),
            filters: HashMap::new(),
        };
        subscribers.update(snapshot);
        subscribers
    }

    /// Take in a new snapshot's subscriptions. Compiles only filters not seen
    /// before, and forgets those no subscription uses any more, so the cache
    /// stays the size of the current list however long the tail runs.
    pub fn update(&mut self, snapshot: &Snapshot) {
        let found: Vec<(&ClientStats, &SubscriptionStats)> = snapshot
            .clients
            .iter()
            .flat_map(|c| c.subscriptions.iter().map(move |s| (c, s)))
            .filter(|(_, s)| pattern_matches(&s.pattern, &self.topic))
            .collect();
        let same = found.len() == self.list.len()
            && found
                .iter()
                .zip(self.list.iter())
                .all(|((c, s), l)| l.is(c, s));
        if same {
            return;
        }
        self.list = found.iter().map(|(c, s)| Subscriber::of(c, s)).collect();
        let used: HashSet<&str> = self
            .list
            .iter()
            .filter_map(|s| s.filter.as_deref())
            .collect();
        self.filters.retain(|text, _| used.contains(text.as_str()));
        for text in used {
            if !self.filters.contains_key(text) {
                self.filters.insert(text.to_string(), Filter::parse(text));
            }
        }
    }

    /// The topic whose subscriptions these are.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The subscriptions, in snapshot order (by client, then as the client made them).
    pub fn list(&self) -> &[Subscriber] {
        &self.list
    }

    /// Why `sub`'s filter does not parse here, if it does not.
    pub fn filter_error(&self, sub: &Subscriber) -> Option<&FilterError> {
        let text = sub.filter.as_deref()?;
        self.filters.get(text)?.as_ref().err()
    }

    /// Judge `message` against every subscription. `data_json` is its `data` as
    /// JSON text, serialized once by the caller.
    pub fn deliver(&self, message: &TailMessage, data_json: &str) -> Delivery {
        // One view for all filters: it parses `data` at most once.
        let view = MessageView::new(&message.topic, message.headers.as_ref(), data_json);
        let verdicts = self
            .list
            .iter()
            .map(|sub| match sub.filter.as_deref() {
                None => Verdict::Delivered,
                Some(text) => match self.filters.get(text) {
                    Some(Ok(filter)) if filter.matches(&view) => Verdict::Delivered,
                    Some(Ok(_)) => Verdict::FilteredOut,
                    // Every filter in use is compiled in `update`; a miss would be
                    // a bug here, and unknown is the honest answer to it.
                    Some(Err(_)) | None => Verdict::Unknown,
                },
            })
            .collect();
        Delivery {
            subscriptions: Arc::clone(&self.list),
            verdicts,
        }
    }
}

/// Which subscriptions one message was delivered to, judged when it arrived,
/// against the subscriptions as they were then.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    subscriptions: Arc<[Subscriber]>,
    verdicts: Vec<Verdict>,
}

impl Delivery {
    /// Each subscription with its verdict, in the subscribers' order.
    pub fn iter(&self) -> impl Iterator<Item = (&Subscriber, Verdict)> + '_ {
        self.subscriptions.iter().zip(self.verdicts.iter().copied())
    }

    /// How many subscriptions there were.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    /// Whether there were none: the message reached nobody.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// How many subscriptions it was delivered to.
    pub fn delivered(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| **v == Verdict::Delivered)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;
    use Verdict::{Delivered, FilteredOut, Unknown};

    fn sub(sid: &str, pattern: &str, filter: Option<&str>) -> SubscriptionStats {
        SubscriptionStats {
            sid: sid.into(),
            pattern: pattern.into(),
            filter: filter.map(str::to_string),
        }
    }

    fn client(id: &str, subscriptions: Vec<SubscriptionStats>) -> ClientStats {
        ClientStats {
            id: id.into(),
            subscriptions,
            ..Default::default()
        }
    }

    fn snapshot(clients: Vec<ClientStats>) -> Snapshot {
        Snapshot {
            clients,
            ..Default::default()
        }
    }

    /// `(label, verdict)` for each subscription.
    fn verdicts(subscribers: &Subscribers, message: &TailMessage) -> Vec<(String, Verdict)> {
        let json = serde_json::to_string(&message.data).unwrap();
        subscribers
            .deliver(message, &json)
            .iter()
            .map(|(s, v)| (s.label(), v))
            .collect()
    }

    fn labels(subscribers: &Subscribers) -> Vec<String> {
        subscribers.list().iter().map(Subscriber::label).collect()
    }

    #[test]
    fn lists_the_subscriptions_whose_pattern_matches_the_topic() {
        let snap = snapshot(vec![
            client(
                "c1",
                vec![
                    sub("a", "orders.eu", None),
                    sub("b", "orders.us", None),
                    sub("c", "orders.*", None),
                ],
            ),
            client("c2", vec![sub("d", "orders.>", None), sub("e", ">", None)]),
            client("c3", vec![sub("f", "orders.eu.late", None)]),
        ]);
        let subscribers = Subscribers::new("orders.eu", &snap);
        assert_eq!(labels(&subscribers), ["c1/a", "c1/c", "c2/d", "c2/e"]);
    }

    #[test]
    fn each_message_is_judged_by_each_filter() {
        let snap = snapshot(vec![
            client(
                "c1",
                vec![
                    sub(
                        "big",
                        "orders.eu",
                        Some("region = 'eu' AND data.amount > 100"),
                    ),
                    sub("all", "orders.*", None),
                ],
            ),
            client(
                "c2",
                vec![
                    sub("vip", "orders.eu", Some("tags CONTAINS 'vip'")),
                    sub("john", "orders.>", Some("data.account.name = 'John'")),
                    // A filter from a newer grammar than this dashboard's.
                    sub("newer", "orders.eu", Some("data.amount BETWEEN 1 AND 5")),
                ],
            ),
        ]);
        let subscribers = Subscribers::new("orders.eu", &snap);
        let messages: Vec<_> = fixture::tail_orders()
            .into_iter()
            .filter(|m| m.topic == "orders.eu")
            .collect();
        // 20.5 John no tags; 41.0 Mary urgent; 61.5 John urgent,vip; 102.5 John urgent.
        let expected = [
            [FilteredOut, Delivered, FilteredOut, Delivered, Unknown],
            [FilteredOut, Delivered, FilteredOut, FilteredOut, Unknown],
            [FilteredOut, Delivered, Delivered, Delivered, Unknown],
            [Delivered, Delivered, FilteredOut, Delivered, Unknown],
        ];
        assert_eq!(messages.len(), expected.len());
        for (message, want) in messages.iter().zip(expected) {
            let got: Vec<Verdict> = verdicts(&subscribers, message)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            assert_eq!(got, want, "message #{}", message.seq);
        }
        let json = serde_json::to_string(&messages[2].data).unwrap();
        assert_eq!(subscribers.deliver(&messages[2], &json).delivered(), 3);
        let newer = &subscribers.list()[4];
        assert_eq!(subscribers.filter_error(newer).map(|e| e.pos), Some(12));
        assert_eq!(subscribers.filter_error(&subscribers.list()[0]), None);
    }

    #[test]
    fn the_topic_and_a_missing_payload_path_count_like_in_the_broker() {
        let snap = snapshot(vec![client(
            "c1",
            vec![
                sub("t", "orders.eu", Some("topic = 'orders.eu'")),
                sub("missing", "orders.eu", Some("data.nope > 1")),
                sub("not-missing", "orders.eu", Some("NOT data.nope EXISTS")),
            ],
        )]);
        let subscribers = Subscribers::new("orders.eu", &snap);
        let message = &fixture::tail_orders()[0];
        assert_eq!(
            verdicts(&subscribers, message),
            [
                ("c1/t".to_string(), Delivered),
                ("c1/missing".to_string(), FilteredOut),
                ("c1/not-missing".to_string(), Delivered),
            ]
        );
    }

    #[test]
    fn filters_are_compiled_once_and_forgotten_when_unused() {
        let one = |filter: &str| snapshot(vec![client("c1", vec![sub("s", "t", Some(filter))])]);
        let mut subscribers = Subscribers::new("t", &one("data.x = 1"));
        let before = Arc::clone(&subscribers.list);
        subscribers.update(&one("data.x = 1"));
        assert!(
            Arc::ptr_eq(&before, &subscribers.list),
            "an unchanged list is kept, not rebuilt"
        );
        subscribers.update(&one("data.x = 2"));
        let cached: Vec<&str> = subscribers.filters.keys().map(String::as_str).collect();
        assert_eq!(cached, ["data.x = 2"]);
    }

    #[test]
    fn a_delivery_keeps_the_subscriptions_it_was_judged_against() {
        let mut subscribers = Subscribers::new(
            "orders.eu",
            &snapshot(vec![client("c1", vec![sub("a", "orders.eu", None)])]),
        );
        let message = &fixture::tail_orders()[0];
        let delivery = subscribers.deliver(message, "{}");
        subscribers.update(&snapshot(vec![]));
        assert!(subscribers.list().is_empty());
        assert_eq!(delivery.len(), 1);
        assert_eq!(delivery.delivered(), 1);
    }
}
