//! The metrics listener: a small HTTP/1.x server on its own thread (not an executor),
//! non-blocking, one `poll` loop, answering `GET /metrics`.
//!
//! Bounded like any other client: at most MAX_CONNECTIONS scrapers at once (more are
//! closed at accept), a request head of at most MAX_REQUEST bytes, and DEADLINE for a
//! whole exchange; a scraper that never sends, or never reads its reply, is closed
//! then. So a hostile or stuck scraper holds at most one rendered reply and a few KiB,
//! and the executors never wait for it: they only publish copies once a second. The
//! thread runs at a lower priority (nice 10) than the executors.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::commands::Counter;

pub const MAX_CONNECTIONS: usize = 8;
pub const MAX_REQUEST: usize = 8 * 1024;
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often the loop looks at the clock and the stop flag when nothing happens.
const TICK_MS: i32 = 200;

/// What the loop counts (in `Observe`).
pub struct Counters<'a> {
    pub scrapes: &'a Counter,
    pub refused: &'a Counter,
    pub timed_out: &'a Counter,
}

struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    reply: Vec<u8>,
    sent: usize,
    deadline: Instant,
}

/// Serves until `stop()` is true. `render` makes the `/metrics` body.
pub fn serve(listener: TcpListener, counters: Counters, stop: impl Fn() -> bool, render: impl Fn() -> String) {
    // SAFETY: setpriority on this thread's id only changes its scheduling priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let mut clients: Vec<Client> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    while !stop() {
        fds.clear();
        fds.push(libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        for c in &clients {
            let events = if c.reply.is_empty() { libc::POLLIN } else { libc::POLLOUT };
            fds.push(libc::pollfd { fd: c.stream.as_raw_fd(), events, revents: 0 });
        }
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, TICK_MS) };
        if ready < 0 {
            continue;
        }
        let now = Instant::now();
        let mut keep = Vec::with_capacity(clients.len());
        for (i, mut c) in clients.drain(..).enumerate() {
            let revents = fds[i + 1].revents;
            let open = if revents != 0 { step(&mut c, &counters, &render) } else { true };
            if !open {
                continue;
            }
            if now >= c.deadline {
                counters.timed_out.incr();
                continue;
            }
            keep.push(c);
        }
        clients = keep;
        if fds[0].revents & libc::POLLIN != 0 {
            while let Ok((stream, _)) = listener.accept() {
                if clients.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err() {
                    counters.refused.incr();
                    continue;
                }
                clients.push(Client { stream, request: Vec::new(), reply: Vec::new(), sent: 0, deadline: now + DEADLINE });
            }
        }
    }
}

/// Moves one client on; false when it is done with (closed).
fn step(c: &mut Client, counters: &Counters, render: &impl Fn() -> String) -> bool {
    if c.reply.is_empty() {
        let mut buf = [0u8; 2048];
        match c.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => c.request.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return true,
            Err(_) => return false,
        }
        let Some(end) = head_end(&c.request) else {
            if c.request.len() > MAX_REQUEST {
                c.reply = reply(431, "text/plain", b"request header too large\n", false);
            }
            return true;
        };
        let head = &c.request[..end];
        c.reply = respond(head, counters, render);
    }
    loop {
        match c.stream.write(&c.reply[c.sent..]) {
            Ok(0) => return false,
            Ok(n) => {
                c.sent += n;
                if c.sent == c.reply.len() {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return true,
            Err(_) => return false,
        }
    }
}

/// Where the request head ends (after its blank line).
fn head_end(request: &[u8]) -> Option<usize> {
    request.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).or_else(|| request.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
}

/// The reply to one request head.
fn respond(head: &[u8], counters: &Counters, render: &impl Fn() -> String) -> Vec<u8> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(b"");
    let mut words = line.split(|&b| b == b' ' || b == b'\r').filter(|w| !w.is_empty());
    let (method, target) = (words.next().unwrap_or(b""), words.next().unwrap_or(b""));
    let path = target.split(|&b| b == b'?').next().unwrap_or(b"");
    let head_only = method == b"HEAD";
    if method != b"GET" && !head_only {
        return reply(405, "text/plain", b"only GET\n", false);
    }
    match path {
        b"/metrics" => {
            let body = render();
            counters.scrapes.incr();
            reply(200, "text/plain; version=0.0.4; charset=utf-8", body.as_bytes(), head_only)
        }
        b"/" => reply(200, "text/html", b"<html><body><a href=\"/metrics\">/metrics</a></body></html>\n", head_only),
        _ => reply(404, "text/plain", b"not found: try /metrics\n", head_only),
    }
}

fn reply(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}
