//! A queue's settings: what `declare` sets, with their defaults, and what the store
//! keeps of them for a durable queue (its [`QueueSettings`]).

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::protocol::QueueOptions;
use crate::store::QueueSettings;

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
    /// The `ack_timeout_ms` a `declare` may set: 100 ms to 24 hours. Below that, a
    /// job would be redelivered faster than any consumer can ack it.
    pub(crate) const ACK_TIMEOUT_MS: RangeInclusive<u64> = 100..=86_400_000;

    /// The `max_attempts` a `declare` may set: at least 1 (absent: no limit).
    pub(crate) const MAX_ATTEMPTS: RangeInclusive<u64> = 1..=u32::MAX as u64;

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

impl QueueConfig {
    /// What the store keeps of a durable queue's configuration.
    pub(crate) fn settings(&self) -> QueueSettings {
        QueueSettings {
            max_len: self.max_len,
            ack_timeout_ms: u64::try_from(self.ack_timeout.as_millis()).unwrap_or(u64::MAX),
            max_attempts: self.max_attempts,
            dead_letter: self.dead_letter.clone(),
        }
    }

    /// The configuration of a durable queue brought back with these settings.
    pub(crate) fn durable_from(settings: &QueueSettings) -> QueueConfig {
        QueueConfig {
            durable: true,
            max_len: settings.max_len,
            // Settings stored before the bounds were checked come back within them.
            ack_timeout: Duration::from_millis(
                settings
                    .ack_timeout_ms
                    .clamp(*Self::ACK_TIMEOUT_MS.start(), *Self::ACK_TIMEOUT_MS.end()),
            ),
            max_attempts: settings.max_attempts.map(|n| n.max(1)),
            dead_letter: settings.dead_letter.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_queue_config_survives_the_round_trip_through_the_store() {
        let config = QueueConfig {
            durable: true,
            max_len: Some(5),
            ack_timeout: Duration::from_millis(100),
            max_attempts: Some(2),
            dead_letter: Some("dl".into()),
        };
        let settings = config.settings();
        assert_eq!(
            settings,
            QueueSettings {
                max_len: Some(5),
                ack_timeout_ms: 100,
                max_attempts: Some(2),
                dead_letter: Some("dl".into()),
            }
        );
        assert_eq!(QueueConfig::durable_from(&settings), config);
        let defaults = QueueConfig::default();
        assert_eq!(QueueConfig::durable_from(&defaults.settings()), defaults);
    }
}
