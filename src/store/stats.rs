//! Introspection beyond `StoreStats`, for memcached's `stats slabs` / `stats items` /
//! `stats sizes`.

use super::{item, Shard};

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
