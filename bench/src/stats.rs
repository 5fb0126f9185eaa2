//! Per-thread counters and latency histograms. Each generator thread records into its
//! own (no sharing on the hot path); they are merged once per second for the progress
//! line and once at the end for the report.

use crate::reply::ErrKind;
use hdrhistogram::Histogram;

/// Latencies are recorded in ns, 1 ns to 60 s, 3 significant digits.
pub const HIST_MAX_NS: u64 = 60_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds")
}

pub const ERR_KINDS: [ErrKind; 11] = [
    ErrKind::UnexpectedReply,
    ErrKind::WrongKey,
    ErrKind::BadLength,
    ErrKind::BadFlags,
    ErrKind::BadData,
    ErrKind::Error,
    ErrKind::ClientError,
    ErrKind::ServerError,
    ErrKind::NotStored,
    ErrKind::Closed,
    ErrKind::Timeout,
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Completed requests (a multi-get is one), errors included.
    pub requests: u64,
    pub gets: u64,
    pub sets: u64,
    /// Keys found / not found (a multi-get counts each key).
    pub hits: u64,
    pub misses: u64,
    pub errors: [u64; ERR_KINDS.len()],
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.gets += o.gets;
        self.sets += o.sets;
        self.hits += o.hits;
        self.misses += o.misses;
        for (a, b) in self.errors.iter_mut().zip(o.errors.iter()) {
            *a += b;
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn count_error(&mut self, e: ErrKind) {
        if let Some(i) = ERR_KINDS.iter().position(|&k| k == e) {
            self.errors[i] += 1;
        }
    }
}

/// What one thread measured.
#[derive(Clone, Debug)]
pub struct ThreadStats {
    /// Requests sent after warm-up: the report.
    pub total: Histogram<u64>,
    pub counts: Counters,
    /// Since the last progress tick, warm-up included.
    pub interval: Histogram<u64>,
    pub interval_counts: Counters,
    /// The first few offending replies, for the report.
    pub samples: Vec<String>,
    /// Open loop: how late each measured request left after its scheduled time. Large
    /// values mean the generator (or its CPU) did not keep up with the schedule.
    pub send_lag: Histogram<u64>,
}

pub const MAX_SAMPLES: usize = 8;

impl Default for ThreadStats {
    fn default() -> Self {
        ThreadStats {
            total: new_histogram(),
            counts: Counters::default(),
            interval: new_histogram(),
            interval_counts: Counters::default(),
            samples: Vec::new(),
            send_lag: new_histogram(),
        }
    }
}

impl ThreadStats {
    pub fn sample(&mut self, what: &str, bytes: &[u8]) {
        if self.samples.len() < MAX_SAMPLES {
            let shown = &bytes[..bytes.len().min(100)];
            self.samples
                .push(format!("{what}: {:?}", String::from_utf8_lossy(shown)));
        }
    }
}

/// Adds `from` into `into`; histograms of the same bounds always merge.
pub fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        // Only reachable with foreign bounds: fall back to copying values one by one.
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn merged_histograms_equal_one_histogram_of_all_values() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut parts = vec![new_histogram(), new_histogram(), new_histogram()];
        let mut all = new_histogram();
        for i in 0..300_000 {
            // Skewed, like latencies: mostly ~100 us, a tail to 50 ms.
            let v = if rng.gen_bool(0.99) {
                rng.gen_range(50_000..200_000)
            } else {
                rng.gen_range(1_000_000..50_000_000)
            };
            parts[i % 3].record(v).unwrap();
            all.record(v).unwrap();
        }
        let mut merged = new_histogram();
        for p in &parts {
            merge_histogram(&mut merged, p);
        }
        assert_eq!(merged.len(), 300_000);
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                merged.value_at_quantile(q),
                all.value_at_quantile(q),
                "q={q}"
            );
        }
        assert_eq!(merged.max(), all.max());
        assert_eq!(merged.min(), all.min());
        // Each part alone is not the whole: the merge did add.
        assert!(parts[0].len() < merged.len());
    }

    #[test]
    fn counters_add_up() {
        let mut a = Counters {
            requests: 3,
            hits: 2,
            misses: 1,
            gets: 3,
            ..Default::default()
        };
        a.count_error(ErrKind::WrongKey);
        let mut b = Counters {
            requests: 1,
            sets: 1,
            ..Default::default()
        };
        b.count_error(ErrKind::WrongKey);
        b.count_error(ErrKind::Timeout);
        a.add(&b);
        assert_eq!((a.requests, a.gets, a.sets, a.error_total()), (4, 3, 1, 3));
    }
}
