//! Every case of tests/cases/meta.txt (the meta commands (mg ms md ma mn me)), recorded from memcached 1.6.18 by
//! scripts/record-cases.py, replayed against the server under test by the case
//! harness (tests/common/cases.rs) with `-t 1` and `-t 2`.
//! `MC_CASE=<substring>` runs only the matching cases.

mod common;

use common::cases::Table;

const TABLE: &str = "meta.txt";

#[test]
fn meta_table_t1() {
    Table::load(TABLE).replay("1");
}

#[test]
fn meta_table_t2() {
    Table::load(TABLE).replay("2");
}

#[test]
fn table_parses() {
    Table::load(TABLE)
        .check_format()
        .unwrap_or_else(|e| panic!("{e}"));
}
