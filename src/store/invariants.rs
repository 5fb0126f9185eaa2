//! The shard's self-check: every invariant its bookkeeping relies on, cross-checked
//! from scratch. Public so that the unit tests, the property test and the fuzz targets
//! (a separate crate) all call the same check; never on the request path.

use super::index::Loc;
use super::{item, segment, Shard};

impl Shard {
    /// Cross-checks segments, index and counters; panics on any disagreement.
    pub fn check_invariants(&self) {
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
                    let e = segment::expiry(h.exptime);
                    assert!(seg.expires_by >= e, "expires_by covers every record");
                    assert!(seg.expires_from <= e, "expires_from is at or before every record's");
                    assert!(seg.cas_from <= h.cas && h.cas <= seg.cas_to, "cas bounds cover every record");
                    let (class, _) = self.classes.of(h.key_len, h.value_len, h.flags);
                    assert!(seg.classes & (1 << class) != 0, "the segment's class bits cover every record");
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
        let by_class: u64 = self.classes.rows.iter().map(|r| r.number).sum();
        assert_eq!(by_class, live_total as u64, "every item counted in one class");
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

