//! The lines of memcached's `watch` stream (logger.c of memcached 1.6.18), byte for
//! byte: `ts=<sec>.<usec> gid=<n> type=... \n`. The microseconds are printed with `%d`
//! (not zero-padded) and keys URI-encoded, as memcached does.

use std::fmt::Write;

/// Stream kinds, memcached's `LOG_*` bits (logger.h).
pub const SYSEVENTS: u16 = 1 << 1;
pub const FETCHERS: u16 = 1 << 2;
pub const MUTATIONS: u16 = 1 << 3;
pub const CONNEVENTS: u16 = 1 << 5;
pub const EVICTIONS: u16 = 1 << 6;
pub const RAWCMDS: u16 = 1 << 9;
pub const PROXYREQS: u16 = 1 << 10;
pub const PROXYEVENTS: u16 = 1 << 11;
pub const PROXYUSER: u16 = 1 << 12;

/// `watch`'s argument words and their kinds (proto_text.c `process_watch_command`).
pub const KINDS: &[(&[u8], u16)] = &[
    (b"rawcmds", RAWCMDS),
    (b"evictions", EVICTIONS),
    (b"fetchers", FETCHERS),
    (b"mutations", MUTATIONS),
    (b"sysevents", SYSEVENTS),
    (b"connevents", CONNEVENTS),
    (b"proxyreqs", PROXYREQS),
    (b"proxyevents", PROXYEVENTS),
    (b"proxyuser", PROXYUSER),
];

/// `watch` refused: `-W`.
pub const WATCH_DISABLED: &[u8] = b"CLIENT_ERROR watch commands not allowed\r\n";
/// More than memcached's WATCHER_LIMIT (20) watchers.
pub const WATCH_TOO_MANY: &[u8] = b"WATCHER_TOO_MANY log watcher limit reached\r\n";
/// What a watcher gets first.
pub const WATCH_OK: &[u8] = b"OK\r\n";

/// The line memcached writes into a watcher's buffer for `n` lines it had no room for.
pub fn skipped(out: &mut Vec<u8>, n: u64) {
    let _ = write!(Fmt(out), "skipped={n}\n");
}

/// `item_get`'s `status`: memcached's was_found map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetStatus {
    NotFound,
    Found,
    Flushed,
    Expired,
}

/// `item_store`'s `status`: memcached's `store_item_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStatus {
    NotStored,
    Stored,
    Exists,
    NotFound,
    TooLarge,
    NoMemory,
}

/// The start of every line: timestamp and global id.
fn head(out: &mut Vec<u8>, unix_micros: i64, gid: u64) {
    let (sec, usec) = (unix_micros.div_euclid(1_000_000), unix_micros.rem_euclid(1_000_000));
    let _ = write!(Fmt(out), "ts={sec}.{usec} gid={gid} ");
}

/// memcached's `uriencode`: alphanumerics and `-._~` as they are, others `%XX`.
fn key(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            let _ = write!(Fmt(out), "%{b:02X}");
        }
    }
}

pub fn item_get(out: &mut Vec<u8>, unix_micros: i64, gid: u64, k: &[u8], status: GetStatus, clsid: u32, cfd: i32, size: usize) {
    head(out, unix_micros, gid);
    out.extend_from_slice(b"type=item_get key=");
    key(out, k);
    let status = match status {
        GetStatus::NotFound => "not_found",
        GetStatus::Found => "found",
        GetStatus::Flushed => "flushed",
        GetStatus::Expired => "expired",
    };
    let _ = write!(Fmt(out), " status={status} clsid={clsid} cfd={cfd} size={size}\n");
}

/// `cmd`: memcached's NREAD_* numbering as names (add set replace append prepend cas).
#[allow(clippy::too_many_arguments)]
pub fn item_store(
    out: &mut Vec<u8>, unix_micros: i64, gid: u64, k: &[u8], status: StoreStatus, cmd: &str, ttl: u32, clsid: u32,
    cfd: i32, size: usize,
) {
    head(out, unix_micros, gid);
    out.extend_from_slice(b"type=item_store key=");
    key(out, k);
    let status = match status {
        StoreStatus::NotStored => "not_stored",
        StoreStatus::Stored => "stored",
        StoreStatus::Exists => "exists",
        StoreStatus::NotFound => "not_found",
        StoreStatus::TooLarge => "too_large",
        StoreStatus::NoMemory => "no_memory",
    };
    let _ = write!(Fmt(out), " status={status} cmd={cmd} ttl={ttl} clsid={clsid} cfd={cfd} size={size}\n");
}

/// An item evicted to make room (memcached's `LOGGER_EVICTION`): `fetched` ever read,
/// `ttl` seconds left (-1: no expiry), `la` seconds since it was last accessed.
#[allow(clippy::too_many_arguments)]
pub fn eviction(out: &mut Vec<u8>, unix_micros: i64, gid: u64, k: &[u8], fetched: bool, ttl: i64, la: u32, clsid: u32, size: usize) {
    head(out, unix_micros, gid);
    out.extend_from_slice(b"type=eviction key=");
    key(out, k);
    let fetch = if fetched { "yes" } else { "no" };
    let _ = write!(Fmt(out), " fetch={fetch} ttl={ttl} la={la} clsid={clsid} size={size}\n");
}

/// `rip`/`rport` of a connection: its peer address, `unix` and 0 on a UNIX socket.
pub fn conn_new(out: &mut Vec<u8>, unix_micros: i64, gid: u64, rip: &str, rport: u16, transport: &str, cfd: i32) {
    head(out, unix_micros, gid);
    let _ = write!(Fmt(out), "type=conn_new rip={rip} rport={rport} transport={transport} cfd={cfd}\n");
}

/// `reason`: error, normal, idle_timeout or shutdown (memcached's close_reasons).
#[allow(clippy::too_many_arguments)]
pub fn conn_close(out: &mut Vec<u8>, unix_micros: i64, gid: u64, rip: &str, rport: u16, transport: &str, reason: &str, cfd: i32) {
    head(out, unix_micros, gid);
    let _ = write!(Fmt(out), "type=conn_close rip={rip} rport={rport} transport={transport} reason={reason} cfd={cfd}\n");
}

/// Formatting into a byte vector.
struct Fmt<'a>(&'a mut Vec<u8>);

impl Write for Fmt<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcacheds_formats() {
        let mut out = Vec::new();
        item_get(&mut out, 1_700_000_000_012_345, 7, b"a b/c", GetStatus::Found, 1, 20, 5);
        assert_eq!(out, b"ts=1700000000.12345 gid=7 type=item_get key=a%20b%2Fc status=found clsid=1 cfd=20 size=5\n");
        out.clear();
        item_store(&mut out, 1_000_000, 8, b"k", StoreStatus::Stored, "set", 0, 1, 21, 3);
        assert_eq!(out, b"ts=1.0 gid=8 type=item_store key=k status=stored cmd=set ttl=0 clsid=1 cfd=21 size=3\n");
        out.clear();
        eviction(&mut out, 3_000_000, 10, b"k:1", false, -1, 12, 5, 300);
        assert_eq!(out, b"ts=3.0 gid=10 type=eviction key=k%3A1 fetch=no ttl=-1 la=12 clsid=5 size=300\n");
        out.clear();
        conn_close(&mut out, 2_000_001, 9, "127.0.0.1", 4000, "tcp", "normal", 22);
        assert_eq!(out, b"ts=2.1 gid=9 type=conn_close rip=127.0.0.1 rport=4000 transport=tcp reason=normal cfd=22\n");
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::protocol::{parse, Form, Limits, Parsed, Request, ServerCmd, StatsKind};

    fn cmd(line: &[u8]) -> ServerCmd {
        match parse(line, &Limits { item_size_max: 1 << 20 }) {
            Parsed::Done { request: Request::Server { cmd, form: Form::Text { .. } }, .. } => cmd,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn watch_words_as_memcached_reads_them() {
        assert_eq!(cmd(b"watch\r\n"), ServerCmd::Watch { kinds: FETCHERS, valid: true });
        assert_eq!(cmd(b"watch mutations connevents\r\n"), ServerCmd::Watch { kinds: MUTATIONS | CONNEVENTS, valid: true });
        assert_eq!(cmd(b"watch fetchers bogus\r\n"), ServerCmd::Watch { kinds: 0, valid: false });
        assert_eq!(cmd(b"stats hotkeys\r\n"), ServerCmd::Stats(StatsKind::HotKeys));
    }
}
