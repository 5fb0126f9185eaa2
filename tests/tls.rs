//! TLS (`-Z`, issue #20), the classic text protocol: every command pipelined, large
//! values, bad input (a plaintext client, stalled handshakes, bad certificate files),
//! `stats`, client-certificate verify modes and certificate rotation. The harness
//! (certificates, the server with a `notls:` listener beside the TLS one, a rustls
//! client) is tests/common/tls.rs; the meta and binary protocols over TLS are
//! tests/tls_protocols.rs.
//!
//! Run against memcached too: `MC_SERVER_BIN=/usr/bin/memcached cargo test --release --test tls`
//! (Debian's memcached is built with TLS).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use common::tls::{client_config, command, free_port, wait_for, Ca, Files, TlsClient, TlsServer};
use common::{find, parse_stats, Client};

/// Every classic text command over TLS, pipelined in one write, keys spread over the
/// cores (with -t 2 half of them are forwarded), replies in request order.
fn every_command_pipelined(threads: &str) {
    let files = Files::new();
    let server = TlsServer::start(&files, threads, "", &[]);
    let mut c = server.tls(&files);
    let (mut req, mut want) = (String::new(), String::new());
    for i in 0..40 {
        let k = format!("key{i}");
        req += &format!("set {k} 5 0 2\r\nv{}\r\nget {k}\r\n", i % 10);
        want += &format!("STORED\r\nVALUE {k} 5 2\r\nv{}\r\nEND\r\n", i % 10);
    }
    req += "add key1 0 0 1\r\nx\r\nadd new 0 0 1\r\nn\r\nreplace key2 0 0 1\r\nr\r\nreplace nokey 0 0 1\r\nr\r\n";
    want += "NOT_STORED\r\nSTORED\r\nSTORED\r\nNOT_STORED\r\n";
    req += "append key3 0 0 2\r\n_a\r\nprepend key3 0 0 2\r\np_\r\nget key3 key2 new\r\n";
    want += "STORED\r\nSTORED\r\nVALUE key3 5 6\r\np_v3_a\r\nVALUE key2 0 1\r\nr\r\nVALUE new 0 1\r\nn\r\nEND\r\n";
    req += "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 20\r\nincr key1 1\r\ntouch n 100\r\ntouch nokey 1\r\n";
    want += "STORED\r\n15\r\n0\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nTOUCHED\r\nNOT_FOUND\r\n";
    req += "gat 0 n\r\ndelete n\r\ndelete n\r\nset q 0 0 1 noreply\r\nq\r\nget q\r\nbogus\r\nverbosity 1\r\nversion\r\n";
    // (decr keeps the value's length, padding with spaces, as memcached)
    want += "VALUE n 0 2\r\n0 \r\nEND\r\nDELETED\r\nNOT_FOUND\r\nVALUE q 0 1\r\nq\r\nEND\r\nERROR\r\nOK\r\nVERSION 1.6.18\r\n";
    c.send(&req);
    c.expect(&want);
    // cas: the unique from gets, then a stale one.
    c.send("gets key5\r\n");
    let line = c.read_until(b"\r\n").unwrap();
    let unique: u64 = String::from_utf8_lossy(&line).trim().rsplit(' ').next().unwrap().parse().unwrap();
    c.expect("v5\r\nEND\r\n");
    c.roundtrip(&format!("cas key5 0 0 1 {unique}\r\nC\r\ncas key5 0 0 1 {unique}\r\nD\r\n"), "STORED\r\nEXISTS\r\n");
    c.roundtrip("flush_all\r\nget key5\r\n", "OK\r\nEND\r\n");
    c.send("stats\r\n");
    let stats = parse_stats(&c.read_until(b"END\r\n").unwrap());
    assert_eq!(stats["ssl_handshake_errors"], "0");
    c.roundtrip("quit\r\n", "");
}

/// Values larger than a TLS record (16 KiB) and a round larger than the server's
/// output flush point, pipelined, both ways.
fn large_values_pipelined(threads: &str) {
    // memcached 1.6.18 stores the four values and never answers the get behind them:
    // the request sits decrypted in OpenSSL's buffer and no socket event comes for it
    // (reproduced with Python's ssl client as well).
    skip_on_reference!("memcached -Z stalls on a request left in OpenSSL's buffer");
    let files = Files::new();
    let server = TlsServer::start(&files, threads, "", &["-I", "2m"]);
    let mut c = server.tls(&files);
    let value: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = Vec::new();
    for i in 0..4 {
        req.extend_from_slice(format!("set big{i} 0 0 {}\r\n", value.len()).as_bytes());
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"get big0 big1 big2 big3\r\n");
    c.send(&req);
    let mut want = b"STORED\r\n".repeat(4);
    for i in 0..4 {
        want.extend_from_slice(format!("VALUE big{i} 0 {}\r\n", value.len()).as_bytes());
        want.extend_from_slice(&value);
        want.extend_from_slice(b"\r\n");
    }
    want.extend_from_slice(b"END\r\n");
    c.expect(&want);
}

/// A client that speaks plaintext to the TLS port gets no reply and is closed; the
/// failed handshake is counted; TLS and plain clients go on being served.
fn plaintext_client_on_tls_port(threads: &str) {
    let files = Files::new();
    let server = TlsServer::start(&files, threads, "", &[]);
    let mut good = server.tls(&files);
    good.roundtrip("set k 0 0 1\r\nv\r\n", "STORED\r\n");
    let mut plain = Client::connect(server.tls_port);
    plain.send("get k\r\n");
    let mut got = Vec::new();
    let _ = plain.stream.read_to_end(&mut got);
    assert!(find(&got, b"VALUE").is_none() && find(&got, b"END").is_none(), "a plaintext reply: {got:?}");
    // memcached counts the failure only when the bytes are there at its accept-time
    // SSL_accept (a race); we count every failed handshake.
    if !common::is_reference() {
        wait_for(|| server.stat("ssl_handshake_errors") == 1, "ssl_handshake_errors 1");
    }
    good.roundtrip("get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n");
    server.plain().roundtrip("get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n");
}

/// Clients that open the TLS port and stall (nothing, or half a ClientHello) hold
/// only their own connection: others handshake and are served meanwhile.
fn stalled_handshakes_hold_nobody(threads: &str) {
    let files = Files::new();
    let server = TlsServer::start(&files, threads, "", &[]);
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut s = TcpStream::connect(("127.0.0.1", server.tls_port)).unwrap();
        if i % 2 == 1 {
            // A TLS record header announcing a ClientHello that never comes.
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).unwrap();
        }
        stalled.push(s);
    }
    for i in 0..4 {
        let mut c = server.tls(&files);
        c.roundtrip(&format!("set s{i} 0 0 1\r\nx\r\nget s{i}\r\n"), &format!("STORED\r\nVALUE s{i} 0 1\r\nx\r\nEND\r\n"));
    }
    let curr = server.stat("curr_connections");
    assert!(curr >= 9, "the stalled connections are still open: curr_connections {curr}");
}

/// A missing or unreadable certificate or key at start: memcached's message and its
/// exit status (EX_USAGE, 64).
#[test]
fn bad_certificate_files_at_start() {
    let files = Files::new();
    files.write("garbage.pem", "not a certificate\n");
    let missing = files.path("missing.pem").display().to_string();
    let garbage = files.path("garbage.pem").display().to_string();
    let cert = files.path("cert.pem").display().to_string();
    let key = files.path("key.pem").display().to_string();
    let cases = [
        (format!("ssl_chain_cert={missing},ssl_key={key}"), format!("Error loading the certificate chain: {missing} : ")),
        (format!("ssl_chain_cert={garbage},ssl_key={key}"), format!("Error loading the certificate chain: {garbage} : ")),
        (format!("ssl_chain_cert={cert},ssl_key={missing}"), format!("Error loading the key: {missing} : ")),
        (format!("ssl_chain_cert={cert},ssl_key={garbage}"), format!("Error loading the key: {garbage} : ")),
        (format!("ssl_chain_cert={cert},ssl_key={key},ssl_ca_cert={missing}"), format!("Error loading the CA certificate: {missing} : ")),
    ];
    for (opts, message) in cases {
        let port = free_port().to_string();
        let out = command(&["-Z", "-p", &port, "-l", "127.0.0.1", "-U", "0", "-o", &opts])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{opts}: {stderr}");
        assert!(stderr.contains(&message), "{opts}: want {message:?} in {stderr:?}");
    }
    // -Z without a certificate at all.
    let port = free_port().to_string();
    let out = command(&["-Z", "-p", &port, "-l", "127.0.0.1", "-U", "0"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error loading the certificate chain: (null) : "));
}

/// `-l notls:` without `-Z`: memcached's message and exit status.
#[test]
fn notls_needs_tls() {
    let port = free_port().to_string();
    let listen = format!("notls:127.0.0.1:{port}");
    let out = command(&["-p", &port, "-U", "0", "-l", &listen]).stdin(Stdio::null()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("'notls' option is valid only when SSL is enabled"));
    assert_eq!(out.status.code(), Some(71));
}

/// `stats` and `stats settings` show TLS as memcached does.
#[test]
fn stats_and_settings() {
    let files = Files::new();
    let server = TlsServer::start(&files, "1", "ssl_min_version=3", &[]);
    let mut c = server.plain();
    let stats = c.stats("");
    assert_eq!(stats["ssl_handshake_errors"], "0");
    assert!(stats["time_since_server_cert_refresh"].parse::<u64>().unwrap() < 1000);
    assert!(!stats.contains_key("ssl_new_sessions"), "only with ssl_session_cache");
    let settings = c.stats("settings");
    assert_eq!(settings["ssl_enabled"], "yes");
    assert_eq!(settings["ssl_chain_cert"], files.path("cert.pem").display().to_string());
    assert_eq!(settings["ssl_key"], files.path("key.pem").display().to_string());
    for (name, value) in [
        ("ssl_verify_mode", "0"), ("ssl_keyformat", "1"), ("ssl_ciphers", "NULL"), ("ssl_ca_cert", "NULL"),
        ("ssl_wbuf_size", "16384"), ("ssl_session_cache", "no"), ("ssl_kernel_tls", "no"), ("ssl_min_version", "tlsv1.3"),
    ] {
        assert_eq!(settings[name], value, "{name}");
    }
    // TLS 1.3 minimum: a TLS 1.2 client is refused (and counted).
    let refused = TlsClient::connect(server.tls_port, client_config(&files, None, Some(2)));
    assert!(refused.is_err(), "a TLS 1.2 client under ssl_min_version=3");
    if !common::is_reference() {
        wait_for(|| server.stat("ssl_handshake_errors") == 1, "ssl_handshake_errors 1");
    }

    // ssl_session_cache: new sessions counted (TLS 1.3 issues them after the handshake).
    let server = TlsServer::start(&files, "1", "ssl_session_cache", &[]);
    assert_eq!(server.plain().stats("settings")["ssl_session_cache"], "yes");
    let mut c = server.tls(&files);
    c.roundtrip("version\r\n", "VERSION 1.6.18\r\n");
    wait_for(|| server.stat("ssl_new_sessions") >= 1, "ssl_new_sessions counted");
}

/// Client certificates: ssl_verify_mode 0 (none), 1 (request), 2 (require), 3 (require once).
#[test]
fn verify_modes() {
    let files = Files::new();
    let ca_opt = format!("ssl_ca_cert={}", files.path("ca.pem").display());
    let (client_cert, client_key) = files.ca.issue("client", true);
    let stranger = Ca::new("another CA");
    let (bad_cert, bad_key) = stranger.issue("stranger", true);
    let works = |server: &TlsServer, cert: Option<(&str, &str)>| -> bool {
        match TlsClient::connect(server.tls_port, client_config(&files, cert, None)) {
            Ok(mut c) => matches!(c.try_version(), Ok(line) if line.starts_with(b"VERSION ")),
            Err(_) => false,
        }
    };
    for (mode, none, good, bad) in [(0, true, true, true), (1, true, true, false), (2, false, true, false), (3, false, true, false)] {
        let server = TlsServer::start(&files, "1", &format!("ssl_verify_mode={mode},{ca_opt}"), &[]);
        assert_eq!(works(&server, None), none, "mode {mode}, no client certificate");
        assert_eq!(works(&server, Some((&client_cert, &client_key))), good, "mode {mode}, a certificate from the CA");
        assert_eq!(works(&server, Some((&bad_cert, &bad_key))), bad, "mode {mode}, a certificate from another CA");
        // memcached counts only what fails in its first SSL_accept, at accept time;
        // we count every failed handshake.
        if !common::is_reference() && !(none && good && bad) {
            wait_for(|| server.stat("ssl_handshake_errors") >= 1, "handshake errors counted");
        }
        let settings = server.plain().stats("settings");
        assert_eq!(settings["ssl_verify_mode"], ["0", "1", "3", "7"][mode], "stats settings shows OpenSSL's flags");
    }
}

/// `refresh_certs` rotates the certificate: clients connected before keep working,
/// new ones get the new certificate; a refresh that fails keeps the old one in force.
#[test]
fn refresh_certs_rotation() {
    let files = Files::new();
    let server = TlsServer::start(&files, "2", "", &[]);
    let mut before = server.tls(&files);
    before.roundtrip("set r 0 0 1\r\n1\r\n", "STORED\r\n");
    let old = before.server_cert();
    let (cert, key) = files.ca.issue("server two", false);
    files.write("cert.pem", &cert);
    files.write("key.pem", &key);
    std::thread::sleep(Duration::from_millis(1100));
    before.roundtrip("refresh_certs\r\n", "OK\r\n");
    assert_eq!(server.stat("time_since_server_cert_refresh"), 0);
    let mut after = server.tls(&files);
    assert_ne!(after.server_cert(), old, "the new certificate");
    assert_eq!(after.server_cert(), CertificateDer::from_pem_slice(cert.as_bytes()).unwrap().to_vec());
    after.roundtrip("get r\r\n", "VALUE r 0 1\r\n1\r\nEND\r\n");
    before.roundtrip("get r\r\nrefresh_certs noreply\r\nversion\r\n", "VALUE r 0 1\r\n1\r\nEND\r\nVERSION 1.6.18\r\n");

    // Broken files: an error line (even under noreply), the certificate in force stays.
    std::fs::remove_file(files.path("cert.pem")).unwrap();
    let path = files.path("cert.pem").display().to_string();
    before.send("refresh_certs\r\n");
    let line = before.read_until(b"\r\n").unwrap();
    let line = String::from_utf8_lossy(&line);
    assert!(line.starts_with(&format!("Error loading the certificate chain: {path} : ")), "{line}");
    before.send("refresh_certs noreply\r\n");
    assert!(before.read_until(b"\r\n").unwrap().starts_with(b"Error loading the certificate chain"));
    let mut still = server.tls(&files);
    assert_eq!(still.server_cert(), after.server_cert());
    still.roundtrip("get r\r\n", "VALUE r 0 1\r\n1\r\nEND\r\n");
    assert!(server.stat("time_since_server_cert_refresh") < 100);
}

/// SIGHUP (ours, the unit's ExecReload) reloads as refresh_certs does; the server
/// keeps running and serving its clients.
#[test]
fn sighup_reloads_certificates() {
    skip_on_reference!("SIGHUP reloading certificates is ours (systemctl reload)");
    let files = Files::new();
    let server = TlsServer::start(&files, "2", "", &[]);
    let mut before = server.tls(&files);
    let old = before.server_cert();
    let (cert, key) = files.ca.issue("server three", false);
    files.write("cert.pem", &cert);
    files.write("key.pem", &key);
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
    wait_for(|| server.tls(&files).server_cert() != old, "the new certificate after SIGHUP");
    before.roundtrip("version\r\n", "VERSION 1.6.18\r\n");
}

/// Without -Z, refresh_certs says TLS is off (memcached's line, even under noreply).
#[test]
fn refresh_certs_without_tls() {
    let server = common::Server::start(&[]);
    let mut c = server.client();
    c.roundtrip("refresh_certs\r\nrefresh_certs noreply\r\n", "Error TLS not enabled\r\nError TLS not enabled\r\n");
    let stats = c.stats("");
    assert!(!stats.contains_key("ssl_handshake_errors"));
    assert_eq!(c.stats("settings")["ssl_enabled"], "no");
}

/// Many clients at once, each pipelining, over both cores: every reply in order.
fn many_clients(threads: &str) {
    let files = Arc::new(Files::new());
    let server = Arc::new(TlsServer::start(&files, threads, "", &[]));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (files, server) = (files.clone(), server.clone());
            std::thread::spawn(move || {
                let mut c = server.tls(&files);
                for round in 0..20 {
                    let (mut req, mut want) = (String::new(), String::new());
                    for i in 0..16 {
                        let k = format!("c{t}k{i}");
                        req += &format!("set {k} 0 0 3\r\n{round:03}\r\nget {k}\r\n");
                        want += &format!("STORED\r\nVALUE {k} 0 3\r\n{round:03}\r\nEND\r\n");
                    }
                    c.send(&req);
                    c.expect(&want);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(server.stat("ssl_handshake_errors"), 0);
}

per_threads!(every_command_pipelined, large_values_pipelined, plaintext_client_on_tls_port, stalled_handshakes_hold_nobody, many_clients);
