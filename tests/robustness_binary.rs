//! Hostile binary-protocol clients (issue 16): random headers, lengths that do not add
//! up, huge declared bodies, bodies that never finish, a flood of quiet requests that
//! never reads. The server must not crash, must not buffer what a client only declares,
//! must never read one request's bytes as part of another, and must keep serving
//! everyone else. Exact replies to each bad input are in tests/cases/binary.txt; this
//! file is about load and malice. Runs against memcached too (`MC_SERVER_BIN`).

mod common;
mod robust_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use robust_common::{assert_serving, drain, rss_kib, Rng};

const MIB: u64 = 1024;

/// One binary request.
fn packet(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut p = vec![0x80, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.extend_from_slice(&[0, 0, 0]);
    p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

fn noop(opaque: u32) -> Vec<u8> {
    packet(0x0a, &[], &[], &[], opaque)
}

/// Splits a byte stream into response packets; panics on anything that is not one.
fn responses(mut bytes: &[u8]) -> Vec<(u8, u16, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 24 && bytes[0] == 0x81, "not a response packet: {bytes:?}");
        let body = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert!(bytes.len() >= 24 + body, "a response shorter than its body length");
        let status = u16::from_be_bytes([bytes[6], bytes[7]]);
        let opaque = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
        out.push((bytes[1], status, opaque, bytes[24..24 + body].to_vec()));
        bytes = &bytes[24 + body..];
    }
    out
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_nodelay(true).ok();
    s
}

#[test]
fn random_headers_never_crash_or_stall_others() {
    let server = Server::start(&["-t", "2"]);
    let mut rng = Rng::new(16);
    for round in 0..200 {
        let mut s = connect(&server);
        // A valid magic, then random opcode, lengths, extras and a short random tail.
        let mut p = vec![0x80];
        p.extend_from_slice(&rng.bytes(23));
        // Keep declared bodies small enough that a connection either answers or waits.
        if round % 2 == 0 {
            p[8..12].copy_from_slice(&(rng.below(300) as u32).to_be_bytes());
        }
        let tail = rng.below(300) as usize;
        p.extend_from_slice(&rng.bytes(tail));
        let _ = s.write_all(&p);
        let _ = drain(&mut s, Duration::from_millis(20), Duration::from_millis(200));
    }
    assert_serving(&server, "after-random-binary-headers");
}

#[test]
fn huge_declared_bodies_are_never_buffered() {
    let server = Server::start(&["-t", "2"]);
    let base = rss_kib(server.pid());
    // A Set declaring a 3 GB value: refused at once ("Too large."), the value is to be
    // swallowed as it arrives; send 100 MB of it, then drop the connection.
    let mut s = connect(&server);
    let mut set = packet(0x01, &[0; 8], b"k", b"", 1);
    set[8..12].copy_from_slice(&(9 + 3_000_000_000u32).to_be_bytes());
    s.write_all(&set).unwrap();
    let (got, _) = drain(&mut s, Duration::from_millis(300), Duration::from_secs(3));
    let r = responses(&got);
    assert_eq!(r.len(), 1, "one reply, at once: {r:?}");
    assert_eq!((r[0].0, r[0].1, r[0].2), (0x01, 0x03, 1), "Too large, Set and opaque echoed");
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..100 {
        // memcached (its value length a C int) closes here; we swallow.
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    // An unknown opcode declaring a 4 GB body: swallowed the same way.
    let mut u = connect(&server);
    let mut unknown = packet(0x50, &[], &[], &[], 2);
    unknown[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    u.write_all(&unknown).unwrap();
    for _ in 0..50 {
        if u.write_all(&chunk).is_err() {
            break;
        }
    }
    let rss = rss_kib(server.pid());
    assert!(rss < base + 64 * MIB, "RSS {base} KiB -> {rss} KiB after huge declared bodies");
    drop((s, u));
    assert_serving(&server, "after-huge-bodies");
}

#[test]
fn lengths_that_do_not_add_up_close_without_reading_on() {
    let server = Server::start(&["-t", "2"]);
    // extras + key over the body length: "Unknown command" and closed; the Noop
    // behind it is never answered (it is not read as a request of its own).
    let mut s = connect(&server);
    let mut bad = packet(0x00, &[], b"foo", b"", 1);
    bad[8..12].copy_from_slice(&2u32.to_be_bytes());
    let mut send = bad.clone();
    send.extend_from_slice(&noop(2));
    s.write_all(&send).unwrap();
    let (got, closed) = drain(&mut s, Duration::from_millis(500), Duration::from_secs(3));
    let r = responses(&got);
    assert_eq!(r.len(), 1, "only the error, nothing for the Noop: {r:?}");
    assert_eq!((r[0].1, r[0].2), (0x81, 1));
    assert!(closed, "closed after the error");

    // A key over 250 bytes: "Invalid arguments", closed.
    let mut s = connect(&server);
    s.write_all(&packet(0x00, &[], &[b'k'; 251], b"", 3)).unwrap();
    let (got, closed) = drain(&mut s, Duration::from_millis(500), Duration::from_secs(3));
    assert_eq!(responses(&got).iter().map(|r| (r.1, r.2)).collect::<Vec<_>>(), [(0x04, 3)]);
    assert!(closed);

    // A key that cannot fit memcached's 16 KB read buffer: closed without a reply,
    // after reading no more than that.
    let mut s = connect(&server);
    let mut big = packet(0x00, &[], &[], &[], 4);
    big[2..4].copy_from_slice(&20000u16.to_be_bytes());
    big[8..12].copy_from_slice(&20000u32.to_be_bytes());
    big.extend_from_slice(&[b'k'; 20000]);
    let _ = s.write_all(&big);
    let (got, closed) = drain(&mut s, Duration::from_millis(500), Duration::from_secs(3));
    assert!(got.is_empty() && closed, "closed without a reply: {got:?}");
    assert_serving(&server, "after-bad-lengths");
}

#[test]
fn unfinished_bodies_wait_and_complete() {
    let server = Server::start(&["-t", "2"]);
    let set = packet(0x01, &[0, 0, 0, 5, 0, 0, 0, 0], b"slow", b"value", 7);
    let mut s = connect(&server);
    // Byte by byte: nothing is answered until the whole Set is there, then exactly
    // its reply.
    for &b in &set[..set.len() - 1] {
        s.write_all(&[b]).unwrap();
    }
    let (got, closed) = drain(&mut s, Duration::from_millis(300), Duration::from_secs(1));
    assert!(got.is_empty() && !closed, "waits for the body: {got:?}");
    s.write_all(&set[set.len() - 1..]).unwrap();
    s.write_all(&packet(0x00, &[], b"slow", b"", 8)).unwrap();
    let (got, _) = drain(&mut s, Duration::from_millis(300), Duration::from_secs(3));
    let r = responses(&got);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].0, r[0].1, r[0].2), (0x01, 0, 7));
    assert_eq!((r[1].0, r[1].1, r[1].2), (0x00, 0, 8));
    assert_eq!(&r[1].3[4..], b"value");
    // Many connections that each leave a body unfinished do not stop the others.
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect(&server);
            s.write_all(&set[..40]).unwrap();
            s
        })
        .collect();
    assert_serving(&server, "with-50-unfinished-bodies");
    drop(stalled);
}

#[test]
fn quiet_flood_without_reading() {
    let server = Server::start(&["-t", "2"]);
    let base = rss_kib(server.pid());
    // 200k GetK of keys that exist (each answered even though quiet: a hit), written by
    // a client that never reads: the server stops reading when its replies back up,
    // holding bounded memory, and others are served meanwhile.
    let mut setup = connect(&server);
    let value = vec![b'v'; 1000];
    let mut sets = Vec::new();
    for i in 0..100u32 {
        sets.extend_from_slice(&packet(0x11, &[0; 8], format!("k{i}").as_bytes(), &value, i));
    }
    sets.extend_from_slice(&noop(0xffff));
    setup.write_all(&sets).unwrap();
    let (got, _) = drain(&mut setup, Duration::from_millis(300), Duration::from_secs(3));
    assert_eq!(responses(&got).len(), 1, "quiet sets send nothing, the Noop answers");

    let flood = std::thread::spawn({
        let port = server.port;
        move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(3))).ok();
            let mut batch = Vec::new();
            for i in 0..2000u32 {
                batch.extend_from_slice(&packet(0x0d, &[], format!("k{}", i % 100).as_bytes(), b"", i));
            }
            for _ in 0..100 {
                if s.write_all(&batch).is_err() {
                    break; // the server stopped reading: what it should do
                }
            }
            s
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_serving(&server, "during-a-quiet-flood");
    let rss = rss_kib(server.pid());
    assert!(rss < base + 128 * MIB, "RSS {base} KiB -> {rss} KiB under a flood that never reads");
    drop(flood.join());
}
