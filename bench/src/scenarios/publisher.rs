//! The publisher's loop every scenario shares (closed loop within a window of the
//! receivers, or open loop at `--rate`), and the progress receivers report to it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::broker::Ws;
use crate::error::BenchError;
use crate::measure::histogram;
use crate::{BenchArgs, Target};

/// Messages per frame the publisher packs.
pub(crate) const BATCH: usize = 100;
/// How far (in messages) a closed-loop publisher may run ahead of its slowest receiver.
pub(crate) const WINDOW: u64 = 20_000;

/// What every receiver task shares with the publisher.
pub(crate) struct Progress {
    /// Messages each receiver has taken so far.
    pub(crate) received: Vec<AtomicU64>,
    /// Set when the publisher is done: receivers finish once nothing more comes.
    pub(crate) stop: AtomicBool,
}

impl Progress {
    /// Progress for `receivers` receivers, none taken yet.
    pub(crate) fn new(receivers: usize) -> Progress {
        Progress {
            received: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
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

/// The publisher's side of a scenario, the same for all: sends a frame from `build`
/// (given the message's timestamp) every time it may for `args.seconds`, either on
/// schedule (`--rate`, stamped with the intended send time) or at most `window`
/// messages ahead of what the receivers have taken (`taken`, in published messages);
/// then lets the receivers drain for up to 2 s, stops them and adds up their counts
/// and latencies. Returns (received, elapsed, latency).
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
) -> Result<(u64, Duration, Histogram<u64>), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut sent = 0u64;
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
    }
    let drain_until = Instant::now() + Duration::from_secs(2);
    while taken(progress) < sent && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    progress.stop.store(true, Ordering::Relaxed);
    let mut latency = histogram();
    let mut received = 0;
    for r in receivers {
        let (count, h) = r.await??;
        received += count;
        latency.add(&h)?;
    }
    let _ = ws.close(None).await;
    Ok((received, elapsed, latency))
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
