//! The server-wide commands besides flush_all and stats: version, verbosity, quit,
//! shutdown, cache_memlimit, lru_crawler and the two item dumps. Each runs on the core
//! whose connection asked; what must happen on every shard goes there as a [`CoreOp`].

use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;

use super::dump::{CACHEDUMP_MAX_BYTES, CLASS};
use super::{flush, stats, CoreOp, Flow, Server};
use crate::protocol::{answer, Answer, Form, ServerCmd};

/// Runs one server-wide request.
pub fn run(server: &mut impl Server, cmd: ServerCmd, form: Form, out: &mut BytesMut) -> Flow {
    match cmd {
        ServerCmd::FlushAll { delay } => flush::flush_all(server, delay, form, out),
        ServerCmd::Stats(kind) => stats::stats(server, kind, form, out),
        ServerCmd::CacheMemlimit { megabytes } => cache_memlimit(server, megabytes, form, out),
        ServerCmd::Version => answer(form, Answer::Version, out),
        ServerCmd::Verbosity { level } => {
            // memcached's MAX_VERBOSITY_LEVEL. Shown by `stats settings`; what we log is
            // decided by -v at start.
            server.runtime().verbosity.store(level.min(2), Relaxed);
            answer(form, Answer::Ok, out)
        }
        ServerCmd::SlabsAutomove { level } => {
            server.runtime().slab_automove.store(level, Relaxed);
            answer(form, Answer::Ok, out)
        }
        ServerCmd::SlabsReassign { src, dst } => answer(form, slabs_reassign(server.config(), src, dst), out),
        ServerCmd::Quit => {
            answer(form, Answer::Closing, out);
            return Flow::Close;
        }
        ServerCmd::Noop => answer(form, Answer::Ok, out),
        ServerCmd::Shutdown { graceful: _, valid } => {
            if !server.config().enable_shutdown {
                answer(form, Answer::ShutdownDisabled, out);
            } else if !valid {
                answer(form, Answer::InvalidShutdownMode, out);
            } else {
                server.shutdown();
                return Flow::Close;
            }
        }
        ServerCmd::MetaDump { classes } => {
            if !server.runtime().crawler_enabled.load(Relaxed) {
                answer(form, Answer::CrawlerDisabled, out);
            } else {
                if classes & (1 << CLASS) != 0 {
                    server.on_every_core(CoreOp::MetaDump, form, out);
                }
                answer(form, Answer::End, out);
            }
        }
        ServerCmd::LruCrawl { valid } => {
            // memcached checks the crawler is running before it reads the class list.
            let answer_is = if !server.runtime().crawler_enabled.load(Relaxed) {
                Answer::CrawlerDisabled
            } else if valid {
                Answer::Ok
            } else {
                Answer::BadCrawlerClass
            };
            answer(form, answer_is, out);
        }
        ServerCmd::LruCrawler { enable } => {
            // memcached: an error only when starting a crawler that already runs.
            let was = server.runtime().crawler_enabled.swap(enable, Relaxed);
            answer(form, if was && enable { Answer::CrawlerStartFailed } else { Answer::Ok }, out);
        }
        ServerCmd::Watch { kinds, valid } => {
            // memcached's order of checks: -W, then the words. (memcached also refuses a
            // watch behind a noreply request of the same read, a case not kept here;
            // replies before it are sent, then OK, as memcached does.)
            if !server.config().watch_enabled {
                answer(form, Answer::WatchDisabled, out);
            } else if !valid {
                answer(form, Answer::Error, out);
            } else {
                return Flow::Watch(kinds);
            }
        }
        ServerCmd::CacheDump { class, limit } => {
            if class == CLASS {
                // Split the limit and memcached's 2 MB cap over the cores.
                let cores = server.cores();
                let n = cores as u32;
                let max_bytes = (CACHEDUMP_MAX_BYTES / cores) as u32;
                for core in 0..cores {
                    let share = limit / n + u32::from((core as u32) < limit % n);
                    if limit == 0 || share > 0 {
                        server.on_core(core, CoreOp::CacheDump { limit: share, max_bytes }, form, out);
                    }
                }
            }
            answer(form, Answer::End, out);
        }
    }
    Flow::Continue
}

/// `slabs reassign <src> <dst>` as memcached checks it. There are no slab pages to
/// move here (one store packs every size), so a valid request is acknowledged with
/// `OK` and changes nothing (README, "Differences from memcached").
fn slabs_reassign(config: &crate::config::Config, src: i32, dst: i32) -> Answer {
    if !super::settings::slab_reassign(config) {
        return Answer::SlabReassignDisabled;
    }
    if src == dst {
        return Answer::SlabsSameClass;
    }
    // memcached: class 0 is its global page pool, -1 as the source picks any class.
    let largest = super::stats_slabs::size_classes(config).len() as i32;
    let in_range = |c: i32| (0..=largest).contains(&c);
    if !(src == -1 || in_range(src)) || !in_range(dst) {
        return Answer::SlabsBadClass;
    }
    Answer::Ok
}

/// `cache_memlimit <megabytes>`: memcached's limits on the value, then each core's
/// share of the new limit; `stats settings` shows it from then on.
fn cache_memlimit(server: &mut impl Server, megabytes: u64, form: Form, out: &mut BytesMut) {
    if megabytes < 8 {
        return answer(form, Answer::MemlimitTooSmall, out);
    }
    if megabytes > 1_000_000_000 {
        return answer(form, Answer::MemlimitAdjustFailed, out);
    }
    let total = megabytes * 1024 * 1024;
    server.runtime().memory_limit.store(total, Relaxed);
    let bytes = total / server.cores() as u64;
    server.on_every_core(CoreOp::MemoryLimit { bytes }, form, out);
    answer(form, Answer::Ok, out)
}
