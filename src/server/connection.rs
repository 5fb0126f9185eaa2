//! One client connection: read what arrived, run every complete request in it, send
//! the replies in request order with one write.
//!
//! Requests for keys this core owns run at once and their replies go straight into the
//! output buffer. Requests for keys another core owns are forwarded, and the position
//! their reply belongs at is remembered (a hole); once every forwarded reply of the
//! round is back, the holes are filled in and the whole round goes out in one write.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::core::{Core, MEMCACHED_VERSION};
use super::forward::{ConnInfo, Mailbox, OpKind};
use super::stats::{write_general, write_shards, ProcessFacts};
use super::{dump, process_facts, settings};
use crate::protocol::{self, reply, Parsed, Request, StatsKind, StoreMode};

/// Reads start with this much room; a large value grows the buffer to fit it.
const READ_BUFFER: usize = 16 * 1024;
/// Past this much output in one round, send what we have before going on. Also bounds
/// the request bytes (sets of large values) a connection forwards per round: each peer
/// holds a copy of them until it has run them.
const FLUSH_AT: usize = 256 * 1024;
/// Buffers grown past this for a large request or round go back to READ_BUFFER once it
/// is done, so a connection holds O(value size) only while it moves a large value and
/// an idle one holds a few tens of KiB, however large its past values were.
const KEEP_BUFFER: usize = 64 * 1024;
/// Past this many forwarded replies in one round, wait for them and send: their size is
/// unknown until they arrive (up to -I each), so this bounds what a client that does
/// not read can make the connection hold (gets of a large value, pipelined or multi).
/// After a round whose forwarded replies were large, the next round takes only as many
/// as would make about FLUSH_AT at that size.
const MAX_HOLES: usize = 64;

/// First byte of a binary-protocol request.
const BINARY_REQUEST_MAGIC: u8 = 0x80;

/// A binary-protocol error response, status 0x0081 "Unknown command", echoing the
/// request's opcode and opaque: we speak only the text protocol.
fn binary_not_supported(request: &[u8]) -> Vec<u8> {
    const MESSAGE: &[u8] = b"Unknown command";
    let mut reply = vec![0u8; 24];
    reply[0] = 0x81;
    reply[1] = request.get(1).copied().unwrap_or(0);
    reply[6..8].copy_from_slice(&0x0081u16.to_be_bytes());
    reply[8..12].copy_from_slice(&(MESSAGE.len() as u32).to_be_bytes());
    if let Some(opaque) = request.get(12..16) {
        reply[12..16].copy_from_slice(opaque);
    }
    reply.extend_from_slice(MESSAGE);
    reply
}

/// What a connection does after a request.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

pub struct Connection<S> {
    stream: S,
    core: Rc<Core>,
    id: u32,
    mailbox: Rc<Mailbox>,
    input: Input,
    output: Output,
}

/// The read buffer: unparsed bytes are `buf[start..end]`.
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of a refused data block still to discard.
    swallow: usize,
    /// memcached picks the protocol from a connection's first byte.
    seen_bytes: bool,
    /// Bytes from `start` whose get keys were prefetched (`Core::prefetch_requests`).
    prefetched: usize,
}

/// This round's replies, with holes for forwarded ones.
struct Output {
    buf: BytesMut,
    /// (position in `buf`, mailbox slot) of each forwarded reply, in request order.
    holes: Vec<(usize, u32)>,
    /// Request bytes forwarded this round (their replies not yet back).
    forwarded: usize,
    /// Holes this round may have: MAX_HOLES, fewer after large forwarded replies.
    max_holes: usize,
    spliced: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, core: Rc<Core>, info: ConnInfo) -> Self {
        info.last_cmd.set(core.now());
        let (id, mailbox) = core.forwarder.register(info);
        Connection {
            stream,
            core,
            id,
            mailbox,
            input: Input { buf: vec![0; READ_BUFFER], start: 0, end: 0, swallow: 0, seen_bytes: false, prefetched: 0 },
            output: Output {
                buf: BytesMut::with_capacity(READ_BUFFER),
                holes: Vec::new(),
                forwarded: 0,
                max_holes: MAX_HOLES,
                spliced: BytesMut::new(),
            },
        }
    }

    /// Serves the connection until the client leaves, an error, or shutdown.
    pub async fn serve(mut self) {
        let _ = self.serve_inner().await;
        self.core.forwarder.unregister(self.id);
    }

    async fn serve_inner(&mut self) -> std::io::Result<()> {
        let core = self.core.clone();
        loop {
            if self.input.end == self.input.buf.len() {
                self.input.make_room(0);
            }
            let room = self.input.buf.len() - self.input.end;
            let read = self.stream.read(&mut self.input.buf[self.input.end..]).await?;
            if read == 0 {
                return Ok(());
            }
            if !self.input.seen_bytes && self.input.buf[0] == BINARY_REQUEST_MAGIC {
                // A binary-protocol client: say so in its own framing, then hang up.
                let reply = binary_not_supported(&self.input.buf[..read]);
                let _ = self.stream.write_all(&reply).await;
                return Ok(());
            }
            self.input.seen_bytes = true;
            let stats = core.stats();
            stats.busy_connections.incr();
            stats.commands.bytes_read.add(read as u64);
            self.input.end += read;
            self.mailbox.info.last_cmd.set(core.tick());
            let next = self.run_round().await;
            let flushed = self.flush().await;
            self.core.publish();
            stats.busy_connections.decr();
            flushed?;
            if next == Next::Close {
                return Ok(());
            }
            if self.core.shared.shutting_down() {
                stats.busy_connections.incr();
                let finished = self.finish_for_shutdown().await;
                stats.busy_connections.decr();
                return finished;
            }
            // A read that filled the buffer leaves the socket marked ready, so the next
            // read succeeds at once: a client that keeps its socket full could hold the
            // executor until glommio's 100 ms preemption timer and stall every other
            // connection on the core (seen as a 50-100 ms p99.9 at pipeline 16).
            // memcached bounds this too (-R, 20 requests per event). Any other read
            // left nothing behind, and the next one waits for an event anyway.
            if read == room {
                futures_lite::future::yield_now().await;
            }
        }
    }

    /// Stopping: answer the requests that have already arrived, send FIN, and read
    /// until the client closes (or a second passes) before closing. Closing a socket
    /// with unread input makes the kernel send a reset, which destroys replies the
    /// client has not read yet.
    async fn finish_for_shutdown(&mut self) -> std::io::Result<()> {
        // A client that keeps sending could keep us answering forever: a second at most.
        let answering_until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < answering_until {
            let Some(read) = self.read_within(Duration::from_millis(20)).await else { break };
            if read? == 0 {
                return Ok(());
            }
            self.run_round().await;
            self.flush().await?;
        }
        self.stream.close().await?;
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
            self.input.start = 0;
            self.input.end = 0;
            match self.read_within(remaining).await {
                Some(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
        Ok(())
    }

    /// Reads into the input buffer, or None if nothing came within `wait`.
    async fn read_within(&mut self, wait: Duration) -> Option<std::io::Result<usize>> {
        if self.input.end == self.input.buf.len() {
            self.input.make_room(0);
        }
        let buf = &mut self.input.buf[self.input.end..];
        let stream = &mut self.stream;
        let read = async { Some(stream.read(buf).await) };
        let timeout = async {
            glommio::timer::sleep(wait).await;
            None
        };
        let result = futures_lite::future::or(read, timeout).await;
        if let Some(Ok(n)) = result {
            self.input.end += n;
        }
        result
    }

    /// Runs every complete request in the input.
    async fn run_round(&mut self) -> Next {
        loop {
            let input = &mut self.input;
            if input.swallow > 0 {
                let n = input.swallow.min(input.end - input.start);
                input.swallow -= n;
                input.start += n;
                if input.swallow > 0 {
                    input.compact();
                    return Next::Continue;
                }
            }
            let parsed = protocol::parse(&input.buf[input.start..input.end], &self.core.limits);
            let (request, consumed, swallow) = match parsed {
                Parsed::Incomplete { need } => {
                    input.make_room(need);
                    return Next::Continue;
                }
                Parsed::Close => return Next::Close,
                Parsed::Done { request, consumed } => (request, consumed, 0),
                Parsed::Swallow { request, consumed, swallow } => (request, consumed, swallow),
            };
            if input.prefetched == 0 && consumed < input.end - input.start {
                // Pipelined requests behind this one: overlap their lookups' cache misses.
                input.prefetched = self.core.prefetch_requests(&input.buf[input.start..input.end]);
            } else if let (0, &Request::Get { mut keys, .. }, true) =
                (input.prefetched, &request, self.core.poller.others_woken())
            {
                // A lone get (pipeline 1): start its misses, and let the other connections
                // that have a request start theirs, before any of them waits on one. With
                // no other connection woken, yielding would only delay this reply.
                if let (Some(key), None) = (keys.next(), keys.next()) {
                    if let Some(hash) = self.core.prefetch_local_slot(key) {
                        futures_lite::future::yield_now().await;
                        self.core.prefetch_record(hash);
                        futures_lite::future::yield_now().await;
                    }
                }
            }
            let raw = &input.buf[input.start..input.start + consumed];
            let next = if let Request::Get { keys, cas, touch } = request {
                // Values can be large and a multi-get long: send as we go, so one
                // request never holds more than about FLUSH_AT of output.
                for key in keys {
                    get_key(&self.core, self.id, &self.mailbox, &mut self.output, key, cas, touch);
                    if self.output.is_full()
                        && flush(&mut self.stream, &mut self.output, &self.mailbox, &self.core).await.is_err()
                    {
                        return Next::Close;
                    }
                }
                self.output.buf.extend_from_slice(reply::END);
                Next::Continue
            } else {
                run_request(&self.core, self.id, &self.mailbox, &mut self.output, request, raw)
            };
            self.input.start += consumed;
            self.input.prefetched = self.input.prefetched.saturating_sub(consumed);
            self.input.swallow = swallow;
            if next == Next::Close {
                return Next::Close;
            }
            if self.output.is_full() && self.flush().await.is_err() {
                return Next::Close;
            }
        }
    }

    /// Waits for forwarded replies, fills the holes and writes the round out.
    async fn flush(&mut self) -> std::io::Result<()> {
        flush(&mut self.stream, &mut self.output, &self.mailbox, &self.core).await
    }
}

/// Waits for forwarded replies, fills the holes and writes `out` to `stream`.
async fn flush<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut Output, mailbox: &Mailbox, core: &Core) -> std::io::Result<()> {
    if !out.holes.is_empty() {
        mailbox.all_delivered().await;
        out.spliced.clear();
        let (mut at, mut replies) = (0, 0);
        for &(position, slot) in &out.holes {
            out.spliced.extend_from_slice(&out.buf[at..position]);
            mailbox.with_reply(slot, |reply| {
                replies += reply.len();
                out.spliced.extend_from_slice(reply)
            });
            at = position;
        }
        out.max_holes = holes_after(replies, out.holes.len());
        out.spliced.extend_from_slice(&out.buf[at..]);
        std::mem::swap(&mut out.buf, &mut out.spliced);
        out.holes.clear();
        out.forwarded = 0;
        mailbox.clear();
    }
    if out.buf.is_empty() {
        return Ok(());
    }
    core.stats().commands.bytes_written.add(out.buf.len() as u64);
    let result = stream.write_all(&out.buf).await;
    out.buf.clear();
    out.shrink();
    result
}

/// Holes the next round may have, after a round whose `holes` forwarded replies came to
/// `replies` bytes: about FLUSH_AT of replies at that size, between 1 and MAX_HOLES.
fn holes_after(replies: usize, holes: usize) -> usize {
    (FLUSH_AT / (replies / holes.max(1)).max(1)).clamp(1, MAX_HOLES)
}

impl Input {
    /// Makes room to read: moves unparsed bytes to the front, and grows the buffer when
    /// a request needs more than it holds (a large value, a long multi-get line).
    fn make_room(&mut self, need: usize) {
        self.compact();
        if need > self.buf.len() {
            // The request's size is known (a data block): exactly that, rounded to
            // whole pages, not the next power of two (2 MiB for a 1 MB value).
            let size = need.next_multiple_of(4096);
            self.buf.reserve_exact(size - self.buf.len());
            self.buf.resize(size, 0);
        } else if self.end == self.buf.len() {
            // A line longer than the buffer (a long multi-get): its end is unknown.
            self.buf.resize(2 * self.buf.len(), 0);
        } else if self.end == 0 && self.buf.len() > KEEP_BUFFER {
            // Done with a large request: give the memory back.
            self.buf = vec![0; READ_BUFFER];
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

impl Output {
    /// Buffers grown for one large round are given back, not kept for the connection's
    /// life (a thousand idle connections would each hold their largest round).
    fn shrink(&mut self) {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::with_capacity(READ_BUFFER);
        }
        if self.spliced.capacity() > KEEP_BUFFER {
            self.spliced = BytesMut::new();
        }
    }

    /// Time to send what this round has so far (and wait for its forwarded replies).
    fn is_full(&self) -> bool {
        self.buf.len() >= FLUSH_AT || self.holes.len() >= self.max_holes || self.forwarded >= FLUSH_AT
    }

    /// Remembers that a forwarded reply goes here; returns its mailbox slot.
    fn hole(&mut self, mailbox: &Mailbox) -> u32 {
        let slot = self.holes.len() as u32;
        self.holes.push((self.buf.len(), slot));
        mailbox.expect_one();
        slot
    }
}

/// One key of a get: looked up here, or forwarded to its owner.
fn get_key(core: &Core, conn: u32, mailbox: &Mailbox, out: &mut Output, key: &[u8], cas: bool, touch: Option<i64>) {
    run_on(core, conn, mailbox, out, core.router.owner(key), OpKind::GetKey { cas, touch }, key);
}

/// Runs `kind` on `owner`: here at once, or forwarded with a hole for its reply.
fn run_on(core: &Core, conn: u32, mailbox: &Mailbox, out: &mut Output, owner: usize, kind: OpKind, bytes: &[u8]) {
    if owner == core.id {
        core.run_op(kind, bytes, &mut out.buf);
    } else {
        let slot = out.hole(mailbox);
        out.forwarded += bytes.len();
        core.stats().commands.forwarded.incr();
        core.forwarder.send(owner, conn, slot, kind, |b| b.extend_from_slice(bytes));
    }
}

/// Runs one request: here if this core owns it, else forwarded to its owner.
fn run_request(core: &Core, conn: u32, mailbox: &Mailbox, out: &mut Output, request: Request, raw: &[u8]) -> Next {
    let mut on = |owner: usize, kind: OpKind, bytes: &[u8], out: &mut Output| {
        run_on(core, conn, mailbox, out, owner, kind, bytes)
    };
    let cores = core.shared.config.threads;
    match request {
        Request::Get { keys, cas, touch } => {
            for key in keys {
                get_key(core, conn, mailbox, out, key, cas, touch);
            }
            out.buf.extend_from_slice(reply::END);
        }
        Request::Store { key, .. } | Request::Delete { key, .. } | Request::Arith { key, .. } | Request::Touch { key, .. } => {
            let owner = core.router.owner(key);
            if owner == core.id {
                core.run_keyed(&request, &mut out.buf);
            } else {
                on(owner, OpKind::Raw, raw, out);
            }
        }
        Request::TooLarge { mode, key, noreply } => {
            // memcached unlinks the old value when a set is refused, so no stale value stays.
            if mode == StoreMode::Set {
                on(core.router.owner(key), OpKind::Unlink, key, out);
            }
            if !noreply {
                out.buf.extend_from_slice(reply::TOO_LARGE);
            }
        }
        Request::FlushAll { delay, noreply } => {
            if !core.shared.config.flush_enabled {
                if !noreply {
                    out.buf.extend_from_slice(b"CLIENT_ERROR flush_all not allowed\r\n");
                }
                return Next::Continue;
            }
            core.stats().commands.cmd_flush.incr();
            for owner in 0..cores {
                on(owner, OpKind::Flush { delay }, b"", out);
            }
            if !noreply {
                out.buf.extend_from_slice(reply::OK);
            }
        }
        Request::CacheMemlimit { megabytes, noreply } => {
            let line: &[u8] = if megabytes < 8 {
                b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
            } else if megabytes > 1_000_000_000 {
                b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
            } else {
                let bytes = megabytes * 1024 * 1024 / cores as u64;
                for owner in 0..cores {
                    on(owner, OpKind::MemoryLimit { bytes }, b"", out);
                }
                reply::OK
            };
            if !noreply {
                out.buf.extend_from_slice(line);
            }
        }
        Request::Stats(kind) => stats(core, kind, out, &mut on),
        Request::MetaDump { classes } => {
            if !dump::crawler_enabled() {
                out.buf.extend_from_slice(b"CLIENT_ERROR lru crawler disabled\r\n");
            } else {
                if classes & (1 << dump::CLASS) != 0 {
                    for owner in 0..cores {
                        on(owner, OpKind::MetaDump, b"", out);
                    }
                }
                out.buf.extend_from_slice(reply::END);
            }
        }
        Request::LruCrawler { enable } => out.buf.extend_from_slice(dump::set_crawler(enable)),
        Request::CacheDump { class, limit } => {
            if class == dump::CLASS {
                // Split the limit and memcached's 2 MB cap over the cores.
                let n = cores as u32;
                let max_bytes = (dump::CACHEDUMP_MAX_BYTES / cores) as u32;
                for owner in 0..cores {
                    let share = limit / n + u32::from((owner as u32) < limit % n);
                    if limit == 0 || share > 0 {
                        on(owner, OpKind::CacheDump { limit: share, max_bytes }, b"", out);
                    }
                }
            }
            out.buf.extend_from_slice(reply::END);
        }
        Request::Version => {
            out.buf.extend_from_slice(b"VERSION ");
            out.buf.extend_from_slice(MEMCACHED_VERSION.as_bytes());
            out.buf.extend_from_slice(b"\r\n");
        }
        Request::Verbosity { noreply } => {
            if !noreply {
                out.buf.extend_from_slice(reply::OK);
            }
        }
        Request::Quit => return Next::Close,
        Request::Shutdown { graceful: _, valid } => {
            if !core.shared.config.enable_shutdown {
                out.buf.extend_from_slice(reply::SHUTDOWN_DISABLED);
            } else if !valid {
                out.buf.extend_from_slice(b"CLIENT_ERROR invalid shutdown mode\r\n");
            } else {
                super::request_shutdown(&core.shared);
                return Next::Close;
            }
        }
        Request::Reply(line) => out.buf.extend_from_slice(line),
    }
    Next::Continue
}

fn stats(core: &Core, kind: StatsKind, out: &mut Output, on: &mut impl FnMut(usize, OpKind, &[u8], &mut Output)) {
    let shared = &core.shared;
    match kind {
        StatsKind::General => {
            let facts: ProcessFacts = process_facts(shared);
            write_general(&mut out.buf, &facts, &shared.stats);
        }
        StatsKind::Settings => settings::write_settings(&mut out.buf, &shared.config),
        StatsKind::Shards => write_shards(&mut out.buf, &shared.stats),
        StatsKind::Items => settings::write_items(&mut out.buf, &shared.stats, core.now()),
        StatsKind::Slabs => {
            let page_size = core.shard.borrow().segment_size() as u64;
            settings::write_slabs(&mut out.buf, &shared.stats, page_size)
        }
        StatsKind::Sizes => out.buf.extend_from_slice(b"STAT sizes_status disabled\r\n"),
        StatsKind::Conns => {
            for owner in 0..shared.config.threads {
                on(owner, OpKind::ListConns, b"", out);
            }
        }
        StatsKind::Reset => {
            for owner in 0..shared.config.threads {
                on(owner, OpKind::ResetStats, b"", out);
            }
            out.buf.extend_from_slice(reply::RESET);
            return;
        }
    }
    out.buf.extend_from_slice(reply::END);
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
