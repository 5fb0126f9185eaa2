//! Hostile meta-protocol input (#15): hundreds of flags, huge tokens, bad base64,
//! absurd data lengths, random flag soup from many connections. Each gets memcached's
//! exact error (the same expectations pass against memcached 1.6.18 with
//! `MC_SERVER_BIN=/usr/bin/memcached`), the connection survives where memcached's
//! does, and the server and a client working beside it are unaffected.

mod common;
mod robust_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server};
use robust_common::{assert_serving, rss_kib, Rng};

const MIB: u64 = 1024;

/// A client storing and reading back values with ms/mg (and a classic get) in a loop
/// while others misbehave.
struct MetaBystander {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    handle: thread::JoinHandle<()>,
}

impl MetaBystander {
    fn start(port: u16) -> MetaBystander {
        let (stop, rounds) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, r) = (stop.clone(), rounds.clone());
        let handle = thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let key = format!("meta-bystander{}", i % 50);
                let value = format!("v{i}");
                c.roundtrip(format!("ms {key} {} T0 Oby\r\n{value}\r\n", value.len()), b"HD Oby\r\n");
                c.roundtrip(
                    format!("mg {key} v k\r\n"),
                    format!("VA {} k{key}\r\n{value}\r\n", value.len()),
                );
                assert_eq!(c.get(&key).as_deref(), Some(value.as_bytes()), "classic get of a meta value");
                r.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        MetaBystander { stop, rounds, handle }
    }

    /// Lets it make a few more rounds after the abuse, then stops it; it must have kept
    /// working (and not panicked) all along.
    fn finish(self) {
        let (start, deadline) = (self.rounds.load(Ordering::Relaxed), Instant::now() + Duration::from_secs(10));
        while self.rounds.load(Ordering::Relaxed) < start + 10 && Instant::now() < deadline && !self.handle.is_finished() {
            thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        let rounds = self.rounds.load(Ordering::Relaxed);
        assert!(self.handle.join().is_ok(), "the meta bystander failed");
        assert!(rounds > 10, "the meta bystander made only {rounds} rounds");
    }
}

#[test]
fn hundreds_of_flags_and_huge_tokens_get_memcacheds_errors() {
    let server = Server::start(&["-t", "2"]);
    let bystander = MetaBystander::start(server.port);
    let mut c = server.client();
    // The tokenizer stops at 24 tokens; past 20 every command refuses.
    for n in [18, 25, 300, 600] {
        let flags = " v".repeat(n);
        c.roundtrip(format!("mg foo{flags}\r\n"), b"CLIENT_ERROR options flags are too long\r\n");
        c.roundtrip(format!("md foo{flags}\r\n"), b"CLIENT_ERROR options flags too long\r\n");
        c.roundtrip(format!("ma foo{flags}\r\n"), b"CLIENT_ERROR options flags too long\r\n");
        // ms: the data block is not swallowed, so it runs as a command (ERROR).
        c.roundtrip(format!("ms foo 2{flags}\r\nhi\r\n"), b"CLIENT_ERROR options flags too long\r\nERROR\r\n");
    }
    // Huge tokens (a line under memcached's 2048-byte limit for an unfinished line,
    // sent whole): a key, an opaque, a number, a mode.
    let big = "x".repeat(1500);
    c.roundtrip(format!("mg {big} v\r\n"), b"CLIENT_ERROR bad command line format\r\n");
    c.roundtrip(format!("mg foo O{big}\r\n"), b"CLIENT_ERROR opaque token too long\r\n");
    c.roundtrip(format!("md foo O{big}\r\n"), b"CLIENT_ERROR opaque token too long\r\n");
    c.roundtrip(format!("ms foo 2 O{big}\r\nhi\r\nmn\r\n"), b"CLIENT_ERROR opaque token too long\r\nMN\r\n");
    let digits = "9".repeat(1500);
    c.roundtrip(format!("mg foo T{digits}\r\n"), b"CLIENT_ERROR bad token in command line format\r\n");
    c.roundtrip(format!("ma foo D{digits}\r\n"), b"CLIENT_ERROR invalid or duplicate flag\r\n");
    c.roundtrip(format!("ms foo 2 M{big}\r\nhi\r\nmn\r\n"), b"CLIENT_ERROR incorrect length for M token\r\nMN\r\n");
    c.roundtrip(format!("me {big}\r\n"), b"CLIENT_ERROR bad command line format\r\n");
    // Flag bytes outside ASCII, NUL inside a token (a C string ends there).
    c.roundtrip(b"mg foo \x80\xff\r\n", b"CLIENT_ERROR duplicate flag\r\n");
    c.roundtrip(b"mg foo v\0 zzz\r\n", b"EN\r\n");
    c.expect_alive();
    assert_serving(&server, "after-flags");
    bystander.finish();
}

#[test]
fn bad_base64_keys_are_refused_in_every_command() {
    let server = Server::start(&["-t", "2"]);
    let mut c = server.client();
    for key in ["Zm9", "!!!!", "A===", "====", "Zm9vY", "\x7f\x7f\x7f\x7f"] {
        c.roundtrip(format!("mg {key} b v\r\n"), b"CLIENT_ERROR error decoding key\r\n");
        c.roundtrip(format!("ms {key} 2 b\r\nhi\r\nmn\r\n"), b"CLIENT_ERROR error decoding key\r\nMN\r\n");
        c.roundtrip(format!("md {key} b\r\n"), b"CLIENT_ERROR invalid or duplicate flag\r\n");
        c.roundtrip(format!("ma {key} b\r\n"), b"CLIENT_ERROR invalid or duplicate flag\r\n");
        c.roundtrip(format!("me {key} b\r\n"), b"CLIENT_ERROR bad command line format\r\n");
    }
    // 250 base64 characters is the limit (checked before decoding).
    let long = "A".repeat(252);
    c.roundtrip(format!("mg {long} b\r\n"), b"CLIENT_ERROR bad command line format\r\n");
    // Valid base64 of arbitrary bytes works, and the key comes back encoded.
    c.roundtrip(b"ms AAECAwQF/w== 1 b k\r\nx\r\n", b"HD kAAECAwQF/w== b\r\n");
    c.roundtrip(b"mg AAECAwQF/w== b k v\r\n", b"VA 1 kAAECAwQF/w== b\r\nx\r\n");
    c.expect_alive();
    assert_serving(&server, "after-base64");
}

#[test]
fn absurd_data_lengths_are_refused_without_buffering() {
    let server = Server::start(&["-t", "2"]);
    let base = rss_kib(server.pid());
    let mut c = server.client();
    c.roundtrip(b"ms foo -1\r\n", b"CLIENT_ERROR bad command line format\r\n");
    c.roundtrip(b"ms foo 99999999999999999999\r\n", b"CLIENT_ERROR bad command line format\r\n");
    c.roundtrip(b"ms foo 2147483646\r\nmn\r\n", b"CLIENT_ERROR bad command line format\r\nMN\r\n");
    // 100 MB declared and sent: swallowed as it arrives, never buffered (the RSS check
    // below), and refused (memcached sends the error once the block is swallowed).
    c.send(b"ms big 100000000 T0\r\n");
    for _ in 0..100 {
        c.send(vec![b'z'; 1_000_000]);
    }
    c.roundtrip(b"\r\nmg big\r\n", b"SERVER_ERROR object too large for cache\r\nEN\r\n");
    let rss = rss_kib(server.pid());
    assert!(rss < base + 64 * MIB, "RSS {base} KiB -> {rss} KiB after a huge declared ms");
    assert_serving(&server, "after-lengths");
}

/// Meta lines built from a vocabulary of flags, numbers and keys, pipelined by several
/// connections at once: whatever they do, the server stays up and a bystander's values
/// stay right.
#[test]
fn random_meta_flag_soup_leaves_server_and_other_clients_unaffected() {
    let server = Server::start(&["-t", "2"]);
    let bystander = MetaBystander::start(server.port);
    let mut rng = Rng::new(0x6d65_7461);
    const CMDS: [&str; 7] = ["mg", "ms", "md", "ma", "me", "mn", "mx"];
    const FLAGS: [&str; 40] = [
        "v", "k", "b", "q", "c", "t", "s", "f", "h", "l", "u", "O", "Oabc", "T", "T-1", "T30", "N", "N0", "N30", "R",
        "R99", "C", "C0", "C1", "I", "MS", "ME", "MA", "MP", "MR", "MI", "MD", "M+", "Mx", "J5", "D", "D9", "F",
        "F4294967296", "E5",
    ];
    const KEYS: [&str; 6] = ["k", "Zm9v", "AP8=", "Zm9", "key with space", "\x01\x02"];
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(5))).ok();
        s.set_read_timeout(Some(Duration::from_millis(20))).ok();
        let mut batch = Vec::new();
        for _ in 0..2000 {
            let cmd = CMDS[rng.below(CMDS.len() as u64) as usize];
            let mut line = format!("{cmd} {}", KEYS[rng.below(KEYS.len() as u64) as usize]);
            let len = rng.below(4);
            if cmd == "ms" {
                line.push_str(&format!(" {len}"));
            }
            for _ in 0..rng.below(22) {
                line.push(' ');
                line.push_str(FLAGS[rng.below(FLAGS.len() as u64) as usize]);
            }
            line.push_str("\r\n");
            if cmd == "ms" {
                line.push_str(&"d".repeat(len as usize + rng.below(2) as usize));
                line.push_str("\r\n");
            }
            batch.extend_from_slice(line.as_bytes());
        }
        let _ = s.write_all(&batch);
        conns.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 1 << 16];
    for s in &mut conns {
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(_) => break,
            }
        }
    }
    assert_serving(&server, "after-soup");
    bystander.finish();
}
