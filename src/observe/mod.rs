//! Observability (ours, opt-in): Prometheus metrics over HTTP, latency histograms and
//! hot keys per core, memcached's `watch` stream.
//!
//! What the request path pays: with `-o metrics` off, one relaxed load of the watched
//! kinds per keyed request and a per-core-pair forwarding counter; with it on, two
//! clock reads per round of requests, a histogram bump per request family per round,
//! and a sketch update per keyed request ([`hotkeys`]). Every core writes only its own
//! [`Local`] and publishes a copy once a second into [`Observe`] (a lock per core, taken
//! once a second by the core and once per scrape by the HTTP thread), which the HTTP
//! thread ([`http`]) renders ([`prom`]). The HTTP side runs on its own thread, never on
//! an executor.

pub mod hotkeys;
pub mod http;
pub mod keyed;
pub mod latency;
pub mod prom;
pub mod watch;

use std::cell::{Cell, RefCell};
use std::sync::Mutex;

use crate::commands::Counter;
use crate::config::Config;
use crate::store::Shard;

/// Item sizes (record bytes: header, key and value) are bucketed by powers of two from
/// this up; the last bucket takes everything larger.
const SIZE_BUCKETS: [u64; 14] = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1 << 20];
/// The item-size walk runs every this many publications (seconds) and looks at no more
/// than this many items (newest first); past it, counts are scaled up to the core's
/// item count (an estimate, said so in the metric's help).
const SIZES_EVERY: u32 = 10;
const SIZES_MAX_WALK: usize = 20_000;

/// What the whole process shares: published copies and cross-core counters.
pub struct Observe {
    /// Latency histograms kept (`-o metrics`).
    pub latency_on: bool,
    /// Hot keys kept (`-o metrics` or `-o hotkeys`).
    pub hotkeys_on: bool,
    cores: usize,
    /// Requests forwarded, `[from * cores + to]`; row `from` written by core `from` only.
    forwarded: Box<[Counter]>,
    published: Box<[Mutex<Published>]>,
    pub watch: watch::Watchers,
    /// The HTTP side: scrapes answered, connections turned away (too many at once), and
    /// connections closed for taking too long.
    pub scrapes: Counter,
    pub scrapes_refused: Counter,
    pub scrapes_timed_out: Counter,
}

/// One core's latest copy.
#[derive(Clone, Debug, Default)]
pub struct Published {
    pub latency: latency::Snapshot,
    pub hot: Vec<hotkeys::HotKey>,
    pub sizes: Vec<SizeBucket>,
}

/// Live items whose record size is at most `le` bytes (and above the previous bucket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeBucket {
    /// u64::MAX: larger than every other bucket.
    pub le: u64,
    pub items: u64,
    pub bytes: u64,
}

impl Observe {
    pub fn new(config: &Config) -> Observe {
        let cores = config.threads;
        Observe {
            latency_on: config.metrics.is_some(),
            hotkeys_on: config.hotkeys,
            cores,
            forwarded: (0..cores * cores).map(|_| Counter::default()).collect(),
            published: (0..cores).map(|_| Mutex::default()).collect(),
            watch: watch::Watchers::default(),
            scrapes: Counter::default(),
            scrapes_refused: Counter::default(),
            scrapes_timed_out: Counter::default(),
        }
    }

    /// Core `from` forwarded a request to core `to`.
    #[inline]
    pub fn forwarded_to(&self, from: usize, to: usize) {
        if let Some(c) = self.forwarded.get(from * self.cores + to) {
            c.incr();
        }
    }

    pub fn forwarded(&self, from: usize, to: usize) -> u64 {
        self.forwarded.get(from * self.cores + to).map_or(0, Counter::get)
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Core `core`'s latest copy.
    pub fn published(&self, core: usize) -> Published {
        self.published.get(core).and_then(|p| p.lock().ok().map(|p| p.clone())).unwrap_or_default()
    }

    /// Every core's hot keys, most requested first (a key belongs to one core).
    pub fn hot_keys(&self) -> Vec<(usize, hotkeys::HotKey)> {
        let mut all: Vec<(usize, hotkeys::HotKey)> =
            (0..self.cores).flat_map(|c| self.published(c).hot.into_iter().map(move |k| (c, k))).collect();
        all.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.1.key.cmp(&b.1.key)));
        all
    }
}

/// What one core keeps for itself; only its executor touches it.
#[derive(Default)]
pub struct Local {
    pub latency: latency::Recorder,
    hot: RefCell<hotkeys::HotKeys>,
    hot_on: bool,
    publications: Cell<u32>,
    sizes: RefCell<Vec<SizeBucket>>,
}

impl Local {
    pub fn new(observe: &Observe) -> Local {
        Local { hot_on: observe.hotkeys_on, ..Local::default() }
    }

    /// A keyed request for `key` ran on this core (its owner).
    #[inline]
    pub fn key(&self, key: &[u8]) {
        if self.hot_on {
            self.hot.borrow_mut().record(key);
        }
    }

    /// Once a second: copies what the HTTP side and `stats hotkeys` show.
    pub fn publish(&self, observe: &Observe, core: usize, shard: &Shard, now: u32) {
        if !observe.latency_on && !observe.hotkeys_on {
            return;
        }
        let n = self.publications.get();
        self.publications.set(n.wrapping_add(1));
        if observe.latency_on && n % SIZES_EVERY == 0 {
            *self.sizes.borrow_mut() = item_sizes(shard, now);
        }
        let copy = Published {
            latency: if observe.latency_on { self.latency.snapshot() } else { Default::default() },
            hot: if self.hot_on { self.hot.borrow().top() } else { Vec::new() },
            sizes: self.sizes.borrow().clone(),
        };
        if let Some(Ok(mut p)) = observe.published.get(core).map(Mutex::lock) {
            *p = copy;
        }
    }
}

/// Live items and their bytes by record size: a walk of at most SIZES_MAX_WALK items,
/// scaled to the shard's item count when it has more.
fn item_sizes(shard: &Shard, now: u32) -> Vec<SizeBucket> {
    let mut buckets: Vec<SizeBucket> = SIZE_BUCKETS.iter().map(|&le| SizeBucket { le, ..Default::default() }).collect();
    buckets.push(SizeBucket { le: u64::MAX, ..Default::default() });
    let mut seen = 0usize;
    shard.for_each_live(now, |item| {
        let size = item.size as u64;
        let i = SIZE_BUCKETS.iter().position(|&le| size <= le).unwrap_or(SIZE_BUCKETS.len());
        buckets[i].items += 1;
        buckets[i].bytes += size;
        seen += 1;
        seen < SIZES_MAX_WALK
    });
    let total = shard.stats().curr_items;
    if seen >= SIZES_MAX_WALK && total > seen as u64 {
        for b in &mut buckets {
            b.items = b.items * total / seen as u64;
            b.bytes = b.bytes * total / seen as u64;
        }
    }
    buckets
}
