//! One client connection: framing, routing and reply order, nothing else. Read what
//! arrived, parse every complete request in it (`protocol`), run each where its key
//! lives, send the replies in request order with one write.
//!
//! Requests for keys this core owns run at once and their replies go straight into the
//! output buffer. Requests for keys another core owns are forwarded as typed requests,
//! and the position their reply belongs at is remembered (a hole); once every forwarded
//! reply of the round is back, the holes are filled in and the whole round goes out in
//! one write. Server-wide commands run in `commands::admin` through [`Here`]
//! (`connection/here.rs`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::core::Core;
use super::forward::{ConnInfo, Mailbox, Work};
use super::pacing::{self, Pacing};
use super::stream::{self, Stream};
use crate::commands::{self, auth, Flow};
use crate::config::Binding;
use crate::observe::latency::RoundTally;
use crate::protocol::{self, binary, text_auth, Form, Keyed, Op, Parsed, Request, ServerCmd};

mod here;
use here::Here;

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

pub struct Connection<S = Stream> {
    stream: S,
    core: Rc<Core>,
    id: u32,
    mailbox: Rc<Mailbox>,
    input: Input,
    output: Output,
    /// `-R` and `-o idle_timeout` (`pacing.rs`).
    pacing: Pacing,
    /// This round's requests by family, for the latency histograms (crate::observe).
    tally: RoundTally,
    /// The connection's protocol, decided by its first byte (or by `-B`).
    proto: Proto,
    /// SASL (`-S`) or `-Y` authentication state.
    auth: auth::Session,
    /// `-Y`, not yet authenticated: where this round's one reply starts. memcached
    /// builds every reply of one read in the same response object, so each overwrites
    /// the one before (only the last is sent).
    auth_reply_at: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Text,
    Binary,
}

/// A connection's protocol from its first byte, as memcached's `-B` decides it.
fn protocol_of(binding: Binding, first: u8) -> Proto {
    match binding {
        Binding::Ascii => Proto::Text,
        Binding::Binary => Proto::Binary,
        Binding::Auto if first == binary::REQUEST_MAGIC => Proto::Binary,
        Binding::Auto => Proto::Text,
    }
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
    holes: Holes,
    spliced: BytesMut,
}

/// Where this round's forwarded replies go.
struct Holes {
    /// (position in the output, mailbox slot) of each forwarded reply, in request order.
    at: Vec<(usize, u32)>,
    /// Request bytes forwarded this round (their replies not yet back).
    forwarded: usize,
    /// Holes this round may have: MAX_HOLES, fewer after large forwarded replies.
    max: usize,
}

impl Connection<Stream> {
    pub fn new(stream: Stream, core: Rc<Core>, info: ConnInfo) -> Self {
        info.last_cmd.set(core.now());
        let pacing = Pacing::new(core.shared.config.reqs_per_event);
        super::watching::conn_new(&core, &info);
        let (id, mailbox) = core.forwarder.register(info);
        Connection {
            stream,
            core,
            id,
            mailbox,
            input: Input { buf: vec![0; READ_BUFFER], start: 0, end: 0, swallow: 0, seen_bytes: false, prefetched: 0 },
            output: Output {
                buf: BytesMut::with_capacity(READ_BUFFER),
                holes: Holes { at: Vec::new(), forwarded: 0, max: MAX_HOLES },
                spliced: BytesMut::new(),
            },
            pacing,
            tally: RoundTally::default(),
            proto: Proto::Text,
            auth: auth::Session::default(),
            auth_reply_at: None,
        }
    }

    /// Serves the connection until the client leaves, an error, or shutdown.
    pub async fn serve(mut self) {
        // The last reply (before `quit`, or before the client's FIN) is still in
        // flight: closing now would cancel it. memcached too writes it first. After an
        // error, what was queued (a TLS alert) still goes out.
        let served = self.serve_inner().await;
        let _ = match served {
            Ok(()) => self.stream.finish().await,
            Err(_) => self.stream.sent().await,
        };
        super::watching::conn_close(&self.core, &self.mailbox.info, served.is_ok());
        self.core.forwarder.unregister(self.id);
    }

    async fn serve_inner(&mut self) -> std::io::Result<()> {
        let core = self.core.clone();
        loop {
            if self.input.end == self.input.buf.len() {
                self.input.make_room(0);
            }
            let room = self.input.buf.len() - self.input.end;
            let last_cmd = self.mailbox.info.last_cmd.get();
            let buf = &mut self.input.buf[self.input.end..];
            let Some(read) = pacing::read_or_idle(&mut self.stream, buf, &core, last_cmd).await else {
                return Ok(()); // idle for longer than -o idle_timeout
            };
            let read = read?;
            if read == 0 {
                return Ok(());
            }
            if !self.input.seen_bytes {
                self.proto = protocol_of(core.shared.config.binding, self.input.buf[self.input.end]);
            }
            self.input.seen_bytes = true;
            let stats = core.stats();
            stats.busy_connections.incr();
            stats.commands.bytes_read.add(read as u64);
            self.input.end += read;
            self.mailbox.info.last_cmd.set(core.tick());
            self.pacing.start_event();
            self.tally.start(core.shared.observe.latency_on);
            let next = self.run_round().await;
            let flushed = self.flush().await;
            self.tally.finish(&core.observe.latency);
            self.core.publish();
            stats.busy_connections.decr();
            flushed?;
            if next == Flow::Close {
                return Ok(());
            }
            if let Flow::Watch(kinds) = next {
                match super::watching::watch(&core, &mut self.stream, kinds).await {
                    Some(result) => return result,
                    None => continue, // too many watchers: memcached's connection carries on
                }
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
        self.stream.shutdown_write().await?;
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
        let read = async { Some(stream.recv(buf).await) };
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
    async fn run_round(&mut self) -> Flow {
        self.auth_reply_at = None;
        loop {
            let input = &mut self.input;
            if input.swallow > 0 {
                let n = input.swallow.min(input.end - input.start);
                input.swallow -= n;
                input.start += n;
                if input.swallow > 0 {
                    input.compact();
                    return Flow::Continue;
                }
            }
            let config = &self.core.shared.config;
            let ascii_auth_pending = config.ascii_auth.is_some() && !self.auth.authenticated;
            let buf = &input.buf[input.start..input.end];
            let parsed = match self.proto {
                Proto::Binary => {
                    let gate = binary::Gate { sasl: config.sasl, authenticated: self.auth.authenticated };
                    binary::parse(buf, &self.core.limits, gate)
                }
                Proto::Text if ascii_auth_pending => text_auth::parse(buf),
                Proto::Text => protocol::parse(buf, &self.core.limits),
            };
            let (request, consumed, swallow) = match parsed {
                Parsed::Incomplete { need } => {
                    input.make_room(need);
                    return Flow::Continue;
                }
                Parsed::Close => return Flow::Close,
                Parsed::Done { request, consumed } => (request, consumed, 0),
                Parsed::Swallow { request, consumed, swallow } => (request, consumed, swallow),
            };
            self.tally.note(&request);
            if ascii_auth_pending {
                let at = *self.auth_reply_at.get_or_insert(self.output.buf.len());
                self.output.buf.truncate(at);
            }
            if self.proto == Proto::Text && input.prefetched == 0 && consumed < input.end - input.start {
                // Pipelined requests behind this one: overlap their lookups' cache misses.
                input.prefetched = self.core.prefetch_requests(&input.buf[input.start..input.end]);
            } else if input.prefetched == 0 && stream::others_woken() {
                // A lone get (pipeline 1): start its misses, and let the other connections
                // that have a request start theirs, before any of them waits on one. With
                // no other connection woken, yielding would only delay this reply.
                if let Some(hash) = lone_get(&request).and_then(|key| self.core.prefetch_local_slot(key)) {
                    futures_lite::future::yield_now().await;
                    self.core.prefetch_record(hash);
                    futures_lite::future::yield_now().await;
                }
            }
            let next = match request {
                Request::Multi { keys, touch, form } => {
                    // Values can be large and a multi-get long: send as we go, so one
                    // request never holds more than about FLUSH_AT of output.
                    for key in keys {
                        let get = Keyed { key, value: b"", op: Op::Get { touch }, form };
                        route(&self.core, self.id, &self.mailbox, &mut self.output, &get);
                        if self.output.is_full()
                            && flush(&mut self.stream, &mut self.output, &self.mailbox, &self.core).await.is_err()
                        {
                            return Flow::Close;
                        }
                    }
                    protocol::encode_end(form, &mut self.output.buf);
                    Flow::Continue
                }
                Request::Keyed(request) => {
                    route(&self.core, self.id, &self.mailbox, &mut self.output, &request);
                    Flow::Continue
                }
                Request::Server { cmd, form } => {
                    if matches!(cmd, ServerCmd::Stats(_)) {
                        // Stats see every request before them: wait for the forwarded
                        // ones (their cores publish once they have run them), and
                        // publish this core's figures.
                        if !self.output.holes.at.is_empty()
                            && flush(&mut self.stream, &mut self.output, &self.mailbox, &self.core).await.is_err()
                        {
                            return Flow::Close;
                        }
                        self.core.publish();
                    }
                    let mut here = Here { core: &self.core, conn: self.id, mailbox: &self.mailbox, holes: &mut self.output.holes };
                    commands::admin::run(&mut here, cmd, form, &mut self.output.buf)
                }
                Request::Reply(line) => {
                    self.output.buf.extend_from_slice(line);
                    Flow::Continue
                }
                Request::Refused { form, answer, close } => {
                    protocol::answer(form, answer, &mut self.output.buf);
                    if close { Flow::Close } else { Flow::Continue }
                }
                Request::Auth { form, step } => {
                    let config = &self.core.shared.config;
                    let users = auth::Users { pwdb: config.sasl_pwdb.as_deref(), ascii: config.ascii_auth.as_ref() };
                    let answer = auth::run(&mut self.auth, &users, step, &self.core.stats().commands);
                    protocol::encode_auth(form, answer, &mut self.output.buf);
                    Flow::Continue
                }
            };
            self.input.start += consumed;
            self.input.prefetched = self.input.prefetched.saturating_sub(consumed);
            self.input.swallow = swallow;
            if next != Flow::Continue {
                return next;
            }
            if self.pacing.request_done(&self.core, self.input.start < self.input.end) {
                futures_lite::future::yield_now().await;
            }
            if self.output.is_full() && self.flush().await.is_err() {
                return Flow::Close;
            }
        }
    }

    /// Waits for forwarded replies, fills the holes and writes the round out.
    async fn flush(&mut self) -> std::io::Result<()> {
        flush(&mut self.stream, &mut self.output, &self.mailbox, &self.core).await
    }
}

/// Waits for forwarded replies, fills the holes and hands `out` to `stream` to send.
///
/// The send goes to the kernel with the executor's next turn and this returns at once:
/// the connection reads and runs its next round meanwhile. The next flush first waits
/// for this send to finish, so a connection holds at most one round in flight and one
/// being built (each bounded by FLUSH_AT and MAX_HOLES), however slowly its client
/// reads.
async fn flush(stream: &mut Stream, out: &mut Output, mailbox: &Mailbox, core: &Core) -> std::io::Result<()> {
    if !out.holes.at.is_empty() {
        mailbox.all_delivered().await;
        out.spliced.clear();
        let (mut at, mut replies) = (0, 0);
        for &(position, slot) in &out.holes.at {
            out.spliced.extend_from_slice(&out.buf[at..position]);
            mailbox.with_reply(slot, |reply| {
                replies += reply.len();
                out.spliced.extend_from_slice(reply)
            });
            at = position;
        }
        out.holes.max = holes_after(replies, out.holes.at.len());
        out.spliced.extend_from_slice(&out.buf[at..]);
        std::mem::swap(&mut out.buf, &mut out.spliced);
        out.holes.at.clear();
        out.holes.forwarded = 0;
        mailbox.clear();
    }
    if out.buf.is_empty() {
        return Ok(());
    }
    core.stats().commands.bytes_written.add(out.buf.len() as u64);
    stream.sent().await?;
    let round = std::mem::take(&mut out.buf);
    out.buf = match stream.start_send(round) {
        Some(mut done) => {
            done.clear();
            done
        }
        None => BytesMut::with_capacity(READ_BUFFER),
    };
    out.shrink();
    Ok(())
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
        self.buf.len() >= FLUSH_AT || self.holes.at.len() >= self.holes.max || self.holes.forwarded >= FLUSH_AT
    }
}

impl Holes {
    /// Remembers that a forwarded reply goes at `position` of the output; returns its
    /// mailbox slot.
    fn hole(&mut self, position: usize, mailbox: &Mailbox) -> u32 {
        let slot = self.at.len() as u32;
        self.at.push((position, slot));
        mailbox.expect_one();
        slot
    }
}

/// The key of a get of exactly one key (memcached clients at pipeline 1 send these).
fn lone_get<'a>(request: &Request<'a>) -> Option<&'a [u8]> {
    match request {
        Request::Multi { keys, .. } => {
            let mut keys = *keys;
            match (keys.next(), keys.next()) {
                (Some(key), None) => Some(key),
                _ => None,
            }
        }
        Request::Keyed(Keyed { key, op: Op::Get { .. } | Op::MetaGet { .. }, .. }) => Some(key),
        _ => None,
    }
}

/// Runs a keyed request where its key lives: here at once, or forwarded to its owner
/// with a hole for the reply.
#[inline]
fn route(core: &Core, conn: u32, mailbox: &Mailbox, out: &mut Output, request: &Keyed) {
    if matches!(request.form, Form::Meta(m) if m.encoded_key) {
        // A meta request's base64 key, decoded: its owner is the decoded key's.
        let mut decoded = [0u8; protocol::base64::MAX_DECODED];
        return route(core, conn, mailbox, out, &protocol::resolve_key(request, &mut decoded));
    }
    let owner = core.router.owner(request.key);
    if owner == core.id {
        core.execute_for(request, mailbox.info.fd, &mut out.buf);
    } else {
        let slot = out.holes.hole(out.buf.len(), mailbox);
        out.holes.forwarded += request.key.len() + request.value.len();
        core.stats().commands.forwarded.incr();
        core.shared.observe.forwarded_to(core.id, owner);
        let work = Work::Keyed { op: request.op, form: request.form, key_len: request.key.len() as u32, fd: mailbox.info.fd };
        core.forwarder.send(owner, conn, slot, work, |b| {
            b.extend_from_slice(request.key);
            b.extend_from_slice(request.value);
        });
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
