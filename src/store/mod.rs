//! One shard of the cache: items, recency, expiry, CAS, memory budget.
//!
//! Pure and synchronous: no I/O, no async, no clock of its own. Every call takes `now`,
//! the server's clock in whole seconds since it started (memcached's `rel_time_t`), and
//! expiry times are on that same clock (0 = never expires).
//!
//! API CONTRACT (the server is written against exactly this; the implementation is
//! being built separately).

pub use crate::protocol::StoreMode;

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

/// Result of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    Value(u64),
    NotFound,
    NonNumeric,
    OutOfMemory,
}

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
}

/// memcached's test for "object too large for cache": its item header (48 bytes, 56 with
/// CAS), the key and its NUL, and the value with its `\r\n` must fit in `-I`.
pub fn item_size_ok(key_len: usize, value_len: usize, item_size_max: usize) -> bool {
    56 + key_len + 1 + value_len + 2 <= item_size_max
}

pub struct Shard {}

#[allow(unused_variables)]
impl Shard {
    pub fn new(config: StoreConfig) -> Shard {
        todo!()
    }
    /// A live item; counts as an access for eviction.
    pub fn get(&mut self, key: &[u8], now: u32) -> Option<ItemRef<'_>> {
        todo!()
    }
    /// gat: a live item, with its expiry changed to `exptime`.
    pub fn get_and_touch(&mut self, key: &[u8], exptime: u32, now: u32) -> Option<ItemRef<'_>> {
        todo!()
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
        todo!()
    }
    pub fn delete(&mut self, key: &[u8], now: u32) -> bool {
        todo!()
    }
    pub fn touch(&mut self, key: &[u8], exptime: u32, now: u32) -> bool {
        todo!()
    }
    pub fn incr_decr(&mut self, key: &[u8], incr: bool, delta: u64, now: u32) -> ArithOutcome {
        todo!()
    }
    /// flush_all: every item stored so far is gone.
    pub fn flush_all(&mut self, now: u32) {
        todo!()
    }
    pub fn set_memory_limit(&mut self, bytes: usize) {
        todo!()
    }
    /// Background reclaim step: drop up to `budget` expired items; returns how many.
    pub fn reclaim_expired(&mut self, now: u32, budget: usize) -> usize {
        todo!()
    }
    pub fn stats(&self) -> StoreStats {
        todo!()
    }
    pub fn reset_stats(&mut self) {
        todo!()
    }
}
