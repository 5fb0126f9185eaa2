//! Making room: segment allocation within the budget, compaction and eviction of
//! segments, growth of the index inside the memory limit, and the background reclaim
//! of expired items.
//!
//! Eviction is FIFO over sealed segments with CLOCK-style second chances: the oldest
//! segment is compacted in place, keeping the records read since they were written
//! (or last kept), with their 2-bit read counter counted down, and evicting the rest.
//! A segment that stays mostly full of read records moves to the young end whole; after
//! two of those in one allocation, at most half a segment is kept, so progress is
//! bounded even when everything is being read.
//! The compacted segment becomes the new write head, so kept records are in effect
//! reinserted at the young end. Before any live item is evicted, a segment whose
//! records are all dead or expired is reused whole, and a segment at least a quarter dead
//! is compacted without evicting anything.

use std::sync::Arc;

use super::index::{Loc, MAX_SEGMENTS};
use super::item::{self, FETCHED};
use super::{segment, Shard};

/// A sealed segment at most this full of live records (NUM/DENOM) is compacted to
/// make room before anything is evicted: overwritten and deleted records leave dead
/// bytes behind, and this bounds how much of the cache they can take.
const COMPACT_NUM: usize = 3;
const COMPACT_DENOM: usize = 4;

/// How many tail segments one `make_room` may compact keeping every read record
/// before it falls back to keeping at most half a segment.
const KEEP_WHOLE_TRIES: usize = 2;

/// An item eviction took, as memcached's `watch evictions` reports it.
pub struct Evicted<'a> {
    pub key: &'a [u8],
    /// Ever read (ITEM_FETCHED).
    pub fetched: bool,
    /// Seconds it had left; -1: no expiry.
    pub ttl: i64,
    /// Seconds since its segment became the write head (as `me` reports `la`): items
    /// carry no access time, and an evicted item was not read since it was written
    /// there or kept there by an earlier eviction, some time after this.
    pub idle: u32,
    /// The memcached slab class id it counts in (`classes`).
    pub class: u32,
    /// Value length.
    pub size: usize,
}

/// Told of every item eviction takes, while it `wants` to be: asked once per segment
/// evicted from, so with nobody listening eviction pays one call per segment.
pub trait EvictionLog: Send + Sync {
    fn wants(&self) -> bool;
    fn evicted(&self, item: &Evicted);
}

/// Where a shard reports its evictions (None: nowhere).
pub type EvictionHook = Option<Arc<dyn EvictionLog>>;

impl Shard {
    /// From now on, items evicted are reported to `log` while it wants them.
    pub fn set_eviction_log(&mut self, log: Arc<dyn EvictionLog>) {
        self.eviction_log = Some(log);
    }

    /// Segments the budget allows beside the index (at least two).
    fn seg_budget(&self) -> usize {
        (self.config.memory_limit.saturating_sub(self.index.bytes()) / self.pool.seg_size)
            .clamp(2, MAX_SEGMENTS)
    }

    /// A segment to become the write head, with room for a `len`-byte record after
    /// whatever compaction left in it. None: no room without evicting and `-M`.
    pub(super) fn make_room(&mut self, len: usize, now: u32) -> Option<u32> {
        let seg_size = self.pool.seg_size;
        let mut reclaimed_all = false;
        // Tail segments compacted keeping every read record in this call; past the
        // limit, only half a segment is kept, so a cache where everything is being
        // read still frees room at a bounded cost.
        let mut kept_whole = 0;
        for _ in 0..self.pool.segs.len() * 2 + 4 {
            if let Some(s) = self.pool.free.pop() {
                return Some(s);
            }
            if self.pool.allocated < self.seg_budget() {
                if let Some(s) = self.pool.allocate() {
                    return Some(s);
                }
            }
            let victim = if let Some(s) = self.pool.expired_sealed(now, self.flush.below) {
                Some((s, None))
            } else {
                let emptiest = self.pool.emptiest_sealed()?;
                let live = self.pool.segs[emptiest as usize].live_bytes as usize;
                if live <= seg_size / COMPACT_DENOM * COMPACT_NUM && live + len <= seg_size {
                    Some((emptiest, None))
                } else if self.config.evict {
                    let oldest = *self.pool.sealed.front()?;
                    let keep = if kept_whole < KEEP_WHOLE_TRIES {
                        seg_size
                    } else {
                        (seg_size / 2).min(seg_size - len)
                    };
                    Some((oldest, Some(keep)))
                } else if live + len <= seg_size {
                    Some((emptiest, None))
                } else {
                    None
                }
            };
            match victim {
                Some((s, retain)) => {
                    self.pool.unseal(s);
                    self.compact(s, retain, now);
                    let used = self.pool.segs[s as usize].write_off as usize;
                    let whole = retain.is_some_and(|keep| keep > seg_size / 2);
                    // A segment still mostly full of read records goes to the young
                    // end as it is (its records have one read less to their credit)
                    // rather than becoming a write head with little room.
                    if used + len <= seg_size && !(whole && used > seg_size - seg_size / 8) {
                        return Some(s);
                    }
                    if whole {
                        kept_whole += 1;
                        self.pool.segs[s as usize].started = now;
                    }
                    self.pool.sealed.push_back(s);
                }
                None if !reclaimed_all && self.full_reclaim_at != Some(now) => {
                    // `-M`: expired items may still hide in full segments. A full walk,
                    // so at most once per second however many stores are refused.
                    reclaimed_all = true;
                    self.full_reclaim_at = Some(now);
                    self.reclaim_step(now, 0, usize::MAX, usize::MAX);
                }
                None => return None,
            }
        }
        None
    }

    /// Compacts segment `s` in place. Dead records go, expired and flushed ones are
    /// reclaimed.
    /// `retain: None` keeps every live record; `Some(limit)` keeps only records read
    /// since they were last written or kept, up to `limit` bytes, and evicts the rest.
    pub(super) fn compact(&mut self, s: u32, retain: Option<usize>, now: u32) {
        let Shard {
            pool,
            index,
            hasher,
            c,
            flush,
            classes,
            eviction_log,
            ..
        } = self;
        let log = eviction_log.as_deref().filter(|l| retain.is_some() && l.wants());
        let seg = &mut pool.segs[s as usize];
        let end = seg.write_off as usize;
        let (mut r, mut w) = (0usize, 0usize);
        let (mut live_items, mut expires_by, mut expires_from) = (0u32, 0u32, u32::MAX);
        let (mut cas_from, mut cas_to) = (u64::MAX, 0u64);
        let mut class_bits = 0u64;
        while r < end {
            let h = item::parse(&seg.data[r..]);
            let len = h.total_len();
            if h.is_dead() {
                r += len;
                continue;
            }
            let hash = hasher.hash_one(&seg.data[r + h.key_off..r + h.value_off()]);
            let here = Loc {
                seg: s,
                off: r as u32,
            };
            let Some(slot) = index.find(hash, |l| l == here) else {
                debug_assert!(false, "live record without an index entry");
                r += len;
                continue;
            };
            let fetched = h.mask & FETCHED != 0;
            let (class, size) = classes.of(h.key_len, h.value_len, h.flags);
            if h.is_expired(now) || h.cas < flush.below {
                index.remove_at(slot);
                classes.removed(class, size);
                classes.reclaimed(class, fetched);
                c.reclaimed += 1;
                c.expired_unfetched += u64::from(!fetched);
                c.bytes -= len as u64;
            } else if retain.is_none_or(|limit| item::reads(h.mask) > 0 && w + len <= limit) {
                if w != r {
                    seg.data.copy_within(r..r + len, w);
                    index.set_loc(
                        slot,
                        Loc {
                            seg: s,
                            off: w as u32,
                        },
                    );
                }
                if retain.is_some() {
                    seg.data[w] = item::with_reads(seg.data[w], item::reads(h.mask) - 1);
                }
                w += len;
                live_items += 1;
                let e = segment::expiry(h.exptime);
                expires_by = expires_by.max(e);
                expires_from = expires_from.min(e);
                cas_from = cas_from.min(h.cas);
                cas_to = cas_to.max(h.cas);
                class_bits |= 1 << class;
            } else {
                index.remove_at(slot);
                classes.removed(class, size);
                classes.evicted(class, fetched);
                if let Some(log) = log {
                    log.evicted(&Evicted {
                        key: &seg.data[r + h.key_off..r + h.value_off()],
                        fetched,
                        ttl: if h.exptime > 0 { i64::from(h.exptime) - i64::from(now) } else { -1 },
                        idle: now.saturating_sub(seg.started),
                        class: class as u32 + 1,
                        size: h.value_len,
                    });
                }
                c.evictions += 1;
                c.evicted_unfetched += u64::from(!fetched);
                c.bytes -= len as u64;
            }
            r += len;
        }
        seg.write_off = w as u32;
        seg.live_bytes = w as u32;
        seg.live_items = live_items;
        seg.expires_by = expires_by;
        seg.expires_from = expires_from;
        seg.cas_from = cas_from;
        seg.cas_to = cas_to;
        seg.classes = class_bits;
        seg.generation = seg.generation.wrapping_add(1);
    }

    /// Frees segments until segments + index + `extra` bytes fit the memory limit,
    /// keeping at least two segments. Live items are only evicted if `may_evict`.
    pub(super) fn shed_to(&mut self, extra: usize, now: u32, may_evict: bool) -> bool {
        loop {
            if self.pool.bytes() + self.index.bytes() + extra <= self.config.memory_limit {
                return true;
            }
            if let Some(f) = self.pool.free.pop() {
                self.pool.release(f);
                continue;
            }
            if self.pool.allocated <= 2 {
                return false;
            }
            let victim = match self.pool.expired_sealed(now, self.flush.below) {
                Some(s) => s,
                None if may_evict => match self.pool.sealed.front() {
                    Some(&s) => s,
                    None => return false,
                },
                None => return false,
            };
            self.pool.unseal(victim);
            self.compact(victim, Some(0), now);
            self.pool.release(victim);
        }
    }

    /// Makes sure the index can take one more entry within the memory limit, growing
    /// it (and shedding segments for the new table) when needed.
    pub(super) fn ensure_index_room(&mut self, now: u32) -> bool {
        let Some(slots) = self.index.wants_growth() else {
            return true;
        };
        if self.shed_to(slots * 8, now, self.config.evict) || self.config.evict {
            // With evict, only a tiny limit (two segments) gets here unshed: that
            // index is part of the documented slack.
            self.index.resize(slots);
            return true;
        }
        self.index.has_hard_room()
    }

    /// One bounded step of the background walk over all segments, dropping records
    /// expired or flushed at least `lag` seconds ago: at most `budget` of them, looking
    /// at a bounded number of records.
    pub(super) fn reclaim_step(&mut self, now: u32, lag: u32, budget: usize, max_scan: usize) -> usize {
        let nsegs = self.pool.segs.len();
        let expired_at = now.saturating_sub(lag);
        let flushed_below = if self.flush.at.saturating_add(lag) <= now { self.flush.below } else { 0 };
        let (mut done, mut scanned, mut segs_visited) = (0usize, 0usize, 0usize);
        while done < budget && scanned < max_scan && segs_visited <= nsegs {
            let cur = &mut self.cursor;
            if cur.seg >= nsegs {
                cur.seg = 0;
                cur.off = 0;
                segs_visited += 1;
                continue;
            }
            let seg = &self.pool.segs[cur.seg];
            if cur.generation != seg.generation {
                cur.generation = seg.generation;
                cur.off = 0;
            }
            let nothing_gone = seg.expires_from > expired_at && seg.cas_from >= flushed_below;
            if cur.off >= seg.write_off || seg.live_items == 0 || nothing_gone {
                cur.seg += 1;
                cur.off = 0;
                segs_visited += 1;
                continue;
            }
            let loc = Loc {
                seg: cur.seg as u32,
                off: cur.off,
            };
            let h = item::parse(&seg.data[cur.off as usize..]);
            cur.off += h.total_len() as u32;
            scanned += 1;
            if h.is_dead() || !(h.is_expired(expired_at) || h.cas < flushed_below) {
                continue;
            }
            let hash = self.hasher.hash_one(
                &seg.data[loc.off as usize + h.key_off..loc.off as usize + h.value_off()],
            );
            if let Some(slot) = self.index.find(hash, |l| l == loc) {
                self.unlink(slot, loc, h);
                let (class, _) = self.classes.of(h.key_len, h.value_len, h.flags);
                self.classes.reclaimed(class, h.mask & FETCHED != 0);
                self.c.reclaimed += 1;
                self.c.expired_unfetched += u64::from(h.mask & FETCHED == 0);
                done += 1;
            }
        }
        done
    }
}
