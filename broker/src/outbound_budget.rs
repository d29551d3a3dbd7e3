//! The broker-wide outbound-memory budget: how many bytes wait in every
//! connection's outbound buffer together, and the most they may.
//!
//! Each buffer is bounded by `max_pending`, but `max_connections` of them are not:
//! without this, the worst case is their product. Buffers report their byte count's
//! changes here with one atomic add per pushed batch and one subtract per written
//! batch, so the publish path takes no broker-wide lock. A push that takes the total
//! past the budget wakes the broker's enforcer (`Broker::enforce_outbound_budget`),
//! which kicks the clients holding the most waiting bytes until the total is down to
//! [`OutboundBudget::low_mark`].

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The budget when physical memory cannot be read: 1 GiB.
const FALLBACK_BYTES: usize = 1 << 30;

/// The share of physical memory the default budget takes: a quarter.
const MEMORY_SHARE: usize = 4;

/// Bytes waiting in all outbound buffers, against a limit.
pub(crate) struct OutboundBudget {
    used: AtomicUsize,
    limit: usize,
    /// Woken by a push that finds the total past `limit`; holds one permit, so a
    /// pass while the enforcer is busy is not lost.
    passed: Notify,
}

impl Default for OutboundBudget {
    /// No budget: for sessions built outside a broker (unit tests).
    fn default() -> Self {
        OutboundBudget::new(usize::MAX)
    }
}

impl OutboundBudget {
    pub(crate) fn new(limit: usize) -> Self {
        OutboundBudget {
            used: AtomicUsize::new(0),
            limit,
            passed: Notify::new(),
        }
    }

    /// A buffer now holds `bytes` more. Wakes the enforcer if the total is past the
    /// limit.
    pub(crate) fn add(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if used > self.limit {
            self.passed.notify_one();
        }
    }

    /// A buffer now holds `bytes` fewer (written, dropped by a kick, or closed).
    pub(crate) fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Bytes waiting in all outbound buffers (including batches being written).
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the total is past the limit.
    pub(crate) fn is_passed(&self) -> bool {
        self.used() > self.limit
    }

    /// Where kicking stops once the budget is passed: three quarters of it. The
    /// hysteresis frees room for a burst, so a broker at its budget kicks a few
    /// clients at once instead of one per message.
    pub(crate) fn low_mark(&self) -> usize {
        self.limit - self.limit / 4
    }

    /// Resolves once a push has taken the total past the limit (maybe before this
    /// call: the permit is kept).
    pub(crate) async fn passed(&self) {
        self.passed.notified().await
    }
}

/// The default `max_outbound`: a quarter of physical memory (`MemTotal` in
/// /proc/meminfo), or 1 GiB where that cannot be read.
pub(crate) fn default_max_outbound() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text))
        .map_or(FALLBACK_BYTES, |total| total / MEMORY_SHARE)
}

/// `MemTotal` from the text of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let kib: usize = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn reads_mem_total_in_bytes() {
        let text = "MemTotal:       16303428 kB\nMemFree:         1234 kB\n";
        assert_eq!(mem_total(text), Some(16_303_428 * 1024));
        assert_eq!(mem_total("MemFree: 12 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots\n"), None);
        assert_eq!(mem_total("MemTotal: 12 pages\n"), None);
        assert!(default_max_outbound() > 0);
    }

    #[test]
    fn a_push_past_the_limit_wakes_the_enforcer() {
        let budget = OutboundBudget::new(100);
        budget.add(60);
        budget.add(40);
        assert!(!budget.is_passed());
        assert_eq!(
            budget.passed().now_or_never(),
            None,
            "at the limit is not past it"
        );
        budget.add(1);
        assert!(budget.is_passed());
        assert_eq!(budget.passed().now_or_never(), Some(()));
        budget.release(26);
        assert_eq!((budget.used(), budget.low_mark()), (75, 75));
        assert!(!budget.is_passed());
    }
}
