//! Ketama consistent hashing exactly as libmemcached places keys, so that mcbench sends
//! each key to the server a libmemcached client (PHP, pylibmc, memcp) would.
//!
//! libmemcached (`src/libmemcached/hosts.cc`, `update_continuum`) has two ketama modes:
//! - weighted (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`, what "libketama compatible" means
//!   in the PHP and Python clients; switched on by itself as soon as a server has a
//!   weight > 1): key hash md5, 160 points per server for equal weights, made as 40 md5
//!   digests of the point name, 4 little-endian u32 points per digest;
//! - plain (`MEMCACHED_BEHAVIOR_KETAMA` only): 100 points per server, one point per
//!   name; libmemcached 1.1 then keeps its default hash, Jenkins one-at-a-time, for
//!   both the keys and the point names (checked against Debian's libmemcached 1.1.4).
//!
//! The point name is `host:port-N` (N from 0), except that libmemcached leaves out
//! `:port` when the port is memcached's default 11211 (`host-N`).

use md5::{Digest, Md5};

const POINTS_PER_SERVER_KETAMA: f32 = 160.0;
const POINTS_PER_SERVER_PLAIN: u32 = 100;
const DEFAULT_PORT: u16 = 11211;

/// One server as libmemcached knows it: the host string as given (not resolved), since
/// the point names hash the host text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub weight: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Weighted,
    Plain,
}

#[derive(Clone, Copy, Debug)]
struct Point {
    value: u32,
    index: u32,
}

/// The sorted ring of points; `server_for` answers which server index owns a key.
#[derive(Clone, Debug)]
pub struct Continuum {
    points: Vec<Point>,
    servers: usize,
    mode: Mode,
}

/// libmemcached's `hashkit_md5`: the digest's first four bytes, little-endian.
pub fn md5_hash(key: &[u8]) -> u32 {
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// libmemcached's `hashkit_one_at_a_time` (its default hash); bytes are read as C
/// `char`, so sign-extended.
pub fn one_at_a_time(key: &[u8]) -> u32 {
    let mut v: u32 = 0;
    for &b in key {
        v = v.wrapping_add(b as i8 as i32 as u32);
        v = v.wrapping_add(v << 10);
        v ^= v >> 6;
    }
    v = v.wrapping_add(v << 3);
    v ^= v >> 11;
    v.wrapping_add(v << 15)
}

impl Continuum {
    pub fn new(servers: &[Server], mode: Mode) -> Continuum {
        let live = servers.len() as u32;
        let total_weight: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
        let mut points = Vec::new();
        for (index, s) in servers.iter().enumerate() {
            let index = index as u32;
            let (per_server, per_hash) = match mode {
                Mode::Plain => (POINTS_PER_SERVER_PLAIN, 1),
                Mode::Weighted => {
                    // Same float arithmetic as the C code, so rounding matches.
                    let pct = s.weight as f32 / total_weight as f32;
                    let n = (pct * POINTS_PER_SERVER_KETAMA / 4.0 * live as f32 + 0.000_000_000_1)
                        .floor();
                    (n as u32 * 4, 4)
                }
            };
            for n in 0..per_server / per_hash {
                let name = if s.port == DEFAULT_PORT {
                    format!("{}-{}", s.host, n)
                } else {
                    format!("{}:{}-{}", s.host, s.port, n)
                };
                if mode == Mode::Plain {
                    points.push(Point {
                        value: one_at_a_time(name.as_bytes()),
                        index,
                    });
                    continue;
                }
                let d = Md5::digest(name.as_bytes());
                for a in 0..per_hash as usize {
                    let b = &d[a * 4..a * 4 + 4];
                    let value = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    points.push(Point { value, index });
                }
            }
        }
        points.sort_by(|a, b| a.value.cmp(&b.value).then(a.index.cmp(&b.index)));
        Continuum {
            points,
            servers: servers.len(),
            mode,
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The point that owns `hash`: the first at or after it, wrapping to the first.
    pub fn point_for_hash(&self, hash: u32) -> (u32, usize) {
        let i = self.points.partition_point(|p| p.value < hash);
        let p = self.points.get(i).unwrap_or(&self.points[0]);
        (p.value, p.index as usize)
    }

    /// Index (into the server list given to `new`) of the server that owns `key`.
    pub fn server_for(&self, key: &[u8]) -> usize {
        // libmemcached skips hashing altogether for a single server.
        if self.servers <= 1 || self.points.is_empty() {
            return 0;
        }
        let hash = match self.mode {
            Mode::Weighted => md5_hash(key),
            Mode::Plain => one_at_a_time(key),
        };
        self.point_for_hash(hash).1
    }
}

#[cfg(test)]
#[path = "ketama_tests.rs"]
mod tests;
