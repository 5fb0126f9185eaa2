//! Model-based property tests: random operation sequences against the shard's one
//! model ([`crate::store::model`], the same the fuzz targets drive). proptest supplies
//! the bytes; `arbitrary` turns them into operations, as libFuzzer's input does.

use proptest::prelude::*;

use super::small_shard;
use crate::store::model::{self, Harness};

/// Runs the operations `bytes` decode to, checking everything every 16 operations and
/// at the end. `exact`: the shard must never lose an item.
fn run(bytes: &[u8], limit: usize, evict: bool, exact: bool) {
    let ops = model::ops(bytes);
    let shard = small_shard(limit, evict);
    let mut h = Harness::new(shard, exact, evict, 4096, 2048, limit);
    for (i, op) in ops.iter().enumerate() {
        h.apply(op);
        if i % 16 == 0 {
            h.check_all(24);
        }
    }
    h.check_all(24);
}

proptest! {
    // 128 cases by default; PROPTEST_CASES=n for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    /// Plenty of memory: the shard is exactly the model.
    #[test]
    fn model_exact_with_room(bytes in prop::collection::vec(any::<u8>(), 64..6000)) {
        run(&bytes, 4 << 20, true, true);
    }

    /// Little memory, evicting: misses only where evictions happened.
    #[test]
    fn model_with_eviction(bytes in prop::collection::vec(any::<u8>(), 64..10000), limit in 10usize..28) {
        run(&bytes, limit << 10, true, false);
    }

    /// Little memory, -M: stores fail with OutOfMemory instead of evicting.
    #[test]
    fn model_without_eviction(bytes in prop::collection::vec(any::<u8>(), 64..10000), limit in 10usize..28) {
        run(&bytes, limit << 10, false, false);
    }
}
