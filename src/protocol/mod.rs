//! The wire protocols: each parses its own framing into the protocol-neutral
//! [`Request`] and encodes the typed [`Outcome`] of running it into its own reply bytes.
//!
//! Pure functions over bytes, no I/O, so parsers can be fuzzed and unit-tested against
//! `protocol.txt` and real memcached 1.6. Requests borrow from the read buffer: parsing
//! allocates nothing. Every reply byte the server sends is written here.

pub mod base64;
pub mod binary;
pub mod binary_reply;
mod keys;
pub mod lookahead;
pub mod meta;
pub mod meta_reply;
mod request;
pub mod text;
pub mod text_auth;
pub mod text_reply;
pub mod watch_lines;

pub use keys::Keys;
pub use meta::{resolve_key, MetaDebug, MetaForm, MetaHit, MetaNumber, MetaStatus, MetaTtl};
pub use request::{AuthStep, Form, Item, Keyed, Op, Outcome, Request, ServerCmd, StatsKind};
pub use text::parse;

use bytes::BytesMut;

/// memcached closes a connection whose unfinished line grows past this without a
/// newline, unless the line is a `get`/`gets` (multi-gets may be long).
pub const MAX_LINE_WITHOUT_NEWLINE: usize = 2048;

/// Longest `get`/`gets` line we buffer before closing the connection (memcached grows
/// its buffer without a bound; we keep one per connection).
pub const MAX_GET_LINE: usize = 4 * 1024 * 1024;

/// What the parser needs to know about the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `-I`: the largest item, as memcached sizes it (header + key + value).
    pub item_size_max: usize,
}

/// The outcome of parsing the front of a read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No complete request yet. `need`: total bytes the request needs when known (a
    /// storage command waiting for its data block), so the buffer can grow once.
    Incomplete { need: usize },
    /// A request that used `consumed` bytes of the buffer.
    Done { request: Request<'a>, consumed: usize },
    /// A request that used `consumed` bytes, after which the next `swallow` bytes (a
    /// data block we refuse) are to be discarded as they arrive.
    Swallow { request: Request<'a>, consumed: usize, swallow: usize },
    /// memcached closes the connection here (an over-long line, an HTTP request).
    Close,
}

/// Writes the reply to one keyed request, in the protocol and form it asked for.
#[inline]
pub fn encode(request: &Keyed, outcome: &Outcome, out: &mut BytesMut) {
    match request.form {
        Form::Text { noreply, cas } => text_reply::outcome(request, noreply, cas, outcome, out),
        Form::Meta(ref meta) => meta_reply::outcome(request, meta, outcome, out),
        Form::Binary { .. } => binary_reply::outcome(request, outcome, out),
    }
}

/// Writes what ends a multi-key get (text: `END`).
pub fn encode_end(form: Form, out: &mut BytesMut) {
    match form {
        Form::Text { .. } | Form::Meta(_) => out.extend_from_slice(text_reply::END),
        Form::Binary { .. } => {}
    }
}

/// The memcached version we answer `version` with: the one whose replies we match.
pub const MEMCACHED_VERSION: &str = "1.6.18";

/// What a server-wide command answers (besides `stats` lines), one to one with
/// memcached's replies; each protocol writes it its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// `stats reset`.
    Reset,
    /// The end of a `stats` listing or a dump.
    End,
    Version,
    FlushNotAllowed,
    MemlimitTooSmall,
    MemlimitAdjustFailed,
    ShutdownDisabled,
    InvalidShutdownMode,
    CrawlerDisabled,
    CrawlerStartFailed,
    /// `stats sizes` with size tracking off (always, here).
    SizesDisabled,
    /// The bare `ERROR` of a command memcached refuses (`slabs automove 3`).
    Error,
    SlabReassignDisabled,
    SlabsBadClass,
    SlabsSameClass,
    BadCrawlerClass,
    /// `watch` with `-W`.
    WatchDisabled,
    /// `watch` past memcached's 20 watchers.
    WatchTooMany,
    /// The connection closes after this (quit): nothing in text, an empty success in
    /// binary (unless quiet).
    Closing,
    /// Binary errors the parser decides (text never sends these).
    UnknownCommand,
    InvalidArguments,
    /// Binary status 0x20: refused before authentication (and flush under `-F`).
    AuthError,
    NotFound,
    OutOfMemory,
}

/// What an authentication step came to, one to one with memcached's replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthAnswer<'a> {
    /// SASL List Mechanisms: the names, space-separated.
    Mechs(&'a str),
    /// Authenticated (binary "Authenticated", text `STORED`).
    Ok,
    /// Go on with a Step: the server's challenge.
    Continue(&'a [u8]),
    /// Wrong user or password, or a step out of order.
    Failed,
    /// `-Y`: fewer than two tokens in the payload.
    BadFormat,
    /// `-Y`: the payload did not end in `\r\n`.
    BadTermination,
}

/// Writes an authentication step's reply in the request's protocol.
pub fn encode_auth(form: Form, answer: AuthAnswer, out: &mut BytesMut) {
    match form {
        Form::Text { .. } | Form::Meta(_) => text_reply::auth(answer, out),
        Form::Binary { .. } => binary_reply::auth(form, answer, out),
    }
}

/// Writes a server-wide command's answer in the request's protocol and form.
pub fn answer(form: Form, answer: Answer, out: &mut BytesMut) {
    match form {
        Form::Text { noreply, .. } => text_reply::answer(noreply, answer, out),
        Form::Meta(_) => text_reply::answer(false, answer, out),
        Form::Binary { .. } => binary_reply::answer(form, answer, out),
    }
}

/// A server-made error message line (`refresh_certs`'s), written whatever `noreply`
/// says, as memcached's `write_and_free` does.
pub fn error_message(form: Form, message: &str, out: &mut BytesMut) {
    match form {
        Form::Text { .. } | Form::Meta(_) => text_reply::message_line(message, out),
        // The binary protocol has no refresh_certs command.
        Form::Binary { .. } => {}
    }
}

/// Where `stats`-style name/value pairs go: each protocol writes them its own way
/// (text: `STAT <name> <value>` lines).
pub trait StatSink {
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display);
}

/// The stat writer of the request's protocol.
pub fn stat_sink(form: Form, out: &mut BytesMut) -> Stats<'_> {
    match form {
        Form::Text { .. } | Form::Meta(_) => Stats::Text(text_reply::StatLines(out)),
        Form::Binary { opaque, .. } => Stats::Binary(binary_reply::StatPackets { out, opaque }),
    }
}

/// The stat writer of one protocol.
pub enum Stats<'a> {
    Text(text_reply::StatLines<'a>),
    Binary(binary_reply::StatPackets<'a>),
}

impl StatSink for Stats<'_> {
    #[inline]
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display) {
        match self {
            Stats::Text(s) => s.stat(name, value),
            Stats::Binary(s) => s.stat(name, value),
        }
    }
}
