//! The command line as clap parses it: memcached's letters, long names and defaults.
//!
//! Split out of `config.rs` (#13) so that the flag table, which grows with every
//! memcached option we accept, sits apart from `validate`, which turns it into the
//! `Config` the server runs with and where memcached's usage errors live.

use clap::{ArgAction, Parser};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "memcached-rs",
    about = "memcached-rs: a memcached 1.6 compatible cache server, thread per core on io_uring",
    disable_help_flag = true,
    disable_version_flag = true,
    // getopt's rule, as memcached: a flag given twice takes the last value.
    args_override_self = true,
    after_help = "Run as root, memcached refuses to start without -u; memcached-rs starts, warns on \
stderr and stays root. Give -u USER to drop to USER after binding."
)]
pub(super) struct Flags {
    /// TCP port to listen on (0 = off, -1 = a free port the kernel picks: see
    /// MEMCACHED_PORT_FILENAME)
    #[arg(short = 'p', long = "port", default_value_t = 11211, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..=65535))]
    pub(super) port: i32,
    /// UDP port; only 0 (off) is supported, as memcached's default since 1.5.6
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub(super) udp_port: u16,
    /// UNIX socket to listen on (disables network support unless -p is also given)
    #[arg(short = 's', long = "unix-socket")]
    pub(super) unix_socket: Option<PathBuf>,
    /// access mask for the UNIX socket, in octal
    #[arg(short = 'a', long = "unix-mask", default_value = "700")]
    pub(super) unix_mask: String,
    /// enable the `shutdown` command
    #[arg(short = 'A', long = "enable-shutdown")]
    pub(super) enable_shutdown: bool,
    /// interfaces to listen on, comma separated, each ADDR or ADDR:PORT (default: all)
    #[arg(short = 'l', long = "listen")]
    pub(super) listen: Vec<String>,
    /// run as a daemon (the parent exits 0 once the server serves, or with its status)
    #[arg(short = 'd', long = "daemon")]
    pub(super) daemon: bool,
    /// accepted for compatibility (core dumps follow the system setting)
    #[arg(short = 'r', long = "enable-coredumps")]
    pub(super) enable_coredumps: bool,
    /// assume the identity of USER when started as root (after binding: ports below
    /// 1024 work); without -u, root stays root with a warning (memcached refuses)
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub(super) user: Option<String>,
    /// item memory in megabytes
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    pub(super) memory_limit: u64,
    /// return an error on memory exhausted instead of evicting items
    #[arg(short = 'M', long = "disable-evictions")]
    pub(super) disable_evictions: bool,
    /// max simultaneous connections
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub(super) conn_limit: u32,
    /// accepted for compatibility (memory is not locked)
    #[arg(short = 'k', long = "lock-memory")]
    pub(super) lock_memory: bool,
    /// verbose: -v errors and warnings, -vv also client commands and replies
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub(super) verbose: u8,
    /// print this help and exit
    #[arg(short = 'h', long = "help")]
    pub(super) help: bool,
    /// print the licence and exit
    #[arg(short = 'i', long = "license")]
    pub(super) license: bool,
    /// print the version and exit
    #[arg(short = 'V', long = "version")]
    pub(super) version: bool,
    /// save the process id in this file
    #[arg(short = 'P', long = "pidfile")]
    pub(super) pidfile: Option<PathBuf>,
    /// accepted for compatibility (no slab classes here)
    #[arg(short = 'f', long = "slab-growth-factor")]
    pub(super) slab_growth_factor: Option<f64>,
    /// accepted for compatibility (no slab classes here)
    #[arg(short = 'n', long = "slab-min-size")]
    pub(super) slab_min_size: Option<u32>,
    /// accepted for compatibility
    #[arg(short = 'L', long = "enable-largepages")]
    pub(super) enable_largepages: bool,
    /// accepted for compatibility (no per-prefix stats)
    #[arg(short = 'D')]
    pub(super) prefix_delimiter: Option<String>,
    /// number of executors, one per core (default: the CPUs this process may run on)
    #[arg(short = 't', long = "threads")]
    pub(super) threads: Option<usize>,
    /// requests a connection may run per event before yielding to others (default 20)
    #[arg(short = 'R', long = "max-reqs-per-event")]
    pub(super) max_reqs_per_event: Option<u32>,
    /// disable CAS uniques (every item reports 0)
    #[arg(short = 'C', long = "disable-cas")]
    pub(super) disable_cas: bool,
    /// backlog queue limit
    #[arg(short = 'b', long = "listen-backlog", default_value_t = 1024)]
    pub(super) listen_backlog: i32,
    /// protocol: auto (by each connection's first byte), ascii or binary
    #[arg(short = 'B', long = "protocol")]
    pub(super) protocol: Option<String>,
    /// max item size, with k/m suffix (default 1m, min 1k, max 1024m)
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub(super) max_item_size: String,
    /// binary SASL authentication (PLAIN, LOGIN): users and passwords from the file named
    /// by MEMCACHED_SASL_PWDB, lines user:password; implies -B binary
    #[arg(short = 'S', long = "enable-sasl")]
    pub(super) enable_sasl: bool,
    /// ASCII authentication: FILE holds user:password lines (at most 8); a client sends
    /// `set <any> 0 0 <n>` with "user password" first; implies -B ascii
    #[arg(short = 'Y', long = "auth-file", value_name = "FILE")]
    pub(super) auth_file: Option<PathBuf>,
    /// disable flush_all
    #[arg(short = 'F', long = "disable-flush-all")]
    pub(super) disable_flush_all: bool,
    /// accepted for compatibility
    #[arg(short = 'X', long = "disable-dumping")]
    pub(super) disable_dumping: bool,
    /// accepted for compatibility
    #[arg(short = 'W', long = "disable-watch")]
    pub(super) disable_watch: bool,
    /// enable TLS (memcached's -Z): the certificate and key come from -o ssl_chain_cert=,ssl_key=
    #[arg(short = 'Z', long = "enable-ssl")]
    pub(super) enable_ssl: bool,
    /// extended options, comma separated (memcached's; most are accepted and ignored)
    #[arg(short = 'o', long = "extended")]
    pub(super) extended: Vec<String>,
    /// (ours) serve Prometheus /metrics over HTTP on [ADDR:]PORT (default
    /// 127.0.0.1:9150); the same as -o metrics=[ADDR:]PORT
    #[arg(long = "metrics", value_name = "[ADDR:]PORT", num_args = 0..=1, default_missing_value = "")]
    pub(super) metrics: Option<String>,
    /// keep the cache across a restart: saved here on SIGTERM/SIGINT/SIGUSR1 and
    /// `shutdown`, loaded at start (memcached's restartable memory file; a directory
    /// holds one file per core)
    #[arg(short = 'e', long = "memory-file")]
    pub(super) memory_file: Option<PathBuf>,
    /// (ours) `-e` in directory form: the directory the cache is kept in across a
    /// restart (created if missing)
    #[arg(long = "restart-dir")]
    pub(super) restart_dir: Option<PathBuf>,
    /// (ours) seconds each core may spend saving the cache at stop before it gives up
    /// (the next start is then empty)
    #[arg(long = "restart-save-timeout", default_value_t = 8)]
    pub(super) restart_save_timeout: u64,
}

/// memcached's -o options: the ones we act on, and the ones we accept and ignore.
pub(super) const KNOWN_EXTENDED: &[&str] = &[
    "maxconns_fast", "hashpower", "tail_repair_time", "lru_crawler", "no_lru_crawler",
    "lru_maintainer", "no_lru_maintainer", "idle_timeout", "slab_reassign", "slab_automove",
    "slab_automove_ratio", "slab_automove_window", "hash_algorithm", "modern", "no_modern",
    "track_sizes", "watcher_logbuf_size", "worker_logbuf_size", "slab_chunk_max",
    "lru_segmented", "no_lru_segmented", "inline_ascii_resp", "no_inline_ascii_resp",
    "temporary_ttl", "hot_lru_pct", "warm_lru_pct", "hot_max_factor", "warm_max_factor",
    "temp_lru", "no_temp_lru", "lru_crawler_sleep", "lru_crawler_tocrawl", "expirezero_does_not_evict",
    "resp_obj_mem_limit", "read_buf_mem_limit", "drop_privileges",
    "no_drop_privileges", "memory_file", "ext_path", "lru_crawler_autosize", "ext_item_size",
    "ext_wbuf_size", "ext_threshold", "ext_max_frag", "ext_drop_unread", "ext_recache_rate",
    "ext_compact_under", "ext_drop_under", "ext_page_size", "ext_io_threadcount", "ext_max_sleep",
    "ext_item_age", "ext_low_ttl", "ext_direct_io", "slab_sizes", "no_hashexpand", "bind_to_core",
];
