//! `stats settings`, `stats items` and `stats slabs`, in memcached's field names.
//!
//! memcached-rs has no slab classes: each core's shard packs items of every size into
//! large segments. `stats items` and `stats slabs` therefore report the whole cache as
//! one class (class 1), with memcached's meaning for each field, so tools that read them
//! (memcached-tool, memcstat) see true totals: a segment is a page, the average stored
//! item (header, key and value as packed here) is the chunk, and `age` is how long ago
//! the oldest segment still holding items was started (the tail of our FIFO).

use bytes::BytesMut;

use super::stats::ExecutorStats;
use crate::config::Config;
use crate::protocol::reply::stat;

pub fn write_settings(out: &mut BytesMut, c: &Config) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    stat(out, "maxbytes", c.memory_limit);
    stat(out, "maxconns", c.max_connections);
    stat(out, "tcpport", c.port);
    stat(out, "udpport", 0);
    stat(out, "inter", if c.listen.is_empty() { "NULL".to_string() } else { c.listen.join(",") });
    stat(out, "verbosity", c.verbosity);
    stat(out, "oldest", 0);
    stat(out, "evictions", if c.evict { "on" } else { "off" });
    stat(out, "domain_socket", c.unix_socket.as_ref().map_or("NULL".into(), |p| p.display().to_string()));
    stat(out, "umask", format_args!("{:o}", c.unix_mask));
    stat(out, "shutdown_command", yes_no(c.enable_shutdown));
    stat(out, "growth_factor", "1.25");
    stat(out, "chunk_size", 48);
    stat(out, "num_threads", c.threads);
    stat(out, "num_threads_per_udp", c.threads);
    stat(out, "stat_key_prefix", ":");
    stat(out, "detail_enabled", "no");
    stat(out, "reqs_per_event", 20);
    stat(out, "cas_enabled", yes_no(c.cas_enabled));
    stat(out, "tcp_backlog", c.backlog);
    stat(out, "binding_protocol", "ascii");
    stat(out, "auth_enabled_sasl", "no");
    stat(out, "auth_enabled_ascii", "no");
    stat(out, "item_size_max", c.item_size_max);
    stat(out, "maxconns_fast", "yes");
    stat(out, "hashpower_init", 0);
    stat(out, "slab_reassign", "no");
    stat(out, "slab_automove", 0);
    stat(out, "slab_chunk_max", c.item_size_max);
    stat(out, "lru_crawler", yes_no(super::dump::crawler_enabled()));
    stat(out, "tail_repair_time", 0);
    stat(out, "flush_enabled", yes_no(c.flush_enabled));
    stat(out, "dump_enabled", "yes");
    stat(out, "hash_algorithm", "ahash");
    stat(out, "lru_maintainer_thread", "no");
    stat(out, "lru_segmented", "no");
    stat(out, "idle_timeout", 0);
    stat(out, "track_sizes", "no");
    stat(out, "ssl_enabled", "no");
}

fn total(all: &[ExecutorStats], f: impl Fn(&ExecutorStats) -> u64) -> u64 {
    all.iter().map(f).sum()
}

/// Seconds since the oldest live segment on any core was started.
fn oldest_age(all: &[ExecutorStats], now: u32) -> u64 {
    all.iter()
        .map(|s| s.shard.oldest_write.get())
        .filter(|&t| t > 0)
        .map(|t| u64::from(now).saturating_sub(t - 1))
        .max()
        .unwrap_or(0)
}

pub fn write_items(out: &mut BytesMut, all: &[ExecutorStats], now: u32) {
    let items = total(all, |s| s.shard.curr_items.get());
    if items == 0 {
        return;
    }
    stat(out, "items:1:number", items);
    stat(out, "items:1:number_hot", 0);
    stat(out, "items:1:number_warm", 0);
    stat(out, "items:1:number_cold", items);
    stat(out, "items:1:age_hot", 0);
    stat(out, "items:1:age_warm", 0);
    stat(out, "items:1:age", oldest_age(all, now));
    stat(out, "items:1:mem_requested", total(all, |s| s.shard.bytes.get()));
    stat(out, "items:1:evicted", total(all, |s| s.shard.evictions.get()));
    stat(out, "items:1:evicted_nonzero", 0);
    stat(out, "items:1:evicted_time", 0);
    stat(out, "items:1:outofmemory", 0);
    stat(out, "items:1:tailrepairs", 0);
    stat(out, "items:1:reclaimed", total(all, |s| s.shard.reclaimed.get()));
    stat(out, "items:1:expired_unfetched", total(all, |s| s.shard.expired_unfetched.get()));
    stat(out, "items:1:evicted_unfetched", total(all, |s| s.shard.evicted_unfetched.get()));
    stat(out, "items:1:evicted_active", 0);
}

pub fn write_slabs(out: &mut BytesMut, all: &[ExecutorStats], page_size: u64) {
    let items = total(all, |s| s.shard.curr_items.get());
    let allocated = total(all, |s| s.shard.allocated.get());
    let requested = total(all, |s| s.shard.bytes.get());
    let pages = total(all, |s| s.shard.segments.get());
    let c = |f: fn(&ExecutorStats) -> u64| total(all, f);
    if pages > 0 {
        let chunk = requested.checked_div(items).unwrap_or(0).max(1);
        let per_page = page_size / chunk;
        stat(out, "1:chunk_size", chunk);
        stat(out, "1:chunks_per_page", per_page);
        stat(out, "1:total_pages", pages);
        stat(out, "1:total_chunks", pages * per_page);
        stat(out, "1:used_chunks", items);
        stat(out, "1:free_chunks", (pages * per_page).saturating_sub(items));
        stat(out, "1:free_chunks_end", 0);
        stat(out, "1:get_hits", c(|s| s.commands.get_hits.get()));
        stat(out, "1:cmd_set", c(|s| s.commands.cmd_set.get()));
        stat(out, "1:delete_hits", c(|s| s.commands.delete_hits.get()));
        stat(out, "1:incr_hits", c(|s| s.commands.incr_hits.get()));
        stat(out, "1:decr_hits", c(|s| s.commands.decr_hits.get()));
        stat(out, "1:cas_hits", c(|s| s.commands.cas_hits.get()));
        stat(out, "1:cas_badval", c(|s| s.commands.cas_badval.get()));
        stat(out, "1:touch_hits", c(|s| s.commands.touch_hits.get()));
    }
    stat(out, "active_slabs", u64::from(pages > 0));
    stat(out, "total_malloced", allocated);
}
