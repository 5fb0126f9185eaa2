//! Memory bounds: -m caps what is stored, the least recently used items are evicted
//! (counted in `evictions`); with -M the server refuses instead.

mod common;

use common::{stat_num, Client, Server};

const VALUE_LEN: usize = 1024;
const OOM: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";

/// Store keys `key{from}..key{to}` with 1 KiB values, 100 a write; returns how many
/// were refused with memcached's out-of-memory error (any other reply fails).
fn fill(c: &mut Client, from: usize, to: usize, hot: Option<&str>) -> usize {
    fill_ttl(c, from, to, hot, 0)
}

fn fill_ttl(c: &mut Client, from: usize, to: usize, hot: Option<&str>, ttl: u32) -> usize {
    let value = vec![b'v'; VALUE_LEN];
    let mut refused = 0;
    let mut i = from;
    while i < to {
        let end = (i + 100).min(to);
        let mut req = Vec::new();
        for k in i..end {
            req.extend_from_slice(format!("set key{k} 0 {ttl} {VALUE_LEN}\r\n").as_bytes());
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
        }
        c.send(&req);
        for k in i..end {
            let line = c.read_line();
            if line == OOM {
                refused += 1;
            } else if line != b"STORED\r\n" {
                panic!("set key{k}: {}", common::escape(&line));
            }
        }
        // A key read all through the fill stays recently used and must survive.
        if let Some(hot) = hot {
            assert!(c.get(hot).is_some(), "hot key {hot} evicted at key{end}");
        }
        i = end;
    }
    refused
}

fn evicts_lru(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "8"]);
    let mut c = s.client();
    let rss_before = s.rss_kib();
    c.set("hot", b"hot value");
    // 40 MB of values into 8 MB.
    let refused = fill(&mut c, 0, 40_000, Some("hot"));
    assert_eq!(refused, 0, "without -M nothing is refused");
    let st = c.stats("");
    let evictions = stat_num(&st, "evictions");
    let items = stat_num(&st, "curr_items");
    let bytes = stat_num(&st, "bytes");
    let limit = stat_num(&st, "limit_maxbytes");
    assert_eq!(limit, 8 * 1024 * 1024);
    assert!(evictions > 0, "evictions {evictions}");
    assert!(bytes <= limit, "bytes {bytes} over limit {limit}");
    assert!(
        items as usize * VALUE_LEN <= limit as usize,
        "{items} items of 1 KiB cannot fit in {limit}"
    );
    assert!(
        items as usize * VALUE_LEN >= limit as usize / 2,
        "only {items} items kept: memory badly used"
    );
    assert_eq!(stat_num(&st, "total_items"), 40_001);
    assert_eq!(
        evictions + items,
        40_001,
        "every item is either still there or evicted"
    );
    // Oldest gone, newest and the hot one present.
    for k in 0..100 {
        assert_eq!(
            c.get(&format!("key{k}")),
            None,
            "key{k} should have been evicted"
        );
    }
    for k in 39_900..40_000 {
        assert!(c.get(&format!("key{k}")).is_some(), "recent key{k} missing");
    }
    assert_eq!(c.get("hot").as_deref(), Some(&b"hot value"[..]));
    // The process did not keep the 40 MB.
    let grown = s.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 24 * 1024,
        "RSS grew by {grown} KiB storing into -m 8"
    );
}

fn refuses_with_capital_m(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "8", "-M"]);
    let mut c = s.client();
    let refused = fill(&mut c, 0, 20_000, None);
    assert!(refused > 0, "-M must refuse once full");
    let st = c.stats("");
    let items = stat_num(&st, "curr_items");
    assert_eq!(stat_num(&st, "evictions"), 0, "-M never evicts");
    assert_eq!(items as usize + refused, 20_000);
    assert!(
        items as usize * VALUE_LEN >= 4 * 1024 * 1024,
        "only {items} items stored before refusing"
    );
    // The refused data block was swallowed: the connection goes on, and nothing
    // stored earlier was dropped.
    for k in 0..100 {
        assert!(c.get(&format!("key{k}")).is_some(), "key{k} lost under -M");
    }
    c.expect_alive();
}

/// Expired items make room before any live item is evicted.
///
/// Sized per core: 8 MB of -m for each thread. memcached-rs splits -m over its cores
/// and each core's shard works in 1 MiB segments, so at 4 MB a core (-m 8 -t 2) three
/// segments and the index are all a core has, too few for the 3 MB each core must hold
/// here before the first items expire (a capacity limit of tiny -m, not of expiry).
fn reclaims_expired_before_evicting(threads: &str) {
    let t: usize = threads.parse().unwrap_or(1);
    let m = (8 * t).to_string();
    let s = Server::start(&["-t", threads, "-m", &m]);
    let mut c = s.client();
    // ~4 MB a core that expires, then ~2 MB a core that lives (-m 8 holds ~7000 such
    // items).
    assert_eq!(fill_ttl(&mut c, 0, 4000 * t, None, 1), 0);
    assert_eq!(fill(&mut c, 10_000 * t, 10_000 * t + 2000 * t, None), 0);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    // Another ~2 MB a core: live data stays at half of -m, but only fits if the
    // expired items are reused.
    assert_eq!(fill(&mut c, 20_000 * t, 20_000 * t + 2000 * t, None), 0);
    let st = c.stats("");
    let evictions = stat_num(&st, "evictions");
    assert_eq!(
        evictions, 0,
        "{evictions} live items evicted while expired ones sat in memory"
    );
    for k in (10_000 * t..10_000 * t + 2000 * t).chain(20_000 * t..20_000 * t + 2000 * t).step_by(7) {
        assert!(c.get(&format!("key{k}")).is_some(), "live key{k} lost");
    }
}

per_threads!(
    evicts_lru,
    refuses_with_capital_m,
    reclaims_expired_before_evicting
);
