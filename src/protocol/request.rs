//! The protocol-neutral request and outcome: what every wire protocol parses into and
//! encodes from. A command's semantics (`crate::commands`) see only these types, so a
//! new protocol is a parser and an encoder, and a new command one file plus a variant.

use crate::rules::StoreMode;

use super::Keys;

/// How a request's reply is written: which protocol, and what the client asked to get
/// back. Copied with the request wherever it goes (to the key's owner core too), so the
/// owner can encode the reply without the origin's parser state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The classic text protocol. `noreply` silences the reply (memcached's
    /// `set_noreply_maybe`); `cas` asks a get for cas uniques (`gets`, `gats`).
    Text { noreply: bool, cas: bool },
}

impl Form {
    /// Text without noreply or cas: the form of most text replies.
    pub const TEXT: Form = Form::Text { noreply: false, cas: false };
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
    /// `refresh_certs [noreply]`: reload the TLS certificate and key.
    RefreshCerts,
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
}
