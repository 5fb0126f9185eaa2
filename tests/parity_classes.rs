//! `stats items` and `stats slabs` by memcached's size classes (issue #17): the class
//! an item counts in, its number and bytes, reclaims per class. Run with -t 1 and -t 2,
//! and against memcached (`MC_SERVER_BIN`): the figures below are memcached 1.6.18's.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{stat_num, Client, Server};

/// `field` of every class that has it, by class id.
fn by_class(stats: &std::collections::HashMap<String, String>, prefix: &str, field: &str) -> BTreeMap<u32, u64> {
    stats
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(prefix)?;
            let (id, name) = rest.split_once(':')?;
            if name != field {
                return None;
            }
            Some((id.parse().ok()?, v.parse().ok()?))
        })
        .collect()
}

const SIZES: [usize; 14] = [10, 30, 50, 100, 200, 400, 800, 1500, 3000, 6000, 12000, 30000, 100000, 600000];

fn store_sizes(c: &mut Client) {
    let mut req = Vec::new();
    for (i, &len) in SIZES.iter().cycle().take(3 * SIZES.len()).enumerate() {
        req.extend_from_slice(format!("set k{i} {} 0 {len}\r\n", i % 2).as_bytes());
        req.extend(std::iter::repeat_n(b'x', len));
        req.extend_from_slice(b"\r\n");
    }
    c.send(&req);
    c.expect("STORED\r\n".repeat(3 * SIZES.len()));
}

fn items_by_size_class(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    store_sizes(&mut c);
    let items = c.stats("items");
    let want_number: BTreeMap<u32, u64> =
        [(1, 6), (2, 3), (4, 3), (6, 3), (8, 3), (11, 3), (14, 3), (17, 3), (20, 3), (23, 3), (27, 3), (32, 3), (39, 3)].into();
    assert_eq!(by_class(&items, "items:", "number"), want_number);
    let want_requested: BTreeMap<u32, u64> = [
        (1, 502), (2, 335), (4, 497), (6, 785), (8, 1397), (11, 2585), (14, 4697), (17, 9185), (20, 18197),
        (23, 36186), (27, 90198), (32, 300186), (39, 1800198),
    ]
    .into();
    assert_eq!(by_class(&items, "items:", "mem_requested"), want_requested);
    // stats slabs: every class that holds items, with memcached's chunk size.
    let slabs = c.stats("slabs");
    let chunk = by_class(&slabs, "", "chunk_size");
    let want_chunk: BTreeMap<u32, u64> = [
        (1, 96), (2, 120), (4, 192), (6, 304), (8, 480), (11, 944), (14, 1856), (17, 3632), (20, 7104),
        (23, 13880), (27, 33904), (32, 103496), (39, 524288),
    ]
    .into();
    for (class, size) in &want_chunk {
        assert_eq!(chunk.get(class), Some(size), "stats slabs class {class}");
    }
    let used = by_class(&slabs, "", "used_chunks");
    for (class, n) in &want_number {
        assert!(used.get(class).is_some_and(|u| u >= n), "class {class}: used_chunks {used:?}");
    }
    for (class, pages) in by_class(&slabs, "", "total_pages") {
        assert!(pages >= 1, "class {class} listed without pages");
    }
    assert!(stat_num(&slabs, "active_slabs") >= want_number.len() as u64);
}

/// Expired items nobody asks for are reclaimed and counted in their own class.
fn reclaimed_by_class(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    for i in 0..5 {
        c.roundtrip(format!("set small{i} 0 1 10\r\n0123456789\r\n"), "STORED\r\n");
    }
    c.roundtrip("set keep 0 0 10\r\n0123456789\r\n", "STORED\r\n");
    c.send(format!("set big 0 0 1000\r\n{}\r\n", "y".repeat(1000)));
    c.expect("STORED\r\n");
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let items = c.stats("items");
        let reclaimed = by_class(&items, "items:", "reclaimed");
        if reclaimed.get(&1) == Some(&5) {
            assert_eq!(by_class(&items, "items:", "number"), [(1, 1), (12, 1)].into());
            assert_eq!(by_class(&items, "items:", "expired_unfetched").get(&1), Some(&5));
            assert_eq!(reclaimed.get(&12), Some(&0));
            break;
        }
        assert!(Instant::now() < deadline, "class 1 not reclaimed: {reclaimed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

per_threads!(items_by_size_class, reclaimed_by_class);
