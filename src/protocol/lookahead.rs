//! The keys of the text requests pipelined behind the one being run, read without
//! parsing them: the server prefetches their index slots and records
//! (`Core::prefetch_requests`) before it parses and runs each request as usual. A full
//! parse there was every pipelined request parsed twice (about a third of a pipelined
//! `mg`'s instructions, a fifth of a `get`'s).
//!
//! Hints only: a request this reads differently from the parser (a malformed line, a
//! data block the parser refuses) costs a useless prefetch or none, never a reply byte.

use super::Keys;
use crate::rules::strtol;

/// What prefetching needs of the request at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peeked<'a> {
    /// Its bytes: the line, and the data block of a storage command.
    pub consumed: usize,
    /// The keys it reads: a get's (`get gets bget gat gats`) or an `mg`'s; none else.
    pub keys: Keys<'a>,
}

/// The request at the front of `input`; None when it is not all there yet, or its data
/// block's length is not a plain number (the parser then refuses it or closes).
pub fn peek(input: &[u8]) -> Option<Peeked<'_>> {
    let newline = input.iter().position(|&b| b == b'\n')?;
    let line = &input[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = Keys::new(line);
    let none = Keys::new(b"");
    let (keys, data) = match words.next().unwrap_or(b"") {
        b"get" | b"gets" | b"bget" => (words, None),
        b"gat" | b"gats" => {
            words.next(); // the exptime
            (words, None)
        }
        b"mg" => (Keys::new(words.next().unwrap_or(b"")), None),
        // <command> <key> <flags> <exptime> <bytes> ..., ms <key> <datalen> ...
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => (none, words.nth(3)),
        b"ms" => (none, words.nth(1)),
        _ => (none, None),
    };
    let consumed = match data {
        None => newline + 1,
        Some(len) => newline + 1 + data_len(len)? + 2,
    };
    (consumed <= input.len()).then_some(Peeked { consumed, keys })
}

/// A data block's length as the parsers read it (memcached's `safe_strtol`, kept in an
/// `int32_t`); None when it is negative or not a number.
fn data_len(word: &[u8]) -> Option<usize> {
    usize::try_from(strtol(word)? as i32).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(input: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
        peek(input).map(|p| (p.consumed, p.keys.collect()))
    }

    #[test]
    fn gets_and_mg_give_their_keys() {
        assert_eq!(keys(b"get a bb  c\r\nget d\r\n"), Some((13, vec![&b"a"[..], b"bb", b"c"])));
        assert_eq!(keys(b"gats 100 a b\r\n"), Some((14, vec![&b"a"[..], b"b"])));
        assert_eq!(keys(b"mg foo v f k\r\n"), Some((14, vec![&b"foo"[..]])));
        assert_eq!(keys(b"mg\r\n"), Some((4, vec![])));
        assert_eq!(keys(b"get a"), None, "no line yet");
    }

    #[test]
    fn storage_commands_take_their_data_block() {
        assert_eq!(keys(b"set k 0 0 3\r\nabc\r\nget x\r\n"), Some((18, vec![])));
        assert_eq!(keys(b"cas k 0 0 3 99 noreply\r\nabc\r\n"), Some((29, vec![])));
        assert_eq!(keys(b"ms k 2 F5 T0\r\nab\r\n"), Some((18, vec![])));
        assert_eq!(keys(b"ms k 2 F5\r\na"), None, "data block not all there");
        assert_eq!(keys(b"set k 0 0 -1\r\n"), None);
        assert_eq!(keys(b"delete k\r\nget x\r\n"), Some((10, vec![])));
        assert_eq!(keys(b"set k 0 0\r\n"), Some((11, vec![])), "no length: the parser's ERROR, the line");
    }
}
