//! -c: connections past the limit get `ERROR Too many open connections` and are
//! closed, counted in rejected_connections; the others keep working.

mod common;

use common::{stat_num, Server};

/// How many client connections memcached 1.6.18 accepts with `-c maxconns -t
/// threads`, one listen address and -U 0. memcached sets RLIMIT_NOFILE to maxconns
/// and rejects a connection whose fd would be maxconns - 1 or more; its own fds
/// (stdio, epoll, per-thread notify pipes, the listener) take 7 + 4 * threads of
/// them. Measured: -c 32 accepts 20 with -t 1, 16 with -t 2, 8 with -t 4; -c 64 and
/// -c 100 follow the same formula. (And memcached refuses to start at all when
/// maxconns is too small for its own fds, e.g. -c 16 -t 4.)
fn memcached_client_limit(maxconns: usize, threads: usize) -> usize {
    maxconns - 8 - 4 * threads
}

/// memcached-rs admits exactly -c clients: its own descriptors are not charged to the
/// limit (it raises RLIMIT_NOFILE to make room for them).
fn client_limit(maxconns: usize, threads: usize) -> usize {
    if common::is_reference() {
        memcached_client_limit(maxconns, threads)
    } else {
        maxconns
    }
}

fn conn_limit(threads: &str) {
    let t: usize = threads.parse().unwrap_or(1);
    let maxconns = 32;
    let limit = client_limit(maxconns, t);
    let s = Server::start(&["-t", threads, "-c", &maxconns.to_string()]);
    let mut first = s.client();
    // The harness' readiness probe must be gone before counting.
    first.wait_for_stat("curr_connections", 1);
    let mut conns = vec![first];
    for i in 1..limit {
        let mut c = s.client();
        c.send(b"version\r\n");
        let line = c.read_line();
        assert!(
            line.starts_with(b"VERSION "),
            "client {} of {limit} refused: {}",
            i + 1,
            common::escape(&line)
        );
        conns.push(c);
    }
    // One more: the error line, then closed.
    let mut extra = s.client();
    extra.expect(b"ERROR Too many open connections\r\n");
    extra.expect_closed();
    let mut extra2 = s.client();
    extra2.expect(b"ERROR Too many open connections\r\n");
    extra2.expect_closed();
    let st = conns[0].stats("");
    assert_eq!(stat_num(&st, "rejected_connections"), 2);
    assert_eq!(stat_num(&st, "curr_connections"), limit as u64);
    assert_eq!(stat_num(&st, "max_connections"), maxconns as u64);
    // The accepted ones all still work.
    for (i, c) in conns.iter_mut().enumerate() {
        c.set(&format!("c{i}"), b"x");
    }
    // Closing one makes room for one.
    drop(conns.pop());
    conns[0].wait_for_stat("curr_connections", limit as u64 - 1);
    let mut again = s.client();
    again.expect_alive();
    assert_eq!(again.get("c0").as_deref(), Some(&b"x"[..]));
    let mut over = s.client();
    over.expect(b"ERROR Too many open connections\r\n");
    over.expect_closed();
}

per_threads!(conn_limit);
