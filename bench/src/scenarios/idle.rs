//! `idle:N`: what an idle connection costs the broker. Opens N connections that
//! say nothing after the handshake, and reads the broker's resident memory
//! before, while they are open, and after they close (from `/proc/PID/status`,
//! so Linux only, and only for a broker whose process id is known).

use std::time::Duration;

use futures_util::future::join_all;

use crate::broker;
use crate::error::BenchError;

/// Connections opened at once.
const WAVE: usize = 200;
/// How long the broker is given to settle before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// How long the broker is given to give memory back once the connections closed
/// (it checks every 5 s).
const GIVE_BACK: Duration = Duration::from_secs(7);

/// What idle connections cost: resident memory before, with them open, after.
pub(crate) struct IdleOutcome {
    pub(crate) connections: usize,
    pub(crate) before: u64,
    pub(crate) open: u64,
    pub(crate) after: u64,
}

impl IdleOutcome {
    /// Bytes of resident memory per open connection.
    pub(crate) fn per_connection(&self) -> u64 {
        self.open.saturating_sub(self.before) / self.connections as u64
    }
}

/// Opens `n` idle connections to the broker at `url`, whose process is `pid`.
pub(crate) async fn idle(url: &str, n: usize, pid: u32) -> Result<IdleOutcome, BenchError> {
    let before = rss(pid)?;
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let wave = WAVE.min(n - open.len());
        for ws in join_all((0..wave).map(|_| broker::connect(url))).await {
            open.push(ws?);
        }
    }
    tokio::time::sleep(SETTLE).await;
    let with_open = rss(pid)?;
    drop(open);
    tokio::time::sleep(GIVE_BACK).await;
    let after = rss(pid)?;
    Ok(IdleOutcome {
        connections: n,
        before,
        open: with_open,
        after,
    })
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| BenchError::Memory {
        pid,
        why: e.to_string(),
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| BenchError::Memory {
            pid,
            why: format!("no VmRSS line in {path}"),
        })
}
