//! The key index: an open-addressing table of `u64` entries, linear probing,
//! backward-shift deletion, no tombstones, no pointers.
//!
//! An entry packs `tag | segment+1 | offset`. The tag is the top bits of the key's hash
//! and the home slot is derived from the tag alone (`tag * slots >> tag_bits`), so the
//! table can be any size (it grows by 1.25x, not 2x, which keeps the bytes per item
//! low) and can be rebuilt without reading a single key. Entries whose home differs
//! from the probed key's can never match its tag, so a full key compare in the segment
//! happens almost only for the real item. Zero is the empty entry (segment+1 >= 1).

/// Bits for the segment number (stored +1, so up to 65535 segments).
pub const SEG_BITS: u32 = 16;
/// Segments a shard may have: bounded by the entry layout.
pub const MAX_SEGMENTS: usize = (1 << SEG_BITS) - 1;
/// Grow when the load would pass this (in 1/1000).
const MAX_LOAD_PERMILLE: usize = 850;
/// With `-M` and no memory to grow into, keep inserting up to this load.
pub const HARD_LOAD_PERMILLE: usize = 950;
pub const MIN_SLOTS: usize = 64;

/// Where a record lives: segment number and byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub seg: u32,
    pub off: u32,
}

pub struct Index {
    slots: Vec<u64>,
    count: usize,
    off_bits: u32,
    tag_bits: u32,
}

impl Index {
    /// `off_bits`: log2 of the segment size.
    pub fn new(off_bits: u32) -> Index {
        // At most 32 so that `tag * slots` cannot overflow; small segments leave bits unused.
        let tag_bits = (64 - SEG_BITS - off_bits).min(32);
        debug_assert!(tag_bits >= 8);
        Index {
            slots: vec![0; MIN_SLOTS],
            count: 0,
            off_bits,
            tag_bits,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }
    pub fn slots(&self) -> usize {
        self.slots.len()
    }
    /// Memory the table holds.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * 8
    }
    /// Slot count the table should grow to before holding `count + 1` entries, if any.
    pub fn wants_growth(&self) -> Option<usize> {
        let n = self.slots.len();
        if (self.count + 1) * 1000 > n * MAX_LOAD_PERMILLE {
            Some(n + n / 4)
        } else {
            None
        }
    }
    /// Whether one more entry still fits at the hard load limit.
    pub fn has_hard_room(&self) -> bool {
        (self.count + 1) * 1000 <= self.slots.len() * HARD_LOAD_PERMILLE
    }

    fn tag_of_hash(&self, hash: u64) -> u64 {
        hash >> (64 - self.tag_bits)
    }
    fn tag_of_entry(&self, e: u64) -> u64 {
        e >> (64 - self.tag_bits)
    }
    fn home(&self, tag: u64, n: usize) -> usize {
        ((tag * n as u64) >> self.tag_bits) as usize
    }
    fn loc_of(&self, e: u64) -> Loc {
        let seg_plus = (e >> self.off_bits) & ((1 << SEG_BITS) - 1);
        Loc {
            seg: seg_plus as u32 - 1,
            off: (e & ((1 << self.off_bits) - 1)) as u32,
        }
    }
    fn entry(&self, tag: u64, loc: Loc) -> u64 {
        (tag << (64 - self.tag_bits)) | ((loc.seg as u64 + 1) << self.off_bits) | loc.off as u64
    }

    /// The slot of the entry for `hash` whose location satisfies `is_match` (the caller
    /// compares the key, or the location when it already knows it).
    pub fn find(&self, hash: u64, mut is_match: impl FnMut(Loc) -> bool) -> Option<usize> {
        let n = self.slots.len();
        let tag = self.tag_of_hash(hash);
        let mut i = self.home(tag, n);
        loop {
            let e = self.slots[i];
            if e == 0 {
                return None;
            }
            if self.tag_of_entry(e) == tag && is_match(self.loc_of(e)) {
                return Some(i);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Starts loading the slot a lookup of `hash` probes first (see `Shard::prefetch_slot`).
    #[inline]
    pub fn prefetch_home(&self, hash: u64) {
        let i = self.home(self.tag_of_hash(hash), self.slots.len());
        prefetch(&self.slots[i]);
    }

    #[cfg(test)]
    pub fn loc_at(&self, slot: usize) -> Loc {
        self.loc_of(self.slots[slot])
    }

    /// Points the entry at `slot` to a record's new location (same key).
    pub fn set_loc(&mut self, slot: usize, loc: Loc) {
        let tag = self.tag_of_entry(self.slots[slot]);
        self.slots[slot] = self.entry(tag, loc);
    }

    /// Adds an entry for a key known to be absent. The caller has made room.
    pub fn insert(&mut self, hash: u64, loc: Loc) {
        let tag = self.tag_of_hash(hash);
        let e = self.entry(tag, loc);
        let home = self.home(tag, self.slots.len());
        Self::place(&mut self.slots, home, e);
        self.count += 1;
    }

    fn place(slots: &mut [u64], mut i: usize, e: u64) {
        let n = slots.len();
        while slots[i] != 0 {
            i += 1;
            if i == n {
                i = 0;
            }
        }
        slots[i] = e;
    }

    /// Removes the entry at `slot`, shifting later entries of its cluster back so that
    /// no lookup ever needs a tombstone.
    pub fn remove_at(&mut self, mut slot: usize) {
        let n = self.slots.len();
        self.count -= 1;
        let mut j = slot;
        loop {
            j += 1;
            if j == n {
                j = 0;
            }
            let e = self.slots[j];
            if e == 0 {
                self.slots[slot] = 0;
                return;
            }
            let h = self.home(self.tag_of_entry(e), n);
            // `e` may move back to `slot` when `slot` lies cyclically within [h, j).
            if (j + n - h) % n >= (j + n - slot) % n {
                self.slots[slot] = e;
                slot = j;
            }
        }
    }

    /// Rebuilds the table with `new_slots` slots; entries are re-homed from their tags.
    pub fn resize(&mut self, new_slots: usize) {
        let new_slots = new_slots
            .max(MIN_SLOTS)
            .max(self.count * 1000 / HARD_LOAD_PERMILLE + 1);
        let mut slots = vec![0u64; new_slots];
        for &e in &self.slots {
            if e != 0 {
                let h = self.home(self.tag_of_entry(e), new_slots);
                Self::place(&mut slots, h, e);
            }
        }
        self.slots = slots;
    }

    /// Backs the table with huge pages and maps it all now, for a bulk load (a warm
    /// restart) into a fresh, large table: its inserts land on random slots, and with
    /// 4 KiB pages each one also missed the TLB and, the first time, faulted (on a VM,
    /// microseconds each). Only advice: the kernel may decline either.
    pub fn prepare_bulk_load(&mut self) {
        const HUGE: usize = 2 << 20;
        let (start, len) = (self.slots.as_mut_ptr() as usize, self.slots.len() * 8);
        let from = (start + 4095) & !4095;
        let to = (start + len) & !4095;
        if len < HUGE || to <= from {
            return;
        }
        // SAFETY: advice on whole pages inside the table's own allocation; neither call
        // changes its contents (the populate maps pages, zero or as they are).
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_POPULATE_WRITE);
        }
    }

    /// Every entry's location, for the shard's self-check (`Shard::check_invariants`).
    pub fn locs(&self) -> Vec<Loc> {
        self.slots
            .iter()
            .filter(|&&e| e != 0)
            .map(|&e| self.loc_of(e))
            .collect()
    }
}

/// Asks the CPU to start loading the cache line holding `p`. A hint: never faults, never
/// changes what the program computes.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no architectural effect; `p` is a valid reference anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn loc(i: u32) -> Loc {
        Loc {
            seg: i % 1000,
            off: i * 7 % (1 << 20),
        }
    }

    #[test]
    fn insert_find_remove_against_a_map() {
        let mut ix = Index::new(20);
        let mut model: HashMap<u64, Loc> = HashMap::new();
        // Hashes with few distinct tags force long clusters and tag collisions.
        let hash = |k: u64| (k % 97).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k << 1);
        for k in 0..5000u64 {
            if let Some(n) = ix.wants_growth() {
                ix.resize(n);
            }
            ix.insert(hash(k), loc(k as u32));
            model.insert(k, loc(k as u32));
            if k % 3 == 0 {
                let victim = k / 2;
                if let Some(l) = model.remove(&victim) {
                    let s = ix.find(hash(victim), |x| x == l).expect("present");
                    ix.remove_at(s);
                }
            }
        }
        assert_eq!(ix.len(), model.len());
        for (k, l) in &model {
            let s = ix
                .find(hash(*k), |x| x == *l)
                .expect("every live entry is found");
            assert_eq!(ix.loc_at(s), *l);
        }
        let mut all = ix.locs();
        all.sort_by_key(|l| (l.seg, l.off));
        let mut want: Vec<Loc> = model.values().copied().collect();
        want.sort_by_key(|l| (l.seg, l.off));
        assert_eq!(all, want);
        assert!(ix.len() * 1000 <= ix.slots() * 850);
    }

    #[test]
    fn wraps_around_the_end_of_the_table() {
        let mut ix = Index::new(20);
        let top = u64::MAX; // home is the last slot
        for i in 0..10 {
            ix.insert(top - i, loc(i as u32));
        }
        for i in 0..10 {
            assert!(ix.find(top - i, |x| x == loc(i as u32)).is_some());
        }
        let s = ix.find(top, |x| x == loc(0)).unwrap();
        ix.remove_at(s);
        assert!(ix.find(top, |x| x == loc(0)).is_none());
        for i in 1..10 {
            assert!(
                ix.find(top - i, |x| x == loc(i as u32)).is_some(),
                "entry {i} lost by the shift"
            );
        }
    }

    #[test]
    fn set_loc_keeps_the_tag_and_growth_is_gradual() {
        let mut ix = Index::new(20);
        ix.insert(42 << 40, loc(1));
        let s = ix.find(42 << 40, |_| true).unwrap();
        ix.set_loc(
            s,
            Loc {
                seg: 65534,
                off: (1 << 20) - 1,
            },
        );
        let s2 = ix.find(42 << 40, |_| true).unwrap();
        assert_eq!(
            ix.loc_at(s2),
            Loc {
                seg: 65534,
                off: (1 << 20) - 1
            }
        );
        assert!(ix.find(43 << 58, |_| true).is_none());
        assert_eq!(ix.wants_growth(), None);
        let before = ix.slots();
        let mut i = 0u64;
        while ix.wants_growth().is_none() {
            i += 1;
            ix.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), loc(i as u32));
        }
        assert_eq!(ix.len(), before * 850 / 1000, "grows at 85% load");
        assert_eq!(ix.wants_growth(), Some(before + before / 4));
        ix.resize(before + before / 4);
        assert_eq!(ix.slots(), 80);
        for j in 1..=i {
            assert!(ix
                .find(j.wrapping_mul(0x9E37_79B9_7F4A_7C15), |x| x
                    == loc(j as u32))
                .is_some());
        }
    }
}
