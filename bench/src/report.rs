//! The final report: text for people, JSON for scripts and for `mcbench plot`.

use crate::config::Settings;
use crate::runner::{RunResult, Tick};
use crate::stats::ERR_KINDS;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Report {
    pub label: String,
    pub servers: String,
    pub workload: String,
    pub seconds: f64,
    pub requests: u64,
    /// Completed requests per second (a multi-get is one request).
    pub throughput: f64,
    pub gets: u64,
    pub sets: u64,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    pub preload_requests: u64,
    pub preload_errors: u64,
    /// Microseconds.
    pub latency_us: Latency,
    /// (percentile, latency in us), for plots.
    pub percentiles: Vec<(f64, f64)>,
    /// Open loop only: lateness of sends against the schedule, us.
    #[serde(default)]
    pub send_lag_us: Option<Latency>,
    /// --tls: the protocol version, cipher suite and key exchange group negotiated.
    #[serde(default)]
    pub tls: Option<String>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub fn latency(h: &Histogram<u64>) -> Latency {
    Latency {
        p50: us(h.value_at_quantile(0.5)),
        p90: us(h.value_at_quantile(0.9)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        p9999: us(h.value_at_quantile(0.9999)),
        max: us(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// Percentiles at 1 - 10^(-k/10) up to 99.999%, then the max: even steps on the usual
/// log "nines" axis.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut v: Vec<(f64, f64)> = (0..=50)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-(k as f64) / 10.0);
            (q * 100.0, us(h.value_at_quantile(q)))
        })
        .collect();
    v.push((100.0, us(h.max())));
    v
}

pub fn workload_name(s: &Settings) -> String {
    let mut w = format!(
        "{}x{} conns, pipeline {}, {} keys {:?}, values {}-{} B, get:set {}:{}",
        s.threads,
        s.connections,
        s.pipeline,
        s.keys,
        s.key_dist,
        s.value_min,
        s.value_max,
        s.get_weight,
        s.set_weight
    );
    if s.multiget > 1 {
        w += &format!(", multiget {}", s.multiget);
    }
    match s.rate {
        Some(r) => w += &format!(", open loop {r:.0}/s {:?}", s.arrival),
        None => w += ", closed loop",
    }
    if s.tls.is_some() {
        w += ", TLS";
    }
    if let Some(n) = s.reconnect {
        w += &format!(", a new connection every {n} requests");
    }
    w
}

pub fn build(s: &Settings, r: &RunResult) -> Report {
    let c = &r.counts;
    let errors_by_kind = ERR_KINDS
        .iter()
        .zip(c.errors.iter())
        .filter(|(_, &n)| n > 0)
        .map(|(k, &n)| (k.name().to_string(), n))
        .collect();
    Report {
        label: s.label.clone(),
        servers: s
            .servers
            .iter()
            .map(|x| format!("{}:{}", x.host, x.port))
            .collect::<Vec<_>>()
            .join(","),
        workload: workload_name(s),
        seconds: r.seconds,
        requests: c.requests,
        throughput: if r.seconds > 0.0 {
            c.requests as f64 / r.seconds
        } else {
            0.0
        },
        gets: c.gets,
        sets: c.sets,
        hits: c.hits,
        misses: c.misses,
        errors: c.error_total(),
        errors_by_kind,
        error_samples: r.samples.clone(),
        preload_requests: r.preload.requests,
        preload_errors: r.preload.error_total(),
        latency_us: latency(&r.hist),
        percentiles: curve(&r.hist),
        send_lag_us: (s.rate.is_some() && !r.send_lag.is_empty()).then(|| latency(&r.send_lag)),
        tls: s.tls.as_ref().map(|_| crate::link::NEGOTIATED.get().cloned().unwrap_or_else(|| "no handshake completed".into())),
    }
}

fn ms(x: f64) -> String {
    format!("{:.3}", x / 1000.0)
}

pub fn progress_line(t: &Tick) -> String {
    let c = &t.counts;
    let keys = c.hits + c.misses;
    let hit = if keys > 0 {
        100.0 * c.hits as f64 / keys as f64
    } else {
        0.0
    };
    format!(
        "[{:>4}s{}] {:>10} req/s  hit {:5.1}%  p50 {} ms  p99 {} ms  errors {}",
        t.second,
        if t.warmup { " warmup" } else { "" },
        c.requests,
        hit,
        ms(us(t.hist.value_at_quantile(0.5))),
        ms(us(t.hist.value_at_quantile(0.99))),
        c.error_total()
    )
}

pub fn text(r: &Report) -> String {
    let keys = r.hits + r.misses;
    let hit = if keys > 0 {
        100.0 * r.hits as f64 / keys as f64
    } else {
        0.0
    };
    let l = &r.latency_us;
    let mut out = format!(
        "mcbench {} ({})\n  workload   {}\n  measured   {:.2} s, {} requests: {:.0} req/s\n  \
         gets {}  sets {}  hits {}  misses {}  (hit ratio {:.1}%)\n  errors     {}",
        r.label,
        r.servers,
        r.workload,
        r.seconds,
        r.requests,
        r.throughput,
        r.gets,
        r.sets,
        r.hits,
        r.misses,
        hit,
        r.errors
    );
    for (k, n) in &r.errors_by_kind {
        out += &format!("  {k}={n}");
    }
    out += &format!(
        "\n  latency ms p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (mean {})\n",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.p9999),
        ms(l.max),
        ms(l.mean)
    );
    if let Some(g) = &r.send_lag_us {
        out += &format!(
            "  send lag ms p50 {}  p99 {}  p99.9 {}  max {}  (how late requests left vs schedule)\n",
            ms(g.p50), ms(g.p99), ms(g.p999), ms(g.max)
        );
    }
    if let Some(t) = &r.tls {
        out += &format!("  tls        {t}\n");
    }
    if r.preload_requests > 0 {
        out += &format!(
            "  preload    {} sets, {} errors\n",
            r.preload_requests, r.preload_errors
        );
    }
    for s in &r.error_samples {
        out += &format!("  sample     {s}\n");
    }
    out
}
