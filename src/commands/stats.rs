//! `stats` and its sub-commands: memcached's general statistics, `stats shards` (ours),
//! `stats conns`, `stats reset`, and the dispatch to `stats settings`/`items`/`slabs`.
//! Values come from every executor's counter block, summed here; each protocol writes
//! the name/value pairs its own way (`StatSink`).

use bytes::BytesMut;

use super::counters::{ring_flag_names, CommandCounters, Counter, ExecutorStats, ShardGauges};
use super::{settings, stats_slabs, CoreOp, Server};
use crate::protocol::{answer, stat_sink, Answer, Form, StatSink, StatsKind};

/// What `stats` shows as `libevent`: memcached names its event library there; ours is
/// the executor's event mechanism. Client sockets are accepted, read and written
/// through each executor's io_uring ring alone (multishot accept and receive, send
/// SQEs), where the executor also sleeps (see README, "How it is built").
pub const EVENT_MECHANISM: &str = "io_uring";

/// Runs `stats <kind>`.
pub fn stats(server: &mut impl Server, kind: StatsKind, form: Form, out: &mut BytesMut) {
    match kind {
        StatsKind::General => {
            let facts = server.process();
            write_general(&mut stat_sink(form, out), &facts, server.stats());
        }
        StatsKind::Settings => settings::write_settings(&mut stat_sink(form, out), server.config(), server.runtime()),
        StatsKind::Shards => write_shards(&mut stat_sink(form, out), server.stats()),
        StatsKind::HotKeys => write_hot_keys(&mut stat_sink(form, out), server.observe()),
        StatsKind::Items => stats_slabs::write_items(&mut stat_sink(form, out), server.stats(), server.now()),
        StatsKind::Slabs => {
            let page_size = server.page_size();
            let sizes = stats_slabs::size_classes(server.config());
            stats_slabs::write_slabs(&mut stat_sink(form, out), server.stats(), &sizes, page_size)
        }
        StatsKind::Sizes => answer(form, Answer::SizesDisabled, out),
        StatsKind::Conns => server.on_every_core(CoreOp::ListConns, form, out),
        StatsKind::Reset => {
            server.on_every_core(CoreOp::ResetStats, form, out);
            return answer(form, Answer::Reset, out);
        }
    }
    answer(form, Answer::End, out)
}

/// What one connection shows in `stats conns`.
pub struct ConnView<'a> {
    pub fd: i32,
    /// `tcp:ADDR:PORT` or `unix:PATH`, as memcached writes them.
    pub addr: &'a str,
    pub listen_addr: &'a str,
    pub secs_since_last_cmd: u32,
}

/// One connection's `stats conns` lines.
pub fn write_conn(out: &mut impl StatSink, c: &ConnView) {
    out.stat(&format!("{}:addr", c.fd), &c.addr);
    out.stat(&format!("{}:listen_addr", c.fd), &c.listen_addr);
    out.stat(&format!("{}:state", c.fd), &"conn_parse_cmd");
    out.stat(&format!("{}:secs_since_last_cmd", c.fd), &c.secs_since_last_cmd);
}

/// `stats reset` on one executor: memcached zeroes the command counters, not gauges.
pub fn reset(counters: &ExecutorStats, shard: &mut crate::store::Shard) {
    counters.reset();
    shard.reset_stats();
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
    /// Settings that decide which of memcached's optional fields `stats` prints.
    pub idle_timeout: u32,
    pub slab_reassign: bool,
    pub lru_crawler: bool,
    pub lru_maintainer: bool,
    pub lru_segmented: bool,
    /// Under `-Z`: memcached's TLS fields.
    pub tls: Option<TlsFacts>,
    /// `-m` (or the last `cache_memlimit`): memcached's `settings.maxbytes`. Not the
    /// executors' published limits, which a just-started executor may not have
    /// published yet when the first client asks.
    pub limit_maxbytes: u64,
    /// With `-e`: what the warm restart loaded at start (ours, printed last).
    pub restart: Option<crate::server::restart::Facts>,
    /// memcached's logger counters (`watch`).
    pub logger: LoggerCounts,
}

/// What `stats` shows of the `watch` streams (memcached's `log_*` fields).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoggerCounts {
    pub watchers: u64,
    pub written: u64,
    pub sent: u64,
    pub skipped: u64,
}

/// `stats hotkeys` (ours): every core's most requested keys, most requested first, as
/// `STAT hotkey:<rank> <key> count=<estimate> core=<core>`. Empty unless `-o hotkeys`
/// or `-o metrics`; the lists are those the cores published last (once a second).
pub fn write_hot_keys(out: &mut impl StatSink, observe: &crate::observe::Observe) {
    for (rank, (core, k)) in observe.hot_keys().iter().enumerate() {
        let key = String::from_utf8_lossy(&k.key);
        out.stat(&format!("hotkey:{}", rank + 1), &format_args!("{key} count={} core={core}", k.count));
    }
}

/// What `stats` shows of TLS under `-Z` (memcached's fields).
pub struct TlsFacts {
    pub handshake_errors: u64,
    /// Only with `ssl_session_cache`, as memcached.
    pub new_sessions: Option<u64>,
    /// Seconds since the certificate was last loaded (start or `refresh_certs`).
    pub since_refresh: u32,
}

/// `stats`: memcached 1.6.18's general statistics, every field in its order (Debian's
/// build: TLS and extstore compiled in, no proxy). Where a mechanism does not exist
/// here the field is a constant, listed in README ("Differences from memcached"):
/// response objects, slab reassignment and LRU maintainer/segment counters, the
/// logger, NAPI ids. Fields memcached prints only under a setting (idle_kicks,
/// slab_reassign_*, lru_crawler_*, lru_maintainer_juggles) follow the same setting.
pub fn write_general(out: &mut impl StatSink, p: &ProcessFacts, all: &[ExecutorStats]) {
    let c = |f: fn(&CommandCounters) -> &Counter| sum(all, |s| f(&s.commands));
    let g = |f: fn(&ShardGauges) -> &Counter| sum(all, |s| f(&s.shard));
    let conns = c(|c| &c.curr_connections);
    out.stat("pid", &p.pid);
    out.stat("uptime", &p.uptime);
    out.stat("time", &p.time);
    out.stat("version", &p.version);
    out.stat("libevent", &EVENT_MECHANISM);
    out.stat("pointer_size", &64);
    out.stat("rusage_user", &format_args!("{:.6}", p.rusage_user));
    out.stat("rusage_system", &format_args!("{:.6}", p.rusage_system));
    out.stat("max_connections", &p.max_connections);
    // memcached counts its listening sockets as connections and prints one fewer than
    // it has: clients + listeners - 1 (1 for one client on one listener, 2 for one
    // client on the default IPv4 and IPv6 listeners).
    out.stat("curr_connections", &(conns + p.listeners).saturating_sub(1));
    out.stat("total_connections", &(c(|c| &c.total_connections) + p.listeners));
    out.stat("rejected_connections", &c(|c| &c.rejected_connections));
    out.stat("connection_structures", &(conns + p.listeners));
    // memcached's response objects and read buffers are per-request and per-thread
    // allocations; ours are one read and one write buffer per connection.
    out.stat("response_obj_oom", &0);
    out.stat("response_obj_count", &0);
    out.stat("response_obj_bytes", &0);
    out.stat("read_buf_count", &conns);
    out.stat("read_buf_bytes", &(conns * READ_BUFFER_BYTES));
    out.stat("read_buf_bytes_free", &0);
    out.stat("read_buf_oom", &0);
    out.stat("reserved_fds", &0);
    out.stat("cmd_get", &c(|c| &c.cmd_get));
    out.stat("cmd_set", &c(|c| &c.cmd_set));
    out.stat("cmd_flush", &c(|c| &c.cmd_flush));
    out.stat("cmd_touch", &c(|c| &c.cmd_touch));
    out.stat("cmd_meta", &c(|c| &c.cmd_meta));
    out.stat("get_hits", &c(|c| &c.get_hits));
    out.stat("get_misses", &c(|c| &c.get_misses));
    out.stat("get_expired", &g(|g| &g.get_expired));
    out.stat("get_flushed", &g(|g| &g.get_flushed));
    out.stat("delete_misses", &c(|c| &c.delete_misses));
    out.stat("delete_hits", &c(|c| &c.delete_hits));
    out.stat("incr_misses", &c(|c| &c.incr_misses));
    out.stat("incr_hits", &c(|c| &c.incr_hits));
    out.stat("decr_misses", &c(|c| &c.decr_misses));
    out.stat("decr_hits", &c(|c| &c.decr_hits));
    out.stat("cas_misses", &c(|c| &c.cas_misses));
    out.stat("cas_hits", &c(|c| &c.cas_hits));
    out.stat("cas_badval", &c(|c| &c.cas_badval));
    out.stat("touch_hits", &c(|c| &c.touch_hits));
    out.stat("touch_misses", &c(|c| &c.touch_misses));
    out.stat("store_too_large", &c(|c| &c.store_too_large));
    out.stat("store_no_memory", &c(|c| &c.store_no_memory));
    out.stat("auth_cmds", &c(|c| &c.auth_cmds));
    out.stat("auth_errors", &c(|c| &c.auth_errors));
    if p.idle_timeout > 0 {
        out.stat("idle_kicks", &c(|c| &c.idle_kicks));
    }
    out.stat("bytes_read", &c(|c| &c.bytes_read));
    out.stat("bytes_written", &c(|c| &c.bytes_written));
    out.stat("limit_maxbytes", &p.limit_maxbytes);
    out.stat("accepting_conns", &1);
    out.stat("listen_disabled_num", &0);
    out.stat("time_in_listen_disabled_us", &0);
    out.stat("threads", &p.threads);
    out.stat("conn_yields", &c(|c| &c.conn_yields));
    out.stat("hash_power_level", &16);
    out.stat("hash_bytes", &524288);
    out.stat("hash_is_expanding", &0);
    if p.slab_reassign {
        for name in [
            "slab_reassign_rescues", "slab_reassign_chunk_rescues", "slab_reassign_evictions_nomem",
            "slab_reassign_inline_reclaim", "slab_reassign_busy_items", "slab_reassign_busy_deletes",
            "slab_reassign_running", "slabs_moved",
        ] {
            out.stat(name, &0);
        }
    }
    if p.lru_crawler {
        out.stat("lru_crawler_running", &0);
        out.stat("lru_crawler_starts", &0);
    }
    if p.lru_maintainer {
        out.stat("lru_maintainer_juggles", &0);
    }
    out.stat("malloc_fails", &0);
    // memcached's logger: we drop no line before the watchers (no per-thread buffer).
    out.stat("log_worker_dropped", &0);
    out.stat("log_worker_written", &p.logger.written);
    out.stat("log_watcher_skipped", &p.logger.skipped);
    out.stat("log_watcher_sent", &p.logger.sent);
    out.stat("log_watchers", &p.logger.watchers);
    if let Some(tls) = &p.tls {
        if let Some(new_sessions) = tls.new_sessions {
            out.stat("ssl_new_sessions", &new_sessions);
        }
        out.stat("ssl_handshake_errors", &tls.handshake_errors);
        out.stat("time_since_server_cert_refresh", &tls.since_refresh);
    }
    out.stat("unexpected_napi_ids", &0);
    out.stat("round_robin_fallback", &0);
    out.stat("bytes", &g(|g| &g.bytes));
    out.stat("curr_items", &g(|g| &g.curr_items));
    out.stat("total_items", &g(|g| &g.total_items));
    out.stat("slab_global_page_pool", &0);
    out.stat("expired_unfetched", &g(|g| &g.expired_unfetched));
    out.stat("evicted_unfetched", &g(|g| &g.evicted_unfetched));
    out.stat("evicted_active", &0);
    out.stat("evictions", &g(|g| &g.evictions));
    out.stat("reclaimed", &g(|g| &g.reclaimed));
    out.stat("crawler_reclaimed", &0);
    out.stat("crawler_items_checked", &0);
    out.stat("lrutail_reflocked", &0);
    if p.lru_segmented {
        for name in ["moves_to_cold", "moves_to_warm", "moves_within_lru", "direct_reclaims", "lru_bumps_dropped"] {
            out.stat(name, &0);
        }
    }
    if let Some(r) = &p.restart {
        out.stat("restart_restored", &u8::from(r.restored));
        out.stat("restart_items", &r.items);
        out.stat("restart_load_seconds", &format_args!("{:.6}", r.load_seconds));
    }
}

/// What `stats` counts as one connection's read buffer (`read_buf_bytes`): the size a
/// connection's read buffer starts with.
pub const READ_BUFFER_BYTES: u64 = 16 * 1024;

/// `stats shards` (ours): what each executor holds and does.
pub fn write_shards(out: &mut impl StatSink, all: &[ExecutorStats]) {
    for (i, s) in all.iter().enumerate() {
        let field = |name: &str| format!("shard{i}:{name}");
        out.stat(&field("items"), &s.shard.curr_items.get());
        out.stat(&field("bytes"), &s.shard.bytes.get());
        out.stat(&field("allocated"), &s.shard.allocated.get());
        out.stat(&field("limit_maxbytes"), &s.shard.limit_maxbytes.get());
        out.stat(&field("curr_connections"), &s.commands.curr_connections.get());
        out.stat(&field("total_connections"), &s.commands.total_connections.get());
        out.stat(&field("forwarded"), &s.commands.forwarded.get());
        out.stat(&field("served_for_peers"), &s.commands.served_for_peers.get());
        out.stat(&field("batches_from_peers"), &s.commands.batches_from_peers.get());
        out.stat(&field("ring_flags"), &ring_flag_names(s.ring_flags.get()));
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::text_reply::StatLines;

    #[test]
    fn general_stats_sum_executors() {
        let all = [ExecutorStats::default(), ExecutorStats::default()];
        all[0].commands.get_hits.add(3);
        all[1].commands.get_hits.add(4);
        all[1].shard.curr_items.set(10);
        let facts = ProcessFacts {
            pid: 1, uptime: 2, time: 3, version: "1.6.18", threads: 2, max_connections: 1024,
            listeners: 1, rusage_user: 0.5, rusage_system: 0.25, idle_timeout: 0, slab_reassign: true,
            lru_crawler: true, lru_maintainer: true, lru_segmented: true, logger: Default::default(), restart: None,
            limit_maxbytes: 64 << 20, tls: None,
        };
        let mut out = BytesMut::new();
        write_general(&mut StatLines(&mut out), &facts, &all);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("STAT pid 1\r\nSTAT uptime 2\r\n"));
        assert!(text.contains("STAT get_hits 7\r\n"));
        assert!(text.contains("STAT curr_items 10\r\n"));
        assert!(text.contains("STAT rusage_user 0.500000\r\n"));
        assert!(text.contains("STAT libevent io_uring\r\n"));
        let names: Vec<&str> = text.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
        assert_eq!(names, MEMCACHED_1_6_18_STATS, "every field of memcached's `stats`, in its order");
    }

    /// `stats` of memcached 1.6.18 (Debian) with its default settings, names only.
    const MEMCACHED_1_6_18_STATS: &[&str] = &[
        "pid", "uptime", "time", "version", "libevent", "pointer_size", "rusage_user", "rusage_system",
        "max_connections", "curr_connections", "total_connections", "rejected_connections",
        "connection_structures", "response_obj_oom", "response_obj_count", "response_obj_bytes",
        "read_buf_count", "read_buf_bytes", "read_buf_bytes_free", "read_buf_oom", "reserved_fds", "cmd_get",
        "cmd_set", "cmd_flush", "cmd_touch", "cmd_meta", "get_hits", "get_misses", "get_expired", "get_flushed",
        "delete_misses", "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits", "cas_misses",
        "cas_hits", "cas_badval", "touch_hits", "touch_misses", "store_too_large", "store_no_memory",
        "auth_cmds", "auth_errors", "bytes_read", "bytes_written", "limit_maxbytes", "accepting_conns",
        "listen_disabled_num", "time_in_listen_disabled_us", "threads", "conn_yields", "hash_power_level",
        "hash_bytes", "hash_is_expanding", "slab_reassign_rescues", "slab_reassign_chunk_rescues",
        "slab_reassign_evictions_nomem", "slab_reassign_inline_reclaim", "slab_reassign_busy_items",
        "slab_reassign_busy_deletes", "slab_reassign_running", "slabs_moved", "lru_crawler_running",
        "lru_crawler_starts", "lru_maintainer_juggles", "malloc_fails", "log_worker_dropped",
        "log_worker_written", "log_watcher_skipped", "log_watcher_sent", "log_watchers",
        "unexpected_napi_ids", "round_robin_fallback", "bytes", "curr_items", "total_items",
        "slab_global_page_pool", "expired_unfetched", "evicted_unfetched", "evicted_active", "evictions",
        "reclaimed", "crawler_reclaimed", "crawler_items_checked", "lrutail_reflocked", "moves_to_cold",
        "moves_to_warm", "moves_within_lru", "direct_reclaims", "lru_bumps_dropped",
    ];
}
