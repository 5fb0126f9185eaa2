//! The file one core's shard is saved to for a warm restart (see `restart.rs`):
//!
//! ```text
//! header   magic "MCRSWARM" | format version u32 | header length u32 | fields... | crc32 u32
//! chunk    tag "SEG1" | length u32 | started u32 | live items u32 | 0 u32 | crc32 u32 | segment bytes
//!     or   tag "SEGA" | length u32 | started u32 | live items u32 | slot u32 | crc32 u32
//! ...      (one chunk per segment, oldest first)
//! end      tag "END1" | 0 u32 | segments u32 | items u32 | 0 u32 | crc32 u32
//! ```
//! Little-endian throughout. Each crc32 covers its chunk's header fields and bytes, so
//! a torn or overwritten chunk is found; a missing end chunk is a truncated file. The
//! segment bytes are the store's own records (`store::item`), as they sit in memory:
//! - "SEGA": the segment lives in the shard's arena file (`<file>.arena`, a tmpfs file
//!   mapped shared, see `store::segment::Arena`) at `slot * segment size`; its bytes
//!   are already there, the save writes only this header, and the load maps them again.
//! - "SEG1": the bytes follow (segments on the heap: no arena, or a full tmpfs), one
//!   large sequential write per segment on save, one read straight into a new segment
//!   on load.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const MAGIC: [u8; 8] = *b"MCRSWARM";
/// Bumped whenever anything this file holds changes meaning: a file of another
/// version is refused (the cache starts empty), never reinterpreted.
pub const FORMAT_VERSION: u32 = 2;
/// The record layout of `store::item`; bumped with it.
pub const ITEM_LAYOUT: u32 = 2;
const SEG_TAG: u32 = u32::from_le_bytes(*b"SEG1");
const ARENA_TAG: u32 = u32::from_le_bytes(*b"SEGA");
const END_TAG: u32 = u32::from_le_bytes(*b"END1");
const CHUNK_HEADER: usize = 24;
/// Bytes of the header after magic, version and length, before the crc.
const HEADER_FIELDS: usize = 4 + 8 * 3 + 4 * 2 + 8 * 2 + 8 + 4 + 8 * 2 + 4 * 2 + 8 * 4 + 4 + 8 * 2;

/// What a shard file says about the cache it holds.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub item_layout: u32,
    /// `-m` in bytes (the whole server's).
    pub memory_limit: u64,
    /// `-I` in bytes.
    pub item_size_max: u64,
    pub segment_size: u64,
    pub cores: u32,
    pub core: u32,
    /// The same in every file of one save, random per save.
    pub save_id: u64,
    /// Hash of the machine's id (0: unknown).
    pub machine: u64,
    /// Wall-clock time of the save, in milliseconds since the Unix epoch.
    pub saved_unix_ms: i64,
    /// The saving process's server clock at that moment.
    pub saved_now: u32,
    /// The highest CAS unique this shard gave out.
    pub cas_high: u64,
    /// The shard's last flush_all: records with a CAS below this are gone (memcached
    /// flushes lazily, and so do we: they may still be in the segments).
    pub flushed_below: u64,
    /// `flush_all` state on the saving clock: memcached's oldest_live and a delayed
    /// flush not yet due (0: none).
    pub oldest_live: u32,
    pub pending_flush: u32,
    /// The key → core hash's seeds.
    pub route_seeds: [u64; 4],
    pub segments: u32,
    pub items: u64,
    pub bytes: u64,
}

/// Why a file cannot be loaded; `Display` is the reason a log line gives.
#[derive(Debug)]
pub enum FileError {
    Io(io::Error),
    NotOurs,
    Version(u32),
    Layout(u32),
    Truncated,
    /// The crc of the header (None) or of the nth chunk (Some) does not match.
    Checksum(Option<u32>),
    Malformed(&'static str),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Io(e) => write!(f, "{e}"),
            FileError::NotOurs => write!(f, "not a memcached-rs cache file"),
            FileError::Version(v) => {
                write!(f, "written in cache file format {v}, this build reads format {FORMAT_VERSION}")
            }
            FileError::Layout(v) => write!(f, "item layout {v}, this build uses {ITEM_LAYOUT}"),
            FileError::Truncated => write!(f, "truncated (no end mark: the save did not finish)"),
            FileError::Checksum(None) => write!(f, "header checksum mismatch (torn or overwritten)"),
            FileError::Checksum(Some(n)) => write!(f, "checksum mismatch in chunk {n} (torn or overwritten)"),
            FileError::Malformed(what) => write!(f, "malformed: {what}"),
        }
    }
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> FileError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FileError::Truncated
        } else {
            FileError::Io(e)
        }
    }
}

struct Put(Vec<u8>);
impl Put {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

struct Get<'a>(&'a [u8]);
impl Get<'_> {
    fn u32(&mut self) -> u32 {
        let (v, rest) = self.0.split_at(4);
        self.0 = rest;
        u32::from_le_bytes(v.try_into().unwrap_or_default())
    }
    fn u64(&mut self) -> u64 {
        let (v, rest) = self.0.split_at(8);
        self.0 = rest;
        u64::from_le_bytes(v.try_into().unwrap_or_default())
    }
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut p = Put(Vec::with_capacity(16 + HEADER_FIELDS + 4));
        p.0.extend_from_slice(&MAGIC);
        p.u32(FORMAT_VERSION);
        p.u32(HEADER_FIELDS as u32);
        p.u32(self.item_layout);
        p.u64(self.memory_limit);
        p.u64(self.item_size_max);
        p.u64(self.segment_size);
        p.u32(self.cores);
        p.u32(self.core);
        p.u64(self.save_id);
        p.u64(self.machine);
        p.u64(self.saved_unix_ms as u64);
        p.u32(self.saved_now);
        p.u64(self.cas_high);
        p.u64(self.flushed_below);
        p.u32(self.oldest_live);
        p.u32(self.pending_flush);
        for s in self.route_seeds {
            p.u64(s);
        }
        p.u32(self.segments);
        p.u64(self.items);
        p.u64(self.bytes);
        debug_assert_eq!(p.0.len(), 16 + HEADER_FIELDS);
        let crc = crc32fast::hash(&p.0);
        p.u32(crc);
        p.0
    }

    /// Reads and checks a header: ours, this format version, intact.
    pub fn read(r: &mut impl Read) -> Result<Header, FileError> {
        let mut start = [0u8; 16];
        r.read_exact(&mut start).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => FileError::NotOurs,
            _ => FileError::Io(e),
        })?;
        if start[..8] != MAGIC {
            return Err(FileError::NotOurs);
        }
        let mut g = Get(&start[8..]);
        let version = g.u32();
        if version != FORMAT_VERSION {
            return Err(FileError::Version(version));
        }
        if g.u32() as usize != HEADER_FIELDS {
            return Err(FileError::Malformed("header length"));
        }
        let mut rest = vec![0u8; HEADER_FIELDS + 4];
        r.read_exact(&mut rest)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&start);
        crc.update(&rest[..HEADER_FIELDS]);
        if crc.finalize() != u32::from_le_bytes(rest[HEADER_FIELDS..].try_into().unwrap_or_default()) {
            return Err(FileError::Checksum(None));
        }
        let mut g = Get(&rest);
        let h = Header {
            item_layout: g.u32(),
            memory_limit: g.u64(),
            item_size_max: g.u64(),
            segment_size: g.u64(),
            cores: g.u32(),
            core: g.u32(),
            save_id: g.u64(),
            machine: g.u64(),
            saved_unix_ms: g.u64() as i64,
            saved_now: g.u32(),
            cas_high: g.u64(),
            flushed_below: g.u64(),
            oldest_live: g.u32(),
            pending_flush: g.u32(),
            route_seeds: [g.u64(), g.u64(), g.u64(), g.u64()],
            segments: g.u32(),
            items: g.u64(),
            bytes: g.u64(),
        };
        if h.item_layout != ITEM_LAYOUT {
            return Err(FileError::Layout(h.item_layout));
        }
        if h.cores == 0 || h.core >= h.cores || h.segment_size == 0 || h.segment_size > 1 << 30 {
            return Err(FileError::Malformed("header fields"));
        }
        Ok(h)
    }
}

fn chunk_header(tag: u32, len: u32, a: u32, b: u32, c: u32, bytes: &[u8]) -> [u8; CHUNK_HEADER] {
    let mut h = [0u8; CHUNK_HEADER];
    h[0..4].copy_from_slice(&tag.to_le_bytes());
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..12].copy_from_slice(&a.to_le_bytes());
    h[12..16].copy_from_slice(&b.to_le_bytes());
    h[16..20].copy_from_slice(&c.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[..20]);
    crc.update(bytes);
    h[20..24].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// One segment as `write` takes it.
pub struct SegmentOut<'a> {
    pub started: u32,
    pub live_items: u32,
    pub bytes: &'a [u8],
    /// In the arena at this slot: only the chunk header is written.
    pub slot: Option<u32>,
}

/// Writes a shard file: the header, then each segment as a chunk, then the end mark.
/// `go_on` is asked before each chunk; false stops the write with `TimedOut` (a save
/// has a deadline). The caller syncs and renames.
pub fn write<'a>(
    out: &mut File,
    header: &Header,
    segments: impl Iterator<Item = SegmentOut<'a>>,
    mut go_on: impl FnMut() -> bool,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(64 << 10, out);
    w.write_all(&header.encode())?;
    let (mut n, mut items) = (0u32, 0u32);
    for s in segments {
        if !go_on() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "took too long"));
        }
        let len = s.bytes.len() as u32;
        match s.slot {
            Some(slot) => w.write_all(&chunk_header(ARENA_TAG, len, s.started, s.live_items, slot, s.bytes))?,
            None => {
                w.write_all(&chunk_header(SEG_TAG, len, s.started, s.live_items, 0, s.bytes))?;
                // Larger than the buffer: goes to the file in one write.
                w.write_all(s.bytes)?;
            }
        }
        n += 1;
        items = items.wrapping_add(s.live_items);
    }
    w.write_all(&chunk_header(END_TAG, 0, n, items, 0, &[]))?;
    w.flush()
}

/// One saved segment's description, before its bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub len: u32,
    pub started: u32,
    pub live_items: u32,
    /// Its bytes are in the arena at this slot (else they follow in the file).
    pub slot: Option<u32>,
    crc: u32,
    /// Its place in the file, from 0.
    pub number: u32,
}

/// Reads a shard file chunk by chunk.
pub struct Reader {
    r: BufReader<File>,
    pub header: Header,
    next: u32,
    /// Set once the end mark is read.
    pub done: bool,
    /// The arena file, for reading "SEGA" chunks' bytes (opened when first needed).
    arena_path: std::path::PathBuf,
    arena: Option<File>,
}

impl Reader {
    /// `arena`: where the file's "SEGA" chunks' bytes are.
    pub fn open(path: &Path, arena: &Path) -> Result<Reader, FileError> {
        let mut r = BufReader::with_capacity(64 << 10, File::open(path)?);
        let header = Header::read(&mut r)?;
        Ok(Reader { r, header, next: 0, done: false, arena_path: arena.to_path_buf(), arena: None })
    }

    /// The next segment, or None at the (checked) end mark.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, FileError> {
        if self.done {
            return Ok(None);
        }
        let mut h = [0u8; CHUNK_HEADER];
        self.r.read_exact(&mut h)?;
        let mut g = Get(&h);
        let (tag, len, a, b, c, crc) = (g.u32(), g.u32(), g.u32(), g.u32(), g.u32(), g.u32());
        let number = self.next;
        self.next += 1;
        match tag {
            SEG_TAG | ARENA_TAG if (len as u64) <= self.header.segment_size && (tag == ARENA_TAG || c == 0) => {
                let slot = (tag == ARENA_TAG).then_some(c);
                Ok(Some(Chunk { len, started: a, live_items: b, slot, crc, number }))
            }
            END_TAG if len == 0 => {
                if chunk_header(END_TAG, 0, a, b, c, &[]) != h {
                    return Err(FileError::Checksum(Some(number)));
                }
                if a != number {
                    return Err(FileError::Malformed("segment count"));
                }
                self.done = true;
                Ok(None)
            }
            _ => Err(FileError::Checksum(Some(number))),
        }
    }

    /// Reads `chunk`'s bytes into `buf` (its length) and checks them.
    pub fn read_into(&mut self, chunk: &Chunk, buf: &mut [u8]) -> Result<(), FileError> {
        match chunk.slot {
            None => self.r.read_exact(buf)?,
            Some(slot) => {
                use std::os::unix::fs::FileExt;
                if self.arena.is_none() {
                    self.arena = Some(File::open(&self.arena_path)?);
                }
                let at = slot as u64 * self.header.segment_size;
                self.arena.as_ref().map_or(Ok(()), |f| f.read_exact_at(buf, at))?;
            }
        }
        check(chunk, buf)
    }

    /// Skips `chunk`'s bytes unread.
    pub fn skip(&mut self, chunk: &Chunk) -> Result<(), FileError> {
        if chunk.slot.is_none() {
            self.r.seek_relative(chunk.len as i64)?;
        }
        Ok(())
    }

    /// Back to the first chunk.
    pub fn rewind(&mut self) -> Result<(), FileError> {
        let at = 16 + HEADER_FIELDS as u64 + 4;
        self.r.seek(SeekFrom::Start(at))?;
        self.next = 0;
        self.done = false;
        Ok(())
    }
}

/// Checks `bytes` against `chunk`'s crc (a "SEGA" chunk's bytes are checked where
/// they lie, in the arena).
pub fn check(chunk: &Chunk, bytes: &[u8]) -> Result<(), FileError> {
    let tag = if chunk.slot.is_some() { ARENA_TAG } else { SEG_TAG };
    let expect = chunk_header(tag, chunk.len, chunk.started, chunk.live_items, chunk.slot.unwrap_or(0), bytes);
    if u32::from_le_bytes(expect[20..24].try_into().unwrap_or_default()) != chunk.crc {
        return Err(FileError::Checksum(Some(chunk.number)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            item_layout: ITEM_LAYOUT,
            memory_limit: 64 << 20,
            item_size_max: 1 << 20,
            segment_size: 1 << 20,
            cores: 2,
            core: 1,
            save_id: 7,
            machine: 9,
            saved_unix_ms: 1_700_000_000_000,
            saved_now: 100,
            cas_high: 12345,
            flushed_below: 17,
            oldest_live: 3,
            pending_flush: 0,
            route_seeds: [1, 2, 3, 4],
            segments: 2,
            items: 5,
            bytes: 30,
        }
    }

    /// Two segments written out, and a third in the arena file at slot 2.
    fn saved(path: &Path) {
        let mut f = File::create(path).unwrap();
        let (a, b, c) = (vec![1u8; 10], vec![2u8; 20], vec![3u8; 30]);
        let arena = vec![0u8; 2 << 20].into_iter().chain(c.iter().copied()).collect::<Vec<u8>>();
        std::fs::write(arena_of(path), arena).unwrap();
        let segs = [(10u32, 2u32, &a, None), (11, 3, &b, None), (12, 4, &c, Some(2))];
        let segs = segs.into_iter().map(|(started, live_items, bytes, slot)| SegmentOut { started, live_items, bytes, slot });
        write(&mut f, &header(), segs, || true).unwrap();
    }

    fn arena_of(path: &Path) -> std::path::PathBuf {
        path.with_extension("arena")
    }

    fn read_all(path: &Path) -> Result<Vec<Vec<u8>>, FileError> {
        let mut r = Reader::open(path, &arena_of(path))?;
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk()? {
            let mut buf = vec![0u8; c.len as usize];
            r.read_into(&c, &mut buf)?;
            out.push(buf);
        }
        Ok(out)
    }

    #[test]
    fn roundtrip_and_every_kind_of_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        saved(&path);
        let r = Reader::open(&path, &arena_of(&path)).unwrap();
        assert_eq!(r.header, header());
        assert_eq!(read_all(&path).unwrap(), vec![vec![1u8; 10], vec![2u8; 20], vec![3u8; 30]]);
        // A byte of the arena's segment changed: refused.
        let arena = std::fs::read(arena_of(&path)).unwrap();
        let mut bad = arena.clone();
        bad[(2 << 20) + 5] = 9;
        std::fs::write(arena_of(&path), &bad).unwrap();
        assert!(matches!(read_all(&path), Err(FileError::Checksum(Some(2)))));
        std::fs::write(arena_of(&path), &arena).unwrap();
        let good = std::fs::read(&path).unwrap();
        // Truncated anywhere: refused.
        for cut in [0, 10, 100, good.len() - 30, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let e = read_all(&path).unwrap_err();
            assert!(matches!(e, FileError::Truncated | FileError::NotOurs), "cut at {cut}: {e}");
        }
        // Any byte flipped: refused.
        for at in (0..good.len()).step_by(3) {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert!(read_all(&path).is_err(), "flip at {at} went unnoticed");
        }
        let mut other = good.clone();
        other[8..12].copy_from_slice(&3u32.to_le_bytes());
        std::fs::write(&path, &other).unwrap();
        let e = read_all(&path).unwrap_err();
        assert_eq!(e.to_string(), "written in cache file format 3, this build reads format 2");
    }
}
