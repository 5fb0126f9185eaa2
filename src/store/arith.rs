//! incr/decr arithmetic exactly as memcached's `do_add_delta` does it.

/// C's isspace in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// memcached's `safe_strtoull` applied to an item's value. In memcached the value is
/// followed by `"\r\n"` in memory, so a number running to the end of the value is
/// accepted, leading whitespace is skipped (strtoull), a `-` is only refused when the
/// negated result looks negative as a signed number (a literal port of its check),
/// and overflow (ERANGE) is refused.
pub fn safe_strtoull(value: &[u8]) -> Option<u64> {
    // The bytes strtoull sees: the value, then "\r\n". Past that memcached would read
    // whatever follows the item; treat that as "no digits here".
    let at = |i: usize| -> u8 {
        match i.cmp(&value.len()) {
            std::cmp::Ordering::Less => value[i],
            std::cmp::Ordering::Equal => b'\r',
            std::cmp::Ordering::Greater => {
                if i == value.len() + 1 {
                    b'\n'
                } else {
                    0
                }
            }
        }
    };
    let mut i = 0;
    while is_c_space(at(i)) {
        i += 1;
    }
    let mut negative = false;
    if at(i) == b'+' || at(i) == b'-' {
        negative = at(i) == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut n: u64 = 0;
    let mut overflow = false;
    while at(i).is_ascii_digit() {
        let d = (at(i) - b'0') as u64;
        match n.checked_mul(10).and_then(|m| m.checked_add(d)) {
            Some(m) => n = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        return None; // no conversion: endptr == str
    }
    if overflow {
        return None; // ERANGE
    }
    let ull = if negative { n.wrapping_neg() } else { n };
    let end = at(i);
    if !is_c_space(end) && end != 0 {
        return None;
    }
    if (ull as i64) < 0 && value[..i.min(value.len())].contains(&b'-') {
        return None;
    }
    Some(ull)
}

/// The new counter: incr wraps at 2^64, decr stops at zero.
pub fn apply_delta(value: u64, incr: bool, delta: u64) -> u64 {
    if incr {
        value.wrapping_add(delta)
    } else {
        value.saturating_sub(delta)
    }
}

/// Writes `n` in decimal into `out` as memcached stores it over an old value of
/// `old_len` bytes: padded with spaces to `old_len` when the digits fit (memcached's
/// in-place update), else exactly the digits. Returns whether it fit in place.
pub fn render(n: u64, old_len: usize, out: &mut Vec<u8>) -> bool {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    out.clear();
    out.extend_from_slice(digits);
    if digits.len() <= old_len {
        out.resize(old_len, b' ');
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_memcached() {
        assert_eq!(safe_strtoull(b"0"), Some(0));
        assert_eq!(safe_strtoull(b"42"), Some(42));
        assert_eq!(safe_strtoull(b" 5"), Some(5));
        assert_eq!(safe_strtoull(b"\t+7"), Some(7));
        assert_eq!(safe_strtoull(b"12 abc"), Some(12));
        assert_eq!(safe_strtoull(b"99 "), Some(99));
        assert_eq!(safe_strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(safe_strtoull(b"007"), Some(7));
        assert_eq!(safe_strtoull(b"5\r\n"), Some(5));
    }

    #[test]
    fn refuses_what_memcached_refuses() {
        assert_eq!(safe_strtoull(b""), None);
        assert_eq!(safe_strtoull(b"abc"), None);
        assert_eq!(safe_strtoull(b"12abc"), None);
        assert_eq!(safe_strtoull(b"-1"), None);
        assert_eq!(safe_strtoull(b"18446744073709551616"), None);
        assert_eq!(safe_strtoull(b"99999999999999999999999"), None);
        assert_eq!(safe_strtoull(b"   "), None);
        assert_eq!(safe_strtoull(b"+"), None);
        assert_eq!(safe_strtoull(b"1.5"), None);
    }

    #[test]
    fn minus_quirk_is_ported_literally() {
        // strtoull negates; memcached only looks for '-' when the result is >= 2^63.
        assert_eq!(safe_strtoull(b"-0"), Some(0));
        assert_eq!(safe_strtoull(b"-18446744073709551615"), Some(1));
        assert_eq!(safe_strtoull(b"-9223372036854775808"), None);
    }

    #[test]
    fn delta_wraps_and_floors() {
        assert_eq!(apply_delta(u64::MAX, true, 1), 0);
        assert_eq!(apply_delta(u64::MAX - 1, true, 3), 1);
        assert_eq!(apply_delta(5, false, 10), 0);
        assert_eq!(apply_delta(5, false, 5), 0);
        assert_eq!(apply_delta(10, false, 3), 7);
    }

    #[test]
    fn renders_in_place_with_padding() {
        let mut out = Vec::new();
        assert!(render(99, 3, &mut out));
        assert_eq!(out, b"99 ");
        assert!(render(0, 5, &mut out));
        assert_eq!(out, b"0    ");
        assert!(!render(100, 2, &mut out));
        assert_eq!(out, b"100");
        assert!(render(100, 3, &mut out));
        assert_eq!(out, b"100");
    }
}
