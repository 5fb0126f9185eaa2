//! The one model of a shard: operation sequences and a plain HashMap of what
//! [`Shard`](super::Shard) must answer to them. Both the fuzz targets (`fuzz/`, with
//! the `model` feature) and the property tests (`store/tests/model.rs`) drive it, so a
//! rule of the store is written down once.
//!
//! `exact`: the shard may never lose an item (large limit), so every answer is
//! checked. Otherwise (small limit) items may be evicted at any time: a miss is
//! allowed, and the model learns from it; but a hit must return exactly the last value
//! written (no stale or ghost items), and the memory held stays within the limit.
//!
//! The operations themselves and their decoding from bytes are in `model/ops.rs`.

use std::collections::{HashMap, HashSet};

use super::{Rewrite, Shard, StoreOutcome};
use crate::commands::arith;
use crate::rules::{item_size_ok, strtoull as safe_strtoull};

mod ops;

use ops::{exptime, key_of};
pub use ops::{ops, Mode, Op, Value};

#[derive(Clone, Debug, PartialEq)]
struct Item {
    value: Vec<u8>,
    flags: u32,
    exptime: u32,
    /// The CAS unique, once a read has shown it.
    cas: Option<u64>,
    /// The largest CAS unique seen before this item was written: its own is larger.
    cas_floor: u64,
}

pub struct Harness {
    pub shard: Shard,
    exact: bool,
    evict: bool,
    seg_size: usize,
    item_size_max: usize,
    limit: usize,
    now: u32,
    model: HashMap<Vec<u8>, Item>,
    /// Keys whose state the model cannot know (a rewrite refused under -M).
    unknown: HashSet<Vec<u8>>,
    max_cas: u64,
    seen_cas: HashSet<u64>,
}

/// memcached's in-place incr/decr: the digits padded with spaces to the old length
/// when they fit, else just the digits.
fn rendered(n: u64, old_len: usize) -> Vec<u8> {
    let mut digits = n.to_string().into_bytes();
    if digits.len() <= old_len {
        digits.resize(old_len, b' ');
    }
    digits
}

impl Harness {
    pub fn new(
        shard: Shard,
        exact: bool,
        evict: bool,
        seg_size: usize,
        item_size_max: usize,
        limit: usize,
    ) -> Self {
        Harness {
            shard,
            exact,
            evict,
            seg_size,
            item_size_max,
            limit,
            now: 1,
            model: HashMap::new(),
            unknown: HashSet::new(),
            max_cas: 0,
            seen_cas: HashSet::new(),
        }
    }

    fn live(&self, k: &[u8]) -> Option<&Item> {
        self.model
            .get(k)
            .filter(|m| m.exptime == 0 || m.exptime > self.now)
    }

    /// The shard no longer has `k` although the model has it live: an eviction (only
    /// allowed when not exact).
    fn lost(&mut self, k: &[u8], what: &str) {
        assert!(!self.exact, "{what}: item {k:?} lost without eviction");
        // Under -M only a lowered limit evicts, and it makes its keys unknown first.
        assert!(self.evict, "{what}: item {k:?} lost under -M");
        self.model.remove(k);
    }

    /// The shard has `k` live: the model must agree (no ghosts, no stale values).
    fn must_be_live(&self, k: &[u8], what: &str) {
        if !self.unknown.contains(k) {
            assert!(self.live(k).is_some(), "{what}: ghost item {k:?}");
        }
    }

    /// The first sight of a written item's CAS: new, and larger than any seen before
    /// the write.
    fn new_cas(&mut self, cas: u64, floor: u64) {
        assert!(
            cas > floor,
            "CAS uniques must increase: {cas} written after {floor} was seen"
        );
        assert!(self.seen_cas.insert(cas), "CAS unique {cas} given twice");
        self.max_cas = self.max_cas.max(cas);
    }

    /// Reads `k` and checks it against the model; returns its CAS on a hit.
    fn read(&mut self, k: &[u8], what: &str) -> Option<u64> {
        let got = self
            .shard
            .get(k, self.now)
            .map(|i| (i.value.to_vec(), i.flags, i.cas));
        let Some((value, flags, cas)) = got else {
            if self.live(k).is_some() && !self.unknown.contains(k) {
                self.lost(k, what);
            }
            self.model.remove(k);
            self.unknown.remove(k);
            return None;
        };
        if self.unknown.contains(k) {
            // Its expiry is not known either: it stays unchecked until written again.
            return Some(cas);
        }
        let Some(m) = self
            .model
            .get_mut(k)
            .filter(|m| m.exptime == 0 || m.exptime > self.now)
        else {
            panic!("{what}: ghost item {k:?} = {value:?}");
        };
        assert_eq!(
            (&value, flags),
            (&m.value, m.flags),
            "{what}: wrong item for {k:?}"
        );
        match m.cas {
            Some(known) => assert_eq!(cas, known, "{what}: CAS changed without a write"),
            None => {
                m.cas = Some(cas);
                let floor = m.cas_floor;
                self.new_cas(cas, floor);
            }
        }
        Some(cas)
    }

    fn value(&self, v: &Value) -> Vec<u8> {
        match v {
            Value::Filled { len, fill } => vec![*fill; *len as usize % (self.item_size_max + 64)],
            Value::Number(n) => n.to_string().into_bytes(),
            Value::Text(t) => t.clone(),
        }
    }

    pub fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Get { key } => {
                let k = key_of(key);
                self.read(&k, "get");
            }
            Op::Gat { key, exp } => {
                let k = key_of(key);
                let e = exptime(exp, now);
                let got = self
                    .shard
                    .get_and_touch(&k, e, now)
                    .map(|i| (i.value.to_vec(), i.flags, i.cas));
                match got {
                    Some((value, flags, cas)) => {
                        if !self.unknown.contains(&k) {
                            self.must_be_live(&k, "gat");
                            let m = self.model.get_mut(&k).expect("live");
                            assert_eq!(
                                (&value, flags),
                                (&m.value, m.flags),
                                "gat: wrong item for {k:?}"
                            );
                            m.exptime = e;
                            match m.cas {
                                Some(known) => assert_eq!(cas, known, "gat changed the CAS"),
                                None => {
                                    m.cas = Some(cas);
                                    let floor = m.cas_floor;
                                    self.new_cas(cas, floor);
                                }
                            }
                        }
                    }
                    None => self.missed_rewrite(&k, "gat"),
                }
            }
            Op::Touch { key, exp } => {
                let k = key_of(key);
                let e = exptime(exp, now);
                if self.shard.touch(&k, e, now) {
                    if !self.unknown.contains(&k) {
                        self.must_be_live(&k, "touch");
                        if let Some(m) = self.model.get_mut(&k) {
                            m.exptime = e;
                        }
                    }
                } else {
                    self.missed_rewrite(&k, "touch");
                }
            }
            Op::Delete { key } => {
                let k = key_of(key);
                if self.shard.delete(&k, now) {
                    self.must_be_live(&k, "delete");
                } else if self.live(&k).is_some() && !self.unknown.contains(&k) {
                    self.lost(&k, "delete");
                }
                self.model.remove(&k);
                self.unknown.remove(&k);
            }
            Op::Store {
                mode,
                key,
                flags,
                exp,
                ref value,
                right_cas,
            } => {
                let k = key_of(key);
                let value = self.value(value);
                self.store(mode, &k, flags, exptime(exp, now), &value, right_cas);
            }
            Op::Arith { key, incr, delta } => self.arith(&key_of(key), incr, delta),
            Op::Flush => {
                self.shard.flush_all(now, false);
                self.model.clear();
                self.unknown.clear();
            }
            Op::Advance { secs } => self.now += u32::from(secs % 4),
            Op::Reclaim { budget } => {
                let n = self.shard.reclaim_expired(now, budget as usize);
                assert!(n <= budget as usize, "reclaimed {n} over a budget of {budget}");
            }
            Op::Limit { kib } => {
                if !self.exact {
                    self.limit = (usize::from(kib) + 1) * 1024;
                    self.shard.set_memory_limit(self.limit);
                    // Lowering the limit evicts even with -M.
                    let keys: Vec<_> = self.model.keys().cloned().collect();
                    self.unknown
                        .extend(keys.into_iter().filter(|_| !self.evict));
                }
            }
        }
        self.check_memory();
    }

    /// touch/gat found nothing: gone, or (-M) the rewrite for the new exptime failed.
    fn missed_rewrite(&mut self, k: &[u8], what: &str) {
        if self.live(k).is_some() && !self.unknown.contains(k) {
            if self.evict {
                self.lost(k, what);
            } else {
                self.unknown.insert(k.to_vec());
                return;
            }
        }
        self.model.remove(k);
    }

    fn store(&mut self, mode: Mode, k: &[u8], flags: u32, e: u32, value: &[u8], right_cas: bool) {
        let now = self.now;
        let mut cas_in = 7;
        if matches!(mode, Mode::Cas) {
            // Read first, so the model knows the unique to get right or wrong.
            let real = self.read(k, "cas read");
            cas_in = match real {
                Some(cas) if right_cas => cas,
                Some(cas) => cas ^ 1,
                None => 7,
            };
        }
        let known = !self.unknown.contains(k);
        let live = self.live(k).cloned();
        let got = self
            .shard
            .store(mode, k, flags, e, value, cas_in, now);
        let what = format!("{mode:?}");
        let what = what.as_str();
        if k.is_empty() || k.len() > 250 {
            assert_eq!(got, StoreOutcome::NotStored, "{what} of an invalid key");
            return;
        }
        if !item_size_ok(k.len(), value.len(), self.item_size_max) {
            assert_eq!(
                got,
                StoreOutcome::TooLarge,
                "{what} of {} bytes",
                value.len()
            );
            if matches!(mode, Mode::Set) {
                self.model.remove(k);
                self.unknown.remove(k);
            }
            return;
        }
        let write = |h: &mut Self, v: Vec<u8>, flags: u32, exptime: u32| {
            h.unknown.remove(k);
            let cas_floor = h.max_cas;
            h.model.insert(
                k.to_vec(),
                Item {
                    value: v,
                    flags,
                    exptime,
                    cas: None,
                    cas_floor,
                },
            );
        };
        match got {
            StoreOutcome::Stored => match mode {
                Mode::Set | Mode::Add => {
                    if matches!(mode, Mode::Add) && live.is_some() && known {
                        self.lost(k, what);
                    }
                    write(self, value.to_vec(), flags, e);
                }
                Mode::Replace | Mode::Cas => {
                    if known {
                        self.must_be_live(k, what);
                    }
                    write(self, value.to_vec(), flags, e);
                }
                Mode::Append | Mode::Prepend => {
                    if !known {
                        // The old value is not known: neither is the new one.
                        self.model.remove(k);
                        return;
                    }
                    self.must_be_live(k, what);
                    let old = live.clone().expect("live");
                    let v = if matches!(mode, Mode::Append) {
                        [&old.value[..], value].concat()
                    } else {
                        [value, &old.value[..]].concat()
                    };
                    write(self, v, old.flags, old.exptime);
                }
            },
            StoreOutcome::NotStored => match mode {
                Mode::Add => {
                    if known {
                        self.must_be_live(k, what);
                    }
                }
                Mode::Replace | Mode::Append | Mode::Prepend => {
                    if live.is_some() && known {
                        self.lost(k, what);
                    }
                    self.model.remove(k);
                    self.unknown.remove(k);
                }
                _ => panic!("{what}: NOT_STORED"),
            },
            StoreOutcome::NotFound => {
                assert!(matches!(mode, Mode::Cas), "{what}: NOT_FOUND");
                if live.is_some() && known {
                    self.lost(k, what);
                }
                self.model.remove(k);
                self.unknown.remove(k);
            }
            StoreOutcome::Exists => {
                assert!(matches!(mode, Mode::Cas), "{what}: EXISTS");
                if known {
                    self.must_be_live(k, what);
                    if let Some(cas) = live.as_ref().and_then(|m| m.cas) {
                        assert_ne!(cas, cas_in, "cas: EXISTS with the right unique");
                    }
                }
            }
            StoreOutcome::TooLarge => {
                assert!(
                    matches!(mode, Mode::Append | Mode::Prepend),
                    "{what}: TOO_LARGE"
                );
                if known {
                    self.must_be_live(k, what);
                    let old = live.clone().expect("live");
                    assert!(!item_size_ok(
                        k.len(),
                        old.value.len() + value.len(),
                        self.item_size_max
                    ));
                }
            }
            StoreOutcome::OutOfMemory => {
                assert!(!self.evict, "{what}: out of memory while evicting");
                if matches!(mode, Mode::Set) {
                    self.model.remove(k);
                    self.unknown.remove(k);
                }
            }
        }
        if self.exact {
            // Every answer is predictable: check the outcome itself.
            let want = exact_outcome(mode, live.as_ref(), cas_in, k, value, self.item_size_max);
            assert_eq!(got, want, "{what} {k:?}: model says {want:?}");
        }
    }

    fn arith(&mut self, k: &[u8], incr: bool, delta: u64) {
        let known = !self.unknown.contains(k);
        let live = self.live(k).cloned();
        match arith::apply(&mut self.shard, k, incr, delta, self.now) {
            Rewrite::NotFound => {
                if live.is_some() && known {
                    self.lost(k, "incr");
                }
                self.model.remove(k);
                self.unknown.remove(k);
            }
            Rewrite::Refused => {
                if known {
                    self.must_be_live(k, "incr");
                    assert_eq!(
                        safe_strtoull(&live.expect("live").value),
                        None,
                        "incr: NON_NUMERIC on a number"
                    );
                }
            }
            Rewrite::Done(n) => {
                if !known {
                    self.model.remove(k);
                    return;
                }
                self.must_be_live(k, "incr");
                let old = live.clone().expect("live");
                let Some(was) = safe_strtoull(&old.value) else {
                    panic!("incr of non-numeric {:?}", old.value)
                };
                let want = if incr {
                    was.wrapping_add(delta)
                } else {
                    was.saturating_sub(delta)
                };
                assert_eq!(n, want, "incr/decr of {was} by {delta}");
                let value = rendered(n, old.value.len());
                let cas_floor = self.max_cas;
                self.model.insert(
                    k.to_vec(),
                    Item {
                        value,
                        flags: old.flags,
                        exptime: old.exptime,
                        cas: None,
                        cas_floor,
                    },
                );
            }
            Rewrite::NoMemory => assert!(!self.evict, "incr: out of memory while evicting"),
        }
    }

    /// Every check at once: the shard's own invariants, every key of `0..keys` read
    /// back against the model, the memory bounds.
    pub fn check_all(&mut self, keys: u8) {
        self.shard.check_invariants();
        for k in 0..keys {
            self.read(&key_of(k), "check");
        }
        self.check_memory();
    }

    fn check_memory(&self) {
        let s = self.shard.stats();
        assert!(
            s.bytes <= s.allocated,
            "live bytes {} > allocated {}",
            s.bytes,
            s.allocated
        );
        // A shard always keeps two segments and their index, whatever the limit.
        let floor = 2 * self.seg_size + 64 * 1024;
        let bound = if self.limit >= floor {
            self.limit
        } else {
            floor
        };
        assert!(
            s.allocated as usize <= bound,
            "allocated {} > bound {bound} (limit {})",
            s.allocated,
            self.limit
        );
        if self.exact {
            let live = self
                .model
                .values()
                .filter(|m| m.exptime == 0 || m.exptime > self.now)
                .count();
            assert!(
                s.curr_items as usize >= live,
                "curr_items {} < {live} live in the model",
                s.curr_items
            );
            assert_eq!(s.evictions, 0);
        }
    }
}

/// What a shard that never evicts must answer.
fn exact_outcome(
    mode: Mode,
    live: Option<&Item>,
    cas_in: u64,
    k: &[u8],
    value: &[u8],
    max: usize,
) -> StoreOutcome {
    match (mode, live) {
        (Mode::Add, Some(_)) => StoreOutcome::NotStored,
        (Mode::Replace | Mode::Append | Mode::Prepend, None) => StoreOutcome::NotStored,
        (Mode::Cas, None) => StoreOutcome::NotFound,
        (Mode::Cas, Some(m)) if m.cas != Some(cas_in) => StoreOutcome::Exists,
        (Mode::Append | Mode::Prepend, Some(m))
            if !item_size_ok(k.len(), m.value.len() + value.len(), max) =>
        {
            StoreOutcome::TooLarge
        }
        _ => StoreOutcome::Stored,
    }
}
