//! Prefetching for batched lookups: start a group's cache misses before running it.

use super::{index, Shard};

/// Cache lines of a record `prefetch_record` asks for: values average a few hundred
/// bytes, and the hardware prefetcher takes over a sequential copy after a few lines.
const PREFETCH_LINES: usize = 4;

impl Shard {
    /// First step of a batched lookup: starts loading `key`'s index slot and returns its
    /// hash for `prefetch_record`. Why: with 100k+ items, nearly every lookup misses the
    /// CPU caches twice (index slot, then the record: ~30% of server CPU at pipeline
    /// 16). A caller holding several keys prefetches all slots, then all records, then
    /// runs the lookups, so the misses overlap instead of stalling one after another.
    #[inline]
    pub fn prefetch_slot(&self, key: &[u8]) -> u64 {
        let hash = self.hash(key);
        self.index.prefetch_home(hash);
        hash
    }

    /// Second step: starts loading the records whose index tag matches `hash` (reads the
    /// slots, so call it a little after `prefetch_slot`): their first `PREFETCH_LINES`
    /// cache lines, header, key and the start of the value, which the reply copies next.
    #[inline]
    pub fn prefetch_record(&self, hash: u64) {
        self.index.find(hash, |loc| {
            if let Some(seg) = self.pool.segs.get(loc.seg as usize) {
                let (off, len) = (loc.off as usize, seg.data.len());
                for at in (off..(off + PREFETCH_LINES * 64).min(len)).step_by(64) {
                    index::prefetch(&seg.data[at]);
                }
            }
            false
        });
    }
}
