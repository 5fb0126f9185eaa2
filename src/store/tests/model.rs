//! Model-based test: random operation sequences against a plain HashMap model.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::commands::arith;
use crate::rules::{item_size_ok, strtoull};
use crate::store::Rewrite;

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Gat(u8, u8),
    Store(StoreMode, u8, u32, u8, ValueGen, bool),
    Delete(u8),
    Touch(u8, u8),
    Arith(u8, bool, u64),
    Flush,
    Advance(u8),
    Reclaim(u8),
    /// cache_memlimit, in KiB (only where evictions are allowed: it evicts).
    Limit(u8),
}

#[derive(Clone, Debug)]
enum ValueGen {
    Bytes(usize),
    Number(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub(in crate::store) struct MItem {
    pub(in crate::store) value: Vec<u8>,
    pub(in crate::store) flags: u32,
    pub(in crate::store) exptime: u32,
    pub(in crate::store) cas: u64,
}

fn mode() -> impl Strategy<Value = StoreMode> {
    prop_oneof![
        4 => Just(StoreMode::Set),
        1 => Just(StoreMode::Add),
        1 => Just(StoreMode::Replace),
        1 => Just(StoreMode::Append),
        1 => Just(StoreMode::Prepend),
        2 => Just(StoreMode::Cas),
    ]
}

fn value_gen() -> impl Strategy<Value = ValueGen> {
    prop_oneof![
        3 => (0usize..700).prop_map(ValueGen::Bytes),
        3 => (500usize..1990).prop_map(ValueGen::Bytes),
        1 => (0usize..3000).prop_map(ValueGen::Bytes),
        2 => prop_oneof![any::<u64>(), 0u64..200, Just(u64::MAX)].prop_map(ValueGen::Number),
    ]
}

fn op(keys: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        36 => (0..keys).prop_map(Op::Get),
        6 => (0..keys, any::<u8>()).prop_map(|(k, t)| Op::Gat(k, t)),
        60 => (mode(), 0..keys, prop_oneof![Just(0u32), any::<u32>()], any::<u8>(), value_gen(), any::<bool>())
            .prop_map(|(m, k, f, t, v, c)| Op::Store(m, k, f, t, v, c)),
        4 => (0..keys).prop_map(Op::Delete),
        6 => (0..keys, any::<u8>()).prop_map(|(k, t)| Op::Touch(k, t)),
        12 => (0..keys, any::<bool>(), prop_oneof![0u64..10, any::<u64>()]).prop_map(|(k, i, d)| Op::Arith(k, i, d)),
        1 => Just(Op::Flush),
        6 => (0u8..4).prop_map(Op::Advance),
        6 => (0u8..20).prop_map(Op::Reclaim),
        1 => (8u8..40).prop_map(Op::Limit),
    ]
}

/// exptime from a random byte: mostly never, else a few seconds around now.
fn exptime(t: u8, now: u32) -> u32 {
    match t % 8 {
        0..=5 => 0,
        _ => (now + (t as u32 % 8)).saturating_sub(1),
    }
}

fn key_of(k: u8) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

struct Harness {
    shard: Shard,
    model: HashMap<Vec<u8>, MItem>,
    now: u32,
    may_evict: bool,
    serial: u64,
    max_cas: u64,
    /// Keys a flush_all found: the shard may still count them until it meets them.
    flushed: std::collections::HashSet<Vec<u8>>,
}

impl Harness {
    fn live(&self, k: &[u8]) -> Option<&MItem> {
        self.model
            .get(k)
            .filter(|m| m.exptime == 0 || m.exptime > self.now)
    }

    /// Brings the model in line with evictions, and checks that the shard holds exactly
    /// what the model holds for this key otherwise.
    fn sync(&mut self, k: &[u8]) {
        let got = self.shard.peek(k, self.now);
        let want = self.live(k).cloned();
        match (got, want) {
            (None, Some(_)) => {
                assert!(
                    self.may_evict && self.shard.stats().evictions > 0,
                    "item lost without eviction"
                );
                self.model.remove(k);
            }
            (Some(g), None) => panic!("ghost item {k:?}: {g:?}"),
            (Some(g), Some(w)) => assert_eq!(g, w),
            (None, None) => {}
        }
    }

    /// After a refused write under -M: the model takes what the shard kept.
    fn resync(&mut self, k: &[u8]) {
        match self.shard.peek(k, self.now) {
            Some(g) => self.model.insert(k.to_vec(), g),
            None => self.model.remove(k),
        };
    }

    fn value(&mut self, gen: &ValueGen) -> Vec<u8> {
        self.serial += 1;
        match *gen {
            ValueGen::Bytes(n) => (0..n).map(|i| (self.serial as usize + i) as u8).collect(),
            ValueGen::Number(n) => n.to_string().into_bytes(),
        }
    }

    /// After a successful write the shard's new CAS is recorded in the model.
    fn record_cas(&mut self, k: &[u8]) {
        if let Some(g) = self.shard.peek(k, self.now) {
            if let Some(m) = self.model.get_mut(k) {
                assert!(g.cas > self.max_cas, "CAS uniques increase");
                self.max_cas = g.cas;
                m.cas = g.cas;
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Get(k) => {
                let k = key_of(*k);
                self.sync(&k);
                let got = self
                    .shard
                    .get(&k, now)
                    .map(|i| (i.value.to_vec(), i.flags, i.cas));
                let want = self.live(&k).map(|m| (m.value.clone(), m.flags, m.cas));
                assert_eq!(got, want);
            }
            Op::Gat(k, t) => {
                let k = key_of(*k);
                self.sync(&k);
                let e = exptime(*t, now);
                let live = self.live(&k).is_some();
                if !live {
                    self.model.remove(&k);
                } else if let Some(m) = self.model.get_mut(&k) {
                    m.exptime = e;
                }
                let got = self
                    .shard
                    .get_and_touch(&k, e, now)
                    .map(|i| (i.value.to_vec(), i.flags, i.cas));
                let want = self
                    .model
                    .get(&k)
                    .map(|m| (m.value.clone(), m.flags, m.cas));
                if got.is_none() && want.is_some() {
                    // Only -M can fail to rewrite the record for its new exptime.
                    assert!(!self.shard.config.evict);
                    self.resync(&k);
                } else {
                    assert_eq!(got, want);
                }
            }
            Op::Store(mode, k, flags, t, gen, right_cas) => {
                let k = key_of(*k);
                self.sync(&k);
                let value = self.value(gen);
                let e = exptime(*t, now);
                let live = self.live(&k).cloned();
                let cas_in = match (&live, right_cas) {
                    (Some(m), true) => m.cas,
                    _ => 12345,
                };
                let got = self.shard.store(*mode, &k, *flags, e, &value, cas_in, now);
                let want = model_store(
                    &mut self.model,
                    live.clone(),
                    *mode,
                    &k,
                    *flags,
                    e,
                    value,
                    cas_in,
                    now,
                );
                if got == StoreOutcome::OutOfMemory && want == StoreOutcome::Stored {
                    assert!(!self.shard.config.evict, "OutOfMemory only with -M");
                    // As memcached: a failed set drops the old value; others keep it.
                    let kept = self.shard.peek(&k, now);
                    if *mode == StoreMode::Set {
                        assert_eq!(kept, None);
                    } else {
                        assert_eq!(kept, live);
                    }
                    self.resync(&k);
                    return;
                }
                assert_eq!(got, want, "{mode:?}");
                if got == StoreOutcome::Stored {
                    self.record_cas(&k);
                }
            }
            Op::Delete(k) => {
                let k = key_of(*k);
                self.sync(&k);
                let want = self.live(&k).is_some();
                self.model.remove(&k);
                assert_eq!(self.shard.delete(&k, now), want);
            }
            Op::Touch(k, t) => {
                let k = key_of(*k);
                self.sync(&k);
                let e = exptime(*t, now);
                let want = self.live(&k).is_some();
                let got = self.shard.touch(&k, e, now);
                if want {
                    if got {
                        if let Some(m) = self.model.get_mut(&k) {
                            m.exptime = e;
                        }
                    } else {
                        assert!(!self.shard.config.evict);
                        self.resync(&k);
                    }
                } else {
                    self.model.remove(&k);
                    assert!(!got);
                }
            }
            Op::Arith(k, incr, delta) => {
                let k = key_of(*k);
                self.sync(&k);
                let got = arith::apply(&mut self.shard, &k, *incr, *delta, now);
                let want = match self.live(&k).cloned() {
                    None => {
                        self.model.remove(&k);
                        Rewrite::NotFound
                    }
                    Some(m) => match strtoull(&m.value) {
                        None => Rewrite::Refused,
                        Some(n) => {
                            let new = arith::apply_delta(n, *incr, *delta);
                            let mut digits = new.to_string().into_bytes();
                            if digits.len() < m.value.len() {
                                digits.resize(m.value.len(), b' ');
                            }
                            self.model.insert(k.clone(), MItem { value: digits, ..m });
                            Rewrite::Done(new)
                        }
                    },
                };
                if got == Rewrite::NoMemory {
                    assert!(!self.shard.config.evict);
                    self.resync(&k);
                    return;
                }
                assert_eq!(got, want);
                if matches!(got, Rewrite::Done(_)) {
                    self.record_cas(&k);
                }
            }
            Op::Flush => {
                self.shard.flush_all(now, false);
                self.flushed.extend(self.model.drain().map(|(k, _)| k));
            }
            Op::Advance(d) => self.now += *d as u32,
            Op::Limit(kib) => {
                if self.may_evict {
                    self.shard.set_memory_limit((*kib as usize) << 10);
                    assert!(
                        self.shard.stats().allocated
                            <= ((*kib as u64) << 10)
                                .max(8192 + 8 * self.shard.index_slots() as u64)
                    );
                }
            }
            Op::Reclaim(b) => {
                let n = self.shard.reclaim_expired(now, *b as usize);
                assert!(n <= *b as usize);
            }
        }
    }

    fn check_all(&mut self, keys: u8) {
        self.shard.check_invariants();
        for k in 0..keys {
            self.sync(&key_of(k));
        }
        let st = self.shard.stats();
        let live = self
            .model
            .values()
            .filter(|m| m.exptime == 0 || m.exptime > self.now)
            .count();
        assert!(
            st.curr_items as usize >= live,
            "curr_items {} < live {live}",
            st.curr_items
        );
        let counted = self.model.len() + self.flushed.iter().filter(|k| !self.model.contains_key(*k)).count();
        assert!(st.curr_items as usize <= counted);
        let slack = (2 * self.shard.segment_size() + self.shard.index_slots() * 8) as u64;
        assert!(
            st.allocated <= st.limit_maxbytes.max(slack),
            "allocated {}",
            st.allocated
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn model_store(
    model: &mut HashMap<Vec<u8>, MItem>,
    live: Option<MItem>,
    mode: StoreMode,
    k: &[u8],
    flags: u32,
    exptime: u32,
    value: Vec<u8>,
    cas_in: u64,
    now: u32,
) -> StoreOutcome {
    if !item_size_ok(k.len(), value.len(), 2048) {
        if mode == StoreMode::Set {
            model.remove(k);
        }
        return StoreOutcome::TooLarge;
    }
    if live.is_none() {
        model.remove(k);
    }
    let (flags, exptime, value) = match (mode, &live) {
        (StoreMode::Add, Some(_)) => return StoreOutcome::NotStored,
        (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
            return StoreOutcome::NotStored
        }
        (StoreMode::Cas, None) => return StoreOutcome::NotFound,
        (StoreMode::Cas, Some(m)) if m.cas != cas_in => return StoreOutcome::Exists,
        (StoreMode::Append, Some(m)) => (m.flags, m.exptime, [&m.value[..], &value].concat()),
        (StoreMode::Prepend, Some(m)) => (m.flags, m.exptime, [&value[..], &m.value].concat()),
        _ => (flags, exptime, value),
    };
    if !item_size_ok(k.len(), value.len(), 2048) {
        return StoreOutcome::TooLarge;
    }
    if exptime != 0 && exptime <= now {
        model.remove(k);
    } else {
        model.insert(
            k.to_vec(),
            MItem {
                value,
                flags,
                exptime,
                cas: 0,
            },
        );
    }
    StoreOutcome::Stored
}

/// `exact`: the shard must never lose an item (no eviction allowed at all).
fn run(ops: &[Op], keys: u8, limit: usize, evict: bool, exact: bool) {
    let mut h = Harness {
        shard: small_shard(limit, evict),
        model: HashMap::new(),
        now: 1,
        may_evict: evict && !exact,
        serial: 0,
        max_cas: 0,
        flushed: Default::default(),
    };
    for (i, op) in ops.iter().enumerate() {
        h.apply(op);
        if i % 16 == 0 {
            h.check_all(keys);
        }
    }
    h.check_all(keys);
    if exact {
        assert_eq!(h.shard.stats().evictions, 0);
    }
}

proptest! {
    // 128 cases by default; PROPTEST_CASES=n for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    /// Plenty of memory: the shard is exactly the model.
    #[test]
    fn model_exact_with_room(ops in prop::collection::vec(op(12), 1..300)) {
        run(&ops, 12, 4 << 20, true, true);
    }

    /// Little memory, evicting: misses only where evictions happened.
    #[test]
    fn model_with_eviction(ops in prop::collection::vec(op(64), 1..500), limit in 10usize..28) {
        run(&ops, 64, limit << 10, true, false);
    }

    /// Little memory, -M: nothing is ever lost, stores fail with OutOfMemory instead.
    #[test]
    fn model_without_eviction(ops in prop::collection::vec(op(64), 1..500), limit in 10usize..28) {
        run(&ops, 64, limit << 10, false, true);
    }
}
