//! What the server counts, one block per executor: memcached's per-thread counters,
//! the executor's shard figures, and ours.
//!
//! Each block has a single writer (its executor), so a counter is bumped with a plain
//! relaxed load and store: no lock, no read-modify-write, no cache line shared on the
//! request path. `stats` on any core reads every block and sums (commands/stats.rs).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::store::{Shard, StoreStats, MAX_CLASSES};

/// One counter; written by one thread only.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }
    #[inline]
    pub fn decr(&self) {
        self.0.store(self.0.load(Relaxed).saturating_sub(1), Relaxed);
    }
    #[inline]
    pub fn set(&self, n: u64) {
        self.0.store(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Default, Debug)]
        pub struct $name { $($(#[$fmeta])* pub $field: Counter,)* }

        impl $name {
            /// Field names and counters, in declaration order.
            pub fn counters(&self) -> impl Iterator<Item = (&'static str, &Counter)> + '_ {
                [$((stringify!($field), &self.$field),)*].into_iter()
            }
        }
    };
}

counters! {
    /// What memcached's `stats` reports per thread, for one executor. Commands are
    /// counted where they run (the key's owner); connections where they are served.
    CommandCounters {
        cmd_get, cmd_set, cmd_flush, cmd_touch, cmd_meta,
        get_hits, get_misses,
        delete_misses, delete_hits,
        incr_misses, incr_hits, decr_misses, decr_hits,
        cas_misses, cas_hits, cas_badval,
        touch_hits, touch_misses,
        store_too_large, store_no_memory, auth_cmds, auth_errors, idle_kicks, conn_yields,
        bytes_read, bytes_written,
        total_connections, curr_connections, rejected_connections,
        /// Requests this executor sent to their owner on another core.
        forwarded,
        /// Requests this executor ran for another core.
        served_for_peers,
        /// Batches of them (served_for_peers / batches_from_peers: the mean batch).
        batches_from_peers,
    }
}

counters! {
    /// The executor's shard, published after each round of requests it runs.
    ShardGauges {
        curr_items, total_items, bytes, evictions, reclaimed, expired_unfetched,
        evicted_unfetched, get_expired, get_flushed, limit_maxbytes, allocated,
        /// Segments holding memory.
        segments,
        /// The shard's `oldest_write` + 1 (0: nothing stored).
        oldest_write,
    }
}

counters! {
    /// One size class of the executor's shard (`stats items`, `stats slabs`).
    ClassGauges {
        number, requested, evicted, reclaimed, expired_unfetched, evicted_unfetched,
        /// Server time + 1 the oldest segment holding the class's items started (0:
        /// none); refreshed once a second.
        oldest,
    }
}

/// The executor's figures for classes 1 to 63 (index i: class i + 1).
#[derive(Debug)]
pub struct ClassTable(pub Vec<ClassGauges>);

impl Default for ClassTable {
    fn default() -> Self {
        ClassTable((0..MAX_CLASSES).map(|_| ClassGauges::default()).collect())
    }
}

/// Everything one executor publishes. Padded so that two executors' blocks never share
/// a cache line.
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct ExecutorStats {
    pub commands: CommandCounters,
    pub shard: ShardGauges,
    pub classes: ClassTable,
    /// The io_uring setup flags of this executor's main ring.
    pub ring_flags: Counter,
    /// Connections now inside a request round (not waiting for input).
    pub busy_connections: Counter,
}

/// Sets each named gauge of `$g` to the field of the same name in `$s` (the shard's
/// figures and the gauges that publish them share their names).
macro_rules! publish {
    ($g:expr, $s:expr; $($field:ident),* $(,)?) => {
        $($g.$field.set($s.$field);)*
    };
}

impl ExecutorStats {
    pub fn publish_shard(&self, s: &StoreStats) {
        let g = &self.shard;
        publish!(g, s; curr_items, total_items, bytes, evictions, reclaimed, expired_unfetched,
            evicted_unfetched, get_expired, get_flushed, limit_maxbytes, allocated, segments);
        g.oldest_write.set(s.oldest_write.map_or(0, |t| u64::from(t) + 1));
    }

    /// The size classes whose figures changed since the last call; with `ages`, the
    /// oldest segment of every class too (a walk over the segments: once a second).
    pub fn publish_classes(&self, shard: &Shard, ages: bool) {
        let rows = shard.class_stats();
        let mut dirty = shard.take_dirty_classes();
        while dirty != 0 {
            let i = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            let (r, g) = (&rows[i], &self.classes.0[i]);
            publish!(g, r; number, requested, evicted, reclaimed, expired_unfetched, evicted_unfetched);
        }
        if ages {
            for (g, oldest) in self.classes.0.iter().zip(shard.class_oldest()) {
                g.oldest.set(u64::from(oldest));
            }
        }
    }

    /// `stats reset`: memcached zeroes the command counters and totals, not the gauges.
    pub fn reset(&self) {
        // curr_connections is a gauge: the connections stay open.
        for (name, counter) in self.commands.counters() {
            if name != "curr_connections" {
                counter.set(0);
            }
        }
    }
}

/// io_uring setup flags by name, as `stats shards` shows them.
pub fn ring_flag_names(flags: u64) -> String {
    const NAMES: &[(u64, &str)] = &[
        (1 << 0, "IOPOLL"),
        (1 << 1, "SQPOLL"),
        (1 << 8, "COOP_TASKRUN"),
        (1 << 9, "TASKRUN_FLAG"),
        (1 << 12, "SINGLE_ISSUER"),
        (1 << 13, "DEFER_TASKRUN"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_keeps_gauges() {
        let s = ExecutorStats::default();
        s.commands.get_hits.add(3);
        s.commands.curr_connections.add(2);
        s.shard.curr_items.set(10);
        s.reset();
        assert_eq!(s.commands.get_hits.get(), 0);
        assert_eq!(s.commands.curr_connections.get(), 2, "a gauge: the connections stay open");
        assert_eq!(s.shard.curr_items.get(), 10);
    }

    #[test]
    fn ring_flags_by_name() {
        assert_eq!(ring_flag_names((1 << 8) | (1 << 9)), "COOP_TASKRUN|TASKRUN_FLAG");
        assert_eq!(ring_flag_names(0), "none");
    }
}
