//! The meta parser (`mg ms md ma me mn`) on structured and raw input: it never panics,
//! consumes within the buffer, keeps what a reply echoes bounded (at most MAX_FLAGS
//! flags, an opaque of at most MAX_OPAQUE bytes), a base64 key always decodes once
//! accepted (the connection decodes it before routing), and encoding any outcome a
//! meta command can have for the request never panics.
//!
//! Input: a structured request (command letter, key, flag tokens, data) built into a
//! line, followed by raw bytes appended as more requests.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use memcached_rs::protocol::{
    self, meta::{MAX_FLAGS, MAX_OPAQUE}, Form, Item, Limits, MetaDebug, MetaHit, MetaNumber, MetaStatus, MetaTtl, Outcome,
    Parsed, Request,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    cmd: u8,
    key: &'a [u8],
    flags: Vec<(u8, &'a [u8])>,
    data: &'a [u8],
    /// Declared data length: the real one, or a wrong one.
    wrong_len: Option<u16>,
    item_size_max: u8,
    raw: &'a [u8],
}

fuzz_target!(|input: Input| {
    let cmd = b"gsdaen"[(input.cmd % 6) as usize];
    let mut line = vec![b'm', cmd, b' '];
    line.extend_from_slice(input.key);
    if cmd == b's' {
        let len = input.wrong_len.map_or(input.data.len(), usize::from);
        line.extend_from_slice(format!(" {len}").as_bytes());
    }
    for (flag, arg) in &input.flags {
        line.push(b' ');
        line.push(*flag);
        line.extend_from_slice(arg);
    }
    line.extend_from_slice(b"\r\n");
    if cmd == b's' {
        line.extend_from_slice(input.data);
        line.extend_from_slice(b"\r\n");
    }
    line.extend_from_slice(input.raw);
    let limits = Limits { item_size_max: [1 << 20, 1024, 100, 60][(input.item_size_max & 3) as usize] };
    let mut at = 0;
    while at < line.len() {
        let buf = &line[at..];
        let (request, consumed, swallow) = match protocol::parse(buf, &limits) {
            Parsed::Incomplete { need } => {
                assert!(need == 0 || need > buf.len());
                return;
            }
            Parsed::Close => return,
            Parsed::Done { request, consumed } => (request, consumed, 0),
            Parsed::Swallow { request, consumed, swallow } => (request, consumed, swallow),
        };
        assert!(consumed > 0 && consumed <= buf.len(), "consumed {consumed} of {}", buf.len());
        if let Request::Keyed(keyed) = request {
            if let Form::Meta(m) = keyed.form {
                assert!(m.flags().count() <= MAX_FLAGS);
                assert!(m.opaque().map_or(0, <[u8]>::len) <= MAX_OPAQUE);
                let mut decoded = [0u8; protocol::base64::MAX_DECODED];
                let resolved = protocol::resolve_key(&keyed, &mut decoded);
                assert!(!resolved.key.is_empty() || keyed.key.is_empty());
                if let Form::Meta(r) = resolved.form {
                    assert!(!r.encoded_key);
                }
                encode_every_outcome(&resolved);
            }
        }
        at += consumed + swallow;
    }
});

fn encode_every_outcome(request: &protocol::Keyed) {
    let ttl = MetaTtl { before: 5, touch: 1, vivify: 0, created: true, now: 7 };
    let hit = MetaHit {
        value: b"value",
        flags: 3,
        cas: 9,
        ttl,
        la: 1,
        fetched: true,
        key_binary: true,
        token_sent: true,
        stale: true,
        won: true,
    };
    let outcomes = [
        Outcome::Miss,
        Outcome::Hit(Item { flags: 1, cas: 2, value: b"x" }),
        Outcome::MetaHit(hit),
        Outcome::MetaStatus { status: MetaStatus::Done, cas: 4 },
        Outcome::MetaStatus { status: MetaStatus::NotFound, cas: 0 },
        Outcome::MetaNumber(MetaNumber { value: u64::MAX, cas: 1, ttl }),
        Outcome::MetaDebug(MetaDebug { exp: -1, la: 0, cas: 1, fetched: false, class: 1, size: 64, key_binary: true }),
        Outcome::TooLarge,
        Outcome::NonNumeric,
    ];
    for outcome in &outcomes {
        let mut out = BytesMut::new();
        protocol::encode(request, outcome, &mut out);
        // Every meta reply is whole lines.
        assert!(out.is_empty() || out.ends_with(b"\r\n"), "{out:?}");
    }
}
