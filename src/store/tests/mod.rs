//! Shard-level tests: semantics, eviction, expiry, memory, and a model-based proptest.

mod behaviour;
mod density;
mod eviction;
mod model;

use super::index::Loc;
use super::item::{self};
use super::{Shard, StoreConfig, StoreMode, StoreOutcome};

pub(super) fn config(memory_limit: usize, item_size_max: usize, evict: bool) -> StoreConfig {
    StoreConfig {
        memory_limit,
        item_size_max,
        evict,
        shard_id: 0,
        shard_count: 1,
    }
}

/// A shard with 4 KiB segments and 2 KiB items, so eviction happens after a few dozen
/// stores.
pub(super) fn small_shard(memory_limit: usize, evict: bool) -> Shard {
    Shard::with_segment_size(config(memory_limit, 2048, evict), 4096)
}

pub(super) fn set(s: &mut Shard, key: &[u8], value: &[u8], now: u32) -> StoreOutcome {
    s.store(StoreMode::Set, key, 0, 0, value, 0, now)
}

pub(super) fn key(i: usize) -> Vec<u8> {
    format!("key:{i:012}").into_bytes()
}

impl Shard {
    /// Cross-checks segments, index and counters; panics on any disagreement.
    pub(super) fn check_invariants(&self) {
        let pool = &self.pool;
        let mut live_total = 0usize;
        let mut bytes_total = 0u64;
        let mut with_data = 0;
        for (id, seg) in pool.segs.iter().enumerate() {
            if seg.data.is_empty() {
                assert_eq!(seg.write_off, 0);
                continue;
            }
            with_data += 1;
            let (mut off, mut items, mut bytes) = (0usize, 0u32, 0u32);
            while off < seg.write_off as usize {
                let h = item::parse(&seg.data[off..]);
                let len = h.total_len();
                if !h.is_dead() {
                    let key = &seg.data[off + h.key_off..off + h.value_off()];
                    let loc = Loc {
                        seg: id as u32,
                        off: off as u32,
                    };
                    let (_, found, _) = self
                        .find(key, self.hash(key))
                        .expect("live record is indexed");
                    assert_eq!(found, loc, "index points at this record");
                    items += 1;
                    bytes += len as u32;
                    let e = super::segment::expiry(h.exptime);
                    assert!(seg.expires_by >= e, "expires_by covers every record");
                    assert!(seg.expires_from <= e, "expires_from is at or before every record's");
                }
                off += len;
            }
            assert_eq!(off, seg.write_off as usize, "records tile the segment");
            assert_eq!(items, seg.live_items, "segment {id} live_items");
            assert_eq!(bytes, seg.live_bytes, "segment {id} live_bytes");
            live_total += items as usize;
            bytes_total += bytes as u64;
        }
        assert_eq!(with_data, pool.allocated);
        assert_eq!(live_total, self.index.len(), "curr_items == live records");
        assert_eq!(self.index.locs().len(), self.index.len());
        assert_eq!(bytes_total, self.c.bytes);
        let mut ids: Vec<u32> = pool
            .sealed
            .iter()
            .chain(pool.free.iter())
            .chain(pool.head.iter())
            .copied()
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "head, sealed and free are disjoint");
        assert_eq!(
            n, pool.allocated,
            "every segment with memory is head, sealed or free"
        );
        for &f in &pool.free {
            assert_eq!(pool.segs[f as usize].write_off, 0);
        }
    }
}

impl Shard {
    /// The item as the model sees it, without touching recency or expiring anything.
    pub(super) fn peek(&self, key: &[u8], now: u32) -> Option<model::MItem> {
        let (_, loc, h) = self.find(key, self.hash(key))?;
        if h.is_expired(now) {
            return None;
        }
        Some(model::MItem {
            value: self.value_at(loc, h).to_vec(),
            flags: h.flags,
            exptime: h.exptime,
            cas: h.cas,
        })
    }
}
