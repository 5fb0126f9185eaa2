//! What each command does: one file per command family, each the one place its
//! semantics live (which store call, which counters, which outcome).
//!
//! A keyed request ([`crate::protocol::Keyed`]) runs through [`execute`] on the core
//! that owns its key, against that core's shard, and comes back as a typed
//! [`Outcome`] that its protocol encodes. Server-wide commands ([`admin`], [`stats`])
//! run on the core whose connection asked, through the [`Server`] the server layer
//! provides; their per-core parts ([`CoreOp`]) run on every core.
//!
//! | family | file |
//! |---|---|
//! | get, gets, gat, gats, touch | `get.rs` |
//! | set, add, replace, append, prepend, cas | `storage.rs` |
//! | delete | `delete.rs` |
//! | incr, decr | `arith.rs` |
//! | mg, ms, md, ma, me (meta) | `meta.rs` |
//! | flush_all | `flush.rs` |
//! | version, verbosity, quit, shutdown, cache_memlimit, lru_crawler, dumps | `admin.rs`, `dump.rs` |
//! | stats and its sub-commands | `stats.rs`, `stats_slabs.rs`, `settings.rs` |

pub mod admin;
pub mod arith;
pub mod auth;
pub mod counters;
pub mod delete;
pub mod dump;
pub mod flush;
pub mod get;
pub mod meta;
pub mod settings;
pub mod stats;
pub mod stats_slabs;
pub mod storage;

use bytes::BytesMut;

use crate::config::Config;
use crate::protocol::{Form, Keyed, Op, Outcome};
use crate::rules::realtime;
use crate::store::Shard;

pub use counters::{CommandCounters, Counter, ExecutorStats};
pub use settings::Runtime;
pub use stats::ProcessFacts;

/// What a keyed command runs against: the owner core's shard, clock and counters.
pub struct Ctx<'a> {
    pub shard: &'a mut Shard,
    /// The server clock (seconds, memcached's `rel_time_t`) as of this round.
    pub now: u32,
    /// Unix time at which the server clock read 0, for absolute exptimes.
    pub unix_at_zero: i64,
    pub counters: &'a CommandCounters,
    /// false with `-C`: every item shows cas unique 0.
    pub cas_enabled: bool,
}

impl Ctx<'_> {
    /// A client's exptime on the server clock (memcached's `realtime()`).
    #[inline]
    pub fn expiry(&self, exptime: i64) -> u32 {
        realtime(exptime, self.now, self.unix_at_zero)
    }
}

/// Runs one keyed request against the shard that owns its key.
#[inline]
pub fn execute<'s>(ctx: &'s mut Ctx<'_>, request: &Keyed) -> Outcome<'s> {
    let key = request.key;
    match request.op {
        Op::Get { touch: None } => get::get(ctx, key),
        Op::Get { touch: Some(exptime) } => get::get_and_touch(ctx, key, exptime),
        Op::Touch { exptime } => get::touch(ctx, key, exptime),
        Op::Store { mode, flags, exptime, cas_unique } if request.form.reply_cas() => {
            storage::store_with_cas(ctx, mode, key, flags, exptime, request.value, cas_unique)
        }
        Op::Store { mode, flags, exptime, cas_unique } => {
            storage::store(ctx, mode, key, flags, exptime, request.value, cas_unique)
        }
        Op::TooLarge { mode } => storage::too_large(ctx, mode, key),
        Op::Delete => delete::delete(ctx, key),
        Op::Arith { incr, delta } => arith::incr_decr(ctx, key, incr, delta),
        Op::MetaGet { .. } | Op::MetaSet { .. } | Op::MetaDelete { .. } | Op::MetaArith { .. } | Op::MetaDebug => {
            meta::execute(ctx, request)
        }
        Op::TouchFetch { exptime } => get::touch_fetch(ctx, key, exptime),
        Op::DeleteIf { cas } => delete::delete_if(ctx, key, cas),
        Op::Counter { incr, delta, create, cas } => arith::counter(ctx, key, incr, delta, create, cas),
    }
}

/// The per-core part of a server-wide command: run on every core (forwarded to the
/// others like a keyed request), each writing its share of the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreOp {
    /// flush_all now: every item this core holds is gone.
    Flush,
    /// cache_memlimit: this core's share of the new limit, in bytes.
    MemoryLimit { bytes: u64 },
    /// stats reset on this core's counters.
    ResetStats,
    /// `stats conns`: this core lists its connections.
    ListConns,
    /// `lru_crawler metadump`: this core lists its items.
    MetaDump,
    /// `stats cachedump`: this core lists up to `limit` items (0: all) in `max_bytes`.
    CacheDump { limit: u32, max_bytes: u32 },
}

/// What a server-wide command needs of the server around it.
pub trait Server {
    /// Cores (executors), each owning one shard.
    fn cores(&self) -> usize;
    /// Runs `op` on `core` (this one at once, another by forwarding); its reply bytes go
    /// at this point of the output, in request order.
    /// `form` is the request's, for the lines `op` writes.
    fn on_core(&mut self, core: usize, op: CoreOp, form: Form, out: &mut BytesMut);
    /// Runs `op` on every core, in core order.
    fn on_every_core(&mut self, op: CoreOp, form: Form, out: &mut BytesMut) {
        for core in 0..self.cores() {
            self.on_core(core, op, form, out);
        }
    }
    fn config(&self) -> &Config;
    fn runtime(&self) -> &Runtime;
    /// Every executor's counters.
    fn stats(&self) -> &[ExecutorStats];
    /// This executor's counters.
    fn counters(&self) -> &CommandCounters;
    /// The server clock now.
    fn now(&self) -> u32;
    /// Unix time at which the server clock read 0.
    fn unix_at_zero(&self) -> i64;
    /// pid, uptime, rusage and the like, for `stats`.
    fn process(&self) -> ProcessFacts;
    /// Size of one segment of the store (memcached's slab page), for `stats slabs`.
    fn page_size(&self) -> u64;
    /// Stops the server: every executor stops accepting and drains.
    fn shutdown(&self);
    /// Metrics, hot keys and `watch` (crate::observe).
    fn observe(&self) -> &crate::observe::Observe;
}

/// After a request: go on reading, or close the connection (quit, shutdown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
    /// `watch`: the connection stops taking commands and streams these kinds of log
    /// lines (memcached's `LOG_*` bits) until the client leaves.
    Watch(u16),
}
