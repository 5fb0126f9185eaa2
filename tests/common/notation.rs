//! The escaped byte notation of tests/cases/errors.txt (`\r`, `\x01`, `\{N:text}` for
//! N repeats), both ways.

/// Show bytes the way tests/cases/errors.txt writes them.
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

/// Parse the escaped byte notation of tests/cases/errors.txt.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("short \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|e| format!("bad \\x{hex}: {e}"))?);
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
                let unit = unescape(text)?;
                for _ in 0..count {
                    out.extend_from_slice(&unit);
                }
                i = end + 1;
                continue;
            }
            other => return Err(format!("bad escape {:?}", other.map(|c| *c as char))),
        }
        i += 2;
    }
    Ok(out)
}
