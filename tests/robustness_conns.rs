//! Many connections against the real server binary: thousands held idle, and the `-c`
//! limit refusing only the extra client (issue 6).
//!
//! Split out of robustness.rs (#13): these two need many descriptors and check the
//! server's connection accounting (`curr_connections`, `rejected_connections`), not
//! what one hostile client does. Runs against memcached too (`MC_SERVER_BIN`).

mod common;
mod robust_common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_version_line, Server};
use robust_common::{assert_serving, drain, raise_nofile};

#[test]
fn two_thousand_idle_connections() {
    let have = raise_nofile(8192);
    assert!(
        have >= 2100,
        "this test needs 2100 descriptors, the hard limit allows {have}"
    );
    let server = Server::start(&["-t", "2", "-c", "4096"]);
    let mut idle = Vec::new();
    for i in 0..2000 {
        let s = TcpStream::connect(("127.0.0.1", server.port))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        idle.push(s);
    }
    let mut c = server.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = c.stat_u64("curr_connections");
        if open > 2000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {open} connections open after 10 s"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Then all of them still answer.
    for s in &mut idle {
        s.write_all(b"version\r\n")
            .expect("write to an idle connection");
    }
    for (i, s) in idle.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut line = [0u8; 16];
        s.read_exact(&mut line)
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        assert_version_line(&line);
    }
    assert_serving(&server, "after-2000-connections");
}

#[test]
fn connection_limit_refuses_the_extra_client_only() {
    // -c 32: memcached's -c is also its descriptor limit, and with fewer it cannot
    // accept at all with two threads (its own descriptors count against it).
    let server = Server::start(&["-t", "2", "-c", "32"]);
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..48 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        // A refused client is told at once; an admitted one hears nothing.
        let (got, closed) = drain(&mut s, Duration::from_millis(300), Duration::from_secs(5));
        if !got.is_empty() || closed {
            assert_eq!(
                String::from_utf8_lossy(&got),
                "ERROR Too many open connections\r\n"
            );
            assert!(
                closed || drain(&mut s, Duration::from_secs(2), Duration::from_secs(5)).1,
                "refused but left open"
            );
            refused += 1;
        } else {
            open.push(s);
        }
    }
    // Silent so far: admitted, or refused late (a loaded machine). Ask each.
    let mut admitted = Vec::new();
    for mut s in open {
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let _ = s.write_all(b"version\r\n");
        let mut line = [0u8; 16];
        match s.read_exact(&mut line) {
            Ok(()) if line.starts_with(b"VERSION ") => {
                assert_version_line(&line);
                admitted.push(s);
            }
            Ok(()) => {
                assert!(
                    line.starts_with(b"ERROR Too many o"),
                    "unexpected {:?}",
                    String::from_utf8_lossy(&line)
                );
                refused += 1;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) =>
            {
                refused += 1
            }
            Err(e) => panic!("a connection neither answered nor was refused: {e}"),
        }
    }
    assert!(refused >= 16, "-c 32: only {refused} of 48 connections refused");
    assert!((1..=32).contains(&admitted.len()), "{} connections admitted under -c 32", admitted.len());
    admitted[0].write_all(b"stats\r\n").expect("write");
    let (stats, _) = drain(
        &mut admitted[0],
        Duration::from_millis(500),
        Duration::from_secs(5),
    );
    let counted = format!("STAT rejected_connections {refused}\r\n");
    assert!(
        String::from_utf8_lossy(&stats).contains(&counted),
        "rejected_connections: want {refused}"
    );
    // A slot freed is a slot available again.
    drop(admitted.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let _ = s.write_all(b"version\r\n");
        let mut line = [0u8; 16];
        if s.read_exact(&mut line).is_ok() && line.starts_with(b"VERSION") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot after a client left");
        thread::sleep(Duration::from_millis(50));
    }
}
