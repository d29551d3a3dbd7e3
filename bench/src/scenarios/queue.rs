//! Work queues: `queue:N` / `dqueue:N` (one sender, N consumers acking, the queue in
//! memory or on disk) and `durable:N` (N senders, each waiting for its confirm).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use super::publisher::{drive, next_frame, Progress, BATCH, WINDOW};
use crate::broker::{connect, until_ok, Ws};
use crate::error::BenchError;
use crate::measure::{histogram, payload, stamp_after, Outcome};
use crate::BenchArgs;

pub(crate) async fn queue(
    url: &str,
    queue: &str,
    consumers: usize,
    durable: bool,
    args: &BenchArgs,
) -> Result<Outcome, BenchError> {
    let mut setup = connect(url).await?;
    let declare =
        format!("{{\"op\":\"declare\",\"id\":1,\"queue\":\"{queue}\",\"durable\":{durable}}}");
    setup.send(Message::text(declare)).await?;
    until_ok(&mut setup, "declare").await?;
    let _ = setup.close(None).await;
    let origin = Instant::now();
    let progress = Arc::new(Progress::new(consumers));
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let mut ws = connect(url).await?;
        let consume = format!(
            "{{\"op\":\"consume\",\"id\":1,\"queue\":\"{queue}\",\"cid\":\"w\",\"prefetch\":512}}"
        );
        ws.send(Message::text(consume)).await?;
        until_ok(&mut ws, "consume").await?;
        tasks.push(tokio::spawn(work(ws, i, progress.clone(), origin)));
    }
    let mut ws = connect(url).await?;
    let build = |stamp: u64| {
        let data = payload(stamp, args.size);
        let frame: Vec<String> = (0..BATCH)
            .map(|_| format!("{{\"op\":\"send\",\"queue\":\"{queue}\",\"data\":{data}}}"))
            .collect();
        Message::text(frame.join("\n"))
    };
    // Each message goes to one consumer: together they say how far behind they are.
    let (received, elapsed, latency) = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW,
        Progress::total,
        build,
        tasks,
    )
    .await?;
    Ok(Outcome {
        label: format!("{}queue 1→{consumers}", if durable { "d" } else { "" }),
        received,
        elapsed,
        latency,
    })
}

/// Durable sends: `senders` connections, each sending one message at a time and
/// waiting for its `ok` (which a durable queue gives after the fsync). Group commit
/// should make many senders much faster than one.
pub(crate) async fn durable(
    url: &str,
    queue: &str,
    senders: usize,
    args: &BenchArgs,
) -> Result<Outcome, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let mut ws = connect(url).await?;
        let _welcome = ws.next().await;
        let queue = queue.to_string();
        let size = args.size;
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut count = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let frame = format!(
                    "{{\"op\":\"send\",\"id\":{count},\"queue\":\"{queue}\",\"data\":{}}}",
                    payload(0, size)
                );
                ws.send(Message::text(frame)).await?;
                until_ok(&mut ws, "send").await?;
                let _ = hist.record(sent.elapsed().as_micros().max(1) as u64);
                count += 1;
            }
            let _ = ws.close(None).await;
            Ok::<_, BenchError>((count, hist))
        }));
    }
    let mut latency = histogram();
    let mut received = 0;
    for t in tasks {
        let (count, h) = t.await??;
        received += count;
        latency.add(&h)?;
    }
    Ok(Outcome {
        label: format!("durable send ×{senders}"),
        received,
        elapsed: started.elapsed(),
        latency,
    })
}

/// A consumer: records each job's latency and acks every job of a frame in one frame.
async fn work(
    mut ws: Ws,
    index: usize,
    progress: Arc<Progress>,
    origin: Instant,
) -> Result<(u64, Histogram<u64>), BenchError> {
    let mut hist = histogram();
    let mut count = 0u64;
    let mut acks = String::new();
    while let Some(frame) = next_frame(&mut ws, &progress).await? {
        let Message::Text(text) = frame else { continue };
        let now = origin.elapsed().as_micros() as u64;
        acks.clear();
        for line in text.as_str().split('\n') {
            let Some(tag_at) = line.find("\"tag\":") else {
                continue;
            };
            let digits: String = line[tag_at + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Some(t) = stamp_after(line.as_bytes(), 0) {
                let _ = hist.record(now.saturating_sub(t).max(1));
            }
            if !acks.is_empty() {
                acks.push('\n');
            }
            acks.push_str("{\"op\":\"ack\",\"tag\":");
            acks.push_str(&digits);
            acks.push('}');
            count += 1;
        }
        if !acks.is_empty() {
            ws.send(Message::text(acks.clone())).await?;
        }
        progress.received[index].store(count, Ordering::Relaxed);
    }
    Ok((count, hist))
}
