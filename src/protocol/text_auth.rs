//! `-Y`'s handshake, parsed as memcached 1.6.18's `try_read_command_asciiauth`: until a
//! connection authenticates, its first line must be `set <key> <flags> <exptime> <N>`
//! (key, flags and exptime ignored), followed by N bytes `<user> <password>` and
//! `\r\n`; every other line is `CLIENT_ERROR unauthenticated`.

use super::text_reply::UNAUTHENTICATED;
use super::{AuthStep, Form, Parsed, Request, MAX_LINE_WITHOUT_NEWLINE};
use crate::rules::strtoul32;

/// memcached's read buffer: a payload that cannot fit in it closes the connection.
const READ_BUFFER_SIZE: usize = 16 * 1024;

const BAD_TERMINATION: &[u8] = b"CLIENT_ERROR bad command line termination\r\n";

/// Parses the handshake (or a refused line) at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_LINE_WITHOUT_NEWLINE { Parsed::Close } else { Parsed::Incomplete { need: 0 } };
    };
    // memcached leaves the `\r` in: strtoul stops at it. A NUL ends the line.
    let line = &buf[..newline];
    let line = line.split(|&b| b == 0).next().unwrap_or(b"");
    let line_len = newline + 1;
    let refused = Parsed::Done { request: Request::Reply(UNAUTHENTICATED), consumed: line_len };
    let words: Vec<&[u8]> = tokens(line).take(5).collect();
    if words.len() < 5 || words[0] != b"set" {
        return refused;
    }
    let Some(size) = strtoul32(words[4]) else { return refused };
    // memcached's `rlbytes` is N + 2 in 32 bits (it wraps for N = 4294967295).
    let payload_len = size.wrapping_add(2) as usize;
    if payload_len > READ_BUFFER_SIZE {
        return Parsed::Close;
    }
    let total = line_len + payload_len;
    if buf.len() < total {
        return Parsed::Incomplete { need: total };
    }
    let payload = &buf[line_len..total];
    if payload_len < 2 || !payload.ends_with(b"\r\n") {
        return Parsed::Done { request: Request::Reply(BAD_TERMINATION), consumed: total };
    }
    let payload = &payload[..payload_len - 2];
    let payload = payload.split(|&b| b == 0).next().unwrap_or(b"");
    let mut words = tokens(payload);
    let credentials = match (words.next(), words.next()) {
        (Some(user), Some(pass)) => Some((user, pass)),
        _ => None,
    };
    Parsed::Done { request: Request::Auth { form: Form::TEXT, step: AuthStep::Ascii { credentials } }, consumed: total }
}

/// memcached's tokenizer: words separated by spaces (only spaces).
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake() {
        let Parsed::Done { request: Request::Auth { step, .. }, consumed } = parse(b"set a 0 0 17\r\ntestuser testpass\r\nx")
        else {
            panic!()
        };
        assert_eq!(consumed, 33);
        assert_eq!(step, AuthStep::Ascii { credentials: Some((&b"testuser"[..], &b"testpass"[..])) });
        assert_eq!(parse(b"set a 0 0 17\r\ntestuser"), Parsed::Incomplete { need: 33 });
        assert_eq!(parse(b"get a\r\n"), Parsed::Done { request: Request::Reply(UNAUTHENTICATED), consumed: 7 });
        assert_eq!(parse(b"set a 0 0 -1\r\n"), Parsed::Done { request: Request::Reply(UNAUTHENTICATED), consumed: 14 });
        assert_eq!(
            parse(b"set a 0 0 4294967295\r\nx"),
            Parsed::Done { request: Request::Reply(BAD_TERMINATION), consumed: 23 }
        );
        assert_eq!(parse(b"set a 0 0 20000\r\n"), Parsed::Close);
    }
}
