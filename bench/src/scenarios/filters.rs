//! `filters:N` / `nofilters:N`: N subscriptions on one topic, each with a filter
//! that one message in N passes, or with none.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::publisher::{drive, Progress, BATCH, WINDOW};
use super::pubsub::receive;
use crate::broker::connect;
use crate::error::BenchError;
use crate::measure::{payload_with, Outcome};
use crate::{BenchArgs, Target};

/// Publish throughput to `subs` subscriptions on one topic, spread over 10
/// connections. With `filtered`, subscription i has the filter `data.k = i` and the
/// publisher cycles k, so each message is evaluated by every filter and delivered
/// once; without, every message goes to all of them. Reports published msgs/s.
pub(crate) async fn filters(
    url: &str,
    subject: &str,
    subs: usize,
    filtered: bool,
    args: &BenchArgs,
) -> Result<Outcome, BenchError> {
    let origin = Instant::now();
    let conns = subs.clamp(1, 10);
    let progress = Arc::new(Progress::new(conns));
    let mut receivers = Vec::new();
    for c in 0..conns {
        let mut ws = connect(url).await?;
        let mine: Vec<usize> = (0..subs).filter(|i| i % conns == c).collect();
        let frame: Vec<String> = mine
            .iter()
            .map(|i| {
                let filter = if filtered { format!(",\"filter\":\"data.k = {i}\"") } else { String::new() };
                format!("{{\"op\":\"sub\",\"id\":{i},\"topic\":\"{subject}\",\"sid\":\"s{i}\"{filter}}}")
            })
            .collect();
        ws.send(Message::text(frame.join("\n"))).await?;
        let mut seen = 0;
        while seen < mine.len() + 1 {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                seen += t.as_str().split('\n').count();
            }
        }
        receivers.push(tokio::spawn(receive(
            ws,
            Target::Switchyard,
            c,
            progress.clone(),
            origin,
        )));
    }
    let per_msg = if filtered { 1 } else { subs as u64 };
    let mut ws = connect(url).await?;
    let mut k = 0usize;
    let build = |stamp: u64| {
        (0..BATCH)
            .map(|_| {
                k = (k + 1) % subs;
                let data = payload_with(stamp, &format!("\"k\":{k},"), args.size);
                format!("{{\"op\":\"pub\",\"topic\":\"{subject}\",\"data\":{data}}}")
            })
            .collect()
    };
    let run = drive(
        &mut ws,
        args,
        &progress,
        origin,
        WINDOW / 10,
        |p: &Progress| p.total() / per_msg,
        crate::Target::Switchyard,
        build,
        receivers,
    )
    .await?;
    Ok(Outcome {
        label: format!(
            "{} {subs} pub",
            if filtered { "filters" } else { "nofilters" }
        ),
        received: run.received / per_msg,
        elapsed: run.elapsed,
        latency: run.latency,
        expected: Some(run.sent),
        refused: run.refused,
    })
}
