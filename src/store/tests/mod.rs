//! Shard-level tests: semantics, eviction, expiry, memory, and a model-based proptest.

mod behaviour;
mod density;
mod eviction;
mod model;

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
