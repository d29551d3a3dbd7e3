//! `describe`: the page of one queue or topic, with its last 15 minutes from the
//! history (`history.rs`).

use super::Broker;
use crate::error::BrokerError;
use crate::page::{QueuePage, TopicPage};
use crate::topic::MAX_PAGE_ROWS;

impl Broker {
    /// A queue's settings, consumers (at most 1,000), dead-letter queue and history.
    pub fn describe_queue(&self, name: &str) -> Result<QueuePage, BrokerError> {
        let inner = &self.inner;
        let mut page = self.existing_queue(name)?.page();
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
        Ok(page)
    }

    /// A topic's row, subscribers (at most 1,000) and history.
    pub fn describe_topic(&self, name: &str) -> Result<TopicPage, BrokerError> {
        let mut page = self.inner.topics.page(name)?;
        page.history = self.inner.history.topic(name);
        Ok(page)
    }
}
