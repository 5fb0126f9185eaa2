//! What the recorder does to a reply before writing it down, done the same way to
//! the reply of the server under test so that the two can be compared: stats
//! `mask`/`keep` filters, then CAS values turned into variables
//! (scripts/record-cases.py `apply_stats_filter`, `cas_spans`, `render`).

use super::super::notation::{push_piece, Piece};

const BIN_HDR: usize = 24;

/// The distinct non-zero CAS values of a case so far, in order of first appearance
/// (variable N is `values[N - 1]`), as decimal text: text CAS values have no leading
/// zeros, so equal text means equal value, and a binary CAS equal to a text one is
/// the same variable, as in the recorder.
#[derive(Clone, Debug, Default)]
pub struct CasVars {
    values: Vec<String>,
}

impl CasVars {
    /// The bytes a `send` puts for `\c{n}` / `\C{n}`.
    pub fn bytes(&self, binary: bool, n: usize) -> Result<Vec<u8>, String> {
        let v = n
            .checked_sub(1)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| {
                format!(
                    "CAS variable {n} is not bound: the server sent {} distinct CAS value(s) so far",
                    self.values.len()
                )
            })?;
        if !binary {
            return Ok(v.clone().into_bytes());
        }
        let v: u64 = v
            .parse()
            .map_err(|_| format!("CAS variable {n} = {v} does not fit 8 bytes"))?;
        Ok(v.to_be_bytes().to_vec())
    }

    /// The variable of `value`, binding the next number on first appearance.
    fn name(&mut self, value: String) -> usize {
        match self.values.iter().position(|v| *v == value) {
            Some(i) => i + 1,
            None => {
                self.values.push(value);
                self.values.len()
            }
        }
    }
}

/// Resolve a `send`'s pieces to bytes.
pub fn substitute(pieces: &[Piece], vars: &CasVars) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Bytes(b) => out.extend_from_slice(b),
            Piece::Cas { binary, n } => out.extend(vars.bytes(*binary, *n)?),
        }
    }
    Ok(out)
}

/// A binary response: (24-byte header, body).
type Packet<'a> = (&'a [u8], &'a [u8]);

/// Complete binary responses, and where the unparsed rest starts.
fn split_binary(b: &[u8]) -> (Vec<Packet<'_>>, usize) {
    let mut packets = Vec::new();
    let mut i = 0;
    while i + BIN_HDR <= b.len() && b[i] == 0x81 {
        let bodylen = u32::from_be_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]) as usize;
        if i + BIN_HDR + bodylen > b.len() {
            break;
        }
        packets.push((&b[i..i + BIN_HDR], &b[i + BIN_HDR..i + BIN_HDR + bodylen]));
        i += BIN_HDR + bodylen;
    }
    (packets, i)
}

/// A stat name as the recorder matches it (bytes as latin-1 characters).
fn matches_any(name: &[u8], globs: &[glob::Pattern]) -> bool {
    let name: String = name.iter().map(|&c| c as char).collect();
    globs.iter().any(|g| g.matches(&name))
}

/// Replace masked stat values by `*` and drop the stats not kept: text `STAT` lines,
/// or binary Stat (0x10) packets carrying a key, whose body length is fixed up.
pub fn filter_stats(reply: &[u8], mask: &[glob::Pattern], keep: &[glob::Pattern]) -> Vec<u8> {
    if mask.is_empty() && keep.is_empty() {
        return reply.to_vec();
    }
    if reply.first() == Some(&0x81) {
        let (packets, rest) = split_binary(reply);
        let mut out = Vec::new();
        for (hdr, body) in packets {
            let keylen = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
            let extlen = hdr[4] as usize;
            if hdr[1] != 0x10 || keylen == 0 {
                out.extend_from_slice(hdr);
                out.extend_from_slice(body);
                continue;
            }
            let name = &body[extlen.min(body.len())..(extlen + keylen).min(body.len())];
            if !keep.is_empty() && !matches_any(name, keep) {
                continue;
            }
            if matches_any(name, mask) {
                let mut body = body[..(extlen + keylen).min(body.len())].to_vec();
                body.push(b'*');
                out.extend_from_slice(&hdr[..8]);
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(&hdr[12..]);
                out.extend_from_slice(&body);
            } else {
                out.extend_from_slice(hdr);
                out.extend_from_slice(body);
            }
        }
        out.extend_from_slice(&reply[rest..]);
        return out;
    }
    let mut lines = Vec::new();
    for line in split_crlf(reply) {
        if let Some(name) = stat_name(line) {
            if !keep.is_empty() && !matches_any(name, keep) {
                continue;
            }
            if matches_any(name, mask) {
                lines.push([b"STAT ", name, b" *"].concat());
                continue;
            }
        }
        lines.push(line.to_vec());
    }
    lines.join(&b"\r\n"[..])
}

/// `line.split(b"\r\n")`: every piece, the last one after the final separator too.
fn split_crlf(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if &b[i..i + 2] == b"\r\n" {
            out.push(&b[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&b[start..]);
    out
}

/// The name in `STAT <name> <anything>`: a run of non-space bytes followed by a
/// space (the recorder's `STAT (\S+) (.*)$`).
fn stat_name(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"STAT ")?;
    let end = rest
        .iter()
        .position(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(rest.len());
    (end > 0 && rest.get(end) == Some(&b' ')).then(|| &rest[..end])
}

/// Where a reply carries CAS values: (start, end, binary).
fn cas_spans(reply: &[u8]) -> Vec<(usize, usize, bool)> {
    let mut spans = Vec::new();
    if reply.first() == Some(&0x81) {
        let mut i = 0;
        for (hdr, body) in split_binary(reply).0 {
            if hdr[16..24] != [0u8; 8] {
                spans.push((i + 16, i + 24, true));
            }
            i += BIN_HDR + body.len();
        }
        return spans;
    }
    let mut i = 0;
    while i < reply.len() {
        let Some(eol) = super::super::find(&reply[i..], b"\r\n").map(|p| p + i) else {
            break;
        };
        let mut toks = Vec::new(); // (start, token)
        let mut pos = i;
        for t in reply[i..eol].split(|&c| c == b' ') {
            toks.push((pos, t));
            pos += t.len() + 1;
        }
        let mut skip = 0;
        let head = toks[0].1;
        if matches!(head, b"HD" | b"VA" | b"EN" | b"NF" | b"NS" | b"EX") {
            for &(s, t) in &toks[1..] {
                if t.len() >= 2 && t[0] == b'c' && is_cas_number(&t[1..]) {
                    spans.push((s + 1, s + t.len(), false));
                }
            }
            if head == b"VA" && toks.len() > 1 {
                skip = data_skip(toks[1].1);
            }
        } else if head == b"VALUE" && toks.len() >= 4 {
            if toks.len() == 5 && is_cas_number(toks[4].1) {
                let (s, t) = toks[4];
                spans.push((s, s + t.len(), false));
            }
            skip = data_skip(toks[3].1);
        } else if head == b"ME" {
            for &(s, t) in toks.iter().skip(2) {
                if t.len() > 4 && t.starts_with(b"cas=") && is_cas_number(&t[4..]) {
                    spans.push((s + 4, s + t.len(), false));
                }
            }
        }
        i = eol.saturating_add(2).saturating_add(skip);
    }
    spans
}

/// `[1-9][0-9]*`
fn is_cas_number(t: &[u8]) -> bool {
    !t.is_empty() && t[0] != b'0' && t.iter().all(u8::is_ascii_digit)
}

/// A data block's length token -> bytes to skip after its line (length + \r\n).
fn data_skip(t: &[u8]) -> usize {
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .map_or(usize::MAX, |n| n.saturating_add(2))
}

/// A (filtered) reply as pieces, its CAS values written as variables: a value seen
/// before gets its variable, a new one the next number (bound in `vars`).
pub fn render(reply: &[u8], vars: &mut CasVars) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut last = 0;
    for (start, end, binary) in cas_spans(reply) {
        let raw = &reply[start..end];
        let value = if binary {
            u64::from_be_bytes(raw.try_into().expect("8-byte span")).to_string()
        } else {
            String::from_utf8_lossy(raw).into_owned()
        };
        let n = vars.name(value);
        push_piece(
            &mut out,
            &mut lit,
            Piece::Bytes(reply[last..start].to_vec()),
        );
        push_piece(&mut out, &mut lit, Piece::Cas { binary, n });
        last = end;
    }
    lit.extend_from_slice(&reply[last..]);
    if !lit.is_empty() {
        out.push(Piece::Bytes(lit));
    }
    out
}
