//! A queue's settings: what `declare` sets, with their defaults.

use std::time::Duration;

use crate::protocol::QueueOptions;

/// Default time a consumer has to ack a job.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_millis(30_000);

/// A queue's settings, from `declare` or the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueConfig {
    pub(crate) durable: bool,
    pub(crate) max_len: Option<u64>,
    pub(crate) ack_timeout: Duration,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) dead_letter: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            durable: true,
            max_len: None,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            max_attempts: None,
            dead_letter: None,
        }
    }
}

impl QueueConfig {
    pub(crate) fn apply(&mut self, options: &QueueOptions) {
        if let Some(d) = options.durable {
            self.durable = d;
        }
        if let Some(n) = options.max_len {
            self.max_len = Some(n);
        }
        if let Some(ms) = options.ack_timeout_ms {
            self.ack_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = options.max_attempts {
            self.max_attempts = Some(n);
        }
        if let Some(dl) = &options.dead_letter {
            self.dead_letter = Some(dl.clone());
        }
    }
}
