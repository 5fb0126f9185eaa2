//! The item counters memcached keeps about expiry and flush_all (issue #17):
//! `get_expired`, `get_flushed`, `reclaimed`, `expired_unfetched`, and what `curr_items`
//! says in between; and flush_all in the second it was given. Run with -t 1 and -t 2,
//! and against memcached (`MC_SERVER_BIN`).

mod common;

use std::time::{Duration, Instant};

use common::{stat_num, Client, Server};

fn counters(c: &mut Client, names: &[&str]) -> Vec<u64> {
    let st = c.stats("");
    names.iter().map(|n| stat_num(&st, n)).collect()
}

/// Waits (up to 5 s) until `stats` shows `want` for `names`.
fn wait_for(c: &mut Client, names: &[&str], want: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = counters(c, names);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{names:?} stayed {got:?}, expected {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A get that meets an item just past its expiry counts `get_expired` (the background
/// reclaim comes by later); items nobody asks for are reclaimed within seconds.
fn expiry_counters(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    c.roundtrip("set soon 0 1 1\r\nx\r\n", "STORED\r\n");
    let deadline = Instant::now() + Duration::from_secs(4);
    while c.get("soon").is_some() {
        assert!(Instant::now() < deadline, "still there 4 s after an exptime of 1");
        std::thread::sleep(Duration::from_millis(10));
    }
    let names = ["get_expired", "reclaimed", "expired_unfetched", "curr_items"];
    assert_eq!(counters(&mut c, &names), [1, 0, 0, 0], "{names:?} after the get that found it expired");
    for i in 0..10 {
        c.roundtrip(format!("set e{i} 0 1 1\r\nx\r\n"), "STORED\r\n");
    }
    c.roundtrip("set kept 0 0 1\r\nx\r\n", "STORED\r\n");
    assert_eq!(c.stat_u64("curr_items"), 11);
    wait_for(&mut c, &names, &[1, 10, 10, 1]);
}

/// flush_all is lazy in memcached: each flushed item is met either by a lookup
/// (`get_flushed`) or by the reclaim (`reclaimed`), and counts in `curr_items` until
/// then; an item stored after the flush, in the same second, stays. (How soon
/// memcached's LRU maintainer reclaims varies, so only the sums are fixed.)
fn flush_counters(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    for k in ["a", "b", "c"] {
        c.roundtrip(format!("set {k} 0 0 1\r\nx\r\n"), "STORED\r\n");
        c.roundtrip(format!("get {k}\r\n"), format!("VALUE {k} 0 1\r\nx\r\nEND\r\n"));
    }
    c.roundtrip("flush_all\r\n", "OK\r\n");
    c.roundtrip("set e 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get e\r\n", "VALUE e 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("get a\r\n", "END\r\n");
    c.roundtrip("touch c 0\r\n", "NOT_FOUND\r\n");
    let names = ["get_flushed", "reclaimed", "expired_unfetched", "curr_items"];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = counters(&mut c, &names);
        let (met, unmet) = (got[0] + got[1], got[3] - 1);
        assert_eq!(met + unmet, 3, "{names:?} {got:?}: each flushed item counted once");
        assert_eq!(got[2], 0, "all were fetched");
        if unmet == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{names:?} stayed {got:?}: flushed items not reclaimed");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.roundtrip("get e\r\n", "VALUE e 0 1\r\nx\r\nEND\r\n");
}

/// Without CAS (-C) memcached flushes by the clock alone: an item stored in the
/// flush's own second is gone too.
fn flush_without_cas_takes_the_whole_second(threads: &str) {
    let s = Server::start(&["-t", threads, "-C"]);
    let mut c = s.client();
    for attempt in 0.. {
        let t0 = c.stat_u64("time");
        c.roundtrip("flush_all\r\n", "OK\r\n");
        c.roundtrip(format!("set k{attempt} 0 0 1\r\nx\r\n"), "STORED\r\n");
        let hit = c.get(&format!("k{attempt}")).is_some();
        if c.stat_u64("time") != t0 {
            assert!(attempt < 5, "the clock ticked in every attempt");
            continue; // the second ended in between: try again
        }
        assert!(!hit, "an item stored in the flush's second is flushed without CAS");
        break;
    }
    // In a later second it stays.
    std::thread::sleep(Duration::from_millis(1100));
    c.roundtrip("set later 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get later\r\n", "VALUE later 0 1\r\nx\r\nEND\r\n");
}

per_threads!(expiry_counters, flush_counters, flush_without_cas_takes_the_whole_second);
