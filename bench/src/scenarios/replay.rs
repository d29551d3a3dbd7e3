//! `replay:MiB`: fill a retained topic, then time one subscriber replaying it from
//! the first message.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::publisher::BATCH;
use crate::broker::{connect, until_ok};
use crate::error::BenchError;
use crate::measure::{histogram, payload, Outcome};

/// Fills a retained topic with `mib` MiB of 1 KiB messages, then times one
/// subscriber replaying it from the first message. Reports messages/s of the replay
/// (MiB/s is printed on the side).
pub(crate) async fn replay(url: &str, topic: &str, mib: usize) -> Result<Outcome, BenchError> {
    const SIZE: usize = 1024;
    let total = (mib * 1024 * 1024 / SIZE) as u64;
    let mut ws = connect(url).await?;
    let _welcome = ws.next().await;
    let declare = format!("{{\"op\":\"declare\",\"id\":0,\"topic\":\"{topic}\",\"retain\":{{}}}}");
    ws.send(Message::text(declare)).await?;
    until_ok(&mut ws, "declare").await?;
    let data = payload(0, SIZE);
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(BATCH as u64);
        let frame: Vec<String> = (0..n)
            .map(|i| {
                let id = if sent + i + 1 == total {
                    ",\"id\":\"last\"".to_string()
                } else {
                    String::new()
                };
                format!("{{\"op\":\"pub\",\"topic\":\"{topic}\"{id},\"data\":{data}}}")
            })
            .collect();
        ws.send(Message::text(frame.join("\n"))).await?;
        sent += n;
    }
    // The last publish is confirmed once everything before it is on disk.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"last\"") => break,
            Some(Ok(_)) => continue,
            _ => return Err(BenchError::ClosedWhileFilling),
        }
    }
    let mut reader = connect(url).await?;
    let _welcome = reader.next().await;
    let started = Instant::now();
    let sub = format!("{{\"op\":\"sub\",\"topic\":\"{topic}\",\"sid\":\"r\",\"from\":\"first\"}}");
    reader.send(Message::text(sub)).await?;
    let mut got = 0u64;
    let mut bytes = 0u64;
    while got < total {
        match tokio::time::timeout(Duration::from_secs(30), reader.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                got += t
                    .as_str()
                    .split('\n')
                    .filter(|l| l.starts_with("{\"ev\":\"msg\""))
                    .count() as u64;
                bytes += t.len() as u64;
            }
            Ok(Some(Ok(_))) => {}
            _ => return Err(BenchError::ReplayStopped { got, total }),
        }
    }
    let elapsed = started.elapsed();
    println!(
        "# replayed {mib} MiB ({total} messages of {SIZE} B, {:.0} MiB of frames) in {:.2} s: {:.0} MiB/s of payload",
        bytes as f64 / 1048576.0,
        elapsed.as_secs_f64(),
        mib as f64 / elapsed.as_secs_f64()
    );
    Ok(Outcome::new(
        format!("replay {mib} MiB"),
        got,
        elapsed,
        histogram(),
    ))
}
