//! Recency, scan resistance, expiry reclaim, `-M`, and the memory bound.

use super::*;

/// Stores distinct 100-byte items into a fresh shard until the first eviction; returns
/// how many fit.
fn capacity(limit: usize) -> usize {
    let mut s = small_shard(limit, true);
    let mut i = 0;
    while s.stats().evictions == 0 {
        set(&mut s, &key(i), &[b'c'; 100], 1);
        i += 1;
    }
    i - 1
}

#[test]
fn recently_read_items_survive_a_fill() {
    let limit = 64 << 10;
    let cap = capacity(limit);
    assert!(cap > 200, "capacity {cap}");
    let mut s = small_shard(limit, true);
    for i in 0..cap / 2 {
        set(&mut s, &key(i), &[b'o'; 100], 1);
    }
    // 12 read items: within the half segment one eviction may keep (4 KiB segments).
    for i in 0..12 {
        assert!(s.get(&key(i), 1).is_some());
    }
    // One capacity's worth of new, never-read items.
    for i in 0..cap {
        set(&mut s, &key(1_000_000 + i), &[b'n'; 100], 2);
    }
    let st = s.stats();
    assert!(st.evictions > 0);
    for i in 0..12 {
        assert!(s.get(&key(i), 2).is_some(), "read item {i} was evicted");
    }
    let unread_left = (12..cap / 2)
        .filter(|&i| s.get(&key(i), 2).is_some())
        .count();
    assert_eq!(unread_left, 0, "the old unread items went first");
    assert!(st.evicted_unfetched >= (cap / 2 - 12) as u64);
    s.check_invariants();
}

#[test]
fn scan_of_cold_keys_does_not_flush_hot_items() {
    let limit = 64 << 10;
    let cap = capacity(limit);
    let hot = 12; // fits the half segment that one eviction may keep (4 KiB segments here)
    let run = |read_hot: bool| {
        let mut s = small_shard(limit, true);
        for i in 0..hot {
            set(&mut s, &key(i), &[b'h'; 100], 1);
        }
        for i in 0..cap * 4 {
            set(&mut s, &key(100_000 + i), &[b's'; 100], 1);
            if read_hot && i % 64 == 0 {
                for h in 0..hot {
                    s.get(&key(h), 1);
                }
            }
        }
        s.check_invariants();
        (0..hot).filter(|&h| s.get(&key(h), 1).is_some()).count()
    };
    assert_eq!(run(true), hot, "items being read survive a 4x scan");
    assert_eq!(run(false), 0, "control: unread items do not");
}

#[test]
fn reclaim_expired_brings_curr_items_down_and_frees_memory() {
    let mut s = Shard::new(config(64 << 20, 1 << 20, true));
    for i in 0..5000 {
        s.store(StoreMode::Set, &key(i), 0, 10, &[b'e'; 200], 0, 1);
    }
    for i in 0..100 {
        set(&mut s, &key(900_000 + i), b"live", 1);
    }
    let allocated = s.stats().allocated;
    assert_eq!(s.reclaim_expired(9, 1000), 0, "nothing expired yet");
    assert_eq!(s.reclaim_expired(10, 1000), 0, "expired, but left a second for lookups to find");
    let mut steps = 0;
    let mut total = 0;
    loop {
        let n = s.reclaim_expired(11, 1000);
        assert!(n <= 1000);
        total += n;
        steps += 1;
        if n == 0 {
            break;
        }
    }
    assert_eq!(total, 5000);
    assert!(steps >= 5, "bounded steps");
    let st = s.stats();
    assert_eq!(
        (st.curr_items, st.reclaimed, st.expired_unfetched),
        (100, 5000, 5000)
    );
    assert_eq!(st.get_expired, 0);
    s.check_invariants();
    for i in 0..5000 {
        s.store(StoreMode::Set, &key(i), 0, 0, &[b'f'; 200], 0, 10);
    }
    assert_eq!(
        s.stats().allocated,
        allocated,
        "the freed memory was reused"
    );
    assert_eq!(s.stats().curr_items, 5100);
    s.check_invariants();
}

#[test]
fn expired_items_go_before_live_ones_are_evicted() {
    let limit = 64 << 10;
    let cap = capacity(limit);
    let mut s = small_shard(limit, true);
    let n_exp = cap * 8 / 10;
    for i in 0..n_exp {
        s.store(StoreMode::Set, &key(i), 0, 10, &[b'x'; 100], 0, 1);
    }
    let n_live = cap * 7 / 10;
    for i in 0..n_live {
        set(&mut s, &key(500_000 + i), &[b'l'; 100], 20);
    }
    let st = s.stats();
    assert_eq!(
        st.evictions, 0,
        "no live item evicted while expired ones held memory"
    );
    assert!(st.reclaimed > 0);
    assert_eq!(
        st.curr_items as usize,
        n_live + n_exp - st.reclaimed as usize
    );
    for i in 0..n_live {
        assert!(s.get(&key(500_000 + i), 20).is_some());
    }
    s.check_invariants();
}

#[test]
fn no_evict_mode_refuses_with_out_of_memory() {
    let mut s = small_shard(64 << 10, false);
    let mut stored = 0;
    let outcome = loop {
        match set(&mut s, &key(stored), &[b'm'; 100], 1) {
            StoreOutcome::Stored => stored += 1,
            other => break other,
        }
        assert!(stored < 100_000);
    };
    assert_eq!(outcome, StoreOutcome::OutOfMemory);
    assert_eq!(s.stats().evictions, 0);
    assert!(s.get(&key(stored), 1).is_none());
    for i in 0..stored {
        assert!(s.get(&key(i), 1).is_some(), "-M never drops a stored item");
    }
    assert_eq!(
        crate::commands::arith::apply(&mut s, b"nope", true, 1, 1),
        crate::store::Rewrite::NotFound
    );
    // Deleting makes room again (mostly-dead segments are compacted).
    for i in 0..stored / 2 {
        assert!(s.delete(&key(i), 1));
    }
    for i in 0..stored / 4 {
        assert_eq!(
            set(&mut s, &key(200_000 + i), &[b'm'; 100], 1),
            StoreOutcome::Stored
        );
    }
    // Expired items make room too.
    let mut t = small_shard(64 << 10, false);
    let mut n = 0;
    while t.store(StoreMode::Set, &key(n), 0, 5, &[b'm'; 100], 0, 1) == StoreOutcome::Stored {
        n += 1;
    }
    assert_eq!(set(&mut t, b"later", &[b'm'; 100], 5), StoreOutcome::Stored);
    assert_eq!(t.stats().evictions, 0);
    s.check_invariants();
    t.check_invariants();
}

#[test]
fn memory_held_stays_within_the_limit() {
    for limit in [24 << 10, 64 << 10, 256 << 10] {
        let mut s = small_shard(limit, true);
        for i in 0..20_000 {
            let len = (i * 37) % 700;
            set(&mut s, &key(i % 5000), &vec![b'z'; len], 1);
            if i % 3 == 0 {
                s.get(&key((i * 7) % 5000), 1);
            }
            let st = s.stats();
            assert!(st.allocated <= limit as u64, "{} > {limit}", st.allocated);
        }
        s.check_invariants();
    }
}

#[test]
fn set_memory_limit_sheds_and_grows() {
    let mut s = small_shard(256 << 10, true);
    for i in 0..5000 {
        set(&mut s, &key(i), &[b'q'; 100], 1);
    }
    let big = s.stats().curr_items;
    s.set_memory_limit(64 << 10);
    let st = s.stats();
    assert!(st.allocated <= 64 << 10, "{}", st.allocated);
    assert_eq!(st.limit_maxbytes, 64 << 10);
    assert!(st.curr_items < big && st.evictions > 0);
    assert!(
        s.index_slots() * 8 < 16 << 10,
        "the index shrank with the limit"
    );
    s.check_invariants();
    s.set_memory_limit(512 << 10);
    for i in 0..5000 {
        set(&mut s, &key(i), &[b'q'; 100], 1);
    }
    assert!(s.stats().curr_items > big);
    s.check_invariants();
}

#[test]
fn tiny_limit_still_works_with_two_segments() {
    let mut s = Shard::new(config(100 << 10, 1 << 20, true));
    assert_eq!(s.segment_size(), 64 << 10, "the smallest segments");
    for i in 0..100_000 {
        set(&mut s, &key(i), &[b't'; 32], 1);
    }
    let st = s.stats();
    assert!(st.curr_items > 1_000, "{} items", st.curr_items);
    assert!(st.allocated <= (128 << 10) + (s.index_slots() as u64) * 8);
    assert!(s.get(&key(99_999), 1).is_some());
    s.check_invariants();
}

#[test]
fn churn_with_real_segments_keeps_everything_consistent() {
    let limit = 6 << 20;
    let mut s = Shard::new(config(limit, 1 << 20, true));
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let big = vec![b'b'; 300_000];
    let mut now = 1;
    for i in 0..200_000u64 {
        let r = next();
        let k = key((r % 50_000) as usize);
        match r >> 60 {
            0..=7 => {
                let len = if r % 1000 == 0 {
                    300_000
                } else {
                    ((r >> 20) % 2000) as usize
                };
                let ttl = if (r >> 40) % 4 == 0 {
                    now + ((r >> 44) % 5) as u32
                } else {
                    0
                };
                assert_eq!(
                    s.store(StoreMode::Set, &k, 0, ttl, &big[..len], 0, now),
                    StoreOutcome::Stored
                );
            }
            8..=12 => {
                if let Some(v) = s.get(&k, now).map(|i| i.value.to_vec()) {
                    assert!(v.iter().all(|&b| b == b'b'));
                }
            }
            13 => {
                s.delete(&k, now);
            }
            14 => {
                s.store(StoreMode::Append, &k, 0, 0, b"bb", 0, now);
            }
            _ => {
                s.touch(&k, now + 3, now);
            }
        }
        if i % 1000 == 0 {
            now += 1;
            s.reclaim_expired(now, 200);
        }
        assert!(s.stats().allocated <= limit as u64);
    }
    let st = s.stats();
    println!("churn: {st:?}");
    assert!(st.evictions > 0 && st.reclaimed > 0, "{st:?}");
    s.check_invariants();
}

#[test]
fn items_read_often_survive_a_scan_twice_the_cache() {
    let limit = 64 << 10;
    let cap = capacity(limit);
    let hot = 12; // within the half segment one eviction may keep (4 KiB segments)
    let run = |reads: usize| {
        let mut s = small_shard(limit, true);
        for i in 0..hot {
            set(&mut s, &key(i), &[b'h'; 100], 1);
        }
        for _ in 0..reads {
            for h in 0..hot {
                assert!(s.get(&key(h), 1).is_some());
            }
        }
        // A one-off scan of cold keys, twice the cache, with no read of the hot set.
        for i in 0..cap * 2 {
            set(&mut s, &key(100_000 + i), &[b's'; 100], 1);
        }
        s.check_invariants();
        (0..hot).filter(|&h| s.get(&key(h), 1).is_some()).count()
    };
    assert_eq!(run(3), hot, "items read 3 times outlive a 2x scan");
    assert_eq!(run(1), 0, "control: items read once are kept one pass only");
}

#[test]
fn a_hot_set_filling_whole_segments_survives_a_scan() {
    let limit = 64 << 10;
    let cap = capacity(limit);
    let hot = cap / 8; // several whole 4 KiB segments of nothing but hot items
    let mut s = small_shard(limit, true);
    for i in 0..hot {
        set(&mut s, &key(i), &[b'h'; 100], 1);
    }
    for i in 0..cap * 3 {
        set(&mut s, &key(100_000 + i), &[b's'; 100], 1);
        if i % 32 == 0 {
            for h in 0..hot {
                s.get(&key(h), 1);
            }
        }
        assert!(s.stats().allocated <= limit as u64);
    }
    s.check_invariants();
    let kept = (0..hot).filter(|&h| s.get(&key(h), 1).is_some()).count();
    assert_eq!(kept, hot, "a hot set read throughout the scan is all still there (cap {cap})");
    // Everything read all the time: eviction still makes progress.
    let mut t = small_shard(limit, true);
    for i in 0..cap * 3 {
        set(&mut t, &key(i), &[b'a'; 100], 1);
        for j in i.saturating_sub(cap)..=i {
            t.get(&key(j), 1);
        }
    }
    assert!(t.stats().evictions > 0);
    t.check_invariants();
}

/// Records what eviction reports, wanted or not.
#[derive(Default)]
struct Recorded {
    wanted: std::sync::atomic::AtomicBool,
    asked: std::sync::atomic::AtomicUsize,
    items: std::sync::Mutex<Vec<(Vec<u8>, bool, i64, u32, u32, usize)>>,
}

struct Log(std::sync::Arc<Recorded>);

impl crate::store::EvictionLog for Log {
    fn wants(&self) -> bool {
        self.0.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.wanted.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn evicted(&self, e: &crate::store::Evicted) {
        self.0.items.lock().unwrap().push((e.key.to_vec(), e.fetched, e.ttl, e.idle, e.class, e.size));
    }
}

/// `watch evictions`' hook: asked once per segment evicted from, never told anything
/// while it does not want it; once it does, told every evicted item with memcached's
/// fields.
#[test]
fn evictions_are_reported_only_while_wanted() {
    use std::sync::atomic::Ordering::Relaxed;
    let rec = std::sync::Arc::new(Recorded::default());
    let mut s = small_shard(64 << 10, true);
    // memcached's classes of 96, 120, 152 and 192 bytes: a 16-byte key and a 100-byte
    // value make a 175-byte memcached item, class 4.
    s.configure_classes(vec![96, 120, 152, 192], true);
    s.set_eviction_log(std::sync::Arc::new(Log(rec.clone())));
    for i in 0..2_000 {
        set(&mut s, &key(i), &[b'a'; 100], 1);
    }
    let unwatched = s.stats().evictions;
    assert!(unwatched > 500, "evictions {unwatched}");
    assert!(rec.items.lock().unwrap().is_empty());
    let asked = rec.asked.load(Relaxed) as u64;
    assert!(asked > 0 && asked * 10 < unwatched, "asked {asked} times for {unwatched} evictions");
    rec.wanted.store(true, Relaxed);
    for i in 2_000..4_000 {
        let exptime = if i % 2 == 1 { 500 } else { 0 };
        s.store(StoreMode::Set, &key(i), 0, exptime, &[b'b'; 100], 0, 10);
    }
    let items = rec.items.lock().unwrap();
    assert_eq!(items.len() as u64, s.stats().evictions - unwatched, "one report per eviction");
    for (k, fetched, ttl, idle, class, size) in items.iter() {
        let i: usize = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
        assert!(!fetched);
        // Written at time 1, or at 10 (odd keys from 2000 expiring at 500). Idle: since
        // its segment became the write head, at 1 or 10.
        assert_eq!(*ttl, if i >= 2_000 && i % 2 == 1 { 490 } else { -1 }, "key {i}");
        assert!(*idle == 9 || *idle == 0, "key {i}: idle {idle}");
        assert_eq!((*class, *size), (4, 100), "key {i}");
    }
}
