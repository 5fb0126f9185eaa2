//! Every case of tests/cases/sasl.txt (binary SASL authentication (-S; needs saslpasswd2 from Debian's sasl2-bin to build the sasldb memcached reads)), recorded from memcached 1.6.18 by
//! scripts/record-cases.py, replayed against the server under test by the case
//! harness (tests/common/cases.rs) with `-t 1` and `-t 2`.
//!
//! `MC_CASE=<substring>` runs only the matching cases.

mod common;

use common::cases::Table;

const TABLE: &str = "sasl.txt";

#[test]
fn sasl_table_t1() {
    Table::load(TABLE).replay("1");
}

#[test]
fn sasl_table_t2() {
    Table::load(TABLE).replay("2");
}

#[test]
fn table_parses() {
    Table::load(TABLE)
        .check_format()
        .unwrap_or_else(|e| panic!("{e}"));
}
