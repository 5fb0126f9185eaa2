//! Every classic text command, with memcached's exact reply bytes, run with -t 1 and
//! -t 2 (keys then live on both shards).

mod common;

use common::{assert_version_line, stat_num, Client, Server};
use std::collections::HashSet;
use std::time::Duration;

fn start(threads: &str) -> Server {
    Server::start(&["-t", threads, "-m", "64"])
}

/// Parse a `VALUE <key> <flags> <len> <cas>` line of a gets reply.
fn cas_of(c: &mut Client, key: &str) -> u64 {
    c.send(format!("gets {key}\r\n"));
    let line = String::from_utf8_lossy(&c.read_line()).into_owned();
    let parts: Vec<&str> = line.trim_end().split(' ').collect();
    assert!(
        parts.len() == 5 && parts[0] == "VALUE" && parts[1] == key,
        "bad gets line {line:?}"
    );
    let len: usize = parts[3].parse().expect("length");
    c.read_n(len + 2);
    c.expect(b"END\r\n");
    parts[4]
        .parse()
        .unwrap_or_else(|_| panic!("cas unique not a u64: {line:?}"))
}

fn set_get(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.roundtrip("set k1 42 0 5\r\nhello\r\n", "STORED\r\n");
    c.roundtrip("get k1\r\n", "VALUE k1 42 5\r\nhello\r\nEND\r\n");
    // Overwrite with other flags and an empty value.
    c.roundtrip("set k1 4294967295 0 0\r\n\r\n", "STORED\r\n");
    c.roundtrip("get k1\r\n", "VALUE k1 4294967295 0\r\n\r\nEND\r\n");
    // Binary-safe values: \r\n, NUL and high bytes inside the data block.
    c.roundtrip(b"set bin 0 0 6\r\na\r\n\0\xff\n\r\n", "STORED\r\n");
    c.roundtrip("get bin\r\n", b"VALUE bin 0 6\r\na\r\n\0\xff\n\r\nEND\r\n");
    c.roundtrip("get missing\r\n", "END\r\n");
    // A 250-byte key and a 500 KiB value.
    let key = "k".repeat(250);
    let big = vec![b'v'; 512 * 1024];
    c.set(&key, &big);
    assert_eq!(c.get(&key).as_deref(), Some(&big[..]));
}

fn add_replace_append_prepend(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.roundtrip("add a 1 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("add a 2 0 1\r\ny\r\n", "NOT_STORED\r\n");
    c.roundtrip("get a\r\n", "VALUE a 1 1\r\nx\r\nEND\r\n");
    c.roundtrip("replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    c.roundtrip("replace a 3 0 2\r\nyy\r\n", "STORED\r\n");
    c.roundtrip("get a\r\n", "VALUE a 3 2\r\nyy\r\nEND\r\n");
    // append/prepend ignore their flags and exptime: the item keeps its own.
    c.roundtrip("append a 9 0 1\r\nz\r\n", "STORED\r\n");
    c.roundtrip("prepend a 9 0 1\r\nw\r\n", "STORED\r\n");
    c.roundtrip("get a\r\n", "VALUE a 3 4\r\nwyyz\r\nEND\r\n");
    c.roundtrip("append nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    c.roundtrip("prepend nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    c.roundtrip("get nope\r\n", "END\r\n");
}

fn cas(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.roundtrip("cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    c.set("k", b"v1");
    let u1 = cas_of(&mut c, "k");
    c.roundtrip(format!("cas k 7 0 2 {u1}\r\nv2\r\n"), "STORED\r\n");
    c.roundtrip("get k\r\n", "VALUE k 7 2\r\nv2\r\nEND\r\n");
    let u2 = cas_of(&mut c, "k");
    assert_ne!(u1, u2, "a store must change the cas unique");
    c.roundtrip(format!("cas k 0 0 2 {u1}\r\nv3\r\n"), "EXISTS\r\n");
    c.roundtrip("get k\r\n", "VALUE k 7 2\r\nv2\r\nEND\r\n");
    // touch does not change the unique.
    c.roundtrip("touch k 1000\r\n", "TOUCHED\r\n");
    assert_eq!(cas_of(&mut c, "k"), u2);
    // gets of several keys; uniques differ across keys (and so across shards).
    let mut uniques = HashSet::new();
    for i in 0..64 {
        c.set(&format!("u{i}"), b"x");
    }
    c.send(format!(
        "gets {}\r\n",
        (0..64)
            .map(|i| format!("u{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    for i in 0..64 {
        let line = String::from_utf8_lossy(&c.read_line()).into_owned();
        let parts: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(
            &parts[..4],
            &["VALUE", &format!("u{i}"), "0", "1"],
            "line {line:?}"
        );
        assert!(
            uniques.insert(parts[4].to_string()),
            "cas unique {} repeated",
            parts[4]
        );
        c.expect(b"x\r\n");
    }
    c.expect(b"END\r\n");
    // After delete, cas is NOT_FOUND.
    c.roundtrip("delete k\r\n", "DELETED\r\n");
    c.roundtrip(format!("cas k 0 0 1 {u2}\r\nx\r\n"), "NOT_FOUND\r\n");
}

fn multi_get_variants(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    // 30 keys: more than memcached's 24 tokens a pass, so the line is re-tokenized.
    let keys: Vec<String> = (0..30).map(|i| format!("key{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            c.roundtrip(
                format!("set {k} {i} 0 {}\r\n{k}\r\n", k.len()),
                "STORED\r\n",
            );
        }
    }
    let mut want = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i % 3 != 0 {
            want.extend_from_slice(format!("VALUE {k} {i} {}\r\n{k}\r\n", k.len()).as_bytes());
        }
    }
    want.extend_from_slice(b"END\r\n");
    c.roundtrip(format!("get {}\r\n", keys.join(" ")), &want);
    c.roundtrip(format!("gat 100 {}\r\n", keys.join(" ")), &want);
    // Repeated keys are answered each time.
    c.roundtrip(
        "get key1 key1 key0 key1\r\n",
        "VALUE key1 1 4\r\nkey1\r\n".repeat(3) + "END\r\n",
    );
    // gets/gats carry the unique, the same for both.
    let u = cas_of(&mut c, "key1");
    c.roundtrip(
        "gats 100 key0 key1\r\n",
        format!("VALUE key1 1 4 {u}\r\nkey1\r\nEND\r\n"),
    );
    c.roundtrip(
        "gets key1 key2\r\n",
        format!(
            "VALUE key1 1 4 {u}\r\nkey1\r\nVALUE key2 2 4 {}\r\nkey2\r\nEND\r\n",
            {
                let mut c2 = s.client();
                cas_of(&mut c2, "key2")
            }
        ),
    );
}

fn delete(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.set("d", b"x");
    c.roundtrip("delete d\r\n", "DELETED\r\n");
    c.roundtrip("delete d\r\n", "NOT_FOUND\r\n");
    c.roundtrip("get d\r\n", "END\r\n");
    c.set("d", b"x");
    c.roundtrip("delete d 0\r\n", "DELETED\r\n");
}

fn incr_decr(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.roundtrip("incr n 1\r\n", "NOT_FOUND\r\n");
    c.roundtrip("decr n 1\r\n", "NOT_FOUND\r\n");
    c.roundtrip("set n 5 0 1\r\n0\r\n", "STORED\r\n");
    c.roundtrip("incr n 1\r\n", "1\r\n");
    c.roundtrip("incr n 41\r\n", "42\r\n");
    c.roundtrip("decr n 2\r\n", "40\r\n");
    // The item keeps its flags.
    c.roundtrip("get n\r\n", "VALUE n 5 2\r\n40\r\nEND\r\n");
    // decr stops at 0.
    c.roundtrip("decr n 100\r\n", "0\r\n");
    c.roundtrip("get n\r\n", "VALUE n 5 2\r\n0 \r\nEND\r\n");
    // 64-bit: up to 2^64-1, then incr wraps to 0 (padded to the old length).
    c.roundtrip("set n 0 0 20\r\n18446744073709551614\r\n", "STORED\r\n");
    c.roundtrip("incr n 1\r\n", "18446744073709551615\r\n");
    c.roundtrip("incr n 2\r\n", "1\r\n");
    c.roundtrip(
        "get n\r\n",
        format!("VALUE n 0 20\r\n1{}\r\nEND\r\n", " ".repeat(19)),
    );
    c.roundtrip("incr n 18446744073709551615\r\n", "0\r\n");
    // "100" decr 1 -> "99 " (in place, space padded); growth makes a longer value.
    c.roundtrip("set p 0 0 3\r\n100\r\n", "STORED\r\n");
    c.roundtrip("decr p 1\r\n", "99\r\n");
    c.roundtrip("get p\r\n", "VALUE p 0 3\r\n99 \r\nEND\r\n");
    c.roundtrip("incr p 1\r\n", "100\r\n");
    c.roundtrip("get p\r\n", "VALUE p 0 3\r\n100\r\nEND\r\n");
    c.roundtrip("set q 0 0 2\r\n99\r\n", "STORED\r\n");
    c.roundtrip("incr q 1\r\n", "100\r\n");
    c.roundtrip("get q\r\n", "VALUE q 0 3\r\n100\r\nEND\r\n");
    // Non-numeric value / delta.
    c.roundtrip("set s 0 0 3\r\nabc\r\n", "STORED\r\n");
    c.roundtrip(
        "incr s 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    c.roundtrip(
        "decr s 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    c.roundtrip(
        "incr p abc\r\n",
        "CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.roundtrip(
        "decr p -1\r\n",
        "CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.roundtrip(
        "get p s\r\n",
        "VALUE p 0 3\r\n100\r\nVALUE s 0 3\r\nabc\r\nEND\r\n",
    );
}

fn touch_and_gat(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.roundtrip("touch t 10\r\n", "NOT_FOUND\r\n");
    c.set("t", b"x");
    c.roundtrip("touch t 10\r\n", "TOUCHED\r\n");
    c.roundtrip("gat 10 t nope\r\n", "VALUE t 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("gat 10 nope\r\n", "END\r\n");
}

fn flush_all(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    for i in 0..50 {
        c.set(&format!("f{i}"), b"x");
    }
    c.roundtrip("flush_all\r\n", "OK\r\n");
    for i in 0..50 {
        c.roundtrip(format!("get f{i}\r\n"), "END\r\n");
    }
    c.set("f0", b"y");
    c.roundtrip("get f0\r\n", "VALUE f0 0 1\r\ny\r\nEND\r\n");
    c.roundtrip("flush_all 0\r\n", "OK\r\n");
    c.roundtrip("get f0\r\n", "END\r\n");
    // add works on a flushed key.
    c.roundtrip("add f0 0 0 1\r\nz\r\n", "STORED\r\n");
    c.roundtrip("get f0\r\n", "VALUE f0 0 1\r\nz\r\nEND\r\n");
}

fn flush_all_delayed(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.set("before", b"x");
    c.roundtrip("flush_all 2\r\n", "OK\r\n");
    c.roundtrip("get before\r\n", "VALUE before 0 1\r\nx\r\nEND\r\n");
    c.set("between", b"y");
    std::thread::sleep(Duration::from_millis(3200));
    // Everything stored before the deadline is gone, later stores live.
    c.roundtrip("get before between\r\n", "END\r\n");
    c.set("after", b"z");
    c.roundtrip("get after\r\n", "VALUE after 0 1\r\nz\r\nEND\r\n");
}

fn version_verbosity_quit(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    c.send("version\r\n");
    assert_version_line(&c.read_line());
    c.roundtrip("verbosity 1\r\n", "OK\r\n");
    c.roundtrip("verbosity 0\r\n", "OK\r\n");
    c.roundtrip("verbosity 0 noreply\r\nget nope\r\n", "END\r\n");
    c.roundtrip("get nope\r\n", "END\r\n");
    c.send("quit\r\n");
    c.expect_closed();
    // The server goes on.
    s.client().expect_alive();
}

fn noreply_everywhere(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    // Each noreply request is followed by a get: only the get's reply comes back.
    let cases: &[(&str, &str)] = &[
        (
            "set k 1 0 1 noreply\r\na\r\n",
            "VALUE k 1 1\r\na\r\nEND\r\n",
        ),
        (
            "add k 0 0 1 noreply\r\nb\r\n",
            "VALUE k 1 1\r\na\r\nEND\r\n",
        ),
        (
            "add k2 0 0 1 noreply\r\nb\r\n",
            "VALUE k 1 1\r\na\r\nEND\r\n",
        ),
        (
            "replace k 2 0 1 noreply\r\nc\r\n",
            "VALUE k 2 1\r\nc\r\nEND\r\n",
        ),
        (
            "replace nope 2 0 1 noreply\r\nc\r\n",
            "VALUE k 2 1\r\nc\r\nEND\r\n",
        ),
        (
            "append k 0 0 1 noreply\r\nd\r\n",
            "VALUE k 2 2\r\ncd\r\nEND\r\n",
        ),
        (
            "prepend k 0 0 1 noreply\r\ne\r\n",
            "VALUE k 2 3\r\necd\r\nEND\r\n",
        ),
        (
            "cas k 0 0 1 1 noreply\r\nf\r\n",
            "VALUE k 2 3\r\necd\r\nEND\r\n",
        ),
        (
            "set n 0 0 1 noreply\r\n5\r\n",
            "VALUE k 2 3\r\necd\r\nEND\r\n",
        ),
        ("incr n 10 noreply\r\n", "VALUE k 2 3\r\necd\r\nEND\r\n"),
        ("decr n 3 noreply\r\n", "VALUE k 2 3\r\necd\r\nEND\r\n"),
        ("touch k 100 noreply\r\n", "VALUE k 2 3\r\necd\r\nEND\r\n"),
        ("verbosity 0 noreply\r\n", "VALUE k 2 3\r\necd\r\nEND\r\n"),
        ("delete k noreply\r\n", "END\r\n"),
        ("delete k noreply\r\n", "END\r\n"),
    ];
    for (req, reply) in cases {
        c.roundtrip(format!("{req}get k\r\n"), reply);
    }
    c.roundtrip(
        "get n k2\r\n",
        "VALUE n 0 2\r\n12\r\nVALUE k2 0 1\r\nb\r\nEND\r\n",
    );
    // cas with the right unique, noreply.
    c.set("k", b"v");
    let u = cas_of(&mut c, "k");
    c.roundtrip(
        format!("cas k 0 0 1 {u} noreply\r\nw\r\nget k\r\n"),
        "VALUE k 0 1\r\nw\r\nEND\r\n",
    );
    c.roundtrip("flush_all noreply\r\nget k n\r\n", "END\r\n");
    c.roundtrip(
        "set k 0 0 1\r\nv\r\nflush_all 0 noreply\r\nget k\r\n",
        "STORED\r\nEND\r\n",
    );
    c.expect_silence(Duration::from_millis(300));
}

per_threads!(
    set_get,
    add_replace_append_prepend,
    cas,
    multi_get_variants,
    delete,
    incr_decr,
    touch_and_gat,
    flush_all,
    flush_all_delayed,
    version_verbosity_quit,
    noreply_everywhere,
);

#[test]
fn shutdown_refused_without_a() {
    let s = Server::start(&["-t", "1"]);
    let mut c = s.client();
    c.roundtrip("shutdown\r\n", "ERROR: shutdown not enabled\r\n");
    c.expect_alive();
    s.client().expect_alive();
}

#[test]
fn shutdown_with_a() {
    let mut s = Server::start(&["-t", "2", "-A"]);
    let mut other = s.client();
    other.expect_alive();
    let mut c = s.client();
    c.send("shutdown\r\n");
    c.expect_closed();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("server still running 10 s after shutdown");
    assert!(
        status.success(),
        "memcached exits 0 after shutdown, got {status}"
    );
    let _ = stat_num; // (used by other test files)
}
