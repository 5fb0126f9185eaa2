//! memcached's limits on a connection (issue #17): `-R` (requests per event before the
//! connection yields, `conn_yields`) and `-o idle_timeout` (idle connections closed,
//! `idle_kicks`). Run with -t 1 and -t 2, and against memcached (`MC_SERVER_BIN`).

mod common;

use std::time::{Duration, Instant};

use common::{Server, REPLY_TIMEOUT};

/// n gets sent in one write make floor((n - 1) / R) yields, as memcached counts them.
fn requests_per_event(threads: &str) {
    let s = Server::start(&["-t", threads, "-R", "5"]);
    let mut c = s.client();
    let mut monitor = s.client();
    c.roundtrip("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    for (n, want) in [(1, 0), (5, 0), (6, 1), (10, 1), (11, 2), (21, 4), (100, 19)] {
        let before = monitor.stat_u64("conn_yields");
        c.send("get a\r\n".repeat(n));
        c.expect("VALUE a 0 1\r\nx\r\nEND\r\n".repeat(n));
        // memcached counts a connection's yields when its turn ends, a moment after
        // the replies have left.
        std::thread::sleep(Duration::from_millis(50));
        let yields = monitor.stat_u64("conn_yields") - before;
        assert_eq!(yields, want, "{n} gets in one write with -R 5");
    }
    // Yielding loses nothing: a long pipeline of sets and gets is answered in order.
    let mut pipeline = String::new();
    let mut replies = String::new();
    for i in 0..300 {
        pipeline += &format!("set k{i} 0 0 {}\r\n{i}\r\nget k{i}\r\n", i.to_string().len());
        replies += &format!("STORED\r\nVALUE k{i} 0 {}\r\n{i}\r\nEND\r\n", i.to_string().len());
    }
    c.send(pipeline);
    c.expect(replies);
}

/// A connection idle for more than N seconds is closed and counted; one that keeps
/// talking is not, and `idle_kicks` appears in `stats` only with the option.
fn idle_timeout_closes_idle_connections(threads: &str) {
    let s = Server::start(&["-t", threads]);
    assert!(!s.client().stats("").contains_key("idle_kicks"), "idle_kicks only with idle_timeout");
    drop(s);
    let s = Server::start(&["-t", threads, "-o", "idle_timeout=2"]);
    let mut idle = s.client();
    let mut busy = s.client();
    idle.expect_alive();
    let started = Instant::now();
    // The busy connection talks every 300 ms while the idle one is kicked.
    let closed_after = loop {
        busy.expect_alive();
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() < Duration::from_millis(1500) {
            continue;
        }
        if started.elapsed() > Duration::from_secs(6) {
            panic!("the idle connection was not closed within 6 s (idle_timeout=2)");
        }
        if idle_closed(&mut idle) {
            break started.elapsed();
        }
    };
    assert!(closed_after >= Duration::from_secs(2), "closed after {closed_after:?}: sooner than 2 s");
    busy.expect_alive();
    assert_eq!(busy.stat_u64("idle_kicks"), 1);
    assert_eq!(s.client().stats("settings").get("idle_timeout").map(String::as_str), Some("2"));
}

/// Whether the server has closed `c` (probed with a `version` that must get no reply).
fn idle_closed(c: &mut common::Client) -> bool {
    use std::io::Read;
    let stream = &mut c.stream;
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 64];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected bytes from an idle connection: {:?}", &byte[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).ok();
    closed
}

per_threads!(requests_per_event, idle_timeout_closes_idle_connections);
