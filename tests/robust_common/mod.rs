//! Helpers of the tests/robustness*.rs files beyond the shared harness in tests/common:
//! process memory and liveness from /proc, a seeded generator, a server started without
//! any of the harness's extra flags, descriptor limits, reading a socket until it goes
//! quiet.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Resident memory of a process in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// Peak resident memory of a process in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmHWM:")
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The process exists and is not a zombie (a crashed server is one until reaped).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|r| r.trim_start().chars().next())
            .is_some_and(|s| s != 'Z'),
        Err(_) => false,
    }
}

/// xorshift64*: reproducible "random" bytes and sizes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Raises this process's open-file soft limit to at least `n` (up to the hard limit).
pub fn raise_nofile(n: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

/// A server started with exactly `args` (no -U 0, unlike tests/common), killed on drop.
pub struct Bare {
    pub child: Child,
    pub port: u16,
}

impl Bare {
    pub fn start(bin: &std::path::Path, args: &[&str]) -> Bare {
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port());
            let port = port.unwrap_or_else(|e| panic!("no free port: {e}"));
            let mut child = Command::new(bin)
                .args(["-p", &port.to_string(), "-l", "127.0.0.1"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Bare { child, port };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start {} {args:?}", bin.display());
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Inodes of the sockets a process holds open.
pub fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut out = HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    if let Ok(i) = inode.parse() {
                        out.insert(i);
                    }
                }
            }
        }
    }
    out
}

/// Inodes of every UDP socket on the machine (IPv4 and IPv6), from /proc/net.
pub fn udp_socket_inodes() -> HashSet<u64> {
    let mut out = HashSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
            if let Some(inode) = line.split_whitespace().nth(9).and_then(|i| i.parse().ok()) {
                out.insert(inode);
            }
        }
    }
    out
}

/// Every TCP socket inode on the machine, to show the UDP check can see sockets.
pub fn tcp_socket_inodes() -> HashSet<u64> {
    let mut out = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9).and_then(|i| i.parse().ok()) {
                out.insert(inode);
            }
        }
    }
    out
}

/// The server is alive and serves a fresh client normally.
pub fn assert_serving(server: &super::common::Server, tag: &str) {
    assert!(alive(server.pid()), "{tag}: the server process died");
    let mut c = server.client();
    let key = format!("probe:{tag}");
    c.set(&key, tag.as_bytes());
    assert_eq!(
        c.get(&key).as_deref(),
        Some(tag.as_bytes()),
        "{tag}: probe value"
    );
}

/// Reads whatever arrives until EOF, a reset or `quiet` without data; returns the bytes
/// and whether the connection was closed.
pub fn drain(stream: &mut TcpStream, quiet: Duration, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    stream.set_read_timeout(Some(quiet)).ok();
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
    (got, false)
}
