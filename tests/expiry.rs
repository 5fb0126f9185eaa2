//! Expiry: relative TTLs, negative TTLs, absolute unix times, and touch/gat moving
//! the expiry. memcached's clock ticks once a second, hence the generous sleeps.

mod common;

use common::Server;
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ttl_one_second(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    c.roundtrip("set t1 0 1 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("set forever 0 0 1\r\ny\r\n", "STORED\r\n");
    c.roundtrip("get t1\r\n", "VALUE t1 0 1\r\nx\r\nEND\r\n");
    sleep(Duration::from_millis(2100));
    c.roundtrip("get t1 forever\r\n", "VALUE forever 0 1\r\ny\r\nEND\r\n");
    // An expired key behaves as missing for every command.
    c.roundtrip("set t2 0 1 1\r\n5\r\n", "STORED\r\n");
    sleep(Duration::from_millis(2100));
    c.roundtrip(
        "incr t2 1\r\ntouch t2 10\r\ndelete t2\r\nappend t2 0 0 1\r\nz\r\n",
        "NOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r\nNOT_STORED\r\n",
    );
    c.roundtrip(
        "add t2 0 0 1\r\nw\r\nget t2\r\n",
        "STORED\r\nVALUE t2 0 1\r\nw\r\nEND\r\n",
    );
    let st = c.stats("");
    // memcached-rs reclaims expired items in the background every second, so the
    // expired item may be gone (counted in `reclaimed`) before the get finds it.
    let reclaimed_first = !common::is_reference() && common::stat_num(&st, "reclaimed") >= 1;
    assert!(
        common::stat_num(&st, "get_expired") >= 1 || reclaimed_first,
        "get_expired counts the expired hit (or the background reclaim took it first)"
    );
}

fn negative_ttl_never_visible(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    c.roundtrip("set neg 0 -1 1\r\nx\r\nget neg\r\n", "STORED\r\nEND\r\n");
    // It also removes an existing value.
    c.roundtrip(
        "set neg2 0 0 1\r\nx\r\nset neg2 0 -100 1\r\ny\r\nget neg2\r\n",
        "STORED\r\nSTORED\r\nEND\r\n",
    );
    c.roundtrip(
        "add neg 0 0 1\r\nz\r\nget neg\r\n",
        "STORED\r\nVALUE neg 0 1\r\nz\r\nEND\r\n",
    );
}

fn absolute_times(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    let past = now() - 10;
    let future = now() + 100;
    // Over 30 days (2592000 s) means an absolute unix time.
    c.roundtrip(
        format!("set past 0 {past} 1\r\nx\r\nget past\r\n"),
        "STORED\r\nEND\r\n",
    );
    c.roundtrip(
        format!("set future 0 {future} 1\r\nx\r\nget future\r\n"),
        "STORED\r\nVALUE future 0 1\r\nx\r\nEND\r\n",
    );
    // Exactly 30 days is still relative; one more is absolute (1970 + 30 days: past).
    c.roundtrip(
        "set rel30 0 2592000 1\r\nx\r\nget rel30\r\n",
        "STORED\r\nVALUE rel30 0 1\r\nx\r\nEND\r\n",
    );
    c.roundtrip(
        "set abs30 0 2592001 1\r\nx\r\nget abs30\r\n",
        "STORED\r\nEND\r\n",
    );
    // An absolute time a moment ahead expires on time.
    let soon = now() + 2;
    c.roundtrip(
        format!("set soon 0 {soon} 1\r\nx\r\nget soon\r\n"),
        "STORED\r\nVALUE soon 0 1\r\nx\r\nEND\r\n",
    );
    sleep(Duration::from_millis(3200));
    c.roundtrip("get soon future\r\n", "VALUE future 0 1\r\nx\r\nEND\r\n");
}

fn touch_and_gat_change_expiry(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    // touch extends a short TTL ...
    c.roundtrip(
        "set a 0 1 1\r\nx\r\nset b 0 1 1\r\ny\r\nset c 0 100 1\r\nz\r\nset d 0 100 1\r\nw\r\n",
        "STORED\r\n".repeat(4),
    );
    c.roundtrip("touch a 100\r\n", "TOUCHED\r\n");
    c.roundtrip("gat 100 b\r\n", "VALUE b 0 1\r\ny\r\nEND\r\n");
    // ... and shortens a long one; gats too.
    c.roundtrip("touch c 1\r\n", "TOUCHED\r\n");
    c.send("gats 1 d\r\n");
    let line = c.read_line();
    assert!(
        line.starts_with(b"VALUE d 0 1 "),
        "gats line {}",
        common::escape(&line)
    );
    c.expect(b"w\r\nEND\r\n");
    sleep(Duration::from_millis(2200));
    c.roundtrip(
        "get a b c d\r\n",
        "VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n",
    );
    // touch with a negative time expires at once; gat 0 makes it permanent.
    c.roundtrip("touch a -1\r\nget a\r\n", "TOUCHED\r\nEND\r\n");
    c.roundtrip(
        "set e 0 1 1\r\nv\r\ngat 0 e\r\n",
        "STORED\r\nVALUE e 0 1\r\nv\r\nEND\r\n",
    );
    sleep(Duration::from_millis(2200));
    c.roundtrip("get e\r\n", "VALUE e 0 1\r\nv\r\nEND\r\n");
}

per_threads!(
    ttl_one_second,
    negative_ttl_never_visible,
    absolute_times,
    touch_and_gat_change_expiry
);
