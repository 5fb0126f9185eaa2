//! A small `-m` as people use it in tests and containers (issue #17): `-m 2` holds
//! about as many items as memcached's, and with `-M` a full cache refuses every
//! further store that needs memory, counted in `store_no_memory`. Run with -t 1 and
//! -t 2, and against memcached (`MC_SERVER_BIN`).

mod common;

use common::{stat_num, Server};

const OOM: &str = "SERVER_ERROR out of memory storing object";

/// Sets `n` distinct 100-byte items, 100 to a write; the reply line of each.
fn fill(c: &mut common::Client, n: usize) -> Vec<String> {
    let mut replies = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut req = Vec::new();
        for i in batch {
            req.extend_from_slice(format!("set key:{i:08} 0 0 100\r\n").as_bytes());
            req.extend_from_slice(&[b'v'; 100]);
            req.extend_from_slice(b"\r\n");
        }
        c.send(&req);
        for _ in batch {
            replies.push(String::from_utf8_lossy(&c.read_line()).trim_end().to_string());
        }
    }
    replies
}

/// memcached 1.6.18 holds 10922 such items at -m 2 (with or without -M, 1 or 2
/// threads); "about as many" is at least three quarters of that.
const MEMCACHED_AT_M2: u64 = 10_922;

fn small_m_holds_as_many_as_memcached(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "2"]);
    let mut c = s.client();
    assert!(fill(&mut c, 40_000).iter().all(|r| r == "STORED"), "without -M every set is stored");
    let st = c.stats("");
    let items = stat_num(&st, "curr_items");
    assert!(items >= MEMCACHED_AT_M2 * 3 / 4, "-m 2 holds {items} items, memcached {MEMCACHED_AT_M2}");
    assert!(stat_num(&st, "bytes") <= 2 << 20, "bytes within -m");
    assert_eq!(stat_num(&st, "evictions") + items, 40_000);
}

fn full_cache_refuses_with_capital_m(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "2", "-M"]);
    let mut c = s.client();
    let replies = fill(&mut c, 40_000);
    assert!(replies.iter().all(|r| r == "STORED" || r == OOM), "only STORED and {OOM}");
    let first_refusal = replies.iter().position(|r| r == OOM).expect("-M refuses once full");
    let refused = replies.iter().filter(|r| *r == OOM).count();
    let stored_later = replies[first_refusal..].iter().filter(|r| *r == "STORED").count();
    // memcached refuses every one once full. Here each core has its share of -m, so
    // while the last core fills up, keys of that core are still stored: as many as it
    // was short of the first core's count when that one filled. Keys go to cores by a
    // hash seeded per process, so that shortfall is random: with two cores, the keys
    // the other core got before the first one's C-th has a standard deviation of
    // sqrt(2C), about 110 here (60 runs: median 78, 90th percentile 158, largest 306).
    // The old bound, 1% of the remaining keys (275), failed 1 of those 60 and once in
    // CI. Bound at six standard deviations: a core that never refused would store
    // thousands more. With one core nothing is random and full is full, as memcached's.
    let bound = if threads == "1" { 0.0 } else { 6.0 * (first_refusal as f64).sqrt() };
    assert!(
        stored_later as f64 <= bound,
        "{stored_later} stored after the first refusal at {first_refusal} (bound {bound:.0})"
    );
    let st = c.stats("");
    let items = stat_num(&st, "curr_items");
    assert_eq!(stat_num(&st, "store_no_memory"), refused as u64);
    assert_eq!(stat_num(&st, "evictions"), 0);
    assert_eq!(items + refused as u64, 40_000);
    assert!(items >= MEMCACHED_AT_M2 * 3 / 4, "-m 2 -M holds {items} items, memcached {MEMCACHED_AT_M2}");
    // Full stays full: a second round of new keys is refused, every one, and an
    // overwrite of an item already stored needs memory too.
    c.send(b"set another 0 0 100\r\n");
    c.send([b'v'; 100]);
    c.roundtrip(b"\r\n", format!("{OOM}\r\n"));
    assert!(c.get("key:00000000").is_some(), "nothing stored earlier is dropped");
}

per_threads!(small_m_holds_as_many_as_memcached, full_cache_refuses_with_capital_m);
