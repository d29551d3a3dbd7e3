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
use crate::endpoints::Endpoints;
use crate::error::BenchError;
use crate::measure::{histogram, payload, stamp_after, Outcome};
use crate::BenchArgs;

/// One sender on `ends.publish` (where the queue is declared too), `consumers`
/// consumers, consumer i on `ends.subscriber(i)`.
pub(crate) async fn queue(
    ends: &Endpoints,
    queue: &str,
    consumers: usize,
    durable: bool,
    args: &BenchArgs,
) -> Result<Outcome, BenchError> {
    declare(&ends.publish, queue, durable).await?;
    let origin = Instant::now();
    let progress = Arc::new(Progress::new(consumers));
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let mut ws = connect(ends.subscriber(i)).await?;
        let consume = format!(
            "{{\"op\":\"consume\",\"id\":1,\"queue\":\"{queue}\",\"cid\":\"w\",\"prefetch\":512}}"
        );
        ws.send(Message::text(consume)).await?;
        until_ok(&mut ws, "consume").await?;
        let per_frame = args.per_frame.clamp(1, BATCH);
        tasks.push(tokio::spawn(work(
            ws,
            i,
            progress.clone(),
            origin,
            per_frame,
        )));
    }
    let mut ws = connect(&ends.publish).await?;
    let build = |stamp: u64| {
        let data = payload(stamp, args.size);
        vec![format!("{{\"op\":\"send\",\"queue\":\"{queue}\",\"data\":{data}}}"); BATCH]
    };
    // Each message goes to one consumer: together they say how far behind they are.
    let run = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW,
        Progress::total,
        crate::Target::Switchyard,
        build,
        tasks,
    )
    .await?;
    // Each job once, or more if redelivered (a consumer's ack lost or late).
    Ok(Outcome {
        label: format!("{}queue 1→{consumers}", if durable { "d" } else { "" }),
        received: run.received,
        elapsed: run.elapsed,
        latency: run.latency,
        expected: Some(run.sent),
        refused: run.refused,
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
    let (received, latency) = gather(tasks).await?;
    Ok(Outcome::new(
        format!("durable send ×{senders}"),
        received,
        started.elapsed(),
        latency,
    ))
}

/// A consumer: records each job's latency and acks the jobs of a frame,
/// `per_frame` acks a frame (1: each ack in its own frame, as most clients do).
async fn work(
    mut ws: Ws,
    index: usize,
    progress: Arc<Progress>,
    origin: Instant,
    per_frame: usize,
) -> Result<(u64, Histogram<u64>), BenchError> {
    let mut hist = histogram();
    let mut count = 0u64;
    let mut acks: Vec<String> = Vec::new();
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
            acks.push(format!("{{\"op\":\"ack\",\"tag\":{digits}}}"));
            count += 1;
        }
        if !acks.is_empty() {
            for frame in acks.chunks(per_frame) {
                ws.feed(Message::text(frame.join("\n"))).await?;
            }
            ws.flush().await?;
        }
        progress.received[index].store(count, Ordering::Relaxed);
    }
    Ok((count, hist))
}

/// Sends each sender keeps unconfirmed in the pipelined scenarios.
pub(crate) const PIPELINE: usize = 100;

/// Pipelined confirmed sends: `senders` connections, each keeping [`PIPELINE`]
/// sends unconfirmed, one send per frame, as a client that confirms every
/// message but does not wait for each before the next. `durable` puts the queue
/// on disk (each `ok` after its fsync), else in memory: the same load both ways
/// says what durability costs.
pub(crate) async fn pipelined(
    url: &str,
    queue: &str,
    senders: usize,
    durable: bool,
    args: &BenchArgs,
) -> Result<Outcome, BenchError> {
    declare(url, queue, durable).await?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let mut ws = connect(url).await?;
        let _welcome = ws.next().await;
        let queue = queue.to_string();
        let data = payload(0, args.size);
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut sent_at = vec![Instant::now(); PIPELINE];
            let (mut sent, mut confirmed) = (0u64, 0u64);
            loop {
                let open = Instant::now() < deadline;
                if !open && confirmed == sent {
                    break;
                }
                while open && sent - confirmed < PIPELINE as u64 {
                    sent_at[sent as usize % PIPELINE] = Instant::now();
                    let frame = format!(
                        "{{\"op\":\"send\",\"id\":{sent},\"queue\":\"{queue}\",\"data\":{data}}}"
                    );
                    ws.feed(Message::text(frame)).await?;
                    sent += 1;
                }
                ws.flush().await?;
                let Some(frame) = ws.next().await else {
                    return Err(BenchError::Closed);
                };
                let Message::Text(text) = frame? else {
                    continue;
                };
                for line in text.as_str().lines() {
                    if line.contains("\"ev\":\"ok\"") {
                        let at = sent_at[confirmed as usize % PIPELINE];
                        let _ = hist.record(at.elapsed().as_micros().max(1) as u64);
                        confirmed += 1;
                    } else if line.contains("\"ev\":\"error\"") {
                        return Err(BenchError::Refused {
                            what: "send",
                            frame: line.to_string(),
                        });
                    }
                }
            }
            let _ = ws.close(None).await;
            Ok::<_, BenchError>((confirmed, hist))
        }));
    }
    let (received, latency) = gather(tasks).await?;
    Ok(Outcome::new(
        format!(
            "{} ×{senders}×{PIPELINE}",
            if durable { "psend" } else { "psend mem" }
        ),
        received,
        started.elapsed(),
        latency,
    ))
}

/// Declares `queue`, on disk or in memory.
async fn declare(url: &str, queue: &str, durable: bool) -> Result<(), BenchError> {
    let mut setup = connect(url).await?;
    let declare =
        format!("{{\"op\":\"declare\",\"id\":1,\"queue\":\"{queue}\",\"durable\":{durable}}}");
    setup.send(Message::text(declare)).await?;
    until_ok(&mut setup, "declare").await?;
    let _ = setup.close(None).await;
    Ok(())
}

/// The senders' counts added up and their latencies merged.
async fn gather(
    tasks: Vec<super::publisher::Receiver>,
) -> Result<(u64, Histogram<u64>), BenchError> {
    let mut latency = histogram();
    let mut received = 0;
    for t in tasks {
        let (count, h) = t.await??;
        received += count;
        latency.add(&h)?;
    }
    Ok((received, latency))
}
