//! Settings in force: the runtime values commands change (`cache_memlimit`, `flush_all`,
//! `lru_crawler`), and `stats settings`, which shows them with the start-up flags.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::config::Config;
use crate::protocol::StatSink;

/// What commands change while the server runs, shared by every core. Read and written
/// by server-wide commands and once-a-second housekeeping, never per request.
#[derive(Debug)]
pub struct Runtime {
    /// `-m`, or what `cache_memlimit` last set, in bytes (memcached's `maxbytes`).
    pub memory_limit: AtomicU64,
    /// `lru_crawler enable|disable`: memcached's crawler thread state. Our expiry
    /// sweep runs either way; what it changes is what memcached's replies change.
    pub crawler_enabled: AtomicBool,
    /// memcached's `settings.oldest_live`: items last written at or before this server
    /// time are flushed (`stats settings` shows it as `oldest`).
    pub oldest_live: AtomicU32,
    /// A delayed `flush_all` not yet applied: the server time it is due (0: none).
    pub pending_flush: AtomicU32,
    /// `verbosity N` (memcached's `settings.verbose`), first `-v`'s count.
    pub verbosity: AtomicU32,
    /// `slabs automove N`: accepted and shown (there are no slab classes here).
    pub slab_automove: AtomicU32,
}

impl Runtime {
    pub fn new(config: &Config) -> Runtime {
        Runtime {
            memory_limit: AtomicU64::new(config.memory_limit as u64),
            crawler_enabled: AtomicBool::new(true),
            oldest_live: AtomicU32::new(0),
            pending_flush: AtomicU32::new(0),
            verbosity: AtomicU32::new(u32::from(config.verbosity)),
            slab_automove: AtomicU32::new(config.extended("slab_automove").and_then(|v| v.parse().ok()).unwrap_or(1)),
        }
    }
}

/// `-o slab_reassign` (memcached's default since 1.5: on). Accepted and shown; there
/// are no slab classes to reassign here.
pub fn slab_reassign(c: &Config) -> bool {
    c.extended("no_slab_reassign").is_none()
}

/// `-o lru_maintainer` (default on; `no_lru_maintainer` off). Shown, as memcached
/// shows it; our eviction needs no maintainer thread.
pub fn lru_maintainer(c: &Config) -> bool {
    c.extended("no_lru_maintainer").is_none()
}

/// `-o lru_segmented` (default on; `no_lru_segmented` off). Shown as memcached shows it.
pub fn lru_segmented(c: &Config) -> bool {
    c.extended("no_lru_segmented").is_none()
}

/// memcached's largest slab chunk: half its 1 MiB page unless `-o slab_chunk_max`
/// (or `no_modern`/`no_chunked_items`: the whole page) says otherwise.
pub fn slab_chunk_max(c: &Config) -> u32 {
    const PAGE: u32 = 1 << 20;
    if let Some(v) = c.extended("slab_chunk_max").and_then(|v| v.parse::<u32>().ok()) {
        // memcached reads the value in kilobytes when it is small, as here.
        return if v < 1024 { v * 1024 } else { v };
    }
    if c.extended("no_modern").is_some() || c.extended("no_chunked_items").is_some() { PAGE } else { PAGE / 2 }
}

/// `stats settings`: memcached 1.6.18's fields in its order (Debian's build: extstore
/// and TLS compiled in). Options that tune memcached's own internals (LRU segments,
/// extstore, slab automover) are accepted and shown with the value given or
/// memcached's default: they have no effect here (README, "Differences from memcached").
pub fn write_settings(out: &mut impl StatSink, c: &Config, r: &Runtime) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let opt = |name: &str, default: &'static str| -> String { c.extended(name).unwrap_or(default).to_string() };
    let has = |name: &str| c.extended(name).is_some();
    out.stat("maxbytes", &r.memory_limit.load(Relaxed));
    out.stat("maxconns", &c.max_connections);
    out.stat("tcpport", &c.tcp_port);
    out.stat("udpport", &0);
    out.stat("inter", &if c.inter.is_empty() { "NULL".to_string() } else { c.inter.join(",") });
    out.stat("verbosity", &r.verbosity.load(Relaxed));
    out.stat("oldest", &r.oldest_live.load(Relaxed));
    out.stat("evictions", &if c.evict { "on" } else { "off" });
    out.stat("domain_socket", &c.unix_socket.as_ref().map_or("NULL".into(), |p| p.display().to_string()));
    out.stat("umask", &format_args!("{:o}", c.unix_mask));
    out.stat("shutdown_command", &yes_no(c.enable_shutdown));
    out.stat("growth_factor", &format_args!("{:.2}", c.growth_factor));
    out.stat("chunk_size", &c.chunk_size);
    out.stat("num_threads", &c.threads);
    out.stat("num_threads_per_udp", &c.threads);
    out.stat("stat_key_prefix", &c.prefix_delimiter);
    out.stat("detail_enabled", &"no");
    out.stat("reqs_per_event", &c.reqs_per_event);
    out.stat("cas_enabled", &yes_no(c.cas_enabled));
    out.stat("tcp_backlog", &c.backlog);
    out.stat("binding_protocol", &c.binding.name());
    out.stat("auth_enabled_sasl", &yes_no(c.sasl));
    out.stat("auth_enabled_ascii", &c.auth_file.as_ref().map_or("no".into(), |p| p.display().to_string()));
    out.stat("item_size_max", &c.item_size_max);
    out.stat("maxconns_fast", &"yes");
    out.stat("hashpower_init", &opt("hashpower", "0"));
    out.stat("slab_reassign", &yes_no(slab_reassign(c)));
    out.stat("slab_automove", &r.slab_automove.load(Relaxed));
    out.stat("slab_automove_ratio", &opt("slab_automove_ratio", "0.80"));
    out.stat("slab_automove_window", &opt("slab_automove_window", "30"));
    out.stat("slab_chunk_max", &slab_chunk_max(c));
    out.stat("lru_crawler", &yes_no(r.crawler_enabled.load(Relaxed)));
    out.stat("lru_crawler_sleep", &opt("lru_crawler_sleep", "100"));
    out.stat("lru_crawler_tocrawl", &opt("lru_crawler_tocrawl", "0"));
    out.stat("tail_repair_time", &opt("tail_repair_time", "0"));
    out.stat("flush_enabled", &yes_no(c.flush_enabled));
    out.stat("dump_enabled", &"yes");
    out.stat("hash_algorithm", &"ahash");
    out.stat("lru_maintainer_thread", &yes_no(lru_maintainer(c)));
    out.stat("lru_segmented", &yes_no(lru_segmented(c)));
    out.stat("hot_lru_pct", &opt("hot_lru_pct", "20"));
    out.stat("warm_lru_pct", &opt("warm_lru_pct", "40"));
    out.stat("hot_max_factor", &opt("hot_max_factor", "0.20"));
    out.stat("warm_max_factor", &opt("warm_max_factor", "2.00"));
    out.stat("temp_lru", &yes_no(has("temp_lru")));
    out.stat("temporary_ttl", &opt("temporary_ttl", "61"));
    out.stat("idle_timeout", &c.idle_timeout);
    out.stat("watcher_logbuf_size", &opt("watcher_logbuf_size", "262144"));
    out.stat("worker_logbuf_size", &opt("worker_logbuf_size", "65536"));
    out.stat("read_buf_mem_limit", &opt("read_buf_mem_limit", "0"));
    out.stat("track_sizes", &"no");
    out.stat("inline_ascii_response", &"no");
    out.stat("ext_item_size", &opt("ext_item_size", "512"));
    out.stat("ext_item_age", &opt("ext_item_age", "4294967295"));
    out.stat("ext_low_ttl", &opt("ext_low_ttl", "0"));
    out.stat("ext_recache_rate", &opt("ext_recache_rate", "2000"));
    out.stat("ext_wbuf_size", &opt("ext_wbuf_size", "4194304"));
    out.stat("ext_compact_under", &opt("ext_compact_under", "0"));
    out.stat("ext_drop_under", &opt("ext_drop_under", "0"));
    out.stat("ext_max_sleep", &opt("ext_max_sleep", "1000000"));
    out.stat("ext_max_frag", &opt("ext_max_frag", "0.80"));
    out.stat("slab_automove_freeratio", &opt("slab_automove_freeratio", "0.010"));
    out.stat("ext_drop_unread", &yes_no(has("ext_drop_unread")));
    out.stat("ssl_enabled", &"no");
    out.stat("ssl_chain_cert", &"(null)");
    out.stat("ssl_key", &"(null)");
    out.stat("ssl_verify_mode", &0);
    out.stat("ssl_keyformat", &1);
    out.stat("ssl_ciphers", &"NULL");
    out.stat("ssl_ca_cert", &"NULL");
    out.stat("ssl_wbuf_size", &16384);
    out.stat("ssl_session_cache", &"no");
    out.stat("ssl_kernel_tls", &"no");
    out.stat("ssl_min_version", &"tlsv1.2");
    out.stat("num_napi_ids", &"(null)");
    // memcached prints its `-e` path here.
    let memory_file = c.memory_file.as_ref().map_or("(null)".into(), |m| m.given.display().to_string());
    out.stat("memory_file", &memory_file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::text_reply::StatLines;

    #[test]
    fn settings_show_what_is_in_force() {
        let config = match crate::config::parse_args(["memcached-rs", "-m", "64"]) {
            crate::config::Invocation::Run(c) => c,
            _ => unreachable!(),
        };
        let runtime = Runtime::new(&config);
        runtime.memory_limit.store(128 << 20, Relaxed);
        runtime.crawler_enabled.store(false, Relaxed);
        let mut out = bytes::BytesMut::new();
        write_settings(&mut StatLines(&mut out), &config, &runtime);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("STAT maxbytes 134217728\r\n"), "{text}");
        assert!(text.contains("STAT lru_crawler no\r\n"));
        let names: Vec<&str> = text.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
        assert_eq!(names, MEMCACHED_1_6_18_SETTINGS, "every field of memcached's `stats settings`, in its order");
    }

    /// `stats settings` of memcached 1.6.18 (Debian), names only.
    const MEMCACHED_1_6_18_SETTINGS: &[&str] = &[
        "maxbytes", "maxconns", "tcpport", "udpport", "inter", "verbosity", "oldest", "evictions",
        "domain_socket", "umask", "shutdown_command", "growth_factor", "chunk_size", "num_threads",
        "num_threads_per_udp", "stat_key_prefix", "detail_enabled", "reqs_per_event", "cas_enabled",
        "tcp_backlog", "binding_protocol", "auth_enabled_sasl", "auth_enabled_ascii", "item_size_max",
        "maxconns_fast", "hashpower_init", "slab_reassign", "slab_automove", "slab_automove_ratio",
        "slab_automove_window", "slab_chunk_max", "lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl",
        "tail_repair_time", "flush_enabled", "dump_enabled", "hash_algorithm", "lru_maintainer_thread",
        "lru_segmented", "hot_lru_pct", "warm_lru_pct", "hot_max_factor", "warm_max_factor", "temp_lru",
        "temporary_ttl", "idle_timeout", "watcher_logbuf_size", "worker_logbuf_size", "read_buf_mem_limit",
        "track_sizes", "inline_ascii_response", "ext_item_size", "ext_item_age", "ext_low_ttl",
        "ext_recache_rate", "ext_wbuf_size", "ext_compact_under", "ext_drop_under", "ext_max_sleep",
        "ext_max_frag", "slab_automove_freeratio", "ext_drop_unread", "ssl_enabled", "ssl_chain_cert",
        "ssl_key", "ssl_verify_mode", "ssl_keyformat", "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size",
        "ssl_session_cache", "ssl_kernel_tls", "ssl_min_version", "num_napi_ids", "memory_file",
    ];
}
