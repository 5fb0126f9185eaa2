//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! memcached's figures under the names and labels of Prometheus' `memcached_exporter`
//! (pkg/exporter/exporter.go), computed from the same sums as `stats`, so dashboards
//! and alerts written for the exporter work unchanged; ours under `memcached_rs_*`:
//! the same counters per core, forwarding per pair of cores, item sizes, latency
//! histograms per command family, hot keys, the `watch` and scrape counters.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::latency::{BUCKETS, FAMILIES};
use super::Observe;
use crate::commands::counters::{CommandCounters, ExecutorStats, ShardGauges};
use crate::commands::{Counter, ProcessFacts};
use crate::config::Config;

/// Everything a scrape shows.
pub struct Inputs<'a> {
    pub stats: &'a [ExecutorStats],
    pub facts: &'a ProcessFacts,
    pub config: &'a Config,
    pub crawler_enabled: bool,
    pub observe: &'a Observe,
}

/// The text format's writer: families with HELP and TYPE, then their samples.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                escape_label(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Label values: backslash, double quote and newline escaped (the format's rule).
fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn sum(all: &[ExecutorStats], f: impl Fn(&ExecutorStats) -> &Counter) -> u64 {
    all.iter().map(|s| f(s).get()).sum()
}

/// memcached_exporter's `commands_total` series from a set of command counters.
fn command_series(c: &CommandCounters) -> [(&'static str, &'static str, u64); 16] {
    // memcached counts cas in cmd_set too; the exporter subtracts it.
    let cas = c.cas_misses.get() + c.cas_hits.get() + c.cas_badval.get();
    [
        ("get", "hit", c.get_hits.get()),
        ("get", "miss", c.get_misses.get()),
        ("delete", "hit", c.delete_hits.get()),
        ("delete", "miss", c.delete_misses.get()),
        ("incr", "hit", c.incr_hits.get()),
        ("incr", "miss", c.incr_misses.get()),
        ("decr", "hit", c.decr_hits.get()),
        ("decr", "miss", c.decr_misses.get()),
        ("cas", "hit", c.cas_hits.get()),
        ("cas", "miss", c.cas_misses.get()),
        ("touch", "hit", c.touch_hits.get()),
        ("touch", "miss", c.touch_misses.get()),
        ("cas", "badval", c.cas_badval.get()),
        ("flush", "hit", c.cmd_flush.get()),
        ("set", "hit", c.cmd_set.get().saturating_sub(cas)),
        ("meta", "hit", c.cmd_meta.get()),
    ]
}

/// Renders every metric.
pub fn render(i: &Inputs) -> String {
    let mut t = Text(String::with_capacity(32 * 1024));
    exporter_metrics(&mut t, i);
    per_core_metrics(&mut t, i);
    observe_metrics(&mut t, i);
    t.0
}

fn exporter_metrics(t: &mut Text, i: &Inputs) {
    let (all, p) = (i.stats, i.facts);
    let c = |f: fn(&CommandCounters) -> &Counter| sum(all, |s| f(&s.commands));
    let g = |f: fn(&ShardGauges) -> &Counter| sum(all, |s| f(&s.shard));
    t.single("memcached_up", "gauge", "Could the memcached server be reached.", 1);
    t.single("memcached_uptime_seconds", "counter", "Number of seconds since the server started.", p.uptime);
    t.single("memcached_time_seconds", "gauge", "current UNIX time according to the server.", p.time);
    t.family("memcached_version", "gauge", "The version of this memcached server.");
    t.sample("memcached_version", &[("version", p.version)], 1);
    t.single("memcached_process_user_cpu_seconds_total", "counter", "Accumulated user time for this process.", p.rusage_user);
    t.single("memcached_process_system_cpu_seconds_total", "counter", "Accumulated system time for this process.", p.rusage_system);
    t.single("memcached_read_bytes_total", "counter", "Total number of bytes read by this server from network.", c(|c| &c.bytes_read));
    t.single("memcached_written_bytes_total", "counter", "Total number of bytes sent by this server to network.", c(|c| &c.bytes_written));
    // As `stats` shows them (listening sockets counted, as memcached does).
    let conns = c(|c| &c.curr_connections);
    t.single("memcached_current_connections", "gauge", "Current number of open connections.", (conns + p.listeners).saturating_sub(1));
    t.single("memcached_max_connections", "gauge", "Maximum number of clients allowed.", p.max_connections);
    t.single("memcached_connections_total", "counter", "Total number of connections opened since the server started running.", c(|c| &c.total_connections) + p.listeners);
    t.single("memcached_connections_rejected_total", "counter", "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode.", c(|c| &c.rejected_connections));
    t.single("memcached_connections_yielded_total", "counter", "Total number of connections yielded running due to hitting the memcached's -R limit.", c(|c| &c.conn_yields));
    t.single("memcached_connections_listener_disabled_total", "counter", "Number of times that memcached has hit its connections limit and disabled its listener.", 0);
    t.single("memcached_current_bytes", "gauge", "Current number of bytes used to store items.", g(|g| &g.bytes));
    t.single("memcached_limit_bytes", "gauge", "Number of bytes this server is allowed to use for storage.", g(|g| &g.limit_maxbytes));
    t.family("memcached_commands_total", "counter", "Total number of all requests broken down by command (get, set, etc.) and status.");
    let mut totals = [0u64; 16];
    for s in all {
        for (n, (_, _, v)) in command_series(&s.commands).iter().enumerate() {
            totals[n] += v;
        }
    }
    let names = command_series(&CommandCounters::default());
    for (n, (command, status, _)) in names.iter().enumerate() {
        if *command != "meta" {
            t.sample("memcached_commands_total", &[("command", command), ("status", status)], totals[n]);
        }
    }
    t.single("memcached_current_items", "gauge", "Current number of items stored by this instance.", g(|g| &g.curr_items));
    t.single("memcached_items_total", "counter", "Total number of items stored during the life of this instance.", g(|g| &g.total_items));
    t.single("memcached_items_evicted_total", "counter", "Total number of valid items removed from cache to free memory for new items.", g(|g| &g.evictions));
    t.single("memcached_items_reclaimed_total", "counter", "Total number of times an entry was stored using memory from an expired entry.", g(|g| &g.reclaimed));
    t.single("memcached_item_too_large_total", "counter", "The number of times an item exceeded the max-item-size when being stored.", c(|c| &c.store_too_large));
    t.single("memcached_item_no_memory_total", "counter", "The number of times an item could not be stored due to no more memory.", c(|c| &c.store_no_memory));
    t.single("memcached_direct_reclaims_total", "counter", "Times worker threads had to directly reclaim or evict items.", 0);
    t.single("memcached_malloced_bytes", "gauge", "Number of bytes of memory allocated to slab pages.", g(|g| &g.allocated));
    t.single("memcached_accepting_connections", "gauge", "The Memcached server is currently accepting new connections.", 1);
    t.single("memcached_lru_crawler_enabled", "gauge", "Whether the LRU crawler is enabled.", u8::from(i.crawler_enabled));
    if i.crawler_enabled {
        t.single("memcached_lru_crawler_starts_total", "counter", "Times an LRU crawler was started.", 0);
        t.single("memcached_lru_crawler_reclaimed_total", "counter", "Total items freed by LRU Crawler.", 0);
        t.single("memcached_lru_crawler_items_checked_total", "counter", "Total items examined by LRU Crawler.", 0);
    }
}

fn per_core_metrics(t: &mut Text, i: &Inputs) {
    let all = i.stats;
    let cores: Vec<String> = (0..all.len()).map(|c| c.to_string()).collect();
    t.family("memcached_rs_commands_total", "counter", "memcached_commands_total per core (the core that owns the key runs the command).");
    for (core, s) in all.iter().enumerate() {
        for (command, status, v) in command_series(&s.commands) {
            t.sample("memcached_rs_commands_total", &[("core", &cores[core]), ("command", command), ("status", status)], v);
        }
    }
    let per_core: &[(&str, &str, &str, fn(&ExecutorStats) -> u64)] = &[
        ("memcached_rs_current_items", "gauge", "Items stored on this core's shard.", |s| s.shard.curr_items.get()),
        ("memcached_rs_current_bytes", "gauge", "Bytes of items on this core's shard.", |s| s.shard.bytes.get()),
        ("memcached_rs_limit_bytes", "gauge", "This core's share of -m.", |s| s.shard.limit_maxbytes.get()),
        ("memcached_rs_allocated_bytes", "gauge", "Memory this core's shard holds (segments and index).", |s| s.shard.allocated.get()),
        ("memcached_rs_items_total", "counter", "Items stored on this core's shard since start.", |s| s.shard.total_items.get()),
        ("memcached_rs_items_evicted_total", "counter", "Live items evicted from this core's shard.", |s| s.shard.evictions.get()),
        ("memcached_rs_items_reclaimed_total", "counter", "Expired items reclaimed on this core's shard.", |s| s.shard.reclaimed.get()),
        ("memcached_rs_current_connections", "gauge", "Client connections served by this core.", |s| s.commands.curr_connections.get()),
        ("memcached_rs_connections_total", "counter", "Client connections accepted by this core.", |s| s.commands.total_connections.get()),
        ("memcached_rs_read_bytes_total", "counter", "Bytes read from clients by this core.", |s| s.commands.bytes_read.get()),
        ("memcached_rs_written_bytes_total", "counter", "Bytes written to clients by this core.", |s| s.commands.bytes_written.get()),
        ("memcached_rs_served_for_peers_total", "counter", "Requests this core ran for another core.", |s| s.commands.served_for_peers.get()),
        ("memcached_rs_peer_batches_total", "counter", "Batches of requests other cores sent this core.", |s| s.commands.batches_from_peers.get()),
    ];
    for (name, kind, help, f) in per_core {
        t.family(name, kind, help);
        for (core, s) in all.iter().enumerate() {
            t.sample(name, &[("core", &cores[core])], f(s));
        }
    }
    let o = i.observe;
    t.family("memcached_rs_forwarded_requests_total", "counter", "Keyed requests a core (from) sent to the core that owns their key (to).");
    for from in 0..o.cores() {
        for to in (0..o.cores()).filter(|&to| to != from) {
            t.sample("memcached_rs_forwarded_requests_total", &[("from", &cores[from]), ("to", &cores[to])], o.forwarded(from, to));
        }
    }
}

fn observe_metrics(t: &mut Text, i: &Inputs) {
    let o = i.observe;
    let published: Vec<_> = (0..o.cores()).map(|c| o.published(c)).collect();
    let cores: Vec<String> = (0..o.cores()).map(|c| c.to_string()).collect();
    if o.latency_on {
        let name = "memcached_rs_request_duration_seconds";
        t.family(name, "histogram", "Time from a request parsed to its reply written, per command family, on the core that serves the connection (published once a second).");
        let bucket = format!("{name}_bucket");
        let les: Vec<String> = BUCKETS.iter().map(|b| b.to_string()).collect();
        for (core, p) in published.iter().enumerate() {
            for (f, family) in FAMILIES.iter().enumerate() {
                let snap = p.latency.families.get(f).cloned().unwrap_or_default();
                let labels = |le: &'_ str| [("core", cores[core].clone()), ("family", family.name().to_string()), ("le", le.to_string())];
                for (b, le) in les.iter().enumerate() {
                    let l = labels(le);
                    let v = snap.cumulative.get(b).copied().unwrap_or(0);
                    t.sample(&bucket, &[("core", &l[0].1), ("family", &l[1].1), ("le", &l[2].1)], v);
                }
                let l = [("core", cores[core].as_str()), ("family", family.name())];
                t.sample(&bucket, &[l[0], l[1], ("le", "+Inf")], snap.count);
                t.sample(&format!("{name}_sum"), &l, snap.sum_ns as f64 / 1e9);
                t.sample(&format!("{name}_count"), &l, snap.count);
            }
        }
        for (name, help, bytes) in [
            ("memcached_rs_item_size_items", "Live items by record size (header, key and value; at most size_max bytes), sampled every 10 s from at most 20000 items per core and scaled.", false),
            ("memcached_rs_item_size_bytes", "Bytes of live items by record size (at most size_max bytes), sampled as memcached_rs_item_size_items.", true),
        ] {
            t.family(name, "gauge", help);
            for (core, p) in published.iter().enumerate() {
                for b in &p.sizes {
                    let le = if b.le == u64::MAX { "+Inf".to_string() } else { b.le.to_string() };
                    t.sample(name, &[("core", &cores[core]), ("size_max", &le)], if bytes { b.bytes } else { b.items });
                }
            }
        }
    }
    if o.hotkeys_on {
        let name = "memcached_rs_hot_key_requests";
        t.family(name, "gauge", "Estimated recent requests for each core's most requested keys (count-min sketch, top 16 per core; counts halve every 32768 requests).");
        for (core, p) in published.iter().enumerate() {
            for (rank, k) in p.hot.iter().enumerate() {
                let key = String::from_utf8_lossy(&k.key);
                t.sample(name, &[("core", &cores[core]), ("rank", &(rank + 1).to_string()), ("key", &key)], k.count);
            }
        }
    }
    let w = &o.watch;
    t.single("memcached_rs_watchers", "gauge", "Connections running memcached's watch command.", w.count());
    t.single("memcached_rs_watch_lines_sent_total", "counter", "watch lines queued for watchers (log_watcher_sent).", w.sent.load(Relaxed));
    t.single("memcached_rs_watch_lines_skipped_total", "counter", "watch lines lost by watchers too slow to read them (log_watcher_skipped).", w.skipped.load(Relaxed));
    t.single("memcached_rs_scrapes_total", "counter", "Requests answered by this metrics listener.", o.scrapes.get() + 1);
    t.single("memcached_rs_scrapes_refused_total", "counter", "Metrics connections closed at once: too many open.", o.scrapes_refused.get());
    t.single("memcached_rs_scrapes_timed_out_total", "counter", "Metrics connections closed for being too slow to send their request or read the reply.", o.scrapes_timed_out.get());
}
