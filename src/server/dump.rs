//! `lru_crawler metadump` and `stats cachedump`: each core lists its own shard's items
//! in memcached's line formats, and the connection splices the cores' lists together.
//!
//! memcached-rs has no slab classes; every item is reported in class 1, the class
//! `stats items` and `stats slabs` report the whole cache as (see settings.rs).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;

use super::clock::Clock;
use crate::store::Shard;

/// The one class every item is reported in.
pub const CLASS: u32 = 1;
/// memcached's cap on a `stats cachedump` reply (`item_cachedump`'s memlimit).
pub const CACHEDUMP_MAX_BYTES: usize = 2 * 1024 * 1024;

/// `lru_crawler enable|disable`: memcached's crawler thread state, process-wide. Our
/// expiry sweep runs either way; what it changes is what memcached's replies change.
static CRAWLER_ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the crawler counts as running (metadump is refused when it is not).
pub fn crawler_enabled() -> bool {
    CRAWLER_ENABLED.load(Ordering::Relaxed)
}

/// `lru_crawler enable|disable`: memcached's reply, an error only when enabling a
/// crawler that already runs (stopping one that is stopped is fine).
pub fn set_crawler(enable: bool) -> &'static [u8] {
    match (CRAWLER_ENABLED.swap(enable, Ordering::Relaxed), enable) {
        (true, true) => b"ERROR failed to start lru crawler thread\r\n",
        _ => b"OK\r\n",
    }
}

/// Unix time of a server-clock time.
fn unix(clock: &Clock, now: u32, t: u32) -> i64 {
    clock.unix_now() - i64::from(now) + i64::from(t)
}

/// memcached's `uriencode`: letters, digits and `-._~` as they are, the rest `%XX`.
fn uri_encode(out: &mut BytesMut, key: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.extend_from_slice(&[b]);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// This shard's `lru_crawler metadump` lines (memcached 1.6's format, `\n`-terminated).
pub fn metadump(shard: &Shard, clock: &Clock, now: u32, out: &mut BytesMut) {
    use std::fmt::Write;
    shard.for_each_live(now, |item| {
        out.extend_from_slice(b"key=");
        uri_encode(out, item.key);
        let exp = if item.exptime == 0 { -1 } else { unix(clock, now, item.exptime) };
        let fetch = if item.fetched { "yes" } else { "no" };
        let _ = writeln!(
            out,
            " exp={exp} la={} cas={} fetch={fetch} cls={CLASS} size={}",
            unix(clock, now, item.written),
            item.cas,
            item.size
        );
        true
    });
}

/// This shard's `stats cachedump` lines: at most `limit` items (0: no limit) and
/// `max_bytes` of output.
pub fn cachedump(shard: &Shard, clock: &Clock, now: u32, limit: u32, max_bytes: usize, out: &mut BytesMut) {
    use std::fmt::Write;
    let start = out.len();
    let mut left = if limit == 0 { u64::MAX } else { u64::from(limit) };
    let mut line = BytesMut::new();
    shard.for_each_live(now, |item| {
        if left == 0 {
            return false;
        }
        line.clear();
        let exp = if item.exptime == 0 { 0 } else { unix(clock, now, item.exptime) };
        line.extend_from_slice(b"ITEM ");
        line.extend_from_slice(item.key);
        let _ = write!(line, " [{} b; {exp} s]\r\n", item.value_len);
        if out.len() - start + line.len() > max_bytes {
            return false;
        }
        out.extend_from_slice(&line);
        left -= 1;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreConfig, StoreMode};

    fn shard() -> Shard {
        let mut s = Shard::new(StoreConfig {
            memory_limit: 4 << 20,
            item_size_max: 1 << 20,
            evict: true,
            shard_id: 0,
            shard_count: 1,
        });
        s.store(StoreMode::Set, b"a%20b", 0, 0, b"0123456789", 0, 5);
        s.store(StoreMode::Set, b"ttl", 3, 105, b"abc", 0, 5);
        s.store(StoreMode::Set, b"old", 0, 6, b"x", 0, 5);
        assert!(s.get(b"ttl", 5).is_some());
        s
    }

    #[test]
    fn metadump_lines_like_memcached() {
        let clock = Clock::start();
        let now = clock.now();
        let s = shard();
        let mut out = BytesMut::new();
        metadump(&s, &clock, now.max(10), &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "the expired item is not listed: {text}");
        assert!(text.ends_with('\n') && !text.contains('\r'));
        let a = lines.iter().find(|l| l.starts_with("key=a%2520b ")).expect("key is uri-encoded");
        assert!(a.contains(" exp=-1 ") && a.contains(" fetch=no cls=1 size="), "{a}");
        let ttl = lines.iter().find(|l| l.starts_with("key=ttl ")).unwrap();
        let unix_exp = clock.unix_now() - i64::from(now.max(10)) + 105;
        assert!(ttl.contains(&format!(" exp={unix_exp} ")) && ttl.contains(" fetch=yes "), "{ttl}");
        let la: i64 = ttl.split(" la=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!((la - clock.unix_now()).abs() < 86_400, "la is a unix time: {la}");
    }

    #[test]
    fn cachedump_lines_limit_and_cap() {
        let clock = Clock::start();
        let s = shard();
        let mut out = BytesMut::new();
        cachedump(&s, &clock, 10, 0, CACHEDUMP_MAX_BYTES, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("ITEM a%20b [10 b; 0 s]\r\n"), "{text}");
        let unix_exp = clock.unix_now() - 10 + 105;
        assert!(text.contains(&format!("ITEM ttl [3 b; {unix_exp} s]\r\n")), "{text}");
        assert_eq!(text.matches("ITEM ").count(), 2);
        out.clear();
        cachedump(&s, &clock, 10, 1, CACHEDUMP_MAX_BYTES, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        out.clear();
        cachedump(&s, &clock, 10, 0, 20, &mut out);
        assert!(out.is_empty(), "no line fits in 20 bytes");
    }

    #[test]
    fn uri_encoding_matches_memcached() {
        let mut out = BytesMut::new();
        uri_encode(&mut out, b"aZ09-._~ %/\xff");
        assert_eq!(&out[..], b"aZ09-._~%20%25%2F%FF");
    }
}
