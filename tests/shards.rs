//! `stats shards` (ours only; memcached has no such group): per-core items, bytes,
//! connections, forwarded requests and the io_uring flags in effect, so a test can
//! show that both cores take connections and each key lives on exactly one core.

mod common;

use common::{stat_num, Client, Server};
use std::collections::BTreeMap;

/// shard number -> field -> value, from `STAT shard<N>:<field> <value>` lines.
fn shards(c: &mut Client) -> BTreeMap<u32, BTreeMap<String, String>> {
    c.send(b"stats shards\r\n");
    let body = c.read_to_end_marker();
    let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (name, value) in common::parse_stats(&body) {
        let (shard, field) = name
            .strip_prefix("shard")
            .and_then(|r| r.split_once(':'))
            .unwrap_or_else(|| panic!("not a `shard<N>:<field>` stat: {name}"));
        let n: u32 = shard
            .parse()
            .unwrap_or_else(|_| panic!("bad shard number in {name}"));
        out.entry(n).or_default().insert(field.to_string(), value);
    }
    out
}

fn num(m: &BTreeMap<String, String>, f: &str) -> u64 {
    m.get(f)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("shard field {f}: {:?}", m.get(f)))
}

fn check_fields(all: &BTreeMap<u32, BTreeMap<String, String>>, threads: u32) {
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        (0..threads).collect::<Vec<_>>(),
        "one entry per shard"
    );
    for (n, f) in all {
        for field in ["items", "bytes", "curr_connections", "forwarded"] {
            num(f, field);
        }
        let flags = f
            .get("ring_flags")
            .unwrap_or_else(|| panic!("shard{n} has no ring_flags"));
        assert!(
            flags.contains("COOP_TASKRUN") && flags.contains("TASKRUN_FLAG"),
            "shard{n} ring_flags {flags}"
        );
    }
}

#[test]
fn both_cores_serve_and_own_keys() {
    skip_on_reference!("`stats shards` exists only in memcached-rs");
    let s = Server::start(&["-t", "2"]);
    let mut conns: Vec<Client> = (0..16).map(|_| s.client()).collect();
    for c in conns.iter_mut() {
        c.expect_alive();
    }
    let all = shards(&mut conns[0]);
    check_fields(&all, 2);
    for (n, f) in &all {
        assert!(
            num(f, "curr_connections") > 0,
            "shard{n} took none of 16 connections: {all:?}"
        );
    }
    let conn_sum: u64 = all.values().map(|f| num(f, "curr_connections")).sum();
    assert!(
        conn_sum >= 16,
        "shards count {conn_sum} connections, 16 are open"
    );

    for i in 0..1000 {
        conns[i % 16].set(&format!("owned{i}"), b"0123456789");
    }
    let all = shards(&mut conns[0]);
    let items: Vec<u64> = all.values().map(|f| num(f, "items")).collect();
    assert_eq!(
        items.iter().sum::<u64>(),
        1000,
        "each key on exactly one shard: {items:?}"
    );
    assert!(
        items.iter().all(|&n| n > 0),
        "keys on both shards: {items:?}"
    );
    assert!(all.values().all(|f| num(f, "bytes") > 0));
    let forwarded: u64 = all.values().map(|f| num(f, "forwarded")).sum();
    assert!(
        forwarded > 0,
        "1000 sets over 16 connections forward some requests"
    );
    // What one core forwards the other serves, in batches of one or more.
    for (n, f) in &all {
        let (served, batches) = (num(f, "served_for_peers"), num(f, "batches_from_peers"));
        assert_eq!(served, num(&all[&(1 - n)], "forwarded"), "shard{n}: {all:?}");
        assert!(batches > 0 && batches <= served, "shard{n}: {batches} batches for {served} requests");
    }
    assert_eq!(
        conns[0].stat_u64("curr_items"),
        1000,
        "stats sums the shards"
    );
    // Every key is readable from every connection.
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(
            c.get(&format!("owned{}", i * 61 % 1000)).as_deref(),
            Some(&b"0123456789"[..])
        );
    }
}

#[test]
fn single_core_forwards_nothing() {
    skip_on_reference!("`stats shards` exists only in memcached-rs");
    let s = Server::start(&["-t", "1"]);
    let mut c = s.client();
    for i in 0..100 {
        c.set(&format!("k{i}"), b"v");
    }
    let all = shards(&mut c);
    check_fields(&all, 1);
    assert_eq!(num(&all[&0], "items"), 100);
    assert_eq!(num(&all[&0], "forwarded"), 0);
    assert_eq!(num(&all[&0], "batches_from_peers"), 0);
    assert!(num(&all[&0], "curr_connections") >= 1);
}

/// The CPUs this process may run on (the server inherits them and pins one executor to
/// each), or None if the call fails.
fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    // SAFETY: CPU_ISSET reads the set within its size.
    (rc == 0).then(|| (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Connections made from a thread pinned to `cpu` (over loopback the SYN is processed
/// on the client's CPU); `stats shards` read over the first of them.
/// `total`: the connections the server should count by then.
fn connect_from_cpu(port: u16, cpu: usize, n: usize, total: usize) -> (Vec<Client>, BTreeMap<u32, BTreeMap<String, String>>) {
    std::thread::spawn(move || {
        // SAFETY: as in allowed_cpus; the set names one allowed CPU.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
        }
        let mut conns: Vec<Client> = (0..n).map(|_| Client::connect(port)).collect();
        // Connected is not yet accepted: wait until the server counts them all.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let all = shards(&mut conns[0]);
            let counted: u64 = all.values().map(|f| num(f, "curr_connections")).sum();
            if counted >= total as u64 || std::time::Instant::now() > deadline {
                return (conns, all);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    })
    .join()
    .expect("client thread")
}

#[test]
fn cpu_steering_serves_a_connection_on_the_cpu_it_came_from() {
    skip_on_reference!("`-o cpu_steering` and `stats shards` exist only in memcached-rs");
    let Some(cpus) = allowed_cpus().filter(|c| c.len() >= 2) else {
        return common::note_skip("needs two CPUs to steer between");
    };
    let s = Server::start(&["-t", "2", "-o", "cpu_steering"]);
    let (first, after_first) = connect_from_cpu(s.port, cpus[0], 8, 8);
    let (second, after_second) = connect_from_cpu(s.port, cpus[1], 8, 16);
    let conns = |all: &BTreeMap<u32, BTreeMap<String, String>>| -> Vec<u64> {
        all.values().map(|f| num(f, "curr_connections")).collect()
    };
    let (a, b) = (conns(&after_first), conns(&after_second));
    // All 8 from the first CPU on one executor, all 8 from the second on the other.
    let first_shard = a.iter().position(|&n| n == 8).unwrap_or_else(|| panic!("8 connections from CPU {} spread: {a:?}", cpus[0]));
    assert_eq!(a.iter().sum::<u64>(), 8, "{a:?}");
    assert_eq!(b[first_shard], 8, "{a:?} then {b:?}");
    assert_eq!(b[1 - first_shard], 8, "8 connections from CPU {} not on the other executor: {b:?}", cpus[1]);
    // And the steered connections serve as any other: keys of both cores.
    let mut c = s.client();
    for i in 0..50 {
        c.set(&format!("steered{i}"), b"v");
    }
    for (i, mut conn) in first.into_iter().chain(second).enumerate() {
        assert_eq!(conn.get(&format!("steered{}", i * 3 % 50)).as_deref(), Some(&b"v"[..]));
    }
}

// ---- keys across cores ----

/// 32-bit FNV-1a: a naive, unseeded hash a client can compute.
fn shard_items(c: &mut Client) -> (u64, u64) {
    let s = c.stats("shards");
    (stat_num(&s, "shard0:items"), stat_num(&s, "shard1:items"))
}

#[test]
fn keys_spread_across_cores_with_a_seeded_hash() {
    skip_on_reference!("`stats shards` exists only in memcached-rs");
    let server = Server::start(&["-t", "2"]);
    let mut c = server.client();
    // 1000 sequential keys spread over both cores.
    let sequential: Vec<String> = (0..1000).map(|i| format!("key:{i}")).collect();
    store_all(&mut c, &sequential);
    let (a, b) = shard_items(&mut c);
    assert_eq!(a + b, 1000, "every key stored once");
    assert!(a >= 350 && b >= 350, "sequential keys not spread: {a} on core 0, {b} on core 1");
    // A client that learned which keys one process puts on core 0 (here: by watching
    // `stats shards` grow, with the server's real router) cannot use them to flood one
    // core of another process: the hash is seeded per process.
    // Deleted rather than flushed: flush_all is lazy (as memcached's), so flushed
    // items would leave `stats shards` a while later and upset the counting below.
    for key in &sequential {
        c.roundtrip(format!("delete {key}\r\n"), "DELETED\r\n");
    }
    let mut on_core_0 = Vec::new();
    let mut placed = 0;
    for i in 0.. {
        let key = format!("flood:{i}");
        c.set(&key, b"x");
        let (a, b) = shard_items(&mut c);
        assert_eq!(a + b, placed + 1);
        placed += 1;
        if a > on_core_0.len() as u64 {
            on_core_0.push(key);
            if on_core_0.len() == 1000 {
                break;
            }
        }
    }
    assert!(placed < 3000, "the router put {placed} keys for 1000 on core 0: not an even spread");
    let other = Server::start(&["-t", "2"]);
    let mut o = other.client();
    store_all(&mut o, &on_core_0);
    let (a, b) = shard_items(&mut o);
    assert_eq!(a + b, 1000, "every key stored once");
    assert!(
        a >= 350 && b >= 350,
        "1000 keys one process put on core 0 land {a}/{b} in another: the hash is not seeded"
    );
}

/// Stores every key (pipelined, noreply) and waits until the server has read them.
fn store_all(c: &mut Client, keys: &[String]) {
    let request: Vec<u8> = keys.iter().flat_map(|k| format!("set {k} 0 0 1 noreply\r\nx\r\n").into_bytes()).collect();
    c.send(&request);
    c.expect_alive();
}
