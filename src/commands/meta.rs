//! The meta commands' semantics (`mg ms md ma me`), as memcached 1.6.18's
//! `proto_text.c` runs them: which shard call, which counters, which outcome. The
//! parse and the reply bytes are the protocol's (`protocol::meta`, `meta_reply`).
//!
//! Counted as memcached counts them: `mg` as a get (`cmd_get`, `get_hits`/`get_misses`),
//! or with `T` on a hit as a touch (`cmd_touch`, `touch_hits`); an item `N` creates is a
//! hit. `ms` bumps `cmd_set` and, as a CAS store, `cas_hits`/`cas_badval`/`cas_misses`.
//! `md` bumps `delete_hits`/`delete_misses` (a CAS mismatch is a miss; marking stale is
//! neither). `ma` bumps `incr_*`/`decr_*` (a vivified miss is neither). `me` bumps
//! `cmd_meta`, the only command memcached counts there.

use super::{arith, Ctx};
use crate::protocol::{Form, Keyed, MetaDebug, MetaForm, MetaHit, MetaNumber, MetaStatus, MetaTtl, Op, Outcome};
use crate::rules::StoreMode;
use crate::store::{MetaArith, MetaDelete, MetaGetPlan, MetaStore, Rewrite, StoreOutcome};

/// memcached's item header (`sizeof(item)`), for `me`'s `size=`.
const MEMCACHED_ITEM_HEADER: u64 = 48;
/// The class `me` reports: memcached-rs has no slab classes (see `dump.rs`).
const CLASS: u32 = super::dump::CLASS;

/// Runs a meta request (an `Op::Meta*`).
pub fn execute<'s>(ctx: &'s mut Ctx<'_>, request: &Keyed) -> Outcome<'s> {
    let other;
    let m = match &request.form {
        Form::Meta(m) => m,
        _ => {
            other = MetaForm::default();
            &other
        }
    };
    let key = request.key;
    match request.op {
        Op::MetaGet { touch, vivify, recache, bump } => get(ctx, key, m, touch, vivify, recache, bump),
        Op::MetaSet { mode, flags, exptime, compare, stale } => {
            let req = MetaStore { mode, flags, exptime: ctx.expiry(exptime.into()), compare, stale, key_binary: m.base64 };
            set(ctx, key, request.value, &req)
        }
        Op::MetaDelete { compare, stale, touch } => delete(ctx, key, compare, stale, touch),
        Op::MetaArith { incr, delta, compare, vivify, initial, touch } => {
            arithmetic(ctx, key, m, Arith { incr, delta, compare, vivify, initial, touch })
        }
        Op::MetaDebug => debug(ctx, key),
        _ => Outcome::Miss,
    }
}

/// The exptimes `T` and `N` give, on the server clock (0 when absent), and the one an
/// item the request creates ends with (the later of the two among the flags; only
/// `N` creates one, so without it 0 and no walk over the flags).
fn ttls(ctx: &Ctx<'_>, m: &MetaForm, touch: Option<i32>, vivify: Option<i32>) -> (MetaTtl, u32) {
    let ttl = MetaTtl {
        before: 0,
        touch: touch.map_or(0, |t| ctx.expiry(t.into())),
        vivify: vivify.map_or(0, |t| ctx.expiry(t.into())),
        created: true,
        now: ctx.now,
    };
    (ttl, if vivify.is_some() { m.exptime_at(usize::MAX, &ttl) } else { 0 })
}

#[allow(clippy::too_many_arguments)]
fn get<'s>(
    ctx: &'s mut Ctx<'_>,
    key: &[u8],
    m: &MetaForm,
    touch: Option<i32>,
    vivify: Option<i32>,
    recache: Option<i32>,
    bump: bool,
) -> Outcome<'s> {
    let c = ctx.counters;
    let (mut ttl, created_exptime) = ttls(ctx, m, touch, vivify);
    let plan = MetaGetPlan {
        touch: touch.map(|_| ttl.touch),
        vivify: vivify.map(|_| created_exptime),
        recache: recache.map(|r| ctx.expiry(r.into())),
        recache_after_touch: recache.is_some() && m.touch_before_recache(),
        bump,
    };
    let (now, cas_enabled) = (ctx.now, ctx.cas_enabled);
    let Some(got) = ctx.shard.meta_get(key, &plan, now) else {
        c.cmd_get.incr();
        c.get_misses.incr();
        return Outcome::Miss;
    };
    if touch.is_some() {
        c.cmd_touch.incr();
        c.touch_hits.incr();
    } else {
        c.cmd_get.incr();
        c.get_hits.incr();
    }
    let item = got.before;
    ttl.before = item.exptime;
    ttl.created = got.created;
    Outcome::MetaHit(MetaHit {
        value: item.value,
        flags: item.flags,
        cas: if cas_enabled { item.cas } else { 0 },
        ttl,
        la: now.saturating_sub(item.written),
        fetched: item.fetched,
        key_binary: item.key_binary(),
        token_sent: item.token_sent(),
        stale: item.stale(),
        won: got.won,
    })
}

fn set<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], value: &[u8], req: &MetaStore) -> Outcome<'s> {
    let c = ctx.counters;
    c.cmd_set.incr();
    let (outcome, cas) = ctx.shard.meta_store(key, value, req, ctx.now);
    if req.mode == StoreMode::Cas {
        match outcome {
            StoreOutcome::Stored => c.cas_hits.incr(),
            StoreOutcome::Exists => c.cas_badval.incr(),
            StoreOutcome::NotFound => c.cas_misses.incr(),
            _ => {}
        }
    }
    let cas = if ctx.cas_enabled { cas } else { 0 };
    let status = |status| Outcome::MetaStatus { status, cas };
    match outcome {
        StoreOutcome::Stored => status(MetaStatus::Done),
        StoreOutcome::NotStored => status(MetaStatus::NotStored),
        StoreOutcome::Exists => status(MetaStatus::Exists),
        StoreOutcome::NotFound => status(MetaStatus::NotFound),
        StoreOutcome::TooLarge => {
            c.store_too_large.incr();
            Outcome::TooLarge
        }
        StoreOutcome::OutOfMemory => {
            c.store_no_memory.incr();
            Outcome::StoreNoMemory
        }
    }
}

fn delete<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], compare: Option<u64>, stale: bool, touch: Option<i32>) -> Outcome<'s> {
    let c = ctx.counters;
    let exptime = touch.map(|t| ctx.expiry(t.into()));
    let status = match ctx.shard.meta_delete(key, compare, stale, exptime, ctx.now) {
        MetaDelete::NotFound => {
            c.delete_misses.incr();
            MetaStatus::NotFound
        }
        MetaDelete::Exists => {
            c.delete_misses.incr();
            MetaStatus::Exists
        }
        MetaDelete::Deleted => {
            c.delete_hits.incr();
            MetaStatus::Done
        }
        MetaDelete::Marked => MetaStatus::Done,
    };
    Outcome::MetaStatus { status, cas: 0 }
}

/// `ma`'s arguments.
struct Arith {
    incr: bool,
    delta: u64,
    compare: u64,
    vivify: Option<i32>,
    initial: u64,
    touch: Option<i32>,
}

fn arithmetic<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], m: &MetaForm, a: Arith) -> Outcome<'s> {
    let c = ctx.counters;
    let (hits, misses) = if a.incr { (&c.incr_hits, &c.incr_misses) } else { (&c.decr_hits, &c.decr_misses) };
    let (mut ttl, created_exptime) = ttls(ctx, m, a.touch, a.vivify);
    let now = ctx.now;
    let shown = |cas: u64| if ctx.cas_enabled { cas } else { 0 };
    match ctx.shard.meta_arith_check(key, a.compare, now) {
        Some(MetaArith::NotFound) if a.vivify.is_some() => {
            let mut digits = itoa::Buffer::new();
            let value = digits.format(a.initial).as_bytes();
            let req = MetaStore { mode: StoreMode::Add, flags: 0, exptime: created_exptime, compare: 0, stale: false, key_binary: false };
            match ctx.shard.meta_store(key, value, &req, now) {
                (StoreOutcome::Stored, cas) => Outcome::MetaNumber(MetaNumber { value: a.initial, cas: shown(cas), ttl }),
                (StoreOutcome::NotStored, _) => Outcome::MetaStatus { status: MetaStatus::NotStored, cas: 0 },
                _ => Outcome::ArithNoMemory,
            }
        }
        Some(MetaArith::NotFound) => {
            misses.incr();
            Outcome::MetaStatus { status: MetaStatus::NotFound, cas: 0 }
        }
        Some(MetaArith::Exists) => Outcome::MetaStatus { status: MetaStatus::Exists, cas: 0 },
        Some(MetaArith::NonNumeric) => Outcome::NonNumeric,
        None => match arith::apply(ctx.shard, key, a.incr, a.delta, now) {
            Rewrite::Done(value) => {
                hits.incr();
                ttl.created = false;
                let (cas, before) = ctx.shard.meta_peek(key, now).map_or((0, 0), |item| (item.cas, item.exptime));
                ttl.before = before;
                if a.touch.is_some() {
                    ctx.shard.touch(key, ttl.touch, now);
                }
                Outcome::MetaNumber(MetaNumber { value, cas: shown(cas), ttl })
            }
            Rewrite::NotFound => {
                misses.incr();
                Outcome::MetaStatus { status: MetaStatus::NotFound, cas: 0 }
            }
            Rewrite::Refused => Outcome::NonNumeric,
            Rewrite::NoMemory => Outcome::ArithNoMemory,
        },
    }
}

fn debug<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> Outcome<'s> {
    ctx.counters.cmd_meta.incr();
    let (now, cas_enabled) = (ctx.now, ctx.cas_enabled);
    let Some(item) = ctx.shard.meta_peek(key, now) else {
        return Outcome::Miss;
    };
    // memcached's ITEM_ntotal: header, key and its NUL, value and its CRLF, the CAS
    // field when CAS is on, the flags field when flags are set.
    let size = MEMCACHED_ITEM_HEADER
        + key.len() as u64
        + 1
        + item.value.len() as u64
        + 2
        + if cas_enabled { 8 } else { 0 }
        + if item.flags != 0 { 4 } else { 0 };
    Outcome::MetaDebug(MetaDebug {
        exp: if item.exptime == 0 { -1 } else { i64::from(now) - i64::from(item.exptime) },
        la: now.saturating_sub(item.written),
        cas: if cas_enabled { item.cas } else { 0 },
        fetched: item.fetched,
        class: CLASS,
        size,
        key_binary: item.key_binary(),
    })
}
