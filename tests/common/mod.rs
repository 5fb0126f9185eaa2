//! Shared harness of the black-box tests: start a server binary on a free port and
//! talk raw bytes to it over TCP.
//!
//! The binary is `$MC_SERVER_BIN` when set (e.g. `/usr/bin/memcached`, which is how
//! every expectation here is proven to be memcached's), else our `memcached-rs`.
//! Every read has a timeout, so a server that hangs fails the test instead of
//! blocking it forever.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cases;
pub mod tls;
mod notation;
#[allow(unused_imports)] // not every test file uses them all
pub use notation::{escape, escape_pieces, parse_pieces, unescape, Piece};

/// How long any single expected reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The server under test.
pub fn server_bin() -> PathBuf {
    match std::env::var_os("MC_SERVER_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_memcached-rs")),
    }
}

/// True when the server under test is the reference memcached, not ours; tests of
/// features only ours has skip themselves then.
pub fn is_reference() -> bool {
    let bin = server_bin();
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !name.starts_with("memcached-rs")
}

/// Skip the calling test (return early) when running against real memcached.
#[macro_export]
macro_rules! skip_on_reference {
    ($why:expr) => {
        if common::is_reference() {
            common::note_skip(&format!("against {}: {}", common::server_bin().display(), $why));
            return;
        }
    };
}

/// Where skipped tests are listed, so a skip is seen: `scripts/test.sh` prints this
/// file at the end of a run (cargo's harness shows a skipped test as passed).
pub const SKIPPED_LIST: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped-tests.txt");

/// Records that the calling test is skipping itself, and why (then it returns).
pub fn note_skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIPPED {test}: {why}");
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(SKIPPED_LIST) {
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// Instantiate `fn $name(threads: &str)` as two tests, `$name::t1` and `$name::t2`,
/// run with `-t 1` and `-t 2`.
#[macro_export]
macro_rules! per_threads {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn t1() { super::$name("1") }
            #[test]
            fn t2() { super::$name("2") }
        }
    )*};
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Start the server on a free port with `-p PORT -l 127.0.0.1 -U 0` plus `extra`
    /// (plus `-u root` when running as root, which memcached requires). Retries
    /// with another port if the chosen one was taken in the meantime.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with(extra, true)
    }

    /// `start`, or without `-l 127.0.0.1` (`loopback_only` false): then the server
    /// listens on every interface, IPv4 and IPv6, as with no `-l` at all (clients still
    /// connect over loopback).
    pub fn start_with(extra: &[&str], loopback_only: bool) -> Server {
        let mut last_err = String::new();
        for _ in 0..20 {
            let port = free_port();
            let mut cmd = Command::new(server_bin());
            cmd.args(["-p", &port.to_string(), "-U", "0"]);
            if loopback_only {
                cmd.args(["-l", "127.0.0.1"]);
            }
            cmd.args(extra);
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                cmd.args(["-u", "root"]);
            }
            let log = std::env::var_os("MC_TEST_SERVER_LOG").is_some();
            cmd.stdin(Stdio::null())
                .stdout(if log { Stdio::inherit() } else { Stdio::null() })
                .stderr(if log { Stdio::inherit() } else { Stdio::null() });
            // Give the server a clean fd table (cargo leaks e.g. its jobserver pipe
            // into tests): memcached's connection limit counts fds.
            // SAFETY: only async-signal-safe calls (close_range/close) between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                        for fd in 3..4096 {
                            libc::close(fd);
                        }
                    }
                    Ok(())
                });
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("cannot run {}: {e}", server_bin().display()),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("server exited with {status} on port {port}");
                    break;
                }
                if let Ok(probe) = TcpStream::connect(("127.0.0.1", port)) {
                    // Another test's server may have won the race for this port:
                    // make sure the one answering is ours.
                    if stats_pid(probe) == Some(child.id()) {
                        return Server { child, port };
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!("port {port} answered by another process");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!("server did not accept on port {port} within 10 s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!(
            "could not start {} {:?}: {last_err}",
            server_bin().display(),
            extra
        );
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in KiB (Linux /proc).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `pid` a server reports in `stats`, if it answers within a few seconds.
fn stats_pid(stream: TcpStream) -> Option<u32> {
    let mut c = Client {
        stream,
        pending: Vec::new(),
    };
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    c.stream.write_all(b"stats\r\n").ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while find(&c.pending, b"END\r\n").is_none() {
        match c.fill(deadline) {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&c.pending).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("STAT pid "))
        .and_then(|v| v.trim().parse().ok())
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot find a free port: {e}"),
    }
}

/// A raw text-protocol connection.
pub struct Client {
    pub stream: TcpStream,
    /// Bytes read but not consumed yet.
    pending: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => s,
            Err(e) => panic!("connect to 127.0.0.1:{port}: {e}"),
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).ok();
        stream.set_write_timeout(Some(Duration::from_secs(30))).ok();
        stream.set_nodelay(true).ok();
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        if let Err(e) = self.stream.write_all(bytes.as_ref()) {
            panic!(
                "send {}: {e}",
                escape(&bytes.as_ref()[..bytes.as_ref().len().min(200)])
            );
        }
    }

    /// Write what we can; the server may close while we write (errors ignored).
    pub fn send_lossy(&mut self, bytes: impl AsRef<[u8]>) {
        let _ = self.stream.write_all(bytes.as_ref());
    }

    /// Read more bytes into `pending`; Ok(0) on EOF.
    fn fill(&mut self, deadline: Instant) -> std::io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "reply deadline passed",
            ));
        }
        self.stream.set_read_timeout(Some(left)).ok();
        let mut buf = [0u8; 65536];
        let n = self.stream.read(&mut buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Read exactly `n` bytes.
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while self.pending.len() < n {
            match self.fill(deadline) {
                Ok(0) => panic!(
                    "connection closed after {} of {n} bytes: {}",
                    self.pending.len(),
                    escape(&self.pending[..self.pending.len().min(300)])
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "read {n} bytes: {e}; got {} bytes: {}",
                    self.pending.len(),
                    escape(&self.pending[..self.pending.len().min(300)])
                ),
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Read exactly `want.len()` bytes and require them to equal `want`.
    pub fn expect(&mut self, want: impl AsRef<[u8]>) {
        let want = want.as_ref();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while self.pending.len() < want.len() {
            // Fail as soon as the bytes diverge, with what we have.
            let have = self.pending.len();
            if self.pending[..] != want[..have] {
                break;
            }
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let n = self.pending.len().min(want.len());
        let got: Vec<u8> = self.pending.drain(..n).collect();
        if got != want {
            panic!(
                "reply mismatch\n  expected: {}\n  got:      {}{}",
                escape(&want[..want.len().min(2000)]),
                escape(&got[..got.len().min(2000)]),
                if got.len() < want.len() {
                    " (short: closed or timed out)"
                } else {
                    ""
                }
            );
        }
    }

    pub fn roundtrip(&mut self, req: impl AsRef<[u8]>, reply: impl AsRef<[u8]>) {
        self.send(req);
        self.expect(reply);
    }

    /// One reply line, with its \r\n.
    pub fn read_line(&mut self) -> Vec<u8> {
        self.read_until(b"\r\n")
    }

    /// Everything up to and including the first occurrence of `end`.
    pub fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut from = 0;
        loop {
            if let Some(p) = find(&self.pending[from..], end) {
                return self.pending.drain(..from + p + end.len()).collect();
            }
            from = self.pending.len().saturating_sub(end.len());
            match self.fill(deadline) {
                Ok(0) => panic!(
                    "closed while waiting for {}: got {}",
                    escape(end),
                    escape(&self.pending)
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "waiting for {}: {e}; got {}",
                    escape(end),
                    escape(&self.pending)
                ),
            }
        }
    }

    /// Read a whole multi-line reply ending in "END\r\n" at the start of a line.
    pub fn read_to_end_marker(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if self.pending.starts_with(b"END\r\n") {
                return self.pending.drain(..5).collect();
            }
            if let Some(p) = find(&self.pending, b"\r\nEND\r\n") {
                return self.pending.drain(..p + 7).collect();
            }
            match self.fill(deadline) {
                Ok(0) => panic!("closed before END: got {}", escape(&self.pending)),
                Ok(_) => {}
                Err(e) => panic!("waiting for END: {e}; got {}", escape(&self.pending)),
            }
        }
    }

    /// The server must close the connection (EOF or reset) without sending more.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if !self.pending.is_empty() {
                panic!(
                    "expected the connection to close, got {}",
                    escape(&self.pending)
                );
            }
            match self.fill(deadline) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return
                }
                Err(e) => panic!("expected the connection to close: {e}"),
            }
        }
    }

    /// Nothing may arrive for `d` (and the connection must stay open).
    pub fn expect_silence(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            if !self.pending.is_empty() {
                panic!("expected no reply, got {}", escape(&self.pending));
            }
            match self.fill(deadline) {
                Ok(0) => panic!("expected no reply, but the connection closed"),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
                Err(e) => panic!("expected no reply: {e}"),
            }
        }
    }

    /// The connection still answers: `version` gets `VERSION 1.6.x`.
    pub fn expect_alive(&mut self) {
        self.send(b"version\r\n");
        let line = self.read_line();
        assert_version_line(&line);
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    // ---- conveniences over the protocol ----

    pub fn set(&mut self, key: &str, value: &[u8]) {
        self.send(format!("set {key} 0 0 {}\r\n", value.len()));
        self.send([value, b"\r\n"].concat());
        self.expect(b"STORED\r\n");
    }

    /// `get key`: Some(value) on a hit.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n"));
        let line = self.read_line();
        if line == b"END\r\n" {
            return None;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let parts: Vec<&str> = text.trim_end().split(' ').collect();
        assert!(
            parts.len() == 4 && parts[0] == "VALUE" && parts[1] == key,
            "bad get reply line {text:?}"
        );
        let len: usize = parts[3]
            .parse()
            .unwrap_or_else(|_| panic!("bad length in {text:?}"));
        let data = self.read_n(len + 2);
        assert_eq!(&data[len..], b"\r\n", "value not terminated by \\r\\n");
        self.expect(b"END\r\n");
        Some(data[..len].to_vec())
    }

    /// `stats [group]` as name → value.
    pub fn stats(&mut self, group: &str) -> HashMap<String, String> {
        if group.is_empty() {
            self.send(b"stats\r\n");
        } else {
            self.send(format!("stats {group}\r\n"));
        }
        let body = self.read_to_end_marker();
        parse_stats(&body)
    }

    /// Poll `stats` until `name` equals `want` (connection counts settle
    /// asynchronously); panics after 5 s with the last value.
    pub fn wait_for_stat(&mut self, name: &str, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.stat_u64(name);
            if v == want {
                return;
            }
            if Instant::now() > deadline {
                panic!("stat {name} stayed {v}, expected {want}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stat_u64(&mut self, name: &str) -> u64 {
        let s = self.stats("");
        stat_num(&s, name)
    }
}

pub fn stat_num(s: &HashMap<String, String>, name: &str) -> u64 {
    match s.get(name).map(|v| v.parse::<u64>()) {
        Some(Ok(v)) => v,
        other => panic!("stat {name}: {other:?}"),
    }
}

/// Parse "STAT name value\r\n"... "END\r\n"; every line must have that form.
pub fn parse_stats(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let mut out = HashMap::new();
    for line in text.split("\r\n") {
        if line.is_empty() || line == "END" {
            continue;
        }
        let mut it = line.splitn(3, ' ');
        let (tag, name, value) = (it.next(), it.next(), it.next());
        match (tag, name, value) {
            (Some("STAT"), Some(n), Some(v)) => {
                out.insert(n.to_string(), v.to_string());
            }
            _ => panic!("malformed stats line {line:?}"),
        }
    }
    out
}

/// `VERSION 1.6.<digits...>\r\n`
pub fn assert_version_line(line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let v = text
        .strip_prefix("VERSION 1.6.")
        .and_then(|r| r.strip_suffix("\r\n"));
    match v {
        Some(rest)
            if !rest.is_empty() && rest.chars().next().is_some_and(|c| c.is_ascii_digit()) => {}
        _ => panic!("not a `VERSION 1.6.x` line: {text:?}"),
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
