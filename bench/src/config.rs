//! Command line: the knobs of a run, parsed and checked once so the hot path trusts them.

use crate::ketama::{Mode, Server};
use crate::schedule::Arrival;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Largest value mcbench sends: memcached's default item size limit.
pub const MAX_VALUE: u32 = 1024 * 1024;

#[derive(Parser, Debug)]
#[command(name = "mcbench", version, args_conflicts_with_subcommands = true)]
/// Latency load generator for memcached-compatible servers (text, meta or binary protocol).
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Draw the latency-percentile curves of runs saved with --json, side by side.
    Plot(PlotArgs),
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// JSON reports written by `mcbench --json`.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output file: .svg or .html.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// libmemcached with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED ("libketama compatible").
    Ketama,
    /// libmemcached with MEMCACHED_BEHAVIOR_KETAMA only.
    KetamaPlain,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Classic text commands: `get k1 .. kN`, `set`.
    Text,
    /// Meta commands: `mg KEY v f` (a multi-get: `mg KEY v f k q` per key, then `mn`),
    /// `ms KEY LEN F<flags>`.
    Meta,
    /// The binary protocol: Get (a multi-get: GetKQ per key, then Noop, as libmemcached
    /// sends it), Set with flags.
    Binary,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Which commands to send.
    #[arg(long, value_enum, default_value_t = Protocol::Text)]
    pub protocol: Protocol,
    /// Servers, host:port[:weight], comma separated; several are ketama-hashed.
    #[arg(long, default_value = "127.0.0.1:11211")]
    pub servers: String,
    /// How keys are spread over several servers.
    #[arg(long, value_enum, default_value_t = Distribution::Ketama)]
    pub distribution: Distribution,
    /// Generator threads, one glommio executor each, each pinned to its own CPU.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPUs to pin the threads to, comma separated (default 0,1,...).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Connections per thread (to each server).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Requests in flight per connection (closed loop: exactly; open loop: at most; 64 by
    /// default there).
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u32,
    #[arg(long, default_value = "mcb:")]
    pub key_prefix: String,
    /// uniform or zipf:S (S the exponent, e.g. zipf:0.99).
    #[arg(long, default_value = "uniform")]
    pub key_dist: String,
    /// Value size in bytes: N or MIN-MAX (each key has its own fixed size in the range).
    #[arg(long, default_value = "64-1024")]
    pub value_size: String,
    /// get:set mix, e.g. 9:1; 0:1 is set only.
    #[arg(long, default_value = "9:1")]
    pub ratio: String,
    /// Keys per get (1: plain get; N: "get k1 .. kN").
    #[arg(long, default_value_t = 1)]
    pub multiget: usize,
    /// Seconds to measure (default 10 unless --requests).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many requests in total instead of after a time.
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Set every key once before the run, so gets hit.
    #[arg(long)]
    pub preload: bool,
    /// Open loop: requests per second in total, sent on schedule whatever the replies.
    #[arg(long)]
    pub rate: Option<f64>,
    /// With --rate: Poisson arrivals instead of evenly spaced ones.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Print the final report as JSON on stdout (progress lines go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Write a latency-percentile plot of this run (.svg or .html).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Name of this run in reports and plots.
    #[arg(long)]
    pub label: Option<String>,
    /// No line per second.
    #[arg(long, short)]
    pub quiet: bool,
    /// Speak TLS to the servers (rustls; TLS 1.3 or 1.2, as the server chooses), e.g.
    /// to memcached -Z. Needs --tls-ca or --tls-skip-verify.
    #[arg(long)]
    pub tls: bool,
    /// The CA certificate(s) (PEM) the servers' certificates must chain to.
    #[arg(long, requires = "tls", conflicts_with = "tls_skip_verify")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any server certificate (a throwaway self-signed one); the handshake's
    /// signature is still verified.
    #[arg(long, requires = "tls")]
    pub tls_skip_verify: bool,
    /// The name the certificate must have (default: the first server's host).
    #[arg(long, requires = "tls")]
    pub tls_name: Option<String>,
    /// Close each connection after this many requests and open a new one (with --tls,
    /// a full handshake each time); the first request's latency counts from the connect.
    #[arg(long)]
    pub reconnect: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDist {
    Uniform,
    Zipf(f64),
}

/// The checked form of `RunArgs`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub protocol: Protocol,
    pub servers: Vec<Server>,
    pub mode: Mode,
    pub threads: usize,
    pub cpus: Vec<usize>,
    pub connections: usize,
    pub pipeline: usize,
    pub keys: u32,
    pub key_prefix: Vec<u8>,
    pub key_dist: KeyDist,
    pub value_min: u32,
    pub value_max: u32,
    pub get_weight: u32,
    pub set_weight: u32,
    pub multiget: usize,
    pub duration: Option<f64>,
    pub requests: Option<u64>,
    pub warmup: f64,
    pub preload: bool,
    pub rate: Option<f64>,
    pub arrival: Arrival,
    pub label: String,
    pub tls: Option<crate::link::TlsClient>,
    pub reconnect: Option<u64>,
}

pub fn parse_servers(s: &str) -> Result<Vec<Server>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let mut parts = item.rsplitn(3, ':').collect::<Vec<_>>();
        parts.reverse();
        let (host, port, weight) = match parts.as_slice() {
            [h, p] => (*h, *p, "1"),
            [h, p, w] => (*h, *p, *w),
            _ => return Err(format!("server {item:?}: expected host:port[:weight]")),
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("server {item:?}: bad port"))?;
        let weight = weight
            .parse::<u32>()
            .map_err(|_| format!("server {item:?}: bad weight"))?;
        if host.is_empty() || weight == 0 {
            return Err(format!("server {item:?}: empty host or zero weight"));
        }
        out.push(Server {
            host: host.to_string(),
            port,
            weight,
        });
    }
    if out.is_empty() {
        return Err("no servers".into());
    }
    Ok(out)
}

pub fn parse_key_dist(s: &str) -> Result<KeyDist, String> {
    match s.split_once(':') {
        None if s == "uniform" => Ok(KeyDist::Uniform),
        Some(("zipf", e)) => match e.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Ok(KeyDist::Zipf(x)),
            _ => Err(format!("zipf exponent {e:?}: expected a number > 0")),
        },
        _ => Err(format!(
            "key distribution {s:?}: expected uniform or zipf:S"
        )),
    }
}

pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let min = a
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("value size {s:?}"))?;
    let max = b
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("value size {s:?}"))?;
    if min > max || max > MAX_VALUE {
        return Err(format!("value size {s:?}: need MIN <= MAX <= {MAX_VALUE}"));
    }
    Ok((min, max))
}

pub fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let (g, st) = s
        .split_once(':')
        .ok_or_else(|| format!("ratio {s:?}: expected GET:SET"))?;
    let g = g.parse::<u32>().map_err(|_| format!("ratio {s:?}"))?;
    let st = st.parse::<u32>().map_err(|_| format!("ratio {s:?}"))?;
    if g == 0 && st == 0 {
        return Err("ratio 0:0 sends nothing".into());
    }
    Ok((g, st))
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings, String> {
        let servers = parse_servers(&self.servers)?;
        let (value_min, value_max) = parse_size(&self.value_size)?;
        let (get_weight, set_weight) = parse_ratio(&self.ratio)?;
        if self.threads == 0 || self.connections == 0 || self.keys == 0 || self.multiget == 0 {
            return Err("threads, connections, keys and multiget must be at least 1".into());
        }
        if self.multiget > 100 {
            return Err("multiget is at most 100 keys".into());
        }
        let cpus = match &self.cpus {
            None => (0..self.threads).collect(),
            Some(list) => list
                .split(',')
                .map(|c| c.trim().parse::<usize>().map_err(|_| format!("cpu {c:?}")))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if cpus.is_empty() {
            return Err("--cpus is empty".into());
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err("--rate must be > 0".into());
            }
        }
        let default_pipeline = if self.rate.is_some() { 64 } else { 1 };
        let pipeline = self.pipeline.unwrap_or(default_pipeline);
        if pipeline == 0 || pipeline > 4096 {
            return Err("pipeline must be 1..=4096".into());
        }
        let duration = match (self.duration, self.requests) {
            (None, None) => Some(10.0),
            (d, _) => d,
        };
        if duration.is_some_and(|d| d.is_nan() || d <= 0.0)
            || self.warmup.is_nan()
            || self.warmup < 0.0
        {
            return Err("duration must be > 0 and warmup >= 0".into());
        }
        if self.key_prefix.bytes().any(|b| b <= b' ' || b == 0x7f) || self.key_prefix.len() > 200 {
            return Err("key prefix: no spaces or control characters, at most 200 bytes".into());
        }
        let tls = if self.tls {
            if self.tls_ca.is_none() && !self.tls_skip_verify {
                return Err("--tls needs --tls-ca FILE or --tls-skip-verify".into());
            }
            let name = self.tls_name.clone().unwrap_or_else(|| servers[0].host.clone());
            let ca = self.tls_ca.as_ref().map(|p| p.display().to_string());
            Some(crate::link::TlsClient::new(ca.as_deref(), &name)?)
        } else {
            None
        };
        if self.reconnect == Some(0) {
            return Err("--reconnect must be at least 1".into());
        }
        Ok(Settings {
            tls,
            reconnect: self.reconnect,
            protocol: self.protocol,
            mode: match self.distribution {
                Distribution::Ketama => Mode::Weighted,
                Distribution::KetamaPlain => Mode::Plain,
            },
            label: self.label.clone().unwrap_or_else(|| self.servers.clone()),
            servers,
            threads: self.threads,
            cpus,
            connections: self.connections,
            pipeline,
            keys: self.keys,
            key_prefix: self.key_prefix.as_bytes().to_vec(),
            key_dist: parse_key_dist(&self.key_dist)?,
            value_min,
            value_max,
            get_weight,
            set_weight,
            multiget: self.multiget,
            duration,
            requests: self.requests,
            warmup: self.warmup,
            preload: self.preload,
            rate: self.rate,
            arrival: if self.poisson {
                Arrival::Poisson
            } else {
                Arrival::Constant
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_knobs() {
        assert_eq!(parse_size("1024"), Ok((1024, 1024)));
        assert_eq!(parse_size("64-1024"), Ok((64, 1024)));
        assert!(parse_size("10-5").is_err());
        assert_eq!(parse_ratio("9:1"), Ok((9, 1)));
        assert!(parse_ratio("0:0").is_err());
        assert_eq!(parse_key_dist("zipf:0.99"), Ok(KeyDist::Zipf(0.99)));
        assert!(parse_key_dist("zipf:-1").is_err());
        let s = parse_servers("a:1,b:2:300").unwrap();
        assert_eq!((s[1].host.as_str(), s[1].port, s[1].weight), ("b", 2, 300));
        assert!(parse_servers("nohost").is_err());
    }
}
