//! set, add, replace, append, prepend and cas: storing a value.
//!
//! Every storage command bumps `cmd_set`; cas also `cas_hits`, `cas_badval` (the unique
//! did not match) or `cas_misses` (no such item); a value too large for `-I`
//! `store_too_large`, one refused for memory under `-M` `store_no_memory`, as memcached
//! counts them.

use super::Ctx;
use crate::protocol::Outcome;
use crate::rules::StoreMode;
use crate::store::StoreOutcome;

pub fn store<'s>(
    ctx: &'s mut Ctx<'_>,
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: i64,
    value: &[u8],
    cas_unique: u64,
) -> Outcome<'s> {
    let c = ctx.counters;
    c.cmd_set.incr();
    let exptime = ctx.expiry(exptime);
    let outcome = ctx.shard.store(mode, key, flags, exptime, value, cas_unique, ctx.now);
    if mode == StoreMode::Cas {
        match outcome {
            StoreOutcome::Stored => c.cas_hits.incr(),
            StoreOutcome::Exists => c.cas_badval.incr(),
            StoreOutcome::NotFound => c.cas_misses.incr(),
            _ => {}
        }
    }
    // memcached counts these when it cannot allocate the request's own item; an
    // append/prepend that fails to grow the old one is only NOT_STORED.
    if !matches!(mode, StoreMode::Append | StoreMode::Prepend) {
        match outcome {
            StoreOutcome::TooLarge => c.store_too_large.incr(),
            StoreOutcome::OutOfMemory => c.store_no_memory.incr(),
            _ => {}
        }
    }
    match outcome {
        StoreOutcome::Stored => Outcome::Stored,
        StoreOutcome::NotStored => Outcome::NotStored,
        StoreOutcome::Exists => Outcome::Exists,
        StoreOutcome::NotFound => Outcome::NotFound,
        // memcached: an append/prepend that would outgrow -I is NOT_STORED.
        StoreOutcome::TooLarge if matches!(mode, StoreMode::Append | StoreMode::Prepend) => Outcome::NotStored,
        StoreOutcome::TooLarge => Outcome::TooLarge,
        StoreOutcome::OutOfMemory => Outcome::StoreNoMemory,
    }
}

/// A store whose reply carries the new cas unique (binary). memcached's binary
/// append/prepend also take a cas: non-zero, it must match the item's (else Exists).
#[allow(clippy::too_many_arguments)]
pub fn store_with_cas<'s>(
    ctx: &'s mut Ctx<'_>,
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: i64,
    value: &[u8],
    cas_unique: u64,
) -> Outcome<'s> {
    if cas_unique != 0 && matches!(mode, StoreMode::Append | StoreMode::Prepend) {
        if let Some(current) = ctx.shard.item_cas(key, ctx.now) {
            if current != cas_unique {
                ctx.counters.cmd_set.incr();
                return Outcome::Exists;
            }
        }
    }
    // A store's outcome borrows nothing (no Hit): detach it from this borrow of ctx.
    let outcome = match store(&mut *ctx, mode, key, flags, exptime, value, cas_unique) {
        Outcome::Stored => Outcome::Stored,
        Outcome::Exists => Outcome::Exists,
        Outcome::NotFound => Outcome::NotFound,
        Outcome::TooLarge => Outcome::TooLarge,
        Outcome::StoreNoMemory => Outcome::StoreNoMemory,
        _ => Outcome::NotStored,
    };
    match outcome {
        Outcome::Stored => Outcome::StoredCas(if ctx.cas_enabled { ctx.shard.last_cas() } else { 0 }),
        other => other,
    }
}

/// A storage command whose value was larger than `-I` (refused before its data block
/// was read): memcached unlinks the old value when the command was `set`, so a failed
/// overwrite leaves no stale value behind.
pub fn too_large<'s>(ctx: &'s mut Ctx<'_>, mode: StoreMode, key: &[u8]) -> Outcome<'s> {
    ctx.counters.store_too_large.incr();
    if mode == StoreMode::Set {
        ctx.shard.delete(key, ctx.now);
    }
    Outcome::TooLarge
}
