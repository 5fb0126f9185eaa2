//! Counters, one block per executor, and memcached's `stats` replies built from them.
//!
//! Each block has a single writer (its executor), so a counter is bumped with a plain
//! relaxed load and store: no lock, no read-modify-write, no cache line shared on the
//! request path. `stats` on any core reads every block and sums.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::BytesMut;

use crate::protocol::reply::stat;
use crate::store::StoreStats;

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
        cmd_get, cmd_set, cmd_flush, cmd_touch,
        get_hits, get_misses,
        delete_misses, delete_hits,
        incr_misses, incr_hits, decr_misses, decr_hits,
        cas_misses, cas_hits, cas_badval,
        touch_hits, touch_misses,
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

/// Everything one executor publishes. Padded so that two executors' blocks never share
/// a cache line.
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct ExecutorStats {
    pub commands: CommandCounters,
    pub shard: ShardGauges,
    /// The io_uring setup flags of this executor's main ring.
    pub ring_flags: Counter,
    /// Connections now inside a request round (not waiting for input).
    pub busy_connections: Counter,
}

impl ExecutorStats {
    pub fn publish_shard(&self, s: &StoreStats) {
        let g = &self.shard;
        g.curr_items.set(s.curr_items);
        g.total_items.set(s.total_items);
        g.bytes.set(s.bytes);
        g.evictions.set(s.evictions);
        g.reclaimed.set(s.reclaimed);
        g.expired_unfetched.set(s.expired_unfetched);
        g.evicted_unfetched.set(s.evicted_unfetched);
        g.get_expired.set(s.get_expired);
        g.get_flushed.set(s.get_flushed);
        g.limit_maxbytes.set(s.limit_maxbytes);
        g.allocated.set(s.allocated);
        g.segments.set(s.segments);
        g.oldest_write.set(s.oldest_write.map_or(0, |t| u64::from(t) + 1));
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

/// Sum of one field over every executor.
fn sum(all: &[ExecutorStats], f: impl Fn(&ExecutorStats) -> &Counter) -> u64 {
    all.iter().map(|s| f(s).get()).sum()
}

/// Process-wide facts the general `stats` needs besides the counters.
pub struct ProcessFacts {
    pub pid: u32,
    pub uptime: u64,
    pub time: u64,
    pub version: &'static str,
    pub threads: usize,
    pub max_connections: usize,
    pub listeners: u64,
    pub rusage_user: f64,
    pub rusage_system: f64,
}

/// `stats`: memcached's general statistics, in memcached's order.
pub fn write_general(out: &mut BytesMut, p: &ProcessFacts, all: &[ExecutorStats]) {
    let c = |f: fn(&CommandCounters) -> &Counter| sum(all, |s| f(&s.commands));
    let g = |f: fn(&ShardGauges) -> &Counter| sum(all, |s| f(&s.shard));
    stat(out, "pid", p.pid);
    stat(out, "uptime", p.uptime);
    stat(out, "time", p.time);
    stat(out, "version", p.version);
    stat(out, "libevent", "io_uring");
    stat(out, "pointer_size", 64);
    stat(out, "rusage_user", format_args!("{:.6}", p.rusage_user));
    stat(out, "rusage_system", format_args!("{:.6}", p.rusage_system));
    stat(out, "max_connections", p.max_connections);
    // memcached counts its listening sockets in total_connections, not in curr.
    stat(out, "curr_connections", c(|c| &c.curr_connections));
    stat(out, "total_connections", c(|c| &c.total_connections) + p.listeners);
    stat(out, "rejected_connections", c(|c| &c.rejected_connections));
    stat(out, "connection_structures", c(|c| &c.curr_connections) + p.listeners);
    stat(out, "response_obj_oom", 0);
    stat(out, "response_obj_count", 0);
    stat(out, "response_obj_bytes", 0);
    stat(out, "read_buf_oom", 0);
    stat(out, "reserved_fds", 0);
    stat(out, "cmd_get", c(|c| &c.cmd_get));
    stat(out, "cmd_set", c(|c| &c.cmd_set));
    stat(out, "cmd_flush", c(|c| &c.cmd_flush));
    stat(out, "cmd_touch", c(|c| &c.cmd_touch));
    stat(out, "cmd_meta", 0);
    stat(out, "get_hits", c(|c| &c.get_hits));
    stat(out, "get_misses", c(|c| &c.get_misses));
    stat(out, "get_expired", g(|g| &g.get_expired));
    stat(out, "get_flushed", g(|g| &g.get_flushed));
    stat(out, "delete_misses", c(|c| &c.delete_misses));
    stat(out, "delete_hits", c(|c| &c.delete_hits));
    stat(out, "incr_misses", c(|c| &c.incr_misses));
    stat(out, "incr_hits", c(|c| &c.incr_hits));
    stat(out, "decr_misses", c(|c| &c.decr_misses));
    stat(out, "decr_hits", c(|c| &c.decr_hits));
    stat(out, "cas_misses", c(|c| &c.cas_misses));
    stat(out, "cas_hits", c(|c| &c.cas_hits));
    stat(out, "cas_badval", c(|c| &c.cas_badval));
    stat(out, "touch_hits", c(|c| &c.touch_hits));
    stat(out, "touch_misses", c(|c| &c.touch_misses));
    stat(out, "store_too_large", 0);
    stat(out, "store_no_memory", 0);
    stat(out, "auth_cmds", 0);
    stat(out, "auth_errors", 0);
    stat(out, "bytes_read", c(|c| &c.bytes_read));
    stat(out, "bytes_written", c(|c| &c.bytes_written));
    stat(out, "limit_maxbytes", g(|g| &g.limit_maxbytes));
    stat(out, "accepting_conns", 1);
    stat(out, "listen_disabled_num", 0);
    stat(out, "threads", p.threads);
    stat(out, "conn_yields", 0);
    stat(out, "hash_power_level", 16);
    stat(out, "hash_bytes", 524288);
    stat(out, "hash_is_expanding", 0);
    stat(out, "expired_unfetched", g(|g| &g.expired_unfetched));
    stat(out, "evicted_unfetched", g(|g| &g.evicted_unfetched));
    stat(out, "evicted_active", 0);
    stat(out, "evictions", g(|g| &g.evictions));
    stat(out, "reclaimed", g(|g| &g.reclaimed));
    stat(out, "bytes", g(|g| &g.bytes));
    stat(out, "curr_items", g(|g| &g.curr_items));
    stat(out, "total_items", g(|g| &g.total_items));
}

/// `stats shards` (ours): what each executor holds and does.
pub fn write_shards(out: &mut BytesMut, all: &[ExecutorStats]) {
    for (i, s) in all.iter().enumerate() {
        let field = |name: &str| format!("shard{i}:{name}");
        stat(out, &field("items"), s.shard.curr_items.get());
        stat(out, &field("bytes"), s.shard.bytes.get());
        stat(out, &field("allocated"), s.shard.allocated.get());
        stat(out, &field("limit_maxbytes"), s.shard.limit_maxbytes.get());
        stat(out, &field("curr_connections"), s.commands.curr_connections.get());
        stat(out, &field("total_connections"), s.commands.total_connections.get());
        stat(out, &field("forwarded"), s.commands.forwarded.get());
        stat(out, &field("served_for_peers"), s.commands.served_for_peers.get());
        stat(out, &field("batches_from_peers"), s.commands.batches_from_peers.get());
        stat(out, &field("ring_flags"), ring_flag_names(s.ring_flags.get()));
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
    fn general_stats_sum_executors() {
        let all = [ExecutorStats::default(), ExecutorStats::default()];
        all[0].commands.get_hits.add(3);
        all[1].commands.get_hits.add(4);
        all[1].shard.curr_items.set(10);
        let facts = ProcessFacts {
            pid: 1, uptime: 2, time: 3, version: "1.6.18", threads: 2, max_connections: 1024,
            listeners: 1, rusage_user: 0.5, rusage_system: 0.25,
        };
        let mut out = BytesMut::new();
        write_general(&mut out, &facts, &all);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("STAT pid 1\r\nSTAT uptime 2\r\n"));
        assert!(text.contains("STAT get_hits 7\r\n"));
        assert!(text.contains("STAT curr_items 10\r\n"));
        assert!(text.contains("STAT rusage_user 0.500000\r\n"));
        all[0].reset();
        assert_eq!(all[0].commands.get_hits.get(), 0);
    }

    #[test]
    fn ring_flags_by_name() {
        assert_eq!(ring_flag_names((1 << 8) | (1 << 9)), "COOP_TASKRUN|TASKRUN_FLAG");
        assert_eq!(ring_flag_names(0), "none");
    }
}
