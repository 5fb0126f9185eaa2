//! The item record as laid out inside a segment: a small header, the key, the value,
//! no padding and no per-item allocation.
//!
//! ```text
//! mask u8 | key_len u8 | value_len (1, 2 or 4 bytes) [meta u8] | cas u64 | [flags u32] | [exptime u32] | key | value
//! ```
//! Flags and exptime are only present when nonzero at write time (the common case for
//! both is zero), so a 16-byte key with a 32-byte value costs 11 + 48 bytes. The `meta`
//! byte (the meta protocol's per-item bits: stale, win token sent, binary key) is only
//! present on the rare records that have one of them set: value-length code 3 (4-byte
//! value length, then the meta byte), so classic items pay nothing for it.
//! All integers are little-endian.

/// The record carries a `flags` field.
pub const HAS_FLAGS: u8 = 1 << 0;
/// The record carries an `exptime` field.
pub const HAS_EXPTIME: u8 = 1 << 1;
/// Read since it was written or last kept by eviction: the low bit of a 2-bit read
/// counter (with `ACCESSED_HI`). Eviction keeps a record whose counter is nonzero and
/// counts it down, so an item read a few times survives a few passes of a one-off
/// scan, as memcached's warm LRU keeps it (a 1-bit CLOCK would keep it for one pass).
pub const ACCESSED: u8 = 1 << 2;
/// High bit of the read counter.
pub const ACCESSED_HI: u8 = 1 << 7;
/// Both read-counter bits.
pub const READS: u8 = ACCESSED | ACCESSED_HI;
/// Ever read (memcached's ITEM_FETCHED), for `evicted_unfetched`/`expired_unfetched`.
pub const FETCHED: u8 = 1 << 3;
/// Superseded or deleted; the bytes stay until the segment is compacted or reused.
pub const DEAD: u8 = 1 << 4;
const VLEN_SHIFT: u8 = 5;
const VLEN_MASK: u8 = 0b11 << VLEN_SHIFT;
/// Value-length code of a record with a meta byte (4-byte value length, then meta).
const VLEN_META: u8 = 3;

/// Meta bit: marked stale (`md ... I`, `ms ... I` with an older CAS): memcached's
/// ITEM_STALE.
pub const META_STALE: u8 = 1 << 0;
/// Meta bit: a client has been sent the win token (`W`): memcached's ITEM_TOKEN_SENT.
pub const META_TOKEN_SENT: u8 = 1 << 1;
/// Meta bit: stored by `ms` with a base64 key (`b`): memcached's ITEM_KEY_BINARY, so a
/// returned key is printed base64-encoded.
pub const META_KEY_BINARY: u8 = 1 << 2;

/// Largest header: mask, key_len, 4-byte value_len, cas, flags, exptime.
#[cfg(test)]
pub const MAX_HEADER: usize = 2 + 4 + 8 + 4 + 4;

/// What a record says about itself, decoded from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub mask: u8,
    pub key_len: usize,
    pub value_len: usize,
    pub cas: u64,
    pub flags: u32,
    pub exptime: u32,
    /// The meta bits (`META_*`); 0 when the record has no meta byte.
    pub meta: u8,
    /// Offset of the key from the start of the record.
    pub key_off: usize,
}

impl Header {
    /// Header, key and value: the bytes this record occupies.
    pub fn total_len(&self) -> usize {
        self.key_off + self.key_len + self.value_len
    }
    pub fn value_off(&self) -> usize {
        self.key_off + self.key_len
    }
    /// Offset of the `cas` field from the start of the record.
    pub fn cas_off(&self) -> usize {
        self.key_off - 8 - self.opt_len()
    }
    /// Offset of the `exptime` field, if the record has one.
    pub fn exptime_off(&self) -> Option<usize> {
        (self.mask & HAS_EXPTIME != 0).then(|| self.key_off - 4)
    }
    /// Offset of the meta byte, if the record has one.
    pub fn meta_off(&self) -> Option<usize> {
        ((self.mask & VLEN_MASK) >> VLEN_SHIFT == VLEN_META).then_some(6)
    }
    fn opt_len(&self) -> usize {
        (if self.mask & HAS_FLAGS != 0 { 4 } else { 0 })
            + (if self.mask & HAS_EXPTIME != 0 { 4 } else { 0 })
    }
    pub fn is_dead(&self) -> bool {
        self.mask & DEAD != 0
    }
    /// memcached's test: an item with a nonzero exptime at or before now is gone.
    pub fn is_expired(&self, now: u32) -> bool {
        self.exptime != 0 && self.exptime <= now
    }
}

fn vlen_width(value_len: usize) -> (u8, usize) {
    if value_len <= u8::MAX as usize {
        (0, 1)
    } else if value_len <= u16::MAX as usize {
        (1, 2)
    } else {
        (2, 4)
    }
}

/// Bytes a record with these fields occupies.
pub fn record_len(key_len: usize, value_len: usize, flags: u32, exptime: u32) -> usize {
    let opt = (if flags != 0 { 4 } else { 0 }) + (if exptime != 0 { 4 } else { 0 });
    2 + vlen_width(value_len).1 + 8 + opt + key_len + value_len
}

/// Value-length code and bytes (meta byte included) of a record's length field.
fn vlen_field(value_len: usize, meta: u8) -> (u8, usize) {
    if meta != 0 {
        (VLEN_META, 5)
    } else {
        vlen_width(value_len)
    }
}

/// The fields of a record to be written; the value is written separately so that
/// append/prepend/incr can assemble it in place.
pub struct NewRecord {
    pub key_len: usize,
    pub value_len: usize,
    pub cas: u64,
    pub flags: u32,
    pub exptime: u32,
    /// Extra mask bits (read counter, FETCHED) carried over.
    pub bits: u8,
    /// Meta bits (`META_*`); nonzero adds the meta byte.
    pub meta: u8,
}

impl NewRecord {
    pub fn len(&self) -> usize {
        let extra = if self.meta != 0 { 5 - vlen_width(self.value_len).1 } else { 0 };
        record_len(self.key_len, self.value_len, self.flags, self.exptime) + extra
    }

    /// Writes the header into `buf` (which must be at least `len()` long) and returns the
    /// decoded header so the caller can place key and value.
    pub fn write_header(&self, buf: &mut [u8]) -> Header {
        let (code, width) = vlen_field(self.value_len, self.meta);
        let mut mask = (code << VLEN_SHIFT) | (self.bits & (READS | FETCHED));
        if self.flags != 0 {
            mask |= HAS_FLAGS;
        }
        if self.exptime != 0 {
            mask |= HAS_EXPTIME;
        }
        buf[0] = mask;
        buf[1] = self.key_len as u8;
        let mut p = 2;
        let vl = (self.value_len as u32).to_le_bytes();
        if code == VLEN_META {
            buf[p..p + 4].copy_from_slice(&vl);
            buf[p + 4] = self.meta;
        } else {
            buf[p..p + width].copy_from_slice(&vl[..width]);
        }
        p += width;
        buf[p..p + 8].copy_from_slice(&self.cas.to_le_bytes());
        p += 8;
        if self.flags != 0 {
            buf[p..p + 4].copy_from_slice(&self.flags.to_le_bytes());
            p += 4;
        }
        if self.exptime != 0 {
            buf[p..p + 4].copy_from_slice(&self.exptime.to_le_bytes());
            p += 4;
        }
        Header {
            mask,
            key_len: self.key_len,
            value_len: self.value_len,
            cas: self.cas,
            flags: self.flags,
            exptime: self.exptime,
            meta: self.meta,
            key_off: p,
        }
    }
}

/// The read counter (0..=3) of a record's mask.
pub fn reads(mask: u8) -> u8 {
    u8::from(mask & ACCESSED != 0) | (u8::from(mask & ACCESSED_HI != 0) << 1)
}

/// `mask` with its read counter set to `n` (0..=3).
pub fn with_reads(mask: u8, n: u8) -> u8 {
    let mut m = mask & !READS;
    if n & 1 != 0 {
        m |= ACCESSED;
    }
    if n & 2 != 0 {
        m |= ACCESSED_HI;
    }
    m
}

/// `mask` after one more read: counter up (saturating at 3), FETCHED set.
pub fn read_once(mask: u8) -> u8 {
    with_reads(mask, (reads(mask) + 1).min(3)) | FETCHED
}

/// Bytes of the header of a record whose mask is `mask` (for checking a record read
/// back from a file before `parse` trusts it).
pub fn header_len(mask: u8) -> usize {
    let vlen = match (mask & VLEN_MASK) >> VLEN_SHIFT {
        0 => 1,
        1 => 2,
        _ => 4,
    };
    let opt = (if mask & HAS_FLAGS != 0 { 4 } else { 0 }) + (if mask & HAS_EXPTIME != 0 { 4 } else { 0 });
    2 + vlen + 8 + opt
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes the header of the record starting at `buf[0]`. The segment only ever holds
/// records this module wrote, so the layout is trusted.
pub fn parse(buf: &[u8]) -> Header {
    let mask = buf[0];
    let key_len = buf[1] as usize;
    let mut p = 2;
    let mut meta = 0;
    let value_len = match (mask & VLEN_MASK) >> VLEN_SHIFT {
        0 => {
            p += 1;
            buf[2] as usize
        }
        1 => {
            p += 2;
            u16::from_le_bytes([buf[2], buf[3]]) as usize
        }
        2 => {
            p += 4;
            le32(&buf[2..]) as usize
        }
        _ => {
            p += 5;
            meta = buf[6];
            le32(&buf[2..]) as usize
        }
    };
    let mut cas_bytes = [0u8; 8];
    cas_bytes.copy_from_slice(&buf[p..p + 8]);
    let cas = u64::from_le_bytes(cas_bytes);
    p += 8;
    let mut flags = 0;
    if mask & HAS_FLAGS != 0 {
        flags = le32(&buf[p..]);
        p += 4;
    }
    let mut exptime = 0;
    if mask & HAS_EXPTIME != 0 {
        exptime = le32(&buf[p..]);
        p += 4;
    }
    Header {
        mask,
        key_len,
        value_len,
        cas,
        flags,
        exptime,
        meta,
        key_off: p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(key: &[u8], value: &[u8], flags: u32, exptime: u32, cas: u64) {
        let rec = NewRecord {
            key_len: key.len(),
            value_len: value.len(),
            cas,
            flags,
            exptime,
            bits: FETCHED,
            meta: 0,
        };
        let mut buf = vec![0xAAu8; rec.len() + 3];
        let h = rec.write_header(&mut buf);
        buf[h.key_off..h.value_off()].copy_from_slice(key);
        buf[h.value_off()..h.total_len()].copy_from_slice(value);
        let p = parse(&buf);
        assert_eq!(p, h);
        assert_eq!(p.total_len(), rec.len());
        assert_eq!((p.flags, p.exptime, p.cas), (flags, exptime, cas));
        assert_eq!(&buf[p.key_off..p.value_off()], key);
        assert_eq!(&buf[p.value_off()..p.total_len()], value);
        assert_eq!(p.mask & FETCHED, FETCHED);
        assert!(!p.is_dead());
        let cas_off = p.cas_off();
        assert_eq!(&buf[cas_off..cas_off + 8], &cas.to_le_bytes());
        if exptime != 0 {
            let e = p.exptime_off().unwrap();
            assert_eq!(&buf[e..e + 4], &exptime.to_le_bytes());
        } else {
            assert_eq!(p.exptime_off(), None);
        }
    }

    #[test]
    fn records_roundtrip_all_widths_and_options() {
        for vlen in [0usize, 1, 255, 256, 65535, 65536, 300_000] {
            let value: Vec<u8> = (0..vlen).map(|i| (i % 251) as u8).collect();
            for (flags, exptime) in [(0, 0), (7, 0), (0, 99), (u32::MAX, u32::MAX)] {
                roundtrip(b"k", &value, flags, exptime, 0x0102_0304_0506_0708);
            }
        }
        roundtrip(&[b'x'; 250], b"v\r\nv", 1, 2, u64::MAX);
    }

    #[test]
    fn meta_byte_roundtrips_and_is_optional() {
        for (vlen, flags, exptime) in [(0usize, 0, 0), (3, 7, 0), (300, 0, 9), (70_000, 1, 2)] {
            let rec = NewRecord { key_len: 3, value_len: vlen, cas: 42, flags, exptime, bits: FETCHED, meta: META_STALE | META_KEY_BINARY };
            let mut buf = vec![0u8; rec.len()];
            let h = rec.write_header(&mut buf);
            buf[h.key_off..h.value_off()].copy_from_slice(b"key");
            let p = parse(&buf);
            assert_eq!(p, h);
            assert_eq!((p.meta, p.value_len, p.flags, p.exptime, p.cas), (META_STALE | META_KEY_BINARY, vlen, flags, exptime, 42));
            assert_eq!(p.total_len(), rec.len());
            assert_eq!(buf[p.meta_off().unwrap()], p.meta);
            assert_eq!(&buf[p.cas_off()..p.cas_off() + 8], &42u64.to_le_bytes());
            let plain = NewRecord { meta: 0, ..rec };
            assert_eq!(plain.len() + 5 - vlen_width(vlen).1, rec.len());
        }
    }

    #[test]
    fn small_item_header_is_eleven_bytes() {
        assert_eq!(record_len(16, 32, 0, 0), 11 + 48);
        assert_eq!(record_len(16, 300, 5, 6), 2 + 2 + 8 + 8 + 316);
        assert!(record_len(250, 1 << 20, 1, 1) <= MAX_HEADER + 250 + (1 << 20));
    }

    #[test]
    fn read_counter_saturates_and_keeps_other_bits() {
        let m = HAS_FLAGS | (2 << VLEN_SHIFT);
        assert_eq!(reads(m), 0);
        let m1 = read_once(m);
        assert_eq!((reads(m1), m1 & FETCHED), (1, FETCHED));
        let m3 = read_once(read_once(read_once(read_once(m1))));
        assert_eq!(reads(m3), 3);
        assert_eq!(with_reads(m3, 0) & !FETCHED, m);
        assert_eq!(reads(with_reads(m3, 2)), 2);
        let rec = NewRecord { key_len: 1, value_len: 300, cas: 1, flags: 0, exptime: 0, bits: m3, meta: 0 };
        let mut buf = vec![0u8; rec.len()];
        let h = rec.write_header(&mut buf);
        assert_eq!(parse(&buf), h);
        assert_eq!((reads(h.mask), h.value_len), (3, 300));
    }

    #[test]
    fn expiry_rule_matches_memcached() {
        let h = |exptime| Header {
            mask: 0,
            key_len: 1,
            value_len: 0,
            cas: 1,
            flags: 0,
            exptime,
            meta: 0,
            key_off: 11,
        };
        assert!(!h(0).is_expired(100));
        assert!(h(100).is_expired(100));
        assert!(h(99).is_expired(100));
        assert!(!h(101).is_expired(100));
    }
}
