//! The meta parser against what memcached 1.6.18's `proto_text.c` does (the full
//! byte-for-byte behaviour is the recorded table, tests/cases/meta.txt).

use super::*;

const LIMITS: Limits = Limits { item_size_max: 1 << 20 };

fn parse_one(input: &[u8]) -> Parsed<'_> {
    super::super::parse(input, &LIMITS)
}

fn keyed(input: &[u8]) -> Keyed<'_> {
    match parse_one(input) {
        Parsed::Done { request: Request::Keyed(k), consumed } => {
            assert_eq!(consumed, input.len());
            k
        }
        other => panic!("{other:?}"),
    }
}

fn form(k: &Keyed) -> MetaForm {
    match k.form {
        Form::Meta(m) => m,
        other => panic!("{other:?}"),
    }
}

fn reply(input: &[u8]) -> &'static [u8] {
    match parse_one(input) {
        Parsed::Done { request: Request::Reply(line), .. } => line,
        Parsed::Swallow { request: Request::Reply(line), .. } => line,
        other => panic!("{other:?}"),
    }
}

#[test]
fn mg_flags_in_order_with_opaque_and_numbers() {
    let k = keyed(b"mg foo v k T30 N-1 R99 Oxyz q u\r\n");
    assert_eq!(k.key, b"foo");
    assert_eq!(k.op, Op::MetaGet { touch: Some(30), vivify: Some(-1), recache: Some(99), bump: false });
    let m = form(&k);
    assert_eq!(m.flags().collect::<Vec<_>>(), b"kTNRO", "the flags whose place changes a reply");
    assert_eq!(m.opaque(), Some(&b"Oxyz"[..]));
    assert!(m.quiet && m.value && !m.base64 && !m.encoded_key);
    // T truncated to 32 bits as memcached's int32.
    assert_eq!(keyed(b"mg foo T4294967396\r\n").op, Op::MetaGet { touch: Some(100), vivify: None, recache: None, bump: true });
}

#[test]
fn ttl_walk_follows_flag_order() {
    let ttl = MetaTtl { before: 100, touch: 500, vivify: 30, created: false, now: 10 };
    let m = form(&keyed(b"mg foo t T500 s N30 f\r\n"));
    assert_eq!([m.exptime_at(0, &ttl), m.exptime_at(2, &ttl), m.exptime_at(4, &ttl)], [100, 500, 500]);
    let created = MetaTtl { created: true, ..ttl };
    assert_eq!(m.exptime_at(usize::MAX, &created), 30, "N after T wins on a created item");
    assert!(form(&keyed(b"mg foo T1 R2\r\n")).touch_before_recache());
    assert!(!form(&keyed(b"mg foo R2 T1\r\n")).touch_before_recache());
}

#[test]
fn error_choice_matches_the_preparse() {
    // Unknown and duplicate flags at once; otherwise the last numeric error.
    assert_eq!(reply(b"mg foo Tx z\r\n"), INVALID_FLAG);
    assert_eq!(reply(b"mg foo Tx v v\r\n"), DUPLICATE_FLAG);
    assert_eq!(reply(b"mg foo Fx\r\n"), BAD_FORMAT);
    assert_eq!(reply(b"mg foo Tx Fx\r\n"), BAD_TOKEN, "F sets no message of its own");
    assert_eq!(reply(b"mg foo Jx\r\n"), b"CLIENT_ERROR invalid numeric initial value\r\n");
    assert_eq!(reply(b"mg Zm9 b\r\n"), DECODING_KEY);
    assert_eq!(reply(b"md foo Tx\r\n"), INVALID_OR_DUPLICATE);
    assert_eq!(reply(b"ma foo Mi\r\n"), b"CLIENT_ERROR invalid mode for ma M token\r\n");
    assert_eq!(reply(b"mg foo O123456789012345678901234567890123\r\n"), OPAQUE_TOO_LONG);
    assert_eq!(reply(b"mg\r\n"), ERROR);
    assert_eq!(reply(b"me\r\n"), BAD_FORMAT);
}

#[test]
fn ms_swallows_its_block_only_after_the_line_checks() {
    // Too many tokens, a bad length: the block is not swallowed (it runs as commands).
    let many = format!("ms foo 2{}\r\nhi\r\n", " c".repeat(17));
    assert!(matches!(parse_one(many.as_bytes()), Parsed::Done { request: Request::Reply(FLAGS_TOO_LONG), .. }));
    assert!(matches!(parse_one(b"ms foo x\r\nhi\r\n"), Parsed::Done { request: Request::Reply(BAD_FORMAT), consumed: 10 }));
    // A flag error swallows the declared block.
    match parse_one(b"ms foo 2 z\r\nhi\r\n") {
        Parsed::Swallow { request: Request::Reply(INVALID_FLAG), consumed: 12, swallow: 4 } => {}
        other => panic!("{other:?}"),
    }
    // Too large for -I: a keyed request (it drops the old value), block swallowed.
    let small = Limits { item_size_max: 100 };
    match super::super::parse(b"ms foo 50\r\n", &small) {
        Parsed::Swallow { request: Request::Keyed(k), swallow: 52, .. } => {
            assert_eq!(k.op, Op::TooLarge { mode: StoreMode::Set })
        }
        other => panic!("{other:?}"),
    }
    // A set with C becomes a CAS store; I only matters then.
    let k = keyed(b"ms foo 2 C7 I F5 T-1\r\nhi\r\n");
    assert_eq!(k.op, Op::MetaSet { mode: StoreMode::Cas, flags: 5, exptime: -1, compare: 7, stale: true });
    assert_eq!(k.value, b"hi");
    let k = keyed(b"ms foo 2 MA C7 I\r\nhi\r\n");
    assert_eq!(k.op, Op::MetaSet { mode: StoreMode::Append, flags: 0, exptime: 0, compare: 7, stale: false });
    assert_eq!(parse_one(b"ms foo 2\r\nh"), Parsed::Incomplete { need: 14 });
}

#[test]
fn base64_keys_are_decoded_before_routing() {
    let k = keyed(b"mg Zm9v b k v\r\n");
    assert_eq!(k.key, b"Zm9v", "the parser borrows the key as sent");
    assert!(form(&k).encoded_key);
    let mut buf = [0u8; base64::MAX_DECODED];
    let resolved = resolve_key(&k, &mut buf);
    assert_eq!(resolved.key, b"foo");
    let m = form(&resolved);
    assert!(m.base64 && !m.encoded_key);
    // me: b only as the first flag.
    assert!(form(&keyed(b"me Zm9v b\r\n")).encoded_key);
    assert!(!form(&keyed(b"me Zm9v x b\r\n")).encoded_key);
    // A plain request passes through untouched.
    let plain = keyed(b"mg foo v\r\n");
    assert_eq!(resolve_key(&plain, &mut buf), plain);
}
