//! The server's clock: whole seconds since start, as memcached's `rel_time_t`. The
//! rule that puts a client's exptime on it (memcached's `realtime()`) is
//! `crate::rules::realtime`.

use std::time::{SystemTime, UNIX_EPOCH};

/// The clock starts at this value so that 1 is always in the past: an exptime of 1 is
/// how an already-expired item is stored, as in memcached.
const EPOCH_OFFSET: u32 = 2;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Coarse monotonic seconds at start.
    started: u64,
    /// Unix time at which `now()` would read 0.
    unix_at_zero: i64,
}

impl Clock {
    pub fn start() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        Clock { started: coarse_seconds(), unix_at_zero: unix - EPOCH_OFFSET as i64 }
    }

    /// Seconds on the server clock.
    pub fn now(&self) -> u32 {
        self.uptime() as u32 + EPOCH_OFFSET
    }

    pub fn uptime(&self) -> u64 {
        coarse_seconds().saturating_sub(self.started)
    }

    /// Unix time now, as `stats time` reports it.
    pub fn unix_now(&self) -> i64 {
        self.unix_at_zero + self.now() as i64
    }

    /// Unix time at which the server clock read 0.
    pub fn unix_at_zero(&self) -> i64 {
        self.unix_at_zero
    }
}

/// CLOCK_MONOTONIC at tick resolution: read once per round of requests, where a full
/// `Instant::now()` showed up at ~1% of CPU at pipeline 1. Seconds need no better.
fn coarse_seconds() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write; the clock id is constant.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64
}

/// CPU time this thread has used. For budgets of background work: unlike wall time it
/// does not count the time the thread was not running (preempted, or its vCPU
/// descheduled), which on a shared VM could use up a 1 ms budget before any work.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write; the clock id is constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
