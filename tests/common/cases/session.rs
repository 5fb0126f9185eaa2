//! One case's server and connection, as scripts/record-cases.py runs them: a fresh
//! server per case, one connection, each `send` written while the reply is read, a
//! step ending when the server has been quiet, then a probe of the connection.

use super::super::{escape, find};
use super::table::Probe;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The recorder's IDLE: this much silence ends a reply that does not (yet) match.
pub const IDLE: Duration = Duration::from_millis(300);
/// The recorder's OVERALL: no step takes longer.
const OVERALL: Duration = Duration::from_secs(10);
/// The recorder's probe timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A server started for one case; killed when dropped.
pub struct CaseServer {
    child: Child,
    log: PathBuf,
}

impl Drop for CaseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `bin args... -p -1` with `env` added, stderr into `log` (shown when it
/// fails), and wait until it accepts. `-p -1` makes the kernel pick the port and the
/// server write it to `MEMCACHED_PORT_FILENAME` once it listens, as memcached's own
/// test suite (t/lib/MemcachedTest.pm) runs it: a port found free by the harness and
/// then passed on could be taken meanwhile by another case's server, whose
/// connection this case would then share (two cases on one server's keys and
/// counters: the flaky `Data exists` and `curr_connections 0` seen under parallel
/// replays). Readiness is a bare TCP connect, as in the recorder (a -S or -Y server
/// answers no text `stats`); that connection is returned to be the case's own (the
/// recorder closes it and opens another: reusing it spares a race with the server's
/// close of the first, which `curr_connections` would show).
pub fn start(
    bin: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Result<(CaseServer, Conn), String> {
    let mut last_err = String::new();
    for attempt in 1..=3 {
        let mut port_file = log.as_os_str().to_owned();
        port_file.push(format!(".port{attempt}"));
        let port_file = PathBuf::from(port_file);
        let _ = std::fs::remove_file(&port_file);
        let mut cmd = Command::new(bin);
        cmd.args(args).args(["-p", "-1"]);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.env("MEMCACHED_PORT_FILENAME", &port_file);
        cmd.stdin(Stdio::null());
        if std::env::var_os("MC_TEST_SERVER_LOG").is_some() {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        } else {
            let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
            cmd.stdout(Stdio::null()).stderr(f);
        }
        // A clean fd table (cargo leaks e.g. its jobserver pipe into tests, and other
        // replay threads' sockets may be open): memcached's -c counts fds.
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
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut server = CaseServer {
            child,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = server.exit_status() {
                last_err = format!("attempt {attempt}: {e}");
                break;
            }
            if let Some(port) = listening_port(&port_file) {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(stream) => return Ok((server, Conn::new(stream)?)),
                    Err(e) => {
                        last_err = format!("attempt {attempt}: connect to port {port}: {e}");
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                last_err = format!(
                    "attempt {attempt}: no port in {} within 10 s",
                    port_file.display()
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Err(format!(
        "could not start {} {}: {last_err}",
        bin.display(),
        args.join(" ")
    ))
}

impl CaseServer {
    /// None while the server runs; else how it ended, with the end of its stderr.
    pub fn exit_status(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        let stderr = stderr.trim();
        let mut tail = stderr.len().saturating_sub(500);
        while !stderr.is_char_boundary(tail) {
            tail += 1;
        }
        Some(format!(
            "the server exited with {status}{}{}",
            if stderr.is_empty() {
                ""
            } else {
                "; its stderr: "
            },
            &stderr[tail..]
        ))
    }
}

/// The TCP port a server started with `-p -1` wrote to its port file: memcached
/// renames `<file>.lck` into place once complete, so a file that exists is whole.
fn listening_port(port_file: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(port_file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("TCP INET: "))
        .and_then(|p| p.trim().parse().ok())
}

/// The case's connection.
pub struct Conn {
    stream: TcpStream,
    /// The server closed the connection (EOF or reset).
    pub closed: bool,
}

/// poll(2) one fd; returns revents (0 on timeout).
fn poll(fd: i32, events: i16, timeout: Duration) -> i16 {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n > 0 {
        p.revents
    } else {
        0
    }
}

impl Conn {
    fn new(stream: TcpStream) -> Result<Conn, String> {
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).ok();
        Ok(Conn {
            stream,
            closed: false,
        })
    }

    /// Read whatever is there; false once the server has closed.
    fn read_some(&mut self, into: &mut Vec<u8>) -> bool {
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => self.closed = true, // reset: what arrived before it counts
        }
        !self.closed
    }

    /// Write `data` (in 64 KiB writes, reading meanwhile: the server may answer, or
    /// close, before it has read everything) and read the reply. The reply ends,
    /// as in the recorder, when the server closes, after OVERALL, or after `patience`
    /// of silence (the recorder's IDLE, or longer for a reply still short of what is
    /// expected); but once `matches(reply)` holds, `grace` of silence is enough (a
    /// later byte would still show, in the next step's reply or in the probe).
    pub fn exchange(
        &mut self,
        data: &[u8],
        grace: Duration,
        patience: Duration,
        matches: impl Fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        let fd = self.stream.as_raw_fd();
        let deadline = Instant::now() + OVERALL;
        let mut last = Instant::now();
        let mut sent = 0;
        let mut reply = Vec::new();
        let mut done = matches(&reply);
        while !self.closed {
            let now = Instant::now();
            let writing = sent < data.len();
            let quiet_until = last + if done { grace } else { patience };
            if (!writing && now >= quiet_until) || now >= deadline {
                break;
            }
            let until = if writing {
                deadline
            } else {
                quiet_until.min(deadline)
            };
            let events = libc::POLLIN | if writing { libc::POLLOUT } else { 0 };
            let rev = poll(fd, events, until - now);
            if writing && rev & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0 {
                let end = data.len().min(sent + 65536);
                match self.stream.write(&data[sent..end]) {
                    Ok(n) => {
                        sent += n;
                        last = Instant::now();
                    }
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    // The server closed: the rest cannot be sent, its reply still counts.
                    Err(_) => sent = data.len(),
                }
            }
            if rev & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                let before = reply.len();
                self.read_some(&mut reply);
                if reply.len() > before {
                    last = Instant::now();
                    done = matches(&reply);
                }
            }
        }
        reply
    }

    /// Does the connection still answer? Ok(true) yes, Ok(false) the server closed
    /// it, Err(what came instead of an answer).
    pub fn probe(&mut self, kind: Probe) -> Result<bool, String> {
        let (request, what): (Vec<u8>, &str) = match kind {
            Probe::Text | Probe::TextAuth => (b"version\r\n".to_vec(), "version"),
            Probe::BinaryNoop => (bin_request(0x0a), "binary Noop"),
            Probe::BinaryVersion => (bin_request(0x0b), "binary Version"),
        };
        let fd = self.stream.as_raw_fd();
        let deadline = Instant::now() + PROBE_TIMEOUT;
        let mut sent = 0;
        let mut got = Vec::new();
        let complete = |got: &[u8]| match kind {
            Probe::Text | Probe::TextAuth => find(got, b"\r\n").is_some() || got.len() >= 100,
            _ => got.len() >= 24,
        };
        while !self.closed && !complete(&got) {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no answer to the {what} probe within {PROBE_TIMEOUT:?}; got {:?}",
                    escape(&got)
                ));
            }
            let writing = sent < request.len();
            let rev = poll(
                fd,
                libc::POLLIN | if writing { libc::POLLOUT } else { 0 },
                deadline - now,
            );
            if writing && rev & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0 {
                match self.stream.write(&request[sent..]) {
                    Ok(n) => sent += n,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(_) => sent = request.len(),
                }
            }
            if rev & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                self.read_some(&mut got);
            }
        }
        if got.is_empty() && self.closed {
            return Ok(false);
        }
        let ok = match kind {
            Probe::Text => got.starts_with(b"VERSION "),
            Probe::TextAuth => {
                got.starts_with(b"VERSION ") || got.starts_with(b"CLIENT_ERROR unauthenticated\r\n")
            }
            Probe::BinaryNoop | Probe::BinaryVersion => {
                got.len() >= 24 && got[0] == 0x81 && got[1] == request[1] && got[6..8] == [0, 0]
            }
        };
        if ok {
            Ok(true)
        } else {
            Err(format!("the {what} probe got {}", escape(&got)))
        }
    }
}

/// A binary request with no key, extras or value; opaque "prob", as the recorder's.
fn bin_request(opcode: u8) -> Vec<u8> {
    let mut r = vec![0u8; 24];
    r[0] = 0x80;
    r[1] = opcode;
    r[12..16].copy_from_slice(&0x70726f62u32.to_be_bytes());
    r
}
