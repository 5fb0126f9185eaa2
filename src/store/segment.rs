//! Segments: large fixed-size buffers that records are appended to, and the pool that
//! hands them out within the memory budget.
//!
//! A segment's memory is on the heap, or (with a warm restart directory on tmpfs) a slot
//! of the shard's arena: a tmpfs file mapped shared, one slot per segment number. The
//! arena outlives the process, so a save only writes where each segment is and a load
//! maps the same pages again: nothing is copied and no new memory is touched either way
//! (on a VM, first touches of memory cost as much as the copy, see `restart-bench.sh`).

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;

use super::index::MAX_SEGMENTS;

/// A segment's bytes: owned like a `Box<[u8]>` (heap), or a slot of the pool's `Arena`
/// (whose pages stay in the arena's file: dropping the `SegMem` leaves them there).
pub struct SegMem {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    heap: bool,
}

// SAFETY: a SegMem is the only handle to its bytes (a heap box, or an arena slot that
// the pool hands to one segment at a time), like a Box<[u8]>.
unsafe impl Send for SegMem {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for SegMem {}

impl SegMem {
    pub fn empty() -> SegMem {
        SegMem { ptr: std::ptr::NonNull::dangling(), len: 0, heap: false }
    }
    fn heap(len: usize) -> SegMem {
        let b: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let len = b.len();
        // SAFETY: Box::into_raw never returns null.
        let ptr = unsafe { std::ptr::NonNull::new_unchecked(Box::into_raw(b) as *mut u8) };
        SegMem { ptr, len, heap: true }
    }
    /// Whether the bytes are an arena slot (they survive the process).
    pub fn in_arena(&self) -> bool {
        !self.heap && self.len > 0
    }
}

impl std::ops::Deref for SegMem {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr/len describe memory this SegMem owns (heap) or an arena slot kept
        // mapped for as long as the pool holding both lives (`Pool` drops segs first).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for SegMem {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SegMem {
    fn drop(&mut self) {
        if self.heap {
            // SAFETY: made by Box::into_raw in `heap` with this length.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len)) });
        }
    }
}

/// A tmpfs file mapped shared, holding segment `n` at offset `n * segment size`. Pages
/// are reserved when a segment takes its slot (`fallocate`: a full tmpfs is an error
/// there, and the segment goes on the heap, never a SIGBUS later) and given back when
/// it is released (a punched hole). Memory counts as before: segments times their size.
pub struct Arena {
    file: File,
    base: *mut u8,
    slots: usize,
    seg_size: usize,
}

// SAFETY: the mapping is owned by the Arena and used through the pool that owns it.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    /// Maps `file` for `slots` segments of `seg_size` bytes. With `keep` the file's
    /// contents stay (a load adopts them); else it is emptied first.
    pub fn map(file: File, seg_size: usize, slots: usize, keep: bool) -> std::io::Result<Arena> {
        let size = slots.checked_mul(seg_size).filter(|&s| s > 0).ok_or(std::io::ErrorKind::InvalidInput)?;
        if !keep {
            file.set_len(0)?;
        }
        if file.metadata()?.len() != size as u64 {
            file.set_len(size as u64)?;
        }
        // SAFETY: a new shared mapping of a file we hold open; checked for failure.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Arena { file, base: base.cast(), slots, seg_size })
    }

    /// Slot `id` with its pages reserved (and mapped in one go: on a VM a fault per page
    /// costs microseconds). None: no such slot, or the file system is full.
    fn take(&self, id: u32, len: usize) -> Option<SegMem> {
        let id = id as usize;
        if id >= self.slots || len > self.seg_size {
            return None;
        }
        let off = id * self.seg_size;
        // SAFETY: fallocate on our own fd; the range is inside the file.
        if unsafe { libc::fallocate(self.file.as_raw_fd(), 0, off as i64, self.seg_size as i64) } != 0 {
            return None;
        }
        // SAFETY: the slot lies inside the mapping.
        let ptr = unsafe { self.base.add(off) };
        // SAFETY: advice on our own mapping; failure only means later faults.
        unsafe { libc::madvise(ptr.cast(), len.max(1), libc::MADV_POPULATE_WRITE) };
        // SAFETY: inside the mapping, so not null.
        Some(SegMem { ptr: unsafe { std::ptr::NonNull::new_unchecked(ptr) }, len: self.seg_size, heap: false })
    }

    /// Gives slot `id`'s pages back to the file system (its bytes read as zero after).
    fn give_back(&self, id: u32) {
        let off = id as usize * self.seg_size;
        // SAFETY: fallocate on our own fd.
        unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as i64,
                self.seg_size as i64,
            )
        };
    }

    /// Gives back every slot not in `keep` (sorted): a load drops what it does not adopt.
    pub fn give_back_except(&self, keep: &[u32]) {
        let mut from = 0usize;
        for &k in keep.iter().chain(std::iter::once(&(self.slots as u32))) {
            let k = (k as usize).min(self.slots);
            if k > from {
                // SAFETY: fallocate on our own fd.
                unsafe {
                    libc::fallocate(
                        self.file.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        (from * self.seg_size) as i64,
                        ((k - from) * self.seg_size) as i64,
                    )
                };
            }
            from = from.max(k + 1);
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every SegMem into it is gone (see `Pool`).
        unsafe { libc::munmap(self.base.cast(), self.slots * self.seg_size) };
    }
}

/// One segment: an append-only run of records. Dead records stay until the segment is
/// compacted or reused; the counters say how much of it is still worth keeping.
pub struct Segment {
    /// Empty while the segment holds no memory.
    pub data: SegMem,
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
            data: SegMem::empty(),
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
    /// Declared before `arena`, so dropped before its mapping goes.
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
    /// Where segments live when the server keeps its cache across restarts on tmpfs.
    pub arena: Option<Arena>,
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
            arena: None,
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
        seg.data = match self.arena.as_ref().and_then(|a| a.take(id, self.seg_size)) {
            Some(mem) => mem,
            None => SegMem::heap(self.seg_size),
        };
        seg.reset();
        self.allocated += 1;
        Some(id)
    }

    /// Segment `id` on its arena slot as it is (a warm restart's load): `len` bytes of
    /// records were left there by the previous process. None: not a free number, or no
    /// such slot.
    pub fn adopt_slot(&mut self, id: u32, len: usize) -> Option<u32> {
        let arena = self.arena.as_ref()?;
        if (id as usize) < self.segs.len() && !self.segs[id as usize].data.is_empty() {
            return None;
        }
        let mem = arena.take(id, len)?;
        while self.segs.len() <= id as usize {
            self.spare_ids.push(self.segs.len() as u32);
            self.segs.push(Segment::empty());
        }
        self.spare_ids.retain(|&s| s != id);
        let seg = &mut self.segs[id as usize];
        seg.data = mem;
        seg.reset();
        self.allocated += 1;
        Some(id)
    }

    /// Gives an empty segment's memory back to the allocator.
    pub fn release(&mut self, id: u32) {
        let seg = &mut self.segs[id as usize];
        debug_assert_eq!(seg.live_items, 0);
        if seg.data.in_arena() {
            if let Some(a) = &self.arena {
                a.give_back(id);
            }
        }
        seg.data = SegMem::empty();
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
