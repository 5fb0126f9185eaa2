//! Composing replies. Every function appends to the connection's output buffer.

use bytes::{BufMut, BytesMut};

pub const STORED: &[u8] = b"STORED\r\n";
pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
pub const EXISTS: &[u8] = b"EXISTS\r\n";
pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
pub const DELETED: &[u8] = b"DELETED\r\n";
pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
pub const END: &[u8] = b"END\r\n";
pub const OK: &[u8] = b"OK\r\n";
pub const RESET: &[u8] = b"RESET\r\n";
pub const ERROR: &[u8] = b"ERROR\r\n";
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
pub const BAD_DATA_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
pub const OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
pub const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
pub const INVALID_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
pub const INVALID_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
pub const SHUTDOWN_DISABLED: &[u8] = b"ERROR: shutdown not enabled\r\n";
pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// `VALUE <key> <flags> <bytes>[ <cas unique>]\r\n<data>\r\n`
pub fn value(out: &mut BytesMut, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    out.reserve(key.len() + data.len() + 64);
    out.put_slice(b"VALUE ");
    out.put_slice(key);
    out.put_u8(b' ');
    number(out, flags as u64);
    out.put_u8(b' ');
    number(out, data.len() as u64);
    if let Some(cas) = cas {
        out.put_u8(b' ');
        number(out, cas);
    }
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// A decimal number, without a line end.
pub fn number(out: &mut BytesMut, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(n).as_bytes());
}

/// A number on a line of its own: the reply to incr/decr.
pub fn number_line(out: &mut BytesMut, n: u64) {
    number(out, n);
    out.put_slice(b"\r\n");
}

/// `STAT <name> <value>\r\n`
pub fn stat(out: &mut BytesMut, name: &str, value: impl std::fmt::Display) {
    use std::fmt::Write;
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "STAT {name} {value}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lines_match_protocol_txt() {
        let mut out = BytesMut::new();
        value(&mut out, b"k", 5, b"hello", None);
        value(&mut out, b"k", 0, b"", Some(42));
        assert_eq!(&out[..], b"VALUE k 5 5\r\nhello\r\nVALUE k 0 0 42\r\n\r\n");
    }

    #[test]
    fn stats_lines() {
        let mut out = BytesMut::new();
        stat(&mut out, "pid", 7);
        number_line(&mut out, u64::MAX);
        assert_eq!(&out[..], b"STAT pid 7\r\n18446744073709551615\r\n");
    }
}
