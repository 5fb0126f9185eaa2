//! memcached's shared rules: key and item limits, C-style number parsing, the storage
//! modes, and the expiry rule. A leaf module: the protocols (which check requests) and
//! the store and commands (which apply them) both import it, and it imports nothing of
//! the crate, so each rule is written once.

/// Longest key memcached accepts (`KEY_MAX_LENGTH`).
pub const KEY_MAX_LENGTH: usize = 250;

/// Relative expiry times up to this many seconds (30 days) are offsets from now; larger
/// ones are absolute unix times (`REALTIME_MAXDELTA`).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: class ids are 1 ..= 63.
pub const MAX_NUMBER_OF_SLAB_CLASSES: u32 = 64;

/// The five storage commands and `cas`. The shard's model (`store::model`) draws them
/// from fuzz input, hence `Arbitrary` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(any(test, feature = "model"), derive(arbitrary::Arbitrary))]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// memcached's test for "object too large for cache": its item header (48 bytes, 56 with
/// CAS), the key and its NUL, and the value with its `\r\n` must fit in `-I`.
pub fn item_size_ok(key_len: usize, value_len: usize, item_size_max: usize) -> bool {
    56 + key_len + 1 + value_len + 2 <= item_size_max
}

/// A client's exptime on the server clock (memcached's `realtime()`): 0 never expires;
/// up to 30 days is relative to `now`; beyond that an absolute unix time; negative (or
/// an absolute time already past) is expired, stored as 1, which is always in the past.
/// `unix_at_zero` is the unix time at which the server clock read 0.
pub fn realtime(exptime: i64, now: u32, unix_at_zero: i64) -> u32 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime > REALTIME_MAXDELTA {
        if exptime <= unix_at_zero {
            1
        } else {
            u32::try_from(exptime - unix_at_zero).unwrap_or(u32::MAX)
        }
    } else {
        now.saturating_add(exptime as u32)
    }
}

/// C's isspace in the "C" locale.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Leading whitespace, a sign, and decimal digits, as strtol/strtoull read them, and
/// the check memcached's `safe_*` wrappers make after them: the number must end the
/// bytes or be followed by whitespace. Returns (negative, magnitude or None on
/// overflow), or None when there is no such number.
fn c_number(s: &[u8]) -> Option<(bool, Option<u64>)> {
    let s = &s[s.iter().take_while(|&&b| is_c_space(b)).count()..];
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = &s[digits..];
    if !(rest.is_empty() || is_c_space(rest[0])) {
        return None;
    }
    let magnitude = s[..digits]
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add((d - b'0') as u64));
    Some((negative, magnitude))
}

/// memcached's `safe_strtoull` (and `safe_strtoul`, whose callers truncate). A
/// negative number is refused unless it wraps to a value that looks non-negative as a
/// signed long, exactly as C does (`-0` is 0, `-18446744073709551615` is 1).
///
/// Also what incr/decr apply to an item's value: memcached parses the value in place,
/// where `\r\n` follows it, so the end of the value ends the number as a space would.
pub fn strtoull(token: &[u8]) -> Option<u64> {
    let (negative, magnitude) = c_number(token)?;
    let magnitude = magnitude?;
    let value = if negative { magnitude.wrapping_neg() } else { magnitude };
    if (value as i64) < 0 && negative {
        return None;
    }
    Some(value)
}

/// memcached's `safe_strtoul` into a `uint32_t` (the value is truncated).
pub fn strtoul32(token: &[u8]) -> Option<u32> {
    strtoull(token).map(|v| v as u32)
}

/// memcached's `safe_strtol`: a signed long; callers truncate it to 32 bits as memcached
/// stores it in an `int32_t`.
pub fn strtol(token: &[u8]) -> Option<i64> {
    let (negative, magnitude) = c_number(token)?;
    let magnitude = magnitude?;
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            return None;
        }
        Some((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcached_exptime_rules() {
        let zero = 1_700_000_000;
        assert_eq!(realtime(0, 100, zero), 0);
        assert_eq!(realtime(10, 100, zero), 110);
        assert_eq!(realtime(-1, 100, zero), 1);
        assert_eq!(realtime(2_592_000, 100, zero), 2_592_100);
        assert_eq!(realtime(2_592_001, 100, zero), 1, "absolute time in 1970");
        assert_eq!(realtime(zero + 500, 100, zero), 500);
    }

    #[test]
    fn item_size_limit_matches_memcached() {
        // -I 1m: memcached stores a 1048516-byte value under a 1-byte key, not one more.
        assert!(item_size_ok(1, 1_048_516, 1 << 20));
        assert!(!item_size_ok(1, 1_048_517, 1 << 20));
    }

    #[test]
    fn strtoull_parses_like_memcached() {
        assert_eq!(strtoull(b"0"), Some(0));
        assert_eq!(strtoull(b"42"), Some(42));
        assert_eq!(strtoull(b" 5"), Some(5));
        assert_eq!(strtoull(b"\t+7"), Some(7));
        assert_eq!(strtoull(b"12 abc"), Some(12));
        assert_eq!(strtoull(b"99 "), Some(99));
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"007"), Some(7));
        assert_eq!(strtoull(b"5\r\n"), Some(5));
    }

    #[test]
    fn strtoull_refuses_what_memcached_refuses() {
        for bad in [&b""[..], b"abc", b"12abc", b"-1", b"18446744073709551616", b"99999999999999999999999", b"   ", b"+", b"1.5"] {
            assert_eq!(strtoull(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn strtoull_minus_quirk_is_ported_literally() {
        // strtoull negates; memcached only looks for '-' when the result is >= 2^63.
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoull(b"-18446744073709551615"), Some(1));
        assert_eq!(strtoull(b"-9223372036854775808"), None);
    }

    #[test]
    fn strtol_range() {
        assert_eq!(strtol(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(strtol(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(strtol(b"9223372036854775808"), None);
        assert_eq!(strtol(b"-9223372036854775809"), None);
        assert_eq!(strtol(b"12x"), None);
        assert_eq!(strtoul32(b"4294967297"), Some(1));
    }
}
