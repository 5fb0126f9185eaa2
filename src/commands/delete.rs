//! delete: unlink an item, counted in `delete_hits`/`delete_misses`.

use super::Ctx;
use crate::protocol::Outcome;

pub fn delete<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> Outcome<'s> {
    let c = ctx.counters;
    if ctx.shard.delete(key, ctx.now) {
        c.delete_hits.incr();
        Outcome::Deleted
    } else {
        c.delete_misses.incr();
        Outcome::NotFound
    }
}

/// Binary Delete: with a non-zero `cas`, only the item of that cas unique goes (another
/// cas: Exists), as memcached's `process_bin_delete`.
pub fn delete_if<'s>(ctx: &'s mut Ctx<'_>, key: &[u8], cas: u64) -> Outcome<'s> {
    if cas != 0 {
        match ctx.shard.item_cas(key, ctx.now) {
            Some(current) if current != cas => return Outcome::Exists,
            _ => {}
        }
    }
    delete(ctx, key)
}
