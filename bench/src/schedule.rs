//! Open-loop send times. Each request has a time it *should* be sent, fixed in advance
//! by the rate alone; latency is measured from that time, so a server that stalls makes
//! every request due meanwhile late, and the stall shows in the tail instead of being
//! hidden by a generator that waited for it (coordinated omission).

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Evenly spaced, 1/rate apart.
    Constant,
    /// Exponential gaps with mean 1/rate, as independent users arrive.
    Poisson,
}

/// The send times of one connection: `next()` is when the next request is due.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    /// Offset of the next send from `start`, in ns (f64: no drift from rounding gaps).
    next_ns: f64,
    gap_ns: f64,
    arrival: Arrival,
    exp: Option<Exp<f64>>,
    rng: SmallRng,
}

impl Schedule {
    /// `rate` in requests per second for this connection; `phase` in [0,1) staggers
    /// constant-rate connections so that they do not all fire at the same instant.
    pub fn new(start: Instant, rate: f64, arrival: Arrival, phase: f64, seed: u64) -> Schedule {
        let gap_ns = 1e9 / rate;
        let mut rng = SmallRng::seed_from_u64(seed);
        let exp = match arrival {
            Arrival::Constant => None,
            Arrival::Poisson => Exp::new(1.0 / gap_ns).ok(),
        };
        let next_ns = match (&exp, arrival) {
            (Some(e), _) => e.sample(&mut rng),
            _ => gap_ns * phase.clamp(0.0, 1.0),
        };
        Schedule {
            start,
            next_ns,
            gap_ns,
            arrival,
            exp,
            rng,
        }
    }

    /// When the next request is due.
    pub fn next(&self) -> Instant {
        self.start + Duration::from_nanos(self.next_ns as u64)
    }

    /// Moves on to the request after the one due at `next()`.
    pub fn advance(&mut self) {
        self.next_ns += match (&self.exp, self.arrival) {
            (Some(e), Arrival::Poisson) => e.sample(&mut self.rng),
            _ => self.gap_ns,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_sends_at_exact_multiples_of_the_gap() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 1000.0, Arrival::Constant, 0.0, 1);
        for k in 0..5000u64 {
            assert_eq!(s.next() - t0, Duration::from_micros(1000 * k));
            s.advance();
        }
    }

    #[test]
    fn constant_rate_phase_staggers_the_first_send() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 100.0, Arrival::Constant, 0.25, 1);
        assert_eq!(s.next() - t0, Duration::from_micros(2500));
    }

    #[test]
    fn poisson_gaps_have_the_rate_mean_and_exponential_shape() {
        let t0 = Instant::now();
        let rate = 50_000.0;
        let mut s = Schedule::new(t0, rate, Arrival::Poisson, 0.0, 7);
        let n = 200_000;
        let mut prev = t0;
        let mut below_mean = 0;
        let mean_gap = Duration::from_secs_f64(1.0 / rate);
        for _ in 0..n {
            let t = s.next();
            assert!(t >= prev, "send times never go back");
            if t - prev < mean_gap {
                below_mean += 1;
            }
            prev = t;
            s.advance();
        }
        // n requests take n/rate seconds on average.
        let secs = (prev - t0).as_secs_f64();
        assert!(
            (secs - n as f64 / rate).abs() < 0.02 * n as f64 / rate,
            "took {secs}s"
        );
        // P(gap < mean) = 1 - 1/e for an exponential distribution.
        let frac = below_mean as f64 / n as f64;
        assert!((frac - 0.632).abs() < 0.01, "fraction below mean {frac}");
    }

    #[test]
    fn schedule_does_not_wait_for_replies() {
        // The schedule is a pure function of time: being late does not move it.
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 10.0, Arrival::Constant, 0.0, 1);
        s.advance();
        s.advance();
        assert_eq!(s.next() - t0, Duration::from_millis(200));
    }
}
