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
