//! `stats items` and `stats slabs`, in memcached's field names, by memcached's size
//! classes.
//!
//! memcached-rs has no slab classes: each core's shard packs items of every size into
//! large segments. The statistics are kept per class all the same (`store::classes`):
//! each item counts in the class memcached would give it (the chunk sizes of `-f` and
//! `-n`, [`size_classes`]), so `number`, `mem_requested`, `evicted`, `reclaimed` and the
//! unfetched counts are memcached's per class, and `age` is how long ago the oldest
//! segment holding items of the class was started. In `stats slabs` a class's
//! `total_pages` is its share of the segments (by bytes, at least what its items need
//! at its chunk size), a page being a segment. The per-class command counters
//! (`get_hits` ... `touch_hits`) are not kept by class: the whole server's figures are
//! shown on the first class listed, so that their sum over classes is memcached's.

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

/// One class summed over the executors.
#[derive(Default)]
struct Class {
    number: u64,
    requested: u64,
    evicted: u64,
    reclaimed: u64,
    expired_unfetched: u64,
    evicted_unfetched: u64,
    /// Server time + 1 of its oldest segment on any core (0: none).
    oldest: u64,
}

fn classes(all: &[ExecutorStats]) -> Vec<Class> {
    (0..crate::store::MAX_CLASSES)
        .map(|i| {
            let mut c = Class::default();
            for s in all {
                let g = &s.classes.0[i];
                c.number += g.number.get();
                c.requested += g.requested.get();
                c.evicted += g.evicted.get();
                c.reclaimed += g.reclaimed.get();
                c.expired_unfetched += g.expired_unfetched.get();
                c.evicted_unfetched += g.evicted_unfetched.get();
                let oldest = g.oldest.get();
                if oldest > 0 && (c.oldest == 0 || oldest < c.oldest) {
                    c.oldest = oldest;
                }
            }
            c
        })
        .collect()
}

pub fn write_items(out: &mut impl StatSink, all: &[ExecutorStats], now: u32) {
    for (i, c) in classes(all).iter().enumerate() {
        if c.number == 0 {
            continue;
        }
        let id = i + 1;
        let age = if c.oldest == 0 { 0 } else { u64::from(now).saturating_sub(c.oldest - 1) };
        let mut stat = |name: &str, v: u64| out.stat(&format!("items:{id}:{name}"), &v);
        stat("number", c.number);
        stat("number_hot", 0);
        stat("number_warm", 0);
        stat("number_cold", c.number);
        stat("age_hot", 0);
        stat("age_warm", 0);
        stat("age", age);
        stat("mem_requested", c.requested);
        stat("evicted", c.evicted);
        stat("evicted_nonzero", 0);
        stat("evicted_time", 0);
        stat("outofmemory", 0);
        stat("tailrepairs", 0);
        stat("reclaimed", c.reclaimed);
        stat("expired_unfetched", c.expired_unfetched);
        stat("evicted_unfetched", c.evicted_unfetched);
        stat("evicted_active", 0);
        stat("crawler_reclaimed", 0);
        stat("crawler_items_checked", 0);
        stat("lrutail_reflocked", 0);
        stat("moves_to_cold", 0);
        stat("moves_to_warm", 0);
        stat("moves_within_lru", 0);
        stat("direct_reclaims", 0);
        stat("hits_to_hot", 0);
        stat("hits_to_warm", 0);
        stat("hits_to_cold", 0);
        stat("hits_to_temp", 0);
    }
}

pub fn write_slabs(out: &mut impl StatSink, all: &[ExecutorStats], sizes: &[u32], page_size: u64) {
    let allocated = total(all, |s| s.shard.allocated.get());
    let pages = total(all, |s| s.shard.segments.get());
    let classes = classes(all);
    let requested: u64 = classes.iter().map(|c| c.requested).sum();
    let mut active = 0u64;
    let mut first = true;
    for (i, c) in classes.iter().enumerate() {
        if c.number == 0 || pages == 0 {
            continue;
        }
        active += 1;
        let id = i + 1;
        let chunk = u64::from(sizes.get(i).copied().unwrap_or(sizes.last().copied().unwrap_or(1)).max(1));
        let per_page = (page_size / chunk).max(1);
        let share = (pages * c.requested).div_ceil(requested.max(1));
        let class_pages = share.max(c.number.div_ceil(per_page));
        let mut stat = |name: &str, v: u64| out.stat(&format!("{id}:{name}"), &v);
        stat("chunk_size", chunk);
        stat("chunks_per_page", per_page);
        stat("total_pages", class_pages);
        stat("total_chunks", class_pages * per_page);
        stat("used_chunks", c.number);
        stat("free_chunks", (class_pages * per_page).saturating_sub(c.number));
        stat("free_chunks_end", 0);
        let commands = |f: fn(&ExecutorStats) -> u64| if first { total(all, f) } else { 0 };
        let hits = [
            ("get_hits", commands(|s| s.commands.get_hits.get())),
            ("cmd_set", commands(|s| s.commands.cmd_set.get())),
            ("delete_hits", commands(|s| s.commands.delete_hits.get())),
            ("incr_hits", commands(|s| s.commands.incr_hits.get())),
            ("decr_hits", commands(|s| s.commands.decr_hits.get())),
            ("cas_hits", commands(|s| s.commands.cas_hits.get())),
            ("cas_badval", commands(|s| s.commands.cas_badval.get())),
            ("touch_hits", commands(|s| s.commands.touch_hits.get())),
        ];
        for (name, v) in hits {
            stat(name, v);
        }
        first = false;
    }
    out.stat("active_slabs", &active);
    out.stat("total_malloced", &allocated);
}
