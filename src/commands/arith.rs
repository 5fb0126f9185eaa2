//! incr and decr, exactly as memcached's `do_add_delta`: the value must be a decimal
//! number (`safe_strtoull`, as memcached parses it in place); incr wraps at 2^64, decr
//! stops at zero; a result that fits in the old length is written over it, padded with
//! spaces (memcached's in-place update), a longer one makes a new item. Either way the
//! item gets a new cas unique. Counted in `incr_hits`/`incr_misses` (and decr's).

use super::Ctx;
use crate::protocol::Outcome;
use crate::rules::strtoull;
use crate::rules::StoreMode;
use crate::store::{Rewrite, Shard, StoreOutcome};

pub fn incr_decr<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], incr: bool, delta: u64) -> Outcome<'s> {
    let c = ctx.counters;
    let (hits, misses) = if incr { (&c.incr_hits, &c.incr_misses) } else { (&c.decr_hits, &c.decr_misses) };
    match apply(ctx.shard, key, incr, delta, ctx.now) {
        Rewrite::Done(n) => {
            hits.incr();
            Outcome::Number(n)
        }
        Rewrite::NotFound => {
            misses.incr();
            Outcome::NotFound
        }
        Rewrite::Refused => Outcome::NonNumeric,
        Rewrite::NoMemory => Outcome::ArithNoMemory,
    }
}

/// Binary Increment/Decrement (memcached's `complete_incr_bin`): a non-zero `cas` must
/// match; a miss creates the item with the initial value (not initial + delta) and the
/// request's expiry when `create` allows, else counts a miss. The reply carries the new
/// cas unique.
pub fn counter<'s>(
    ctx: &'s mut Ctx<'_>,
    key: &[u8],
    incr: bool,
    delta: u64,
    create: Option<(u64, i64)>,
    cas: u64,
) -> Outcome<'s> {
    if cas != 0 {
        match ctx.shard.item_cas(key, ctx.now) {
            Some(current) if current != cas => return Outcome::Exists,
            _ => {}
        }
    }
    let cas_of = |ctx: &Ctx<'_>| if ctx.cas_enabled { ctx.shard.last_cas() } else { 0 };
    let c = ctx.counters;
    let (hits, misses) = if incr { (&c.incr_hits, &c.incr_misses) } else { (&c.decr_hits, &c.decr_misses) };
    match apply(ctx.shard, key, incr, delta, ctx.now) {
        Rewrite::Done(n) => {
            hits.incr();
            Outcome::NumberCas(n, cas_of(ctx))
        }
        // memcached counts no miss when it creates the item.
        Rewrite::NotFound => match create {
            Some((initial, exptime)) => {
                let mut digits = itoa::Buffer::new();
                let exptime = ctx.expiry(exptime);
                match ctx.shard.store(StoreMode::Add, key, 0, exptime, digits.format(initial).as_bytes(), 0, ctx.now) {
                    StoreOutcome::Stored => Outcome::NumberCas(initial, cas_of(ctx)),
                    StoreOutcome::OutOfMemory => Outcome::StoreNoMemory,
                    _ => Outcome::NotStored,
                }
            }
            None => {
                misses.incr();
                Outcome::NotFound
            }
        },
        Rewrite::Refused => Outcome::NonNumeric,
        Rewrite::NoMemory => Outcome::ArithNoMemory,
    }
}

/// incr/decr on a shard, without counters: the new value, or why not.
pub fn apply(shard: &mut Shard, key: &[u8], incr: bool, delta: u64, now: u32) -> Rewrite<u64> {
    shard.rewrite_value(key, now, |old, new| {
        let n = apply_delta(strtoull(old)?, incr, delta);
        render(n, old.len(), new);
        Some(n)
    })
}

/// The new counter: incr wraps at 2^64, decr stops at zero.
pub fn apply_delta(value: u64, incr: bool, delta: u64) -> u64 {
    if incr {
        value.wrapping_add(delta)
    } else {
        value.saturating_sub(delta)
    }
}

/// Writes `n` in decimal into `out` as memcached stores it over an old value of
/// `old_len` bytes: padded with spaces to `old_len` when the digits fit (memcached's
/// in-place update), else exactly the digits. Returns whether it fit in place.
pub fn render(n: u64, old_len: usize, out: &mut Vec<u8>) -> bool {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    out.clear();
    out.extend_from_slice(digits);
    if digits.len() <= old_len {
        out.resize(old_len, b' ');
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn shard() -> Shard {
        Shard::new(StoreConfig { memory_limit: 8 << 20, item_size_max: 1 << 20, evict: true, shard_id: 0, shard_count: 1 })
    }

    fn set(s: &mut Shard, key: &[u8], value: &[u8]) {
        assert_eq!(s.store(StoreMode::Set, key, 0, 0, value, 0, 1), StoreOutcome::Stored);
    }

    #[test]
    fn incr_decr_like_do_add_delta() {
        let mut s = shard();
        assert_eq!(apply(&mut s, b"n", true, 1, 1), Rewrite::NotFound);
        s.store(StoreMode::Set, b"n", 4, 0, b"100", 0, 1);
        let cas0 = s.get(b"n", 1).unwrap().cas;
        assert_eq!(apply(&mut s, b"n", false, 1, 1), Rewrite::Done(99));
        let it = s.get(b"n", 1).unwrap();
        assert_eq!(
            (it.value, it.flags),
            (&b"99 "[..], 4),
            "in place, padded to the old length"
        );
        assert_ne!(it.cas, cas0, "new CAS even in place");
        assert_eq!(apply(&mut s, b"n", false, 1000, 1), Rewrite::Done(0));
        assert_eq!(s.get(b"n", 1).unwrap().value, b"0  ");
        let total = s.stats().total_items;
        assert_eq!(
            apply(&mut s, b"n", true, 12345, 1),
            Rewrite::Done(12345)
        );
        assert_eq!(
            s.get(b"n", 1).unwrap().value,
            b"12345",
            "longer: exactly the digits"
        );
        assert_eq!(
            s.stats().total_items,
            total + 1,
            "a realloc counts as a store"
        );
        s.store(StoreMode::Set, b"w", 0, 0, b"18446744073709551615", 0, 1);
        assert_eq!(
            apply(&mut s, b"w", true, 2, 1),
            Rewrite::Done(1),
            "wraps at 2^64"
        );
        assert_eq!(s.get(b"w", 1).unwrap().value, b"1                   ");
        for bad in [&b""[..], b"abc", b"-1", b"12abc", b"18446744073709551616"] {
            s.store(StoreMode::Set, b"b", 0, 0, bad, 0, 1);
            assert_eq!(
                apply(&mut s, b"b", true, 1, 1),
                Rewrite::Refused,
                "{bad:?}"
            );
        }
        s.store(StoreMode::Set, b"b", 0, 0, b" 5", 0, 1);
        assert_eq!(apply(&mut s, b"b", true, 1, 1), Rewrite::Done(6));
        s.store(StoreMode::Set, b"b", 0, 0, b"12 abc", 0, 1);
        assert_eq!(apply(&mut s, b"b", true, 1, 1), Rewrite::Done(13));
        assert_eq!(s.get(b"b", 1).unwrap().value, b"13    ");
        s.store(StoreMode::Set, b"e", 0, 10, b"5", 0, 1);
        assert_eq!(
            apply(&mut s, b"e", true, 1, 10),
            Rewrite::NotFound,
            "expired"
        );
        s.check_invariants();
    }

    #[test]
    fn every_change_gets_a_new_cas() {
        let mut s = shard();
        set(&mut s, b"n", b"10");
        let before = s.get(b"n", 1).unwrap().cas;
        assert_eq!(apply(&mut s, b"n", true, 1, 1), Rewrite::Done(11));
        let in_place = s.get(b"n", 1).unwrap().cas;
        assert_ne!(in_place, before);
        assert_eq!(apply(&mut s, b"n", true, 1000, 1), Rewrite::Done(1011));
        assert_ne!(s.get(b"n", 1).unwrap().cas, in_place);
    }

    #[test]
    fn delta_wraps_and_floors() {
        assert_eq!(apply_delta(u64::MAX, true, 1), 0);
        assert_eq!(apply_delta(u64::MAX - 1, true, 3), 1);
        assert_eq!(apply_delta(5, false, 10), 0);
        assert_eq!(apply_delta(5, false, 5), 0);
        assert_eq!(apply_delta(10, false, 3), 7);
    }

    #[test]
    fn renders_in_place_with_padding() {
        let mut out = Vec::new();
        assert!(render(99, 3, &mut out));
        assert_eq!(out, b"99 ");
        assert!(render(0, 5, &mut out));
        assert_eq!(out, b"0    ");
        assert!(!render(100, 2, &mut out));
        assert_eq!(out, b"100");
        assert!(render(100, 3, &mut out));
        assert_eq!(out, b"100");
    }
}
