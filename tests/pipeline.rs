//! Pipelining (many requests in one write, as libmemcached and pymemcache send
//! them), multi-gets spread over shards, and clients on different connections (and
//! so, with -t 2, different cores) seeing each other's writes.

mod common;

use common::Server;

fn start(threads: &str) -> Server {
    Server::start(&["-t", threads, "-m", "64"])
}

/// 150 mixed requests in one write; the replies must come back complete and in order.
fn mixed_pipeline(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..30 {
        let (k, v) = (format!("p{i}"), format!("value-{i}"));
        req.extend_from_slice(format!("set {k} {i} 0 {}\r\n{v}\r\n", v.len()).as_bytes());
        want.extend_from_slice(b"STORED\r\n");
        req.extend_from_slice(format!("get {k} nope{i}\r\n").as_bytes());
        want.extend_from_slice(format!("VALUE {k} {i} {}\r\n{v}\r\nEND\r\n", v.len()).as_bytes());
        req.extend_from_slice(format!("set n{i} 0 0 2\r\n10\r\nincr n{i} {i}\r\n").as_bytes());
        want.extend_from_slice(format!("STORED\r\n{}\r\n", 10 + i).as_bytes());
        req.extend_from_slice(format!("append {k} 0 0 1\r\n!\r\ndelete nope{i}\r\n").as_bytes());
        want.extend_from_slice(b"STORED\r\nNOT_FOUND\r\n");
        req.extend_from_slice(format!("touch {k} 0\r\nbogus{i}\r\n").as_bytes());
        want.extend_from_slice(b"TOUCHED\r\nERROR\r\n");
    }
    // 30 * 9 = 270 requests; then read back every value in one multi-get.
    req.extend_from_slice(b"get");
    for i in 0..30 {
        req.extend_from_slice(format!(" p{i} n{i}").as_bytes());
        let v = format!("value-{i}!");
        want.extend_from_slice(format!("VALUE p{i} {i} {}\r\n{v}\r\n", v.len()).as_bytes());
        let n = (10 + i).to_string();
        // incr keeps the old length when the number gets no longer ("10"+i fits in 2).
        want.extend_from_slice(format!("VALUE n{i} 0 {}\r\n{n}\r\n", n.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    want.extend_from_slice(b"END\r\n");
    c.send(&req);
    c.expect(&want);
    c.expect_alive();
}

/// Requests split at every awkward place still work: one byte a write.
fn byte_by_byte(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    let req = b"set bb 0 0 5\r\nhello\r\nget bb\r\ndelete bb\r\nget bb\r\n";
    for b in req {
        c.send([*b]);
    }
    c.expect(b"STORED\r\nVALUE bb 0 5\r\nhello\r\nEND\r\nDELETED\r\nEND\r\n");
}

/// A multi-get of 100 keys, some missing, answered in request order (with -t 2 the
/// keys live on both shards).
fn multiget_100(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    let keys: Vec<String> = (0..100).map(|i| format!("mg:{i}:{}", i * 7919)).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 4 != 3 {
            c.set(k, format!("v{i}").as_bytes());
        }
    }
    // Request order differs from insertion order.
    let order: Vec<usize> = (0..100).map(|i| (i * 37) % 100).collect();
    let mut want = Vec::new();
    for &i in &order {
        if i % 4 != 3 {
            let v = format!("v{i}");
            want.extend_from_slice(
                format!("VALUE {} 0 {}\r\n{v}\r\n", keys[i], v.len()).as_bytes(),
            );
        }
    }
    want.extend_from_slice(b"END\r\n");
    let line = order
        .iter()
        .map(|&i| keys[i].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    c.roundtrip(format!("get {line}\r\n"), &want);
    // Twice in one write, with gets in between.
    c.send(format!("get {line}\r\nget {}\r\nget {line}\r\n", keys[0]));
    c.expect(&want);
    c.expect(format!("VALUE {} 0 2\r\nv0\r\nEND\r\n", keys[0]));
    c.expect(&want);
}

/// Writes on one connection are seen on all others: with -t 2, 8 connections land
/// on both cores.
fn cross_connection_visibility(threads: &str) {
    let s = start(threads);
    let mut conns: Vec<_> = (0..8).map(|_| s.client()).collect();
    for round in 0..8 {
        let key = format!("shared{round}");
        let val = format!("from-conn-{round}");
        conns[round].set(&key, val.as_bytes());
        for c in conns.iter_mut() {
            assert_eq!(
                c.get(&key).as_deref(),
                Some(val.as_bytes()),
                "conn sees {key}"
            );
        }
        // Deletes and counters are seen everywhere too.
        conns[(round + 1) % 8].roundtrip(format!("delete {key}\r\n"), "DELETED\r\n");
        for c in conns.iter_mut() {
            assert_eq!(c.get(&key), None);
        }
    }
    conns[0].set("counter", b"0");
    for (i, c) in conns.iter_mut().enumerate() {
        c.roundtrip("incr counter 1\r\n", format!("{}\r\n", i + 1));
    }
    for i in 0..200 {
        conns[i % 8].set(&format!("spread{i}"), b"x");
    }
    for c in conns.iter_mut() {
        let keys: Vec<String> = (0..200).map(|i| format!("spread{i}")).collect();
        let mut want = Vec::new();
        for k in &keys {
            want.extend_from_slice(format!("VALUE {k} 0 1\r\nx\r\n").as_bytes());
        }
        want.extend_from_slice(b"END\r\n");
        c.roundtrip(format!("get {}\r\n", keys.join(" ")), &want);
    }
}

/// Many clients pipelining at once, each checking its own replies.
fn concurrent_pipelines(threads: &str) {
    let s = start(threads);
    let port = s.port;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = common::Client::connect(port);
                for round in 0..20 {
                    let mut req = Vec::new();
                    let mut want = Vec::new();
                    for i in 0..25 {
                        let k = format!("c{t}:{round}:{i}");
                        req.extend_from_slice(
                            format!("set {k} {t} 0 {}\r\n{k}\r\nget {k}\r\n", k.len()).as_bytes(),
                        );
                        want.extend_from_slice(
                            format!("STORED\r\nVALUE {k} {t} {}\r\n{k}\r\nEND\r\n", k.len())
                                .as_bytes(),
                        );
                    }
                    c.send(&req);
                    c.expect(&want);
                }
            })
        })
        .collect();
    for h in handles {
        if let Err(e) = h.join() {
            std::panic::resume_unwind(e);
        }
    }
}

/// A reply far larger than the socket buffers, to a client that reads late and slowly:
/// the server's sends fill the socket, wait for room and resume, and every byte arrives
/// in order; the connection then serves on.
fn reply_larger_than_socket_buffers_to_a_slow_reader(threads: &str) {
    let s = start(threads);
    let mut c = s.client();
    let values: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 512 * 1024 - 7 * i as usize]).collect();
    let mut want = Vec::new();
    let mut get = String::from("get");
    for (i, v) in values.iter().enumerate() {
        c.set(&format!("large{i}"), v);
        get.push_str(&format!(" large{i}"));
        want.extend_from_slice(format!("VALUE large{i} 0 {}\r\n", v.len()).as_bytes());
        want.extend_from_slice(v);
        want.extend_from_slice(b"\r\n");
    }
    want.extend_from_slice(b"END\r\n");
    // Twice, pipelined: 8 MiB of replies.
    c.send(format!("{get}\r\n{get}\r\n"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..2 {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let chunk = (want.len() - got.len()).min(256 * 1024);
            got.extend(c.read_n(chunk));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(got == want, "the large reply came back changed");
    }
    c.set("after", b"ok");
    assert_eq!(c.get("after").as_deref(), Some(&b"ok"[..]));
}

/// Gets one at a time (pipeline 1) of values larger than the socket takes at once, with
/// the next request sent before the reply is read. With two cores about half the keys
/// live on the other core and their replies are forwarded back; each reply must come
/// whole, and the request sent behind it must be answered after it. (It also guards any
/// scheme that lets the owner core write to the client socket itself, as tried once.)
fn lone_gets_larger_than_socket_buffers(threads: &str) {
    let s = Server::start(&["-t", threads, "-m", "128", "-I", "8m"]);
    let mut c = s.client();
    let values: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'A' + i; 5 * 1024 * 1024 - 3 * i as usize]).collect();
    for (i, v) in values.iter().enumerate() {
        c.set(&format!("big{i}"), v);
    }
    c.set("small", b"ok");
    for (i, v) in values.iter().enumerate() {
        // The next request goes out before this reply is read, while the socket is full.
        c.send(format!("get big{i}\r\n"));
        std::thread::sleep(std::time::Duration::from_millis(30));
        c.send("get small\r\n");
        let mut want = format!("VALUE big{i} 0 {}\r\n", v.len()).into_bytes();
        want.extend_from_slice(v);
        want.extend_from_slice(b"\r\nEND\r\nVALUE small 0 2\r\nok\r\nEND\r\n");
        let got = c.read_n(want.len());
        assert!(got == want, "big{i}: the reply came back changed or out of order");
    }
    c.expect_alive();
}

/// `echo stats | nc`: requests and the client's FIN arrive together. The server
/// answers, sees the end and closes; nc waits for that close to exit.
fn requests_then_hang_up_at_once(threads: &str) {
    let s = start(threads);
    for i in 0..100 {
        let mut c = s.client();
        c.send(format!("set hup{i} 0 0 1\r\nx\r\nget hup{i}\r\n"));
        c.shutdown_write();
        c.expect(format!("STORED\r\nVALUE hup{i} 0 1\r\nx\r\nEND\r\n"));
        c.expect_closed();
    }
}

per_threads!(
    requests_then_hang_up_at_once,
    lone_gets_larger_than_socket_buffers,
    reply_larger_than_socket_buffers_to_a_slow_reader,
    mixed_pipeline,
    byte_by_byte,
    multiget_100,
    cross_connection_visibility,
    concurrent_pipelines
);
