//! Server-side latency per command family, from a request parsed to its reply written.
//!
//! The request path pays two clock reads per round of requests (not per request) and
//! one counter bump per request: a connection notes each request's family in a
//! [`RoundTally`]; when the round's replies are written, the elapsed time is recorded
//! once per family with the round's count (`record_n`). Each core records into its own
//! `hdrhistogram`s (single writer, no lock) and publishes a copy once a second for the
//! HTTP side to render as Prometheus histograms.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::protocol::{Keyed, Op, Request};

/// The command families latencies are kept for, by the `family` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Get,
    Set,
    Delete,
    Arith,
    Touch,
    Other,
}

pub const FAMILIES: [Family; 6] = [Family::Get, Family::Set, Family::Delete, Family::Arith, Family::Touch, Family::Other];

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Get => "get",
            Family::Set => "set",
            Family::Delete => "delete",
            Family::Arith => "incr_decr",
            Family::Touch => "touch",
            Family::Other => "other",
        }
    }

    /// The family of a request: gets of any number of keys (and gat) are `get`.
    pub fn of(request: &Request) -> Family {
        match request {
            Request::Multi { .. } => Family::Get,
            Request::Keyed(Keyed { op, .. }) => match op {
                Op::Get { .. } | Op::MetaGet { .. } => Family::Get,
                Op::Store { .. } | Op::TooLarge { .. } | Op::MetaSet { .. } => Family::Set,
                Op::Delete | Op::MetaDelete { .. } | Op::DeleteIf { .. } => Family::Delete,
                Op::Arith { .. } | Op::MetaArith { .. } | Op::Counter { .. } => Family::Arith,
                Op::Touch { .. } | Op::TouchFetch { .. } => Family::Touch,
                Op::MetaDebug => Family::Other,
            },
            _ => Family::Other,
        }
    }
}

/// Largest latency kept exactly enough (60 s, in nanoseconds); longer ones saturate.
const HIGHEST_NS: u64 = 60_000_000_000;
/// hdrhistogram precision: 2 significant figures (1% error), about 28 KiB a family.
const SIGFIGS: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    // Cannot fail: the bounds are constants that hdrhistogram accepts (low >= 1,
    // high >= 2 * low, sigfig <= 5); no client input reaches them.
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIGS).expect("valid histogram bounds")
}

/// One core's histograms: written by its executor only.
pub struct Recorder {
    hists: RefCell<Vec<Histogram<u64>>>,
    /// Exact sums in nanoseconds (the Prometheus `_sum`).
    sums: [Cell<u64>; FAMILIES.len()],
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { hists: RefCell::new(FAMILIES.iter().map(|_| new_histogram()).collect()), sums: Default::default() }
    }
}

impl Recorder {
    /// `n` requests of `family` took `nanos` each.
    pub fn record_n(&self, family: usize, nanos: u64, n: u64) {
        let nanos = nanos.clamp(1, HIGHEST_NS);
        self.hists.borrow_mut()[family].saturating_record_n(nanos, n);
        self.sums[family].set(self.sums[family].get().wrapping_add(nanos.saturating_mul(n)));
    }

    /// A copy for the HTTP side.
    pub fn snapshot(&self) -> Snapshot {
        let hists = self.hists.borrow();
        Snapshot {
            families: FAMILIES
                .iter()
                .enumerate()
                .map(|(i, _)| FamilySnapshot::of(&hists[i], self.sums[i].get()))
                .collect(),
        }
    }
}

/// Upper bounds of the Prometheus buckets, in seconds (`+Inf` is added when rendered).
pub const BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// One family's histogram as Prometheus shows it: cumulative counts per bucket.
#[derive(Clone, Debug, Default)]
pub struct FamilySnapshot {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_ns: u64,
    /// Quantiles for `stats` users: p50, p99, p99.9 in nanoseconds.
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

impl FamilySnapshot {
    fn of(h: &Histogram<u64>, sum_ns: u64) -> FamilySnapshot {
        let cumulative = BUCKETS
            .iter()
            .map(|&b| {
                let ns = (b * 1e9) as u64;
                if h.is_empty() { 0 } else { h.count_between(0, ns) }
            })
            .collect();
        FamilySnapshot {
            cumulative,
            count: h.len(),
            sum_ns,
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
        }
    }
}

/// Every family of one core, as last published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub families: Vec<FamilySnapshot>,
}

/// What one connection's current round holds: when it started and how many requests
/// of each family it has parsed.
#[derive(Default)]
pub struct RoundTally {
    start: Option<Instant>,
    counts: [u32; FAMILIES.len()],
}

impl RoundTally {
    /// A round begins (its bytes have just been read): only when latencies are kept.
    #[inline]
    pub fn start(&mut self, on: bool) {
        if on {
            self.start = Some(Instant::now());
        }
    }

    /// One request of the round, parsed.
    #[inline]
    pub fn note(&mut self, request: &Request) {
        if self.start.is_some() {
            self.counts[Family::of(request) as usize] += 1;
        }
    }

    /// The round's replies are written: record every request noted.
    #[inline]
    pub fn finish(&mut self, recorder: &Recorder) {
        let Some(start) = self.start.take() else { return };
        let nanos = start.elapsed().as_nanos() as u64;
        for (family, count) in self.counts.iter_mut().enumerate() {
            if *count > 0 {
                recorder.record_n(family, nanos, u64::from(*count));
                *count = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_everything() {
        let r = Recorder::default();
        r.record_n(Family::Get as usize, 3_000, 10); // 3 us
        r.record_n(Family::Get as usize, 2_000_000, 1); // 2 ms
        let s = r.snapshot();
        let get = &s.families[Family::Get as usize];
        assert_eq!(get.count, 11);
        assert_eq!(get.sum_ns, 30_000 + 2_000_000);
        assert_eq!(get.cumulative[0], 10, "le=5us");
        assert_eq!(*get.cumulative.last().unwrap(), 11, "le=1s");
        assert!(get.cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.families[Family::Set as usize].count, 0);
    }
}
