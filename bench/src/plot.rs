//! Latency-percentile plot (the HdrHistogram kind: "nines" on a log x axis, latency on a
//! log y axis) of one or more runs side by side, as SVG or as an HTML page around it.

use crate::report::Report;
use std::fmt::Write;
use std::path::Path;

const W: f64 = 900.0;
const H: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 120.0;
const X_MAX: f64 = 6.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Position on the x axis: the number of nines (90% = 1, 99% = 2, ...); the max at the end.
fn x_of(pct: f64) -> f64 {
    if pct >= 100.0 {
        X_MAX
    } else {
        (1.0 / (1.0 - pct / 100.0)).log10().min(X_MAX - 0.5)
    }
}

pub fn svg(runs: &[Report]) -> String {
    let pts = runs
        .iter()
        .flat_map(|r| r.percentiles.iter().map(|p| p.1))
        .filter(|v| *v > 0.0);
    let (lo, hi) = pts.fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    } else {
        (0.0, 1.0)
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + x / X_MAX * pw;
    let py = |us: f64| TOP + ph - (us.max(1e-3).log10() - lo) / (hi - lo) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">Latency by percentile</text>
"#,
        W / 2.0
    );
    // Grid: decades of latency, nines of percentile.
    for d in (lo as i32)..=(hi as i32) {
        let us = 10f64.powi(d);
        let label = if us >= 1000.0 {
            format!("{} ms", us / 1000.0)
        } else {
            format!("{us} µs")
        };
        let y = py(us);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{label}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let ticks = [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
        (X_MAX, "max"),
    ];
    for (x, label) in ticks {
        let xx = px(x);
        let _ = writeln!(
            s,
            r##"<line x1="{xx}" x2="{xx}" y1="{TOP}" y2="{}" stroke="#ddd"/><text x="{xx}" y="{}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    for (i, r) in runs.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let path: Vec<String> = r
            .percentiles
            .iter()
            .map(|&(p, v)| format!("{:.1},{:.1}", px(x_of(p)), py(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + ph + 40.0 + 18.0 * i as f64;
        let l = &r.latency_us;
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="{c}" stroke-width="3"/><text x="{}" y="{ly}">{}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, errors {}</text>"#,
            LEFT + 24.0,
            ly - 4.0,
            ly - 4.0,
            LEFT + 30.0,
            esc(&r.label),
            r.throughput,
            l.p50 / 1e3,
            l.p99 / 1e3,
            l.p999 / 1e3,
            r.errors
        );
    }
    s.push_str("</svg>\n");
    s
}

pub fn html(runs: &[Report]) -> String {
    let mut s = String::from("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mcbench</title></head><body>\n");
    s += &svg(runs);
    s += "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse;font-family:sans-serif\">\n<tr><th>run</th><th>workload</th><th>req/s</th><th>p50 ms</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>errors</th></tr>\n";
    for r in runs {
        let l = &r.latency_us;
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            esc(&r.label), esc(&r.workload), r.throughput, l.p50 / 1e3, l.p90 / 1e3, l.p99 / 1e3, l.p999 / 1e3, l.p9999 / 1e3, l.max / 1e3, r.errors
        );
    }
    s += "</table></body></html>\n";
    s
}

/// Writes the plot; the file's extension chooses SVG or HTML.
pub fn write(path: &Path, runs: &[Report]) -> Result<(), String> {
    let body = match path.extension().and_then(|e| e.to_str()) {
        Some("html") | Some("htm") => html(runs),
        Some("svg") => svg(runs),
        _ => {
            return Err(format!(
                "{}: plot file must end in .svg or .html",
                path.display()
            ))
        }
    };
    std::fs::write(path, body).map_err(|e| format!("{}: {e}", path.display()))
}
