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
}

impl Runtime {
    pub fn new(config: &Config) -> Runtime {
        Runtime {
            memory_limit: AtomicU64::new(config.memory_limit as u64),
            crawler_enabled: AtomicBool::new(true),
            oldest_live: AtomicU32::new(0),
            pending_flush: AtomicU32::new(0),
        }
    }
}

pub fn write_settings(out: &mut impl StatSink, c: &Config, r: &Runtime) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    out.stat("maxbytes", &r.memory_limit.load(Relaxed));
    out.stat("maxconns", &c.max_connections);
    out.stat("tcpport", &c.port);
    out.stat("udpport", &0);
    out.stat("inter", &if c.listen.is_empty() { "NULL".to_string() } else { c.listen.join(",") });
    out.stat("verbosity", &c.verbosity);
    out.stat("oldest", &r.oldest_live.load(Relaxed));
    out.stat("evictions", &if c.evict { "on" } else { "off" });
    out.stat("domain_socket", &c.unix_socket.as_ref().map_or("NULL".into(), |p| p.display().to_string()));
    out.stat("umask", &format_args!("{:o}", c.unix_mask));
    out.stat("shutdown_command", &yes_no(c.enable_shutdown));
    out.stat("growth_factor", &"1.25");
    out.stat("chunk_size", &48);
    out.stat("num_threads", &c.threads);
    out.stat("num_threads_per_udp", &c.threads);
    out.stat("stat_key_prefix", &":");
    out.stat("detail_enabled", &"no");
    out.stat("reqs_per_event", &20);
    out.stat("cas_enabled", &yes_no(c.cas_enabled));
    out.stat("tcp_backlog", &c.backlog);
    out.stat("binding_protocol", &"ascii");
    out.stat("auth_enabled_sasl", &"no");
    out.stat("auth_enabled_ascii", &"no");
    out.stat("item_size_max", &c.item_size_max);
    out.stat("maxconns_fast", &"yes");
    out.stat("hashpower_init", &0);
    out.stat("slab_reassign", &"no");
    out.stat("slab_automove", &0);
    out.stat("slab_chunk_max", &c.item_size_max);
    out.stat("lru_crawler", &yes_no(r.crawler_enabled.load(Relaxed)));
    out.stat("tail_repair_time", &0);
    out.stat("flush_enabled", &yes_no(c.flush_enabled));
    out.stat("dump_enabled", &"yes");
    out.stat("hash_algorithm", &"ahash");
    out.stat("lru_maintainer_thread", &"no");
    out.stat("lru_segmented", &"no");
    out.stat("idle_timeout", &0);
    out.stat("track_sizes", &"no");
    out.stat("ssl_enabled", &"no");
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
    }
}
