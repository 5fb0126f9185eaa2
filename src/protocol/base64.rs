//! memcached's base64 (its `base64.c`), for meta keys sent with `b`. Written out here
//! rather than taken from a crate because its decoder's quirks are part of the protocol
//! a client sees: characters outside the alphabet are skipped, the count of alphabet
//! characters (`=` included) must be a nonzero multiple of 4, decoding stops after the
//! first padded block, and a result of 0 bytes is an error.

const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Not a base64 character.
const SKIP: u8 = 0x80;

const fn decode_table() -> [u8; 256] {
    let mut t = [SKIP; 256];
    let mut i = 0;
    while i < 64 {
        t[TABLE[i] as usize] = i as u8;
        i += 1;
    }
    t[b'=' as usize] = 0;
    t
}

const DTABLE: [u8; 256] = decode_table();

/// Longest key a decoded meta key can be: 250 base64 characters.
pub const MAX_DECODED: usize = 250 / 4 * 3;

/// Decodes `src` into `out` as memcached's `base64_decode`; None where memcached's
/// returns 0 (an error for every meta command). `out` must hold `src.len() / 4 * 3`.
pub fn decode(src: &[u8], out: &mut [u8]) -> Option<usize> {
    let count = src.iter().filter(|&&b| DTABLE[b as usize] != SKIP).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return None;
    }
    let (mut pos, mut n, mut pad) = (0usize, 0usize, 0u32);
    let mut block = [0u8; 4];
    for &b in src {
        let v = DTABLE[b as usize];
        if v == SKIP {
            continue;
        }
        if b == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return None,
                }
                break;
            }
        }
    }
    (pos > 0).then_some(pos)
}

/// Appends the standard base64 of `src` (with `=` padding), as memcached's encoder.
pub fn encode(src: &[u8], out: &mut bytes::BytesMut) {
    for chunk in src.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let quad = [
            TABLE[(b[0] >> 2) as usize],
            TABLE[(((b[0] & 0x03) << 4) | (b[1] >> 4)) as usize],
            if chunk.len() > 1 { TABLE[(((b[1] & 0x0f) << 2) | (b[2] >> 6)) as usize] } else { b'=' },
            if chunk.len() > 2 { TABLE[(b[2] & 0x3f) as usize] } else { b'=' },
        ];
        out.extend_from_slice(&quad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0u8; 512];
        decode(s, &mut out).map(|n| out[..n].to_vec())
    }

    fn enc(s: &[u8]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        encode(s, &mut out);
        out.to_vec()
    }

    #[test]
    fn like_memcached() {
        assert_eq!(dec(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(dec(b"Zm9v!!").as_deref(), Some(&b"foo"[..]), "non-alphabet bytes are skipped");
        assert_eq!(dec(b"AP8=").as_deref(), Some(&b"\0\xff"[..]));
        assert_eq!(dec(b"AA==").as_deref(), Some(&b"\0"[..]));
        assert_eq!(dec(b"Zm9"), None);
        assert_eq!(dec(b"!!!!"), None);
        assert_eq!(dec(b""), None);
        assert_eq!(dec(b"A==="), None, "three pads");
        assert_eq!(dec(b"===="), None);
        assert_eq!(dec(b"AA==Zm9v").as_deref(), Some(&b"\0"[..]), "stops after a padded block");
        assert_eq!(enc(b"foo"), b"Zm9v");
        assert_eq!(enc(b"\0\xff"), b"AP8=");
        assert_eq!(enc(b"\0"), b"AA==");
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            if len > 0 {
                assert_eq!(dec(&enc(&data)).unwrap(), data);
            }
        }
    }
}
