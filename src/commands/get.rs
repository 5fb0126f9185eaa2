//! get, gets, gat, gats and touch: reading an item, and changing its expiry.
//!
//! Counted as memcached counts them: a get bumps `cmd_get` and `get_hits` or
//! `get_misses`; a gat also `cmd_touch` and `touch_hits`/`touch_misses` (not the get
//! hits, as memcached's `process_get_command` does for gat); touch bumps `cmd_touch`.

use super::Ctx;
use crate::protocol::{Item, Outcome};
use crate::store::ItemRef;

/// get/gets: the item, or a miss. The protocol decides whether the cas unique shows.
#[inline]
pub fn get<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> Outcome<'s> {
    let c = ctx.counters;
    c.cmd_get.incr();
    match ctx.shard.get(key, ctx.now) {
        Some(item) => {
            c.get_hits.incr();
            Outcome::Hit(view(item, ctx.cas_enabled))
        }
        None => {
            c.get_misses.incr();
            Outcome::Miss
        }
    }
}

/// gat/gats: get, and set the item's expiry to the client's `exptime`.
/// The text protocol also counts it as a get (`cmd_get`); the rest is binary's Touch/GAT.
pub fn get_and_touch<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], exptime: i64) -> Outcome<'s> {
    ctx.counters.cmd_get.incr();
    touch_fetch(ctx, key, exptime)
}

/// touch: a new expiry, no value back. The cas unique does not change (memcached).
pub fn touch<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], exptime: i64) -> Outcome<'s> {
    let c = ctx.counters;
    c.cmd_touch.incr();
    if ctx.shard.touch(key, ctx.expiry(exptime), ctx.now) {
        c.touch_hits.incr();
        Outcome::Touched
    } else {
        c.touch_misses.incr();
        Outcome::NotFound
    }
}

#[inline]
fn view(item: ItemRef<'_>, cas_enabled: bool) -> Item<'_> {
    Item { flags: item.flags, cas: if cas_enabled { item.cas } else { 0 }, value: item.value }
}

/// Binary Touch/GAT: a new expiry and the item back, counted as memcached's binary
/// protocol counts it (`cmd_touch` and `touch_hits`/`touch_misses`, no get counters).
pub fn touch_fetch<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], exptime: i64) -> Outcome<'s> {
    let c = ctx.counters;
    c.cmd_touch.incr();
    let exptime = ctx.expiry(exptime);
    match ctx.shard.get_and_touch(key, exptime, ctx.now) {
        Some(item) => {
            c.touch_hits.incr();
            Outcome::Hit(view(item, ctx.cas_enabled))
        }
        None => {
            c.touch_misses.incr();
            Outcome::Miss
        }
    }
}
