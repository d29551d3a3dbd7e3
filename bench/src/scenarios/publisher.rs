//! The publisher's loop every scenario shares (closed loop within a window of the
//! receivers, or open loop at `--rate`), and the progress receivers report to it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::broker::Ws;
use crate::error::BenchError;
use crate::measure::{histogram, Refused};
use crate::{BenchArgs, Target};

/// Messages per frame the publisher packs.
pub(crate) const BATCH: usize = 100;
/// How far (in messages) a closed-loop publisher may run ahead of its slowest receiver.
pub(crate) const WINDOW: u64 = 20_000;
/// Once the publisher is done, receivers take what is still on its way for as
/// long as something keeps arriving, until nothing has for this long; what has
/// not come by then counts as missing.
pub(crate) const DRAIN: Duration = Duration::from_secs(2);
/// The drain's bound however slowly things keep arriving (a backlog of a
/// window of jobs through a slow JetStream can take several seconds).
pub(crate) const DRAIN_AT_MOST: Duration = Duration::from_secs(60);
/// How long a publisher keeps sending warm-up messages until every receiver on
/// another node got one.
pub(crate) const WARM_UP: Duration = Duration::from_secs(10);

/// What every receiver task shares with the publisher.
pub(crate) struct Progress {
    /// Messages each receiver has taken so far.
    pub(crate) received: Vec<AtomicU64>,
    /// Whether each receiver has seen a warm-up message ([`warm_up`]).
    pub(crate) warm: Vec<AtomicBool>,
    /// Set when the publisher is done: receivers finish once nothing more comes.
    pub(crate) stop: AtomicBool,
}

impl Progress {
    /// Progress for `receivers` receivers, none taken yet.
    pub(crate) fn new(receivers: usize) -> Progress {
        Progress {
            received: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
            warm: (0..receivers).map(|_| AtomicBool::new(false)).collect(),
            stop: AtomicBool::new(false),
        }
    }

    /// What all receivers have taken together.
    pub(crate) fn total(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }

    /// What the receiver furthest behind has taken.
    pub(crate) fn slowest(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// A receiver task: its count and latencies once stopped.
pub(crate) type Receiver = tokio::task::JoinHandle<Result<(u64, Histogram<u64>), BenchError>>;

/// What [`drive`] measured.
pub(crate) struct Driven {
    /// What the receivers took, added up.
    pub(crate) received: u64,
    /// Messages the publisher sent.
    pub(crate) sent: u64,
    /// Sends the broker answered with an `error`.
    pub(crate) refused: Refused,
    pub(crate) elapsed: Duration,
    pub(crate) latency: Histogram<u64>,
}

/// The publisher's side of a scenario, the same for all: sends a frame from `build`
/// (given the message's timestamp) every time it may for `args.seconds`, either on
/// schedule (`--rate`, stamped with the intended send time) or at most `window`
/// messages ahead of what the receivers have taken (`taken`, in published messages);
/// then lets the receivers drain while they keep taking (until [`DRAIN`] passes
/// with nothing, at most [`DRAIN_AT_MOST`]), stops them and adds up their
/// counts and latencies; the elapsed time includes the drain. Every wait is
/// bounded by the deadline or the drain, so messages lost on the way slow the
/// run and show as missing, never hang it. The publisher reads what the broker
/// sends it between frames and counts `error`s (a refused `pub` or `send`:
/// `limit`, `unavailable`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive(
    ws: &mut Ws,
    args: &BenchArgs,
    progress: &Progress,
    origin: Instant,
    window: u64,
    taken: impl Fn(&Progress) -> u64,
    target: Target,
    mut build: impl FnMut(u64) -> Vec<String>,
    receivers: Vec<Receiver>,
) -> Result<Driven, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut refused = Refused::default();
    while Instant::now() < deadline {
        let stamp = match args.rate {
            Some(rate) => {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                due.duration_since(origin).as_micros() as u64
            }
            None => {
                while sent.saturating_sub(taken(progress)) > window && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
                origin.elapsed().as_micros() as u64
            }
        };
        // `--per-frame` messages a frame, as a client packs them (1: as a browser's
        // `send` or most libraries do); one flush for the lot.
        for frame in build(stamp).chunks(args.per_frame.clamp(1, BATCH)) {
            let message = match target {
                Target::Switchyard => Message::text(frame.join("\n")),
                Target::Nats => Message::binary(frame.concat().into_bytes()),
            };
            ws.feed(message).await?;
        }
        ws.flush().await?;
        sent += BATCH as u64;
        if target == Target::Switchyard {
            read_ready(ws, &mut refused)?;
        }
    }
    let drain_until = Instant::now() + DRAIN_AT_MOST;
    let (mut last, mut last_moved) = (taken(progress), Instant::now());
    while last < sent && Instant::now() < drain_until && last_moved.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = taken(progress);
        if now != last {
            (last, last_moved) = (now, Instant::now());
        }
    }
    let elapsed = started.elapsed();
    progress.stop.store(true, Ordering::Relaxed);
    if target == Target::Switchyard {
        read_ready(ws, &mut refused)?;
    }
    let mut latency = histogram();
    let mut received = 0;
    for r in receivers {
        let (count, h) = r.await??;
        received += count;
        latency.add(&h)?;
    }
    let _ = ws.close(None).await;
    Ok(Driven {
        received,
        sent,
        refused,
        elapsed,
        latency,
    })
}

/// Takes every frame the broker has already sent the publisher, without
/// waiting, counting its `error`s.
fn read_ready(ws: &mut Ws, refused: &mut Refused) -> Result<(), BenchError> {
    while let Some(next) = ws.next().now_or_never() {
        match next {
            Some(Ok(Message::Text(t))) => refused.scan(t.as_str()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::Closed),
        }
    }
    Ok(())
}

/// Before a run whose receivers are on another node than the publisher: sends
/// `probe` (a frame no receiver counts, which each receiver marks in
/// [`Progress::warm`]) every 20 ms until every receiver has seen one, for up to
/// [`WARM_UP`]. A subscription's `ok` says its own node has it; the
/// publisher's node learns of it later (through NATS), and what is published
/// before then reaches no one, which would count as lost.
pub(crate) async fn warm_up(
    ws: &mut Ws,
    progress: &Progress,
    probe: &str,
) -> Result<(), BenchError> {
    let until = Instant::now() + WARM_UP;
    let warm = || {
        progress
            .warm
            .iter()
            .filter(|w| w.load(Ordering::Relaxed))
            .count()
    };
    while warm() < progress.warm.len() {
        if Instant::now() >= until {
            return Err(BenchError::NotReached {
                reached: warm(),
                of: progress.warm.len(),
                secs: WARM_UP.as_secs(),
            });
        }
        ws.send(Message::text(probe.to_string())).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Probes still on their way are not counted by the receivers.
    Ok(())
}

/// A receiver's next frame; None once its connection closes, or once it is told to
/// stop and nothing more comes for 200 ms.
pub(crate) async fn next_frame(
    ws: &mut Ws,
    progress: &Progress,
) -> Result<Option<Message>, BenchError> {
    loop {
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) if progress.stop.load(Ordering::Relaxed) => return Ok(None),
            Err(_) => continue,
            Ok(None) => return Ok(None),
            Ok(Some(frame)) => return Ok(Some(frame?)),
        }
    }
}
