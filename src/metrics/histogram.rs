//! Latency histograms: an hdrhistogram of nanoseconds plus an exact sum, and the fixed
//! Prometheus buckets derived from it when rendered.
//!
//! Owns: the precision/range of every latency histogram and the bucket layout.
//! Must not: be shared between threads while recording (each shard owns its own).

use hdrhistogram::Histogram;

/// Smallest latency told apart, in nanoseconds (sub-microsecond detail is noise here).
pub const HISTOGRAM_LOWEST_NS: u64 = 1_000;
/// Largest latency tracked, in nanoseconds; larger values are clamped to it.
pub const HISTOGRAM_HIGHEST_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept: 2 means every value is within 1 %. Each histogram is
/// then ~20 KiB, which keeps per-API × per-stage histograms affordable on every shard.
pub const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 2;

/// Upper bounds (`le`, in seconds) of the Prometheus buckets of every latency histogram;
/// `+Inf` is added after them.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Quantiles exported as exact(-to-1 %) gauges beside each histogram.
pub const EXPORTED_QUANTILES: &[f64] = &[0.5, 0.9, 0.99, 0.999];

/// One latency distribution. Plain data: `Clone + Send`, merged with [`add`](Self::add).
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    /// Exact total of recorded values (hdrhistogram only keeps bucketed values).
    sum_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2*low,
        // sigfig <= 5), which the unit tests exercise; a failure here is a programming error.
        let hist = Histogram::new_with_bounds(
            HISTOGRAM_LOWEST_NS,
            HISTOGRAM_HIGHEST_NS,
            HISTOGRAM_SIGNIFICANT_DIGITS,
        )
        .expect("constant histogram bounds are valid");
        LatencyHistogram { hist, sum_ns: 0 }
    }

    /// Records one value; values past the range are clamped, never dropped.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.min(HISTOGRAM_HIGHEST_NS));
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Adds another histogram of the same layout (every one here has the same bounds).
    pub fn add(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so addition cannot run out of range.
        let _ = self.hist.add(&other.hist);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The value at `quantile` (0..=1), in nanoseconds; `None` when nothing was recorded.
    pub fn quantile_ns(&self, quantile: f64) -> Option<u64> {
        if self.hist.is_empty() {
            return None;
        }
        Some(self.hist.value_at_quantile(quantile))
    }

    /// Cumulative counts for each bound of [`LATENCY_BUCKETS_SECONDS`], then the `+Inf` count.
    ///
    /// A recorded value counts towards a bucket when the top of its hdrhistogram bin is at or
    /// below the bound: conservative (a value is never reported faster than it was), off by at
    /// most the 1 % bin width.
    pub fn cumulative_buckets(&self) -> Vec<u64> {
        let mut counts = vec![0u64; LATENCY_BUCKETS_SECONDS.len() + 1];
        for bin in self.hist.iter_recorded() {
            let seconds = bin.value_iterated_to() as f64 / 1e9;
            let index = LATENCY_BUCKETS_SECONDS
                .iter()
                .position(|&le| seconds <= le)
                .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
            counts[index] += bin.count_since_last_iteration();
        }
        let mut running = 0;
        for c in counts.iter_mut() {
            running += *c;
            *c = running;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let mut h = LatencyHistogram::new();
        h.record(30_000); // 30 µs -> first bucket (50 µs)
        h.record(700_000); // 0.7 ms -> 1 ms bucket
        h.record(2_000_000_000); // 2 s -> 2.5 s bucket
        h.record(u64::MAX); // clamped to 60 s -> +Inf
        let b = h.cumulative_buckets();
        assert_eq!(b.len(), LATENCY_BUCKETS_SECONDS.len() + 1);
        assert_eq!(b[0], 1);
        let ms1 = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|&x| x == 0.001)
            .unwrap();
        assert_eq!(b[ms1 - 1], 1);
        assert_eq!(b[ms1], 2);
        let s2_5 = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|&x| x == 2.5)
            .unwrap();
        assert_eq!(b[s2_5], 3);
        assert_eq!(b[LATENCY_BUCKETS_SECONDS.len() - 1], 3);
        assert_eq!(*b.last().unwrap(), 4);
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn quantiles_are_within_one_percent_and_add_merges() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for i in 1..=1000u64 {
            if i % 2 == 0 {
                a.record(i * 1_000_000);
            } else {
                b.record(i * 1_000_000);
            }
        }
        assert_eq!(LatencyHistogram::new().quantile_ns(0.5), None);
        a.add(&b);
        assert_eq!(a.count(), 1000);
        assert_eq!(a.sum_ns(), (1..=1000u64).sum::<u64>() * 1_000_000);
        let p50 = a.quantile_ns(0.5).unwrap() as f64;
        assert!((p50 - 500e6).abs() / 500e6 < 0.01, "p50 {p50}");
        let p99 = a.quantile_ns(0.99).unwrap() as f64;
        assert!((p99 - 990e6).abs() / 990e6 < 0.01, "p99 {p99}");
    }
}
