//! Store operation sequences on a shard with a small memory limit: evictions at any
//! time, with and without -M. Checks that memory held stays within the limit, that
//! nothing panics, and that a hit is always the last value written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached_rs::store::model::{ops, Harness};
use memcached_rs::store::{Shard, StoreConfig};

fuzz_target!(|data: &[u8]| {
    let [config, kib, rest @ ..] = data else { return };
    let (config, kib, ops) = (*config, *kib, ops(rest));
    let evict = config & 1 == 0;
    let item_size_max = [512, 2048][usize::from(config >> 1 & 1)];
    let seg_size = [1024, 4096][usize::from(config >> 2 & 1)].max(item_size_max);
    let limit = (usize::from(kib % 64) + 1) * 1024;
    let shard = Shard::with_segment_size(
        StoreConfig {
            memory_limit: limit,
            item_size_max,
            evict,
            shard_id: 0,
            shard_count: 1,
        },
        seg_size,
    );
    let mut h = Harness::new(shard, false, evict, seg_size, item_size_max, limit);
    for op in ops.iter().take(3000) {
        h.apply(op);
    }
});
