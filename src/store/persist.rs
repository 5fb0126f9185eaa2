//! A shard's side of a warm restart (`crate::server::restart` does the files): what a
//! save needs to read out of a shard (its segments in write order, the highest CAS),
//! and the two ways a shard takes items back.
//!
//! - Whole segments (`adopt_segment`): when the saved shard had this shard's segment
//!   size and routing, its segment bytes are read straight into new segments and only
//!   the index is rebuilt. Records keep their place, their read counters and FETCHED
//!   bits, so eviction order and `stats items` ages survive the restart.
//! - One item at a time (`restore_item`): when the core count or segment size changed,
//!   each saved record whose key this core now owns is written as a new record.
//!
//! Exptimes are on the server clock (seconds since the process started), so a loaded
//! one is moved by the difference between the old and the new process's clock origin
//! (`shift_exptime`); an item whose time has passed during the restart is not loaded.
//! Saved bytes are checked by the caller (a checksum per chunk) but their layout is
//! checked again here, so that no file, whatever it holds, can make a shard panic.

use super::index::Loc;
use super::item::{self, DEAD, FETCHED, READS};
use super::segment::Arena;
use super::Shard;

/// Records `adopt_segment` queues before `finish_adopting` indexes them.
const ADOPT_BATCH: usize = 512 << 10;

/// One segment as saved: its records, and its age.
pub struct SavedSegment<'a> {
    /// Records from offset 0 to the segment's write offset (dead ones included).
    pub bytes: &'a [u8],
    /// When it last became the write head (server clock).
    pub started: u32,
    pub live_items: u32,
    /// Its slot in the shard's arena (its bytes stay there across the restart), if any.
    pub slot: Option<u32>,
}

/// A saved record decoded, for loading one item at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedRecord<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// On the saving process's clock.
    pub exptime: u32,
    pub cas: u64,
    /// Read counter and FETCHED bits.
    pub bits: u8,
    /// The meta protocol's bits (stale, win token sent, binary key).
    pub meta: u8,
    /// Superseded or deleted before the save.
    pub dead: bool,
}

/// A record that does not fit its segment or has an impossible key: the file is not
/// what a shard wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    pub offset: usize,
}

/// What `adopt_segment` kept of a saved segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adopted {
    pub items: u64,
    /// Items whose time passed before they could be loaded.
    pub expired: u64,
    /// Items whose key another core owns (only if routing changed underneath).
    pub misplaced: u64,
}

/// An exptime from the saving process's clock on this process's clock: `delta` is the
/// old clock's origin minus the new one's, in seconds. 0 (never) stays 0; a time
/// already past lands at 1, which is always in the past.
pub fn shift_exptime(exptime: u32, delta: i64) -> u32 {
    if exptime == 0 {
        return 0;
    }
    (exptime as i64 + delta).clamp(1, u32::MAX as i64) as u32
}

/// The record at the start of `rest`, checked against the bytes it claims.
fn checked_header(rest: &[u8], offset: usize) -> Result<item::Header, Corrupt> {
    let corrupt = Corrupt { offset };
    if rest.len() < 2 || rest.len() < item::header_len(rest[0]) {
        return Err(corrupt);
    }
    let h = item::parse(rest);
    if h.key_len == 0 || h.key_len > crate::rules::KEY_MAX_LENGTH || h.total_len() > rest.len() {
        return Err(corrupt);
    }
    Ok(h)
}

/// Every record of a saved segment, in order.
pub fn saved_records(bytes: &[u8]) -> impl Iterator<Item = Result<SavedRecord<'_>, Corrupt>> {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if off >= bytes.len() || failed {
            return None;
        }
        let h = match checked_header(&bytes[off..], off) {
            Ok(h) => h,
            Err(e) => {
                failed = true;
                return Some(Err(e));
            }
        };
        let rec = &bytes[off..off + h.total_len()];
        off += h.total_len();
        Some(Ok(SavedRecord {
            key: &rec[h.key_off..h.value_off()],
            value: &rec[h.value_off()..],
            flags: h.flags,
            exptime: h.exptime,
            cas: h.cas,
            bits: h.mask & (READS | FETCHED),
            meta: h.meta,
            dead: h.is_dead(),
        }))
    })
}

impl Shard {
    /// Segments holding live items, in write order (oldest first, the write head
    /// last): the order eviction reads them in, kept by a save.
    pub fn saved_segments(&self) -> impl Iterator<Item = SavedSegment<'_>> {
        let pool = &self.pool;
        pool.sealed.iter().chain(pool.head.iter()).filter_map(move |&s| {
            let seg = &pool.segs[s as usize];
            (seg.live_items > 0).then(|| SavedSegment {
                bytes: &seg.data[..seg.write_off as usize],
                started: seg.started,
                live_items: seg.live_items,
                slot: seg.data.in_arena().then_some(s),
            })
        })
    }

    /// Records with a CAS below this are gone by the last flush_all (0: none).
    pub fn flushed_below(&self) -> u64 {
        self.flush.below
    }

    /// Empties the shard at once (a failed restore), as new: unlike `flush_all`,
    /// nothing is left for lookups to find flushed.
    pub fn clear(&mut self) {
        let mut fresh = Shard::new(self.config.clone());
        fresh.classes = self.classes.fresh();
        fresh.pool.arena = self.pool.arena.take();
        if let Some(a) = &fresh.pool.arena {
            a.give_back_except(&[]);
        }
        std::mem::swap(self, &mut fresh);
    }

    /// Segments live in `file` (a tmpfs file, mapped shared: see `segment::Arena`) from
    /// now on, `slots` of them at most; with `keep` its contents stay for a load to
    /// adopt. Only before anything is stored.
    pub fn use_arena(&mut self, file: std::fs::File, slots: usize, keep: bool) -> std::io::Result<()> {
        debug_assert_eq!(self.pool.allocated, 0);
        self.pool.arena = Some(Arena::map(file, self.pool.seg_size, slots, keep)?);
        Ok(())
    }

    /// Arena slots this shard may use at its memory limit (at least `at_least`).
    pub fn arena_slots(&self, at_least: usize) -> usize {
        let segs = self.config.memory_limit / self.pool.seg_size + 4;
        segs.max(at_least).min(super::index::MAX_SEGMENTS)
    }

    /// After a load from the arena: the pages of slots no segment took go back.
    pub fn give_back_unused_slots(&self) {
        if let Some(a) = &self.pool.arena {
            let mut used: Vec<u32> = (0..self.pool.segs.len() as u32)
                .filter(|&s| self.pool.segs[s as usize].data.in_arena())
                .collect();
            used.sort_unstable();
            a.give_back_except(&used);
        }
    }

    /// The highest CAS unique this shard has given out (0: none).
    pub fn cas_high(&self) -> u64 {
        match self.seq {
            0 => 0,
            seq => (seq - 1)
                .wrapping_mul(self.config.shard_count.max(1) as u64)
                .wrapping_add(self.config.shard_id as u64 + 1),
        }
    }

    /// Makes every CAS unique given from now on greater than `high` (the highest any
    /// shard of the saved cache gave out), so a client's saved CAS never matches a new
    /// item by accident.
    pub fn continue_cas_above(&mut self, high: u64) {
        let count = self.config.shard_count.max(1) as u64;
        self.seq = self.seq.max(high / count + 1);
    }

    /// Sizes the index for `items` more entries at once, instead of growing it step by
    /// step while a restore inserts them.
    pub fn reserve_items(&mut self, items: usize) {
        let want = (self.index.len() + items) * 1000 / 850 + 1;
        if want > self.index.slots() {
            self.index.resize(want);
            self.index.prepare_bulk_load();
        }
    }

    /// After an `Err` the shard is as it was before the call.
    ///
    /// Takes a saved segment whole: `fill` writes its `len` bytes into a new segment
    /// (the caller reads them from the file straight into it and checks them), or with
    /// `slot` the bytes are already in that arena slot and `fill` only checks them; records
    /// are then indexed, their exptimes moved by `delta` (see `shift_exptime`). Items
    /// expired by `now`, flushed ones (CAS below `flushed_below`), dead ones and those
    /// `keep` refuses (by key) are marked dead.
    /// None from the outer result: no segment could be had (the entry layout's limit).
    #[allow(clippy::too_many_arguments)]
    pub fn adopt_segment<E>(
        &mut self,
        len: usize,
        slot: Option<u32>,
        started: u32,
        delta: i64,
        now: u32,
        flushed_below: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> Option<Result<Adopted, AdoptError<E>>> {
        if len > self.pool.seg_size {
            return Some(Err(AdoptError::Corrupt(Corrupt { offset: 0 })));
        }
        let id = match slot {
            Some(slot) => match self.pool.adopt_slot(slot, len) {
                Some(id) => id,
                None => return Some(Err(AdoptError::Corrupt(Corrupt { offset: 0 }))),
            },
            None => self.pool.allocate()?,
        };
        if let Err(e) = fill(&mut self.pool.segs[id as usize].data[..len]) {
            self.pool.release(id);
            return Some(Err(AdoptError::Fill(e)));
        }
        let mut got = Adopted::default();
        // One pass: check each record, move its exptime, drop what is not kept, count the
        // rest and queue it for the index (which `index_adopted` fills in batches). A
        // corrupt record undoes the counting, so the shard is left as it was.
        let queued = self.adopting.len();
        let mut last_class = ((usize::MAX, 0usize, false), (0usize, 0u64));
        let mut off = 0usize;
        while off < len {
            let seg = &mut self.pool.segs[id as usize];
            let h = match checked_header(&seg.data[off..len], off) {
                Ok(h) => h,
                Err(c) => {
                    self.uncount_adopted(id, off);
                    self.adopting.truncate(queued);
                    self.pool.release(id);
                    return Some(Err(AdoptError::Corrupt(c)));
                }
            };
            let at = off;
            off += h.total_len();
            if h.is_dead() {
                continue;
            }
            let exptime = shift_exptime(h.exptime, delta);
            let key = &seg.data[at + h.key_off..at + h.value_off()];
            let expired = (exptime != 0 && exptime <= now) || h.cas < flushed_below;
            if expired || !keep(key) {
                seg.data[at] |= DEAD;
                if expired {
                    got.expired += 1;
                } else {
                    got.misplaced += 1;
                }
                continue;
            }
            let hash = self.hasher.hash_one(key);
            if let Some(e) = h.exptime_off() {
                seg.data[at + e..at + e + 4].copy_from_slice(&exptime.to_le_bytes());
            }
            seg.live_bytes += h.total_len() as u32;
            seg.live_items += 1;
            seg.note_exptime(exptime);
            seg.note_cas(h.cas);
            // Records of one load mostly repeat their sizes: the class lookup is cached.
            let shape = (h.key_len, h.value_len, h.flags != 0);
            if last_class.0 != shape {
                last_class = (shape, self.classes.of(h.key_len, h.value_len, h.flags));
            }
            let (class, size) = last_class.1;
            seg.classes |= 1 << class;
            self.classes.added(class, size);
            self.c.bytes += h.total_len() as u64;
            // The index reads only a hash's top bits (its tag): the low half carries
            // the segment number until then.
            self.adopting.push((hash & !0xffff_ffff | id as u64, at as u32));
            got.items += 1;
        }
        self.place_adopted(id, len, started);
        if self.adopting.len() >= ADOPT_BATCH {
            self.index_adopted();
        }
        Some(Ok(got))
    }

    /// Takes back what `adopt_segment` counted of segment `id`'s records before `upto`
    /// (the live ones: those it did not mark dead).
    fn uncount_adopted(&mut self, id: u32, upto: usize) {
        let mut off = 0usize;
        while off < upto {
            let h = item::parse(&self.pool.segs[id as usize].data[off..]);
            if !h.is_dead() {
                let (class, size) = self.classes.of(h.key_len, h.value_len, h.flags);
                self.classes.removed(class, size);
                self.c.bytes -= h.total_len() as u64;
            }
            off += h.total_len();
        }
    }

    /// Indexes the records `adopt_segment` queued, and frees the queue: a load calls
    /// it after its last segment (until then those items are counted but not found).
    pub fn finish_adopting(&mut self) {
        self.index_adopted();
        self.adopting = Vec::new();
    }

    /// Why batches, sorted: a load inserts millions of keys into a table of hundreds of
    /// MB at random places, and each insert missed the CPU caches and the TLB (on a VM
    /// a page walk is slow: it was most of a load's time). Sorted by the hash's top
    /// bits, a batch's inserts go through the table in address order, a few KB at a
    /// time, and only a tag that matches reads a record. The queue and its sorted copy
    /// (at most 16 MB, outside the memory limit) live only while a load runs.
    fn index_adopted(&mut self) {
        let mut todo = std::mem::take(&mut self.adopting);
        let n = todo.len();
        if n == 0 {
            self.adopting = todo;
            return;
        }
        let need = (self.index.len() + n) * 1000 / 850 + 1;
        if need > self.index.slots() {
            self.index.resize(need);
        }
        // A stable counting sort on the top 12 bits, into the queue's second half: keys
        // seen twice (a save never holds them, a file might) stay in write order, so
        // the later one wins.
        const BUCKETS: usize = 1 << 12;
        let mut start = [0usize; BUCKETS + 1];
        for &(hash, _) in &todo {
            start[(hash >> 52) as usize + 1] += 1;
        }
        for b in 0..BUCKETS {
            start[b + 1] += start[b];
        }
        todo.resize(2 * n, (0, 0));
        let (queued, sorted) = todo.split_at_mut(n);
        for &(hash, at) in queued.iter() {
            let b = (hash >> 52) as usize;
            sorted[start[b]] = (hash, at);
            start[b] += 1;
        }
        // Each insert still misses the cache once (a batch has fewer entries than the
        // table has lines): its slot is asked for this far ahead, so the misses overlap.
        const AHEAD: usize = 32;
        for j in 0..n {
            if let Some(&(next, _)) = sorted.get(j + AHEAD) {
                self.index.prefetch_home(next);
            }
            let (hash, at) = sorted[j];
            let loc = Loc { seg: (hash & 0xffff_ffff) as u32, off: at };
            let hash = hash & !0xffff_ffff;
            let segs = &self.pool.segs;
            let key_of = |l: Loc| {
                let rec = &segs[l.seg as usize].data[l.off as usize..];
                let h = item::parse(rec);
                (&rec[h.key_off..h.value_off()], h)
            };
            let mut older = None;
            let slot = self.index.find(hash, |old| {
                let (k, h) = key_of(old);
                let same = k == key_of(loc).0;
                if same {
                    older = Some((old, h));
                }
                same
            });
            match (slot, older) {
                (Some(slot), Some((old, old_h))) => {
                    self.mark_dead(old, old_h);
                    self.index.set_loc(slot, loc);
                }
                _ => self.index.insert(hash, loc),
            }
        }
        todo.clear();
        self.adopting = todo;
    }

    /// An adopted segment, indexed up to `len`, joins the pool: as the write head (what
    /// room it has left is used by the next store; the previous head joins the sealed
    /// queue), or on the free list when nothing in it lives.
    fn place_adopted(&mut self, id: u32, len: usize, started: u32) {
        let seg = &mut self.pool.segs[id as usize];
        seg.write_off = len as u32;
        seg.started = started;
        if seg.live_items == 0 {
            self.pool.recycle(id);
        } else if let Some(h) = self.pool.head.replace(id) {
            self.pool.sealed.push_back(h);
        }
    }

    /// Writes one saved item as a new record (its exptime already on this clock),
    /// evicting the oldest to make room whatever `-M` says: a restore into a smaller
    /// cache keeps the items it loads last, so the caller loads oldest first.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_item(&mut self, rec: &SavedRecord, exptime: u32, now: u32) -> bool {
        let SavedRecord { key, value, flags, cas, bits, meta, .. } = *rec;
        if key.is_empty() || key.len() > crate::rules::KEY_MAX_LENGTH || (exptime != 0 && exptime <= now) {
            return false;
        }
        if !crate::rules::item_size_ok(key.len(), value.len(), self.config.item_size_max) {
            return false;
        }
        let hash = self.hash(key);
        let evict = std::mem::replace(&mut self.config.evict, true);
        let written = self.write_item(key, hash, value, flags, exptime, cas, bits & (READS | FETCHED), meta, now);
        self.config.evict = evict;
        written.is_some()
    }

    /// Segments a whole-segment restore may take so that segments plus an index for
    /// `items` fit this shard's memory limit.
    pub fn fits_segments(&self, segments: usize, items: usize) -> bool {
        let index = ((items * 1000 / 850 + 1).max(super::index::MIN_SLOTS)) * 8;
        segments <= super::index::MAX_SEGMENTS
            && segments * self.pool.seg_size + index <= self.config.memory_limit.max(2 * self.pool.seg_size)
    }
}

/// Why `adopt_segment` failed.
#[derive(Debug)]
pub enum AdoptError<E> {
    /// What `fill` returned.
    Fill(E),
    Corrupt(Corrupt),
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::StoreMode;
    use crate::store::tests::config;
    use crate::store::StoreOutcome;

    /// A shard's segments copied out as a save holds them.
    fn saved(s: &Shard) -> Vec<(u32, Vec<u8>)> {
        s.saved_segments().map(|g| (g.started, g.bytes.to_vec())).collect()
    }

    fn adopt_all(t: &mut Shard, segs: &[(u32, Vec<u8>)], delta: i64, now: u32) -> Adopted {
        let mut total = Adopted::default();
        for (started, bytes) in segs {
            let got = t
                .adopt_segment(bytes.len(), None, *started, delta, now, 0, |buf: &mut [u8]| -> Result<(), ()> {
                    buf.copy_from_slice(bytes);
                    Ok(())
                }, |_| true)
                .unwrap()
                .unwrap();
            total.items += got.items;
            total.expired += got.expired;
        }
        t.finish_adopting();
        total
    }

    #[test]
    fn whole_segments_come_back_with_flags_cas_and_shifted_expiry() {
        let mut s = Shard::with_segment_size(config(1 << 20, 4096, true), 4096);
        for i in 0..300u32 {
            let key = format!("key{i}");
            let exptime = if i % 3 == 0 { 0 } else if i % 3 == 1 { 50 } else { 500 };
            assert_eq!(s.store(StoreMode::Set, key.as_bytes(), i, exptime, &[b'v'; 40], 0, 10), StoreOutcome::Stored);
        }
        s.store(StoreMode::Set, b"key0", 7, 0, b"newer", 0, 10); // an overwrite leaves a dead record
        s.delete(b"key3", 10);
        let segs = saved(&s);
        let high = s.cas_high();
        // The new process's clock started 100 s later: old 50 is new -50 (expired),
        // old 500 is new 400.
        let mut t = Shard::with_segment_size(config(1 << 20, 4096, true), 4096);
        let got = adopt_all(&mut t, &segs, -100, 20);
        assert_eq!(got.expired, 100);
        assert_eq!(got.items, 199);
        t.check_invariants();
        assert_eq!(t.get(b"key0", 20).map(|i| (i.flags, i.value.to_vec())), Some((7, b"newer".to_vec())));
        assert!(t.get(b"key3", 20).is_none(), "deleted before the save");
        assert!(t.get(b"key1", 20).is_none(), "expired in the gap");
        let cas2 = s.get(b"key2", 10).unwrap().cas;
        let item = t.get(b"key2", 20).unwrap();
        assert_eq!((item.flags, item.cas), (2, cas2));
        assert!(t.get(b"key2", 399).is_some() && t.get(b"key2", 400).is_none(), "expires at old 500 - 100");
        t.continue_cas_above(high);
        t.store(StoreMode::Set, b"fresh", 0, 0, b"x", 0, 20);
        assert!(t.get(b"fresh", 20).unwrap().cas > high);
        t.check_invariants();
    }

    #[test]
    fn a_corrupt_segment_is_refused_and_leaves_the_shard_as_it_was() {
        let mut s = Shard::with_segment_size(config(1 << 20, 4096, true), 4096);
        for i in 0..50u32 {
            s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"value", 0, 1);
        }
        let segs = saved(&s);
        let mut t = Shard::with_segment_size(config(1 << 20, 4096, true), 4096);
        let mut bad = segs[0].1.clone();
        bad[1] = 0; // a key length of 0
        let r = t.adopt_segment(bad.len(), None, 1, 0, 1, 0, |b: &mut [u8]| -> Result<(), ()> {
            b.copy_from_slice(&bad);
            Ok(())
        }, |_| true);
        assert!(matches!(r, Some(Err(AdoptError::Corrupt(_)))));
        let mut cut = segs[0].1.clone();
        cut.truncate(cut.len() - 2); // the last record runs past the end
        let r = t.adopt_segment(cut.len(), None, 1, 0, 1, 0, |b: &mut [u8]| -> Result<(), ()> {
            b.copy_from_slice(&cut);
            Ok(())
        }, |_| true);
        assert!(matches!(r, Some(Err(AdoptError::Corrupt(_)))));
        assert_eq!(t.stats().curr_items, 0);
        assert_eq!(t.stats().segments, 0);
        assert_eq!(t.stats().bytes, 0, "what was counted before the bad record is taken back");
        assert!(t.class_stats().iter().all(|c| c.number == 0));
        t.check_invariants();
        assert!(saved_records(&bad).any(|r| r.is_err()));
    }

    #[test]
    fn item_by_item_into_a_smaller_shard_keeps_the_newest() {
        let mut s = Shard::with_segment_size(config(1 << 20, 4096, true), 4096);
        for i in 0..2000u32 {
            s.store(StoreMode::Set, format!("k{i}").as_bytes(), i, 0, &[b'v'; 100], 0, 1);
        }
        let mut t = Shard::with_segment_size(config(64 << 10, 4096, false), 4096);
        for (_, bytes) in saved(&s) {
            for r in saved_records(&bytes) {
                let r = r.unwrap();
                if !r.dead {
                    t.restore_item(&r, r.exptime, 1);
                }
            }
        }
        t.check_invariants();
        assert!(t.get(b"k1999", 1).is_some_and(|i| i.flags == 1999));
        assert!(t.get(b"k0", 1).is_none());
        assert!(t.stats().allocated <= 64 << 10);
    }
}
