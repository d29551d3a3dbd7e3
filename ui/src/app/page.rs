//! A queue's or a topic's page: opened with Enter on its row, asked of the broker
//! (`describe`) when opened and once a second while open, through the source like
//! any command, so it works against a remote broker too, and shows what the broker
//! sampled before the console was attached (docs/PROTOCOL.md, `describe`).

use std::time::{Duration, Instant};

use switchyard_broker::page::{QueuePage, TopicPage};
use switchyard_broker::{Command, CommandOutcome, PeekTarget};

use super::outcomes::Job;
use super::{App, Level};
use crate::reply::CommandResult;
use crate::source::Source;
use crate::view::View;

/// How often an open page is asked for again.
pub const PAGE_EVERY: Duration = Duration::from_secs(1);

/// What a page shows: the broker's answer, once it came.
#[derive(Debug, Clone, PartialEq)]
pub enum PageData {
    /// Nothing yet: the first `describe` is on its way.
    Waiting,
    /// A queue's page.
    Queue(Box<QueuePage>),
    /// A topic's page.
    Topic(Box<TopicPage>),
    /// The last `describe` failed (the queue was deleted, say).
    Failed(String),
}

/// An open page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// What it is the page of.
    pub target: PeekTarget,
    /// The latest answer.
    pub data: PageData,
    /// Each consumer's acks a second, by the two latest answers, in the order of
    /// the page's consumers (a consumer new in the latest has none yet).
    pub ack_rates: Vec<Option<f64>>,
    /// The queue's requests a second, by the two latest answers.
    pub request_rate: Option<f64>,
    /// The first row of the consumers' or subscribers' list shown.
    pub scroll: usize,
    /// When the latest answer came, on the app's clock.
    answered: Option<Instant>,
    /// When it was last asked, on the app's clock; `None` once answered.
    asked: Option<Instant>,
}

impl Page {
    fn new(target: PeekTarget) -> Page {
        Page {
            target,
            data: PageData::Waiting,
            ack_rates: Vec::new(),
            request_rate: None,
            scroll: 0,
            answered: None,
            asked: None,
        }
    }

    /// The queue's or topic's name.
    pub fn name(&self) -> &str {
        match &self.target {
            PeekTarget::Queue(n) | PeekTarget::Topic(n) => n,
        }
    }

    /// Whether it is a queue's page.
    pub fn is_queue(&self) -> bool {
        matches!(self.target, PeekTarget::Queue(_))
    }

    fn take(&mut self, result: CommandResult, now: Instant) {
        let data = match result {
            Ok(CommandOutcome::QueuePage(page)) => PageData::Queue(page),
            Ok(CommandOutcome::TopicPage(page)) => PageData::Topic(page),
            Ok(other) => PageData::Failed(format!("unexpected answer {other:?}")),
            Err(e) => PageData::Failed(e.to_string()),
        };
        self.request_rate = match (&self.data, &data, self.answered) {
            (PageData::Queue(before), PageData::Queue(after), Some(then)) => {
                let secs = now.saturating_duration_since(then).as_secs_f64();
                (secs > 0.0).then(|| {
                    after.stats.requests.saturating_sub(before.stats.requests) as f64 / secs
                })
            }
            _ => None,
        };
        self.ack_rates = match (&self.data, &data, self.answered) {
            (PageData::Queue(before), PageData::Queue(after), Some(then)) => {
                let secs = now.saturating_duration_since(then).as_secs_f64();
                after
                    .consumers
                    .iter()
                    .map(|c| {
                        let prev = before
                            .consumers
                            .iter()
                            .find(|p| p.client == c.client && p.cid == c.cid)?;
                        (secs > 0.0).then(|| c.acked.saturating_sub(prev.acked) as f64 / secs)
                    })
                    .collect()
            }
            (_, PageData::Queue(after), _) => vec![None; after.consumers.len()],
            _ => Vec::new(),
        };
        self.data = data;
        self.answered = Some(now);
        self.asked = None;
    }
}

impl App {
    /// The open page, if any.
    pub fn shown_page(&self) -> Option<&Page> {
        self.page.as_ref()
    }

    /// Open the page of the selected queue or topic.
    pub(super) fn open_page(&mut self, source: &mut dyn Source) {
        let target = match self.view {
            View::Queues => self
                .selected(View::Queues)
                .map(|i| PeekTarget::Queue(self.snapshot.queues[i].name.clone())),
            View::Topics => self
                .selected(View::Topics)
                .map(|i| PeekTarget::Topic(self.snapshot.topics[i].name.clone())),
            _ => None,
        };
        let Some(target) = target else {
            return self.set_status(Level::Info, "Nothing selected");
        };
        self.page = Some(Page::new(target));
        self.ask_page(source);
    }

    /// Ask for the open page again if it is due: a second after its last answer,
    /// and never twice at once.
    pub(super) fn refresh_page(&mut self, source: &mut dyn Source) {
        let now = self.now();
        // Under a popup the page is not seen: asked again once it is.
        let due = self.overlay.is_none()
            && self.page.as_ref().is_some_and(|p| {
                p.asked.is_none()
                    && p.answered
                        .is_none_or(|at| now.saturating_duration_since(at) >= PAGE_EVERY)
            });
        if due {
            self.ask_page(source);
        }
    }

    fn ask_page(&mut self, source: &mut dyn Source) {
        let now = self.now();
        let Some(page) = &mut self.page else { return };
        page.asked = Some(now);
        let target = page.target.clone();
        let first = page.answered.is_none();
        self.start(
            source,
            Job::Describe {
                target: target.clone(),
                first,
            },
            vec![Command::Describe { target }],
        );
    }

    /// Take a `describe` answer into the page it was for (if still open).
    pub(super) fn finish_describe(&mut self, target: PeekTarget, result: CommandResult) {
        let now = self.now();
        match &mut self.page {
            Some(page) if page.target == target => page.take(result, now),
            _ => {}
        }
    }

    /// From a page: peek at its queue, or tail its topic.
    pub(super) fn open_from_page(&mut self, source: &mut dyn Source) {
        let Some(page) = &self.page else { return };
        match page.target.clone() {
            PeekTarget::Queue(queue) => self.open_peek(source, queue),
            PeekTarget::Topic(topic) => self.tail(source, topic),
        }
    }

    /// Close the page, back to its view.
    pub(super) fn close_page(&mut self) {
        self.page = None;
    }
}
