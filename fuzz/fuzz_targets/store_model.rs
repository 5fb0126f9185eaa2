//! Store operation sequences on a shard that never evicts (a large limit), every
//! answer checked against the shard's model (memcached_rs::store::model).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached_rs::store::model::{ops, Harness};
use memcached_rs::store::{Shard, StoreConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else { return };
    let ops = ops(rest);
    // -I 1 KiB or 1 MiB; one or two shards (CAS uniques interleave across shards).
    let item_size_max = if config & 1 == 0 { 1024 } else { 1 << 20 };
    let shard_count = 1 + u32::from(config >> 1 & 1);
    let seg_size = 4096.max(item_size_max);
    let limit = 64 << 20;
    let shard = Shard::with_segment_size(
        StoreConfig {
            memory_limit: limit,
            item_size_max,
            evict: true,
            shard_id: shard_count - 1,
            shard_count,
        },
        seg_size,
    );
    let mut h = Harness::new(shard, true, true, seg_size, item_size_max, limit);
    for op in ops.iter().take(2000) {
        h.apply(op);
    }
});
