//! `stats items` and `stats slabs`, in memcached's field names.
//!
//! memcached-rs has no slab classes: each core's shard packs items of every size into
//! large segments. `stats items` and `stats slabs` therefore report the whole cache as
//! one class (class 1), with memcached's meaning for each field, so tools that read them
//! (memcached-tool, memcstat) see true totals: a segment is a page, the average stored
//! item (header, key and value as packed here) is the chunk, and `age` is how long ago
//! the oldest segment still holding items was started (the tail of our FIFO).

use super::ExecutorStats;
use crate::config::Config;
use crate::protocol::StatSink;

/// The chunk sizes of memcached's slab classes 1, 2, ... for these settings, as its
/// `slabs_init` computes them: from a 48-byte item header plus `-n` (48), times `-f`
/// (1.25) each class, 8-byte aligned, up to the largest chunk (`slab_chunk_max`).
pub fn size_classes(c: &Config) -> Vec<u32> {
    const ITEM_HEADER: f64 = 48.0;
    const ALIGN: u32 = 8;
    let chunk_max = super::settings::slab_chunk_max(c);
    let mut sizes = Vec::new();
    let mut size = ITEM_HEADER + f64::from(c.chunk_size);
    // Class ids run 1 ..= 63; the last one is always `chunk_max`.
    while sizes.len() < (crate::rules::MAX_NUMBER_OF_SLAB_CLASSES as usize - 2) && size < f64::from(chunk_max) / c.growth_factor {
        let mut s = size as u32;
        if s % ALIGN != 0 {
            s += ALIGN - s % ALIGN;
        }
        sizes.push(s);
        size = f64::from(s) * c.growth_factor;
    }
    sizes.push(chunk_max);
    sizes
}

fn total(all: &[ExecutorStats], f: impl Fn(&ExecutorStats) -> u64) -> u64 {
    all.iter().map(f).sum()
}

/// Seconds since the oldest live segment on any core was started.
fn oldest_age(all: &[ExecutorStats], now: u32) -> u64 {
    all.iter()
        .map(|s| s.shard.oldest_write.get())
        .filter(|&t| t > 0)
        .map(|t| u64::from(now).saturating_sub(t - 1))
        .max()
        .unwrap_or(0)
}

pub fn write_items(out: &mut impl StatSink, all: &[ExecutorStats], now: u32) {
    let items = total(all, |s| s.shard.curr_items.get());
    if items == 0 {
        return;
    }
    out.stat("items:1:number", &items);
    out.stat("items:1:number_hot", &0);
    out.stat("items:1:number_warm", &0);
    out.stat("items:1:number_cold", &items);
    out.stat("items:1:age_hot", &0);
    out.stat("items:1:age_warm", &0);
    out.stat("items:1:age", &oldest_age(all, now));
    out.stat("items:1:mem_requested", &total(all, |s| s.shard.bytes.get()));
    out.stat("items:1:evicted", &total(all, |s| s.shard.evictions.get()));
    out.stat("items:1:evicted_nonzero", &0);
    out.stat("items:1:evicted_time", &0);
    out.stat("items:1:outofmemory", &0);
    out.stat("items:1:tailrepairs", &0);
    out.stat("items:1:reclaimed", &total(all, |s| s.shard.reclaimed.get()));
    out.stat("items:1:expired_unfetched", &total(all, |s| s.shard.expired_unfetched.get()));
    out.stat("items:1:evicted_unfetched", &total(all, |s| s.shard.evicted_unfetched.get()));
    out.stat("items:1:evicted_active", &0);
}

pub fn write_slabs(out: &mut impl StatSink, all: &[ExecutorStats], page_size: u64) {
    let items = total(all, |s| s.shard.curr_items.get());
    let allocated = total(all, |s| s.shard.allocated.get());
    let requested = total(all, |s| s.shard.bytes.get());
    let pages = total(all, |s| s.shard.segments.get());
    let c = |f: fn(&ExecutorStats) -> u64| total(all, f);
    if pages > 0 {
        let chunk = requested.checked_div(items).unwrap_or(0).max(1);
        let per_page = page_size / chunk;
        out.stat("1:chunk_size", &chunk);
        out.stat("1:chunks_per_page", &per_page);
        out.stat("1:total_pages", &pages);
        out.stat("1:total_chunks", &(pages * per_page));
        out.stat("1:used_chunks", &items);
        out.stat("1:free_chunks", &(pages * per_page).saturating_sub(items));
        out.stat("1:free_chunks_end", &0);
        out.stat("1:get_hits", &c(|s| s.commands.get_hits.get()));
        out.stat("1:cmd_set", &c(|s| s.commands.cmd_set.get()));
        out.stat("1:delete_hits", &c(|s| s.commands.delete_hits.get()));
        out.stat("1:incr_hits", &c(|s| s.commands.incr_hits.get()));
        out.stat("1:decr_hits", &c(|s| s.commands.decr_hits.get()));
        out.stat("1:cas_hits", &c(|s| s.commands.cas_hits.get()));
        out.stat("1:cas_badval", &c(|s| s.commands.cas_badval.get()));
        out.stat("1:touch_hits", &c(|s| s.commands.touch_hits.get()));
    }
    out.stat("active_slabs", &u64::from(pages > 0));
    out.stat("total_malloced", &allocated);
}
