//! memcached's `watch`: connections that receive a live stream of log lines (fetches,
//! mutations, connection events) instead of replies.
//!
//! As in memcached, the request path pays one relaxed load of the watched kinds when
//! nobody watches. When someone does, the core that runs the request formats the line
//! once and appends it to each matching watcher's buffer (256 KiB, memcached's
//! `watcher_logbuf_size`). A watcher whose buffer has no room for the line loses it:
//! the server never waits for a watcher. Lost lines are counted (`log_watcher_skipped`)
//! and announced to the watcher as `skipped=N` before its next line, as memcached does.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::protocol::watch_lines;

/// memcached's WATCHER_LIMIT.
pub const WATCHER_LIMIT: usize = 20;
/// memcached's LOGGER_WATCHER_BUF_SIZE (settings.logger_watcher_buf_size).
pub const WATCHER_BUFFER: usize = 256 * 1024;
/// memcached asks for the line plus this much room (for a `skipped=` line).
const SKIP_ROOM: usize = 128;

/// Every watcher, and memcached's logger counters.
#[derive(Default)]
pub struct Watchers {
    /// Union of the kinds anyone watches: the request path's only cost when 0.
    kinds: AtomicU16,
    gid: AtomicU64,
    list: Mutex<Vec<Arc<Watcher>>>,
    /// `log_worker_written`: lines made; `log_watcher_sent`/`_skipped`: per watcher.
    pub written: AtomicU64,
    pub sent: AtomicU64,
    pub skipped: AtomicU64,
}

/// One watching connection's buffer.
pub struct Watcher {
    kinds: u16,
    min_gid: u64,
    buf: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    skipped: u64,
}

impl Watchers {
    /// Does anyone watch `kind`? One relaxed load.
    #[inline]
    pub fn wants(&self, kind: u16) -> bool {
        self.kinds.load(Relaxed) & kind != 0
    }

    /// Watchers now (`log_watchers`).
    pub fn count(&self) -> usize {
        self.list.lock().map_or(0, |l| l.len())
    }

    /// A new watcher of `kinds`; None past WATCHER_LIMIT.
    pub fn add(&self, kinds: u16) -> Option<Arc<Watcher>> {
        let mut list = self.list.lock().ok()?;
        if list.len() >= WATCHER_LIMIT {
            return None;
        }
        // memcached takes a gid for the new watcher: its first line has the next one.
        let min_gid = self.gid.fetch_add(1, Relaxed) + 1;
        let watcher = Arc::new(Watcher { kinds, min_gid, buf: Mutex::default() });
        list.push(watcher.clone());
        self.kinds.fetch_or(kinds, Relaxed);
        Some(watcher)
    }

    pub fn remove(&self, watcher: &Arc<Watcher>) {
        if let Ok(mut list) = self.list.lock() {
            list.retain(|w| !Arc::ptr_eq(w, watcher));
            self.kinds.store(list.iter().fold(0, |k, w| k | w.kinds), Relaxed);
        }
    }

    /// Makes one line of `kind` (written by `line` after the timestamp and gid are
    /// chosen) and offers it to every watcher of that kind.
    pub fn emit(&self, kind: u16, line: impl FnOnce(&mut Vec<u8>, i64, u64)) {
        let Ok(list) = self.list.lock() else { return };
        let gid = self.gid.fetch_add(1, Relaxed) + 1;
        let mut text = Vec::with_capacity(160);
        line(&mut text, unix_micros(), gid);
        self.written.fetch_add(1, Relaxed);
        for w in list.iter().filter(|w| w.kinds & kind != 0 && gid >= w.min_gid) {
            let Ok(mut pending) = w.buf.lock() else { continue };
            if pending.bytes.len() + text.len() + SKIP_ROOM > WATCHER_BUFFER {
                pending.skipped += 1;
                self.skipped.fetch_add(1, Relaxed);
                continue;
            }
            if pending.skipped > 0 {
                let n = std::mem::take(&mut pending.skipped);
                watch_lines::skipped(&mut pending.bytes, n);
            }
            pending.bytes.extend_from_slice(&text);
            self.sent.fetch_add(1, Relaxed);
        }
    }
}

impl Watcher {
    /// Moves what is waiting for this watcher into `out` (emptied first).
    pub fn take(&self, out: &mut Vec<u8>) {
        out.clear();
        if let Ok(mut pending) = self.buf.lock() {
            std::mem::swap(&mut pending.bytes, out);
        }
    }
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::watch_lines::{FETCHERS, MUTATIONS};

    fn line(out: &mut Vec<u8>, _: i64, gid: u64) {
        out.extend_from_slice(format!("gid={gid} {}\n", "x".repeat(1000)).as_bytes());
    }

    #[test]
    fn a_slow_watcher_loses_lines_and_is_told_how_many() {
        let all = Watchers::default();
        assert!(!all.wants(FETCHERS));
        let w = all.add(FETCHERS).unwrap();
        assert!(all.wants(FETCHERS) && !all.wants(MUTATIONS));
        for _ in 0..300 {
            all.emit(FETCHERS, line);
        }
        let sent = all.sent.load(Relaxed);
        assert!(sent < 300 && sent > 200, "the buffer holds about 256 lines of 1 KiB");
        assert_eq!(all.skipped.load(Relaxed), 300 - sent);
        let mut out = Vec::new();
        w.take(&mut out);
        assert!(out.len() <= WATCHER_BUFFER);
        all.emit(FETCHERS, line);
        w.take(&mut out);
        assert!(out.starts_with(format!("skipped={}\n", 300 - sent).as_bytes()), "{:?}", &out[..20]);
        all.remove(&w);
        assert!(!all.wants(FETCHERS));
        assert_eq!(all.count(), 0);
    }
}
