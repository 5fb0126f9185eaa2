use super::*;
use crate::config::MAX_VALUE;
use crate::workload::value_len;

const PREFIX: &[u8] = b"mcb:";

fn value_block(p: &Pattern, idx: u32, len: u32) -> Vec<u8> {
    let mut v = format!("VALUE mcb:{idx} {} {len}\r\n", value_flags(idx, len)).into_bytes();
    v.extend_from_slice(p.value(idx, len).unwrap());
    v.extend_from_slice(b"\r\n");
    v
}

fn parse_all(buf: &[u8], kind: OpKind, keys: &[u32]) -> (Step, Progress) {
    let p = Pattern::new(MAX_VALUE);
    let c = Checker {
        prefix: PREFIX,
        pattern: &p,
        meta: false,
    };
    let mut prog = Progress::default();
    let s = c.parse(buf, kind, keys, &mut prog);
    (s, prog)
}

#[test]
fn get_hit_miss_and_multiget() {
    let p = Pattern::new(MAX_VALUE);
    let mut hit = value_block(&p, 7, value_len(7, 64, 1024));
    hit.extend_from_slice(b"END\r\n");
    let (s, _) = parse_all(&hit, OpKind::Get, &[7]);
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 1,
            misses: 0,
            err: None
        }
    );
    assert_eq!(s.consumed, hit.len());

    let (s, _) = parse_all(b"END\r\n", OpKind::Get, &[7]);
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 0,
            misses: 1,
            err: None
        }
    );

    // Keys 1 and 3 of 1..=4 present, in request order.
    let mut multi = value_block(&p, 1, 100);
    multi.extend(value_block(&p, 3, 5));
    multi.extend_from_slice(b"END\r\n");
    let (s, _) = parse_all(&multi, OpKind::Get, &[1, 2, 3, 4]);
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 2,
            misses: 2,
            err: None
        }
    );
}

#[test]
fn set_replies() {
    let (s, _) = parse_all(b"STORED\r\n", OpKind::Set, &[1]);
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 0,
            misses: 0,
            err: None
        }
    );
    assert_eq!(s.consumed, 8);
    let (s, _) = parse_all(
        b"SERVER_ERROR out of memory storing object\r\n",
        OpKind::Set,
        &[1],
    );
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 0,
            misses: 0,
            err: Some(ErrKind::ServerError)
        }
    );
    assert_eq!(s.sample, Some(0..41));
    let (s, _) = parse_all(b"NOT_STORED\r\n", OpKind::Set, &[1]);
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 0,
            misses: 0,
            err: Some(ErrKind::NotStored)
        }
    );
    let (s, _) = parse_all(b"END\r\n", OpKind::Set, &[1]);
    assert_eq!(s.parsed, Parsed::Fatal(ErrKind::UnexpectedReply));
}

#[test]
fn malformed_replies_are_errors() {
    let p = Pattern::new(MAX_VALUE);
    // VALUE for another key.
    let mut wrong = value_block(&p, 8, 10);
    wrong.extend_from_slice(b"END\r\n");
    let (s, _) = parse_all(&wrong, OpKind::Get, &[7]);
    assert_eq!(
        s.parsed,
        Parsed::Done {
            hits: 0,
            misses: 1,
            err: Some(ErrKind::WrongKey)
        }
    );
    // Out of order in a multi-get is wrong too.
    let mut order = value_block(&p, 3, 10);
    order.extend(value_block(&p, 1, 10));
    order.extend_from_slice(b"END\r\n");
    let (s, _) = parse_all(&order, OpKind::Get, &[1, 3]);
    assert!(matches!(
        s.parsed,
        Parsed::Done {
            err: Some(ErrKind::WrongKey),
            ..
        }
    ));
    // Declared length longer than the data: the \r\n is not where it should be.
    let bad_len = format!("VALUE mcb:7 {} 12\r\n", value_flags(7, 12)).into_bytes();
    let mut b = bad_len.clone();
    b.extend_from_slice(&p.value(7, 10).unwrap()[..10]);
    b.extend_from_slice(b"\r\nEND\r\n\r\n");
    let (s, _) = parse_all(&b, OpKind::Get, &[7]);
    assert_eq!(s.parsed, Parsed::Fatal(ErrKind::BadLength));
    // Right framing, wrong bytes.
    let mut data = value_block(&p, 7, 10);
    let n = data.len();
    data[n - 3] ^= 1;
    data.extend_from_slice(b"END\r\n");
    let (s, _) = parse_all(&data, OpKind::Get, &[7]);
    assert!(matches!(
        s.parsed,
        Parsed::Done {
            err: Some(ErrKind::BadData),
            ..
        }
    ));
    // Flags that do not belong to this key and length.
    let mut flags = b"VALUE mcb:7 12345 10\r\n".to_vec();
    flags.extend_from_slice(p.value(7, 10).unwrap());
    flags.extend_from_slice(b"\r\nEND\r\n");
    let (s, _) = parse_all(&flags, OpKind::Get, &[7]);
    assert!(matches!(
        s.parsed,
        Parsed::Done {
            err: Some(ErrKind::BadFlags),
            ..
        }
    ));
    // Garbage, bare \n, an unknown line, ERROR.
    for bad in [
        &b"HELLO\r\n"[..],
        b"END\n",
        b"VALUE mcb:7 x 10\r\n",
        b"VALUE mcb:7\r\n",
    ] {
        let (s, _) = parse_all(bad, OpKind::Get, &[7]);
        assert!(
            matches!(s.parsed, Parsed::Fatal(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let (s, _) = parse_all(b"ERROR\r\n", OpKind::Get, &[7]);
    assert!(matches!(
        s.parsed,
        Parsed::Done {
            err: Some(ErrKind::Error),
            ..
        }
    ));
    // A line that never ends.
    let (s, _) = parse_all(&[b'x'; MAX_LINE + 1], OpKind::Get, &[7]);
    assert_eq!(s.parsed, Parsed::Fatal(ErrKind::UnexpectedReply));
}

#[test]
fn incremental_parse_gives_the_same_answer_byte_by_byte() {
    let p = Pattern::new(MAX_VALUE);
    let c = Checker {
        prefix: PREFIX,
        pattern: &p,
        meta: false,
    };
    let mut whole = value_block(&p, 1, 300);
    whole.extend(value_block(&p, 2, 64));
    whole.extend_from_slice(b"END\r\nSTORED\r\n");
    let mut prog = Progress::default();
    let mut start = 0;
    let mut end = 0;
    let result = loop {
        end += 1;
        let s = c.parse(&whole[start..end], OpKind::Get, &[1, 2], &mut prog);
        start += s.consumed;
        if s.parsed != Parsed::NeedMore {
            break s.parsed;
        }
    };
    assert_eq!(
        result,
        Parsed::Done {
            hits: 2,
            misses: 0,
            err: None
        }
    );
    // The next reply starts right where this one ended.
    assert_eq!(&whole[start..], b"STORED\r\n");
}

fn meta_block(p: &Pattern, idx: u32, len: u32, with_key: bool) -> Vec<u8> {
    let key = if with_key { format!(" kmcb:{idx}") } else { String::new() };
    let mut v = format!("VA {len} f{}{key}\r\n", value_flags(idx, len)).into_bytes();
    v.extend_from_slice(p.value(idx, len).unwrap());
    v.extend_from_slice(b"\r\n");
    v
}

fn parse_meta(buf: &[u8], kind: OpKind, keys: &[u32]) -> Step {
    let p = Pattern::new(MAX_VALUE);
    let c = Checker { prefix: PREFIX, pattern: &p, meta: true };
    c.parse(buf, kind, keys, &mut Progress::default())
}

#[test]
fn meta_replies() {
    let p = Pattern::new(MAX_VALUE);
    let (l7, l9) = (value_len(7, 64, 1024), value_len(9, 64, 1024));
    let hit = meta_block(&p, 7, l7, false);
    let s = parse_meta(&hit, OpKind::Get, &[7]);
    assert_eq!((s.consumed, s.parsed), (hit.len(), Parsed::Done { hits: 1, misses: 0, err: None }));
    let s = parse_meta(b"EN\r\n", OpKind::Get, &[7]);
    assert_eq!(s.parsed, Parsed::Done { hits: 0, misses: 1, err: None });
    // A quiet multi-get: hits name their key, misses say nothing, MN ends it.
    let mut multi = meta_block(&p, 9, l9, true);
    multi.extend_from_slice(b"MN\r\n");
    let s = parse_meta(&multi, OpKind::Get, &[7, 9, 11]);
    assert_eq!((s.consumed, s.parsed), (multi.len(), Parsed::Done { hits: 1, misses: 2, err: None }));
    // Half a value: more is needed, nothing is consumed.
    let s = parse_meta(&multi[..20], OpKind::Get, &[7, 9, 11]);
    assert_eq!((s.consumed, s.parsed), (0, Parsed::NeedMore));
    // Wrong flags, wrong data.
    let mut bad = format!("VA {l7} f1\r\n").into_bytes();
    bad.extend_from_slice(p.value(7, l7).unwrap());
    bad.extend_from_slice(b"\r\n");
    assert!(matches!(parse_meta(&bad, OpKind::Get, &[7]).parsed, Parsed::Done { err: Some(ErrKind::BadFlags), .. }));
    assert_eq!(parse_meta(b"HD\r\n", OpKind::Set, &[7]).parsed, Parsed::Done { hits: 0, misses: 0, err: None });
    assert!(matches!(parse_meta(b"NS\r\n", OpKind::Set, &[7]).parsed, Parsed::Done { err: Some(ErrKind::NotStored), .. }));
    assert!(matches!(parse_meta(b"STORED\r\n", OpKind::Set, &[7]).parsed, Parsed::Fatal(ErrKind::UnexpectedReply)));
    assert!(matches!(parse_meta(b"CLIENT_ERROR bad\r\n", OpKind::Set, &[7]).parsed, Parsed::Done { err: Some(ErrKind::ClientError), .. }));
}
