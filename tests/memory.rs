//! Memory bounds: -m caps what is stored, the least recently used items are evicted
//! (counted in `evictions`); with -M the server refuses instead.

mod common;
mod robust_common;

use std::io::Read;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{stat_num, Client, Server};
use robust_common::{assert_serving, peak_rss_kib, rss_kib, Rng};

const MIB: u64 = 1024;

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

// ---- memory under load (hostile clients; issue 6) ----

#[test]
fn memory_stays_within_m_under_a_gigabyte_of_writes() {
    skip_on_reference!("memcached does not answer every one of these sets with STORED (its slab allocator refuses some); this holds ours to storing all within -m");
    let server = Server::start(&["-t", "2", "-m", "64", "-I", "1m"]);
    let pid = server.pid();
    let base = rss_kib(pid);
    let total: u64 = 1 << 30;
    let pattern: Arc<Vec<u8>> = Arc::new((0..(1 << 20) + 2048).map(|i| (i % 251) as u8).collect());
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let pattern = pattern.clone();
        let mut c = server.client();
        writers.push(thread::spawn(move || {
            let mut rng = Rng::new(0x5eed + w);
            let (mut written, mut requests, mut batch) = (0u64, 0u64, Vec::new());
            let mut reader = c.stream.try_clone().expect("clone");
            // Replies are read on another thread so the pipeline never stalls.
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let counter = thread::spawn(move || {
                let mut replies = Vec::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut expected = 0u64;
                let mut done = false;
                loop {
                    while let Ok(n) = rx.try_recv() {
                        if n == u64::MAX {
                            done = true;
                        } else {
                            expected += n;
                        }
                    }
                    let lines = replies.len() as u64 / 8;
                    if done && lines >= expected {
                        return replies;
                    }
                    reader.set_read_timeout(Some(Duration::from_secs(20))).ok();
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => return replies,
                        Ok(n) => replies.extend_from_slice(&buf[..n]),
                    }
                }
            });
            while written < total / 2 {
                let size = match rng.below(100) {
                    0..=69 => 10 + rng.below(4096),
                    70..=94 => 4096 + rng.below(100_000),
                    _ => 100_000 + rng.below((1 << 20) - 100_000 - 400),
                } as usize;
                let key = format!("mem:{w}:{}", rng.below(50_000));
                let start = rng.below(1024) as usize;
                batch.extend_from_slice(format!("set {key} 0 0 {size}\r\n").as_bytes());
                batch.extend_from_slice(&pattern[start..start + size - 400.min(size)]);
                batch.extend(std::iter::repeat_n(b'x', 400.min(size)));
                batch.extend_from_slice(b"\r\n");
                written += size as u64;
                requests += 1;
                if batch.len() > 1 << 20 {
                    c.send(&batch);
                    batch.clear();
                }
            }
            c.send(&batch);
            tx.send(requests).ok();
            tx.send(u64::MAX).ok();
            let replies = counter.join().expect("reader");
            (requests, replies)
        }));
    }
    let mut peak_seen = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        peak_seen = peak_seen.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(50));
    }
    for w in writers {
        let (requests, replies) = w.join().expect("writer");
        let stored = replies.windows(8).filter(|w| w == b"STORED\r\n").count() as u64;
        assert_eq!(replies.len() as u64, requests * 8, "every set answered");
        assert_eq!(stored, requests, "every set STORED");
    }
    let mut c = server.client();
    let stats = c.stats("");
    let (bytes, limit) = (
        stat_num(&stats, "bytes"),
        stat_num(&stats, "limit_maxbytes"),
    );
    assert!(
        stat_num(&stats, "evictions") > 0,
        "1 GB into 64 MB must evict"
    );
    assert!(bytes <= limit, "bytes {bytes} > limit_maxbytes {limit}");
    let peak = peak_rss_kib(pid).max(peak_seen);
    eprintln!(
        "-m 64, 1 GiB written: RSS {base} KiB at start, peak {peak} KiB, now {} KiB",
        rss_kib(pid)
    );
    // Issue 5's bound: -m plus 10% plus a fixed few MiB (the binary, stacks, the index,
    // two connections' buffers of up to 1 MiB each). Measured: about 72 MiB.
    let bound = 64 * MIB * 11 / 10 + 8 * MIB;
    assert!(
        peak < bound,
        "peak RSS {peak} KiB over -m 64 + 10% + 8 MiB = {bound} KiB (start {base} KiB)"
    );
    assert_serving(&server, "after-1gb");
}

/// Connections that once moved large values go back to small buffers when idle: a
/// hundred of them that each read eight values of 900 KB (from both cores) and stored
/// one must not keep a value-sized buffer apiece (that would be 100 MiB and more).
#[test]
fn idle_connections_give_back_large_value_buffers() {
    let server = Server::start(&["-t", "2", "-m", "16"]);
    let pid = server.pid();
    let value = vec![b'L'; 900_000];
    let mut c = server.client();
    // Fill the store to its limit first, so that later stores do not grow it.
    for i in 0..40 {
        c.set(&format!("fill{i}"), &value);
    }
    let keys: Vec<String> = (0..8).map(|i| format!("big{i}")).collect();
    for k in &keys {
        c.set(k, &value);
    }
    let base = rss_kib(pid);
    let mut idle = Vec::new();
    for n in 0..100 {
        let mut conn = server.client();
        for k in &keys {
            // An evicted key reads as a miss; a present one must be whole.
            if let Some(got) = conn.get(k) {
                assert!(got == value, "{k}: wrong value");
            }
        }
        conn.set(&keys[n % keys.len()], &value);
        idle.push(conn);
    }
    let rss = rss_kib(pid);
    eprintln!("100 idle connections after 900 KB values: RSS {base} KiB -> {rss} KiB");
    assert!(
        rss < base + 24 * MIB,
        "RSS grew from {base} KiB to {rss} KiB for 100 idle connections"
    );
    for conn in &mut idle {
        conn.expect_alive();
    }
    assert_serving(&server, "after-idle-large");
}

/// Clients that announce a large value and send it slowly cost about the value each:
/// the read buffer grows to the request's size, not to the next power of two (1 MiB
/// for these 600 000-byte values), and is freed once the value is in.
#[test]
fn slow_large_values_cost_their_size() {
    let server = Server::start(&["-t", "2", "-m", "64"]);
    let pid = server.pid();
    let n = 40;
    let size = 600_000;
    let mut slow: Vec<Client> = (0..n).map(|_| server.client()).collect();
    let base = rss_kib(pid);
    for (i, c) in slow.iter_mut().enumerate() {
        c.send(format!("set slow{i} 0 0 {size}\r\n"));
        c.send(vec![b's'; size / 2]);
    }
    // Every connection now waits for the rest of its value.
    let mut other = server.client();
    other.set("probe", b"p");
    let rss = rss_kib(pid);
    eprintln!("{n} half-sent {size}-byte values: RSS {base} KiB -> {rss} KiB");
    let bound = base + n as u64 * (size as u64 / 1024 + 64) + 8 * MIB;
    assert!(
        rss < bound,
        "RSS {rss} KiB over {bound} KiB for {n} half-sent values"
    );
    for (i, c) in slow.iter_mut().enumerate() {
        c.send(vec![b's'; size - size / 2]);
        c.send(b"\r\n");
        c.expect(b"STORED\r\n");
        assert_eq!(c.get(&format!("slow{i}")).map(|v| v.len()), Some(size));
    }
    let after = rss_kib(pid);
    eprintln!("values stored: RSS {after} KiB");
    assert_serving(&server, "after-slow-values");
}
