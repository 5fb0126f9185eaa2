//! The meta commands' replies, byte for byte as memcached 1.6.18 writes them: a status
//! word (`VA <len>`, `HD`, `EN`, `NS`, `EX`, `NF`, `ME`), the return flags in request
//! order, for `mg` then `Z`, `X`, `W`; quiet mode (`q`) leaves out what memcached leaves
//! out (the nominal reply: an mg miss, HD of ms and md, a hit of ma).

use bytes::{BufMut, BytesMut};

use super::meta::{MetaDebug, MetaForm, MetaHit, MetaNumber, MetaStatus, MetaTtl};
use super::text_reply::{number, ARITH_OUT_OF_MEMORY, NON_NUMERIC, OUT_OF_MEMORY, TOO_LARGE};
use super::{base64, Keyed, Op, Outcome};

/// The reply to one meta request.
pub fn outcome(request: &Keyed, m: &MetaForm, outcome: &Outcome, out: &mut BytesMut) {
    match *outcome {
        Outcome::MetaHit(ref hit) => get_hit(request.key, m, hit, out),
        Outcome::Miss if request.op == Op::MetaDebug => out.put_slice(b"EN\r\n"),
        Outcome::Miss if m.quiet => {}
        Outcome::Miss => status_line(b"EN", request.key, m, None, out),
        Outcome::MetaStatus { status: MetaStatus::Done, .. } if m.quiet => {}
        Outcome::MetaStatus { status, cas } => {
            let word: &[u8] = match status {
                MetaStatus::Done => b"HD",
                MetaStatus::NotStored => b"NS",
                MetaStatus::Exists => b"EX",
                MetaStatus::NotFound => b"NF",
            };
            // Only ms's line has a `c` (its new CAS, 0 when not stored).
            let cas = matches!(request.op, Op::MetaSet { .. }).then_some(cas);
            status_line(word, request.key, m, cas, out);
        }
        Outcome::MetaNumber(ref n) => arith(request.key, m, n, out),
        Outcome::MetaDebug(ref d) => debug(request.key, d, out),
        Outcome::TooLarge => out.put_slice(TOO_LARGE),
        Outcome::StoreNoMemory => out.put_slice(OUT_OF_MEMORY),
        Outcome::NonNumeric => out.put_slice(NON_NUMERIC),
        Outcome::ArithNoMemory => out.put_slice(ARITH_OUT_OF_MEMORY),
        // The classic outcomes: no meta command produces them.
        _ => {}
    }
}

/// A status word then, in request order, `O`, `k` and (ms) `c`: the reply of ms, md,
/// an mg miss, an ma miss. `k` is the request's key (base64 again if sent so).
fn status_line(word: &[u8], key: &[u8], m: &MetaForm, cas: Option<u64>, out: &mut BytesMut) {
    out.put_slice(word);
    for f in m.flags() {
        match f {
            b'O' => opaque(m, out),
            b'k' => key_flag(key, m.base64, out),
            b'c' => {
                if let Some(cas) = cas {
                    out.put_slice(b" c");
                    number(out, cas);
                }
            }
            _ => {}
        }
    }
    out.put_slice(b"\r\n");
}

/// ` k<key>`, or ` k<base64> b` for a binary key.
fn key_flag(key: &[u8], binary: bool, out: &mut BytesMut) {
    out.put_slice(b" k");
    if binary {
        base64::encode(key, out);
        out.put_slice(b" b");
    } else {
        out.put_slice(key);
    }
}

fn opaque(m: &MetaForm, out: &mut BytesMut) {
    if let Some(o) = m.opaque() {
        out.put_u8(b' ');
        out.put_slice(o);
    }
}

/// ` t<seconds left>` (`-1`: no expiry) as memcached computes it: unsigned 32-bit.
fn ttl_flag(m: &MetaForm, pos: usize, ttl: &MetaTtl, out: &mut BytesMut) {
    out.put_slice(b" t");
    let exptime = m.exptime_at(pos, ttl);
    if exptime == 0 {
        out.put_slice(b"-1");
    } else {
        number(out, u64::from(exptime.wrapping_sub(ttl.now)));
    }
}

/// `VA <len>` or `HD`, the return flags, `Z` `X` `W`, then the value if asked for.
fn get_hit(key: &[u8], m: &MetaForm, hit: &MetaHit, out: &mut BytesMut) {
    out.reserve(hit.value.len() + 64);
    if m.value {
        out.put_slice(b"VA ");
        number(out, hit.value.len() as u64);
    } else {
        out.put_slice(b"HD");
    }
    for (pos, f) in m.flags().enumerate() {
        match f {
            b's' => {
                out.put_slice(b" s");
                number(out, hit.value.len() as u64);
            }
            b't' => ttl_flag(m, pos, &hit.ttl, out),
            b'c' => {
                out.put_slice(b" c");
                number(out, hit.cas);
            }
            b'f' => {
                out.put_slice(b" f");
                number(out, u64::from(hit.flags));
            }
            b'l' => {
                out.put_slice(b" l");
                number(out, u64::from(hit.la));
            }
            b'h' => out.put_slice(if hit.fetched { b" h1" } else { b" h0" }),
            b'O' => opaque(m, out),
            b'k' => key_flag(key, hit.key_binary, out),
            _ => {}
        }
    }
    if hit.token_sent {
        out.put_slice(b" Z");
    }
    if hit.stale {
        out.put_slice(b" X");
    }
    if hit.won {
        out.put_slice(b" W");
    }
    out.put_slice(b"\r\n");
    if m.value {
        out.put_slice(hit.value);
        out.put_slice(b"\r\n");
    }
}

/// `ma`'s reply: `VA <len>` or `HD`, `c` `t` `O` `k` in request order, then the value.
fn arith(key: &[u8], m: &MetaForm, n: &MetaNumber, out: &mut BytesMut) {
    if m.quiet && !n.ttl.created {
        return;
    }
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n.value).as_bytes();
    if m.value {
        out.put_slice(b"VA ");
        number(out, digits.len() as u64);
    } else {
        out.put_slice(b"HD");
    }
    for (pos, f) in m.flags().enumerate() {
        match f {
            b'c' => {
                out.put_slice(b" c");
                number(out, n.cas);
            }
            b't' => ttl_flag(m, pos, &n.ttl, out),
            b'O' => opaque(m, out),
            b'k' => key_flag(key, m.base64, out),
            _ => {}
        }
    }
    out.put_slice(b"\r\n");
    if m.value {
        out.put_slice(digits);
        out.put_slice(b"\r\n");
    }
}

/// `ME <key> exp=.. la=.. cas=.. fetch=yes|no cls=.. size=..`.
fn debug(key: &[u8], d: &MetaDebug, out: &mut BytesMut) {
    use std::fmt::Write;
    out.put_slice(b"ME ");
    if d.key_binary {
        base64::encode(key, out);
    } else {
        out.put_slice(key);
    }
    let fetch = if d.fetched { "yes" } else { "no" };
    let _ = write!(out, " exp={} la={} cas={} fetch={fetch} cls={} size={}\r\n", d.exp, d.la, d.cas, d.class, d.size);
}
