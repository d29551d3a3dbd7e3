//! Retained topics: each message appended to the topic's log under the topic's
//! lock, delivered by a per-topic task only once it is durable (an unconfirmed seq
//! may be reused after a crash, so nobody may see it before), and replayed from
//! the log to a subscription with `from`, with no gap and no duplicate.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::subscription::Delivery;
use super::{bump, Done, Subscription, Topic, TopicState, Topics};
use crate::activity::Activity;
use crate::command::PeekedMessage;
use crate::error::{BrokerError, ErrorCode};
use crate::filter::{MessageView, Query};
use crate::outbound::OutItem;
use crate::protocol::{event, Headers};
use crate::stats::EventKind;
use crate::store::{ReadFrom, Ticket, TopicStore};

/// Most bytes of a retained topic's messages that may wait for their fsync before
/// appends are refused: the store's own backlog limit, for what comes after it.
pub(super) const MAX_DEFERRED_BYTES: usize = 64 << 20;

/// Messages read from the log per blocking read during a replay.
const REPLAY_CHUNK: usize = 512;
/// A message of a retained topic waiting to be durable, with the subscriptions
/// (filters applied) it goes to.
pub(super) struct Accepted {
    seq: u64,
    time: u64,
    body: String,
    /// Where `data` is in `body`.
    data_at: std::ops::Range<usize>,
    headers: Option<Headers>,
    targets: Vec<Arc<Subscription>>,
}

impl Accepted {
    fn delivery<'a>(&'a self, topic: &'a str) -> Delivery<'a> {
        Delivery {
            topic,
            seq: self.seq,
            time: self.time,
            body: &self.body,
            data: self.body.get(self.data_at.clone()).unwrap_or("null"),
            headers: self.headers.as_ref(),
        }
    }
}

/// Work for a retained topic's delivery task, in the order it was accepted.
pub(super) enum Deferred {
    Msg {
        accepted: Accepted,
        durable: Ticket,
        done: Option<Done>,
    },
    Seal {
        durable: Ticket,
        done: Option<Done>,
    },
}

impl Topic {
    /// Pushes a durable message of a retained topic to its subscriptions.
    fn deliver(&self, accepted: &Accepted, activity: &Activity) {
        let m = accepted.delivery(&self.name);
        let delivered = accepted.targets.iter().filter(|s| s.deliver(&m)).count() as u64;
        self.msgs_out.fetch_add(delivered, Ordering::Relaxed);
        activity.add_out(delivered);
    }
}

impl Topics {
    /// Makes a topic retained with its store (a new one, or reopened at start-up):
    /// its seq continues from the log, and a task starts delivering durable messages.
    pub(crate) fn retain(&self, name: &str, store: Arc<dyn TopicStore>) -> Result<(), BrokerError> {
        let topic = self.topic(name)?;
        let mut state = topic.state.lock();
        if state.store.is_some() {
            return Ok(());
        }
        state.seq = store.stats().next_seq.saturating_sub(1);
        state.sealed = store.is_sealed();
        let (tx, rx) = mpsc::unbounded_channel();
        state.store = Some(store);
        state.deferred = Some(tx);
        drop(state);
        self.runtime
            .spawn(run_deliveries(topic.clone(), rx, self.activity.clone()));
        Ok(())
    }

    /// Subscribes to a retained topic from a point in its log: replays up to where it
    /// joined, then continues live.
    pub(crate) fn subscribe_from(
        &self,
        sub: Arc<Subscription>,
        from: ReadFrom,
        added: impl FnOnce(),
    ) -> Result<(), BrokerError> {
        let not_retained = || {
            BrokerError::new(
                ErrorCode::NotRetained,
                format!(
                    "`from` needs a retained topic; `{}` is not retained",
                    sub.pattern
                ),
            )
        };
        let topic = self.get(&sub.pattern).ok_or_else(not_retained)?;
        let mut state = topic.state.lock();
        let store = state.store.clone().ok_or_else(not_retained)?;
        // Every message up to `last` is replayed; later ones arrive live (held in the
        // backlog until the replay is done). The topic lock keeps publishes out.
        let last = state.seq;
        sub.replaying.store(true, Ordering::Release);
        self.insert(sub.clone(), added);
        topic.refresh_matching(&mut state, self);
        drop(state);
        let activity = self.activity.clone();
        self.runtime
            .spawn(replay(topic, store, from, last, sub, activity));
        Ok(())
    }

    /// Appends a message to a retained topic's log under its lock; the message, with
    /// the subscriptions (filters applied) it is to reach, and its durability ticket.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append(
        &self,
        topic: &Topic,
        state: &mut TopicState,
        store: &dyn TopicStore,
        name: &str,
        data: &str,
        headers: Option<&Headers>,
        now: u64,
    ) -> Result<(Accepted, Ticket), BrokerError> {
        let waiting = topic.deferred_bytes.load(Ordering::Acquire);
        if waiting > MAX_DEFERRED_BYTES {
            return Err(BrokerError::new(
                ErrorCode::Limit,
                format!("topic `{name}` has {waiting} bytes waiting to be stored"),
            ));
        }
        let seq = state.seq + 1;
        let time = now.max(state.last_time);
        let mut body = String::new();
        let data_at = event::msg_body(&mut body, name, seq, time, data, headers);
        let durable = match store.append(time, body.as_bytes()) {
            Ok(appended) if appended.seq == seq => appended.durable,
            Ok(appended) => {
                // Cannot happen while appends go through this lock; resync if it does.
                state.seq = appended.seq;
                return Err(BrokerError::new(
                    ErrorCode::Internal,
                    format!(
                        "topic `{name}`: the log gave seq {} for {seq}",
                        appended.seq
                    ),
                ));
            }
            Err(e) => {
                self.activity.record(
                    EventKind::Storage,
                    format!("topic {name}: append failed: {e}"),
                );
                return Err(e.into());
            }
        };
        state.seq = seq;
        state.last_time = time;
        bump(&topic.msgs_in, 1);
        // Parsed at most once, and only if a filter looks into `data`.
        let view = MessageView::new(name, headers, data);
        let accepted = Accepted {
            seq,
            time,
            body,
            data_at,
            headers: headers.cloned(),
            // Who it goes to as of now.
            targets: state
                .matching
                .iter()
                .filter(|s| !s.hides(name) && s.filter.as_ref().is_none_or(|f| f.matches(&view)))
                .cloned()
                .collect(),
        };
        topic
            .deferred_bytes
            .fetch_add(accepted.body.len(), Ordering::AcqRel);
        Ok((accepted, durable))
    }

    /// The last `n` messages of a retained topic.
    pub(crate) fn peek(&self, name: &str, n: usize) -> Result<Vec<PeekedMessage>, BrokerError> {
        let store = self.retained_store(name)?;
        let next = store.stats().next_seq;
        let mut out = Vec::new();
        for item in store.read(ReadFrom::Seq(next.saturating_sub(n as u64))) {
            let Ok(m) = item else { continue };
            if let Some(p) = peeked(&m.body) {
                out.push(p);
            }
            if out.len() == n {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `n` messages of a retained topic after seq `after` (from its first
    /// when `None`) that `query` selects, looking at no more than
    /// [`crate::queue::PEEK_SCAN`] of them; and the cursor to go on from (the seq
    /// of the last message looked at) when more follow it.
    pub(crate) fn peek_from(
        &self,
        name: &str,
        n: usize,
        after: Option<u64>,
        query: &Query,
    ) -> Result<(Vec<PeekedMessage>, Option<u64>), BrokerError> {
        let store = self.retained_store(name)?;
        let end = store.stats().next_seq;
        let mut out = Vec::new();
        let mut last = None;
        let from = after.map_or(ReadFrom::First, |a| ReadFrom::Seq(a.saturating_add(1)));
        for item in store.read(from).take(crate::queue::PEEK_SCAN) {
            if out.len() == n {
                break;
            }
            let Ok(m) = item else { continue };
            last = Some(m.seq);
            let Some(p) = peeked(&m.body) else { continue };
            let data = serde_json::to_string(&p.data).unwrap_or_default();
            if query.matches(name, p.headers.as_ref(), &data) {
                out.push(p);
            }
        }
        let more = last.is_some_and(|seq| seq + 1 < end);
        Ok((out, last.filter(|_| more)))
    }

    fn retained_store(&self, name: &str) -> Result<Arc<dyn TopicStore>, BrokerError> {
        self.get(name).and_then(|t| t.store()).ok_or_else(|| {
            BrokerError::new(
                ErrorCode::NotRetained,
                format!("topic `{name}` is not retained: it keeps no messages to peek"),
            )
        })
    }

    /// Every retained topic's store, for retention by age.
    pub(crate) fn stores(&self) -> Vec<(Arc<str>, Arc<dyn TopicStore>)> {
        self.by_name
            .read()
            .values()
            .filter_map(|t| t.store().map(|s| (t.name.clone(), s)))
            .collect()
    }
}

/// A stored body is a `msg` delivery without its head: `"topic":..,"seq":..,...}`.
fn as_object(body: &[u8]) -> Option<serde_json::Value> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str(&format!("{{{text}")).ok()
}

fn peeked(body: &[u8]) -> Option<PeekedMessage> {
    let v = as_object(body)?;
    Some(PeekedMessage {
        msg: None,
        seq: v["seq"].as_u64(),
        time: v["time"].as_u64().unwrap_or(0),
        attempt: 0,
        expires: None,
        data: v.get("data").cloned().unwrap_or(serde_json::Value::Null),
        headers: v
            .get("headers")
            .and_then(|h| serde_json::from_value(h.clone()).ok()),
    })
}

/// Delivers a retained topic's messages in order, each once it is durable.
pub(super) async fn run_deliveries(
    topic: Arc<Topic>,
    mut work: mpsc::UnboundedReceiver<Deferred>,
    activity: Arc<Activity>,
) {
    while let Some(item) = work.recv().await {
        match item {
            Deferred::Msg {
                accepted,
                durable,
                done,
            } => {
                let result = durable.await;
                topic
                    .deferred_bytes
                    .fetch_sub(accepted.body.len(), Ordering::AcqRel);
                match result {
                    Ok(()) => {
                        topic.deliver(&accepted, &activity);
                        if let Some(done) = done {
                            done(Ok(accepted.seq));
                        }
                    }
                    Err(e) => {
                        if let Some(done) = done {
                            done(Err(e.into()));
                        }
                    }
                }
            }
            Deferred::Seal { durable, done } => {
                let result = durable.await;
                let state = topic.state.lock();
                for sub in state.matching.iter() {
                    sub.end(&topic.name);
                }
                drop(state);
                if let Some(done) = done {
                    done(result.map(|()| 0).map_err(BrokerError::from));
                }
            }
        }
    }
}

/// Replays a retained topic's log to one subscription up to seq `last`, then lets it
/// go live; ends it if the topic is sealed.
async fn replay(
    topic: Arc<Topic>,
    store: Arc<dyn TopicStore>,
    from: ReadFrom,
    last: u64,
    sub: Arc<Subscription>,
    activity: Arc<Activity>,
) {
    let mut reader = Some(store.read(from));
    let mut sent_up_to = 0u64;
    let mut idle_rounds = 0;
    while sent_up_to < last {
        let Some(r) = reader.take() else { break };
        let read = tokio::task::spawn_blocking(move || {
            let mut r = r;
            let mut batch = Vec::new();
            let mut caught_up = false;
            while batch.len() < REPLAY_CHUNK {
                match r.next() {
                    Some(item) => {
                        let stop = matches!(&item, Ok(m) if m.seq >= last);
                        batch.push(item);
                        if stop {
                            break;
                        }
                    }
                    None => {
                        caught_up = true;
                        break;
                    }
                }
            }
            (r, batch, caught_up)
        })
        .await;
        let Ok((r, batch, caught_up)) = read else {
            break;
        };
        reader = Some(r);
        for item in batch {
            match item {
                Ok(m) if m.seq <= last => {
                    sent_up_to = m.seq;
                    if !wait_for_room(&sub).await {
                        return;
                    }
                    deliver_stored(&sub, &topic.name, &m.body);
                    sub.replayed_to.store(m.seq, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => activity.record(
                    EventKind::Storage,
                    format!("topic {}: replay skipped a corrupt record: {e}", topic.name),
                ),
            }
        }
        if caught_up && sent_up_to < last {
            // What is left is not durable yet: wait for the fsync that covers it.
            let _ = store.sync().await;
            idle_rounds += 1;
            if idle_rounds > 3 {
                break; // a gap (an append that failed): nothing more to wait for
            }
        }
    }
    sub.go_live();
    if topic.state.lock().sealed {
        sub.end(&topic.name);
    }
}

/// Waits until the subscriber's outbound buffer is at most half full; false if it left.
async fn wait_for_room(sub: &Subscription) -> bool {
    match sub.session() {
        Some(session) => {
            let outbound = &session.outbound;
            outbound.wait_for_room(outbound.limit() / 2).await
        }
        None => true,
    }
}

/// Sends one stored message to a replaying subscription, through its filter.
fn deliver_stored(sub: &Subscription, topic: &str, body: &[u8]) {
    if sub.hides(topic) {
        return;
    }
    if let Some(filter) = &sub.filter {
        let Some(v) = as_object(body) else { return };
        let headers: Option<Headers> = v
            .get("headers")
            .and_then(|h| serde_json::from_value(h.clone()).ok());
        let data = v
            .get("data")
            .map(|d| d.to_string())
            .unwrap_or_else(|| "null".into());
        if !filter.matches(&MessageView::new(topic, headers.as_ref(), &data)) {
            return;
        }
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    if let Some(session) = sub.session() {
        let _ = session.push(OutItem::Msg {
            head: &sub.head,
            body: text,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use parking_lot::Mutex;

    use super::*;
    use crate::store::{
        Appended, Retention, RetentionOutcome, StoreError, StoreStats, TicketSender, TopicReader,
    };

    /// A retained topic's store whose appends become durable only when the test
    /// says so: a disk that has stalled.
    #[derive(Default)]
    struct StalledDisk {
        next: Mutex<u64>,
        unsynced: Mutex<Vec<TicketSender>>,
    }

    impl StalledDisk {
        fn sync_all(&self) {
            for tx in self.unsynced.lock().drain(..) {
                tx.resolve(Ok(()));
            }
        }
    }

    impl TopicStore for StalledDisk {
        fn append(&self, _time_ms: u64, _body: &[u8]) -> Result<Appended, StoreError> {
            let mut next = self.next.lock();
            *next += 1;
            let (tx, durable) = Ticket::pending(Arc::from(Path::new("stalled")));
            self.unsynced.lock().push(tx);
            Ok(Appended {
                seq: *next,
                durable,
            })
        }
        fn read(&self, _from: ReadFrom) -> TopicReader {
            unreachable!("nothing reads in this test")
        }
        fn set_retention(&self, _retention: Retention) -> Result<(), StoreError> {
            Ok(())
        }
        fn apply_retention(&self, _now_ms: u64) -> Result<RetentionOutcome, StoreError> {
            Ok(RetentionOutcome::default())
        }
        fn seal(&self) -> Result<Ticket, StoreError> {
            Ok(Ticket::ready(Ok(())))
        }
        fn is_sealed(&self) -> bool {
            false
        }
        fn sync(&self) -> Ticket {
            Ticket::ready(Ok(()))
        }
        fn stats(&self) -> StoreStats {
            StoreStats {
                next_seq: *self.next.lock() + 1,
                ..StoreStats::default()
            }
        }
        fn delete(&self) -> Ticket {
            Ticket::ready(Ok(()))
        }
    }

    /// A retained topic of the cluster: each seq its stream hands back reaches
    /// a subscription once, in order; one after a gap waits for it (`Gap`)
    /// unless forced; a topic not retained here is `Unknown`.
    #[tokio::test]
    async fn the_clusters_messages_are_handed_on_once_in_seq_order() {
        use crate::cluster::retained::Heard;
        use crate::cluster::subject::Remote;
        use crate::topic::{TailBuffer, Target};
        let topics = Topics::new(
            Arc::new(Activity::default()),
            tokio::runtime::Handle::current(),
        );
        let msg = |n: u64| Remote {
            time: 1_000 + n,
            headers: None,
            data: n.to_string(),
        };
        assert_eq!(
            topics.deliver_retained("t", 1, &msg(1), false).0,
            Heard::Unknown
        );
        topics
            .retain("t", Arc::new(StalledDisk::default()))
            .unwrap();
        let tail = Arc::new(TailBuffer::new(10));
        let sub = Subscription::new(1, "s".into(), "t".into(), None, Target::Tail(tail.clone()));
        topics.subscribe(Arc::new(sub), || {});
        let heard: Vec<(Heard, u64)> = [
            (1, false),
            (1, false),
            (2, false),
            (4, false),
            (4, true),
            (3, true),
        ]
        .into_iter()
        .map(|(seq, force)| topics.deliver_retained("t", seq, &msg(seq), force))
        .collect();
        assert_eq!(
            heard,
            vec![
                (Heard::Delivered, 1),
                (Heard::Delivered, 0),
                (Heard::Delivered, 1),
                (Heard::Gap(2), 0),
                (Heard::Delivered, 1),
                (Heard::Delivered, 0),
            ]
        );
        let got: Vec<(u64, u64, String)> = tail
            .drain(10)
            .into_iter()
            .map(|m| (m.seq, m.time, m.data.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1_001, "1".to_string()),
                (2, 1_002, "2".to_string()),
                (4, 1_004, "4".to_string())
            ]
        );
        assert_eq!(topics.heard("t"), Some(4));
    }

    /// What waits for the disk is bounded in bytes: past the bound a publish is
    /// refused with `limit`, and once the disk catches up publishing goes on.
    #[tokio::test]
    async fn messages_waiting_for_a_stalled_disk_are_bounded() {
        let topics = Topics::new(
            Arc::new(Activity::default()),
            tokio::runtime::Handle::current(),
        );
        let disk = Arc::new(StalledDisk::default());
        topics.retain("t", disk.clone()).unwrap();
        let data = format!("\"{}\"", "x".repeat(1 << 20));
        let mut accepted = 0usize;
        let refused = loop {
            match topics.publish("t", &data, None, None, 1, &mut None) {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted <= 100, "a stalled disk took {accepted} MiB");
        };
        assert_eq!(refused.code, ErrorCode::Limit);
        // Each message is its 1 MiB of data and a few bytes of envelope: the one
        // that takes the waiting bytes past the bound is the last accepted.
        assert_eq!(accepted, MAX_DEFERRED_BYTES >> 20);
        disk.sync_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while topics
            .publish("t", &data, None, None, 1, &mut None)
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "never took appends again"
            );
            tokio::task::yield_now().await;
        }
    }
}
