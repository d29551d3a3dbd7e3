//! The scenarios `--scenarios` names, how each is parsed, and which broker runs
//! which; one file per scenario, plus the publisher loop they share.

mod filters;
mod idle;
mod publisher;
mod pubsub;
mod queue;
mod replay;
mod slow;
mod watch;

pub(crate) use idle::{idle, IdleOutcome};
pub(crate) use publisher::{DRAIN, WINDOW};
pub(crate) use slow::{slow, SlowOutcome};
pub(crate) use watch::{watch, WatchOutcome};

use crate::endpoints::Endpoints;
use crate::error::BenchError;
use crate::measure::Outcome;
use crate::{BenchArgs, Target};

/// One entry of `--scenarios`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scenario {
    PubSub(usize),
    /// 1 sender, N consumers; `durable` puts the queue on disk (the protocol's
    /// default), else it is declared in memory.
    Queue {
        consumers: usize,
        durable: bool,
    },
    Filters {
        subs: usize,
        filtered: bool,
    },
    /// N concurrent senders, each waiting for its stored confirm (durable queue).
    Durable(usize),
    /// N senders, each keeping 100 confirmed sends in flight, one per frame;
    /// `durable` puts the queue on disk, else in memory.
    Pipelined {
        senders: usize,
        durable: bool,
    },
    /// Fill a retained topic with N MiB, then time a replay from the first message.
    Replay(usize),
    /// Open N idle connections and read the broker's resident memory.
    Idle(usize),
    /// Hold N jobs in flight and N/5 topics, and count what each kind of
    /// `watch` sends a second.
    Watch(usize),
    /// A burst of N MB to a steady slower reader, a stuck one and a fast one.
    Slow(usize),
}

impl Scenario {
    /// Parses `kind:N`.
    pub(crate) fn parse(s: &str) -> Result<Scenario, BenchError> {
        let (kind, n) = s.split_once(':').ok_or_else(|| BenchError::Scenario {
            scenario: s.to_string(),
            expected: "pubsub:N or queue:N",
        })?;
        let n: usize = n.parse().map_err(|source| BenchError::ScenarioCount {
            scenario: s.to_string(),
            source,
        })?;
        match kind {
            "pubsub" if n > 0 => Ok(Scenario::PubSub(n)),
            "queue" if n > 0 => Ok(Scenario::Queue {
                consumers: n,
                durable: false,
            }),
            "dqueue" if n > 0 => Ok(Scenario::Queue {
                consumers: n,
                durable: true,
            }),
            "filters" if n > 0 => Ok(Scenario::Filters {
                subs: n,
                filtered: true,
            }),
            "nofilters" if n > 0 => Ok(Scenario::Filters {
                subs: n,
                filtered: false,
            }),
            "durable" if n > 0 => Ok(Scenario::Durable(n)),
            "psend" if n > 0 => Ok(Scenario::Pipelined {
                senders: n,
                durable: true,
            }),
            "psendmem" if n > 0 => Ok(Scenario::Pipelined {
                senders: n,
                durable: false,
            }),
            "replay" if n > 0 => Ok(Scenario::Replay(n)),
            "idle" if n > 0 => Ok(Scenario::Idle(n)),
            "watch" if n > 0 => Ok(Scenario::Watch(n)),
            "slow" if n > 0 => Ok(Scenario::Slow(n)),
            _ => Err(BenchError::Scenario {
                scenario: s.to_string(),
                expected: "pubsub:N, queue:N, dqueue:N, filters:N, nofilters:N, durable:N, psend:N, psendmem:N, replay:MiB, idle:N, watch:N or slow:MB with N > 0",
            }),
        }
    }

    /// Runs this scenario on `subject` against the broker at `ends` (`pubsub` and
    /// `queue` put their receivers on `ends`' subscriber URLs, every other
    /// scenario runs all on `ends.publish`); `None` if `target` has no
    /// counterpart for it (queues, filters and retention are not core NATS).
    pub(crate) async fn run(
        self,
        ends: &Endpoints,
        target: Target,
        subject: &str,
        args: &BenchArgs,
    ) -> Result<Option<Outcome>, BenchError> {
        let url = ends.publish.as_str();
        let outcome = match (self, target) {
            (Scenario::PubSub(n), target) => pubsub::pubsub(ends, target, subject, n, args).await?,
            (Scenario::Queue { consumers, durable }, Target::Switchyard) => {
                queue::queue(ends, subject, consumers, durable, args).await?
            }
            (Scenario::Filters { subs, filtered }, Target::Switchyard) => {
                filters::filters(url, subject, subs, filtered, args).await?
            }
            (Scenario::Durable(n), Target::Switchyard) => {
                queue::durable(url, subject, n, args).await?
            }
            (Scenario::Pipelined { senders, durable }, Target::Switchyard) => {
                queue::pipelined(url, subject, senders, durable, args).await?
            }
            (Scenario::Replay(mib), Target::Switchyard) => {
                replay::replay(url, subject, mib).await?
            }
            (
                Scenario::Queue { .. }
                | Scenario::Filters { .. }
                | Scenario::Durable(_)
                | Scenario::Pipelined { .. }
                | Scenario::Replay(_),
                Target::Nats,
            ) => return Ok(None),
            // Run by `run` itself: they report in their own shape.
            (Scenario::Idle(_) | Scenario::Watch(_) | Scenario::Slow(_), _) => return Ok(None),
        };
        Ok(Some(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse() {
        assert!(matches!(
            Scenario::parse("pubsub:10"),
            Ok(Scenario::PubSub(10))
        ));
        assert!(matches!(
            Scenario::parse("queue:4"),
            Ok(Scenario::Queue {
                consumers: 4,
                durable: false
            })
        ));
        assert!(matches!(
            Scenario::parse("dqueue:1"),
            Ok(Scenario::Queue {
                consumers: 1,
                durable: true
            })
        ));
        assert!(matches!(
            Scenario::parse("idle:5000"),
            Ok(Scenario::Idle(5000))
        ));
        assert!(matches!(
            Scenario::parse("watch:10000"),
            Ok(Scenario::Watch(10000))
        ));
        assert!(Scenario::parse("queue:0").is_err());
        assert!(Scenario::parse("fanout").is_err());
    }
}
