//! What one executor owns (its shard, its counters, its forwarder) and what the whole
//! process shares (configuration, runtime settings, clock, connection count, shutdown),
//! and the glue that runs requests against the local shard (their semantics are in
//! `commands`, their reply bytes in `protocol`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;

use super::clock::Clock;
use super::forward::{Batch, Forwarder, Work};
use crate::commands::{self, dump, flush, stats, stats_slabs, CoreOp, Ctx, ExecutorStats, Runtime};
use crate::observe::keyed;
use crate::protocol::watch_lines::{GetStatus, FETCHERS, MUTATIONS};
use crate::config::Config;
use crate::protocol::{self, Form, Keyed, Limits, Op, Parsed, Request};
use crate::store::Shard;

/// Expired items one reclaim slice may drop, and records it may look at.
const RECLAIM_SLICE: usize = 64;
const RECLAIM_SLICE_SCAN: usize = 512;
/// Records a tick (every 100 ms) may look at when little has expired: a pass over a
/// million items takes about 12 s.
const RECLAIM_IDLE_SCAN: usize = 8192;
/// Thread CPU time a tick may take (1% of the core), checked between slices...
const RECLAIM_TIME_PER_TICK: std::time::Duration = std::time::Duration::from_millis(1);
/// ...except that a wave of expiring items gets at least this many full slices (1280
/// items a second). Why both: where memory left idle turns slow (seen on this project's
/// VMs: a record untouched for a few seconds cost ~50 us to read again), one slice can
/// take the whole budget; without a floor a wave of 100k expiring items took minutes to
/// go, and without the budget an idle scan of 8192 cold records stalled every
/// connection of the core for 10-30 ms (an open-loop p99 of 12-16 ms).
const RECLAIM_MIN_BUSY_SLICES: usize = 2;

/// Process-wide state. Touched on accept, close, `stats` and shutdown; never per request.
pub struct Shared {
    pub config: Config,
    /// What commands change while the server runs (memory limit, flush, crawler).
    pub runtime: Runtime,
    pub clock: Clock,
    pub stats: Box<[ExecutorStats]>,
    pub connections: AtomicUsize,
    pub listeners: AtomicUsize,
    pub shutdown: AtomicBool,
    /// Seeds for the key → core hash, the same on every core, random per process so a
    /// client cannot choose keys that all land on one core.
    pub route_seeds: [u64; 4],
    /// `-Z`: the TLS setup every TLS listener's connections use.
    pub tls: Option<Arc<super::tls::Tls>>,
    /// Metrics, hot keys and `watch` (crate::observe).
    pub observe: crate::observe::Observe,
    /// `-e`: the warm restart's state (what was loaded at start, the save at stop).
    pub restart: Option<super::restart::State>,
}

impl Shared {
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// Keys prefetched together before a group of lookups: enough to overlap a dozen
/// cache misses, few enough that the first lines are still cached when used.
pub const PREFETCH_GROUP: usize = 16;

/// Which core owns a key.
pub struct Router {
    cores: usize,
    hasher: ahash::RandomState,
}

impl Router {
    pub fn new(cores: usize, seeds: [u64; 4]) -> Router {
        Router { cores, hasher: ahash::RandomState::with_seeds(seeds[0], seeds[1], seeds[2], seeds[3]) }
    }

    #[inline]
    pub fn owner(&self, key: &[u8]) -> usize {
        if self.cores == 1 {
            return 0;
        }
        // Multiply-shift: an even spread without a division.
        ((self.hasher.hash_one(key) as u128 * self.cores as u128) >> 64) as usize
    }
}

/// One executor: its shard and what its connections share.
pub struct Core {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub shard: RefCell<Shard>,
    pub router: Router,
    pub forwarder: Rc<Forwarder>,
    pub limits: Limits,
    /// The delayed flush_all this core applied last (its due time).
    pub flush_applied: Cell<u32>,
    /// The clock as of the last tick.
    pub now: Cell<u32>,
    /// This core's latency histograms and hot keys (crate::observe).
    pub observe: crate::observe::Local,
}

impl Core {
    pub fn stats(&self) -> &ExecutorStats {
        &self.shared.stats[self.id]
    }

    /// The server clock as of the last [`Core::tick`]: read once per round of requests,
    /// not once per request (memcached too keeps a clock that ticks once a second).
    pub fn now(&self) -> u32 {
        self.now.get()
    }

    /// Reads the clock; called at the start of every round of requests.
    pub fn tick(&self) -> u32 {
        let now = self.shared.clock.now();
        self.now.set(now);
        now
    }

    /// Publishes the shard's figures for `stats` on any core.
    pub fn publish(&self) {
        let shard = self.shard.borrow();
        self.stats().publish_shard(&shard.stats());
        self.stats().publish_classes(&shard, false);
    }

    /// Runs one keyed request on this core's shard (this core owns its key) and writes
    /// its reply: the command's semantics in `commands`, the bytes in `protocol`.
    /// (For callers without a client socket: `watch` lines show `cfd=-1`.)
    #[inline]
    #[allow(dead_code)]
    pub fn execute(&self, request: &Keyed, out: &mut BytesMut) {
        self.execute_for(request, -1, out)
    }

    /// [`Core::execute`] for the client on socket `cfd` (named in `watch` lines).
    #[inline]
    pub fn execute_for(&self, request: &Keyed, cfd: i32, out: &mut BytesMut) {
        self.observe.key(request.key);
        let watch = &self.shared.observe.watch;
        if watch.wants(FETCHERS | MUTATIONS) {
            return self.execute_watched(request, cfd, out);
        }
        let mut shard = self.shard.borrow_mut();
        let mut ctx = self.ctx(&mut shard);
        let outcome = commands::execute(&mut ctx, request);
        protocol::encode(request, &outcome, out);
    }

    /// What a command runs against on this core: its shard, clock and counters.
    fn ctx<'a>(&'a self, shard: &'a mut Shard) -> Ctx<'a> {
        Ctx {
            shard,
            now: self.now(),
            unix_at_zero: self.shared.clock.unix_at_zero(),
            counters: &self.stats().commands,
            cas_enabled: self.shared.config.cas_enabled,
        }
    }

    /// [`Core::execute_for`] while someone watches: the request's `watch` lines too.
    #[cold]
    fn execute_watched(&self, request: &Keyed, cfd: i32, out: &mut BytesMut) {
        let mut shard = self.shard.borrow_mut();
        let before = shard.peek_item(request.key, self.now());
        let gone_before = shard.stats();
        let mut ctx = self.ctx(&mut shard);
        let outcome = commands::execute(&mut ctx, request);
        protocol::encode(request, &outcome, out);
        let done = keyed::Done::of(&outcome);
        // memcached tells a flushed or expired item from a missing one.
        let gone = shard.stats();
        let missed = if gone.get_flushed > gone_before.get_flushed {
            GetStatus::Flushed
        } else if gone.get_expired > gone_before.get_expired {
            GetStatus::Expired
        } else {
            GetStatus::NotFound
        };
        // A flushed item is still in the store until reclaimed (flush_all is lazy): the
        // lookup that met it is a miss, as it is for memcached.
        let before = if missed == GetStatus::NotFound { before } else { None };
        let classes = stats_slabs::size_classes(&self.shared.config);
        let context = keyed::Context {
            cfd,
            now: self.now(),
            unix_at_zero: self.shared.clock.unix_at_zero(),
            cas_enabled: self.shared.config.cas_enabled,
            classes: &classes,
        };
        keyed::lines(&self.shared.observe.watch, &context, request, before, missed, done);
    }

    /// Runs a server-wide command's part on this core.
    pub fn run_core_op(&self, op: CoreOp, form: Form, out: &mut BytesMut) {
        let now = self.now();
        match op {
            CoreOp::Flush => flush::on_shard(&mut self.shard.borrow_mut(), now, self.shared.config.cas_enabled),
            CoreOp::MemoryLimit { bytes } => self.shard.borrow_mut().set_memory_limit(bytes as usize),
            CoreOp::ResetStats => stats::reset(self.stats(), &mut self.shard.borrow_mut()),
            CoreOp::ListConns => self.forwarder.list_conns(form, out, now),
            CoreOp::MetaDump => dump::metadump(&self.shard.borrow(), self.shared.clock.unix_now(), now, out),
            CoreOp::CacheDump { limit, max_bytes } => {
                let shard = self.shard.borrow();
                dump::cachedump(&shard, self.shared.clock.unix_now(), now, limit, max_bytes as usize, out)
            }
        }
    }

    /// Runs forwarded work here: a keyed request or a server-wide command's part.
    pub fn run_work(&self, work: Work, bytes: &[u8], out: &mut BytesMut) {
        match work {
            Work::Keyed { op, form, key_len, fd } => self.execute_for(&Work::keyed(op, form, key_len, bytes), fd, out),
            Work::Core { op, form } => self.run_core_op(op, form, out),
        }
    }

    /// Runs a batch a peer forwarded, replying into `replies`.
    pub fn run_batch(&self, requests: &Batch, replies: &mut Batch) {
        self.tick();
        self.stats().commands.served_for_peers.add(requests.ops.len() as u64);
        self.stats().commands.batches_from_peers.incr();
        for group in requests.ops.chunks(PREFETCH_GROUP) {
            let gets = group.iter().filter_map(|op| match op.kind {
                Work::Keyed { op: Op::Get { .. } | Op::MetaGet { .. }, key_len, .. } => Some(&requests.bytes_of(op)[..key_len as usize]),
                _ => None,
            });
            self.prefetch(gets);
            for op in group {
                let bytes = requests.bytes_of(op);
                replies.push(op.conn, op.slot, op.kind, |out| self.run_work(op.kind, bytes, out));
            }
        }
        self.publish();
    }

    /// Starts loading what looking up these keys (at most `PREFETCH_GROUP`) will touch:
    /// all their index slots, then all their records. Run before a group of lookups,
    /// it overlaps their cache misses (see `Shard::prefetch_slot`).
    pub fn prefetch<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        let shard = self.shard.borrow();
        let mut hashes = [0u64; PREFETCH_GROUP];
        let mut n = 0;
        for key in keys.take(PREFETCH_GROUP) {
            hashes[n] = shard.prefetch_slot(key);
            n += 1;
        }
        if n > 1 {
            for &h in &hashes[..n] {
                shard.prefetch_record(h);
            }
        }
    }

    /// Starts loading the index slot of `key` if this core owns it; its hash then.
    pub fn prefetch_local_slot(&self, key: &[u8]) -> Option<u64> {
        (self.router.owner(key) == self.id).then(|| self.shard.borrow().prefetch_slot(key))
    }

    /// Starts loading the record(s) a lookup of `hash` will read.
    pub fn prefetch_record(&self, hash: u64) {
        self.shard.borrow().prefetch_record(hash);
    }

    /// Prefetches the keys of the gets this core owns among the requests at the start
    /// of `input` (complete ones only, at most `PREFETCH_GROUP` keys). Returns how many
    /// bytes of `input` that covered.
    pub fn prefetch_requests<'a>(&self, input: &'a [u8]) -> usize {
        let mut at = 0;
        let mut keys: [&'a [u8]; PREFETCH_GROUP] = [&b""[..]; PREFETCH_GROUP];
        let mut n = 0;
        while n < PREFETCH_GROUP {
            let Parsed::Done { request, consumed } = protocol::parse(&input[at..], &self.limits) else {
                break;
            };
            let mut note = |key: &'a [u8]| {
                if n < PREFETCH_GROUP && self.router.owner(key) == self.id {
                    keys[n] = key;
                    n += 1;
                }
            };
            match request {
                Request::Multi { keys: ks, .. } => ks.for_each(&mut note),
                Request::Keyed(Keyed { key, op: Op::Get { .. } | Op::MetaGet { .. }, .. }) => note(key),
                _ => {}
            }
            at += consumed;
        }
        self.prefetch(keys[..n].iter().copied());
        at
    }

    /// Once a second: a delayed flush that is due, and the shard figures for `stats`.
    pub fn housekeeping(&self) {
        let now = self.tick();
        let cas = self.shared.config.cas_enabled;
        flush::apply_due(&mut self.shard.borrow_mut(), &self.shared.runtime, &self.flush_applied, now, cas);
        self.publish();
        self.stats().publish_classes(&self.shard.borrow(), true);
        self.observe.publish(&self.shared.observe, self.id, &self.shard.borrow(), now);
    }

    /// Background reclaim of expired items, in small slices. A single long scan once a
    /// second (as before) stalled every connection of the core for 10-20 ms: a p99 of
    /// 10 ms in the open-loop benchmark at any load.
    pub fn reclaim_tick(&self) {
        let now = self.tick();
        let started = super::clock::thread_cpu_time();
        let mut shard = self.shard.borrow_mut();
        let mut slices = 0;
        loop {
            let productive = shard.reclaim_slice(now, RECLAIM_SLICE, RECLAIM_SLICE_SCAN) == RECLAIM_SLICE;
            slices += 1;
            let over_time = super::clock::thread_cpu_time().saturating_sub(started) >= RECLAIM_TIME_PER_TICK;
            let done = if productive {
                over_time && slices >= RECLAIM_MIN_BUSY_SLICES
            } else {
                over_time || slices * RECLAIM_SLICE_SCAN >= RECLAIM_IDLE_SCAN
            };
            if done {
                break;
            }
        }
    }
}
