//! memcached semantics of each operation.

use super::*;
use crate::store::StoreStats;

fn shard() -> Shard {
    Shard::new(config(8 << 20, 1 << 20, true))
}

fn value_of(s: &mut Shard, k: &[u8], now: u32) -> Option<Vec<u8>> {
    s.get(k, now).map(|i| i.value.to_vec())
}

#[test]
fn set_get_overwrite_delete() {
    let mut s = shard();
    assert_eq!(s.get(b"a", 1), None);
    assert_eq!(
        s.store(StoreMode::Set, b"a", 5, 0, b"one\r\ntwo", 0, 1),
        StoreOutcome::Stored
    );
    let it = s.get(b"a", 1).unwrap();
    assert_eq!((it.flags, it.value), (5, &b"one\r\ntwo"[..]));
    assert_eq!(
        s.store(StoreMode::Set, b"a", 0, 0, b"", 0, 1),
        StoreOutcome::Stored
    );
    let it = s.get(b"a", 1).unwrap();
    assert_eq!((it.flags, it.value), (0, &b""[..]));
    assert_eq!(s.stats().curr_items, 1);
    assert_eq!(s.stats().total_items, 2);
    assert!(s.delete(b"a", 1));
    assert!(!s.delete(b"a", 1));
    assert_eq!(s.get(b"a", 1), None);
    assert_eq!(s.stats().curr_items, 0);
    assert_eq!(s.stats().bytes, 0);
    s.check_invariants();
}

#[test]
fn add_replace_append_prepend() {
    let mut s = shard();
    assert_eq!(
        s.store(StoreMode::Replace, b"k", 0, 0, b"x", 0, 1),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Append, b"k", 0, 0, b"x", 0, 1),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k", 0, 0, b"x", 0, 1),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Add, b"k", 7, 100, b"mid", 0, 1),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Add, b"k", 0, 0, b"no", 0, 1),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Append, b"k", 9, 0, b">", 0, 1),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k", 9, 5, b"<", 0, 1),
        StoreOutcome::Stored
    );
    let it = s.get(b"k", 1).unwrap();
    assert_eq!(
        (it.flags, it.value),
        (7, &b"<mid>"[..]),
        "append/prepend keep flags"
    );
    assert_eq!(s.get(b"k", 99).map(|i| i.value.len()), Some(5));
    assert_eq!(s.get(b"k", 100), None, "append/prepend keep exptime");
    assert_eq!(
        s.store(StoreMode::Replace, b"k", 1, 0, b"r", 0, 100),
        StoreOutcome::NotStored
    );
    s.check_invariants();
}

#[test]
fn cas_semantics_and_server_wide_uniques() {
    let mut s = Shard::new(StoreConfig {
        shard_id: 2,
        shard_count: 4,
        ..config(4 << 20, 1 << 20, true)
    });
    assert_eq!(
        s.store(StoreMode::Cas, b"c", 0, 0, b"v", 1, 1),
        StoreOutcome::NotFound
    );
    s.store(StoreMode::Set, b"c", 0, 0, b"v1", 0, 1);
    let c1 = s.get(b"c", 1).unwrap().cas;
    assert_eq!(c1 % 4, 3, "seq * shard_count + shard_id + 1");
    assert_eq!(
        s.store(StoreMode::Cas, b"c", 0, 0, b"v2", c1 + 4, 1),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(StoreMode::Cas, b"c", 0, 0, b"v2", c1, 1),
        StoreOutcome::Stored
    );
    let c2 = s.get(b"c", 1).unwrap().cas;
    assert!(c2 > c1 && c2 % 4 == 3);
    assert_eq!(
        s.store(StoreMode::Cas, b"c", 0, 0, b"v3", c1, 1),
        StoreOutcome::Exists
    );
    assert!(s.touch(b"c", 50, 1));
    assert_eq!(s.get(b"c", 1).unwrap().cas, c2, "touch keeps the CAS");
    assert_eq!(value_of(&mut s, b"c", 1).as_deref(), Some(&b"v2"[..]));
}

#[test]
fn expiry_touch_and_gat() {
    let mut s = shard();
    s.store(StoreMode::Set, b"t", 0, 10, b"v", 0, 1);
    assert!(s.get(b"t", 9).is_some());
    assert!(s.get(b"t", 10).is_none(), "exptime <= now is expired");
    assert_eq!(s.stats().get_expired, 1);
    assert_eq!(s.stats().curr_items, 0);
    // A record without an exptime field gains one (rewritten), then is changed in place.
    s.store(StoreMode::Set, b"u", 3, 0, b"val", 0, 10);
    assert!(s.touch(b"u", 20, 10));
    assert!(s.get(b"u", 19).is_some());
    assert!(s
        .get_and_touch(b"u", 30, 19)
        .is_some_and(|i| i.value == b"val" && i.flags == 3));
    assert!(s.get(b"u", 29).is_some());
    assert!(s.touch(b"u", 0, 29));
    assert!(s.get(b"u", 1000).is_some(), "touch 0 = never expires");
    assert!(!s.touch(b"missing", 5, 1));
    assert!(s.get_and_touch(b"missing", 5, 1).is_none());
    assert_eq!(s.stats().curr_items, 1);
    s.check_invariants();
}

#[test]
fn store_with_past_exptime_is_stored_and_gone() {
    let mut s = shard();
    s.store(StoreMode::Set, b"p", 0, 0, b"old", 0, 5);
    assert_eq!(
        s.store(StoreMode::Set, b"p", 0, 5, b"new", 0, 5),
        StoreOutcome::Stored
    );
    assert_eq!(s.get(b"p", 5), None);
    assert_eq!(s.stats().curr_items, 0);
    assert_eq!(
        s.store(StoreMode::Add, b"p", 0, 4, b"x", 0, 5),
        StoreOutcome::Stored
    );
    assert_eq!(s.get(b"p", 5), None);
    s.check_invariants();
}

#[test]
fn too_large() {
    let mut s = shard();
    let max = 1 << 20;
    let fits = vec![b'x'; max - 56 - 1 - 2 - 3];
    assert_eq!(
        s.store(StoreMode::Set, b"big", 0, 0, &fits, 0, 1),
        StoreOutcome::Stored
    );
    assert_eq!(s.get(b"big", 1).map(|i| i.value.len()), Some(fits.len()));
    assert_eq!(
        s.store(StoreMode::Append, b"big", 0, 0, b"y", 0, 1),
        StoreOutcome::TooLarge
    );
    assert_eq!(
        s.get(b"big", 1).map(|i| i.value.len()),
        Some(fits.len()),
        "unchanged"
    );
    let over = vec![b'x'; max];
    assert_eq!(
        s.store(StoreMode::Set, b"big", 0, 0, &over, 0, 1),
        StoreOutcome::TooLarge
    );
    assert_eq!(
        s.get(b"big", 1),
        None,
        "a failed set drops the old value, as memcached does"
    );
    s.check_invariants();
}

#[test]
fn flush_all_empties_and_memory_is_reused() {
    let mut s = small_shard(64 << 10, true);
    for i in 0..200 {
        set(&mut s, &key(i), &[b'v'; 100], 1);
    }
    let before = s.stats().allocated;
    s.flush_all(1, false);
    // Lazy, as memcached's: still counted until a lookup or the reclaim meets them.
    assert_eq!(s.stats().curr_items, 200);
    assert!(s.get(&key(199), 1).is_none());
    let st = s.stats();
    assert_eq!((st.curr_items, st.get_flushed), (199, 1));
    assert_eq!(s.reclaim_expired(1, usize::MAX), 0, "the reclaim leaves them a second");
    assert_eq!(s.reclaim_expired(2, usize::MAX), 199);
    let st = s.stats();
    assert_eq!((st.curr_items, st.bytes, st.reclaimed), (0, 0, 199));
    s.check_invariants();
    for i in 0..200 {
        set(&mut s, &key(i), &[b'v'; 100], 2);
    }
    s.flush_all(2, false);
    for i in 0..200 {
        set(&mut s, &key(i), &[b'w'; 100], 2);
    }
    assert!(s.stats().allocated <= (64 << 10).max(before), "reused within the limit");
    assert_eq!(s.get(&key(199), 2).map(|i| i.value[0]), Some(b'w'));
    s.check_invariants();
}

#[test]
fn reset_stats_keeps_gauges() {
    let mut s = shard();
    set(&mut s, b"a", b"1", 1);
    s.store(StoreMode::Set, b"x", 0, 2, b"1", 0, 1);
    s.get(b"x", 3);
    s.reset_stats();
    let st = s.stats();
    assert_eq!(
        (
            st.curr_items,
            st.total_items,
            st.get_expired,
            st.limit_maxbytes
        ),
        (1, 0, 0, 8 << 20)
    );
    assert!(st.bytes > 0 && st.allocated > 0);
    let StoreStats {
        evictions,
        reclaimed,
        ..
    } = st;
    assert_eq!((evictions, reclaimed), (0, 0));
}

#[test]
fn odd_keys_never_panic() {
    let mut s = shard();
    assert_eq!(
        s.store(StoreMode::Set, b"", 0, 0, b"v", 0, 1),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Set, &[b'k'; 300], 0, 0, b"v", 0, 1),
        StoreOutcome::NotStored
    );
    let k250 = [0xffu8; 250];
    assert_eq!(
        s.store(StoreMode::Set, &k250, u32::MAX, u32::MAX, b"v", 0, 1),
        StoreOutcome::Stored
    );
    assert_eq!(s.get(&k250, 1).map(|i| i.flags), Some(u32::MAX));
    assert!(s.get(&[b'k'; 300], 1).is_none());
    s.check_invariants();
}

#[test]
fn size_histogram_counts_live_items() {
    let mut s = shard();
    set(&mut s, b"a", &[1; 10], 1);
    set(&mut s, b"b", &[1; 10], 1);
    set(&mut s, b"c", &[1; 100], 1);
    set(&mut s, b"c", &[1; 200], 1);
    assert_eq!(s.item_size_histogram(32), vec![(32, 2), (224, 1)]);
    assert_eq!(s.segment_size(), 1 << 20);
    assert_eq!(s.segments_allocated(), 1);
}

#[test]
fn absurd_sizes_are_refused_not_fatal() {
    // -I beyond what a segment can be: such items are refused, the shard keeps working.
    let mut s = Shard::new(config(4 << 20, 4 << 30, true));
    assert_eq!(s.segment_size(), 1 << 20, "a 4 MiB shard has four segments, whatever -I says");
    let huge = vec![0u8; (1 << 30) + 10];
    assert_eq!(
        s.store(StoreMode::Set, b"h", 0, 0, &huge, 0, 1),
        StoreOutcome::OutOfMemory
    );
    assert_eq!(set(&mut s, b"k", b"v", 1), StoreOutcome::Stored);
    assert_eq!(
        s.stats().allocated as usize,
        (1 << 20) + 64 * 8,
        "one lazily allocated segment"
    );
}

#[test]
fn prefetching_changes_nothing_a_lookup_sees() {
    // On an empty shard (no segment yet), then with items, deleted items and absent keys:
    // the prefetch steps only read, and never panic on what they find.
    let mut s = shard();
    let h = s.prefetch_slot(b"nothing");
    s.prefetch_record(h);
    for i in 0..1000 {
        set(&mut s, &key(i), format!("v{i}").as_bytes(), 1);
    }
    for i in (0..1000).step_by(3) {
        s.delete(&key(i), 1);
    }
    for i in 0..1200 {
        let h = s.prefetch_slot(&key(i));
        s.prefetch_record(h);
    }
    for i in 0..1200 {
        let got = s.get(&key(i), 1).map(|it| it.value.to_vec());
        let want = (i < 1000 && i % 3 != 0).then(|| format!("v{i}").into_bytes());
        assert_eq!(got, want, "key {i}");
    }
    s.check_invariants();
}
