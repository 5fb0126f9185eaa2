//! memcached 1.6.18's meta commands (`mg ms md ma me`; `mn` is a fixed reply in
//! `text.rs`), parsed as its `proto_text.c` parses them into the protocol-neutral
//! request: the same token limits, the same flag pre-parse (first character of each
//! token, duplicates refused, numbers read by C's strto* rules), the same error line
//! for each mistake and the same order of checks. The reply is written by
//! `meta_reply.rs` from what the request asked for, carried in [`MetaForm`].
//!
//! Where memcached 1.6.18 differs from the newer `protocol.txt`, 1.6.18 wins: no `E`,
//! `S` or `x` flags, no lowercase modes, `mg` ignores `C`, `HD` of an `mg` hit is not
//! quiet. README lists the differences.

use super::base64;
use super::text::Tokens;
use super::text_reply::{BAD_DATA_CHUNK, BAD_FORMAT, ERROR};
use super::{Form, Keyed, Limits, Op, Parsed, Request};
use crate::rules::{item_size_ok, strtol, strtoul32, strtoull, StoreMode, KEY_MAX_LENGTH};

/// memcached's `MFLAG_MAX_OPT_LENGTH`: at most this many tokens (command, key, flags,
/// and the tokenizer's terminal one).
const MAX_OPT_TOKENS: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`: the opaque token, its `O` included.
pub const MAX_OPAQUE: usize = 32;
/// Most flags a meta request can carry (20 tokens less command, key and terminal).
pub const MAX_FLAGS: usize = MAX_OPT_TOKENS - 3;

const INVALID_FLAG: &[u8] = b"CLIENT_ERROR invalid flag\r\n";
const DUPLICATE_FLAG: &[u8] = b"CLIENT_ERROR duplicate flag\r\n";
const BAD_TOKEN: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
const DECODING_KEY: &[u8] = b"CLIENT_ERROR error decoding key\r\n";
const OPAQUE_TOO_LONG: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";
const INVALID_OR_DUPLICATE: &[u8] = b"CLIENT_ERROR invalid or duplicate flag\r\n";
const FLAGS_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags too long\r\n";

/// The flags whose place in a request matters: the return flags (written in request
/// order) and `T`, `N`, `R` (their places decide what `t` shows and whether `R` sees
/// `T`'s TTL). The other flags change no reply byte wherever they stand.
const ORDERED: &[u8; 11] = b"stcflhOkTNR";

/// Each character's place in [`ORDERED`] plus one (0: not there).
const ORDER_OF: [u8; 128] = {
    let mut of = [0u8; 128];
    let mut i = 0;
    while i < ORDERED.len() {
        of[ORDERED[i] as usize] = i as u8 + 1;
        i += 1;
    }
    of
};

/// What a meta reply needs of its request: the flags whose place matters
/// ([`ORDERED`]) in request order, the opaque token, quiet mode, base64 key. Inline
/// and `Copy`, so it travels with a forwarded request like the rest of the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaForm {
    /// The ordered flags, four bits each from the lowest: their [`ORDER_OF`] numbers,
    /// 0 after the last. Each appears at most once (memcached refuses a repeated flag),
    /// so 44 bits hold them all. One integer built in a register, where a byte array
    /// filled flag by flag made every later copy of the form wait for those stores.
    order: u64,
    opaque: [u8; MAX_OPAQUE],
    /// Length of the opaque token (with its `O`); 0: none.
    opaque_len: u8,
    /// `q`: the nominal reply (memcached's noreply for meta) is left out.
    pub quiet: bool,
    /// `b`: the key was sent base64-encoded; a returned `k` is encoded again.
    pub base64: bool,
    /// `v`: the value is returned (`VA`).
    pub value: bool,
    /// The request's key is still the base64 text the client sent: [`resolve_key`]
    /// decodes it before the request is routed.
    pub encoded_key: bool,
}

impl Default for MetaForm {
    fn default() -> MetaForm {
        MetaForm::new()
    }
}

impl MetaForm {
    fn new() -> MetaForm {
        MetaForm {
            order: 0,
            opaque: [0; MAX_OPAQUE],
            opaque_len: 0,
            quiet: false,
            base64: false,
            value: false,
            encoded_key: false,
        }
    }

    /// The first character of each flag whose place matters ([`ORDERED`]), in
    /// request order.
    pub fn flags(&self) -> impl Iterator<Item = u8> + Clone {
        let mut order = self.order;
        std::iter::from_fn(move || {
            let n = (order & 15) as usize;
            order >>= 4;
            (n != 0).then(|| ORDERED[n - 1])
        })
    }

    /// The opaque token as sent (its `O` included), if any.
    pub fn opaque(&self) -> Option<&[u8]> {
        (self.opaque_len > 0).then(|| &self.opaque[..self.opaque_len as usize])
    }

    fn position(&self, flag: u8) -> Option<usize> {
        self.flags().position(|f| f == flag)
    }

    /// The exptime an item has at flag `pos` of the request (memcached applies `T` and,
    /// on an item the request created, `N` in request order as it writes the reply).
    pub fn exptime_at(&self, pos: usize, ttl: &MetaTtl) -> u32 {
        let mut exptime = ttl.before;
        for f in self.flags().take(pos) {
            match f {
                b'T' => exptime = ttl.touch,
                b'N' if ttl.created => exptime = ttl.vivify,
                _ => {}
            }
        }
        exptime
    }

    /// Whether `T` comes before `R` (`R` then compares the new exptime).
    pub fn touch_before_recache(&self) -> bool {
        matches!((self.position(b'T'), self.position(b'R')), (Some(t), Some(r)) if t < r)
    }
}

/// The exptimes (server clock) a meta reply's `t` flags may show: the item's own
/// before the request, after `T`, and after `N` on an item the request created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaTtl {
    pub before: u32,
    pub touch: u32,
    pub vivify: u32,
    pub created: bool,
    pub now: u32,
}

/// `mg` on a hit (or an item it created): what its return flags show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaHit<'a> {
    pub value: &'a [u8],
    pub flags: u32,
    pub cas: u64,
    pub ttl: MetaTtl,
    /// Seconds since last access (`l`).
    pub la: u32,
    /// Fetched before this request (`h`).
    pub fetched: bool,
    /// The item was stored with a base64 key: `k` prints it encoded.
    pub key_binary: bool,
    /// `Z`: a win token had already been sent.
    pub token_sent: bool,
    /// `X`: the item is stale.
    pub stale: bool,
    /// `W`: this client won the right to recache.
    pub won: bool,
}

/// `ma` on a hit or a vivified miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaNumber {
    pub value: u64,
    pub cas: u64,
    pub ttl: MetaTtl,
}

/// `me` on a hit: memcached's debug line fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaDebug {
    /// `exp=`: -1 without expiry, else now minus the expiry time (negative: still live).
    pub exp: i64,
    pub la: u32,
    pub cas: u64,
    pub fetched: bool,
    pub class: u32,
    pub size: u64,
    pub key_binary: bool,
}

/// The status word of `ms`, `md` and `ma`'s misses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaStatus {
    /// HD: done.
    Done,
    /// NS: not stored.
    NotStored,
    /// EX: the compare CAS did not match.
    Exists,
    /// NF: not found.
    NotFound,
}

/// Which meta command; the line's second character.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Get,
    Set,
    Delete,
    Arith,
}

/// What the flag pre-parse (memcached's `_meta_flag_preparse`) found.
struct Flags {
    form: MetaForm,
    touch: Option<i32>,
    vivify: Option<i32>,
    recache: Option<i32>,
    no_update: bool,
    client_flags: u32,
    compare: Option<u64>,
    mode: Option<u8>,
    initial: u64,
    delta: Option<u64>,
    stale: bool,
}

/// Parses a meta command (`name` is two bytes starting with `m`, not `mn`).
pub(super) fn parse<'a>(t: &Tokens<'a>, buf: &'a [u8], line_len: usize, limits: &Limits) -> Parsed<'a> {
    let done = |request| Parsed::Done { request, consumed: line_len };
    let reply = |line: &'static [u8]| done(Request::Reply(line));
    let cmd = match t.get(0)[1] {
        b'g' => Cmd::Get,
        b's' => Cmd::Set,
        b'd' => Cmd::Delete,
        b'a' => Cmd::Arith,
        b'e' => return done(debug(t)),
        _ => return reply(ERROR),
    };
    // `n` counts words plus memcached's terminal empty token.
    let n = t.count + 1;
    if n < 3 {
        return reply(ERROR);
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH || (cmd == Cmd::Set && n == 3) {
        return reply(BAD_FORMAT);
    }
    if n > MAX_OPT_TOKENS {
        return reply(if cmd == Cmd::Get { b"CLIENT_ERROR options flags are too long\r\n" } else { FLAGS_TOO_LONG });
    }
    if cmd == Cmd::Set {
        return set(t, key, buf, line_len, limits);
    }
    let flags = match preparse(t, 2) {
        Ok(flags) => flags,
        Err(_) if cmd != Cmd::Get => return reply(INVALID_OR_DUPLICATE),
        Err(line) => return reply(line),
    };
    if flags.form.opaque_len as usize > MAX_OPAQUE {
        return reply(OPAQUE_TOO_LONG);
    }
    let op = match cmd {
        Cmd::Get => Op::MetaGet {
            touch: flags.touch,
            vivify: flags.vivify,
            recache: flags.recache,
            bump: !flags.no_update,
        },
        Cmd::Delete => Op::MetaDelete { compare: flags.compare, stale: flags.stale, touch: flags.touch },
        _ => {
            let incr = match flags.mode {
                None | Some(b'I' | b'+') => true,
                Some(b'D' | b'-') => false,
                Some(_) => return reply(b"CLIENT_ERROR invalid mode for ma M token\r\n"),
            };
            Op::MetaArith {
                incr,
                delta: flags.delta.unwrap_or(1),
                compare: flags.compare.unwrap_or(0),
                vivify: flags.vivify,
                initial: flags.initial,
                touch: flags.touch,
            }
        }
    };
    done(Request::Keyed(Keyed { key, value: b"", op, form: Form::Meta(flags.form) }))
}

/// `ms <key> <datalen> <flags>*`, then the data block.
fn set<'a>(t: &Tokens<'a>, key: &'a [u8], buf: &'a [u8], line_len: usize, limits: &Limits) -> Parsed<'a> {
    let done = |request| Parsed::Done { request, consumed: line_len };
    let vlen = match strtol(t.get(2)) {
        Some(v) => v as i32, // memcached reads it into an int32
        None => return done(Request::Reply(BAD_FORMAT)),
    };
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return done(Request::Reply(BAD_FORMAT));
    }
    let vlen = vlen as usize;
    // From here an error swallows the data block.
    let refuse = |line| Parsed::Swallow { request: Request::Reply(line), consumed: line_len, swallow: vlen + 2 };
    let flags = match preparse(t, 3) {
        Ok(flags) => flags,
        Err(line) => return refuse(line),
    };
    let mode = match flags.mode {
        None | Some(b'S') => StoreMode::Set,
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        Some(_) => return refuse(b"CLIENT_ERROR invalid mode for ms M token\r\n"),
    };
    if flags.form.opaque_len as usize > MAX_OPAQUE {
        return refuse(OPAQUE_TOO_LONG);
    }
    // A compare value turns set and replace into a CAS store (memcached's NREAD_CAS).
    let mode = match (mode, flags.compare) {
        (StoreMode::Set | StoreMode::Replace, Some(_)) => StoreMode::Cas,
        (mode, _) => mode,
    };
    let form = Form::Meta(flags.form);
    let mut decoded = [0u8; base64::MAX_DECODED];
    let key_len = if flags.form.base64 { base64::decode(key, &mut decoded).unwrap_or(0) } else { key.len() };
    if !item_size_ok(key_len, vlen, limits.item_size_max) {
        // memcached refuses it before reading the data, and drops the old value.
        let request = Request::Keyed(Keyed { key, value: b"", op: Op::TooLarge { mode: StoreMode::Set }, form });
        return Parsed::Swallow { request, consumed: line_len, swallow: vlen + 2 };
    }
    let need = line_len + vlen + 2;
    if buf.len() < need {
        return Parsed::Incomplete { need };
    }
    let block = &buf[line_len..need];
    let request = if &block[vlen..] == b"\r\n" {
        let op = Op::MetaSet {
            mode,
            flags: flags.client_flags,
            exptime: flags.touch.unwrap_or(0),
            compare: flags.compare.unwrap_or(0),
            stale: flags.stale && mode == StoreMode::Cas,
        };
        Request::Keyed(Keyed { key, value: &block[..vlen], op, form })
    } else {
        // Shown even in quiet mode: memcached's ms always reports a bad chunk.
        Request::Reply(BAD_DATA_CHUNK)
    };
    Parsed::Done { request, consumed: need }
}

/// `me <key> [b]`: memcached's debug line; `b` counts only as the first flag.
fn debug<'a>(t: &Tokens<'a>) -> Request<'a> {
    let key = t.get(1);
    if t.count < 2 || key.len() > KEY_MAX_LENGTH {
        return Request::Reply(BAD_FORMAT);
    }
    let mut form = MetaForm::new();
    if t.count >= 3 && t.get(2) == b"b" {
        if base64::decode(key, &mut [0u8; base64::MAX_DECODED]).is_none() {
            return Request::Reply(BAD_FORMAT);
        }
        form.base64 = true;
        form.encoded_key = true;
    }
    Request::Keyed(Keyed { key, value: b"", op: Op::MetaDebug, form: Form::Meta(form) })
}

/// memcached's `_meta_flag_preparse` from token `start` on. Err: the error line, as
/// memcached picks it: an unknown or repeated flag at once, otherwise the last
/// numeric/key error once every flag has been read.
// Inlined into its two callers: the flags come back without a copy of `Flags` and a
// call (~75 of an `mg`'s ~800 parse instructions).
#[inline(always)]
fn preparse(t: &Tokens<'_>, start: usize) -> Result<Flags, &'static [u8]> {
    let mut f = Flags {
        form: MetaForm::new(),
        touch: None,
        vivify: None,
        recache: None,
        no_update: false,
        client_flags: 0,
        compare: None,
        mode: None,
        initial: 0,
        delta: None,
        stale: false,
    };
    // The flags seen, one bit each from `@` (64) on: below it every character is an
    // invalid flag, refused at its first appearance, so never repeated.
    let mut seen = 0u64;
    let (mut order, mut shift) = (0u64, 0);
    let mut error: Option<&'static [u8]> = None;
    for i in start..t.count {
        let token = t.get(i);
        let o = token[0];
        let bit = 1u64 << (o & 63);
        if o >= 127 || (o >= 64 && seen & bit != 0) {
            return Err(DUPLICATE_FLAG);
        }
        if o >= 64 {
            seen |= bit;
        }
        let arg = &token[1..];
        let signed = |error: &mut Option<&'static [u8]>| match strtol(arg) {
            Some(v) => Some(v as i32),
            None => {
                *error = Some(BAD_TOKEN);
                None
            }
        };
        match o {
            b'b' => {
                let mut decoded = [0u8; base64::MAX_DECODED];
                if base64::decode(t.get(1), &mut decoded).is_none() {
                    error = Some(DECODING_KEY);
                }
                f.form.base64 = true;
                f.form.encoded_key = true;
            }
            b'N' => f.vivify = signed(&mut error).or(Some(0)),
            b'T' => f.touch = signed(&mut error),
            b'R' => f.recache = signed(&mut error).or(Some(0)),
            b'O' => {
                // Kept for the reply; a token too long for it is refused by the caller.
                let len = token.len().min(MAX_OPAQUE);
                f.form.opaque[..len].copy_from_slice(&token[..len]);
                f.form.opaque_len = token.len().min(MAX_OPAQUE + 1) as u8;
            }
            b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' => {}
            b'v' => f.form.value = true,
            b'u' => f.no_update = true,
            b'q' => f.form.quiet = true,
            b'F' => match strtoul32(arg) {
                Some(v) => f.client_flags = v,
                // memcached sets no message for F: the last one set, else the default.
                None => error = Some(error.unwrap_or(BAD_FORMAT)),
            },
            b'C' => match strtoull(arg) {
                Some(v) => f.compare = Some(v),
                None => error = Some(BAD_TOKEN),
            },
            b'M' => {
                if token.len() != 2 {
                    error = Some(b"CLIENT_ERROR incorrect length for M token\r\n");
                } else {
                    f.mode = Some(token[1]);
                }
            }
            b'J' => match strtoull(arg) {
                Some(v) => f.initial = v,
                None => error = Some(b"CLIENT_ERROR invalid numeric initial value\r\n"),
            },
            b'D' => match strtoull(arg) {
                Some(v) => f.delta = Some(v),
                None => error = Some(b"CLIENT_ERROR invalid numeric delta value\r\n"),
            },
            b'I' => f.stale = true,
            _ => return Err(INVALID_FLAG),
        }
        // At most ORDERED's 11, each once: 44 bits.
        order |= u64::from(ORDER_OF[o as usize]) << shift;
        shift += if ORDER_OF[o as usize] != 0 { 4 } else { 0 };
    }
    f.form.order = order;
    match error {
        Some(line) => Err(line),
        None => Ok(f),
    }
}

/// A meta request whose key is still base64 text, with its key decoded into `buf`;
/// any other request as it is. The connection calls this before routing, so a key is
/// owned by the same core however it was sent.
#[inline]
pub fn resolve_key<'k>(request: &Keyed<'k>, buf: &'k mut [u8; base64::MAX_DECODED]) -> Keyed<'k> {
    match request.form {
        Form::Meta(mut form) if form.encoded_key => {
            // The parser checked it decodes.
            let n = base64::decode(request.key, buf).unwrap_or(0);
            form.encoded_key = false;
            Keyed { key: &buf[..n], form: Form::Meta(form), ..*request }
        }
        _ => *request,
    }
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;
