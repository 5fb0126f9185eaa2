//! End to end: mcbench against a real memcached (started here on a free port), and
//! against fake servers that answer wrongly, which must show up as errors.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MCBENCH: &str = env!("CARGO_BIN_EXE_mcbench");

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// memcached, its plain port (stats; the load too without TLS) and its TLS port (0
/// without -Z).
struct Memcached(Child, u16, u16);

impl Memcached {
    fn start() -> Memcached {
        Memcached::launch(None)
    }

    /// memcached -Z with this certificate and key (PEM files), a TLS listener and a
    /// `notls:` one beside it.
    fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Memcached {
        Memcached::launch(Some((cert, key)))
    }

    /// memcached on a free port. The port is free when chosen but not reserved: a fake
    /// server of a test running alongside may bind it first (memcached then exits), so
    /// the one answering must report memcached's pid, else retry on another port.
    fn launch(tls: Option<(&std::path::Path, &std::path::Path)>) -> Memcached {
        for _ in 0..20 {
            let port = free_port();
            let tls_port = if tls.is_some() { free_port() } else { 0 };
            let mut cmd = Command::new("memcached");
            cmd.args(["-p", &port.to_string()]);
            match tls {
                None => cmd.args(["-l", "127.0.0.1"]),
                Some((cert, key)) => cmd
                    .args(["-Z", "-o", &format!("ssl_chain_cert={},ssl_key={}", cert.display(), key.display())])
                    .args(["-l", &format!("notls:127.0.0.1:{port},127.0.0.1:{tls_port}")]),
            };
            cmd.args(["-U", "0", "-t", "1", "-m", "64"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if is_root() {
                cmd.args(["-u", "root"]);
            }
            let mut child = cmd
                .spawn()
                .expect("memcached must be installed (Debian package memcached)");
            let deadline = Instant::now() + Duration::from_secs(5);
            let answered = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break stat_on(port, "pid") == Some(u64::from(child.id()));
                }
                assert!(Instant::now() < deadline, "memcached did not start");
                std::thread::sleep(Duration::from_millis(20));
            };
            if answered {
                return Memcached(child, port, tls_port);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("memcached could not get a free port in 20 tries");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.1)
    }

    fn stat(&self, name: &str) -> u64 {
        stat_on(self.1, name).unwrap_or_else(|| panic!("no stat {name}"))
    }
}

/// One `stats` value from whatever answers on `port`, if it answers like memcached.
fn stat_on(port: u16, name: &str) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"stats\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        if line.starts_with("END") || line.is_empty() {
            return None;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 3 && f[0] == "STAT" && f[1] == name {
            return f[2].parse().ok();
        }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mcbench(args: &[&str]) -> (Value, bool) {
    let out = Command::new(MCBENCH)
        .args(args)
        .args(["--json", "-q"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run mcbench");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.success())
}

#[test]
fn closed_loop_against_memcached_checks_every_reply() {
    let mc = Memcached::start();
    let (r, ok) = mcbench(&[
        "--servers",
        &mc.addr(),
        "--threads",
        "2",
        "--cpus",
        "0,1",
        "--connections",
        "4",
        "--pipeline",
        "8",
        "--keys",
        "5000",
        "--preload",
        "--requests",
        "20000",
        "--multiget",
        "3",
    ]);
    assert!(ok);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["requests"], 20000);
    assert_eq!(r["preload_requests"], 5000);
    assert_eq!(r["preload_errors"], 0);
    let (gets, sets) = (r["gets"].as_u64().unwrap(), r["sets"].as_u64().unwrap());
    assert_eq!(gets + sets, 20000);
    // Preloaded: every key of every 3-key get is a hit.
    assert_eq!(r["hits"].as_u64().unwrap(), 3 * gets);
    assert_eq!(r["misses"], 0);
    assert_eq!(mc.stat("curr_items"), 5000);
    // The server saw what we counted: 5000 preload sets and our sets.
    assert_eq!(mc.stat("cmd_set"), 5000 + sets);
    let lat = &r["latency_us"];
    assert!(lat["p50"].as_f64().unwrap() > 0.0);
    assert!(
        lat["p50"].as_f64() <= lat["p99"].as_f64() && lat["p99"].as_f64() <= lat["max"].as_f64()
    );
}

#[test]
fn open_loop_sends_at_the_rate_asked() {
    let mc = Memcached::start();
    let (r, ok) = mcbench(&[
        "--servers",
        &mc.addr(),
        "--connections",
        "5",
        "--rate",
        "4000",
        "--duration",
        "1.5",
        "--keys",
        "1000",
        "--preload",
    ]);
    assert!(ok);
    assert_eq!(r["errors"], 0, "{r}");
    let n = r["requests"].as_u64().unwrap() as f64;
    assert!(
        (n - 6000.0).abs() < 60.0,
        "sent {n} requests, expected ~6000"
    );
}

#[test]
fn ketama_spreads_keys_over_two_servers_as_libmemcached() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let servers = format!("{},{}", a.addr(), b.addr());
    let (r, ok) = mcbench(&[
        "--servers",
        &servers,
        "--connections",
        "2",
        "--keys",
        "2000",
        "--preload",
        "--requests",
        "2000",
        "--ratio",
        "1:0",
    ]);
    assert!(ok);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(
        r["misses"], 0,
        "each get went to the server that holds the key: {r}"
    );
    let (na, nb) = (a.stat("curr_items"), b.stat("curr_items"));
    assert_eq!(na + nb, 2000);
    assert!(na > 600 && nb > 600, "a {na} b {nb}");
    // Same split as the continuum computes.
    let servers: Vec<mcbench::ketama::Server> = mcbench::config::parse_servers(&servers).unwrap();
    let c = mcbench::ketama::Continuum::new(&servers, mcbench::ketama::Mode::Weighted);
    let on_a = (0..2000)
        .filter(|i| c.server_for(format!("mcb:{i}").as_bytes()) == 0)
        .count() as u64;
    assert_eq!(on_a, na);
}

/// A server that answers every get with `reply` and every set with STORED.
fn fake_server(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line.starts_with("set ") {
                        let len: usize = line
                            .split_whitespace()
                            .nth(4)
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(0);
                        let mut data = vec![0; len + 2];
                        if r.read_exact(&mut data).is_err() {
                            return;
                        }
                        let _ = w.write_all(b"STORED\r\n");
                    } else if w.write_all(reply).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

#[test]
fn wrong_replies_are_counted_as_errors() {
    let port = fake_server(b"VALUE mcb:nope 0 1\r\nx\r\nEND\r\n");
    let addr = format!("127.0.0.1:{port}");
    let (r, _) = mcbench(&[
        "--servers",
        &addr,
        "--connections",
        "1",
        "--requests",
        "300",
        "--ratio",
        "1:0",
    ]);
    assert_eq!(r["requests"], 300);
    assert_eq!(r["errors_by_kind"]["wrong_key"], 300, "{r}");
    assert_eq!(r["hits"], 0);
}

#[test]
fn malformed_replies_are_counted_and_the_connection_recovers() {
    let port = fake_server(b"HELLO\r\n");
    let addr = format!("127.0.0.1:{port}");
    let (r, _) = mcbench(&[
        "--servers",
        &addr,
        "--connections",
        "1",
        "--pipeline",
        "4",
        "--requests",
        "100",
        "--ratio",
        "1:0",
    ]);
    assert_eq!(r["requests"], 100, "{r}");
    let e = &r["errors_by_kind"];
    let total = e["unexpected_reply"].as_u64().unwrap_or(0) + e["closed"].as_u64().unwrap_or(0);
    assert_eq!(total, 100, "{r}");
    assert!(e["unexpected_reply"].as_u64().unwrap_or(0) >= 25, "{r}");
    assert!(r["error_samples"].to_string().contains("HELLO"), "{r}");
}

#[test]
fn requests_count_only_after_warmup() {
    let mc = Memcached::start();
    let (r, ok) = mcbench(&[
        "--servers",
        &mc.addr(),
        "--connections",
        "2",
        "--keys",
        "100",
        "--warmup",
        "0.3",
        "--requests",
        "3000",
    ]);
    assert!(ok);
    assert_eq!(r["requests"], 3000, "{r}");
    // The server also saw the warm-up's requests.
    let served = mc.stat("cmd_get") + mc.stat("cmd_set");
    assert!(served > 3000, "server saw {served}");
}

/// A CA and a server certificate for 127.0.0.1 (PEM files ca.pem, cert.pem, key.pem).
fn certificates(dir: &std::path::Path, ca_name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// --tls against memcached -Z: every reply checked as over plain TCP, the server saw
/// what mcbench counted, TLS 1.3 negotiated and reported; with --reconnect 1 every
/// request comes on a new connection (a full handshake each).
#[test]
fn tls_against_memcached_z() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), "mcbench test CA");
    let mc = Memcached::start_tls(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let tls_addr = format!("127.0.0.1:{}", mc.2);
    let ca = dir.path().join("ca.pem").display().to_string();
    let (r, ok) = mcbench(&[
        "--servers", &tls_addr, "--tls", "--tls-ca", &ca, "--connections", "4", "--pipeline", "8",
        "--keys", "2000", "--preload", "--requests", "10000",
    ]);
    assert!(ok, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["requests"], 10000);
    assert_eq!(r["preload_requests"], 2000);
    assert_eq!(r["hits"], r["gets"], "preloaded: every get hits");
    assert_eq!(mc.stat("cmd_set"), 2000 + r["sets"].as_u64().unwrap());
    assert!(r["tls"].as_str().unwrap().starts_with("TLSv1_3 TLS13_"), "{r}");

    // Values of many TLS records each, batches past rustls's default 64 KiB buffer.
    // Pipeline 1: memcached -Z stalls on pipelined requests left in OpenSSL's buffer.
    let (r, ok) = mcbench(&[
        "--servers", &tls_addr, "--tls", "--tls-ca", &ca, "--connections", "2", "--ratio", "1:1",
        "--keys", "50", "--key-prefix", "big:", "--value-size", "70000-200000", "--requests", "200",
    ]);
    assert!(ok, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["hits"].as_u64().unwrap() > 0, "large values read back: {r}");

    let before = mc.stat("total_connections");
    let (r, ok) = mcbench(&[
        "--servers", &tls_addr, "--tls", "--tls-skip-verify", "--connections", "4", "--ratio", "1:0",
        "--keys", "2000", "--requests", "300", "--reconnect", "1",
    ]);
    assert!(ok, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["hits"], 300);
    let opened = mc.stat("total_connections") - before;
    assert!((300..=310).contains(&opened), "a connection per request: {opened} for 300");
    assert_eq!(mc.stat("ssl_handshake_errors"), 0);
}

/// A server certificate from another CA: the handshake fails, nothing is counted as
/// served, the failure is sampled as a TLS error and mcbench exits non-zero.
#[test]
fn tls_refuses_a_certificate_from_another_ca() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    certificates(dir.path(), "mcbench test CA");
    certificates(other.path(), "another CA");
    let mc = Memcached::start_tls(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let ca = other.path().join("ca.pem").display().to_string();
    let (r, ok) = mcbench(&[
        "--servers", &format!("127.0.0.1:{}", mc.2), "--tls", "--tls-ca", &ca, "--connections", "2",
        "--duration", "0.5",
    ]);
    assert!(!ok);
    assert_eq!(r["requests"], 0);
    let samples = r["error_samples"].to_string();
    assert!(samples.contains("tls") && samples.contains("UnknownIssuer"), "{samples}");
}
