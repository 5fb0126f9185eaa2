//! `lru_crawler metadump` and `stats cachedump`: each core lists its own shard's items
//! (the protocol writes memcached's line formats), and the connection splices the
//! cores' lists together in core order.
//!
//! memcached-rs has no slab classes; every item is reported in class 1, the class
//! `stats items` and `stats slabs` report the whole cache as (see stats_slabs.rs).

use bytes::BytesMut;

use crate::protocol::text_reply::{cachedump_line, metadump_line, MetaDumpItem};
use crate::store::Shard;

/// The one class every item is reported in.
pub const CLASS: u32 = 1;
/// memcached's cap on a `stats cachedump` reply (`item_cachedump`'s memlimit).
pub const CACHEDUMP_MAX_BYTES: usize = 2 * 1024 * 1024;

/// Unix time of server-clock time `t`, the clock reading `now` at unix time `unix_now`.
fn unix(unix_now: i64, now: u32, t: u32) -> i64 {
    unix_now - i64::from(now) + i64::from(t)
}

/// This shard's `lru_crawler metadump` lines.
pub fn metadump(shard: &Shard, unix_now: i64, now: u32, out: &mut BytesMut) {
    shard.for_each_live(now, |item| {
        let line = MetaDumpItem {
            key: item.key,
            exp: if item.exptime == 0 { -1 } else { unix(unix_now, now, item.exptime) },
            la: unix(unix_now, now, item.written),
            cas: item.cas,
            fetched: item.fetched,
            class: CLASS,
            size: item.size,
        };
        metadump_line(out, &line);
        true
    });
}

/// This shard's `stats cachedump` lines: at most `limit` items (0: no limit) and
/// `max_bytes` of output.
pub fn cachedump(shard: &Shard, unix_now: i64, now: u32, limit: u32, max_bytes: usize, out: &mut BytesMut) {
    let start = out.len();
    let mut left = if limit == 0 { u64::MAX } else { u64::from(limit) };
    let mut line = BytesMut::new();
    shard.for_each_live(now, |item| {
        if left == 0 {
            return false;
        }
        if item.key_binary {
            // memcached's item_cachedump skips binary keys rather than print them.
            return true;
        }
        line.clear();
        let exp = if item.exptime == 0 { 0 } else { unix(unix_now, now, item.exptime) };
        cachedump_line(&mut line, item.key, item.value_len, exp);
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
    use crate::rules::StoreMode;
    use crate::store::StoreConfig;

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
        let (unix_now, now) = (1_700_000_000, 10);
        let s = shard();
        let mut out = BytesMut::new();
        metadump(&s, unix_now, now, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "the expired item is not listed: {text}");
        assert!(text.ends_with('\n') && !text.contains('\r'));
        let a = lines.iter().find(|l| l.starts_with("key=a%2520b ")).expect("key is uri-encoded");
        assert!(a.contains(" exp=-1 ") && a.contains(" fetch=no cls=1 size="), "{a}");
        let ttl = lines.iter().find(|l| l.starts_with("key=ttl ")).unwrap();
        let unix_exp = unix_now - 10 + 105;
        assert!(ttl.contains(&format!(" exp={unix_exp} ")) && ttl.contains(" fetch=yes "), "{ttl}");
        // Written at server time 5, five seconds before `now`.
        assert!(ttl.contains(&format!(" la={} ", unix_now - 5)), "la is a unix time: {ttl}");
    }

    #[test]
    fn cachedump_lines_limit_and_cap() {
        let unix_now = 1_700_000_000;
        let s = shard();
        let mut out = BytesMut::new();
        cachedump(&s, unix_now, 10, 0, CACHEDUMP_MAX_BYTES, &mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("ITEM a%20b [10 b; 0 s]\r\n"), "{text}");
        let unix_exp = unix_now - 10 + 105;
        assert!(text.contains(&format!("ITEM ttl [3 b; {unix_exp} s]\r\n")), "{text}");
        assert_eq!(text.matches("ITEM ").count(), 2);
        out.clear();
        cachedump(&s, unix_now, 10, 1, CACHEDUMP_MAX_BYTES, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        out.clear();
        cachedump(&s, unix_now, 10, 0, 20, &mut out);
        assert!(out.is_empty(), "no line fits in 20 bytes");
    }
}
