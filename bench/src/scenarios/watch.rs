//! `watch:N`: what the operator stream costs a console. Builds a broker holding
//! N in-flight jobs, N/5 topics and N/5 queues with a backlog, then reads a `watch` at 4 Hz, as the console
//! ticks, for a few seconds each way, and counts the bytes it sends: whole
//! snapshots (a plain `watch`), changes without a job list (the console on any
//! view but in-flight), and changes with the oldest 200 jobs (its in-flight
//! view); each with the broker idle and with 100 topics publishing.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::broker::{self, Ws};
use crate::error::BenchError;

/// How long each watch is read.
const READ_FOR: Duration = Duration::from_secs(5);

/// Topics that publish during the busy runs, and how often each does.
const BUSY_TOPICS: usize = 100;
const BUSY_EVERY: Duration = Duration::from_millis(100);

/// Jobs each consumer holds at most (the protocol's largest prefetch).
const PREFETCH: usize = 10_000;

/// One way of watching, and what it cost.
pub(crate) struct WatchRow {
    pub(crate) label: &'static str,
    pub(crate) busy: bool,
    pub(crate) bytes_per_s: f64,
    pub(crate) frames_per_s: f64,
}

/// What `watch:N` measured.
pub(crate) struct WatchOutcome {
    pub(crate) jobs: usize,
    pub(crate) topics: usize,
    pub(crate) rows: Vec<WatchRow>,
}

/// The watches measured, at the console's tick (250 ms): the plain one, and the
/// two the console asks for.
const WATCHES: [(&str, &str); 3] = [
    ("whole", r#"{"op":"watch","interval_ms":250}"#),
    (
        "changes",
        r#"{"op":"watch","interval_ms":250,"changes":true,"inflight":0}"#,
    ),
    (
        "changes+200",
        r#"{"op":"watch","interval_ms":250,"changes":true,"inflight":200}"#,
    ),
];

pub(crate) async fn watch(
    url: &str,
    subject: &str,
    jobs: usize,
) -> Result<WatchOutcome, BenchError> {
    let topics = jobs / 5;
    let queue = format!("{subject}.jobs");
    // The consumers hold every job: in flight until they go, as a stuck fleet would.
    let mut consumers = Vec::new();
    for i in 0..jobs.div_ceil(PREFETCH) {
        let mut ws = broker::connect(url).await?;
        let prefetch = PREFETCH.min(jobs - i * PREFETCH);
        let consume = json!({"op":"consume","id":1,"queue":queue,"cid":"c","prefetch":prefetch});
        send(&mut ws, consume.to_string()).await?;
        broker::until_ok(&mut ws, "consume").await?;
        consumers.push(ws);
    }
    let mut feeder = broker::connect(url).await?;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(500) {
        let frame: Vec<String> = chunk
            .iter()
            .map(|n| json!({"op":"send","queue":queue,"data":n}).to_string())
            .collect();
        send(&mut feeder, frame.join("\n")).await?;
    }
    for chunk in (0..topics).collect::<Vec<_>>().chunks(500) {
        let frame: Vec<String> = chunk
            .iter()
            .map(|n| json!({"op":"pub","topic":format!("{subject}.t{n}"),"data":n}).to_string())
            .collect();
        send(&mut feeder, frame.join("\n")).await?;
    }
    // As many queues with a backlog, whose oldest message ages every frame.
    for chunk in (0..topics).collect::<Vec<_>>().chunks(500) {
        let frame: Vec<String> = chunk
            .iter()
            .map(|n| json!({"op":"send","queue":format!("{subject}.q{n}"),"data":n}).to_string())
            .collect();
        send(&mut feeder, frame.join("\n")).await?;
    }
    // Drain what the consumers were sent, so their buffers do not count.
    let drains: Vec<_> = consumers
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    wait_in_flight(url, jobs).await?;
    let mut rows = Vec::new();
    for busy in [false, true] {
        let traffic =
            busy.then(|| tokio::spawn(publish_busy(url.to_string(), subject.to_string())));
        for (label, frame) in WATCHES {
            let (bytes, frames) = read_watch(url, frame).await?;
            let secs = READ_FOR.as_secs_f64();
            rows.push(WatchRow {
                label,
                busy,
                bytes_per_s: bytes as f64 / secs,
                frames_per_s: frames as f64 / secs,
            });
        }
        if let Some(traffic) = traffic {
            traffic.abort();
        }
    }
    for drain in drains {
        drain.abort();
    }
    Ok(WatchOutcome { jobs, topics, rows })
}

async fn send(ws: &mut Ws, text: String) -> Result<(), BenchError> {
    ws.send(Message::text(text))
        .await
        .map_err(|_| BenchError::Closed)
}

/// Waits until the broker counts `jobs` in flight.
async fn wait_in_flight(url: &str, jobs: usize) -> Result<(), BenchError> {
    let mut ws = broker::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        send(&mut ws, r#"{"op":"stats","id":1}"#.into()).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains(r#""ev":"stats""#) => {
                    let stats: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if stats["server"]["inflight"].as_u64() == Some(jobs as u64) {
                        return Ok(());
                    }
                    break;
                }
                Some(Ok(_)) => continue,
                _ => return Err(BenchError::Closed),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BenchError::Refused {
        what: "in-flight jobs",
        frame: format!("the broker never held {jobs} jobs in flight"),
    })
}

/// Opens `watch`, reads it for [`READ_FOR`] after its first frame, and returns the
/// bytes and frames read (the first, whole frame is the same for every watch
/// and is not counted).
async fn read_watch(url: &str, watch: &str) -> Result<(usize, usize), BenchError> {
    let mut ws = broker::connect(url).await?;
    send(&mut ws, watch.to_string()).await?;
    let mut first = true;
    let (mut bytes, mut frames) = (0, 0);
    let mut end = Instant::now() + READ_FOR;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(r#""ev":"stats""#) => {
                if first {
                    first = false;
                    end = Instant::now() + READ_FOR;
                    continue;
                }
                bytes += t.len();
                frames += 1;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return Err(BenchError::Closed),
        }
    }
    let _ = ws.close(None).await;
    Ok((bytes, frames))
}

/// Publishes to [`BUSY_TOPICS`] of the topics, each every [`BUSY_EVERY`].
async fn publish_busy(url: String, subject: String) {
    let Ok(mut ws) = broker::connect(&url).await else {
        return;
    };
    let mut n = 0u64;
    loop {
        let frame: Vec<String> = (0..BUSY_TOPICS)
            .map(|t| json!({"op":"pub","topic":format!("{subject}.t{t}"),"data":n}).to_string())
            .collect();
        if send(&mut ws, frame.join("\n")).await.is_err() {
            return;
        }
        n += 1;
        tokio::time::sleep(BUSY_EVERY).await;
    }
}
