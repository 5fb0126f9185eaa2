//! The escaped byte notation of the case tables (tests/cases/*.txt, written by
//! scripts/record-cases.py): `\r`, `\x01`, `\{N:text}` for N repeats, and the CAS
//! variables `\c{N}` (decimal, text protocol) / `\C{N}` (8 bytes big-endian, binary
//! protocol) that stand for the N-th distinct CAS value of a case.

/// A stretch of escaped text: literal bytes or a CAS variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Bytes(Vec<u8>),
    /// `\c{n}` (binary = false) or `\C{n}` (binary = true).
    Cas {
        binary: bool,
        n: usize,
    },
}

/// Show bytes the way the tables write them (run compression as the recorder does).
pub fn escape(b: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let mut j = i;
        while j < b.len() && b[j] == b[i] {
            j += 1;
        }
        if j - i >= 16 {
            out.push_str(&format!("\\{{{}:{}}}", j - i, escape(&b[i..i + 1])));
            i = j;
            continue;
        }
        match b[i] {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0 => out.push_str("\\0"),
            b'\\' => out.push_str("\\\\"),
            b'{' | b'}' => out.push_str(&format!("\\x{:02x}", b[i])),
            c @ 32..=126 => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
        i += 1;
    }
    out
}

/// Show pieces as the recorder writes a reply: each literal stretch escaped on its
/// own, CAS variables as `\c{N}` / `\C{N}`.
pub fn escape_pieces(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => escape(b),
            Piece::Cas { binary, n } => format!("\\{}{{{n}}}", if *binary { 'C' } else { 'c' }),
        })
        .collect()
}

/// Parse escaped text that holds no CAS variable.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for p in parse_pieces(s)? {
        match p {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::Cas { .. } => return Err(format!("CAS variable where none may be: {s:?}")),
        }
    }
    Ok(out)
}

/// Parse escaped text into pieces: adjacent bytes merged, no empty `Bytes`.
pub fn parse_pieces(s: &str) -> Result<Vec<Piece>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            lit.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'r') => lit.push(b'\r'),
            Some(b'n') => lit.push(b'\n'),
            Some(b't') => lit.push(b'\t'),
            Some(b'0') => lit.push(0),
            Some(b'\\') => lit.push(b'\\'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("short \\x escape")?;
                lit.push(u8::from_str_radix(hex, 16).map_err(|e| format!("bad \\x{hex}: {e}"))?);
                i += 4;
                continue;
            }
            Some(b'{') => {
                let end = s[i..].find('}').ok_or("unclosed \\{")? + i;
                let (count, text) = s[i + 2..end]
                    .split_once(':')
                    .ok_or("\\{N:text} needs a colon")?;
                let count: usize = count
                    .parse()
                    .map_err(|e| format!("bad repeat count {count}: {e}"))?;
                match parse_pieces(text)?.as_slice() {
                    [] => {}
                    [Piece::Bytes(unit)] => lit.extend_from_slice(&unit.repeat(count)),
                    unit => {
                        for _ in 0..count {
                            for p in unit {
                                push_piece(&mut out, &mut lit, p.clone());
                            }
                        }
                    }
                }
                i = end + 1;
                continue;
            }
            Some(&c @ (b'c' | b'C')) if b.get(i + 2) == Some(&b'{') => {
                let end = s[i..].find('}').ok_or("unclosed \\c{")? + i;
                let n: usize = s[i + 3..end]
                    .parse()
                    .map_err(|e| format!("bad CAS variable {:?}: {e}", &s[i..=end]))?;
                push_piece(
                    &mut out,
                    &mut lit,
                    Piece::Cas {
                        binary: c == b'C',
                        n,
                    },
                );
                i = end + 1;
                continue;
            }
            other => return Err(format!("bad escape {:?}", other.map(|c| *c as char))),
        }
        i += 2;
    }
    if !lit.is_empty() {
        out.push(Piece::Bytes(lit));
    }
    Ok(out)
}

/// Append a piece, merging literal bytes (pending in `lit`) into one `Bytes`.
pub fn push_piece(out: &mut Vec<Piece>, lit: &mut Vec<u8>, p: Piece) {
    match p {
        Piece::Bytes(b) => lit.extend_from_slice(&b),
        cas => {
            if !lit.is_empty() {
                out.push(Piece::Bytes(std::mem::take(lit)));
            }
            out.push(cas);
        }
    }
}
