//! memcached's binary protocol, parsed as memcached 1.6.18's `proto_bin.c` does it
//! (`try_read_command_binary`, `dispatch_bin_command`): a 24-byte header, then extras,
//! key and value. The same checks in the same order, so bad input gets memcached's
//! status and closes the connection where memcached's does:
//!
//! 1. a wrong magic byte closes without a reply;
//! 2. header, extras and key must fit memcached's 16 KB read buffer, else close;
//! 3. extras + key over the body length: "Unknown command", close;
//! 4. under `-S`, before authentication, anything but the SASL opcodes and Version:
//!    "Auth failure.", close;
//! 5. a key over 250 bytes, or lengths an opcode does not take: "Invalid arguments",
//!    close;
//! 6. an unknown opcode: "Unknown command", and `body length` bytes after the extras
//!    and key are swallowed (memcached's own off-by-extras-and-key), connection open.
//!
//! A value (set, append, SASL data) is buffered only once it is known to fit `-I`;
//! a larger one is refused at once and swallowed as it arrives, never buffered.

use super::{Answer, AuthStep, Form, Keyed, Limits, Op, Parsed, Request, ServerCmd, StatsKind};
use crate::rules::{item_size_ok, StoreMode, KEY_MAX_LENGTH};

/// First byte of a binary-protocol request: memcached picks a connection's protocol by
/// its first byte.
pub const REQUEST_MAGIC: u8 = 0x80;
pub const HEADER_LEN: usize = 24;

/// memcached's read buffer: a request whose header, extras and key do not fit in it
/// closes the connection (`key_over_read_buffer`).
pub const READ_BUFFER_SIZE: usize = 16 * 1024;

/// memcached's `MAX_SASL_MECH_LEN`.
pub const MAX_SASL_MECH_LEN: usize = 32;

/// SASL data is read into one unchunked item: at most memcached's default
/// `slab_chunk_max` (half of a 1 MB page).
const MAX_SASL_ITEM: usize = 512 * 1024;

/// Opcodes (protocol_binary.h).
pub mod op {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// What the parser needs to know about the connection's authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    /// The server runs with `-S`.
    pub sasl: bool,
    /// This connection has authenticated.
    pub authenticated: bool,
}

/// The request's fixed header, in host order.
#[derive(Clone, Copy, Debug)]
struct Header {
    opcode: u8,
    key_len: usize,
    extras_len: usize,
    body_len: usize,
    opaque: u32,
    cas: u64,
}

fn header(b: &[u8]) -> Header {
    let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Header {
        opcode: b[1],
        key_len: be16(2) as usize,
        extras_len: b[4] as usize,
        body_len: be32(8) as usize,
        opaque: be32(12),
        cas: u64::from_be_bytes(b[16..24].try_into().unwrap_or([0; 8])),
    }
}

/// The opcode without its quiet bit: (base opcode, quiet).
fn unquiet(opcode: u8) -> (u8, bool) {
    use op::*;
    let base = match opcode {
        SETQ => SET,
        ADDQ => ADD,
        REPLACEQ => REPLACE,
        DELETEQ => DELETE,
        INCREMENTQ => INCREMENT,
        DECREMENTQ => DECREMENT,
        QUITQ => QUIT,
        FLUSHQ => FLUSH,
        APPENDQ => APPEND,
        PREPENDQ => PREPEND,
        GETQ => GET,
        GETKQ => GETK,
        GATQ => GAT,
        GATKQ => GATK,
        _ => return (opcode, false),
    };
    (base, true)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8]))
}

/// Parses the request at the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits, gate: Gate) -> Parsed<'a> {
    if buf.len() < HEADER_LEN {
        return Parsed::Incomplete { need: HEADER_LEN };
    }
    if buf[0] != REQUEST_MAGIC {
        return Parsed::Close;
    }
    let h = header(buf);
    let head = HEADER_LEN + h.extras_len + h.key_len;
    if head > READ_BUFFER_SIZE {
        return Parsed::Close;
    }
    if buf.len() < head {
        return Parsed::Incomplete { need: head };
    }
    let form = Form::Binary { opcode: h.opcode, opaque: h.opaque, quiet: unquiet(h.opcode).1 };
    let refuse = |answer: Answer, close: bool| Parsed::Done { request: Request::Refused { form, answer, close }, consumed: head };
    if h.key_len > h.body_len || h.key_len + h.extras_len > h.body_len {
        return refuse(Answer::UnknownCommand, true);
    }
    if gate.sasl
        && !gate.authenticated
        && !matches!(h.opcode, op::SASL_LIST_MECHS | op::SASL_AUTH | op::SASL_STEP | op::VERSION)
    {
        return refuse(Answer::AuthError, true);
    }
    if h.key_len > KEY_MAX_LENGTH {
        return refuse(Answer::InvalidArguments, true);
    }
    let extras = &buf[HEADER_LEN..HEADER_LEN + h.extras_len];
    let key = &buf[HEADER_LEN + h.extras_len..head];
    let value_len = h.body_len - h.extras_len - h.key_len;
    let (ext, klen, body) = (h.extras_len, h.key_len, h.body_len);
    let protocol_error = || refuse(Answer::InvalidArguments, true);
    let now = |request: Request<'a>| Parsed::Done { request, consumed: head };
    let server = |cmd: ServerCmd| Parsed::Done { request: Request::Server { cmd, form }, consumed: head };
    let keyed = |op: Op, value: &'a [u8]| Request::Keyed(Keyed { key, value, op, form });
    // A request with a value: refused at once if the value cannot be stored (then
    // swallowed as it arrives), else complete once the whole body is here.
    let with_value = |mode: StoreMode, op: Op| -> Parsed<'a> {
        if !item_size_ok(klen, value_len, limits.item_size_max) {
            return Parsed::Swallow { request: keyed(Op::TooLarge { mode }, b""), consumed: head, swallow: value_len };
        }
        let total = HEADER_LEN + body;
        if buf.len() < total {
            return Parsed::Incomplete { need: total };
        }
        Parsed::Done { request: keyed(op, &buf[head..total]), consumed: total }
    };
    let (base, _) = unquiet(h.opcode);
    match base {
        op::VERSION if ext == 0 && klen == 0 && body == 0 => server(ServerCmd::Version),
        op::NOOP if ext == 0 && klen == 0 && body == 0 => server(ServerCmd::Noop),
        op::QUIT if ext == 0 && klen == 0 && body == 0 => server(ServerCmd::Quit),
        op::FLUSH if klen == 0 && body == ext && (ext == 0 || ext == 4) => {
            let delay = if ext == 4 { be32(extras) as i64 } else { 0 };
            server(ServerCmd::FlushAll { delay })
        }
        op::SET | op::ADD | op::REPLACE if ext == 8 && klen != 0 && body >= klen + 8 => {
            let mode = match base {
                _ if h.cas != 0 => StoreMode::Cas,
                op::SET => StoreMode::Set,
                op::ADD => StoreMode::Add,
                _ => StoreMode::Replace,
            };
            let (flags, exptime) = (be32(extras), be32(&extras[4..]) as i64);
            with_value(mode, Op::Store { mode, flags, exptime, cas_unique: h.cas })
        }
        op::APPEND | op::PREPEND if klen > 0 && ext == 0 => {
            let mode = if base == op::APPEND { StoreMode::Append } else { StoreMode::Prepend };
            with_value(mode, Op::Store { mode, flags: 0, exptime: 0, cas_unique: h.cas })
        }
        op::GET | op::GETK if ext == 0 && body == klen && klen > 0 => now(keyed(Op::Get { touch: None }, b"")),
        op::DELETE if klen > 0 && ext == 0 && body == klen => now(keyed(Op::DeleteIf { cas: h.cas }, b"")),
        op::INCREMENT | op::DECREMENT if klen > 0 && ext == 20 && body == klen + ext => {
            let (delta, initial, exptime) = (be64(extras), be64(&extras[8..]), be32(&extras[16..]));
            let create = (exptime != u32::MAX).then_some((initial, exptime as i64));
            now(keyed(Op::Counter { incr: base == op::INCREMENT, delta, create, cas: h.cas }, b""))
        }
        // Touch, GAT and Stat do not check the body length: bytes past the key are the
        // next request, as in memcached.
        op::TOUCH | op::GAT | op::GATK if ext == 4 && klen != 0 => {
            now(keyed(Op::TouchFetch { exptime: be32(extras) as i64 }, b""))
        }
        op::STAT if ext == 0 => match stat_group(key) {
            Ok(kind) => server(ServerCmd::Stats(kind)),
            Err(answer) => refuse(answer, false),
        },
        op::SASL_LIST_MECHS | op::SASL_AUTH | op::SASL_STEP if !gate.sasl => {
            // memcached swallows the body after the key (not after the extras).
            Parsed::Swallow {
                request: Request::Refused { form, answer: Answer::UnknownCommand, close: false },
                consumed: head,
                swallow: body - klen,
            }
        }
        op::SASL_LIST_MECHS if ext == 0 && klen == 0 && body == 0 => {
            now(Request::Auth { form, step: AuthStep::ListMechs })
        }
        op::SASL_AUTH | op::SASL_STEP if ext == 0 && klen != 0 => {
            let refuse_data = |answer: Answer| Parsed::Swallow {
                request: Request::Refused { form, answer, close: false },
                consumed: head,
                swallow: value_len,
            };
            if klen > MAX_SASL_MECH_LEN {
                return refuse_data(Answer::InvalidArguments);
            }
            if !item_size_ok(klen, value_len, limits.item_size_max.min(MAX_SASL_ITEM)) {
                return refuse_data(Answer::OutOfMemory);
            }
            let total = HEADER_LEN + body;
            if buf.len() < total {
                return Parsed::Incomplete { need: total };
            }
            let step = AuthStep::Sasl { start: base == op::SASL_AUTH, mech: key, data: &buf[head..total] };
            Parsed::Done { request: Request::Auth { form, step }, consumed: total }
        }
        op::VERSION
        | op::NOOP
        | op::QUIT
        | op::FLUSH
        | op::SET
        | op::ADD
        | op::REPLACE
        | op::APPEND
        | op::PREPEND
        | op::GET
        | op::GETK
        | op::DELETE
        | op::INCREMENT
        | op::DECREMENT
        | op::TOUCH
        | op::GAT
        | op::GATK
        | op::STAT
        | op::SASL_LIST_MECHS
        | op::SASL_AUTH
        | op::SASL_STEP => protocol_error(),
        _ => Parsed::Swallow {
            request: Request::Refused { form, answer: Answer::UnknownCommand, close: false },
            consumed: head,
            swallow: body,
        },
    }
}

/// The Stat group a key names, as memcached's `process_bin_stat` and `get_stats`
/// match them: "reset", "settings" and "detail" by prefix, the others exactly.
fn stat_group(key: &[u8]) -> Result<StatsKind, Answer> {
    if key.is_empty() {
        return Ok(StatsKind::General);
    }
    if key.starts_with(b"reset") {
        return Ok(StatsKind::Reset);
    }
    if key.starts_with(b"settings") {
        return Ok(StatsKind::Settings);
    }
    if let Some(rest) = key.strip_prefix(b"detail") {
        // Prefix statistics are not kept (memcached's `-D`): on, off and dump send
        // only the terminator.
        return if rest.starts_with(b" on") || rest.starts_with(b" off") || rest.starts_with(b" dump") {
            Err(Answer::End)
        } else {
            Err(Answer::NotFound)
        };
    }
    match key {
        b"items" => Ok(StatsKind::Items),
        b"slabs" => Ok(StatsKind::Slabs),
        b"sizes" => Ok(StatsKind::Sizes),
        // Ours, as in the text protocol.
        b"shards" => Ok(StatsKind::Shards),
        _ => Err(Answer::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { item_size_max: 1024 * 1024 };

    fn packet(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
        let mut p = vec![REQUEST_MAGIC, opcode];
        p.extend_from_slice(&(key.len() as u16).to_be_bytes());
        p.push(extras.len() as u8);
        p.extend_from_slice(&[0, 0, 0]);
        p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        p.extend_from_slice(&opaque.to_be_bytes());
        p.extend_from_slice(&cas.to_be_bytes());
        p.extend_from_slice(extras);
        p.extend_from_slice(key);
        p.extend_from_slice(value);
        p
    }

    #[test]
    fn set_waits_for_its_value_then_parses() {
        let p = packet(op::SETQ, &[0, 0, 0, 7, 0, 0, 0, 9], b"foo", b"bar", 5, 0);
        assert_eq!(parse(&p[..30], &LIMITS, Gate::default()), Parsed::Incomplete { need: 35 });
        let Parsed::Done { request: Request::Keyed(k), consumed } = parse(&p, &LIMITS, Gate::default()) else {
            panic!()
        };
        assert_eq!(consumed, p.len());
        assert_eq!((k.key, k.value), (&b"foo"[..], &b"bar"[..]));
        assert_eq!(k.op, Op::Store { mode: StoreMode::Set, flags: 7, exptime: 9, cas_unique: 0 });
        assert_eq!(k.form, Form::Binary { opcode: op::SETQ, opaque: 5, quiet: true });
    }

    #[test]
    fn too_large_value_is_refused_before_it_arrives() {
        let mut p = packet(op::SET, &[0; 8], b"k", b"", 1, 0);
        p[8..12].copy_from_slice(&(9 + 2_000_000u32).to_be_bytes());
        let Parsed::Swallow { consumed, swallow, .. } = parse(&p, &LIMITS, Gate::default()) else { panic!() };
        assert_eq!((consumed, swallow), (33, 2_000_000));
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(b"\x81", &LIMITS, Gate::default()), Parsed::Incomplete { need: 24 });
        assert_eq!(parse(&[0x81; 24], &LIMITS, Gate::default()), Parsed::Close);
        let mut p = packet(op::GET, &[], b"foo", b"", 1, 0);
        p[11] = 2; // body shorter than the key
        let Parsed::Done { request: Request::Refused { answer, close, .. }, .. } = parse(&p, &LIMITS, Gate::default())
        else {
            panic!()
        };
        assert_eq!((answer, close), (Answer::UnknownCommand, true));
        let locked = Gate { sasl: true, authenticated: false };
        let p = packet(op::GET, &[], b"foo", b"", 1, 0);
        assert!(matches!(
            parse(&p, &LIMITS, locked),
            Parsed::Done { request: Request::Refused { answer: Answer::AuthError, close: true, .. }, .. }
        ));
        let p = packet(0x1b, &[0, 0, 0, 1], b"", b"", 1, 0);
        assert!(matches!(parse(&p, &LIMITS, Gate::default()), Parsed::Swallow { consumed: 28, swallow: 4, .. }));
    }
}
