//! One shard of the cache: items, recency, expiry, CAS, memory budget.
//!
//! Pure and synchronous: no I/O, no async, no clock of its own. Every call takes `now`,
//! the server's clock in whole seconds since it started (memcached's `rel_time_t`), and
//! expiry times are on that same clock (0 = never expires).
//!
//! Implementation (Segcache-like, see `store-measurements.md` for why):
//! - `item`: records packed back to back in segments: an 11-byte header for a
//!   small item without flags/exptime (mask, key length, value length, CAS), then key
//!   and value. No allocation per item.
//! - `index`: open addressing over `u64` entries (hash tag, segment, offset),
//!   linear probing, any size (grows 1.25x at 85% load), counted in the memory limit.
//! - `segment`: 1 MiB (or `-I`-sized) segments, allocated lazily within the budget.
//! - `eviction`: FIFO over segments with CLOCK second chances, whole-segment reuse of
//!   expired/dead segments first, in-place compaction, the background reclaim walk.
//! - `prefetch`: starting a group of lookups' cache misses before running them.
//!
//! Memory held (`allocated` in stats: segments + index) stays within `memory_limit`,
//! including while the index is rebuilt, with one exception: a shard always keeps two
//! segments and the index for what they hold, even when the limit is smaller. Beside
//! that, outside the count: a few words per segment, and a scratch buffer for
//! append/prepend/rewrite/touch (kept at most 64 KiB, transiently up to `-I`).
//!
//! What each command does with a shard (which call, what counts, what it answers) is
//! in `crate::commands`; this module is the mechanism: where bytes live and when they go.

use crate::rules::{item_size_ok, StoreMode};

/// How one shard is sized and behaves.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Bytes this shard may use for items and its index (`-m` split over shards).
    pub memory_limit: usize,
    /// `-I`: the largest item, sized as memcached sizes it (see `item_size_ok`).
    pub item_size_max: usize,
    /// false with `-M`: refuse to store instead of evicting.
    pub evict: bool,
    /// This shard's index and the number of shards: CAS uniques are made unique across
    /// the whole server as `sequence * shard_count + shard_id + 1`.
    pub shard_id: u32,
    pub shard_count: u32,
}

/// A live item, borrowed from the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRef<'a> {
    pub flags: u32,
    pub cas: u64,
    pub value: &'a [u8],
}

/// Result of a storage command, one to one with memcached's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    /// Larger than `-I` (append/prepend can grow an item past it).
    TooLarge,
    /// `-M` and no room.
    OutOfMemory,
}

/// Result of [`Shard::rewrite_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite<T> {
    /// Rewritten; what the caller's function returned.
    Done(T),
    NotFound,
    /// The caller's function refused the old value.
    Refused,
    /// `-M` and no room for a longer value.
    NoMemory,
}

mod classes;
mod eviction;
mod index;
mod invariants;
mod item;
mod meta;
mod persist;
#[cfg(any(test, feature = "model"))]
pub mod model;
mod prefetch;
mod rewrite;
mod segment;
mod stats;
pub use stats::StoreStats;
#[cfg(test)]
mod tests;

use index::{Index, Loc};
use item::{Header, NewRecord, DEAD};
use segment::Pool;

pub use classes::{ClassStats, MAX_CLASSES};
pub use eviction::{Evicted, EvictionLog};
pub use meta::{MetaArith, MetaDelete, MetaGet, MetaGetPlan, MetaItem, MetaStore};
pub use persist::{saved_records, shift_exptime, AdoptError, Adopted, Corrupt, SavedRecord, SavedSegment};
pub use stats::ItemInfo;

/// Segments are at least this big; bigger when `-I` needs it. Smaller only in a shard
/// too small for `SMALL_SHARD_SEGMENTS` of them (see [`Shard::new`]).
pub const MIN_SEGMENT_SIZE: usize = 1 << 20;
/// A shard gets at least this many segments of its memory: at a small `-m` (`-m 2`
/// over two cores is 1 MiB a shard) 1 MiB segments would leave room for one segment
/// and no index. Such a shard's segments are smaller, down to `SMALLEST_SEGMENT`, and
/// an item larger than a segment is refused for memory (memcached at `-m 2` has two
/// slab pages in all, which a few large items use up too).
const SMALL_SHARD_SEGMENTS: usize = 4;
const SMALLEST_SEGMENT: usize = 64 << 10;
/// Segments are at most this big (memcached's `-I` tops out at 1 GiB too); offsets in
/// the index and in segments are u32.
pub const MAX_SEGMENT_SIZE: usize = 1 << 30;
/// The scratch buffer for append/prepend/incr/touch is trimmed back to this after use.
const SCRATCH_KEEP: usize = 64 << 10;

/// Shard counters kept as memcached keeps them.
#[derive(Default)]
struct Counters {
    total_items: u64,
    bytes: u64,
    evictions: u64,
    reclaimed: u64,
    expired_unfetched: u64,
    evicted_unfetched: u64,
    get_expired: u64,
    get_flushed: u64,
}

/// Where the background reclaim walk stands.
#[derive(Default)]
struct Cursor {
    seg: usize,
    off: u32,
    generation: u32,
}

/// One shard: items packed into segments, a compact index over them, FIFO eviction of
/// segments with CLOCK-style second chances for items read since they were written.
///
/// Memory held is `segments * segment_size + index`, kept within `memory_limit`, except
/// that a shard always keeps at least two segments and the index needed for them.
pub struct Shard {
    config: StoreConfig,
    hasher: ahash::RandomState,
    index: Index,
    pool: Pool,
    seq: u64,
    c: Counters,
    scratch: Vec<u8>,
    cursor: Cursor,
    /// When `-M` last walked every segment for expired items before refusing a store.
    full_reclaim_at: Option<u32>,
    /// A warm restart's records waiting to be indexed (`persist::adopt_segment`).
    adopting: Vec<(u64, u32)>,
    flush: FlushMark,
    classes: classes::Classes,
    eviction_log: eviction::EvictionHook,
}

/// The last `flush_all`, applied lazily as memcached applies it: a record whose CAS is
/// below `below` is gone, found by the lookup that meets it (`get_flushed`) or by the
/// reclaim (`reclaimed`); until then it counts in `curr_items`, as in memcached.
#[derive(Default)]
struct FlushMark {
    below: u64,
    /// Server second of the flush.
    at: u32,
    /// Without CAS (`-C`) memcached flushes by time alone: items written later in the
    /// flush's own second are gone too.
    whole_second: bool,
}

/// The background reclaim leaves an item this many seconds past its expiry (or a
/// flush) before taking it: memcached's LRU maintainer comes by within about a second,
/// and a lookup in between finds the item and counts `get_expired` / `get_flushed`.
const RECLAIM_LAG: u32 = 1;

impl Shard {
    pub fn new(config: StoreConfig) -> Shard {
        let mut seg_size = MIN_SEGMENT_SIZE.max(config.item_size_max.next_power_of_two());
        let share = config.memory_limit / SMALL_SHARD_SEGMENTS;
        if share < seg_size {
            // The largest power of two within the share.
            let fit = if share == 0 { 0 } else { 1 << share.ilog2() };
            seg_size = fit.max(SMALLEST_SEGMENT);
        }
        while config.memory_limit / seg_size > index::MAX_SEGMENTS && seg_size < MAX_SEGMENT_SIZE {
            seg_size *= 2;
        }
        Self::with_segment_size(config, seg_size)
    }

    /// A shard with a chosen segment size (a power of two): small segments let tests
    /// exercise eviction with little memory. Items larger than a segment are refused.
    pub fn with_segment_size(config: StoreConfig, seg_size: usize) -> Shard {
        let seg_size = seg_size.next_power_of_two().clamp(256, MAX_SEGMENT_SIZE);
        Shard {
            config,
            hasher: ahash::RandomState::new(),
            index: Index::new(seg_size.trailing_zeros()),
            pool: Pool::new(seg_size),
            seq: 0,
            c: Counters::default(),
            scratch: Vec::new(),
            cursor: Cursor::default(),
            full_reclaim_at: None,
            adopting: Vec::new(),
            flush: FlushMark::default(),
            classes: classes::Classes::default(),
            eviction_log: None,
        }
    }

    /// A live item; counts as an access for eviction.
    pub fn get(&mut self, key: &[u8], now: u32) -> Option<ItemRef<'_>> {
        let hash = self.hash(key);
        let (_, loc, h) = self.find_live(key, hash, now)?;
        Some(self.item_at(loc, h))
    }

    /// gat: a live item, with its expiry changed to `exptime`.
    pub fn get_and_touch(&mut self, key: &[u8], exptime: u32, now: u32) -> Option<ItemRef<'_>> {
        let loc = self.touch_item(key, exptime, now)?;
        let h = self.header(loc);
        Some(self.item_at(loc, h))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        cas_unique: u64,
        now: u32,
    ) -> StoreOutcome {
        let max = self.config.item_size_max;
        if key.is_empty() || key.len() > 250 {
            return StoreOutcome::NotStored;
        }
        let hash = self.hash(key);
        if !item_size_ok(key.len(), value.len(), max) {
            // memcached drops the old value of a `set` it could not store.
            if mode == StoreMode::Set {
                self.delete(key, now);
            }
            return StoreOutcome::TooLarge;
        }
        let existing = self.find_live(key, hash, now);
        match (mode, existing) {
            (StoreMode::Add, Some((_, loc, _))) => {
                self.mark_read(loc);
                return StoreOutcome::NotStored;
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                return StoreOutcome::NotStored
            }
            (StoreMode::Cas, None) => return StoreOutcome::NotFound,
            (StoreMode::Cas, Some((_, _, h))) if h.cas != cas_unique => {
                return StoreOutcome::Exists
            }
            _ => {}
        }
        let mut buf = std::mem::take(&mut self.scratch);
        let (flags, exptime, value) = match (mode, existing) {
            (StoreMode::Append | StoreMode::Prepend, Some((_, loc, h))) => {
                if !item_size_ok(key.len(), h.value_len + value.len(), max) {
                    self.scratch = buf;
                    return StoreOutcome::TooLarge;
                }
                let old = self.value_at(loc, h);
                buf.clear();
                if mode == StoreMode::Append {
                    buf.extend_from_slice(old);
                    buf.extend_from_slice(value);
                } else {
                    buf.extend_from_slice(value);
                    buf.extend_from_slice(old);
                }
                (h.flags, h.exptime, &buf[..])
            }
            _ => (flags, exptime, value),
        };
        let outcome = if exptime != 0 && exptime <= now {
            // Stored and at once gone: only the old version has to go. It still takes
            // a cas unique, as memcached's item would (a binary reply shows it).
            if let Some((slot, loc, h)) = existing {
                self.unlink(slot, loc, h);
            }
            self.next_cas();
            self.c.total_items += 1;
            StoreOutcome::Stored
        } else {
            let cas = self.next_cas();
            match self.write_item(key, hash, value, flags, exptime, cas, 0, 0, now) {
                Some(_) => {
                    self.c.total_items += 1;
                    StoreOutcome::Stored
                }
                None => {
                    if mode == StoreMode::Set {
                        self.delete(key, now);
                    }
                    StoreOutcome::OutOfMemory
                }
            }
        };
        self.return_scratch(buf);
        outcome
    }

    /// The cas unique given to the last item this shard wrote: a store's reply that
    /// carries the new cas (binary) reads it right after the store.
    pub fn last_cas(&self) -> u64 {
        self.seq
            .wrapping_sub(1)
            .wrapping_mul(self.config.shard_count.max(1) as u64)
            .wrapping_add(self.config.shard_id as u64 + 1)
    }

    /// A live item's cas unique, without counting as an access (binary requests that
    /// carry a cas to compare: delete, append, incr).
    pub fn item_cas(&mut self, key: &[u8], now: u32) -> Option<u64> {
        let hash = self.hash(key);
        self.find_live(key, hash, now).map(|(_, _, h)| h.cas)
    }

    pub fn delete(&mut self, key: &[u8], now: u32) -> bool {
        let hash = self.hash(key);
        match self.find_live(key, hash, now) {
            Some((slot, loc, h)) => {
                self.unlink(slot, loc, h);
                true
            }
            None => false,
        }
    }

    pub fn touch(&mut self, key: &[u8], exptime: u32, now: u32) -> bool {
        self.touch_item(key, exptime, now).is_some()
    }

    /// flush_all: every item stored so far is gone; with `whole_second` (memcached
    /// without CAS) so is every item stored later in this second. Lazy, as memcached's:
    /// nothing moves now; lookups, the reclaim and reuse of memory drop flushed items.
    pub fn flush_all(&mut self, now: u32, whole_second: bool) {
        self.flush = FlushMark { below: self.peek_cas(), at: now, whole_second };
    }

    /// Whether `h`'s record is gone by the last flush_all.
    fn flushed(&self, h: &Header) -> bool {
        h.cas < self.flush.below
    }

    /// cache_memlimit: takes effect at once; lowering it evicts (even with `-M`, as
    /// the limit must hold) and shrinks an index grown for more items than fit now.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.config.memory_limit = bytes;
        self.shed_to(0, 0, true);
        let snug = self.index.len() * 1000 / 850 + 1;
        let roomy = snug + snug / 4;
        if self.index.slots() > 2 * roomy {
            self.index.resize(roomy);
        }
    }

    /// Background reclaim step: drop up to `budget` expired items, looking at up to 64
    /// records per item (at least 4096); returns how many it dropped.
    pub fn reclaim_expired(&mut self, now: u32, budget: usize) -> usize {
        self.reclaim_step(now, RECLAIM_LAG, budget, budget.saturating_mul(64).max(4096))
    }

    /// A reclaim step bounded by the records it may look at (`max_scan`), for a caller
    /// that checks its clock between small steps. Returns how many items it dropped.
    pub fn reclaim_slice(&mut self, now: u32, budget: usize, max_scan: usize) -> usize {
        self.reclaim_step(now, RECLAIM_LAG, budget, max_scan)
    }

    // ---- internals shared by the operations ----

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn next_cas(&mut self) -> u64 {
        let cas = self.peek_cas();
        self.seq += 1;
        cas
    }

    /// The CAS the next write will get.
    fn peek_cas(&self) -> u64 {
        self.seq
            .wrapping_mul(self.config.shard_count.max(1) as u64)
            .wrapping_add(self.config.shard_id as u64 + 1)
    }

    fn header(&self, loc: Loc) -> Header {
        item::parse(&self.pool.segs[loc.seg as usize].data[loc.off as usize..])
    }

    fn value_at(&self, loc: Loc, h: Header) -> &[u8] {
        let off = loc.off as usize;
        &self.pool.segs[loc.seg as usize].data[off + h.value_off()..off + h.total_len()]
    }

    /// Counts a read of the record at `loc` (eviction's reference counter, FETCHED).
    fn mark_read(&mut self, loc: Loc) {
        let m = &mut self.pool.segs[loc.seg as usize].data[loc.off as usize];
        *m = item::read_once(*m);
    }

    /// Marks the item read and borrows it out.
    fn item_at(&mut self, loc: Loc, h: Header) -> ItemRef<'_> {
        self.mark_read(loc);
        ItemRef {
            flags: h.flags,
            cas: h.cas,
            value: self.value_at(loc, h),
        }
    }

    /// The index slot, location and header of `key`'s record, live or expired.
    fn find(&self, key: &[u8], hash: u64) -> Option<(usize, Loc, Header)> {
        let segs = &self.pool.segs;
        let mut found = None;
        let slot = self.index.find(hash, |loc| {
            let rec = &segs[loc.seg as usize].data[loc.off as usize..];
            if rec[1] as usize != key.len() {
                return false;
            }
            let h = item::parse(rec);
            let hit = &rec[h.key_off..h.value_off()] == key;
            if hit {
                found = Some((loc, h));
            }
            hit
        })?;
        found.map(|(loc, h)| (slot, loc, h))
    }

    /// The live record of `key`; a flushed or expired one is unlinked on the way
    /// (memcached's lazy expiry, counted in `get_flushed` / `get_expired` as memcached's
    /// do_item_get counts them, flushed first).
    fn find_live(&mut self, key: &[u8], hash: u64, now: u32) -> Option<(usize, Loc, Header)> {
        let (slot, loc, h) = self.find(key, hash)?;
        if self.flushed(&h) {
            self.unlink(slot, loc, h);
            self.c.get_flushed += 1;
            return None;
        }
        if h.is_expired(now) {
            self.unlink(slot, loc, h);
            self.c.get_expired += 1;
            return None;
        }
        Some((slot, loc, h))
    }

    /// Drops the record at `loc` (indexed at `slot`) from the cache.
    fn unlink(&mut self, slot: usize, loc: Loc, h: Header) {
        self.index.remove_at(slot);
        self.mark_dead(loc, h);
    }

    /// Marks a record dead and gives its segment back as soon as nothing in it lives.
    fn mark_dead(&mut self, loc: Loc, h: Header) {
        let (class, size) = self.classes.of(h.key_len, h.value_len, h.flags);
        self.classes.removed(class, size);
        let len = h.total_len();
        let seg = &mut self.pool.segs[loc.seg as usize];
        seg.data[loc.off as usize] |= DEAD;
        seg.live_bytes -= len as u32;
        seg.live_items -= 1;
        self.c.bytes -= len as u64;
        if seg.live_items == 0 {
            if self.pool.head == Some(loc.seg) {
                seg.reset();
            } else if self.pool.sealed.contains(&loc.seg) {
                self.pool.unseal(loc.seg);
                self.pool.recycle(loc.seg);
            }
        }
    }

    /// Sets an item's exptime: in place when its record has the field, else by
    /// rewriting the record (same CAS: touch does not change it in memcached).
    fn touch_item(&mut self, key: &[u8], exptime: u32, now: u32) -> Option<Loc> {
        let hash = self.hash(key);
        let (_, loc, h) = self.find_live(key, hash, now)?;
        if let Some(e) = h.exptime_off() {
            let seg = &mut self.pool.segs[loc.seg as usize];
            let at = loc.off as usize + e;
            seg.data[at..at + 4].copy_from_slice(&exptime.to_le_bytes());
            seg.data[loc.off as usize] = item::read_once(seg.data[loc.off as usize]);
            seg.note_exptime(exptime);
            return Some(loc);
        }
        if exptime == 0 {
            self.mark_read(loc);
            return Some(loc);
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(self.value_at(loc, h));
        let bits = item::read_once(h.mask);
        let moved = self.write_item(key, hash, &buf, h.flags, exptime, h.cas, bits, h.meta, now);
        self.return_scratch(buf);
        moved
    }

    fn return_scratch(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > SCRATCH_KEEP {
            buf.clear();
            buf.shrink_to(SCRATCH_KEEP);
        }
        self.scratch = buf;
    }

    /// Writes a record at the write head (making room first) and links it, replacing
    /// any record of the same key. None: no room (`-M`).
    #[allow(clippy::too_many_arguments)]
    fn write_item(
        &mut self,
        key: &[u8],
        hash: u64,
        value: &[u8],
        flags: u32,
        exptime: u32,
        cas: u64,
        bits: u8,
        meta: u8,
        now: u32,
    ) -> Option<Loc> {
        if !self.ensure_index_room(now) {
            return None;
        }
        let rec = NewRecord {
            key_len: key.len(),
            value_len: value.len(),
            cas,
            flags,
            exptime,
            bits,
            meta,
        };
        let len = rec.len();
        let loc = self.alloc(len, now)?;
        let (class, size) = self.classes.of(key.len(), value.len(), flags);
        self.classes.added(class, size);
        let seg = &mut self.pool.segs[loc.seg as usize];
        seg.classes |= 1 << class;
        let buf = &mut seg.data[loc.off as usize..loc.off as usize + len];
        let h = rec.write_header(buf);
        buf[h.key_off..h.value_off()].copy_from_slice(key);
        buf[h.value_off()..].copy_from_slice(value);
        seg.live_bytes += len as u32;
        seg.live_items += 1;
        seg.note_exptime(exptime);
        seg.note_cas(cas);
        self.c.bytes += len as u64;
        if self.flush.whole_second && self.flush.at == now {
            // memcached without CAS: written in the flush's second, so flushed too.
            self.flush.below = self.flush.below.max(cas + 1);
        }
        match self.find(key, hash) {
            Some((slot, old, old_h)) => {
                self.mark_dead(old, old_h);
                self.index.set_loc(slot, loc);
            }
            None => self.index.insert(hash, loc),
        }
        Some(loc)
    }

    /// Space for a `len`-byte record at the write head.
    fn alloc(&mut self, len: usize, now: u32) -> Option<Loc> {
        if len > self.pool.seg_size {
            return None; // only with an `-I` beyond MAX_SEGMENT_SIZE
        }
        loop {
            if let Some(h) = self.pool.head {
                let seg = &mut self.pool.segs[h as usize];
                if seg.write_off as usize + len <= self.pool.seg_size {
                    let off = seg.write_off;
                    seg.write_off += len as u32;
                    return Some(Loc { seg: h, off });
                }
                self.pool.head = None;
                self.pool.sealed.push_back(h);
            }
            let s = self.make_room(len, now)?;
            self.pool.segs[s as usize].started = now;
            self.pool.head = Some(s);
        }
    }
}
