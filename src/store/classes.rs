//! Statistics by memcached's size classes, for `stats items` and `stats slabs`.
//!
//! The store has no slab classes: every item is packed into the same segments. Only the
//! statistics are kept per class: each item counts in the class memcached would put it
//! in (by memcached's item size: its 48-byte header, key and NUL, the flags if nonzero,
//! the value with its CRLF, and the CAS unless `-C`), so per-class numbers, bytes,
//! evictions and reclaims read as memcached's would. An item larger than the largest
//! class counts in the largest class (memcached chains it from chunks of that size).
//! Which segments hold items of a class is kept as a bit mask per segment, for `age`.

use std::cell::Cell;

/// memcached's slab classes are numbered 1 to 63.
pub const MAX_CLASSES: usize = 64;
const ITEM_HEADER: usize = 48;

/// One class's figures in one shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Items counted in the class (flushed ones too, until met: memcached's `number`).
    pub number: u64,
    /// Sum of their memcached sizes (`mem_requested`).
    pub requested: u64,
    pub evicted: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
}

/// The class table and the shard's figures per class.
pub struct Classes {
    /// Chunk sizes of classes 1, 2, ...; empty: everything counts in class 1.
    sizes: Vec<u32>,
    cas: bool,
    pub rows: [ClassStats; MAX_CLASSES],
    /// Classes whose figures changed since they were last taken for publishing.
    dirty: Cell<u64>,
}

impl Default for Classes {
    fn default() -> Self {
        Classes { sizes: Vec::new(), cas: true, rows: [ClassStats::default(); MAX_CLASSES], dirty: Cell::new(0) }
    }
}

impl Classes {
    pub fn configure(&mut self, sizes: Vec<u32>, cas: bool) {
        self.sizes = sizes;
        self.sizes.truncate(MAX_CLASSES - 1);
        self.cas = cas;
    }

    /// The class (0-based: class id - 1) and memcached size of an item.
    #[inline]
    pub fn of(&self, key_len: usize, value_len: usize, flags: u32) -> (usize, u64) {
        let mut size = ITEM_HEADER + key_len + 1 + value_len + 2;
        if flags != 0 {
            size += 4;
        }
        if self.cas {
            size += 8;
        }
        let class = self.sizes.partition_point(|&s| (s as usize) < size);
        (class.min(self.sizes.len().saturating_sub(1)), size as u64)
    }

    fn touch(&self, class: usize) {
        self.dirty.set(self.dirty.get() | 1 << class);
    }

    pub fn added(&mut self, class: usize, size: u64) {
        let r = &mut self.rows[class];
        r.number += 1;
        r.requested += size;
        self.touch(class);
    }

    pub fn removed(&mut self, class: usize, size: u64) {
        let r = &mut self.rows[class];
        r.number = r.number.saturating_sub(1);
        r.requested = r.requested.saturating_sub(size);
        self.touch(class);
    }

    /// An item of `class` reclaimed after expiry or a flush (`fetched`: it was read).
    pub fn reclaimed(&mut self, class: usize, fetched: bool) {
        self.rows[class].reclaimed += 1;
        self.rows[class].expired_unfetched += u64::from(!fetched);
        self.touch(class);
    }

    pub fn evicted(&mut self, class: usize, fetched: bool) {
        self.rows[class].evicted += 1;
        self.rows[class].evicted_unfetched += u64::from(!fetched);
        self.touch(class);
    }

    /// The same classes with nothing counted (every class marked changed).
    pub fn fresh(&self) -> Classes {
        Classes { sizes: self.sizes.clone(), cas: self.cas, dirty: Cell::new(u64::MAX), ..Classes::default() }
    }

    /// The classes changed since the last call, as a bit mask (bit i: class i + 1).
    pub fn take_dirty(&self) -> u64 {
        self.dirty.replace(0)
    }

    /// `stats reset`: the counters go, the gauges stay.
    pub fn reset(&mut self) {
        for r in &mut self.rows {
            *r = ClassStats { number: r.number, requested: r.requested, ..ClassStats::default() };
        }
        self.dirty.set(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_fall_in_memcacheds_classes() {
        let mut c = Classes::default();
        // memcached 1.6.18 -f 1.25 -n 48: 96, 120, 152, 192, 240, ...
        c.configure(vec![96, 120, 152, 192, 240, 304], true);
        // 48 + 1 + 1 + 10 + 2 + 8 = 70
        assert_eq!(c.of(1, 10, 0), (0, 70));
        assert_eq!(c.of(1, 36, 0).0, 0, "96 bytes fit class 1");
        assert_eq!(c.of(1, 37, 0).0, 1, "97 bytes go to class 2");
        assert_eq!(c.of(1, 33, 7).0, 1, "flags take 4 bytes");
        assert_eq!(c.of(1, 10_000, 0).0, 5, "beyond the largest: the largest");
        c.configure(vec![96, 120], false);
        assert_eq!(c.of(1, 44, 0).0, 0, "without CAS 8 bytes less");
        c.added(1, 100);
        assert_eq!(c.take_dirty(), 0b10);
        assert_eq!(c.take_dirty(), 0);
    }
}
