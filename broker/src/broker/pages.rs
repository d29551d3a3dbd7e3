//! `describe`: the page of one queue or topic, with its last 15 minutes from the
//! history (`history.rs`).

use serde::Serialize;

use super::Broker;
use crate::error::BrokerError;
use crate::page::{QueuePage, TopicPage};
use crate::topic::MAX_PAGE_ROWS;

/// Room in an answer for what is not the page: `{"ev":"ok","id":...,"queue":}`.
const ANSWER_OVERHEAD: usize = 256;

/// A subscription's filter text shown at most this long (a filter may be as long
/// as `max_payload`).
const MAX_FILTER_SHOWN: usize = 256;

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

/// Cuts `page` to `budget` bytes of JSON: the rows of `rows` from the last, then
/// the oldest samples (`drop_oldest` takes one from every list); true if it cut.
fn bound<P: Serialize, R>(
    page: &mut P,
    budget: usize,
    rows: impl Fn(&mut P) -> &mut Vec<R>,
    drop_oldest: impl Fn(&mut P) -> bool,
) -> bool {
    let mut cut = false;
    // Halving first, then one at a time: a page of 1,000 long rows is cut in a
    // handful of serializations, not a thousand.
    while json_len(page) > budget && !rows(page).is_empty() {
        let n = rows(page).len();
        rows(page).truncate(n / 2);
        cut = true;
    }
    while json_len(page) > budget && drop_oldest(page) {
        cut = true;
    }
    cut
}

impl Broker {
    /// A queue's settings, consumers (at most 1,000), dead-letter queue and history.
    pub fn describe_queue(&self, name: &str) -> Result<QueuePage, BrokerError> {
        let inner = &self.inner;
        let mut page = self.queue_to_describe(name)?.page();
        self.describe_across(&mut page);
        page.consumers.truncate(MAX_PAGE_ROWS);
        inner
            .history
            .mark_queues(std::slice::from_mut(&mut page.stats));
        let dead_letter = page
            .dead_letter
            .as_deref()
            .and_then(|dl| inner.queues.read().get(dl).cloned());
        page.dead_letter_stats = dead_letter.map(|q| {
            let mut stats = q.stats();
            inner.history.mark_queues(std::slice::from_mut(&mut stats));
            stats
        });
        page.history = inner.history.queue(name);
        page.truncated = bound(
            &mut page,
            self.page_budget(),
            |p| &mut p.consumers,
            |p| {
                let h = &mut p.history;
                if h.ready.is_empty() {
                    return false;
                }
                for column in [
                    &mut h.ready,
                    &mut h.unacked,
                    &mut h.msgs_in,
                    &mut h.acked,
                    &mut h.redelivered,
                ] {
                    column.remove(0);
                }
                true
            },
        );
        Ok(page)
    }

    /// What one page answer may hold: half of a client's outbound buffer, as a
    /// `peek`'s or a `stats`' answer, so asking never gets the asker kicked.
    fn page_budget(&self) -> usize {
        (self.inner.config.max_pending / 2).saturating_sub(ANSWER_OVERHEAD)
    }

    /// A topic's row, subscribers (at most 1,000) and history.
    pub fn describe_topic(&self, name: &str) -> Result<TopicPage, BrokerError> {
        let mut page = self.inner.topics.page(name)?;
        for sub in &mut page.subscribers {
            if let Some(filter) = &mut sub.filter {
                if let Some((at, _)) = filter.char_indices().nth(MAX_FILTER_SHOWN) {
                    filter.truncate(at);
                    filter.push('…');
                }
            }
        }
        page.history = self.inner.history.topic(name);
        page.truncated = bound(
            &mut page,
            self.page_budget(),
            |p| &mut p.subscribers,
            |p| {
                let h = &mut p.history;
                if h.msgs_in.is_empty() {
                    return false;
                }
                for column in [&mut h.msgs_in, &mut h.msgs_out, &mut h.subscribers] {
                    column.remove(0);
                }
                true
            },
        );
        Ok(page)
    }
}
