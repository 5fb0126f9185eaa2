//! `stats` and its sub-commands: memcached's general statistics, `stats shards` (ours),
//! `stats conns`, `stats reset`, and the dispatch to `stats settings`/`items`/`slabs`.
//! Values come from every executor's counter block, summed here; each protocol writes
//! the name/value pairs its own way (`StatSink`).

use bytes::BytesMut;

use super::counters::{ring_flag_names, CommandCounters, Counter, ExecutorStats, ShardGauges};
use super::{settings, stats_slabs, CoreOp, Server};
use crate::protocol::{answer, stat_sink, Answer, Form, StatSink, StatsKind};

/// What `stats` shows as `libevent`: memcached names its event library there; ours is
/// the executor's event mechanism. Client sockets are read through one epoll set per
/// executor, which sleeps in its io_uring ring (see README, "How it is built").
pub const EVENT_MECHANISM: &str = "epoll+io_uring";

/// Runs `stats <kind>`.
pub fn stats(server: &mut impl Server, kind: StatsKind, form: Form, out: &mut BytesMut) {
    match kind {
        StatsKind::General => {
            let facts = server.process();
            write_general(&mut stat_sink(form, out), &facts, server.stats());
        }
        StatsKind::Settings => settings::write_settings(&mut stat_sink(form, out), server.config(), server.runtime()),
        StatsKind::Shards => write_shards(&mut stat_sink(form, out), server.stats()),
        StatsKind::Items => stats_slabs::write_items(&mut stat_sink(form, out), server.stats(), server.now()),
        StatsKind::Slabs => {
            let page_size = server.page_size();
            stats_slabs::write_slabs(&mut stat_sink(form, out), server.stats(), page_size)
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
}

/// `stats`: memcached's general statistics, in memcached's order.
pub fn write_general(out: &mut impl StatSink, p: &ProcessFacts, all: &[ExecutorStats]) {
    let c = |f: fn(&CommandCounters) -> &Counter| sum(all, |s| f(&s.commands));
    let g = |f: fn(&ShardGauges) -> &Counter| sum(all, |s| f(&s.shard));
    out.stat("pid", &p.pid);
    out.stat("uptime", &p.uptime);
    out.stat("time", &p.time);
    out.stat("version", &p.version);
    out.stat("libevent", &EVENT_MECHANISM);
    out.stat("pointer_size", &64);
    out.stat("rusage_user", &format_args!("{:.6}", p.rusage_user));
    out.stat("rusage_system", &format_args!("{:.6}", p.rusage_system));
    out.stat("max_connections", &p.max_connections);
    // memcached counts its listening sockets in total_connections, not in curr.
    out.stat("curr_connections", &c(|c| &c.curr_connections));
    out.stat("total_connections", &(c(|c| &c.total_connections) + p.listeners));
    out.stat("rejected_connections", &c(|c| &c.rejected_connections));
    out.stat("connection_structures", &(c(|c| &c.curr_connections) + p.listeners));
    out.stat("response_obj_oom", &0);
    out.stat("response_obj_count", &0);
    out.stat("response_obj_bytes", &0);
    out.stat("read_buf_oom", &0);
    out.stat("reserved_fds", &0);
    out.stat("cmd_get", &c(|c| &c.cmd_get));
    out.stat("cmd_set", &c(|c| &c.cmd_set));
    out.stat("cmd_flush", &c(|c| &c.cmd_flush));
    out.stat("cmd_touch", &c(|c| &c.cmd_touch));
    out.stat("cmd_meta", &0);
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
    out.stat("store_too_large", &0);
    out.stat("store_no_memory", &0);
    out.stat("auth_cmds", &0);
    out.stat("auth_errors", &0);
    out.stat("bytes_read", &c(|c| &c.bytes_read));
    out.stat("bytes_written", &c(|c| &c.bytes_written));
    out.stat("limit_maxbytes", &g(|g| &g.limit_maxbytes));
    out.stat("accepting_conns", &1);
    out.stat("listen_disabled_num", &0);
    out.stat("threads", &p.threads);
    out.stat("conn_yields", &0);
    out.stat("hash_power_level", &16);
    out.stat("hash_bytes", &524288);
    out.stat("hash_is_expanding", &0);
    out.stat("expired_unfetched", &g(|g| &g.expired_unfetched));
    out.stat("evicted_unfetched", &g(|g| &g.evicted_unfetched));
    out.stat("evicted_active", &0);
    out.stat("evictions", &g(|g| &g.evictions));
    out.stat("reclaimed", &g(|g| &g.reclaimed));
    out.stat("bytes", &g(|g| &g.bytes));
    out.stat("curr_items", &g(|g| &g.curr_items));
    out.stat("total_items", &g(|g| &g.total_items));
}

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
            listeners: 1, rusage_user: 0.5, rusage_system: 0.25,
        };
        let mut out = BytesMut::new();
        write_general(&mut StatLines(&mut out), &facts, &all);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("STAT pid 1\r\nSTAT uptime 2\r\n"));
        assert!(text.contains("STAT get_hits 7\r\n"));
        assert!(text.contains("STAT curr_items 10\r\n"));
        assert!(text.contains("STAT rusage_user 0.500000\r\n"));
        assert!(text.contains("STAT libevent epoll+io_uring\r\n"));
    }
}
