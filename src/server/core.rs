//! What one executor owns (its shard, its counters, its forwarder) and what the whole
//! process shares (configuration, clock, connection count, shutdown), and the code that
//! runs requests against the local shard.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use poller::Poller;

use super::clock::Clock;
use super::forward::{Batch, Forwarder, OpKind};
use super::stats::ExecutorStats;
use crate::config::Config;
use crate::protocol::{self, reply, Limits, Parsed, Request, StoreMode};
use crate::store::{ArithOutcome, Shard, StoreOutcome};

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

/// The memcached version we answer `version` with: the one whose replies we match.
pub const MEMCACHED_VERSION: &str = "1.6.18";

/// Process-wide state. Touched on accept, close, `stats` and shutdown; never per request.
pub struct Shared {
    pub config: Config,
    pub clock: Clock,
    pub stats: Box<[ExecutorStats]>,
    pub connections: AtomicUsize,
    pub listeners: AtomicUsize,
    pub shutdown: AtomicBool,
    /// Seeds for the key → core hash, the same on every core, random per process so a
    /// client cannot choose keys that all land on one core.
    pub route_seeds: [u64; 4],
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
    /// Read readiness of this executor's client sockets.
    pub poller: Rc<Poller>,
    pub limits: Limits,
    /// A delayed flush_all, due at this time on the server clock.
    pub flush_at: Cell<Option<u32>>,
    /// The clock as of the last tick.
    pub now: Cell<u32>,
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
        self.stats().publish_shard(&self.shard.borrow().stats());
    }

    /// Runs one keyed request (storage, delete, incr/decr, touch) on this shard.
    pub fn run_keyed(&self, request: &Request, out: &mut BytesMut) {
        let now = self.now();
        let c = &self.stats().commands;
        let mut shard = self.shard.borrow_mut();
        let (line, noreply): (&[u8], bool) = match *request {
            Request::Store { mode, key, flags, exptime, value, cas_unique, noreply } => {
                c.cmd_set.incr();
                let exptime = self.shared.clock.realtime(exptime, now);
                let outcome = shard.store(mode, key, flags, exptime, value, cas_unique, now);
                if mode == StoreMode::Cas {
                    match outcome {
                        StoreOutcome::Stored => c.cas_hits.incr(),
                        StoreOutcome::Exists => c.cas_badval.incr(),
                        StoreOutcome::NotFound => c.cas_misses.incr(),
                        _ => {}
                    }
                }
                let line = match outcome {
                    StoreOutcome::Stored => reply::STORED,
                    StoreOutcome::NotStored => reply::NOT_STORED,
                    StoreOutcome::Exists => reply::EXISTS,
                    StoreOutcome::NotFound => reply::NOT_FOUND,
                    // memcached: an append/prepend that would outgrow -I is NOT_STORED.
                    StoreOutcome::TooLarge if matches!(mode, StoreMode::Append | StoreMode::Prepend) => {
                        reply::NOT_STORED
                    }
                    StoreOutcome::TooLarge => reply::TOO_LARGE,
                    StoreOutcome::OutOfMemory => reply::OUT_OF_MEMORY,
                };
                (line, noreply)
            }
            Request::Delete { key, noreply } => {
                let deleted = shard.delete(key, now);
                if deleted { c.delete_hits.incr() } else { c.delete_misses.incr() }
                (if deleted { reply::DELETED } else { reply::NOT_FOUND }, noreply)
            }
            Request::Arith { incr, key, delta, noreply } => {
                let outcome = shard.incr_decr(key, incr, delta, now);
                let (hits, misses) = if incr { (&c.incr_hits, &c.incr_misses) } else { (&c.decr_hits, &c.decr_misses) };
                match outcome {
                    ArithOutcome::Value(n) => {
                        hits.incr();
                        if !noreply {
                            reply::number_line(out, n);
                        }
                        return;
                    }
                    ArithOutcome::NotFound => {
                        misses.incr();
                        (reply::NOT_FOUND, noreply)
                    }
                    ArithOutcome::NonNumeric => (reply::NON_NUMERIC, noreply),
                    ArithOutcome::OutOfMemory => (b"SERVER_ERROR out of memory\r\n", noreply),
                }
            }
            Request::Touch { key, exptime, noreply } => {
                c.cmd_touch.incr();
                let touched = shard.touch(key, self.shared.clock.realtime(exptime, now), now);
                if touched { c.touch_hits.incr() } else { c.touch_misses.incr() }
                (if touched { reply::TOUCHED } else { reply::NOT_FOUND }, noreply)
            }
            _ => return,
        };
        if !noreply {
            out.extend_from_slice(line);
        }
    }

    /// One key of get/gets/gat/gats: its VALUE lines, or nothing on a miss.
    pub fn get_one(&self, key: &[u8], cas: bool, touch: Option<i64>, out: &mut BytesMut) {
        let now = self.now();
        let c = &self.stats().commands;
        c.cmd_get.incr();
        let mut shard = self.shard.borrow_mut();
        let item = match touch {
            Some(exptime) => {
                c.cmd_touch.incr();
                shard.get_and_touch(key, self.shared.clock.realtime(exptime, now), now)
            }
            None => shard.get(key, now),
        };
        match (item, touch) {
            (Some(_), Some(_)) => c.touch_hits.incr(),
            (Some(_), None) => c.get_hits.incr(),
            (None, Some(_)) => c.touch_misses.incr(),
            (None, None) => c.get_misses.incr(),
        }
        if let Some(item) = item {
            let unique = if cas { Some(if self.shared.config.cas_enabled { item.cas } else { 0 }) } else { None };
            reply::value(out, key, item.flags, item.value, unique);
        }
    }

    /// Runs one op of any kind here, whether this core's own connection asked for it
    /// or a peer forwarded it. `bytes` are the op's request bytes.
    pub fn run_op(&self, kind: OpKind, bytes: &[u8], out: &mut BytesMut) {
        match kind {
            OpKind::Raw => {
                if let Parsed::Done { request, .. } = protocol::parse(bytes, &self.limits) {
                    self.run_keyed(&request, out);
                }
            }
            OpKind::GetKey { cas, touch } => self.get_one(bytes, cas, touch, out),
            OpKind::Unlink => {
                let now = self.now();
                self.shard.borrow_mut().delete(bytes, now);
            }
            OpKind::Flush { delay } => {
                let now = self.now();
                if delay > 0 {
                    self.flush_at.set(Some(self.shared.clock.realtime(delay, now)));
                } else {
                    self.flush_at.set(None);
                    self.shard.borrow_mut().flush_all(now);
                }
            }
            OpKind::MemoryLimit { bytes } => self.shard.borrow_mut().set_memory_limit(bytes as usize),
            OpKind::ResetStats => {
                self.stats().reset();
                self.shard.borrow_mut().reset_stats();
            }
            OpKind::ListConns => self.forwarder.list_conns(out, self.now()),
            OpKind::MetaDump => super::dump::metadump(&self.shard.borrow(), &self.shared.clock, self.now(), out),
            OpKind::CacheDump { limit, max_bytes } => {
                let shard = self.shard.borrow();
                super::dump::cachedump(&shard, &self.shared.clock, self.now(), limit, max_bytes as usize, out)
            }
        }
    }

    /// Runs a batch a peer forwarded, replying into `replies`.
    pub fn run_batch(&self, requests: &Batch, replies: &mut Batch) {
        self.tick();
        self.stats().commands.served_for_peers.add(requests.ops.len() as u64);
        self.stats().commands.batches_from_peers.incr();
        for group in requests.ops.chunks(PREFETCH_GROUP) {
            let gets = group.iter().filter(|op| matches!(op.kind, OpKind::GetKey { .. }));
            self.prefetch(gets.map(|op| requests.bytes_of(op)));
            for op in group {
                let bytes = requests.bytes_of(op);
                replies.push(op.conn, op.slot, op.kind, |out| self.run_op(op.kind, bytes, out));
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
    pub fn prefetch_requests(&self, input: &[u8]) -> usize {
        let mut at = 0;
        let mut keys = [&b""[..]; PREFETCH_GROUP];
        let mut n = 0;
        while n < PREFETCH_GROUP {
            let Parsed::Done { request, consumed } = protocol::parse(&input[at..], &self.limits) else {
                break;
            };
            if let Request::Get { keys: ks, .. } = request {
                for key in ks {
                    if n < PREFETCH_GROUP && self.router.owner(key) == self.id {
                        keys[n] = key;
                        n += 1;
                    }
                }
            }
            at += consumed;
        }
        self.prefetch(keys[..n].iter().copied());
        at
    }

    /// Once a second: a delayed flush that is due, and the shard figures for `stats`.
    pub fn housekeeping(&self) {
        let now = self.tick();
        if let Some(at) = self.flush_at.get() {
            if at <= now {
                self.flush_at.set(None);
                self.shard.borrow_mut().flush_all(now);
            }
        }
        self.publish();
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
