//! `slow:MB`: a burst of MB megabytes of 4 KB messages, one per frame, to three
//! subscribers of one subject: one reading steadily at 20 MB/s (slower than
//! the burst, as a Python client parsing JSON is), one that never reads after
//! subscribing (stuck), and one reading as fast as it can. Reports how much of
//! the burst the steady reader got, the fast reader's longest wait between two
//! frames, and (Switchyard) when the stuck reader was kicked and how often the
//! publisher was paced. Run it against a broker with its default outbound
//! buffer (8 MiB), which `bench/compare-nats.sh` starts.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::broker::{connect, until_ok, Ws};
use crate::error::BenchError;
use crate::nats;
use crate::Target;

/// Size of each message's payload.
const SIZE: usize = 4_000;
/// What the steady reader reads at most, in bytes a second.
const STEADY_RATE: f64 = 20e6;
/// How long a reader waits for more before it counts the burst over for it.
const QUIET: Duration = Duration::from_secs(5);

/// What the scenario saw.
pub(crate) struct SlowOutcome {
    pub(crate) total: u64,
    pub(crate) steady: u64,
    pub(crate) steady_why: &'static str,
    pub(crate) fast: u64,
    pub(crate) fast_max_gap: Duration,
    pub(crate) burst: Duration,
    /// Switchyard: when the stuck reader left `stats`, from the burst's start.
    pub(crate) stuck_gone: Option<Duration>,
    /// Switchyard: the publisher pauses `stats` counted, and their total length.
    pub(crate) pauses: Option<(u64, u64)>,
}

async fn subscriber(url: &str, target: Target, subject: &str) -> Result<(Ws, String), BenchError> {
    let mut ws = connect(url).await?;
    match target {
        Target::Switchyard => {
            let welcome = match ws.next().await {
                Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                _ => String::new(),
            };
            let id = serde_json::from_str::<serde_json::Value>(&welcome)
                .ok()
                .and_then(|w| w["client"].as_str().map(str::to_string))
                .unwrap_or_default();
            let sub = format!("{{\"op\":\"sub\",\"id\":1,\"topic\":\"{subject}\",\"sid\":\"s\"}}");
            ws.send(Message::text(sub)).await?;
            until_ok(&mut ws, "sub").await?;
            Ok((ws, id))
        }
        Target::Nats => {
            nats::handshake(&mut ws).await?;
            ws.send(Message::binary(
                format!("SUB {subject} 1\r\nPING\r\n").into_bytes(),
            ))
            .await?;
            nats::wait_pong(&mut ws).await?;
            Ok((ws, String::new()))
        }
    }
}

/// Reads until `total` messages came, the connection ended or nothing came
/// for [`QUIET`]: (messages, why it stopped, longest gap between two frames
/// after the first). At most `rate` bytes a second, if given.
async fn read(
    mut ws: Ws,
    target: Target,
    total: u64,
    rate: Option<f64>,
) -> (u64, &'static str, Duration) {
    let mut got = 0u64;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut max_gap = Duration::ZERO;
    let mut parser = nats::NatsParser::default();
    while got < total {
        let frame = match tokio::time::timeout(QUIET, ws.next()).await {
            Err(_) => return (got, "silence", max_gap),
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return (got, "closed", max_gap),
        };
        let now = Instant::now();
        if first.is_some() {
            max_gap = max_gap.max(now - last);
        }
        last = now;
        let start = *first.get_or_insert(now);
        match (target, &frame) {
            (Target::Switchyard, Message::Text(t)) => {
                bytes += t.len() as u64;
                for line in t.as_str().split('\n') {
                    if line.starts_with("{\"ev\":\"msg\"") {
                        got += 1;
                    } else if line.starts_with("{\"ev\":\"kicked\"") {
                        return (got, "kicked", max_gap);
                    }
                }
            }
            (Target::Nats, Message::Binary(b)) => {
                bytes += b.len() as u64;
                let (n, pings) = parser.feed(b, &mut |_| {});
                got += n;
                for _ in 0..pings {
                    if ws
                        .send(Message::binary(b"PONG\r\n".to_vec()))
                        .await
                        .is_err()
                    {
                        return (got, "closed", max_gap);
                    }
                }
                if b.starts_with(b"-ERR") {
                    return (got, "kicked", max_gap);
                }
            }
            (_, Message::Close(_)) => return (got, "closed", max_gap),
            _ => {}
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(bytes as f64 / rate);
            let spent = start.elapsed();
            if due > spent {
                tokio::time::sleep(due - spent).await;
                // The sleep is the reader's own, not a wait for the broker.
                last = Instant::now();
            }
        }
    }
    (got, "all", max_gap)
}

/// Runs the scenario with a burst of `mb` megabytes.
pub(crate) async fn slow(
    url: &str,
    target: Target,
    subject: &str,
    mb: usize,
) -> Result<SlowOutcome, BenchError> {
    let total = (mb * 1_000_000 / SIZE) as u64;
    let (steady, _) = subscriber(url, target, subject).await?;
    let (fast, _) = subscriber(url, target, subject).await?;
    let (stuck, stuck_id) = subscriber(url, target, subject).await?;
    let steady = tokio::spawn(read(steady, target, total, Some(STEADY_RATE)));
    let fast = tokio::spawn(read(fast, target, total, None));

    let started = Instant::now();
    let watcher = match target {
        Target::Switchyard => Some(tokio::spawn(watch_stuck(
            url.to_string(),
            stuck_id,
            started,
        ))),
        Target::Nats => None,
    };
    let mut publisher = connect(url).await?;
    let pad = "x".repeat(SIZE - 20);
    match target {
        Target::Switchyard => {
            let _welcome = publisher.next().await;
            for n in 0..total {
                let data = format!("{{\"n\":{n},\"p\":\"{pad}\"}}");
                let frame = format!("{{\"op\":\"pub\",\"topic\":\"{subject}\",\"data\":{data}}}");
                publisher.send(Message::text(frame)).await?;
            }
        }
        Target::Nats => {
            nats::handshake(&mut publisher).await?;
            for n in 0..total {
                let data = format!("{{\"n\":{n},\"p\":\"{pad}\"}}");
                let frame = format!("PUB {subject} {}\r\n{data}\r\n", data.len());
                publisher.send(Message::binary(frame.into_bytes())).await?;
            }
        }
    }
    let burst = started.elapsed();
    let (steady, steady_why, _) = steady.await?;
    let (fast, _, fast_max_gap) = fast.await?;
    let (stuck_gone, pauses) = match watcher {
        Some(w) => (w.await??, Some(pauses(url).await?)),
        None => (None, None),
    };
    drop(stuck);
    Ok(SlowOutcome {
        total,
        steady,
        steady_why,
        fast,
        fast_max_gap,
        burst,
        stuck_gone,
        pauses,
    })
}

/// One `stats` answer, from a connection of its own.
async fn stats(ws: &mut Ws) -> Result<serde_json::Value, BenchError> {
    ws.send(Message::text("{\"op\":\"stats\",\"id\":1}"))
        .await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with("{\"ev\":\"stats\"") => {
                return Ok(serde_json::from_str(t.as_str()).unwrap_or_default());
            }
            Some(Ok(_)) => continue,
            _ => return Err(BenchError::Closed),
        }
    }
}

/// Polls `stats` every 50 ms until client `id` is gone (or 30 s pass): when it
/// went, from `started`.
async fn watch_stuck(
    url: String,
    id: String,
    started: Instant,
) -> Result<Option<Duration>, BenchError> {
    let mut ws = connect(&url).await?;
    while started.elapsed() < Duration::from_secs(30) {
        let s = stats(&mut ws).await?;
        let present = s["clients"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["id"] == id.as_str()));
        if !present {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(None)
}

/// The broker's publisher pauses so far, and their total length in µs.
async fn pauses(url: &str) -> Result<(u64, u64), BenchError> {
    let mut ws = connect(url).await?;
    let s = stats(&mut ws).await?;
    let server = &s["server"];
    Ok((
        server["pauses"].as_u64().unwrap_or(0),
        server["paused_us"].as_u64().unwrap_or(0),
    ))
}
