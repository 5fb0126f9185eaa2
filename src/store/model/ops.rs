//! The operations a model run is made of, and how arbitrary bytes decode into them.
//!
//! Split out of `model.rs` (#13): this is the fuzzers' alphabet (what `Op`s exist, which
//! keys and expiry times a byte stands for), apart from the harness that checks the
//! shard's answers to them. Changing what a run can do happens here.

use arbitrary::Arbitrary;


/// The storage command of a `Store` op: memcached's own list (`rules::StoreMode`,
/// which derives `Arbitrary` for the model), not a second copy of it.
pub use crate::rules::StoreMode as Mode;

#[derive(Arbitrary, Debug)]
pub enum Value {
    /// `len` bytes (modulo a bound) of `fill`.
    Filled {
        len: u16,
        fill: u8,
    },
    Number(u64),
    Text(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    Get {
        key: u8,
    },
    Gat {
        key: u8,
        exp: u8,
    },
    Store {
        mode: Mode,
        key: u8,
        flags: u32,
        exp: u8,
        value: Value,
        right_cas: bool,
    },
    Delete {
        key: u8,
    },
    Touch {
        key: u8,
        exp: u8,
    },
    Arith {
        key: u8,
        incr: bool,
        delta: u64,
    },
    Flush,
    Advance {
        secs: u8,
    },
    Reclaim {
        budget: u8,
    },
    /// cache_memlimit, small-limit runs only: a new limit in KiB.
    Limit {
        kib: u8,
    },
}

/// The operations `bytes` decode to, as many as they hold. (`Vec::<Op>::arbitrary_take_rest`
/// refuses the whole input when its last operation runs out of bytes, which most
/// inputs do: the property tests saw about one operation per input through it.)
pub fn ops(bytes: &[u8]) -> Vec<Op> {
    let mut u = arbitrary::Unstructured::new(bytes);
    let mut ops = Vec::new();
    while !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

pub(super) fn key_of(k: u8) -> Vec<u8> {
    match k {
        255 => vec![b'L'; 251], // too long: refused
        254 => vec![b'M'; 250], // the longest key
        253 => Vec::new(),      // empty: refused
        _ => format!("k{}", k % 24).into_bytes(),
    }
}

/// Expiry from a byte: mostly never, else around now (sometimes already past).
pub(super) fn exptime(e: u8, now: u32) -> u32 {
    match e % 8 {
        0..=4 => 0,
        _ => (now + u32::from(e % 6)).saturating_sub(1).max(1),
    }
}
