//! How long a queue's requests wait for their reply: counts in buckets a quarter of
//! an octave wide (each bound at most 25% above the one before), from 1 µs to
//! about 38 hours. Kept for the queue's life (`/metrics` exports them as a
//! histogram, its buckets at each octave), and in two windows of a minute that the
//! broker turns over, which the median and 99th percentile of the Queues view are
//! taken from: so they tell the last one to two minutes, not the queue's whole life.

use std::time::Duration;

/// Buckets: 4 linear ones below 4 µs, then 4 an octave up to 2^37 µs.
const BUCKETS: usize = 148;

type Counts = [u64; BUCKETS];

/// Reply times over a queue's life, as `/metrics` exports them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// (bound in seconds, replies at most that long), at each octave.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// All reply times together, in seconds.
    pub(crate) sum: f64,
    /// Replies.
    pub(crate) count: u64,
}

/// A queue's reply times.
pub(crate) struct Latency {
    life: Box<Counts>,
    current: Box<Counts>,
    previous: Box<Counts>,
    sum_us: u64,
    count: u64,
}

/// The bucket of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize; // at least 2
    let quarter = ((us >> (octave - 2)) & 3) as usize;
    (4 * (octave - 1) + quarter).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, in microseconds (exclusive).
fn upper_us(i: usize) -> u64 {
    if i < 4 {
        return i as u64 + 1;
    }
    let octave = i / 4 + 1;
    let quarter = (i % 4) as u64;
    (5 + quarter) << (octave - 2)
}

impl Latency {
    pub(crate) fn new() -> Latency {
        Latency {
            life: Box::new([0; BUCKETS]),
            current: Box::new([0; BUCKETS]),
            previous: Box::new([0; BUCKETS]),
            sum_us: 0,
            count: 0,
        }
    }

    pub(crate) fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let b = bucket(us);
        self.life[b] += 1;
        self.current[b] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.count += 1;
    }

    /// Starts a new minute: the one before is kept, the one before that forgotten.
    pub(crate) fn turn(&mut self) {
        std::mem::swap(&mut self.previous, &mut self.current);
        self.current.fill(0);
    }

    /// The `q` quantile (0 < q ≤ 1) of the last one to two minutes, in
    /// milliseconds: the upper bound of the bucket that holds it. None without
    /// a reply in that time.
    pub(crate) fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self
            .current
            .iter()
            .zip(self.previous.iter())
            .map(|(a, b)| a + b)
            .sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for i in 0..BUCKETS {
            seen += self.current[i] + self.previous[i];
            if seen >= rank {
                return Some(upper_us(i) as f64 / 1000.0);
            }
        }
        None
    }

    /// The life-long histogram, its bounds at each octave from 128 µs to about
    /// 9.5 hours.
    pub(crate) fn histogram(&self) -> Histogram {
        let mut out = Vec::new();
        let mut below = 0;
        let mut i = 0;
        for octave in 7..=35usize {
            // Buckets of octave `o` start at index 4·(o − 1).
            while i < 4 * (octave - 1) {
                below += self.life[i];
                i += 1;
            }
            out.push(((1u64 << octave) as f64 / 1e6, below));
        }
        Histogram {
            buckets: out,
            sum: self.sum_us as f64 / 1e6,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_a_quarter_octave_wide() {
        for us in 0..100_000u64 {
            let b = bucket(us);
            assert!(us < upper_us(b), "{us} in bucket {b} < {}", upper_us(b));
            if b > 0 {
                assert!(us >= upper_us(b - 1), "{us} in bucket {b}");
            }
        }
        for i in 5..BUCKETS {
            let (lo, hi) = (upper_us(i - 1), upper_us(i));
            assert!(
                hi as f64 <= lo as f64 * 1.25 + 1.0,
                "bucket {i}: {lo}..{hi}"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_come_from_the_last_two_minutes() {
        let mut l = Latency::new();
        assert_eq!(l.quantile_ms(0.5), None);
        for _ in 0..99 {
            l.record(Duration::from_micros(1_000));
        }
        l.record(Duration::from_millis(40));
        // 1,000 µs is in [896, 1024): reported as 1.024 ms; 40 ms in [40960 - ...).
        assert_eq!(l.quantile_ms(0.5), Some(1.024));
        assert_eq!(l.quantile_ms(0.99), Some(1.024));
        assert_eq!(l.quantile_ms(1.0), Some(40.96));
        l.turn();
        assert_eq!(
            l.quantile_ms(0.5),
            Some(1.024),
            "the minute before still counts"
        );
        l.record(Duration::from_millis(3));
        l.turn();
        assert_eq!(l.quantile_ms(0.5), Some(3.072));
        l.turn();
        assert_eq!(l.quantile_ms(0.5), None);
        let Histogram {
            buckets,
            sum,
            count,
        } = l.histogram();
        assert_eq!(count, 101);
        assert!((sum - (0.099 + 0.04 + 0.003)).abs() < 1e-9);
        // 128 µs: none; 1,024 µs: the 99 of 1 ms; 65,536 µs: all.
        assert_eq!(buckets[0], (0.000128, 0));
        assert_eq!(buckets[3], (0.001024, 99));
        assert_eq!(buckets[9], (0.065536, 101));
        assert_eq!(buckets.len(), 29);
    }
}
