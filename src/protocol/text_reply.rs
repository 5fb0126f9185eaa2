//! The text protocol's replies: every line memcached's `proto_text.c` sends, composed
//! from typed outcomes. Every function appends to the connection's output buffer.

use bytes::{BufMut, BytesMut};

use super::{Answer, AuthAnswer, Keyed, Outcome, StatSink, MEMCACHED_VERSION};

pub const STORED: &[u8] = b"STORED\r\n";
pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
pub const EXISTS: &[u8] = b"EXISTS\r\n";
pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
pub const DELETED: &[u8] = b"DELETED\r\n";
pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
pub const END: &[u8] = b"END\r\n";
pub const OK: &[u8] = b"OK\r\n";
pub const RESET: &[u8] = b"RESET\r\n";
pub const ERROR: &[u8] = b"ERROR\r\n";
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
pub const BAD_DATA_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
pub const OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
pub const ARITH_OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
pub const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
pub const INVALID_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
pub const INVALID_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
pub const SHUTDOWN_DISABLED: &[u8] = b"ERROR: shutdown not enabled\r\n";
pub const INVALID_SHUTDOWN_MODE: &[u8] = b"CLIENT_ERROR invalid shutdown mode\r\n";
pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";
pub const FLUSH_NOT_ALLOWED: &[u8] = b"CLIENT_ERROR flush_all not allowed\r\n";
pub const MEMLIMIT_TOO_SMALL: &[u8] = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n";
pub const MEMLIMIT_ADJUST_FAILED: &[u8] = b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n";
pub const CRAWLER_DISABLED: &[u8] = b"CLIENT_ERROR lru crawler disabled\r\n";
pub const CRAWLER_START_FAILED: &[u8] = b"ERROR failed to start lru crawler thread\r\n";
pub const SIZES_DISABLED: &[u8] = b"STAT sizes_status disabled\r\n";
/// What a request forwarded to a core that has stopped gets instead of its reply.
pub const SHUTTING_DOWN: &[u8] = b"SERVER_ERROR shutting down\r\n";

/// The reply to one keyed request: nothing for a get's miss (the multi-get's `END`
/// follows) or when `noreply` silences it.
#[inline]
pub fn outcome(request: &Keyed, noreply: bool, cas: bool, outcome: &Outcome, out: &mut BytesMut) {
    let line: &[u8] = match *outcome {
        Outcome::Hit(item) => {
            value(out, request.key, item.flags, item.value, cas.then_some(item.cas));
            return;
        }
        Outcome::Miss => return,
        // Meta outcomes are written by meta_reply; a text request never gets one.
        Outcome::MetaHit(_) | Outcome::MetaStatus { .. } | Outcome::MetaNumber(_) | Outcome::MetaDebug(_) => return,
        _ if noreply => return,
        Outcome::Number(n) | Outcome::NumberCas(n, _) => return number_line(out, n),
        Outcome::Stored | Outcome::StoredCas(_) => STORED,
        Outcome::NotStored => NOT_STORED,
        Outcome::Exists => EXISTS,
        Outcome::NotFound => NOT_FOUND,
        Outcome::Deleted => DELETED,
        Outcome::Touched => TOUCHED,
        Outcome::NonNumeric => NON_NUMERIC,
        Outcome::TooLarge => TOO_LARGE,
        Outcome::StoreNoMemory => OUT_OF_MEMORY,
        Outcome::ArithNoMemory => ARITH_OUT_OF_MEMORY,
    };
    out.extend_from_slice(line);
}

/// `VALUE <key> <flags> <bytes>[ <cas unique>]\r\n<data>\r\n`
pub fn value(out: &mut BytesMut, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    out.reserve(key.len() + data.len() + 64);
    out.put_slice(b"VALUE ");
    out.put_slice(key);
    out.put_u8(b' ');
    number(out, flags as u64);
    out.put_u8(b' ');
    number(out, data.len() as u64);
    if let Some(cas) = cas {
        out.put_u8(b' ');
        number(out, cas);
    }
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// A decimal number, without a line end.
pub fn number(out: &mut BytesMut, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(n).as_bytes());
}

/// A number on a line of its own: the reply to incr/decr.
pub fn number_line(out: &mut BytesMut, n: u64) {
    number(out, n);
    out.put_slice(b"\r\n");
}

/// A server-wide command's answer; nothing when `noreply` silences it (memcached's
/// `out_string`: it silences every line, errors too).
pub fn answer(noreply: bool, answer: Answer, out: &mut BytesMut) {
    if noreply {
        return;
    }
    let line: &[u8] = match answer {
        Answer::Ok => OK,
        Answer::Reset => RESET,
        Answer::End => END,
        Answer::Version => {
            out.put_slice(b"VERSION ");
            out.put_slice(MEMCACHED_VERSION.as_bytes());
            out.put_slice(b"\r\n");
            return;
        }
        Answer::FlushNotAllowed => FLUSH_NOT_ALLOWED,
        Answer::MemlimitTooSmall => MEMLIMIT_TOO_SMALL,
        Answer::MemlimitAdjustFailed => MEMLIMIT_ADJUST_FAILED,
        Answer::ShutdownDisabled => SHUTDOWN_DISABLED,
        Answer::InvalidShutdownMode => INVALID_SHUTDOWN_MODE,
        Answer::CrawlerDisabled => CRAWLER_DISABLED,
        Answer::CrawlerStartFailed => CRAWLER_START_FAILED,
        Answer::SizesDisabled => SIZES_DISABLED,
        Answer::Error => ERROR,
        Answer::SlabReassignDisabled => b"CLIENT_ERROR slab reassignment disabled\r\n",
        Answer::SlabsBadClass => b"BADCLASS invalid src or dst class id\r\n",
        Answer::SlabsSameClass => b"SAME src and dst class are identical\r\n",
        Answer::BadCrawlerClass => b"BADCLASS invalid class id\r\n",
        Answer::WatchDisabled => super::watch_lines::WATCH_DISABLED,
        Answer::WatchTooMany => super::watch_lines::WATCH_TOO_MANY,
        Answer::Closing => return,
        // Binary-only errors: the text parser never asks for them.
        Answer::UnknownCommand | Answer::InvalidArguments | Answer::AuthError | Answer::NotFound | Answer::OutOfMemory => {
            ERROR
        }
    };
    out.put_slice(line);
}

/// What `-Y`'s handshake answers while the connection is not authenticated.
pub const UNAUTHENTICATED: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";

/// The reply to `-Y`'s `set` handshake.
pub fn auth(answer: AuthAnswer, out: &mut BytesMut) {
    let line: &[u8] = match answer {
        AuthAnswer::Ok => STORED,
        AuthAnswer::Failed => b"CLIENT_ERROR authentication failure\r\n",
        AuthAnswer::BadFormat => b"CLIENT_ERROR bad authentication token format\r\n",
        AuthAnswer::BadTermination => b"CLIENT_ERROR bad command line termination\r\n",
        // SASL is binary-only.
        AuthAnswer::Mechs(_) | AuthAnswer::Continue(_) => return,
    };
    out.put_slice(line);
}

/// `STAT <name> <value>` lines: the text protocol's [`StatSink`].
pub struct StatLines<'a>(pub &'a mut BytesMut);

impl StatSink for StatLines<'_> {
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display) {
        use std::fmt::Write;
        // Writing into a BytesMut cannot fail.
        let _ = write!(self.0, "STAT {name} {value}\r\n");
    }
}

/// memcached's `uriencode`: letters, digits and `-._~` as they are, the rest `%XX`.
fn uri_encode(out: &mut BytesMut, key: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.put_u8(b);
        } else {
            out.put_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// What one `lru_crawler metadump` line shows of an item.
pub struct MetaDumpItem<'a> {
    pub key: &'a [u8],
    /// Unix time it expires; -1: never.
    pub exp: i64,
    /// Unix time of its last access.
    pub la: i64,
    pub cas: u64,
    pub fetched: bool,
    pub class: u32,
    pub size: usize,
}

/// One `lru_crawler metadump` line (memcached 1.6's format, `\n`-terminated).
pub fn metadump_line(out: &mut BytesMut, item: &MetaDumpItem) {
    use std::fmt::Write;
    out.put_slice(b"key=");
    uri_encode(out, item.key);
    let fetch = if item.fetched { "yes" } else { "no" };
    let (exp, la, cas, class, size) = (item.exp, item.la, item.cas, item.class, item.size);
    let _ = writeln!(out, " exp={exp} la={la} cas={cas} fetch={fetch} cls={class} size={size}");
}

/// One `stats cachedump` line: `ITEM <key> [<bytes> b; <exp> s]` (`exp` a unix time,
/// 0: never expires).
pub fn cachedump_line(out: &mut BytesMut, key: &[u8], value_len: usize, exp: i64) {
    use std::fmt::Write;
    out.put_slice(b"ITEM ");
    out.put_slice(key);
    let _ = write!(out, " [{value_len} b; {exp} s]\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Op;
    use crate::rules::StoreMode;

    #[test]
    fn value_lines_match_protocol_txt() {
        let mut out = BytesMut::new();
        value(&mut out, b"k", 5, b"hello", None);
        value(&mut out, b"k", 0, b"", Some(42));
        assert_eq!(&out[..], b"VALUE k 5 5\r\nhello\r\nVALUE k 0 0 42\r\n\r\n");
    }

    #[test]
    fn stats_lines() {
        let mut out = BytesMut::new();
        StatLines(&mut out).stat("pid", &7);
        number_line(&mut out, u64::MAX);
        assert_eq!(&out[..], b"STAT pid 7\r\n18446744073709551615\r\n");
    }

    #[test]
    fn noreply_silences_all_but_values() {
        let set = Keyed {
            key: b"k",
            value: b"v",
            op: Op::Store { mode: StoreMode::Set, flags: 0, exptime: 0, cas_unique: 0 },
            form: super::super::Form::TEXT,
        };
        let mut out = BytesMut::new();
        outcome(&set, true, false, &Outcome::Stored, &mut out);
        outcome(&set, true, false, &Outcome::Number(5), &mut out);
        assert!(out.is_empty());
        outcome(&set, false, false, &Outcome::StoreNoMemory, &mut out);
        outcome(&set, false, false, &Outcome::ArithNoMemory, &mut out);
        assert_eq!(&out[..], b"SERVER_ERROR out of memory storing object\r\nSERVER_ERROR out of memory\r\n");
    }

    #[test]
    fn uri_encoding_matches_memcached() {
        let mut out = BytesMut::new();
        uri_encode(&mut out, b"aZ09-._~ %/\xff");
        assert_eq!(&out[..], b"aZ09-._~%20%25%2F%FF");
    }

    #[test]
    fn dump_lines() {
        let mut out = BytesMut::new();
        let item = MetaDumpItem { key: b"a b", exp: -1, la: 1700000000, cas: 7, fetched: true, class: 1, size: 70 };
        metadump_line(&mut out, &item);
        cachedump_line(&mut out, b"a b", 10, 0);
        assert_eq!(
            &out[..],
            &b"key=a%20b exp=-1 la=1700000000 cas=7 fetch=yes cls=1 size=70\nITEM a b [10 b; 0 s]\r\n"[..]
        );
    }
}
