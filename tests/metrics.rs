//! `-o metrics` (ours only): `/metrics` in the Prometheus text format with
//! memcached_exporter's names, checked by Prometheus' own `promtool`, scraped by a real
//! Prometheus, agreeing with `stats`; hot keys under a zipf load; scrapers that never
//! read or never send bounded.

mod common;

use common::{stat_num, Client, Server};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A server with the metrics listener on a free loopback port.
fn start(threads: &str, extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let metrics = format!("metrics=127.0.0.1:{port}");
    let mut args = vec!["-t", threads, "-o", &metrics];
    args.extend_from_slice(extra);
    (Server::start(&args), port)
}

/// One HTTP GET; the reply's status line and body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read the reply");
    let text = String::from_utf8(reply).expect("UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// `name{labels}` → value, for every sample.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {l:?}"));
            (name.to_string(), value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")))
        })
        .collect()
}

fn sample(all: &HashMap<String, f64>, name: &str) -> u64 {
    *all.get(name).unwrap_or_else(|| panic!("no sample {name}")) as u64
}

/// Some of every command family, hits and misses.
fn traffic(c: &mut Client) {
    for i in 0..50 {
        c.set(&format!("k{i}"), b"12");
    }
    for i in 0..80 {
        c.send(format!("get k{i}\r\n"));
        c.read_to_end_marker();
    }
    c.roundtrip("get k1 k2 nope\r\n", "VALUE k1 0 2\r\n12\r\nVALUE k2 0 2\r\n12\r\nEND\r\n");
    c.roundtrip("delete k3\r\n", "DELETED\r\n");
    c.roundtrip("delete k3\r\n", "NOT_FOUND\r\n");
    c.roundtrip("incr k4 1\r\n", "13\r\n");
    c.roundtrip("decr nope 1\r\n", "NOT_FOUND\r\n");
    c.roundtrip("touch k5 100\r\n", "TOUCHED\r\n");
    c.roundtrip("touch nope 100\r\n", "NOT_FOUND\r\n");
    c.roundtrip("cas k6 0 0 1 1\r\nx\r\n", "EXISTS\r\n");
    c.roundtrip("cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
}

#[test]
fn metrics_pass_promtool() {
    skip_on_reference!("-o metrics is ours");
    let (server, port) = start("2", &[]);
    traffic(&mut server.client());
    std::thread::sleep(Duration::from_millis(1200)); // histograms are published once a second
    let text = scrape(port);
    for name in ["memcached_up 1", "memcached_commands_total{command=\"get\",status=\"hit\"}", "memcached_rs_request_duration_seconds_bucket{core=\"0\",family=\"get\",le=\"+Inf\"}", "memcached_rs_forwarded_requests_total{from=\"0\",to=\"1\"}", "memcached_rs_item_size_bytes{core=\"1\",size_max=\"64\"}", "memcached_rs_hot_key_requests{core="] {
        assert!(text.contains(name), "no {name} in\n{text}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by scripts/test.sh)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // Exit 3 is "lint problems only". memcached_exporter names its uptime counter
    // without `_total`; we keep its name (dashboards use it), so that one lint stays.
    let lints: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    let only_uptime = lints.iter().all(|l| l.starts_with("memcached_uptime_seconds counter metrics should have \"_total\" suffix"));
    assert!(out.status.code() == Some(0) || (out.status.code() == Some(3) && only_uptime), "promtool: {:?}\n{said}", out.status);
    // Histograms: every request family has cumulative buckets ending at its count.
    let all = samples(&text);
    let gets: u64 = (0..2).map(|c| sample(&all, &format!("memcached_rs_request_duration_seconds_count{{core=\"{c}\",family=\"get\"}}"))).sum();
    assert_eq!(gets, 81, "80 gets and one multi-get");
}

#[test]
fn counters_agree_with_stats() {
    skip_on_reference!("-o metrics is ours");
    let (server, port) = start("2", &[]);
    let mut c = server.client();
    traffic(&mut c);
    let stats = c.stats("");
    let all = samples(&scrape(port));
    let cmd = |command: &str, status: &str| sample(&all, &format!("memcached_commands_total{{command=\"{command}\",status=\"{status}\"}}"));
    for (command, status, stat) in [
        ("get", "hit", "get_hits"), ("get", "miss", "get_misses"), ("delete", "hit", "delete_hits"),
        ("delete", "miss", "delete_misses"), ("incr", "hit", "incr_hits"), ("decr", "miss", "decr_misses"),
        ("touch", "hit", "touch_hits"), ("touch", "miss", "touch_misses"), ("cas", "badval", "cas_badval"),
        ("cas", "miss", "cas_misses"), ("flush", "hit", "cmd_flush"),
    ] {
        assert_eq!(cmd(command, status), stat_num(&stats, stat), "{command} {status} vs stats {stat}");
        let per_core: u64 = (0..2)
            .map(|core| sample(&all, &format!("memcached_rs_commands_total{{core=\"{core}\",command=\"{command}\",status=\"{status}\"}}")))
            .sum();
        assert_eq!(per_core, stat_num(&stats, stat), "per-core {command} {status}");
    }
    let cas = stat_num(&stats, "cas_hits") + stat_num(&stats, "cas_misses") + stat_num(&stats, "cas_badval");
    assert_eq!(cmd("set", "hit"), stat_num(&stats, "cmd_set") - cas, "the exporter's set: cmd_set without cas");
    for (metric, stat) in [
        ("memcached_current_items", "curr_items"), ("memcached_items_total", "total_items"),
        ("memcached_current_bytes", "bytes"), ("memcached_limit_bytes", "limit_maxbytes"),
        ("memcached_items_evicted_total", "evictions"), ("memcached_max_connections", "max_connections"),
        ("memcached_current_connections", "curr_connections"), ("memcached_connections_total", "total_connections"),
    ] {
        assert_eq!(sample(&all, metric), stat_num(&stats, stat), "{metric} vs stats {stat}");
    }
    // Forwarding per pair of cores adds up to `stats shards`' forwarded.
    let shards = c.stats("shards");
    let forwarded: u64 = (0..2).map(|i| stat_num(&shards, &format!("shard{i}:forwarded"))).sum();
    let pairs = sample(&all, "memcached_rs_forwarded_requests_total{from=\"0\",to=\"1\"}")
        + sample(&all, "memcached_rs_forwarded_requests_total{from=\"1\",to=\"0\"}");
    assert!(pairs > 0, "with two cores some keys are forwarded");
    assert_eq!(pairs, forwarded);
}

/// A deterministic zipf(1.1) sample over `n` keys.
fn zipf_keys(n: usize, draws: usize) -> Vec<usize> {
    let weights: Vec<f64> = (1..=n).map(|r| 1.0 / (r as f64).powf(1.1)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..draws)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&p| p < u).min(n - 1)
        })
        .collect()
}

#[test]
fn zipf_top_keys_appear_in_stats_hotkeys() {
    skip_on_reference!("stats hotkeys is ours");
    let server = Server::start(&["-t", "2", "-o", "hotkeys"]);
    let mut c = server.client();
    // Key names are shuffled against their rank so the hot ones are not "key0..".
    let name = |rank: usize| format!("user:{}", (rank * 7919) % 100_003);
    let draws = zipf_keys(20_000, 200_000);
    let mut counts = HashMap::new();
    for chunk in draws.chunks(100) {
        let mut batch = String::new();
        for &r in chunk {
            batch.push_str(&format!("get {}\r\n", name(r)));
            *counts.entry(r).or_insert(0u64) += 1;
        }
        c.send(batch);
        for _ in chunk {
            c.read_until(b"END\r\n");
        }
    }
    let mut truth: Vec<(usize, u64)> = counts.into_iter().collect();
    truth.sort_by(|a, b| b.1.cmp(&a.1));
    std::thread::sleep(Duration::from_millis(1300)); // lists are published once a second
    let hot = c.stats("hotkeys");
    let shown: Vec<String> = hot.values().map(|v| v.split(' ').next().unwrap_or("").to_string()).collect();
    assert!(hot.len() <= 32, "at most 16 per core: {hot:?}");
    for (rank, count) in truth.iter().take(8) {
        assert!(shown.contains(&name(*rank)), "true top key {} ({count} gets) not in stats hotkeys: {hot:?}", name(*rank));
    }
    let first = hot.get("hotkey:1").expect("hotkey:1");
    assert!(first.starts_with(&format!("{} count=", name(truth[0].0))), "the hottest key first: {first}");
}

#[test]
fn scrapers_that_never_read_or_never_send_are_bounded() {
    skip_on_reference!("-o metrics is ours");
    let (server, port) = start("1", &[]);
    let mut c = server.client();
    for i in 0..2000 {
        c.set(&format!("key{i}"), &[b'v'; 100]);
    }
    scrape(port);
    let before = server.rss_kib();
    // Thousands of scrapes whose replies are never read, in waves of 8 at once.
    for _ in 0..150 {
        let held: Vec<TcpStream> = (0..8)
            .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
            .map(|mut s| {
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5));
        drop(held);
    }
    // Eight that never send hold every slot: the next scraper is turned away, and the
    // cache side does not notice.
    let silent: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut ninth = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ninth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = ninth.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut got = Vec::new();
    let _ = ninth.read_to_end(&mut got);
    assert!(got.is_empty(), "a ninth scraper is closed at once, got {} bytes", got.len());
    let started = Instant::now();
    for i in 0..500 {
        assert_eq!(c.get(&format!("key{i}")).map(|v| v.len()), Some(100));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "the cache side kept serving");
    drop(silent);
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_kib();
    let all = samples(&scrape(port));
    assert!(sample(&all, "memcached_rs_scrapes_refused_total") >= 1);
    assert!(after < before + 8 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[test]
fn metrics_listener_is_off_by_default_and_a_bad_address_fails_the_start() {
    skip_on_reference!("-o metrics is ours");
    let server = Server::start(&["-t", "1"]);
    let s = server.client().stats("");
    assert_eq!(stat_num(&s, "log_watchers"), 0);
    let port = free_port();
    let _taken = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = Command::new(common::server_bin())
        .args(["-p", "0", "-l", "127.0.0.1", "-U", "0", "-o", &format!("metrics=127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("failed to listen on metrics address 127.0.0.1:{port}")), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

/// A real Prometheus server scrapes three instances; a query gives each one's hit ratio.
#[test]
fn prometheus_scrapes_three_instances_and_computes_hit_ratios() {
    skip_on_reference!("-o metrics is ours");
    if Command::new("prometheus").arg("--version").output().is_err() {
        panic!("prometheus (Debian package prometheus, installed by scripts/test.sh) is not runnable");
    }
    let instances: Vec<(Server, u16)> = (0..3).map(|_| start("1", &[])).collect();
    // Instance i: 4 gets of stored keys and i+1 misses, so hit ratios 0.8, 0.667, 0.571.
    for (i, (server, _)) in instances.iter().enumerate() {
        let mut c = server.client();
        for k in 0..4 {
            c.set(&format!("k{k}"), b"v");
            assert!(c.get(&format!("k{k}")).is_some());
        }
        for m in 0..=i {
            assert!(c.get(&format!("miss{m}")).is_none());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = instances.iter().map(|(_, p)| format!("'127.0.0.1:{p}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: memcached-rs\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let web = free_port();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(prometheus_take(&mut prometheus));
    let query = "sum by (instance) (memcached_commands_total{command=\"get\",status=\"hit\"}) / sum by (instance) (memcached_commands_total{command=\"get\"})";
    let path = format!("/api/v1/query?query={}", url_encode(query));
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1000));
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", web)) else { continue };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = write!(s, "GET {path} HTTP/1.0\r\n\r\n");
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        last = reply;
        let ratios: Vec<Option<f64>> = instances.iter().map(|(_, p)| ratio_of(&last, *p)).collect();
        if ratios.iter().all(Option::is_some) {
            for (i, r) in ratios.into_iter().enumerate() {
                let want = 4.0 / (5.0 + i as f64);
                assert!((r.unwrap() - want).abs() < 1e-6, "instance {i}: hit ratio {r:?}, want {want}");
            }
            return;
        }
    }
    panic!("no hit ratio for all three instances within 90 s; last answer: {last}");
}

fn prometheus_take(child: &mut std::process::Child) -> std::process::Child {
    // Move the child out, leaving a placeholder that is never waited on.
    std::mem::replace(child, Command::new("true").spawn().unwrap())
}

/// The value of the result whose instance label is 127.0.0.1:`port`, in a Prometheus
/// query API answer (`"instance":"127.0.0.1:P"},"value":[ts,"0.8"]`).
fn ratio_of(answer: &str, port: u16) -> Option<f64> {
    let at = answer.find(&format!("\"instance\":\"127.0.0.1:{port}\""))?;
    let rest = &answer[at..];
    let value = rest.find("\"value\":[")? + "\"value\":[".len();
    let rest = &rest[value..];
    let quoted = rest.split('"').nth(1)?;
    quoted.parse().ok()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// deploy/: the scrape configuration is valid for Prometheus, and every query of the
/// Grafana dashboard parses (as recording rules, Grafana's variables filled in) and
/// names only metrics the server exports.
#[test]
fn deploy_scrape_config_and_dashboard_queries_are_valid() {
    skip_on_reference!("deploy/ and -o metrics are ours");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("promtool").arg("check").arg("config").arg(root.join("deploy/prometheus/scrape.yml")).output().expect("promtool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let dashboard = std::fs::read_to_string(root.join("deploy/grafana/memcached-rs.json")).unwrap();
    let exprs: Vec<String> = dashboard
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"expr\": \""))
        .map(|e| e.trim_end_matches(',').trim_end_matches('"').replace("\\\"", "\"").replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*"))
        .collect();
    assert!(exprs.len() > 20, "the dashboard's queries: {exprs:?}");
    let dir = tempfile::tempdir().unwrap();
    let rules: String = exprs.iter().enumerate().map(|(i, e)| format!("      - record: dashboard:q{i}\n        expr: '{}'\n", e.replace('\'', "''"))).collect();
    std::fs::write(dir.path().join("rules.yml"), format!("groups:\n  - name: dashboard\n    rules:\n{rules}")).unwrap();
    let out = Command::new("promtool").arg("check").arg("rules").arg(dir.path().join("rules.yml")).output().expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let (_server, port) = start("2", &["-o", "hotkeys"]);
    std::thread::sleep(Duration::from_millis(1200));
    let text = scrape(port);
    for e in &exprs {
        for name in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("memcached_")) {
            let base = name.trim_end_matches("_bucket");
            assert!(text.contains(&format!("# TYPE {base} ")), "the dashboard asks for {name}, which /metrics does not have");
        }
    }
}
