//! What to ask for: keys, values and the get/set mix. Every value is a pure function of
//! its key and length (a slice of a fixed pattern, its length and a tag in the flags),
//! so a reply can be checked byte for byte without remembering what was stored, even
//! across runs with other value sizes.

use crate::config::{KeyDist, Settings};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::sync::Arc;

/// Bytes the values are cut from; offset by key so neighbouring keys differ.
pub struct Pattern(Vec<u8>);

const PATTERN_STRIDE: u32 = 251;

impl Pattern {
    pub fn new(max_len: u32) -> Pattern {
        let n = (max_len + PATTERN_STRIDE) as usize;
        Pattern(
            (0..n)
                .map(|i| b'a' + ((i * 7 + i / 26) % 26) as u8)
                .collect(),
        )
    }

    /// The value stored under key `idx` when it is `len` bytes long.
    pub fn value(&self, idx: u32, len: u32) -> Option<&[u8]> {
        let off = (idx % PATTERN_STRIDE) as usize;
        self.0.get(off..off + len as usize)
    }
}

/// splitmix64 finaliser: a cheap, well-mixed hash for sizes and tags.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Each key has one size in [min, max], so a hit's length is known in advance.
pub fn value_len(idx: u32, min: u32, max: u32) -> u32 {
    min + (mix(u64::from(idx)) % u64::from(max - min + 1)) as u32
}

/// The flags mcbench stores with key `idx` of length `len`: a check that the value came
/// from this key and has the length it was stored with.
pub fn value_flags(idx: u32, len: u32) -> u32 {
    (mix((u64::from(idx) << 32) | u64::from(len)) >> 32) as u32
}

/// Appends `prefix` + decimal `idx`.
pub fn write_key(out: &mut Vec<u8>, prefix: &[u8], idx: u32) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(itoa::Buffer::new().format(idx).as_bytes());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Get,
    Set,
}

enum Chooser {
    Uniform,
    Zipf(Zipf<f64>),
    /// Preload: every `stride`-th key of the list from `next`.
    Sequential {
        next: usize,
        stride: usize,
    },
}

/// One connection's request stream. `owned` is the list of key indices that live on
/// this connection's server, so keys are drawn only among them.
pub struct Workload {
    rng: SmallRng,
    owned: Arc<Vec<u32>>,
    chooser: Chooser,
    /// `owned` is 0..n in order (one server owns every key): pick indices directly,
    /// sparing a cache miss per key on a list far bigger than the cache.
    identity: bool,
    get_weight: u32,
    total_weight: u32,
    multiget: usize,
}

impl Workload {
    pub fn new(s: &Settings, owned: Arc<Vec<u32>>, seed: u64) -> Workload {
        let chooser = match s.key_dist {
            KeyDist::Zipf(e) if !owned.is_empty() => Zipf::new(owned.len() as u64, e)
                .map(Chooser::Zipf)
                .unwrap_or(Chooser::Uniform),
            _ => Chooser::Uniform,
        };
        Workload {
            rng: SmallRng::seed_from_u64(seed),
            // partition_keys lists each server's keys in order: all of them is 0..n.
            identity: owned.len() == s.keys as usize,
            owned,
            chooser,
            get_weight: s.get_weight,
            total_weight: s.get_weight + s.set_weight,
            multiget: s.multiget,
        }
    }

    /// Sets each owned key once: connection `part` of `parts` takes every `parts`-th.
    pub fn preload(owned: Arc<Vec<u32>>, part: usize, parts: usize) -> Workload {
        Workload {
            rng: SmallRng::seed_from_u64(part as u64),
            owned,
            chooser: Chooser::Sequential {
                next: part,
                stride: parts.max(1),
            },
            identity: false,
            get_weight: 0,
            total_weight: 1,
            multiget: 1,
        }
    }

    fn pick(&mut self) -> Option<u32> {
        let n = self.owned.len();
        if n == 0 {
            return None;
        }
        let i = match &mut self.chooser {
            Chooser::Uniform => self.rng.gen_range(0..n),
            Chooser::Zipf(z) => (z.sample(&mut self.rng) as usize).clamp(1, n) - 1,
            Chooser::Sequential { next, stride } => {
                let i = *next;
                if i >= n {
                    return None;
                }
                *next += *stride;
                i
            }
        };
        if self.identity {
            return Some(i as u32);
        }
        self.owned.get(i).copied()
    }

    /// The next request: its kind, with its keys written to `keys` (cleared first).
    /// None when a preload has set every key, or no key lives on this server.
    pub fn next(&mut self, keys: &mut Vec<u32>) -> Option<OpKind> {
        keys.clear();
        let get = self.rng.gen_range(0..self.total_weight) < self.get_weight;
        let n = if get { self.multiget } else { 1 };
        for _ in 0..n {
            keys.push(self.pick()?);
        }
        Some(if get { OpKind::Get } else { OpKind::Set })
    }
}

/// Key indices per server: which of `keys` each server owns under `continuum`.
pub fn partition_keys(
    keys: u32,
    prefix: &[u8],
    continuum: &crate::ketama::Continuum,
    servers: usize,
) -> Vec<Arc<Vec<u32>>> {
    let mut per: Vec<Vec<u32>> = vec![Vec::new(); servers];
    let mut name = Vec::with_capacity(prefix.len() + 10);
    for idx in 0..keys {
        name.clear();
        write_key(&mut name, prefix, idx);
        per[continuum.server_for(&name)].push(idx);
    }
    per.into_iter().map(Arc::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_in_range_and_are_stable() {
        for idx in 0..10_000 {
            let l = value_len(idx, 64, 1024);
            assert!((64..=1024).contains(&l));
            assert_eq!(l, value_len(idx, 64, 1024));
        }
        assert_eq!(value_len(5, 100, 100), 100);
        let p = Pattern::new(1024);
        assert_eq!(p.value(250, 1024).map(|v| v.len()), Some(1024));
        assert_ne!(p.value(1, 16), p.value(2, 16));
        assert_ne!(value_flags(1, 100), value_flags(1, 101));
    }

    fn settings(args: &[&str]) -> Settings {
        use clap::Parser;
        let cli = crate::config::Cli::try_parse_from(
            std::iter::once("mcbench").chain(args.iter().copied()),
        )
        .expect("args");
        cli.run.settings().expect("settings")
    }

    #[test]
    fn keys_are_drawn_from_the_owned_list_only() {
        let s = settings(&["--keys", "1000", "--ratio", "1:1"]);
        // A share of the keys (as with several servers): only those may be asked for.
        let owned = Arc::new((0..1000u32).filter(|k| k % 3 == 1).collect::<Vec<_>>());
        let mut w = Workload::new(&s, owned.clone(), 1);
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            w.next(&mut keys).expect("a request");
            assert!(keys.iter().all(|k| k % 3 == 1), "{keys:?}");
            seen.extend(keys.iter().copied());
        }
        assert_eq!(seen.len(), owned.len(), "every owned key comes up");
        // Every key (one server): the same draws, straight from the index.
        let all = Arc::new((0..1000u32).collect::<Vec<_>>());
        let (mut a, mut b) = (Workload::new(&s, all.clone(), 7), Workload::new(&s, all, 7));
        b.identity = false;
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            assert_eq!(a.next(&mut ka), b.next(&mut kb));
            assert_eq!(ka, kb);
            assert!(ka.iter().all(|&k| k < 1000));
        }
        assert!(a.identity);
    }

    #[test]
    fn preload_covers_each_owned_key_once() {
        let owned = Arc::new((0..1000u32).collect::<Vec<_>>());
        let mut seen = vec![0u32; 1000];
        let mut keys = Vec::new();
        for part in 0..3 {
            let mut w = Workload::preload(owned.clone(), part, 3);
            while let Some(k) = w.next(&mut keys) {
                assert_eq!(k, OpKind::Set);
                seen[keys[0] as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
    }
}
