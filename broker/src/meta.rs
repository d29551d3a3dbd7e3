//! What was declared about a durable queue, between the broker's terms
//! ([`QueueConfig`]) and the store's ([`QueueSettings`]), which the storage backend
//! keeps with the queue's messages and hands back at start-up.

use std::time::Duration;

use crate::queue::QueueConfig;
use crate::store::QueueSettings;

/// What the store keeps of a durable queue's configuration.
pub(crate) fn queue_settings(config: &QueueConfig) -> QueueSettings {
    QueueSettings {
        max_len: config.max_len,
        ack_timeout_ms: u64::try_from(config.ack_timeout.as_millis()).unwrap_or(u64::MAX),
        max_attempts: config.max_attempts,
        dead_letter: config.dead_letter.clone(),
    }
}

/// The configuration of a durable queue brought back with these settings.
pub(crate) fn queue_config(settings: &QueueSettings) -> QueueConfig {
    QueueConfig {
        durable: true,
        max_len: settings.max_len,
        ack_timeout: Duration::from_millis(settings.ack_timeout_ms),
        max_attempts: settings.max_attempts,
        dead_letter: settings.dead_letter.clone(),
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
        let settings = queue_settings(&config);
        assert_eq!(
            settings,
            QueueSettings {
                max_len: Some(5),
                ack_timeout_ms: 100,
                max_attempts: Some(2),
                dead_letter: Some("dl".into()),
            }
        );
        assert_eq!(queue_config(&settings), config);
        let defaults = QueueConfig::default();
        assert_eq!(queue_config(&queue_settings(&defaults)), defaults);
    }
}
