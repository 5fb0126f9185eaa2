//! The binary protocol's replies, byte for byte as memcached 1.6.18's `proto_bin.c`
//! writes them: a 24-byte response header (magic 0x81, the request's opcode and opaque
//! echoed, status, the item's CAS) and a body of extras, key and value. Quiet requests
//! send nothing on success (and nothing for a get miss); their errors are sent.

use bytes::{BufMut, BytesMut};

use super::binary::op;
use super::{Answer, AuthAnswer, Form, Keyed, Op, Outcome, StatSink, MEMCACHED_VERSION};
use crate::rules::StoreMode;

/// First byte of every response.
pub const RESPONSE_MAGIC: u8 = 0x81;
pub const HEADER_LEN: usize = 24;

/// Response status codes (protocol_binary.h).
pub mod status {
    pub const SUCCESS: u16 = 0x00;
    pub const KEY_ENOENT: u16 = 0x01;
    pub const KEY_EEXISTS: u16 = 0x02;
    pub const E2BIG: u16 = 0x03;
    pub const EINVAL: u16 = 0x04;
    pub const NOT_STORED: u16 = 0x05;
    pub const DELTA_BADVAL: u16 = 0x06;
    pub const AUTH_ERROR: u16 = 0x20;
    pub const AUTH_CONTINUE: u16 = 0x21;
    pub const UNKNOWN_COMMAND: u16 = 0x81;
    pub const ENOMEM: u16 = 0x82;
}

/// The body memcached's `write_bin_error` sends with each error status.
pub fn message(status: u16) -> &'static [u8] {
    match status {
        status::ENOMEM => b"Out of memory",
        status::UNKNOWN_COMMAND => b"Unknown command",
        status::KEY_ENOENT => b"Not found",
        status::EINVAL => b"Invalid arguments",
        status::KEY_EEXISTS => b"Data exists for key.",
        status::E2BIG => b"Too large.",
        status::DELTA_BADVAL => b"Non-numeric server-side value for incr or decr",
        status::NOT_STORED => b"Not stored.",
        status::AUTH_ERROR => b"Auth failure.",
        _ => b"",
    }
}

/// A response header.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn header(out: &mut BytesMut, opcode: u8, key_len: u16, extras_len: u8, status: u16, body_len: u32, opaque: u32, cas: u64) {
    out.reserve(HEADER_LEN);
    out.put_u8(RESPONSE_MAGIC);
    out.put_u8(opcode);
    out.put_u16(key_len);
    out.put_u8(extras_len);
    out.put_u8(0);
    out.put_u16(status);
    out.put_u32(body_len);
    out.put_u32(opaque);
    out.put_u64(cas);
}

/// An error response: the status and its text (or `text` when given).
pub fn error(out: &mut BytesMut, opcode: u8, opaque: u32, status: u16, text: Option<&[u8]>) {
    let body = text.unwrap_or_else(|| message(status));
    header(out, opcode, 0, 0, status, body.len() as u32, opaque, 0);
    out.put_slice(body);
}

/// A success response with `body` and `cas`.
fn success(out: &mut BytesMut, opcode: u8, opaque: u32, body: &[u8], cas: u64) {
    header(out, opcode, 0, 0, status::SUCCESS, body.len() as u32, opaque, cas);
    out.put_slice(body);
}

fn parts(form: Form) -> (u8, u32, bool) {
    match form {
        Form::Binary { opcode, opaque, quiet } => (opcode, opaque, quiet),
        Form::Text { .. } | Form::Meta(_) => (0, 0, false),
    }
}

/// The reply to one keyed request.
#[inline]
pub fn outcome(request: &Keyed, outcome: &Outcome, out: &mut BytesMut) {
    let (opcode, opaque, quiet) = parts(request.form);
    let returns_key = matches!(opcode, op::GETK | op::GETKQ | op::GATK | op::GATKQ);
    let err = |out: &mut BytesMut, s: u16| error(out, opcode, opaque, s, None);
    match *outcome {
        Outcome::Hit(item) => {
            let key: &[u8] = if returns_key { request.key } else { b"" };
            let value: &[u8] = if opcode == op::TOUCH { b"" } else { item.value };
            let body = 4 + key.len() + value.len();
            out.reserve(HEADER_LEN + body);
            header(out, opcode, key.len() as u16, 4, status::SUCCESS, body as u32, opaque, item.cas);
            out.put_u32(item.flags);
            out.put_slice(key);
            out.put_slice(value);
        }
        Outcome::Miss if quiet => {}
        Outcome::Miss if returns_key => {
            let key = request.key;
            header(out, opcode, key.len() as u16, 0, status::KEY_ENOENT, key.len() as u32, opaque, 0);
            out.put_slice(key);
        }
        Outcome::Miss | Outcome::NotFound => err(out, status::KEY_ENOENT),
        Outcome::Stored | Outcome::StoredCas(_) | Outcome::Deleted | Outcome::Touched | Outcome::Number(_) | Outcome::NumberCas(..)
            if quiet => {}
        Outcome::Stored | Outcome::Deleted | Outcome::Touched => success(out, opcode, opaque, b"", 0),
        Outcome::StoredCas(cas) => success(out, opcode, opaque, b"", cas),
        Outcome::Number(n) => success(out, opcode, opaque, &n.to_be_bytes(), 0),
        Outcome::NumberCas(n, cas) => success(out, opcode, opaque, &n.to_be_bytes(), cas),
        Outcome::NotStored => {
            // memcached's complete_update_bin: a refused add "exists", a refused
            // replace is "not found", the rest "not stored".
            let s = match request.op {
                Op::Store { mode: StoreMode::Add, .. } => status::KEY_EEXISTS,
                Op::Store { mode: StoreMode::Replace, .. } => status::KEY_ENOENT,
                _ => status::NOT_STORED,
            };
            err(out, s)
        }
        Outcome::Exists => err(out, status::KEY_EEXISTS),
        Outcome::NonNumeric => err(out, status::DELTA_BADVAL),
        Outcome::TooLarge => err(out, status::E2BIG),
        Outcome::StoreNoMemory => error(out, opcode, opaque, status::ENOMEM, Some(b"Out of memory allocating item")),
        Outcome::ArithNoMemory => error(out, opcode, opaque, status::ENOMEM, Some(b"Out of memory incrementing value")),
        // Meta outcomes answer meta requests only (meta_reply).
        Outcome::MetaHit(_) | Outcome::MetaStatus { .. } | Outcome::MetaNumber(_) | Outcome::MetaDebug(_) => {}
    }
}

/// A server-wide command's answer, or an error the parser decided.
pub fn answer(form: Form, answer: Answer, out: &mut BytesMut) {
    let (opcode, opaque, quiet) = parts(form);
    match answer {
        Answer::Ok | Answer::Closing if quiet => {}
        Answer::Ok | Answer::Closing => success(out, opcode, opaque, b"", 0),
        // The empty packet that ends a Stat listing.
        Answer::End | Answer::Reset => success(out, opcode, opaque, b"", 0),
        Answer::Version => success(out, opcode, opaque, MEMCACHED_VERSION.as_bytes(), 0),
        Answer::SizesDisabled => StatPackets { out, opaque }.stat("sizes_status", &"disabled"),
        Answer::FlushNotAllowed | Answer::AuthError => error(out, opcode, opaque, status::AUTH_ERROR, None),
        Answer::InvalidArguments => error(out, opcode, opaque, status::EINVAL, None),
        Answer::NotFound => error(out, opcode, opaque, status::KEY_ENOENT, None),
        Answer::OutOfMemory => error(out, opcode, opaque, status::ENOMEM, None),
        // Everything else is a text-only command: binary never asks for it.
        _ => error(out, opcode, opaque, status::UNKNOWN_COMMAND, None),
    }
}

/// The reply to a SASL step.
pub fn auth(form: Form, answer: AuthAnswer, out: &mut BytesMut) {
    let (opcode, opaque, _) = parts(form);
    match answer {
        AuthAnswer::Mechs(names) => success(out, opcode, opaque, names.as_bytes(), 0),
        AuthAnswer::Ok => success(out, opcode, opaque, b"Authenticated", 0),
        AuthAnswer::Continue(challenge) => {
            header(out, opcode, 0, 0, status::AUTH_CONTINUE, challenge.len() as u32, opaque, 0);
            out.put_slice(challenge);
        }
        AuthAnswer::Failed | AuthAnswer::BadFormat | AuthAnswer::BadTermination => {
            error(out, opcode, opaque, status::AUTH_ERROR, None)
        }
    }
}

/// Stat packets: one response per stat (key = name, value = value, opcode Stat, the
/// request's opaque), as memcached's `append_bin_stats`.
pub struct StatPackets<'a> {
    pub out: &'a mut BytesMut,
    pub opaque: u32,
}

impl StatSink for StatPackets<'_> {
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display) {
        use std::fmt::Write;
        let at = self.out.len();
        header(self.out, op::STAT, name.len() as u16, 0, status::SUCCESS, 0, self.opaque, 0);
        self.out.put_slice(name.as_bytes());
        // Writing into a BytesMut cannot fail.
        let _ = write!(self.out, "{value}");
        let body = (self.out.len() - at - HEADER_LEN) as u32;
        self.out[at + 8..at + 12].copy_from_slice(&body.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Item;

    fn form(opcode: u8, quiet: bool) -> Form {
        Form::Binary { opcode, opaque: 7, quiet }
    }

    #[test]
    fn getk_hit_and_miss() {
        let get = Keyed { key: b"foo", value: b"", op: Op::Get { touch: None }, form: form(op::GETK, false) };
        let mut out = BytesMut::new();
        outcome(&get, &Outcome::Hit(Item { flags: 7, cas: 9, value: b"bar" }), &mut out);
        assert_eq!(
            &out[..],
            b"\x81\x0c\0\x03\x04\0\0\0\0\0\0\x0a\0\0\0\x07\0\0\0\0\0\0\0\x09\0\0\0\x07foobar"
        );
        out.clear();
        outcome(&get, &Outcome::Miss, &mut out);
        assert_eq!(&out[..], b"\x81\x0c\0\x03\0\0\0\x01\0\0\0\x03\0\0\0\x07\0\0\0\0\0\0\0\0foo");
    }

    #[test]
    fn quiet_success_is_silent_errors_are_not() {
        let set = Keyed {
            key: b"k",
            value: b"v",
            op: Op::Store { mode: StoreMode::Add, flags: 0, exptime: 0, cas_unique: 0 },
            form: form(op::ADDQ, true),
        };
        let mut out = BytesMut::new();
        outcome(&set, &Outcome::StoredCas(5), &mut out);
        assert!(out.is_empty());
        outcome(&set, &Outcome::NotStored, &mut out);
        assert_eq!(&out[24..], b"Data exists for key.");
        assert_eq!(&out[6..8], &[0, 2]);
    }

    #[test]
    fn stat_packet() {
        let mut out = BytesMut::new();
        StatPackets { out: &mut out, opaque: 1 }.stat("pid", &42);
        assert_eq!(&out[..], b"\x81\x10\0\x03\0\0\0\0\0\0\0\x05\0\0\0\x01\0\0\0\0\0\0\0\0pid42");
    }
}
