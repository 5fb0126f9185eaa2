//! `stats` and its groups: memcached's fields, with values that follow from what the
//! test did. Run with -t 1 and -t 2 (ours sums the shards).

mod common;

use common::{stat_num, Client, Server};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

fn lines_of(c: &mut Client, group: &str) -> Vec<String> {
    c.send(format!("stats {group}\r\n"));
    let body = c.read_to_end_marker();
    let text = String::from_utf8_lossy(&body).into_owned();
    let lines: Vec<String> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("END"),
        "stats {group} must end with END"
    );
    lines[..lines.len() - 1].to_vec()
}

/// A fixed sequence of commands; every counter below follows from it (the numbers
/// are what memcached reports for exactly this sequence).
fn run_sequence(c: &mut Client) {
    c.roundtrip(
        "set a 0 0 1\r\n1\r\nset b 0 0 2\r\n22\r\n",
        "STORED\r\nSTORED\r\n",
    );
    c.roundtrip(
        "get a b c\r\n",
        "VALUE a 0 1\r\n1\r\nVALUE b 0 2\r\n22\r\nEND\r\n",
    );
    c.roundtrip("get c\r\n", "END\r\n");
    c.roundtrip(
        "incr a 5\r\nincr zz 1\r\ndecr a 1\r\ndecr zz 1\r\n",
        "6\r\nNOT_FOUND\r\n5\r\nNOT_FOUND\r\n",
    );
    c.roundtrip(
        "touch b 100\r\ntouch zz 100\r\n",
        "TOUCHED\r\nNOT_FOUND\r\n",
    );
    c.roundtrip("add c 0 0 1\r\nc\r\n", "STORED\r\n");
    c.roundtrip("delete c\r\ndelete c\r\n", "DELETED\r\nNOT_FOUND\r\n");
    c.roundtrip("cas zz 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    c.roundtrip("cas b 0 0 1 999999\r\nx\r\n", "EXISTS\r\n");
}

fn general_stats(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "32", "-c", "500"]);
    let mut c = s.client();
    // The harness' readiness probe must be gone before counting connections.
    c.wait_for_stat("curr_connections", 1);
    let before = c.stats("");
    run_sequence(&mut c);
    let st = c.stats("");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    assert_eq!(stat_num(&st, "pid"), u64::from(s.pid()));
    assert!(stat_num(&st, "uptime") < 60, "uptime {}", st["uptime"]);
    let time = stat_num(&st, "time");
    assert!(time.abs_diff(now) <= 3, "stats time {time} vs now {now}");
    assert!(
        st["version"].starts_with("1.6."),
        "version {}",
        st["version"]
    );
    assert_eq!(stat_num(&st, "max_connections"), 500);
    assert_eq!(
        stat_num(&st, "curr_connections"),
        1,
        "only this client is connected"
    );
    assert!(
        stat_num(&st, "total_connections") >= 2,
        "this client and the harness' probe"
    );
    assert_eq!(stat_num(&st, "rejected_connections"), 0);
    assert_eq!(
        stat_num(&st, "threads"),
        threads.parse::<u64>().unwrap_or(0)
    );
    assert_eq!(stat_num(&st, "limit_maxbytes"), 32 * 1024 * 1024);

    // Counters, from run_sequence.
    let want: &[(&str, u64)] = &[
        ("cmd_get", 4),
        ("get_hits", 2),
        ("get_misses", 2),
        ("get_expired", 0),
        ("get_flushed", 0),
        ("cmd_set", 5), // set, set, add and both cas attempts
        ("cmd_flush", 0),
        ("cmd_touch", 2),
        ("touch_hits", 1),
        ("touch_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 1),
        ("decr_misses", 1),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("cas_misses", 1),
        ("cas_hits", 0),
        ("cas_badval", 1),
        ("curr_items", 2),
        ("total_items", 3), // set, set, add; in-place incr and failed cas store nothing new
        ("evictions", 0),
        ("reclaimed", 0),
    ];
    let mut wrong = Vec::new();
    for (name, v) in want {
        let got = stat_num(&st, name);
        if got != *v {
            wrong.push(format!("{name}: expected {v}, got {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "counters after the fixed sequence:\n{}",
        wrong.join("\n")
    );

    // bytes: the two items' memory, positive and well below the limit.
    let bytes = stat_num(&st, "bytes");
    assert!(bytes > 3 && bytes < 10_000, "bytes {bytes}");
    assert!(stat_num(&st, "bytes_read") > stat_num(&before, "bytes_read"));
    assert!(stat_num(&st, "bytes_written") > stat_num(&before, "bytes_written"));
    for f in ["rusage_user", "rusage_system"] {
        let v: f64 = st[f].parse().unwrap_or(-1.0);
        assert!(v >= 0.0, "{f} {}", st[f]);
    }
    for f in [
        "pointer_size",
        "connection_structures",
        "accepting_conns",
        "store_too_large",
        "store_no_memory",
        "expired_unfetched",
        "evicted_unfetched",
    ] {
        stat_num(&st, f);
    }
}

fn settings(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "48", "-c", "321", "-I", "2m"]);
    let mut c = s.client();
    let st = c.stats("settings");
    let want: HashMap<&str, String> = [
        ("maxbytes", (48u64 * 1024 * 1024).to_string()),
        ("maxconns", "321".to_string()),
        ("tcpport", s.port.to_string()),
        ("udpport", "0".to_string()),
        ("num_threads", threads.to_string()),
        ("item_size_max", (2u64 * 1024 * 1024).to_string()),
        ("evictions", "on".to_string()),
        ("cas_enabled", "yes".to_string()),
        ("shutdown_command", "no".to_string()),
        ("flush_enabled", "yes".to_string()),
    ]
    .into_iter()
    .collect();
    for (k, v) in &want {
        assert_eq!(st.get(*k), Some(v), "stats settings {k}");
    }
    drop(s);
    let s = Server::start(&["-t", threads, "-M", "-A"]);
    let st = s.client().stats("settings");
    assert_eq!(
        st.get("evictions").map(String::as_str),
        Some("off"),
        "-M turns evictions off"
    );
    assert_eq!(
        st.get("shutdown_command").map(String::as_str),
        Some("yes"),
        "-A"
    );
}

fn items_slabs_conns(threads: &str) {
    let s = Server::start(&["-t", threads]);
    let mut c = s.client();
    for i in 0..40 {
        c.set(&format!("small{i}"), b"x");
        c.set(&format!("large{i}"), &[b'y'; 5000]);
    }
    // stats items: STAT items:<class>:<field> <n>; the numbers add up to curr_items.
    let items = lines_of(&mut c, "items");
    let mut total = 0;
    for l in &items {
        let parts: Vec<&str> = l.split(' ').collect();
        assert!(
            parts.len() == 3 && parts[0] == "STAT" && parts[1].starts_with("items:"),
            "items line {l:?}"
        );
        let f: Vec<&str> = parts[1].split(':').collect();
        assert!(
            f.len() == 3 && f[1].parse::<u32>().is_ok(),
            "items line {l:?}"
        );
        if f[2] == "number" {
            total += parts[2].parse::<u64>().unwrap_or(0);
        }
    }
    assert_eq!(total, 80, "sum of items:*:number");
    assert_eq!(c.stat_u64("curr_items"), 80);

    // stats slabs: STAT <class>:<field> <n> lines, then active_slabs and total_malloced.
    let slabs = lines_of(&mut c, "slabs");
    let st = common::parse_stats(format!("{}\r\nEND\r\n", slabs.join("\r\n")).as_bytes());
    assert!(stat_num(&st, "active_slabs") >= 1);
    assert!(stat_num(&st, "total_malloced") >= 5000 * 40);
    for l in &slabs {
        let name = l.split(' ').nth(1).unwrap_or("");
        let ok = name == "active_slabs"
            || name == "total_malloced"
            || name
                .split_once(':')
                .is_some_and(|(cls, _)| cls.parse::<u32>().is_ok());
        assert!(ok, "slabs line {l:?}");
    }

    // stats conns: our own connection is listed with its address.
    let local = c.stream.local_addr().map(|a| a.port()).unwrap_or(0);
    let conns = lines_of(&mut c, "conns");
    let mine = format!(":addr tcp:127.0.0.1:{local}");
    assert!(
        conns
            .iter()
            .any(|l| l.starts_with("STAT ") && l.ends_with(&mine)),
        "no {mine} in {conns:?}"
    );

    // stats reset: counters go to 0, items stay.
    c.roundtrip("get small1 nope\r\n", "VALUE small1 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("stats reset\r\n", "RESET\r\n");
    let st = c.stats("");
    for f in [
        "cmd_get",
        "get_hits",
        "get_misses",
        "cmd_set",
        "total_items",
    ] {
        assert_eq!(stat_num(&st, f), 0, "{f} after stats reset");
    }
    assert_eq!(stat_num(&st, "curr_items"), 80);
}

per_threads!(general_stats, settings, items_slabs_conns);
