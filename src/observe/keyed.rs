//! The `watch` lines of one keyed request, as memcached 1.6.18 logs them: every keyed
//! command looks its key up first (`item_get`: get, gets, gat, touch, delete, incr,
//! decr, and the storage commands, whose `do_store_item` fetches the old item), and the
//! storage commands then log their outcome (`item_store`). Run only while someone
//! watches fetchers or mutations.

use super::watch::Watchers;
use crate::protocol::watch_lines::{self, GetStatus, StoreStatus, FETCHERS, MUTATIONS};
use crate::protocol::{Keyed, MetaStatus, Op, Outcome};
use crate::rules::{realtime, StoreMode};

/// What the key held before the request ran: value length, exptime and flags.
pub type Before = Option<(usize, u32, u32)>;

/// Where the request came from and the clock it ran at.
pub struct Context<'a> {
    pub cfd: i32,
    pub now: u32,
    pub unix_at_zero: i64,
    pub cas_enabled: bool,
    /// memcached's slab class sizes for `clsid` (`stats_slabs::size_classes`).
    pub classes: &'a [u32],
}

/// memcached's slab class of an item of this key and value (its `ITEM_ntotal`: a 48-byte
/// header, the key and its NUL, the value and its CRLF, 8 for CAS, 4 for flags).
fn clsid(ctx: &Context, key: usize, value: usize, flags: bool) -> u32 {
    let total = 48 + key + 1 + value + 2 + if ctx.cas_enabled { 8 } else { 0 } + if flags { 4 } else { 0 };
    ctx.classes.iter().position(|&size| total as u32 <= size).map_or(ctx.classes.len() as u32, |i| i as u32 + 1)
}

/// A relative expiry as memcached prints it (`%u` of exptime - current_time).
fn ttl(exptime: u32, now: u32) -> u32 {
    if exptime == 0 { 0 } else { exptime.wrapping_sub(now) }
}

/// Writes the request's lines to the watchers.
/// `missed`: how a lookup that found nothing live missed (not found, flushed, expired).
pub fn lines(w: &Watchers, ctx: &Context, request: &Keyed, before: Before, missed: GetStatus, done: Done) {
    let status = done.status;
    let flags_before = before.is_some_and(|b| b.2 != 0);
    let key = request.key;
    let get_line = |w: &Watchers| {
        if w.wants(FETCHERS) {
            w.emit(FETCHERS, |out, ts, gid| match before {
                Some((len, _, _)) => {
                    let class = clsid(ctx, key.len(), len, flags_before);
                    watch_lines::item_get(out, ts, gid, key, GetStatus::Found, class, ctx.cfd, len)
                }
                None => watch_lines::item_get(out, ts, gid, key, missed, 0, ctx.cfd, 0),
            });
        }
    };
    match request.op {
        // memcached logs the fetch in its item lookup, whichever protocol asked.
        Op::Get { .. }
        | Op::Touch { .. }
        | Op::Delete
        | Op::Arith { .. }
        | Op::TouchFetch { .. }
        | Op::DeleteIf { .. } => get_line(w),
        // Binary Increment/Decrement on a miss with an initial value (expiry not
        // 0xffffffff) creates the item through memcached's `add`, as `ma N` does.
        Op::Counter { create, .. } => {
            get_line(w);
            if let (Some((_, exptime)), None, Some(value)) = (create, before, done.counter) {
                vivified(w, ctx, key, value, realtime(exptime, ctx.now, ctx.unix_at_zero));
            }
        }
        Op::Store { mode, flags, exptime, .. } => {
            get_line(w);
            store_line(w, ctx, request, before, status, mode, flags, exptime);
        }
        // The meta commands log what the same lookups and stores log for the classic
        // ones (recorded from memcached 1.6.18): `mg`, `md`, `me` and `ma` their
        // lookup only (`mg`'s `N` creates its item without a store line); `ms` its
        // lookup and its store (`cmd=` the mode, `cas` with a compare value).
        Op::MetaGet { .. } | Op::MetaDelete { .. } | Op::MetaDebug => get_line(w),
        Op::MetaSet { mode, flags, exptime, .. } => {
            get_line(w);
            store_line(w, ctx, request, before, status, mode, flags, exptime.into());
        }
        Op::MetaArith { vivify, .. } => {
            get_line(w);
            // A miss that `N` creates is stored by memcached's `add` (value `J`, flags
            // and exptime 0, `T`/`N` applied after), which looks the key up again.
            if let (Some(_), None, Some(value)) = (vivify, before, done.counter) {
                vivified(w, ctx, key, value, 0);
            }
        }
        // (For `ms`, memcached 1.6.18 passes this line too few arguments: its clsid and
        // cfd are whatever the stack holds; ours are 0 and the client's socket.)
        Op::TooLarge { mode } => {
            if w.wants(MUTATIONS) {
                w.emit(MUTATIONS, |out, ts, gid| {
                    watch_lines::item_store(out, ts, gid, key, StoreStatus::TooLarge, cmd(mode), 0, 0, ctx.cfd, 0)
                });
            }
            if mode == StoreMode::Set {
                get_line(w);
            }
        }
    }
}

/// The lines of a counter created on a miss: memcached stores it with `add` (the value's
/// decimal digits, no flags), whose own lookup misses again first.
fn vivified(w: &Watchers, ctx: &Context, key: &[u8], value: u64, exptime: u32) {
    if w.wants(FETCHERS) {
        w.emit(FETCHERS, |out, ts, gid| watch_lines::item_get(out, ts, gid, key, GetStatus::NotFound, 0, ctx.cfd, 0));
    }
    if w.wants(MUTATIONS) {
        let size = digits(value);
        let class = clsid(ctx, key.len(), size, false);
        w.emit(MUTATIONS, |out, ts, gid| {
            watch_lines::item_store(out, ts, gid, key, StoreStatus::Stored, "add", ttl(exptime, ctx.now), class, ctx.cfd, size)
        });
    }
}

/// A storage command's `item_store` line (`exptime`: the client's).
#[allow(clippy::too_many_arguments)]
fn store_line(
    w: &Watchers, ctx: &Context, request: &Keyed, before: Before, status: StoreStatus, mode: StoreMode, flags: u32,
    exptime: i64,
) {
    if !w.wants(MUTATIONS) {
        return;
    }
    let (key, flags_before) = (request.key, before.is_some_and(|b| b.2 != 0));
    // append/prepend store the joined item, with the old item's expiry.
    let joined = matches!(mode, StoreMode::Append | StoreMode::Prepend) && status == StoreStatus::Stored;
    let (size, exp) = match before {
        Some((len, old_exp, _)) if joined => (len + request.value.len(), old_exp),
        _ => (request.value.len(), realtime(exptime, ctx.now, ctx.unix_at_zero)),
    };
    let class = clsid(ctx, key.len(), size, flags != 0 || (joined && flags_before));
    w.emit(MUTATIONS, |out, ts, gid| {
        watch_lines::item_store(out, ts, gid, key, status, cmd(mode), ttl(exp, ctx.now), class, ctx.cfd, size)
    });
}

/// Decimal digits of a counter's value: the length of the item `ma` creates.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// What the lines need of a request's outcome (which borrows the shard).
#[derive(Clone, Copy)]
pub struct Done {
    /// A storage command's outcome as memcached's `store_item_type`.
    pub status: StoreStatus,
    /// The value `ma` answered with.
    pub counter: Option<u64>,
}

impl Done {
    pub fn of(outcome: &Outcome) -> Done {
        let counter = match outcome {
            Outcome::MetaNumber(n) => Some(n.value),
            Outcome::NumberCas(n, _) => Some(*n),
            _ => None,
        };
        Done { status: store_status(outcome), counter }
    }
}

fn store_status(outcome: &Outcome) -> StoreStatus {
    match outcome {
        Outcome::Stored | Outcome::StoredCas(_) => StoreStatus::Stored,
        Outcome::Exists => StoreStatus::Exists,
        Outcome::NotFound => StoreStatus::NotFound,
        Outcome::TooLarge => StoreStatus::TooLarge,
        Outcome::StoreNoMemory => StoreStatus::NoMemory,
        Outcome::MetaStatus { status, .. } => match status {
            MetaStatus::Done => StoreStatus::Stored,
            MetaStatus::NotStored => StoreStatus::NotStored,
            MetaStatus::Exists => StoreStatus::Exists,
            MetaStatus::NotFound => StoreStatus::NotFound,
        },
        _ => StoreStatus::NotStored,
    }
}

fn cmd(mode: StoreMode) -> &'static str {
    match mode {
        StoreMode::Add => "add",
        StoreMode::Set => "set",
        StoreMode::Replace => "replace",
        StoreMode::Append => "append",
        StoreMode::Prepend => "prepend",
        StoreMode::Cas => "cas",
    }
}
