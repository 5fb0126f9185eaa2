//! Reply parser and checker. Replies are parsed incrementally from the connection's read
//! buffer, one element (line, or VALUE block) at a time, and each is checked against the
//! request it answers: right key, in order, with the flags and bytes mcbench stored.
//! Anything else is an error, counted and reported, never timed as a success.

use crate::workload::{value_flags, OpKind, Pattern};
use memchr::memchr;
use std::ops::Range;

/// Longest reply line accepted while waiting for its end.
const MAX_LINE: usize = 4096;
/// Longest value accepted (memcached's largest item is 1 GiB with -I; far beyond ours).
const MAX_VALUE_BYTES: usize = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrKind {
    /// A line that is no reply to this request: the stream cannot be trusted after it.
    UnexpectedReply,
    /// VALUE for a key that was not asked for, or out of order.
    WrongKey,
    /// A data block not followed by \r\n: the length is wrong.
    BadLength,
    /// Flags that do not match the key and length mcbench stores.
    BadFlags,
    /// Value bytes that differ from what mcbench stores.
    BadData,
    Error,
    ClientError,
    ServerError,
    /// NOT_STORED, EXISTS or NOT_FOUND to a set.
    NotStored,
    /// Connection closed or failed with requests in flight.
    Closed,
    /// No reply before the drain deadline at the end of the run.
    Timeout,
}

impl ErrKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrKind::UnexpectedReply => "unexpected_reply",
            ErrKind::WrongKey => "wrong_key",
            ErrKind::BadLength => "bad_length",
            ErrKind::BadFlags => "bad_flags",
            ErrKind::BadData => "bad_data",
            ErrKind::Error => "error",
            ErrKind::ClientError => "client_error",
            ErrKind::ServerError => "server_error",
            ErrKind::NotStored => "not_stored",
            ErrKind::Closed => "closed",
            ErrKind::Timeout => "timeout",
        }
    }
}

/// Where the reply to one request stands between reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Index of the next requested key a VALUE may be for (earlier ones were misses).
    pub cursor: usize,
    pub hits: u32,
    pub err: Option<ErrKind>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The reply is not complete in the buffer; what was consumed is recorded.
    NeedMore,
    /// The reply is complete. `err` is set when it was well framed but wrong.
    Done {
        hits: u32,
        misses: u32,
        err: Option<ErrKind>,
    },
    /// The stream is out of step: the connection must be dropped.
    Fatal(ErrKind),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the buffer used up (complete elements only).
    pub consumed: usize,
    pub parsed: Parsed,
    /// The offending line, for the error samples in the report.
    pub sample: Option<Range<usize>>,
}

pub struct Checker<'p> {
    pub prefix: &'p [u8],
    pub pattern: &'p Pattern,
    /// Replies to meta requests (`HD`, `EN`, `VA`, `MN`; see `conn::write_meta_request`).
    pub meta: bool,
    /// Replies in the binary protocol (see `conn::write_binary_request`).
    pub binary: bool,
}

fn is_key(token: &[u8], prefix: &[u8], idx: u32) -> bool {
    let mut b = itoa::Buffer::new();
    let digits = b.format(idx).as_bytes();
    token.len() == prefix.len() + digits.len()
        && token.starts_with(prefix)
        && &token[prefix.len()..] == digits
}

fn parse_u64(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 19 {
        return None;
    }
    t.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

fn error_kind(line: &[u8]) -> Option<ErrKind> {
    if line == b"ERROR" || line.starts_with(b"ERROR ") {
        Some(ErrKind::Error)
    } else if line.starts_with(b"CLIENT_ERROR") {
        Some(ErrKind::ClientError)
    } else if line.starts_with(b"SERVER_ERROR") {
        Some(ErrKind::ServerError)
    } else {
        None
    }
}

impl Checker<'_> {
    /// Parses what `buf` holds of the reply to a request of `kind` for `keys`.
    pub fn parse(&self, buf: &[u8], kind: OpKind, keys: &[u32], prog: &mut Progress) -> Step {
        if self.binary {
            return self.parse_binary(buf, kind, keys, prog);
        }
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            let Some(nl) = memchr(b'\n', rest) else {
                let parsed = if rest.len() > MAX_LINE {
                    Parsed::Fatal(ErrKind::UnexpectedReply)
                } else {
                    Parsed::NeedMore
                };
                let sample = matches!(parsed, Parsed::Fatal(_)).then(|| pos..pos + 80);
                return Step {
                    consumed: pos,
                    parsed,
                    sample,
                };
            };
            let line_range = pos..pos + nl.saturating_sub(1);
            if nl == 0 || rest[nl - 1] != b'\r' {
                return self.fatal(pos, pos..pos + nl, ErrKind::UnexpectedReply);
            }
            let line = &rest[..nl - 1];
            let after = pos + nl + 1;
            if let Some(e) = error_kind(line) {
                let done = Parsed::Done {
                    hits: prog.hits,
                    misses: 0,
                    err: Some(e),
                };
                return Step {
                    consumed: after,
                    parsed: done,
                    sample: Some(line_range),
                };
            }
            if self.meta {
                match self.meta_element(buf, pos, line, after, kind, keys, prog) {
                    MetaStep::Next(next) => {
                        pos = next;
                        continue;
                    }
                    MetaStep::Return(step) => return step,
                }
            }
            match kind {
                OpKind::Set => {
                    let err = match line {
                        b"STORED" => None,
                        b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" => Some(ErrKind::NotStored),
                        _ => return self.fatal(pos, line_range, ErrKind::UnexpectedReply),
                    };
                    let done = Parsed::Done {
                        hits: 0,
                        misses: 0,
                        err,
                    };
                    return Step {
                        consumed: after,
                        parsed: done,
                        sample: err.map(|_| line_range),
                    };
                }
                OpKind::Get if line == b"END" => {
                    let misses = keys.len() as u32 - prog.hits.min(keys.len() as u32);
                    let done = Parsed::Done {
                        hits: prog.hits,
                        misses,
                        err: prog.err,
                    };
                    return Step {
                        consumed: after,
                        parsed: done,
                        sample: None,
                    };
                }
                OpKind::Get => {
                    let Some(header) = line.strip_prefix(b"VALUE ") else {
                        return self.fatal(pos, line_range, ErrKind::UnexpectedReply);
                    };
                    let mut t = header.split(|&c| c == b' ');
                    let (key, flags, bytes) = (t.next(), t.next(), t.next());
                    let cas_ok =
                        t.next().is_none_or(|c| parse_u64(c).is_some()) && t.next().is_none();
                    let (Some(key), Some(flags), Some(bytes), true) = (
                        key,
                        flags.and_then(parse_u64),
                        bytes.and_then(parse_u64),
                        cas_ok,
                    ) else {
                        return self.fatal(pos, line_range, ErrKind::UnexpectedReply);
                    };
                    let bytes = bytes as usize;
                    if bytes > MAX_VALUE_BYTES {
                        return self.fatal(pos, line_range, ErrKind::BadLength);
                    }
                    let data_end = after + bytes;
                    if buf.len() < data_end + 2 {
                        return Step {
                            consumed: pos,
                            parsed: Parsed::NeedMore,
                            sample: None,
                        };
                    }
                    if &buf[data_end..data_end + 2] != b"\r\n" {
                        return self.fatal(pos, line_range, ErrKind::BadLength);
                    }
                    let idx = self.take_key(prog, keys, key);
                    self.check_value(prog, idx, flags, &buf[after..data_end]);
                    pos = data_end + 2;
                }
            }
        }
    }

    /// Binary replies: a Get's one response (status 0 a hit, 1 a miss); a multi-get's
    /// GetKQ hits (misses send nothing) ended by the Noop's response; a Set's response.
    fn parse_binary(&self, buf: &[u8], kind: OpKind, keys: &[u32], prog: &mut Progress) -> Step {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            if rest.len() < 24 {
                return Step { consumed: pos, parsed: Parsed::NeedMore, sample: None };
            }
            if rest[0] != 0x81 {
                return self.fatal(pos, pos..pos + 24, ErrKind::UnexpectedReply);
            }
            let (opcode, key_len, extras_len) = (rest[1], u16::from_be_bytes([rest[2], rest[3]]) as usize, rest[4] as usize);
            let status = u16::from_be_bytes([rest[6], rest[7]]);
            let body = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
            if body > MAX_VALUE_BYTES + 300 || extras_len + key_len > body {
                return self.fatal(pos, pos..pos + 24, ErrKind::BadLength);
            }
            if rest.len() < 24 + body {
                return Step { consumed: pos, parsed: Parsed::NeedMore, sample: None };
            }
            let after = pos + 24 + body;
            let done = |hits, misses, err| Step { consumed: after, parsed: Parsed::Done { hits, misses, err }, sample: None };
            match (kind, opcode) {
                (OpKind::Set, 0x01) => {
                    return done(0, 0, (status != 0).then_some(ErrKind::NotStored));
                }
                (OpKind::Get, 0x0a) => {
                    let misses = keys.len() as u32 - prog.hits.min(keys.len() as u32);
                    return done(prog.hits, misses, prog.err);
                }
                (OpKind::Get, 0x00 | 0x0d) if status == 1 && opcode == 0x00 => return done(0, 1, None),
                (OpKind::Get, 0x00 | 0x0d) if status == 0 && extras_len == 4 => {
                    let flags = u32::from_be_bytes([rest[24], rest[25], rest[26], rest[27]]);
                    let key = &rest[28..28 + key_len];
                    let value = &rest[28 + key_len..24 + body];
                    let idx = if opcode == 0x00 { keys.first().copied() } else { self.take_key(prog, keys, key) };
                    self.check_value(prog, idx, u64::from(flags), value);
                    if opcode == 0x00 {
                        return done(prog.hits, 0, prog.err);
                    }
                    pos = after;
                }
                _ if status != 0 => return Step { consumed: after, parsed: Parsed::Done { hits: prog.hits, misses: 0, err: Some(ErrKind::ServerError) }, sample: Some(pos..pos + 24) },
                _ => return self.fatal(pos, pos..pos + 24, ErrKind::UnexpectedReply),
            }
        }
    }

    /// One element of a meta reply: a status line, or a `VA` header and its data block.
    #[allow(clippy::too_many_arguments)]
    fn meta_element(
        &self,
        buf: &[u8],
        pos: usize,
        line: &[u8],
        after: usize,
        kind: OpKind,
        keys: &[u32],
        prog: &mut Progress,
    ) -> MetaStep {
        let line_range = pos..pos + line.len();
        let done = |hits: u32, misses: u32, err: Option<ErrKind>, sample: Option<Range<usize>>| {
            MetaStep::Return(Step {
                consumed: after,
                parsed: Parsed::Done { hits, misses, err },
                sample,
            })
        };
        let multi = keys.len() > 1;
        match (kind, line) {
            (OpKind::Set, b"HD") => return done(0, 0, None, None),
            (OpKind::Set, b"NS" | b"EX" | b"NF") => {
                return done(0, 0, Some(ErrKind::NotStored), Some(line_range))
            }
            (OpKind::Get, b"EN") if !multi => return done(0, 1, None, None),
            (OpKind::Get, b"MN") if multi => {
                let misses = keys.len() as u32 - prog.hits.min(keys.len() as u32);
                return done(prog.hits, misses, prog.err, None);
            }
            _ => {}
        }
        let header = match (kind, line.strip_prefix(b"VA ")) {
            (OpKind::Get, Some(header)) => header,
            _ => return MetaStep::Return(self.fatal(pos, line_range, ErrKind::UnexpectedReply)),
        };
        let mut t = header.split(|&c| c == b' ');
        let bytes = t.next().and_then(parse_u64);
        let (mut flags, mut key) = (None, None);
        for token in t {
            match token.split_first() {
                Some((b'f', v)) => flags = parse_u64(v),
                Some((b'k', v)) => key = Some(v),
                _ => {}
            }
        }
        let (Some(bytes), Some(flags)) = (bytes, flags) else {
            return MetaStep::Return(self.fatal(pos, line_range, ErrKind::UnexpectedReply));
        };
        let bytes = bytes as usize;
        if bytes > MAX_VALUE_BYTES {
            return MetaStep::Return(self.fatal(pos, line_range, ErrKind::BadLength));
        }
        let data_end = after + bytes;
        if buf.len() < data_end + 2 {
            return MetaStep::Return(Step { consumed: pos, parsed: Parsed::NeedMore, sample: None });
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return MetaStep::Return(self.fatal(pos, line_range, ErrKind::BadLength));
        }
        // A multi-get's values name their key (k); a single get's is the one asked for.
        let idx = match key {
            Some(key) => self.take_key(prog, keys, key),
            None if !multi && prog.cursor == 0 => {
                prog.cursor = 1;
                Some(keys[0])
            }
            None => None,
        };
        self.check_value(prog, idx, flags, &buf[after..data_end]);
        if multi {
            MetaStep::Next(data_end + 2)
        } else {
            MetaStep::Return(Step {
                consumed: data_end + 2,
                parsed: Parsed::Done { hits: prog.hits, misses: 0, err: prog.err },
                sample: None,
            })
        }
    }

    /// The index of the key `key` names among those not yet answered (replies come in
    /// request order, misses left out); the cursor moves past it.
    fn take_key(&self, prog: &mut Progress, keys: &[u32], key: &[u8]) -> Option<u32> {
        let j = keys[prog.cursor.min(keys.len())..].iter().position(|&k| is_key(key, self.prefix, k))?;
        let idx = keys[prog.cursor + j];
        prog.cursor += j + 1;
        Some(idx)
    }

    /// One value received, in any protocol: for key `idx` (None: not a key asked for,
    /// or out of order) it must carry the flags and bytes the preload wrote.
    fn check_value(&self, prog: &mut Progress, idx: Option<u32>, flags: u64, value: &[u8]) {
        let Some(idx) = idx else {
            prog.err = prog.err.or(Some(ErrKind::WrongKey));
            return;
        };
        prog.hits += 1;
        let len = value.len() as u32;
        if flags != u64::from(value_flags(idx, len)) {
            prog.err = prog.err.or(Some(ErrKind::BadFlags));
        } else if self.pattern.value(idx, len) != Some(value) {
            prog.err = prog.err.or(Some(ErrKind::BadData));
        }
    }

    fn fatal(&self, pos: usize, sample: Range<usize>, e: ErrKind) -> Step {
        Step {
            consumed: pos,
            parsed: Parsed::Fatal(e),
            sample: Some(sample),
        }
    }
}

/// What one meta reply element came to: go on at this offset, or this step.
enum MetaStep {
    Next(usize),
    Return(Step),
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
