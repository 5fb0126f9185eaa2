//! Table-driven test of bad and unusual input: every case of tests/cases/errors.txt
//! (recorded from real memcached 1.6.18 by scripts/record-cases.py) is replayed
//! against the server under test, which must send exactly the recorded bytes and
//! leave the connection open or closed as memcached did.
//!
//! `MC_CASE=<substring>` runs only the matching cases.

mod common;

use common::{escape, unescape, Server};
use std::panic::{catch_unwind, AssertUnwindSafe};

const TABLE: &str = include_str!("cases/errors.txt");

/// Server arguments the table was recorded with (scripts/record-cases.py SERVER_ARGS).
const ARGS: [&str; 6] = ["-m", "64", "-c", "64", "-I", "1m"];

struct Case {
    name: String,
    /// (bytes to send, exact reply expected before the next send)
    steps: Vec<(Vec<u8>, Vec<u8>)>,
    stays_open: bool,
}

fn parse_table(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        let Some(first) = lines.first() else { continue };
        let name = first
            .strip_prefix("case ")
            .unwrap_or_else(|| panic!("block must start with `case`: {first:?}"));
        let mut steps = Vec::new();
        let mut stays_open = None;
        let mut pending_send: Option<Vec<u8>> = None;
        let mut ours = Vec::new();
        for l in &lines[1..] {
            let (tag, rest) = l.split_once(' ').unwrap_or((l, ""));
            let bytes = || unescape(rest).unwrap_or_else(|e| panic!("case {name}: {e} in {l:?}"));
            match tag {
                "send" => {
                    assert!(pending_send.is_none(), "case {name}: send without expect");
                    pending_send = Some(bytes());
                }
                "expect" => {
                    let send = pending_send
                        .take()
                        .unwrap_or_else(|| panic!("case {name}: expect without send"));
                    steps.push((send, bytes()));
                }
                "conn" => stays_open = Some(rest == "open"),
                // `ours N BYTES`: where memcached-rs knowingly differs from memcached,
                // what it sends at step N instead (explained in the case's comment).
                "ours" => {
                    let (step, reply) = rest.split_once(' ').unwrap_or((rest, ""));
                    let step: usize = step.parse().unwrap_or_else(|_| panic!("case {name}: bad ours step"));
                    let reply = unescape(reply).unwrap_or_else(|e| panic!("case {name}: {e}"));
                    ours.push((step, reply));
                }
                _ => panic!("case {name}: unknown line {l:?}"),
            }
        }
        assert!(
            pending_send.is_none(),
            "case {name}: last send has no recorded expect (run scripts/record-cases.py)"
        );
        let stays_open =
            stays_open.unwrap_or_else(|| panic!("case {name}: no recorded `conn` line"));
        if !common::is_reference() {
            for (step, reply) in ours {
                assert!(step < steps.len(), "case {name}: ours step {step} out of range");
                steps[step].1 = reply;
            }
        }
        cases.push(Case {
            name: name.to_string(),
            steps,
            stays_open,
        });
    }
    cases
}

fn run_case(case: &Case, threads: &str) {
    let mut args = vec!["-t", threads];
    args.extend_from_slice(&ARGS);
    let server = Server::start(&args);
    let mut c = server.client();
    for (send, want) in &case.steps {
        // The server may close in the middle of a long send; what it sent counts.
        c.send_lossy(send);
        c.expect(want);
    }
    if case.stays_open {
        c.expect_alive();
    } else {
        c.expect_closed();
    }
}

fn run_table(threads: &str) {
    let cases = parse_table(TABLE);
    assert!(cases.len() > 100, "the table lost cases: {}", cases.len());
    let filter = std::env::var("MC_CASE").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        ran += 1;
        let result = catch_unwind(AssertUnwindSafe(|| run_case(case, threads)));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let sent = case
                .steps
                .iter()
                .map(|(s, _)| escape(s))
                .collect::<Vec<_>>()
                .join(" | ");
            failures.push(format!(
                "case {} (sent {}):\n    {}",
                case.name,
                &sent[..sent.len().min(200)],
                msg.replace('\n', "\n    ")
            ));
        }
    }
    assert!(ran > 0, "no case matched MC_CASE");
    if !failures.is_empty() {
        panic!(
            "{} of {ran} error cases differ from memcached (-t {threads}):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    eprintln!("{ran} error cases match memcached (-t {threads})");
}

#[test]
fn error_table_t1() {
    run_table("1");
}

#[test]
fn error_table_t2() {
    run_table("2");
}

#[test]
fn table_parses() {
    let cases = parse_table(TABLE);
    let names: std::collections::HashSet<_> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "duplicate case names");
    for c in &cases {
        assert!(!c.steps.is_empty(), "case {} sends nothing", c.name);
    }
}
