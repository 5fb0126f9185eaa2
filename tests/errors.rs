//! Table-driven test of bad and unusual input: every case of tests/cases/errors.txt
//! (recorded from real memcached 1.6.18 by scripts/record-cases.py) is replayed
//! against the server under test by the case harness (tests/common/cases.rs), which
//! must send exactly the recorded bytes and leave the connection open or closed as
//! memcached did. Where memcached-rs knowingly differs, the case's `ours` line says
//! what it sends instead (used unless the server under test is memcached).
//!
//! `MC_CASE=<substring>` runs only the matching cases.

mod common;

use common::cases::Table;

fn table() -> Table {
    let t = Table::load("errors.txt");
    assert!(
        t.cases.len() > 100,
        "the table lost cases: {}",
        t.cases.len()
    );
    t
}

#[test]
fn error_table_t1() {
    table().replay("1");
}

#[test]
fn error_table_t2() {
    table().replay("2");
}

#[test]
fn table_parses() {
    table().check_format().unwrap_or_else(|e| panic!("{e}"));
}
