//! memcached's text protocol: parsing requests and writing replies.
//!
//! Pure functions over bytes, no I/O, so the parser can be fuzzed and unit-tested
//! against `protocol.txt` and real memcached 1.6. Requests borrow from the read buffer:
//! parsing allocates nothing.

mod keys;
pub mod reply;
mod text;

pub use keys::Keys;
pub use text::parse;

/// Longest key memcached accepts (`KEY_MAX_LENGTH`).
pub const KEY_MAX_LENGTH: usize = 250;

/// Relative expiry times up to this many seconds (30 days) are offsets from now; larger
/// ones are absolute unix times (`REALTIME_MAXDELTA`).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// memcached closes a connection whose unfinished line grows past this without a
/// newline, unless the line is a `get`/`gets` (multi-gets may be long).
pub const MAX_LINE_WITHOUT_NEWLINE: usize = 2048;

/// Longest `get`/`gets` line we buffer before closing the connection (memcached grows
/// its buffer without a bound; we keep one per connection).
pub const MAX_GET_LINE: usize = 4 * 1024 * 1024;

/// What the parser needs to know about the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `-I`: the largest item, as memcached sizes it (header + key + value).
    pub item_size_max: usize,
}

/// The five storage commands and `cas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: class ids are 1 ..= 63.
pub const MAX_NUMBER_OF_SLAB_CLASSES: u32 = 64;

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

/// One client request, borrowing keys and values from the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `get`/`gets`/`bget`, and `gat`/`gats` when `touch` holds the new exptime.
    Get { keys: Keys<'a>, cas: bool, touch: Option<i64> },
    /// set add replace append prepend cas. `value` excludes the trailing `\r\n`.
    Store {
        mode: StoreMode,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        value: &'a [u8],
        cas_unique: u64,
        noreply: bool,
    },
    /// A storage command whose value is larger than `-I`: its data block is swallowed;
    /// memcached also unlinks the key when the command was `set`.
    TooLarge { mode: StoreMode, key: &'a [u8], noreply: bool },
    Delete { key: &'a [u8], noreply: bool },
    Arith { incr: bool, key: &'a [u8], delta: u64, noreply: bool },
    Touch { key: &'a [u8], exptime: i64, noreply: bool },
    FlushAll { delay: i64, noreply: bool },
    CacheMemlimit { megabytes: u64, noreply: bool },
    Stats(StatsKind),
    Version,
    Verbosity { noreply: bool },
    Quit,
    /// `shutdown [graceful]`; refused unless `-A`. `valid` is false for any other
    /// argument, an error only when shutdown is enabled (memcached's order of checks).
    Shutdown { graceful: bool, valid: bool },
    /// `lru_crawler metadump <all|hash|id[,id...]>`: `classes` has bit N set for each
    /// slab class id N asked for (1..=63).
    MetaDump { classes: u64 },
    /// `lru_crawler enable|disable`.
    LruCrawler { enable: bool },
    /// `stats cachedump <class> <limit>` (limit 0: no limit).
    CacheDump { class: u32, limit: u32 },
    /// A request memcached answers with a fixed line (errors, `mn`, ...). Empty when
    /// `noreply` suppresses it, as memcached's `out_string` does.
    Reply(&'static [u8]),
}

/// The outcome of parsing the front of a read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No complete request yet. `need`: total bytes the request needs when known (a
    /// storage command waiting for its data block), so the buffer can grow once.
    Incomplete { need: usize },
    /// A request that used `consumed` bytes of the buffer.
    Done { request: Request<'a>, consumed: usize },
    /// A request that used `consumed` bytes, after which the next `swallow` bytes (a
    /// data block we refuse) are to be discarded as they arrive.
    Swallow { request: Request<'a>, consumed: usize, swallow: usize },
    /// memcached closes the connection here (an over-long line, an HTTP request).
    Close,
}
