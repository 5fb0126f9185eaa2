//! flush_all: every item stored before it is gone, now or at a time the client gives.
//!
//! memcached counts `cmd_flush` and refuses with `-F`. A flush now runs on every core
//! before the reply (so a get pipelined behind it misses); a delayed flush is recorded
//! in the runtime settings, and each core applies it once its time comes.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;

use super::{CoreOp, Runtime, Server};
use crate::protocol::{answer, Answer, Form};
use crate::rules::realtime;
use crate::store::Shard;

pub fn flush_all(server: &mut impl Server, delay: i64, form: Form, out: &mut BytesMut) {
    // memcached counts a refused flush_all too.
    server.counters().cmd_flush.incr();
    if !server.config().flush_enabled {
        return answer(form, Answer::FlushNotAllowed, out);
    }
    let now = server.now();
    let at = if delay > 0 { realtime(delay, now, server.unix_at_zero()) } else { now };
    // memcached's `settings.oldest_live`, shown by `stats settings` as `oldest`.
    let cas = server.config().cas_enabled;
    server.runtime().oldest_live.store(if cas { at.saturating_sub(1) } else { at }, Relaxed);
    if delay > 0 {
        server.runtime().pending_flush.store(at, Relaxed);
    } else {
        server.runtime().pending_flush.store(0, Relaxed);
        server.on_every_core(CoreOp::Flush, form, out);
    }
    answer(form, Answer::Ok, out)
}

/// A core's part of a flush now: everything it holds is gone (lazily, as in memcached:
/// lookups count `get_flushed`, the reclaim `reclaimed`). Without CAS memcached flushes
/// by time alone, so items stored later in the same second are gone too.
pub fn on_shard(shard: &mut Shard, now: u32, cas_enabled: bool) {
    shard.flush_all(now, !cas_enabled);
}

/// Once a second on each core: applies a delayed flush that has come due since this
/// core last looked (`applied` remembers the one it applied last).
pub fn apply_due(shard: &mut Shard, runtime: &Runtime, applied: &Cell<u32>, now: u32, cas_enabled: bool) {
    let at = runtime.pending_flush.load(Relaxed);
    if at != 0 && at <= now && applied.get() != at {
        applied.set(at);
        shard.flush_all(now, !cas_enabled);
    }
}
