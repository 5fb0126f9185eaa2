//! The protocol-neutral request and outcome: what every wire protocol parses into and
//! encodes from. A command's semantics (`crate::commands`) see only these types, so a
//! new protocol is a parser and an encoder, and a new command one file plus a variant.

use crate::rules::StoreMode;

use super::meta::{MetaDebug, MetaForm, MetaHit, MetaNumber, MetaStatus};
use super::Keys;

/// How a request's reply is written: which protocol, and what the client asked to get
/// back. Copied with the request wherever it goes (to the key's owner core too), so the
/// owner can encode the reply without the origin's parser state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The classic text protocol. `noreply` silences the reply (memcached's
    /// `set_noreply_maybe`); `cas` asks a get for cas uniques (`gets`, `gats`).
    Text { noreply: bool, cas: bool },
    /// A meta command (`mg ms md ma me`): the flags the reply echoes, in request order,
    /// the opaque, quiet mode, base64 key (see `meta.rs`).
    Meta(MetaForm),
    /// memcached's binary protocol: the request's `opcode` (echoed, and deciding what
    /// the reply holds: the key for GetK/GATK, no value for Touch) and `opaque`
    /// (echoed); `quiet` for the Q opcodes, whose successes (and get misses) send nothing.
    Binary { opcode: u8, opaque: u32, quiet: bool },
}

impl Form {
    /// Text without noreply or cas: the form of most text replies.
    pub const TEXT: Form = Form::Text { noreply: false, cas: false };

    /// Whether a successful store's reply carries the item's new cas unique (binary
    /// replies do, in their header), so the command must look it up.
    pub fn reply_cas(&self) -> bool {
        matches!(self, Form::Binary { .. })
    }
}

/// What a keyed request does. Run by the core that owns its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// get/gets, or gat/gats when `touch` holds the client's new exptime.
    Get { touch: Option<i64> },
    /// set add replace append prepend cas; the data block is the request's `value`.
    Store { mode: StoreMode, flags: u32, exptime: i64, cas_unique: u64 },
    /// A storage command whose value is larger than `-I` (its data block is swallowed,
    /// not buffered). memcached also unlinks the key when the command was `set`, so no
    /// stale value outlives a failed overwrite.
    TooLarge { mode: StoreMode },
    Delete,
    /// incr (`incr` true) or decr.
    Arith { incr: bool, delta: u64 },
    Touch { exptime: i64 },
    /// `mg`: client exptimes of `T` (new TTL on a hit), `N` (vivify a miss with this
    /// TTL), `R` (win the recache token below this TTL); `bump` false for `u`.
    MetaGet { touch: Option<i32>, vivify: Option<i32>, recache: Option<i32>, bump: bool },
    /// `ms`: `mode` after memcached's promotion of set/replace with `C` to cas;
    /// `compare` 0: none; `stale` (`I`) writes a value older than the item's CAS as stale.
    MetaSet { mode: StoreMode, flags: u32, exptime: i32, compare: u64, stale: bool },
    /// `md`: `stale` (`I`) marks stale instead of deleting, with `touch` (`T`) its new TTL.
    MetaDelete { compare: Option<u64>, stale: bool, touch: Option<i32> },
    /// `ma`: `compare` 0: none; `vivify` (`N`) creates a miss with value `initial` (`J`).
    MetaArith { incr: bool, delta: u64, compare: u64, vivify: Option<i32>, initial: u64, touch: Option<i32> },
    /// `me`: memcached's debug line about an item.
    MetaDebug,
    /// Binary Touch/GAT: a new expiry and the item back, counted as a touch only
    /// (`cmd_touch`, `touch_hits`/`touch_misses`), as memcached's binary protocol counts it.
    TouchFetch { exptime: i64 },
    /// Delete only if the item's cas unique is `cas` (0: any), binary Delete.
    DeleteIf { cas: u64 },
    /// Binary Increment/Decrement: `create` (initial value, exptime) makes a missing
    /// item (None: expiry 0xffffffff, a miss is NotFound); `cas` non-zero must match.
    Counter { incr: bool, delta: u64, create: Option<(u64, i64)>, cas: u64 },
}

/// One key's request, borrowing key and value from the read buffer (or, forwarded,
/// from the batch that carried it to the owner core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyed<'a> {
    pub key: &'a [u8],
    /// The data block of a storage command; empty for the others.
    pub value: &'a [u8],
    pub op: Op,
    pub form: Form,
}

/// `stats` and its sub-commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsKind {
    General,
    Settings,
    Items,
    Slabs,
    Sizes,
    Conns,
    /// `stats shards`: ours, per-executor items, bytes, connections, forwarding.
    Shards,
    /// `stats hotkeys`: ours, each core's most requested keys (`-o hotkeys`/`metrics`).
    HotKeys,
    Reset,
}

/// A request about the whole server rather than one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCmd {
    /// flush_all, now (`delay` <= 0) or at the client's exptime `delay`.
    FlushAll { delay: i64 },
    CacheMemlimit { megabytes: u64 },
    Stats(StatsKind),
    Version,
    /// `verbosity <level>`: memcached's log level (capped at 2), shown by `stats settings`.
    Verbosity { level: u32 },
    Quit,
    /// `shutdown [graceful]`; refused unless `-A`. `valid` is false for any other
    /// argument, an error only when shutdown is enabled (memcached's order of checks).
    Shutdown { graceful: bool, valid: bool },
    /// `lru_crawler metadump <all|hash|id[,id...]>`: `classes` has bit N set for each
    /// slab class id N asked for (1..=63).
    MetaDump { classes: u64 },
    /// `lru_crawler enable|disable`.
    LruCrawler { enable: bool },
    /// `lru_crawler crawl <classes>`: we reclaim expired items continuously, so a
    /// crawl is acknowledged; `valid` is false for a bad class list (BADCLASS).
    LruCrawl { valid: bool },
    /// `stats cachedump <class> <limit>` (limit 0: no limit).
    CacheDump { class: u32, limit: u32 },
    /// `slabs reassign <src> <dst>`: accepted as memcached accepts it; there are no
    /// slab pages to move here.
    SlabsReassign { src: i32, dst: i32 },
    /// `slabs automove <0|1|2>`.
    SlabsAutomove { level: u32 },
    /// `watch [kinds...]`: memcached's log stream; `kinds` are its `LOG_*` bits
    /// (fetchers without arguments), `valid` false for an unknown word (ERROR).
    Watch { kinds: u16, valid: bool },
    /// Binary Noop: an empty success reply (it also ends a batch of quiet requests).
    Noop,
}

/// One client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Keyed(Keyed<'a>),
    /// A get of any number of keys (text `get a b c`): one keyed get per key, in order,
    /// then the protocol's end marker.
    Multi { keys: Keys<'a>, touch: Option<i64>, form: Form },
    Server { cmd: ServerCmd, form: Form },
    /// Text-protocol bytes the parser decided on its own (errors, `mn`). Empty when
    /// `noreply` silences them, as memcached's `out_string` does.
    Reply(&'static [u8]),
    /// A reply the parser decided on its own in a protocol whose replies need the
    /// request's framing (binary errors: opcode and opaque echoed); `close`: memcached
    /// closes the connection after sending it.
    Refused { form: Form, answer: super::Answer, close: bool },
    /// An authentication step (binary SASL, or `-Y`'s text handshake): run by the
    /// connection against its own authentication state.
    Auth { form: Form, step: AuthStep<'a> },
}

/// One step of authentication, as the protocol read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStep<'a> {
    /// SASL List Mechanisms.
    ListMechs,
    /// SASL Auth (`start`) or Step: the mechanism and the client's data.
    Sasl { start: bool, mech: &'a [u8], data: &'a [u8] },
    /// `-Y`: the `set` handshake's payload, `user` and `pass` tokens (None: fewer
    /// than two tokens).
    Ascii { credentials: Option<(&'a [u8], &'a [u8])> },
}

/// An item as a command returns it to be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    pub flags: u32,
    /// The cas unique to show: 0 when `-C` turned cas off.
    pub cas: u64,
    pub value: &'a [u8],
}

/// What running a keyed request came to, one to one with memcached's replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Hit(Item<'a>),
    Miss,
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    /// incr/decr's new value.
    Number(u64),
    NonNumeric,
    /// Larger than `-I`.
    TooLarge,
    /// `-M` and no room for a new item.
    StoreNoMemory,
    /// `-M` and no room for an incr/decr that grew the value.
    ArithNoMemory,
    /// `mg` on a hit or an item it created.
    MetaHit(MetaHit<'a>),
    /// `ms`, `md`, and `ma`'s misses: a status word, and (ms) the new CAS or 0.
    MetaStatus { status: MetaStatus, cas: u64 },
    /// `ma`'s new value.
    MetaNumber(MetaNumber),
    /// `me` on a hit.
    MetaDebug(MetaDebug),
    /// Stored, and the item's new cas unique (when the form's reply carries it).
    StoredCas(u64),
    /// A counter's new value and the item's new cas unique (binary Increment/Decrement).
    NumberCas(u64, u64),
}
