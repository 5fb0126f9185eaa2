//! Hot keys per core: a count-min sketch with conservative update estimates how often
//! each key was asked for, and a small top-K keeps the keys with the highest estimates.
//!
//! 4 rows of 512 16-bit counters (4 KiB) and 16 entries: a few KiB per core, L1-resident,
//! and a request costs a hash and four counter updates (the top-K is looked at only when
//! the key's estimate beats its smallest entry). Every `DECAY_EVERY` updates all
//! counts halve, so the list follows what is hot now and no counter overflows.

/// Keys kept per core.
pub const TOP_K: usize = 16;
const ROWS: usize = 4;
const WIDTH: usize = 512;
/// Counts halve after this many updates (below u16::MAX, so none saturates).
const DECAY_EVERY: u32 = 32_768;

/// One key of the top-K, with its estimated count since the counts last halved
/// (scaled back up by the halvings, so counts stay comparable over time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotKey {
    pub key: Vec<u8>,
    pub count: u64,
}

pub struct HotKeys {
    sketch: Box<[[u16; WIDTH]; ROWS]>,
    top: Vec<(u64, u32, Vec<u8>)>,
    updates: u32,
    hasher: ahash::RandomState,
}

impl Default for HotKeys {
    fn default() -> Self {
        HotKeys {
            sketch: Box::new([[0; WIDTH]; ROWS]),
            top: Vec::with_capacity(TOP_K),
            updates: 0,
            hasher: ahash::RandomState::with_seeds(0x5eed, 0x1234_5678, 0x9abc_def0, 0x0fed_cba9),
        }
    }
}

impl HotKeys {
    /// One request for `key`.
    #[inline]
    pub fn record(&mut self, key: &[u8]) {
        let hash = self.hasher.hash_one(key);
        let slots = [hash as usize % WIDTH, (hash >> 16) as usize % WIDTH, (hash >> 32) as usize % WIDTH, (hash >> 48) as usize % WIDTH];
        // Conservative update: raise only the counters at the current minimum.
        let estimate = (0..ROWS).map(|r| self.sketch[r][slots[r]]).min().unwrap_or(0).saturating_add(1);
        for r in 0..ROWS {
            let c = &mut self.sketch[r][slots[r]];
            if *c < estimate {
                *c = estimate;
            }
        }
        let estimate = u32::from(estimate);
        if let Some(entry) = self.top.iter_mut().find(|e| e.0 == hash) {
            entry.1 = entry.1.max(estimate);
        } else if self.top.len() < TOP_K {
            self.top.push((hash, estimate, key.to_vec()));
        } else {
            let (i, min) = self.top.iter().enumerate().map(|(i, e)| (i, e.1)).min_by_key(|&(_, c)| c).unwrap_or((0, 0));
            if estimate > min {
                let entry = &mut self.top[i];
                entry.0 = hash;
                entry.1 = estimate;
                entry.2.clear();
                entry.2.extend_from_slice(key);
            }
        }
        self.updates += 1;
        if self.updates >= DECAY_EVERY {
            self.decay();
        }
    }

    fn decay(&mut self) {
        self.updates = 0;
        for row in self.sketch.iter_mut() {
            for c in row.iter_mut() {
                *c >>= 1;
            }
        }
        for e in &mut self.top {
            e.1 >>= 1;
        }
        self.top.retain(|e| e.1 > 0);
    }

    /// The top keys, most requested first.
    pub fn top(&self) -> Vec<HotKey> {
        let mut top: Vec<HotKey> = self.top.iter().map(|(_, c, k)| HotKey { key: k.clone(), count: u64::from(*c) }).collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_keys_win_over_a_long_tail() {
        let mut h = HotKeys::default();
        for round in 0..2000u32 {
            for hot in 0..5u32 {
                for _ in 0..(5 - hot) {
                    h.record(format!("hot{hot}").as_bytes());
                }
            }
            h.record(format!("cold{round}").as_bytes());
            h.record(format!("cold{}", round * 7 + 1).as_bytes());
        }
        let top: Vec<String> = h.top().iter().take(5).map(|k| String::from_utf8(k.key.clone()).unwrap()).collect();
        assert_eq!(top, ["hot0", "hot1", "hot2", "hot3", "hot4"]);
    }
}
