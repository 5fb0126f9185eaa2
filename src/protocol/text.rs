//! The classic text protocol, parsed as memcached 1.6's `proto_text.c` does it: same
//! tokenizer, same argument counts, same number parsing (C's strtol family), same error
//! for each malformed request, and `noreply` silencing errors where memcached's does.

use super::text_reply::{BAD_DATA_CHUNK, BAD_FORMAT, END, ERROR, INVALID_DELTA, INVALID_EXPTIME, OK};
use super::{
    Form, Keyed, Keys, Limits, Op, Parsed, Request, ServerCmd, StatsKind, MAX_GET_LINE, MAX_LINE_WITHOUT_NEWLINE,
};
use crate::rules::{
    item_size_ok, strtol, strtoul32, strtoull, StoreMode, KEY_MAX_LENGTH, MAX_NUMBER_OF_SLAB_CLASSES,
};

/// memcached's `MAX_TOKENS`: the tokenizer splits at most this many words minus one.
const MAX_TOKENS: usize = 24;

/// Parses the request at the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parsed<'a> {
    let Some(newline) = memchr(b'\n', buf) else {
        return unfinished_line(buf);
    };
    let mut line = &buf[..newline];
    if line.len() > 1 && line[line.len() - 1] == b'\r' {
        line = &line[..line.len() - 1];
    }
    // memcached treats the line as a C string: a NUL ends it.
    if let Some(nul) = memchr(0, line) {
        line = &line[..nul];
    }
    let consumed = newline + 1;
    let tokens = Tokens::new(line);
    command(&tokens, buf, consumed, limits)
}

/// What to do with a buffer that holds no complete line yet.
fn unfinished_line(buf: &[u8]) -> Parsed<'_> {
    if buf.len() <= MAX_LINE_WITHOUT_NEWLINE {
        return Parsed::Incomplete { need: 0 };
    }
    // Only a multi-get may be this long; memcached closes anything else.
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = &buf[spaces..];
    let is_get = rest.starts_with(b"get ") || rest.starts_with(b"gets ");
    if spaces > 100 || !is_get || buf.len() > MAX_GET_LINE {
        Parsed::Close
    } else {
        Parsed::Incomplete { need: 0 }
    }
}

/// The request on a line of `line_len` bytes (its newline included), and what follows
/// it (a data block). Returned straight into the caller's `Parsed`, no wrapper between:
/// a wrapper was one more copy of the whole request (~100 instructions) per parse.
fn command<'a>(t: &Tokens<'a>, buf: &'a [u8], line_len: usize, limits: &Limits) -> Parsed<'a> {
    let now = |request| Parsed::Done { request, consumed: line_len };
    // `n` counts words plus memcached's terminal empty token.
    let n = t.count + 1;
    let name = t.get(0);
    if n < 2 || name.len() < 2 {
        return now(Request::Reply(ERROR));
    }
    // The meta commands (two letters, `m` first) before the classic names, so a meta
    // request is not compared with each of them.
    if let [b'm', second] = name {
        return match second {
            b'n' => now(Request::Reply(b"MN\r\n")),
            _ => super::meta::parse(t, buf, line_len, limits),
        };
    }
    let want = |ok: bool, request: Request<'a>| now(if ok { request } else { Request::Reply(ERROR) });
    let mode = match name {
        b"set" => Some(StoreMode::Set),
        b"add" => Some(StoreMode::Add),
        b"replace" => Some(StoreMode::Replace),
        b"append" => Some(StoreMode::Append),
        b"prepend" => Some(StoreMode::Prepend),
        b"cas" => Some(StoreMode::Cas),
        _ => None,
    };
    if let Some(mode) = mode {
        let ok = if mode == StoreMode::Cas { n == 7 || n == 8 } else { n == 6 || n == 7 };
        if !ok {
            return now(Request::Reply(ERROR));
        }
        return storage(mode, t, buf, line_len, limits);
    }
    match name {
        b"get" | b"bget" => want(n >= 3, get(t, 1, false, None)),
        b"gets" => want(n >= 3, get(t, 1, true, None)),
        b"gat" | b"gats" if n >= 3 => now(gat(t, name == b"gats")),
        b"delete" => want((3..=5).contains(&n), delete(t)),
        b"incr" | b"decr" => want(n == 4 || n == 5, arith(t, name == b"incr")),
        b"touch" => want(n == 4 || n == 5, touch(t)),
        b"flush_all" => want((2..=4).contains(&n), flush_all(t)),
        b"cache_memlimit" => want(n == 3 || n == 4, cache_memlimit(t)),
        b"verbosity" => want(n == 3 || n == 4, verbosity(t)),
        b"stats" => now(stats(t)),
        b"watch" => now(watch(t)),
        b"lru_crawler" => now(lru_crawler(t)),
        b"slabs" => now(slabs(t)),
        b"version" => now(server(ServerCmd::Version)),
        b"quit" => now(server(ServerCmd::Quit)),
        b"refresh_certs" => now(Request::Server { cmd: ServerCmd::RefreshCerts, form: Form::Text { noreply: t.noreply(), cas: false } }),
        b"shutdown" => now(server(match (t.count, t.get(1)) {
            (1, _) => ServerCmd::Shutdown { graceful: false, valid: true },
            (2, b"graceful") => ServerCmd::Shutdown { graceful: true, valid: true },
            _ => ServerCmd::Shutdown { graceful: false, valid: false },
        })),
        _ if t.get(t.count - 1).starts_with(b"HTTP/") => Parsed::Close,
        _ => now(Request::Reply(ERROR)),
    }
}

/// set/add/replace/append/prepend/cas: the line, then a data block of the declared size.
fn storage<'a>(
    mode: StoreMode,
    t: &Tokens<'a>,
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Parsed<'a> {
    let noreply = t.noreply();
    let fail = |reply| Parsed::Done { request: Request::Reply(silenced(noreply, reply)), consumed: line_len };
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return fail(BAD_FORMAT);
    }
    let (Some(flags), Some(exptime), Some(vlen)) =
        (strtoull(t.get(2)), strtol(t.get(3)), strtol(t.get(4)))
    else {
        return fail(BAD_FORMAT);
    };
    let cas_unique = if mode == StoreMode::Cas {
        match strtoull(t.get(5)) {
            Some(cas) => cas,
            None => return fail(BAD_FORMAT),
        }
    } else {
        0
    };
    let vlen = vlen as i32; // memcached keeps it in an int32
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return fail(BAD_FORMAT);
    }
    let vlen = vlen as usize;
    let form = Form::Text { noreply, cas: false };
    if !item_size_ok(key.len(), vlen, limits.item_size_max) {
        let request = Request::Keyed(Keyed { key, value: b"", op: Op::TooLarge { mode }, form });
        return Parsed::Swallow { request, consumed: line_len, swallow: vlen + 2 };
    }
    let need = line_len + vlen + 2;
    if buf.len() < need {
        return Parsed::Incomplete { need };
    }
    let block = &buf[line_len..need];
    let request = if &block[vlen..] == b"\r\n" {
        let op = Op::Store {
            mode,
            flags: flags as u32, // memcached truncates flags to 32 bits
            exptime: exptime as i32 as i64,
            cas_unique,
        };
        Request::Keyed(Keyed { key, value: &block[..vlen], op, form })
    } else {
        Request::Reply(silenced(noreply, BAD_DATA_CHUNK))
    };
    Parsed::Done { request, consumed: need }
}

/// get/gets/gat/gats from the word at `first_key` on. One over-long key fails the whole
/// request: memcached then sends the error alone, not the values found before it.
fn get<'a>(t: &Tokens<'a>, first_key: usize, cas: bool, touch: Option<i64>) -> Request<'a> {
    let keys = Keys::new(t.rest_from(first_key));
    if keys.clone().any(|key| key.len() > KEY_MAX_LENGTH) {
        return Request::Reply(BAD_FORMAT);
    }
    Request::Multi { keys, touch, form: Form::Text { noreply: false, cas } }
}

fn gat<'a>(t: &Tokens<'a>, cas: bool) -> Request<'a> {
    match strtol(t.get(1)) {
        Some(exptime) => get(t, 2, cas, Some(exptime as i32 as i64)),
        None => Request::Reply(INVALID_EXPTIME),
    }
}

fn delete<'a>(t: &Tokens<'a>) -> Request<'a> {
    let noreply = t.noreply();
    if t.count > 2 {
        // `delete <key> 0`, a leftover of the old hold time, is still accepted.
        let hold_is_zero = t.get(2) == b"0";
        let valid = (t.count == 3 && (hold_is_zero || noreply))
            || (t.count == 4 && hold_is_zero && noreply);
        if !valid {
            return Request::Reply(silenced(
                noreply,
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
            ));
        }
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Request::Reply(silenced(noreply, BAD_FORMAT));
    }
    keyed(key, Op::Delete, noreply)
}

fn arith<'a>(t: &Tokens<'a>, incr: bool) -> Request<'a> {
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Request::Reply(silenced(noreply, BAD_FORMAT));
    }
    match strtoull(t.get(2)) {
        Some(delta) => keyed(key, Op::Arith { incr, delta }, noreply),
        None => Request::Reply(silenced(noreply, INVALID_DELTA)),
    }
}

fn touch<'a>(t: &Tokens<'a>) -> Request<'a> {
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Request::Reply(silenced(noreply, BAD_FORMAT));
    }
    match strtol(t.get(2)) {
        Some(exptime) => keyed(key, Op::Touch { exptime: exptime as i32 as i64 }, noreply),
        None => Request::Reply(silenced(noreply, INVALID_EXPTIME)),
    }
}

fn flush_all<'a>(t: &Tokens<'a>) -> Request<'a> {
    let noreply = t.noreply();
    let words_without_delay = if noreply { 2 } else { 1 };
    let delay = if t.count == words_without_delay {
        0
    } else {
        match strtol(t.get(1)) {
            Some(delay) => delay as i32 as i64,
            None => return Request::Reply(silenced(noreply, INVALID_EXPTIME)),
        }
    };
    Request::Server { cmd: ServerCmd::FlushAll { delay }, form: Form::Text { noreply, cas: false } }
}

fn cache_memlimit<'a>(t: &Tokens<'a>) -> Request<'a> {
    let noreply = t.noreply();
    match strtoull(t.get(1)) {
        Some(megabytes) => Request::Server {
            cmd: ServerCmd::CacheMemlimit { megabytes: megabytes as u32 as u64 },
            form: Form::Text { noreply, cas: false },
        },
        None => Request::Reply(silenced(noreply, ERROR)),
    }
}

fn verbosity<'a>(t: &Tokens<'a>) -> Request<'a> {
    let noreply = t.noreply();
    match strtoul32(t.get(1)) {
        Some(level) => Request::Server { cmd: ServerCmd::Verbosity { level }, form: Form::Text { noreply, cas: false } },
        None => Request::Reply(silenced(noreply, BAD_FORMAT)),
    }
}

fn stats<'a>(t: &Tokens<'a>) -> Request<'a> {
    if t.count == 1 {
        return server(ServerCmd::Stats(StatsKind::General));
    }
    let kind = match t.get(1) {
        b"reset" => StatsKind::Reset,
        b"detail" => {
            let usage = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n";
            return Request::Reply(match (t.count, t.get(2)) {
                (c, _) if c < 3 => usage,
                (_, b"on" | b"off") => OK,
                (_, b"dump") => END,
                _ => usage,
            });
        }
        b"settings" => StatsKind::Settings,
        b"items" => StatsKind::Items,
        b"slabs" => StatsKind::Slabs,
        b"sizes" => StatsKind::Sizes,
        b"conns" => StatsKind::Conns,
        b"shards" => StatsKind::Shards,
        b"hotkeys" => StatsKind::HotKeys,
        b"cachedump" => return cachedump(t),
        _ => return Request::Reply(ERROR),
    };
    server(ServerCmd::Stats(kind))
}

/// `watch [fetchers|mutations|evictions|connevents|...]`, as memcached's
/// `process_watch_command` reads it: no word means fetchers; an unknown word is an error
/// (answered after the checks memcached makes first, see `commands::admin`).
fn watch<'a>(t: &Tokens<'a>) -> Request<'a> {
    use super::watch_lines::{FETCHERS, KINDS};
    if t.count == 1 {
        return server(ServerCmd::Watch { kinds: FETCHERS, valid: true });
    }
    let mut kinds = 0;
    for i in 1..t.count {
        match KINDS.iter().find(|(word, _)| *word == t.get(i)) {
            Some((_, kind)) => kinds |= kind,
            None => return server(ServerCmd::Watch { kinds: 0, valid: false }),
        }
    }
    server(ServerCmd::Watch { kinds, valid: true })
}

/// `slabs reassign|automove ...`, checked as memcached's `process_slabs_command` does.
fn slabs<'a>(t: &Tokens<'a>) -> Request<'a> {
    match (t.count, t.get(1)) {
        (4, b"reassign") => match (strtol(t.get(2)), strtol(t.get(3))) {
            (Some(src), Some(dst)) => server(ServerCmd::SlabsReassign { src: src as i32, dst: dst as i32 }),
            _ => Request::Reply(BAD_FORMAT),
        },
        (n, b"automove") if n >= 3 => {
            let noreply = t.noreply();
            let reply = |line| Request::Reply(silenced(noreply, line));
            if t.get(2) == b"ratio" {
                // memcached takes a ratio (a float) and answers OK; we keep none.
                let ratio = std::str::from_utf8(t.get(3)).ok().and_then(|r| r.parse::<f64>().ok());
                return reply(if n >= 4 && ratio.is_some() { OK } else { ERROR });
            }
            match strtoul32(t.get(2)) {
                None => reply(BAD_FORMAT),
                Some(level @ 0..=2) => Request::Server { cmd: ServerCmd::SlabsAutomove { level }, form: Form::Text { noreply, cas: false } },
                Some(_) => reply(ERROR),
            }
        }
        _ => Request::Reply(ERROR),
    }
}

/// `stats cachedump <class> <limit>`, checked as memcached's `process_stat` does.
fn cachedump<'a>(t: &Tokens<'a>) -> Request<'a> {
    if t.count < 4 {
        return Request::Reply(b"CLIENT_ERROR bad command line\r\n");
    }
    let (Some(class), Some(limit)) = (strtoul32(t.get(2)), strtoul32(t.get(3))) else {
        return Request::Reply(b"CLIENT_ERROR bad command line format\r\n");
    };
    if class >= MAX_NUMBER_OF_SLAB_CLASSES {
        return Request::Reply(b"CLIENT_ERROR Illegal slab id\r\n");
    }
    server(ServerCmd::CacheDump { class, limit })
}

/// `lru_crawler ...` as memcached's `process_lru_crawler_command`. We crawl for
/// expired items every second on our own, so `crawl`, `sleep` and `tocrawl` are
/// checked and acknowledged; `metadump` and `enable`/`disable` are real.
fn lru_crawler<'a>(t: &Tokens<'a>) -> Request<'a> {
    const BADCLASS: &[u8] = b"BADCLASS invalid class id\r\n";
    const FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
    match (t.count, t.get(1)) {
        (3, b"crawl") => server(ServerCmd::LruCrawl { valid: classes(t.get(2), false).is_some() }),
        (3, b"metadump") => match classes(t.get(2), true) {
            Some(classes) => server(ServerCmd::MetaDump { classes }),
            None => Request::Reply(BADCLASS),
        },
        (3, b"tocrawl") => Request::Reply(if strtoul32(t.get(2)).is_some() { OK } else { FORMAT }),
        (3, b"sleep") => Request::Reply(match strtoul32(t.get(2)) {
            None => FORMAT,
            Some(us) if us > 1_000_000 => b"CLIENT_ERROR sleep must be one second or less\r\n",
            Some(_) => OK,
        }),
        (2, b"enable") => server(ServerCmd::LruCrawler { enable: true }),
        (2, b"disable") => server(ServerCmd::LruCrawler { enable: false }),
        _ => Request::Reply(ERROR),
    }
}

/// A crawler's class list: `all`, (for metadump) `hash`, or ids `1,2,...` each in
/// 1..=63, as a bit set; None is memcached's BADCLASS.
fn classes(arg: &[u8], dump: bool) -> Option<u64> {
    if arg == b"all" || (dump && arg == b"hash") {
        return Some(!1);
    }
    let mut set = 0u64;
    for id in arg.split(|&b| b == b',') {
        let id = strtoul32(id)?;
        if id == 0 || id >= MAX_NUMBER_OF_SLAB_CLASSES {
            return None;
        }
        set |= 1 << id;
    }
    Some(set)
}

/// A server-wide request whose reply `noreply` cannot silence.
fn server<'a>(cmd: ServerCmd) -> Request<'a> {
    Request::Server { cmd, form: Form::TEXT }
}

/// A keyed request without a data block.
fn keyed(key: &[u8], op: Op, noreply: bool) -> Request<'_> {
    Request::Keyed(Keyed { key, value: b"", op, form: Form::Text { noreply, cas: false } })
}

/// An error line, or nothing when the request said `noreply`.
fn silenced(noreply: bool, reply: &'static [u8]) -> &'static [u8] {
    if noreply {
        b""
    } else {
        reply
    }
}

/// A command line split on spaces as memcached's `tokenize_command` splits it: at most
/// `MAX_TOKENS - 1` words; past that the rest of the line stays unsplit.
pub(super) struct Tokens<'a> {
    line: &'a [u8],
    words: [(u32, u32); MAX_TOKENS - 1],
    pub(super) count: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Self {
        let mut words = [(0u32, 0u32); MAX_TOKENS - 1];
        let mut count = 0;
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b == b' ' {
                if start != i {
                    words[count] = (start as u32, i as u32);
                    count += 1;
                    if count == MAX_TOKENS - 1 {
                        return Tokens { line, words, count };
                    }
                }
                start = i + 1;
            }
        }
        if start != line.len() {
            words[count] = (start as u32, line.len() as u32);
            count += 1;
        }
        Tokens { line, words, count }
    }

    /// Word `i`, or an empty slice past the last word.
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        if i < self.count {
            let (start, end) = self.words[i];
            &self.line[start as usize..end as usize]
        } else {
            b""
        }
    }

    /// The line from word `i` to its end, unsplit.
    fn rest_from(&self, i: usize) -> &'a [u8] {
        if i < self.count {
            &self.line[self.words[i].0 as usize..]
        } else {
            b""
        }
    }

    /// memcached's `set_noreply_maybe`: the last word is `noreply`.
    fn noreply(&self) -> bool {
        self.count > 0 && self.get(self.count - 1) == b"noreply"
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;

/// `lru_crawler` and `stats cachedump`: replies recorded from memcached 1.6.18.
#[cfg(test)]
mod crawler_tests {
    use super::*;

    fn req(line: &[u8]) -> Request<'_> {
        match parse(line, &Limits { item_size_max: 1 << 20 }) {
            Parsed::Done { request, consumed } => {
                assert_eq!(consumed, line.len());
                request
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lru_crawler_like_memcached() {
        let all = server(ServerCmd::MetaDump { classes: !1 });
        assert_eq!(req(b"lru_crawler metadump all\r\n"), all);
        assert_eq!(req(b"lru_crawler metadump hash\r\n"), all);
        assert_eq!(req(b"lru_crawler metadump 1\r\n"), server(ServerCmd::MetaDump { classes: 2 }));
        assert_eq!(req(b"lru_crawler metadump 1,2\r\n"), server(ServerCmd::MetaDump { classes: 6 }));
        assert_eq!(req(b"lru_crawler metadump 63\r\n"), server(ServerCmd::MetaDump { classes: 1 << 63 }));
        assert_eq!(req(b"lru_crawler enable\r\n"), server(ServerCmd::LruCrawler { enable: true }));
        assert_eq!(req(b"lru_crawler disable\r\n"), server(ServerCmd::LruCrawler { enable: false }));
        let bad = Request::Reply(b"BADCLASS invalid class id\r\n");
        for line in [&b"lru_crawler metadump 0\r\n"[..], b"lru_crawler metadump 64\r\n", b"lru_crawler metadump -1\r\n",
            b"lru_crawler metadump 1,x\r\n", b"lru_crawler metadump foo\r\n"] {
            assert_eq!(req(line), bad, "{}", String::from_utf8_lossy(line));
        }
        // crawl: whether the crawler runs is checked first (commands::admin), then the classes.
        for line in [&b"lru_crawler crawl 99\r\n"[..], b"lru_crawler crawl x\r\n", b"lru_crawler crawl hash\r\n"] {
            assert_eq!(req(line), server(ServerCmd::LruCrawl { valid: false }), "{}", String::from_utf8_lossy(line));
        }
        for line in [&b"lru_crawler crawl all\r\n"[..], b"lru_crawler crawl 1,2\r\n"] {
            assert_eq!(req(line), server(ServerCmd::LruCrawl { valid: true }));
        }
        for line in [&b"lru_crawler sleep 100\r\n"[..], b"lru_crawler tocrawl 10\r\n"] {
            assert_eq!(req(line), Request::Reply(OK));
        }
        let format = Request::Reply(b"CLIENT_ERROR bad command line format\r\n");
        assert_eq!(req(b"lru_crawler sleep x\r\n"), format);
        assert_eq!(req(b"lru_crawler tocrawl x\r\n"), format);
        assert_eq!(req(b"lru_crawler sleep 2000000\r\n"), Request::Reply(b"CLIENT_ERROR sleep must be one second or less\r\n"));
        for line in [&b"lru_crawler\r\n"[..], b"lru_crawler foo\r\n", b"lru_crawler metadump\r\n", b"lru_crawler crawl\r\n",
            b"lru_crawler sleep\r\n", b"lru_crawler metadump all noreply\r\n", b"lru_crawler mgdump all\r\n",
            b"lru_crawler metadump all extra\r\n", b"lru_crawler enable x\r\n"] {
            assert_eq!(req(line), Request::Reply(ERROR), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn cachedump_like_memcached() {
        assert_eq!(req(b"stats cachedump 1 0\r\n"), server(ServerCmd::CacheDump { class: 1, limit: 0 }));
        assert_eq!(req(b"stats cachedump 1 0 x\r\n"), server(ServerCmd::CacheDump { class: 1, limit: 0 }));
        assert_eq!(req(b"stats cachedump 0 5\r\n"), server(ServerCmd::CacheDump { class: 0, limit: 5 }));
        let short = Request::Reply(b"CLIENT_ERROR bad command line\r\n");
        assert_eq!(req(b"stats cachedump\r\n"), short);
        assert_eq!(req(b"stats cachedump 1\r\n"), short);
        let format = Request::Reply(b"CLIENT_ERROR bad command line format\r\n");
        for line in [&b"stats cachedump x y\r\n"[..], b"stats cachedump 1 x\r\n", b"stats cachedump -1 0\r\n", b"stats cachedump 1 -1\r\n"] {
            assert_eq!(req(line), format);
        }
        let illegal = Request::Reply(b"CLIENT_ERROR Illegal slab id\r\n");
        assert_eq!(req(b"stats cachedump 64 0\r\n"), illegal);
        assert_eq!(req(b"stats cachedump 100 0\r\n"), illegal);
    }
}
