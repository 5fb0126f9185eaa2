//! The meta and binary protocols over TLS (`-Z`, issue #20): requests pipelined in one
//! write, keys spread over the cores (with -t 2 about half are forwarded to the other
//! core), every reply in request order, quiet commands silent as in plaintext; and
//! clients of both protocols at once. Harness: tests/common/tls.rs.
//!
//! Run against memcached too:
//! `MC_SERVER_BIN=/usr/bin/memcached cargo test --release --test tls_protocols`.

mod common;

use std::io::Read;
use std::sync::Arc;

use common::tls::{short, Files, TlsClient, TlsServer};

/// Classic and meta commands in one pipelined write: stores with flags, hits with the
/// returned flags and key, quiet misses (silent), arithmetic, quiet deletes, `mn`.
fn meta_pipelined(threads: &str) {
    let files = Files::new();
    let server = TlsServer::start(&files, threads, "", &[]);
    let mut c = server.tls(&files);
    let (mut req, mut want) = (String::new(), String::new());
    for i in 0..40 {
        let k = format!("mk{i}");
        req += &format!("ms {k} 2 T0 F{i}\r\nv{}\r\nmg {k} v f k\r\nmg nokey{i} v q\r\n", i % 10);
        want += &format!("HD\r\nVA 2 f{i} k{k}\r\nv{}\r\n", i % 10);
    }
    req += "ms cnt 1\r\n7\r\nma cnt\r\nma cnt v D5\r\nma cnt MD v\r\nma nocnt\r\n";
    want += "HD\r\nHD\r\nVA 2\r\n13\r\nVA 2\r\n12\r\nNF\r\n";
    for i in (0..40).step_by(4) {
        req += &format!("md mk{i} q\r\nmg mk{i} v\r\n");
        want += "EN\r\n";
    }
    // Classic commands in the same stream, then the meta no-op closing the batch.
    req += "set ck 3 0 1\r\nx\r\nmg ck v f\r\nget mk1\r\nmn\r\n";
    want += "STORED\r\nVA 1 f3\r\nx\r\nVALUE mk1 1 2\r\nv1\r\nEND\r\nMN\r\n";
    c.send(&req);
    c.expect(&want);
    // The same again in many small rounds: a round's replies before the next is sent.
    for round in 0..50 {
        let k = format!("r{round}");
        c.roundtrip(&format!("ms {k} 3 T0\r\n{round:03}\r\nmg {k} v\r\nmn\r\n"), &format!("HD\r\nVA 3\r\n{round:03}\r\nMN\r\n"));
    }
}

/// One binary request (magic 0x80).
fn packet(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut p = vec![0x80, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
    p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

/// A binary reply without its CAS (which differs between servers): opcode, status,
/// opaque, extras, key, value.
#[derive(Debug, PartialEq)]
struct Reply {
    opcode: u8,
    status: u16,
    opaque: u32,
    extras: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn reply(opcode: u8, status: u16, opaque: u32, extras: &[u8], key: &str, value: &[u8]) -> Reply {
    Reply { opcode, status, opaque, extras: extras.to_vec(), key: key.as_bytes().to_vec(), value: value.to_vec() }
}

/// Reads exactly `n` binary replies (and checks nothing more is already there).
fn read_replies(c: &mut TlsClient, n: usize) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while out.len() < n {
        if c.pending.len() >= 24 {
            let h = &c.pending[..24];
            assert_eq!(h[0], 0x81, "a reply's magic, in {:?}", short(&c.pending));
            let body = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
            if c.pending.len() >= 24 + body {
                let (klen, elen) = (u16::from_be_bytes([h[2], h[3]]) as usize, h[4] as usize);
                let p: Vec<u8> = c.pending.drain(..24 + body).collect();
                out.push(Reply {
                    opcode: p[1],
                    status: u16::from_be_bytes([p[6], p[7]]),
                    opaque: u32::from_be_bytes([p[12], p[13], p[14], p[15]]),
                    extras: p[24..24 + elen].to_vec(),
                    key: p[24 + elen..24 + elen + klen].to_vec(),
                    value: p[24 + elen + klen..].to_vec(),
                });
                continue;
            }
        }
        match c.stream.read(&mut buf) {
            Ok(0) => panic!("closed after {} of {n} replies", out.len()),
            Ok(k) => c.pending.extend_from_slice(&buf[..k]),
            Err(e) => panic!("{e} after {} of {n} replies", out.len()),
        }
    }
    assert!(c.pending.is_empty(), "more than {n} replies: {:?}", short(&c.pending));
    out
}

/// Binary commands pipelined in one write: Set and GetK per key, quiet misses (GetKQ:
/// silent), Add on an existing key, Increment creating then adding, Append, Delete,
/// SetQ (silent) then GetQ (a hit answers), Version, Noop; replies in request order.
fn binary_pipelined(threads: &str) {
    let files = Files::new();
    let server = TlsServer::start(&files, threads, "", &[]);
    let mut c = server.tls(&files);
    let (mut req, mut want) = (Vec::new(), Vec::new());
    let mut op = 0u32;
    let mut next = || {
        op += 1;
        op
    };
    let set_extras = |flags: u32| [flags.to_be_bytes(), 0u32.to_be_bytes()].concat();
    for i in 0..24u32 {
        let (k, v) = (format!("bk{i}"), format!("val{i}"));
        let o = next();
        req.extend(packet(0x01, &set_extras(i), k.as_bytes(), v.as_bytes(), o));
        want.push(reply(0x01, 0, o, &[], "", b""));
        let o = next();
        req.extend(packet(0x0c, &[], k.as_bytes(), &[], o));
        want.push(reply(0x0c, 0, o, &i.to_be_bytes(), &k, v.as_bytes()));
        req.extend(packet(0x0d, &[], format!("bmiss{i}").as_bytes(), &[], next()));
    }
    let o = next();
    req.extend(packet(0x02, &set_extras(0), b"bk0", b"again", o));
    want.push(reply(0x02, 0x0002, o, &[], "", b"Data exists for key."));
    let incr = |delta: u64| [delta.to_be_bytes(), 10u64.to_be_bytes()].concat().into_iter().chain([0u8; 4]).collect::<Vec<_>>();
    let o = next();
    req.extend(packet(0x05, &incr(3), b"bcnt", &[], o));
    want.push(reply(0x05, 0, o, &[], "", &10u64.to_be_bytes()));
    let o = next();
    req.extend(packet(0x05, &incr(5), b"bcnt", &[], o));
    want.push(reply(0x05, 0, o, &[], "", &15u64.to_be_bytes()));
    let o = next();
    req.extend(packet(0x0e, &[], b"bk1", b"+a", o));
    want.push(reply(0x0e, 0, o, &[], "", b""));
    let o = next();
    req.extend(packet(0x00, &[], b"bk1", &[], o));
    want.push(reply(0x00, 0, o, &1u32.to_be_bytes(), "", b"val1+a"));
    let o = next();
    req.extend(packet(0x04, &[], b"bk2", &[], o));
    want.push(reply(0x04, 0, o, &[], "", b""));
    let o = next();
    req.extend(packet(0x00, &[], b"bk2", &[], o));
    want.push(reply(0x00, 0x0001, o, &[], "", b"Not found"));
    req.extend(packet(0x11, &set_extras(9), b"bq", b"quiet", next()));
    let o = next();
    req.extend(packet(0x09, &[], b"bq", &[], o));
    want.push(reply(0x09, 0, o, &9u32.to_be_bytes(), "", b"quiet"));
    let o = next();
    req.extend(packet(0x0b, &[], b"", &[], o));
    want.push(reply(0x0b, 0, o, &[], "", b"1.6.18"));
    let o = next();
    req.extend(packet(0x0a, &[], b"", &[], o));
    want.push(reply(0x0a, 0, o, &[], "", b""));
    c.send(&req);
    let got = read_replies(&mut c, want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "reply {i}");
    }
}

/// Meta and binary clients at once, each pipelining rounds over keys on every core:
/// each gets its own replies, in order.
fn both_protocols_at_once(threads: &str) {
    let files = Arc::new(Files::new());
    let server = Arc::new(TlsServer::start(&files, threads, "", &[]));
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let (files, server) = (files.clone(), server.clone());
            std::thread::spawn(move || {
                let mut c = server.tls(&files);
                for round in 0..20u32 {
                    if t % 2 == 0 {
                        let (mut req, mut want) = (String::new(), String::new());
                        for i in 0..16 {
                            let k = format!("m{t}k{i}");
                            req += &format!("ms {k} 3 T0\r\n{round:03}\r\nmg {k} v k\r\n");
                            want += &format!("HD\r\nVA 3 k{k}\r\n{round:03}\r\n");
                        }
                        c.send(req + "mn\r\n");
                        c.expect(want + "MN\r\n");
                    } else {
                        let (mut req, mut want) = (Vec::new(), Vec::new());
                        for i in 0..16u32 {
                            let (k, v) = (format!("b{t}k{i}"), format!("{round:03}"));
                            let o = round * 100 + i;
                            req.extend(packet(0x11, &[0; 8], k.as_bytes(), v.as_bytes(), o));
                            req.extend(packet(0x0c, &[], k.as_bytes(), &[], o));
                            want.push(reply(0x0c, 0, o, &[0; 4], &k, v.as_bytes()));
                        }
                        req.extend(packet(0x0a, &[], b"", &[], 0));
                        want.push(reply(0x0a, 0, 0, &[], "", b""));
                        c.send(&req);
                        assert_eq!(read_replies(&mut c, want.len()), want, "client {t} round {round}");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(server.stat("ssl_handshake_errors"), 0);
}

per_threads!(meta_pipelined, binary_pipelined, both_protocols_at_once);
