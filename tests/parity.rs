//! The rest of memcached 1.6's behaviour a user or a tool of theirs sees: every `stats`
//! and `stats settings` field in memcached's order, the counters that used to stay 0,
//! settings changed at run time. Run with -t 1 and -t 2, and against memcached
//! (`MC_SERVER_BIN`), which is how each expectation is shown to be memcached's.

mod common;

use common::{stat_num, Client, Server};

/// Stat names of a `stats` group, in the order the server sent them.
fn names(c: &mut Client, group: &str) -> Vec<String> {
    c.send(if group.is_empty() { "stats\r\n".to_string() } else { format!("stats {group}\r\n") });
    let body = c.read_to_end_marker();
    String::from_utf8_lossy(&body)
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("STAT "))
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect()
}

/// `stats` and `stats settings` of memcached 1.6.18 as Debian builds it, names in order.
const STATS: &str = "pid uptime time version libevent pointer_size rusage_user rusage_system max_connections \
curr_connections total_connections rejected_connections connection_structures response_obj_oom \
response_obj_count response_obj_bytes read_buf_count read_buf_bytes read_buf_bytes_free read_buf_oom \
reserved_fds cmd_get cmd_set cmd_flush cmd_touch cmd_meta get_hits get_misses get_expired get_flushed \
delete_misses delete_hits incr_misses incr_hits decr_misses decr_hits cas_misses cas_hits cas_badval \
touch_hits touch_misses store_too_large store_no_memory auth_cmds auth_errors bytes_read bytes_written \
limit_maxbytes accepting_conns listen_disabled_num time_in_listen_disabled_us threads conn_yields \
hash_power_level hash_bytes hash_is_expanding slab_reassign_rescues slab_reassign_chunk_rescues \
slab_reassign_evictions_nomem slab_reassign_inline_reclaim slab_reassign_busy_items \
slab_reassign_busy_deletes slab_reassign_running slabs_moved lru_crawler_running lru_crawler_starts \
lru_maintainer_juggles malloc_fails log_worker_dropped log_worker_written log_watcher_skipped \
log_watcher_sent log_watchers unexpected_napi_ids round_robin_fallback bytes curr_items total_items \
slab_global_page_pool expired_unfetched evicted_unfetched evicted_active evictions reclaimed \
crawler_reclaimed crawler_items_checked lrutail_reflocked moves_to_cold moves_to_warm moves_within_lru \
direct_reclaims lru_bumps_dropped";

const SETTINGS: &str = "maxbytes maxconns tcpport udpport inter verbosity oldest evictions domain_socket umask \
shutdown_command growth_factor chunk_size num_threads num_threads_per_udp stat_key_prefix detail_enabled \
reqs_per_event cas_enabled tcp_backlog binding_protocol auth_enabled_sasl auth_enabled_ascii item_size_max \
maxconns_fast hashpower_init slab_reassign slab_automove slab_automove_ratio slab_automove_window \
slab_chunk_max lru_crawler lru_crawler_sleep lru_crawler_tocrawl tail_repair_time flush_enabled dump_enabled \
hash_algorithm lru_maintainer_thread lru_segmented hot_lru_pct warm_lru_pct hot_max_factor warm_max_factor \
temp_lru temporary_ttl idle_timeout watcher_logbuf_size worker_logbuf_size read_buf_mem_limit track_sizes \
inline_ascii_response ext_item_size ext_item_age ext_low_ttl ext_recache_rate ext_wbuf_size \
ext_compact_under ext_drop_under ext_max_sleep ext_max_frag slab_automove_freeratio ext_drop_unread \
ssl_enabled ssl_chain_cert ssl_key ssl_verify_mode ssl_keyformat ssl_ciphers ssl_ca_cert ssl_wbuf_size \
ssl_session_cache ssl_kernel_tls ssl_min_version num_napi_ids memory_file";

fn every_field_in_memcacheds_order(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    assert_eq!(names(&mut c, "").join(" "), STATS);
    assert_eq!(names(&mut c, "settings").join(" "), SETTINGS);
    // Settings memcached shows as given: -f -n -D -R and -o values.
    drop(s);
    let s = Server::start(&["-t", threads, "-f", "1.5", "-n", "64", "-R", "7", "-o", "hot_lru_pct=30,temporary_ttl=99"]);
    let st = s.client().stats("settings");
    for (name, want) in [("growth_factor", "1.50"), ("chunk_size", "64"), ("reqs_per_event", "7"), ("hot_lru_pct", "30"), ("temporary_ttl", "99")] {
        assert_eq!(st.get(name).map(String::as_str), Some(want), "stats settings {name}");
    }
}

/// Settings commands change, shown by `stats settings` from then on.
fn settings_in_force(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "64"]);
    let mut c = s.client();
    c.roundtrip("cache_memlimit 100\r\n", "OK\r\n");
    c.roundtrip("verbosity 1\r\n", "OK\r\n");
    c.roundtrip("slabs automove 0\r\n", "OK\r\n");
    let st = c.stats("settings");
    assert_eq!(stat_num(&st, "maxbytes"), 100 << 20, "cache_memlimit");
    assert_eq!(stat_num(&st, "verbosity"), 1, "verbosity");
    assert_eq!(stat_num(&st, "slab_automove"), 0, "slabs automove");
    assert_eq!(stat_num(&c.stats(""), "limit_maxbytes"), 100 << 20);
    c.roundtrip("verbosity 9\r\n", "OK\r\n");
    assert_eq!(stat_num(&c.stats("settings"), "verbosity"), 2, "memcached caps verbosity at 2");
    c.roundtrip("lru_crawler disable\r\n", "OK\r\n");
    // memcached clears the setting when its crawler thread has stopped, a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while c.stats("settings").get("lru_crawler").map(String::as_str) != Some("no") {
        assert!(std::time::Instant::now() < deadline, "lru_crawler still yes after disable");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// store_too_large, store_no_memory and cmd_flush, counted as memcached counts them.
fn store_and_flush_counters(threads: &str) {
    let s = Server::start(&["-t", threads, "-F"]);
    let mut c = s.client();
    let big = vec![b'v'; 2 << 20];
    let mut set_big = format!("set big 0 0 {}\r\n", big.len()).into_bytes();
    set_big.extend_from_slice(&big);
    set_big.extend_from_slice(b"\r\n");
    c.roundtrip(&set_big, "SERVER_ERROR object too large for cache\r\n");
    let mut small = b"set small 0 0 100\r\n".to_vec();
    small.extend_from_slice(&[b's'; 100]);
    small.extend_from_slice(b"\r\n");
    c.roundtrip(&small, "STORED\r\n");
    // An append that fits -I itself but would outgrow it with the old value is
    // NOT_STORED and not counted.
    let mut append = format!("append small 0 0 {}\r\n", 1_048_500).into_bytes();
    append.extend_from_slice(&vec![b'a'; 1_048_500]);
    append.extend_from_slice(b"\r\n");
    c.roundtrip(&append, "NOT_STORED\r\n");
    c.roundtrip("flush_all\r\n", "CLIENT_ERROR flush_all not allowed\r\n");
    let st = c.stats("");
    assert_eq!(stat_num(&st, "store_too_large"), 1);
    assert_eq!(stat_num(&st, "store_no_memory"), 0);
    assert_eq!(stat_num(&st, "cmd_flush"), 1, "memcached counts a refused flush_all");
}

per_threads!(every_field_in_memcacheds_order, settings_in_force, store_and_flush_counters);

/// `-p -1` and `MEMCACHED_PORT_FILENAME`, as test harnesses start memcached: the
/// kernel picks the port, the file says which (a line per address family), and
/// `stats settings` shows `tcpport -1`.
#[test]
fn port_file_names_the_port_the_kernel_picked() {
    let dir = std::env::temp_dir().join(format!("mcrs-portfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ports");
    let mut cmd = std::process::Command::new(common::server_bin());
    cmd.args(["-p", "-1", "-U", "0", "-l", "127.0.0.1", "-t", "2"]).env("MEMCACHED_PORT_FILENAME", &file);
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "root"]);
    }
    let mut child = cmd.spawn().expect("start the server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no port file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!dir.join("ports.lck").exists(), "the .lck file is renamed into place");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one address, one line: {text:?}");
    let port: u16 = lines[0].strip_prefix("TCP INET: ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    let mut c = Client::connect(port);
    assert_eq!(c.stats("settings").get("tcpport").map(String::as_str), Some("-1"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// memcached counts its listeners as connections and prints one fewer than it has:
/// one client on the default IPv4 and IPv6 listeners shows `curr_connections 2`.
#[test]
fn curr_connections_counts_listeners_as_memcached() {
    let s = common::Server::start_with(&["-t", "2"], false);
    let mut c = s.client();
    c.wait_for_stat("curr_connections", 2);
    let st = c.stats("");
    assert_eq!(stat_num(&st, "connection_structures"), 3);
}
