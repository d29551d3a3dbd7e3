//! `pubsub:N`: one publisher, N subscribers on one subject, every message to all of
//! them; the one scenario that runs against nats-server too.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::SinkExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use super::publisher::{drive, next_frame, warm_up, Progress, BATCH, WINDOW};
use crate::broker::{connect, until_ok, Ws};
use crate::endpoints::Endpoints;
use crate::error::BenchError;
use crate::measure::{histogram, payload, stamp_after, Outcome};
use crate::nats::{self, NatsParser};
use crate::{BenchArgs, Target};

/// The warm-up message ([`warm_up`]): no timestamp, so no receiver counts it.
pub(crate) const PROBE: &str = "{\"warm\":true}";

/// `subs` subscribers, subscriber i on `ends.subscriber(i)`, and the publisher on
/// `ends.publish`.
pub(crate) async fn pubsub(
    ends: &Endpoints,
    target: Target,
    subject: &str,
    subs: usize,
    args: &BenchArgs,
) -> Result<Outcome, BenchError> {
    let origin = Instant::now();
    let progress = Arc::new(Progress::new(subs));
    let mut receivers = Vec::new();
    for i in 0..subs {
        let mut ws = connect(ends.subscriber(i)).await?;
        match target {
            Target::Switchyard => {
                let sub =
                    format!("{{\"op\":\"sub\",\"id\":1,\"topic\":\"{subject}\",\"sid\":\"s\"}}");
                ws.send(Message::text(sub)).await?;
                until_ok(&mut ws, "sub").await?;
            }
            Target::Nats => {
                nats::handshake(&mut ws).await?;
                let sub = format!("SUB {subject} 1\r\nPING\r\n");
                ws.send(Message::binary(sub.into_bytes())).await?;
                nats::wait_pong(&mut ws).await?;
            }
        }
        let progress = progress.clone();
        receivers.push(tokio::spawn(receive(ws, target, i, progress, origin)));
    }
    let mut ws = connect(&ends.publish).await?;
    if target == Target::Nats {
        nats::handshake(&mut ws).await?;
    }
    if ends.spread() {
        let probe = format!("{{\"op\":\"pub\",\"topic\":\"{subject}\",\"data\":{PROBE}}}");
        warm_up(&mut ws, &progress, &probe).await?;
    }
    let build = |stamp: u64| {
        let data = payload(stamp, args.size);
        let unit = match target {
            Target::Switchyard => {
                format!("{{\"op\":\"pub\",\"topic\":\"{subject}\",\"data\":{data}}}")
            }
            Target::Nats => format!("PUB {subject} {}\r\n{data}\r\n", data.len()),
        };
        vec![unit; BATCH]
    };
    // Every subscriber gets every message: the slowest says how far behind they are.
    let run = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW,
        Progress::slowest,
        target,
        build,
        receivers,
    )
    .await?;
    Ok(Outcome {
        label: format!("pubsub 1→{subs}"),
        received: run.received,
        elapsed: run.elapsed,
        latency: run.latency,
        expected: Some(run.sent * subs as u64),
        refused: run.refused,
    })
}

/// Counts deliveries and records their latency until told to stop.
pub(crate) async fn receive(
    mut ws: Ws,
    target: Target,
    index: usize,
    progress: Arc<Progress>,
    origin: Instant,
) -> Result<(u64, Histogram<u64>), BenchError> {
    let mut hist = histogram();
    let mut count = 0u64;
    let mut nats = NatsParser::default();
    let mut warm = false;
    while let Some(frame) = next_frame(&mut ws, &progress).await? {
        let now = origin.elapsed().as_micros() as u64;
        let mut record = |t: u64| {
            let _ = hist.record(now.saturating_sub(t).max(1));
        };
        match (target, frame) {
            (Target::Switchyard, Message::Text(t)) => {
                let bytes = t.as_bytes();
                if !warm && bytes.windows(PROBE.len()).any(|w| w == PROBE.as_bytes()) {
                    warm = true;
                    progress.warm[index].store(true, Ordering::Relaxed);
                }
                let mut at = 0;
                while let Some(t) = stamp_after(bytes, at) {
                    record(t);
                    count += 1;
                    at = match bytes[at..].iter().position(|&b| b == b'\n') {
                        Some(nl) => at + nl + 1,
                        None => bytes.len(),
                    };
                }
            }
            (Target::Nats, Message::Binary(b)) => {
                let (n, pings) = nats.feed(&b, &mut record);
                count += n;
                for _ in 0..pings {
                    ws.send(Message::binary(b"PONG\r\n".to_vec())).await?;
                }
            }
            _ => {}
        }
        progress.received[index].store(count, Ordering::Relaxed);
        if progress.stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok((count, hist))
}
