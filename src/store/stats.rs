//! What a shard reports: the counters and gauges of memcached's `stats` (`StoreStats`,
//! and `stats reset`), and the introspection beyond them for `stats slabs` / `stats
//! items` / `stats sizes` and the dumps.

use super::{item, ClassStats, Counters, Shard, MAX_CLASSES};

/// Counters memcached reports, for this shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    /// Bytes held by live items.
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub limit_maxbytes: u64,
    /// Bytes of memory the shard holds now (segments + index).
    pub allocated: u64,
    /// Segments holding memory (memcached's slab pages, in `stats slabs`).
    pub segments: u64,
    /// Server time the oldest live segment was started (the LRU tail's age in
    /// `stats items` is now minus this); None when nothing is stored.
    pub oldest_write: Option<u32>,
}

impl Shard {
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            curr_items: self.index.len() as u64,
            total_items: self.c.total_items,
            bytes: self.c.bytes,
            evictions: self.c.evictions,
            reclaimed: self.c.reclaimed,
            expired_unfetched: self.c.expired_unfetched,
            evicted_unfetched: self.c.evicted_unfetched,
            get_expired: self.c.get_expired,
            get_flushed: self.c.get_flushed,
            limit_maxbytes: self.config.memory_limit as u64,
            allocated: (self.pool.bytes() + self.index.bytes()) as u64,
            segments: self.pool.allocated as u64,
            oldest_write: self.oldest_write(),
        }
    }

    /// `stats reset`: the counters memcached resets (not the gauges).
    pub fn reset_stats(&mut self) {
        self.classes.reset();
        let bytes = self.c.bytes;
        self.c = Counters {
            bytes,
            ..Counters::default()
        };
    }
}

/// What `lru_crawler metadump` and `stats cachedump` show of one live item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemInfo<'a> {
    pub key: &'a [u8],
    pub value_len: usize,
    /// 0: never expires.
    pub exptime: u32,
    pub cas: u64,
    /// Read at least once since it was stored.
    pub fetched: bool,
    /// Bytes the record takes here (header, key and value).
    pub size: usize,
    /// Server time by which it was last written or kept by eviction: our stand-in for
    /// memcached's last access time (items carry no time of their own).
    pub written: u32,
    /// Stored by `ms` with a base64 key (memcached's ITEM_KEY_BINARY).
    pub key_binary: bool,
}

impl Shard {
    /// Size of one segment (memcached's closest analogue: a slab page).
    pub fn segment_size(&self) -> usize {
        self.pool.seg_size
    }
    /// Segments holding memory now.
    pub fn segments_allocated(&self) -> usize {
        self.pool.allocated
    }
    /// Slots in the index (its bytes are 8 per slot).
    pub fn index_slots(&self) -> usize {
        self.index.slots()
    }
    /// A live item's value length, exptime (0: never) and flags, without counting an access
    /// or unlinking anything: for `watch` lines, which must not change what they show.
    pub fn peek_item(&self, key: &[u8], now: u32) -> Option<(usize, u32, u32)> {
        let (_, _, h) = self.find(key, self.hash(key))?;
        (!h.is_expired(now)).then_some((h.value_len, h.exptime, h.flags))
    }

    /// Calls `f` for every live (unexpired) item, newest segment first, until `f`
    /// returns false. Read-only: counts no access. For introspection, not a hot path.
    pub fn for_each_live<'a>(&'a self, now: u32, mut f: impl FnMut(ItemInfo<'a>) -> bool) {
        let pool = &self.pool;
        let order = pool.head.iter().chain(pool.sealed.iter().rev());
        for &s in order {
            let seg = &pool.segs[s as usize];
            let mut off = 0usize;
            while off < seg.write_off as usize {
                let h = item::parse(&seg.data[off..]);
                let len = h.total_len();
                if !h.is_dead() && !h.is_expired(now) && !self.flushed(&h) {
                    let info = ItemInfo {
                        key: &seg.data[off + h.key_off..off + h.value_off()],
                        value_len: h.value_len,
                        exptime: h.exptime,
                        cas: h.cas,
                        fetched: h.mask & item::FETCHED != 0,
                        size: len,
                        written: seg.started,
                        key_binary: h.meta & item::META_KEY_BINARY != 0,
                    };
                    if !f(info) {
                        return;
                    }
                }
                off += len;
            }
        }
    }

    /// Uses memcached's size classes (`sizes`: chunk sizes of classes 1, 2, ...; `cas`:
    /// items carry memcached's 8 CAS bytes) for the per-class statistics.
    pub fn configure_classes(&mut self, sizes: Vec<u32>, cas: bool) {
        self.classes.configure(sizes, cas);
    }

    /// Figures per class (index i: class i + 1).
    pub fn class_stats(&self) -> &[ClassStats; MAX_CLASSES] {
        &self.classes.rows
    }

    /// Classes whose figures changed since the last call (bit i: class i + 1).
    pub fn take_dirty_classes(&self) -> u64 {
        self.classes.take_dirty()
    }

    /// Per class, the server time + 1 the oldest segment holding its items was started
    /// (0: none): memcached's `age` of the class's LRU tail is now minus that. A
    /// segment counts for a class if an item of it was written there and the segment
    /// still holds live items.
    pub fn class_oldest(&self) -> [u32; MAX_CLASSES] {
        let mut oldest = [0u32; MAX_CLASSES];
        let mut seen = 0u64;
        let pool = &self.pool;
        for &s in pool.sealed.iter().chain(pool.head.iter()) {
            let seg = &pool.segs[s as usize];
            if seg.live_items == 0 || seg.cas_to < self.flush.below {
                continue;
            }
            let mut new = seg.classes & !seen;
            seen |= new;
            while new != 0 {
                let class = new.trailing_zeros() as usize;
                new &= new - 1;
                oldest[class] = seg.started + 1;
            }
        }
        oldest
    }

    /// Server time the oldest live segment started at (memcached's `age` of the LRU
    /// tail is `now` minus this); None when nothing is stored.
    pub fn oldest_write(&self) -> Option<u32> {
        let pool = &self.pool;
        pool.sealed
            .iter()
            .chain(pool.head.iter())
            .map(|&s| &pool.segs[s as usize])
            .find(|seg| seg.live_items > 0 && seg.cas_to >= self.flush.below)
            .map(|seg| seg.started)
    }

    /// Live items by record size (header + key + value as stored here), in buckets of
    /// `bucket` bytes: `(bucket upper bound, count)`, ascending, non-empty buckets only.
    /// Walks every segment: for `stats sizes`, not for a hot path.
    pub fn item_size_histogram(&self, bucket: usize) -> Vec<(usize, u64)> {
        let bucket = bucket.max(1);
        let mut counts = std::collections::BTreeMap::new();
        for seg in &self.pool.segs {
            let mut off = 0usize;
            while off < seg.write_off as usize {
                let h = item::parse(&seg.data[off..]);
                let len = h.total_len();
                if !h.is_dead() {
                    *counts.entry(len.div_ceil(bucket) * bucket).or_insert(0u64) += 1;
                }
                off += len;
            }
        }
        counts.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::{config, key, set};
    use crate::store::{Shard, StoreMode};

    #[test]
    fn for_each_live_lists_live_items_only() {
        let mut s = Shard::new(config(8 << 20, 1 << 20, true));
        for i in 0..1000 {
            set(&mut s, &key(i), b"value", 3);
        }
        s.store(StoreMode::Set, b"ttl", 7, 50, b"abc", 0, 4);
        s.store(StoreMode::Set, b"gone", 0, 10, b"x", 0, 4);
        s.delete(&key(5), 4);
        set(&mut s, &key(6), b"newer value", 4);
        assert!(s.get(&key(7), 4).is_some());
        let mut seen = std::collections::HashMap::new();
        s.for_each_live(10, |i| {
            seen.insert(i.key.to_vec(), i);
            true
        });
        assert_eq!(seen.len(), 1000, "999 left of the 1000, ttl; not gone (expired at 10)");
        assert!(!seen.contains_key(&key(5)) && !seen.contains_key(b"gone".as_slice()));
        let ttl = seen[b"ttl".as_slice()];
        assert_eq!((ttl.value_len, ttl.exptime, ttl.fetched), (3, 50, false));
        assert_eq!(seen[&key(6)].value_len, 11);
        assert!(seen[&key(7)].fetched && !seen[&key(8)].fetched);
        assert_eq!(seen[&key(8)].written, 3);
        assert!(seen[&key(8)].size >= 16 + 5);
        let cas: std::collections::HashSet<u64> = seen.values().map(|i| i.cas).collect();
        assert_eq!(cas.len(), 1000, "CAS values are distinct");
        let mut n = 0;
        s.for_each_live(10, |_| {
            n += 1;
            n < 7
        });
        assert_eq!(n, 7, "stops when asked");
        assert_eq!(s.oldest_write(), Some(3));
        s.flush_all(11, false);
        assert_eq!(s.oldest_write(), None);
    }
}
