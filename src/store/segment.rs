//! Segments: large fixed-size buffers that records are appended to, and the pool that
//! hands them out within the memory budget.

use std::collections::VecDeque;

use super::index::MAX_SEGMENTS;

/// One segment: an append-only run of records. Dead records stay until the segment is
/// compacted or reused; the counters say how much of it is still worth keeping.
pub struct Segment {
    /// Empty while the segment holds no memory.
    pub data: Box<[u8]>,
    /// End of the last record.
    pub write_off: u32,
    /// Bytes of records still linked in the index.
    pub live_bytes: u32,
    pub live_items: u32,
    /// Latest exptime of the records written here (u32::MAX: some never expire); when it
    /// is at or before now every record is dead or expired and the segment can go whole.
    pub expires_by: u32,
    /// Earliest exptime of the records written here (u32::MAX: none expire); before it
    /// nothing here has expired, so the background reclaim skips the segment without
    /// reading it (where idle memory is slow to read, such reads stalled the core).
    pub expires_from: u32,
    /// Bumped whenever records move or vanish wholesale, so a reclaim cursor into the
    /// segment knows its offset is stale.
    pub generation: u32,
    /// When it last became the write head: its records were written (or kept by
    /// eviction) at or after this time. Items carry no time of their own.
    pub started: u32,
    /// Lowest and highest CAS of the records written here (`cas_from` u64::MAX: none):
    /// what a lazy `flush_all` (everything below a CAS is gone) may have left here.
    pub cas_from: u64,
    pub cas_to: u64,
    /// memcached size classes of the records written here (bit i: class i + 1), for
    /// the `age` of a class in `stats items`.
    pub classes: u64,
}

impl Segment {
    fn empty() -> Segment {
        Segment {
            data: Box::default(),
            write_off: 0,
            live_bytes: 0,
            live_items: 0,
            expires_by: 0,
            expires_from: u32::MAX,
            generation: 0,
            started: 0,
            cas_from: u64::MAX,
            cas_to: 0,
            classes: 0,
        }
    }
    /// Forgets every record (the caller has unlinked them).
    pub fn reset(&mut self) {
        self.write_off = 0;
        self.live_bytes = 0;
        self.live_items = 0;
        self.expires_by = 0;
        self.expires_from = u32::MAX;
        self.cas_from = u64::MAX;
        self.cas_to = 0;
        self.classes = 0;
        self.generation = self.generation.wrapping_add(1);
    }
    pub fn note_cas(&mut self, cas: u64) {
        self.cas_from = self.cas_from.min(cas);
        self.cas_to = self.cas_to.max(cas);
    }
    pub fn note_exptime(&mut self, exptime: u32) {
        let e = expiry(exptime);
        self.expires_by = self.expires_by.max(e);
        self.expires_from = self.expires_from.min(e);
    }
}

/// A record's exptime as the segment bounds count it: 0 (never) is the latest time.
pub fn expiry(exptime: u32) -> u32 {
    if exptime == 0 {
        u32::MAX
    } else {
        exptime
    }
}

/// All segments of a shard: the write head, the sealed ones in write order (oldest
/// first: the FIFO eviction walks from the front), and empty ones kept for reuse.
pub struct Pool {
    pub segs: Vec<Segment>,
    pub head: Option<u32>,
    pub sealed: VecDeque<u32>,
    /// Empty segments that still hold their memory.
    pub free: Vec<u32>,
    /// Segment numbers without memory, reusable.
    pub spare_ids: Vec<u32>,
    pub seg_size: usize,
    /// Segments holding memory now.
    pub allocated: usize,
}

impl Pool {
    pub fn new(seg_size: usize) -> Pool {
        Pool {
            segs: Vec::new(),
            head: None,
            sealed: VecDeque::new(),
            free: Vec::new(),
            spare_ids: Vec::new(),
            seg_size,
            allocated: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.allocated * self.seg_size
    }

    /// A new empty segment with memory, if the entry layout allows one more.
    pub fn allocate(&mut self) -> Option<u32> {
        let id = match self.spare_ids.pop() {
            Some(id) => id,
            None if self.segs.len() < MAX_SEGMENTS => {
                self.segs.push(Segment::empty());
                (self.segs.len() - 1) as u32
            }
            None => return None,
        };
        let seg = &mut self.segs[id as usize];
        seg.data = vec![0u8; self.seg_size].into_boxed_slice();
        seg.reset();
        self.allocated += 1;
        Some(id)
    }

    /// Gives an empty segment's memory back to the allocator.
    pub fn release(&mut self, id: u32) {
        let seg = &mut self.segs[id as usize];
        debug_assert_eq!(seg.live_items, 0);
        seg.data = Box::default();
        seg.reset();
        self.allocated -= 1;
        self.spare_ids.push(id);
    }

    /// Puts an emptied segment on the free list.
    pub fn recycle(&mut self, id: u32) {
        self.segs[id as usize].reset();
        self.free.push(id);
    }

    /// Takes `id` out of the sealed queue (it is about to be compacted or freed).
    pub fn unseal(&mut self, id: u32) {
        if let Some(pos) = self.sealed.iter().position(|&s| s == id) {
            self.sealed.remove(pos);
        }
    }

    /// The sealed segment that is cheapest to empty: fewest live bytes.
    pub fn emptiest_sealed(&self) -> Option<u32> {
        self.sealed
            .iter()
            .copied()
            .min_by_key(|&s| self.segs[s as usize].live_bytes)
    }

    /// A sealed segment all of whose records are dead or expired at `now`, or flushed
    /// (CAS below `flushed_below`).
    pub fn expired_sealed(&self, now: u32, flushed_below: u64) -> Option<u32> {
        self.sealed.iter().copied().find(|&s| {
            let seg = &self.segs[s as usize];
            seg.live_items == 0 || seg.expires_by <= now || seg.cas_to < flushed_below
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_allocates_recycles_and_releases() {
        let mut p = Pool::new(4096);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_ne!(a, b);
        assert_eq!(p.bytes(), 8192);
        assert_eq!(p.segs[a as usize].data.len(), 4096);
        p.release(a);
        assert_eq!(p.bytes(), 4096);
        let c = p.allocate().unwrap();
        assert_eq!(c, a, "segment numbers are reused");
        p.sealed.extend([b, c]);
        p.segs[b as usize].live_bytes = 100;
        p.segs[b as usize].live_items = 1;
        p.segs[b as usize].note_exptime(50);
        p.segs[c as usize].live_bytes = 10;
        p.segs[c as usize].live_items = 1;
        p.segs[c as usize].note_exptime(0);
        assert_eq!(p.emptiest_sealed(), Some(c));
        assert_eq!(p.expired_sealed(49, 0), None);
        assert_eq!(p.expired_sealed(50, 0), Some(b));
        p.unseal(b);
        assert_eq!(p.sealed, [c]);
        p.segs[b as usize].live_items = 0;
        p.recycle(b);
        assert_eq!(p.free, [b]);
        assert_eq!(p.segs[b as usize].expires_by, 0);
    }
}
