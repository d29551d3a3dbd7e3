//! Webhook consumers: a queue consumer the broker runs itself, which delivers each
//! job as an HTTP `POST` and settles it by the answer. A 2xx acks the job (and for
//! a `request`, its body is the reply); any other status, a timeout or a refused
//! connection nacks it back to the queue after a backoff that grows with its
//! attempts, so `max_attempts` and dead letters apply as to any consumer.
//!
//! A webhook is a client of the broker's own: a session like a connection's, named
//! `webhook URL`, with one consumer (cid `webhook`) whose prefetch is the webhook's
//! `max_in_flight`. So the console, `stats` and `/metrics` show it as any other
//! client, and `kick` stops it (its jobs in flight go back to the queue). It is not
//! tied to the connection that asked for it: it runs until kicked, until its queue
//! is deleted, or until the broker stops (webhooks in the config file start again
//! with it).

pub(crate) mod http;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::broker::{Broker, Creator, Peer, ToDispatch};
use crate::error::{BrokerError, ErrorCode};
use crate::outbound::Batch;
use crate::protocol::{out_of_range, Payload};
use crate::queue::{Queue, Settle};
use crate::stats::EventKind;
use http::Target;

/// What `consume` with a `webhook`, or a config file's `[[webhooks]]`, asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Where each job is posted: `http://host[:port][/path]`.
    pub url: String,
    /// Jobs posted and not yet answered, at most (the consumer's prefetch).
    #[serde(default)]
    pub max_in_flight: Option<u64>,
    /// How long one `POST` may take, connecting included.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A webhook the config file starts with the broker (`[[webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredWebhook {
    /// The queue it consumes.
    pub queue: String,
    /// Where and how it posts.
    pub spec: WebhookSpec,
}

/// Checks a webhook's settings as `consume` would, for a config file to refuse a
/// bad one with its line.
pub fn check(spec: &WebhookSpec) -> Result<(), String> {
    Webhook::from_spec(spec).map(|_| ()).map_err(|e| e.message)
}

/// The `max_in_flight` a webhook may have (default 16): a consumer's prefetch.
pub const MAX_IN_FLIGHT: RangeInclusive<u64> = crate::protocol::PREFETCH;

/// The `timeout_ms` a webhook may have (default 10 s): 100 ms to 10 minutes.
pub const TIMEOUT_MS: RangeInclusive<u64> = 100..=600_000;

const DEFAULT_IN_FLIGHT: u32 = 16;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The wait before a failed job goes back to its queue: 100 ms at its first
/// attempt, doubling with each, at most 10 s.
fn backoff(attempt: u64) -> Duration {
    let exp = attempt.saturating_sub(1).min(16) as u32;
    Duration::from_millis(100u64.saturating_mul(1 << exp).min(10_000))
}

/// A checked [`WebhookSpec`].
struct Webhook {
    target: Target,
    /// The queue it consumes, whose ack deadline bounds each delivery.
    queue: Option<Arc<Queue>>,
    max_in_flight: u32,
    timeout: Duration,
    /// Whether the last delivery failed: failures are logged when they begin and
    /// when they end, not one line per job.
    failing: AtomicBool,
}

impl Webhook {
    fn from_spec(spec: &WebhookSpec) -> Result<Webhook, BrokerError> {
        let target =
            Target::parse(&spec.url).map_err(|e| BrokerError::new(ErrorCode::BadFrame, e))?;
        let max_in_flight = match spec.max_in_flight {
            Some(n) if !MAX_IN_FLIGHT.contains(&n) => {
                return Err(out_of_range("webhook.max_in_flight", &MAX_IN_FLIGHT))
            }
            Some(n) => n as u32,
            None => DEFAULT_IN_FLIGHT,
        };
        let timeout_ms = match spec.timeout_ms {
            Some(ms) if !TIMEOUT_MS.contains(&ms) => {
                return Err(out_of_range("webhook.timeout_ms", &TIMEOUT_MS))
            }
            Some(ms) => ms,
            None => DEFAULT_TIMEOUT_MS,
        };
        Ok(Webhook {
            target,
            queue: None,
            max_in_flight,
            timeout: Duration::from_millis(timeout_ms),
            failing: AtomicBool::new(false),
        })
    }
}

/// The cid of a webhook's one consumer.
const CID: &str = "webhook";

impl Broker {
    /// Starts a webhook consumer of `queue`; returns its client id (`c17`), which
    /// `kick` stops. `actor` is who asked, for the event log.
    pub(crate) fn start_webhook(
        &self,
        queue: &str,
        spec: &WebhookSpec,
        creator: &Creator,
        actor: &str,
    ) -> Result<Arc<str>, BrokerError> {
        let mut hook = Webhook::from_spec(spec)?;
        let consumed = self.queue(queue, Some(creator))?;
        let ack_timeout = consumed.ack_timeout();
        if hook.timeout >= ack_timeout {
            return Err(BrokerError::new(
                ErrorCode::BadFrame,
                format!(
                    "webhook.timeout_ms ({}) must be below queue `{queue}`'s ack_timeout_ms ({}): its jobs would be taken back while their POST still waits",
                    hook.timeout.as_millis(),
                    ack_timeout.as_millis()
                ),
            ));
        }
        hook.queue = Some(consumed);
        let hook = Arc::new(hook);
        // The address column shows the receiver when its host is an address.
        let addr = hook
            .target
            .authority
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let peer = self.open_session(addr);
        *peer.session.hello_name.lock() = Some(format!("webhook {}", hook.target.url));
        if let Err(e) = self.consume(&peer, creator, queue, CID, hook.max_in_flight, || {}) {
            self.close_session(&peer, &format!("webhook not started: {e}"));
            return Err(e);
        }
        self.record_event(
            EventKind::Other,
            format!(
                "{actor} started {} on {queue}: up to {} jobs at a time",
                peer.session.describe(),
                hook.max_in_flight
            ),
        );
        let id = peer.session.name_id.clone();
        self.runtime().spawn(run(self.clone(), peer, hook));
        Ok(id)
    }
}

/// Takes the jobs the queue hands the webhook's session and posts each; ends when
/// the session is kicked, its queue deleted, or the broker stops.
async fn run(broker: Broker, peer: Arc<Peer>, hook: Arc<Webhook>) {
    let session = peer.session.clone();
    let mut shutdown = broker.shutdown_signal();
    let mut batch = Batch::default();
    // The deliveries under way: they end with the webhook, whose jobs go back.
    let mut deliveries = tokio::task::JoinSet::new();
    let why = 'run: loop {
        while deliveries.try_join_next().is_some() {}
        session.outbound.take(&mut batch);
        if !batch.is_empty() {
            for line in batch.text.split('\n') {
                match serde_json::from_str::<Value>(line) {
                    Ok(frame) if frame["ev"] == "job" => {
                        let (broker, peer, hook) = (broker.clone(), peer.clone(), hook.clone());
                        deliveries.spawn(deliver(broker, peer, hook, frame));
                    }
                    Ok(frame) if frame["ev"] == "cancelled" => {
                        session.outbound.written(&batch);
                        break 'run "its queue was deleted".to_string();
                    }
                    _ => tracing::debug!("webhook {}: ignored {line}", hook.target.url),
                }
            }
            session.outbound.written(&batch);
            batch.clear();
            continue;
        }
        if let Some(reason) = session.outbound.kick_reason() {
            break format!("kicked: {reason}");
        }
        if *shutdown.borrow() {
            break "the broker is stopping".to_string();
        }
        tokio::select! {
            _ = session.outbound.wait() => {}
            _ = shutdown.changed() => {}
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
    };
    deliveries.abort_all();
    broker.close_session(&peer, &why);
}

/// Posts one job and settles it by the answer.
async fn deliver(broker: Broker, peer: Arc<Peer>, hook: Arc<Webhook>, job: Value) {
    let Some(tag) = job["tag"].as_u64() else {
        return;
    };
    let delivered = std::time::Instant::now();
    let attempt = job["attempt"].as_u64().unwrap_or(1);
    let reply = job["reply"] == true;
    let mut body = json!({
        "queue": job["queue"],
        "msg": job["msg"],
        "attempt": attempt,
        "data": job["data"],
    });
    if let Some(h) = job.get("headers") {
        body["headers"] = h.clone();
    }
    if reply {
        body["reply"] = json!(true);
    }
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_default();
    let headers = [
        ("X-Switchyard-Queue", text(&job["queue"])),
        ("X-Switchyard-Msg", text(&job["msg"])),
        ("X-Switchyard-Attempt", attempt.to_string()),
    ];
    let max_body = broker.config().max_payload;
    let body = body.to_string();
    let answer = http::post(
        &hook.target,
        &headers,
        body.as_bytes(),
        hook.timeout,
        max_body,
    )
    .await;
    let how = match answer {
        Ok(a) if (200..300).contains(&a.status) => {
            report(&broker, &peer, &hook, None);
            if reply {
                Settle::Reply(reply_data(&a.body))
            } else {
                Settle::Ack
            }
        }
        outcome => {
            let why = match outcome {
                Ok(a) => format!("answered {}", a.status),
                Err(e) => e,
            };
            report(&broker, &peer, &hook, Some(&why));
            // The job goes back before its ack deadline would take it back anyway
            // (which would hand it straight back, with no wait).
            let left = (hook.queue.as_ref()).map_or(Duration::MAX, |q| {
                q.ack_timeout().saturating_sub(delivered.elapsed())
            });
            tokio::time::sleep(backoff(attempt).min(left / 2)).await;
            Settle::Nack { requeue: true }
        }
    };
    let mut to_dispatch = ToDispatch::default();
    // An unknown tag is a job taken back meanwhile (ack timeout, kick): nothing to do.
    let _ = broker.settle(&peer, tag, how, |_| {}, &mut to_dispatch);
    broker.dispatch(&mut to_dispatch);
}

/// A reply from a receiver's body: its JSON, its text as a JSON string if it is
/// not JSON, `null` if empty.
fn reply_data(body: &[u8]) -> Payload {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
    };
    Payload::from_value(&value)
}

/// Logs and records a webhook's failures when they begin and when they end.
fn report(broker: &Broker, peer: &Peer, hook: &Webhook, failure: Option<&str>) {
    let was = hook.failing.swap(failure.is_some(), Ordering::Relaxed);
    let who = peer.session.describe();
    match (was, failure) {
        (false, Some(why)) => {
            tracing::warn!("{who} is failing: {why}; its jobs go back to the queue");
            broker.record_event(EventKind::Other, format!("{who} is failing: {why}"));
        }
        (true, None) => {
            tracing::info!("{who} delivers again");
            broker.record_event(EventKind::Other, format!("{who} delivers again"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_to_10_s() {
        let waits: Vec<u128> = [1, 2, 3, 7, 8, 50]
            .into_iter()
            .map(|a| backoff(a).as_millis())
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 6_400, 10_000, 10_000]);
    }

    #[test]
    fn specs_are_checked_with_their_ranges() {
        let spec = |v: Value| serde_json::from_value::<WebhookSpec>(v).unwrap();
        let hook = Webhook::from_spec(&spec(json!({"url": "http://127.0.0.1:1/h"}))).unwrap();
        assert_eq!(
            (hook.max_in_flight, hook.timeout),
            (16, Duration::from_secs(10))
        );
        let e = Webhook::from_spec(&spec(json!({"url": "http://h/", "max_in_flight": 0})))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "bad_frame: field `webhook.max_in_flight` must be from 1 to 10000"
        );
        let e = Webhook::from_spec(&spec(json!({"url": "http://h/", "timeout_ms": 99})))
            .err()
            .unwrap();
        assert!(e
            .to_string()
            .contains("`webhook.timeout_ms` must be from 100 to 600000"));
        assert!(Webhook::from_spec(&spec(json!({"url": "https://h/"}))).is_err());
        assert!(
            serde_json::from_value::<WebhookSpec>(json!({"url": "http://h/", "x": 1})).is_err()
        );
    }

    #[test]
    fn a_reply_is_the_body_as_json_or_text_or_null() {
        assert_eq!(
            reply_data(br#"{"a":1}"#),
            Payload::from_value(&json!({"a": 1}))
        );
        assert_eq!(reply_data(b"plain"), Payload::from_value(&json!("plain")));
        assert_eq!(reply_data(b" \n"), Payload::from_value(&Value::Null));
    }
}
