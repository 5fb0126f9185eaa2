//! Tests of the case-table harness itself (tests/common/cases.rs): that it reads a
//! reply as scripts/record-cases.py writes it (stats masks, CAS variables; the
//! vectors below are the recorder's own output), and, against the server under test,
//! that it passes what matches and reports every case that does not, by name and
//! step, with `ours` lines, CAS variables, `args`, `file`/`setup` in effect.

mod common;

use common::cases::reply::{filter_stats, render, substitute, CasVars};
use common::cases::Table;
use common::{escape_pieces, parse_pieces, unescape, Piece};

/// The recorder's rendering of successive replies of one case (`render(apply_stats_filter(..))`).
fn rendered(replies: &[&str], mask: &[&str], keep: &[&str]) -> Vec<String> {
    let globs = |g: &[&str]| {
        g.iter()
            .map(|p| glob::Pattern::new(p).unwrap())
            .collect::<Vec<_>>()
    };
    let (mask, keep) = (globs(mask), globs(keep));
    let mut vars = CasVars::default();
    replies
        .iter()
        .map(|r| {
            escape_pieces(&render(
                &filter_stats(&unescape(r).unwrap(), &mask, &keep),
                &mut vars,
            ))
        })
        .collect()
}

#[test]
fn text_stats_mask_and_keep_as_the_recorder() {
    let reply = "STAT pid 123\\r\\nSTAT cmd_get 0\\r\\nSTAT items:1:age 5\\r\\nEND\\r\\n";
    assert_eq!(
        rendered(&[reply], &["pid", "items:*:age"], &[]),
        ["STAT pid *\\r\\nSTAT cmd_get 0\\r\\nSTAT items:1:age *\\r\\nEND\\r\\n"]
    );
    assert_eq!(
        rendered(&[reply], &["pid"], &["pid", "cmd_*"]),
        ["STAT pid *\\r\\nSTAT cmd_get 0\\r\\nEND\\r\\n"]
    );
}

#[test]
fn binary_stats_mask_fixes_the_body_length() {
    let reply = "\\x81\\x10\\0\\x03\\0\\0\\0\\0\\0\\0\\0\\x07\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0pid4242\\x81\\x10\\0\\x07\\0\\0\\0\\0\\0\\0\\0\\x08\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0threads4\\x81\\x10\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0";
    assert_eq!(
        rendered(&[reply], &["pid"], &[]),
        ["\\x81\\x10\\0\\x03\\0\\0\\0\\0\\0\\0\\0\\x04\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0pid*\\x81\\x10\\0\\x07\\0\\0\\0\\0\\0\\0\\0\\x08\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0threads4\\x81\\x10\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0"]
    );
    assert_eq!(
        rendered(&[reply], &[], &["threads"]),
        ["\\x81\\x10\\0\\x07\\0\\0\\0\\0\\0\\0\\0\\x08\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0threads4\\x81\\x10\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0"]
    );
}

#[test]
fn text_cas_values_become_variables_across_steps() {
    // Data blocks are skipped (c9 inside a value is no CAS), c0 stays literal, the
    // same value keeps its name in a later step and in `me`'s cas=.
    assert_eq!(
        rendered(
            &[
                "STORED\\r\\nVALUE a 0 6 17\\r\\nc9 c9\\r\\nEND\\r\\n",
                "HD c17 c0 t5\\r\\nVA 2 c18\\r\\nc3\\r\\nME a exp=-1 la=0 cas=17 fetch=no cls=1 size=63\\r\\nEX c0\\r\\n",
            ],
            &[],
            &[]
        ),
        [
            "STORED\\r\\nVALUE a 0 6 \\c{1}\\r\\nc9 c9\\r\\nEND\\r\\n",
            "HD c\\c{1} c0 t5\\r\\nVA 2 c\\c{2}\\r\\nc3\\r\\nME a exp=-1 la=0 cas=\\c{1} fetch=no cls=1 size=63\\r\\nEX c0\\r\\n",
        ]
    );
}

#[test]
fn binary_cas_values_become_variables_and_zero_stays() {
    assert_eq!(
        rendered(
            &[
                "\\x81\\x01\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\x05\\x81\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0x",
                "\\x81\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\x05x\\x81\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\x06",
            ],
            &[],
            &[]
        ),
        [
            "\\x81\\x01\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\C{1}\\x81\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\x01\\0\\0\\0\\0\\0\\0\\0\\0x",
            "\\x81\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\0\\0\\0\\x01\\C{1}x\\x81\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\x01\\C{2}",
        ]
    );
}

#[test]
fn sends_get_the_bound_cas_values() {
    let mut vars = CasVars::default();
    render(b"VALUE a 0 1 258\r\nx\r\nEND\r\n", &mut vars);
    let send = parse_pieces("cas a 0 0 1 \\c{1}\\r\\n\\C{1}").unwrap();
    assert_eq!(
        substitute(&send, &vars).unwrap(),
        b"cas a 0 0 1 258\r\n\0\0\0\0\0\0\x01\x02"
    );
    let unbound = parse_pieces("\\c{2}").unwrap();
    assert!(substitute(&unbound, &vars).is_err());
    assert_eq!(
        parse_pieces("a\\{3:b}\\C{2}\\x41").unwrap(),
        [
            Piece::Bytes(b"abbb".to_vec()),
            Piece::Cas { binary: true, n: 2 },
            Piece::Bytes(b"A".to_vec()),
        ]
    );
}

/// Cases every memcached-compatible server passes (classic commands only), using
/// the header's file/setup/$TMP, a case's args, keep/mask, CAS variables in sends.
const GOOD: &str = r#"# header
args -b 512
file $TMP/dir/f.txt hello\n
setup grep -q hello "$TMP/dir/f.txt" && test "$PWD" = "$TMP"
cas

case cas_round_trip
send set a 0 0 1\r\nx\r\ngets a\r\n
expect STORED\r\nVALUE a 0 1 \c{1}\r\nx\r\nEND\r\n
send cas a 0 0 1 \c{1}\r\ny\r\ngets a\r\n
expect STORED\r\nVALUE a 0 1 \c{2}\r\ny\r\nEND\r\n
send gets a\r\n
expect VALUE a 0 1 \c{2}\r\ny\r\nEND\r\n
conn open

case header_and_case_args
args -A
keep maxconns shutdown_command tcp_backlog
mask maxconns
send stats settings\r\n
expect STAT maxconns *\r\nSTAT shutdown_command yes\r\nSTAT tcp_backlog 512\r\nEND\r\n
conn open

case empty_reply_then_close
send set a 0 0 5\r\nhel
expect 
send lo\r\nquit\r\n
expect STORED\r\n
conn closed
"#;

#[test]
fn matching_cases_pass() {
    let t = Table::parse("GOOD", GOOD).unwrap();
    t.check_format().unwrap();
    let out = t.replay_cases("2", None);
    assert_eq!(out.ran, 3);
    assert!(out.failures.is_empty(), "{}", out.failures.join("\n"));
}

/// Each case but the first is wrong in one way; the harness must report each.
const BAD: &str = r#"cas

case passes
send set a 0 0 1\r\nx\r\n
expect STORED\r\n
conn open

case wrong_reply
send set a 0 0 1\r\nx\r\n
expect STORED\r\n
send get a\r\n
expect END\r\n
conn open

case wrong_conn
send set a 0 0 1\r\nx\r\n
expect STORED\r\n
conn closed

case cas_pattern_differs
send set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\ngets a b\r\n
expect STORED\r\nSTORED\r\nVALUE a 0 1 \c{1}\r\nx\r\nVALUE b 0 1 \c{1}\r\ny\r\nEND\r\n
conn open

case extra_bytes
send set a 0 0 1\r\nx\r\nget a\r\n
expect STORED\r\n
conn open
"#;

#[test]
fn every_failing_case_is_reported() {
    let t = Table::parse("BAD", BAD).unwrap();
    let out = t.replay_cases("1", None);
    let report = out.failures.join("\n");
    assert_eq!(out.failures.len(), 4, "{report}");
    assert!(!report.contains("case passes"), "{report}");
    for want in [
        "case wrong_reply (BAD:8), step 1 of 2:\n    sent:     get a\\r\\n\n    expected: END\\r\\n\n    got:      VALUE a 0 1\\r\\nx\\r\\nEND\\r\\n",
        "case wrong_conn (BAD:15): memcached closed the connection, the server under test left it open",
        "case cas_pattern_differs (BAD:20), step 0 of 1:",
        "got:      STORED\\r\\nSTORED\\r\\nVALUE a 0 1 \\c{1}\\r\\nx\\r\\nVALUE b 0 1 \\c{2}\\r\\ny\\r\\nEND\\r\\n",
        // More than expected: the whole reply is shown.
        "case extra_bytes (BAD:25), step 0 of 1:",
        "got:      STORED\\r\\nVALUE a 0 1\\r\\nx\\r\\nEND\\r\\n",
    ] {
        assert!(report.contains(want), "missing {want:?} in:\n{report}");
    }
}

/// `ours` replaces memcached's expectation unless the server under test is memcached.
const OURS: &str = r#"case ours_line
send set a 0 0 1\r\nx\r\n
expect NOT_STORED\r\n
conn open
ours 0 STORED\r\n
"#;

#[test]
fn ours_lines_apply_to_memcached_rs_only() {
    let out = Table::parse("OURS", OURS).unwrap().replay_cases("1", None);
    assert_eq!(
        out.failures.is_empty(),
        !common::is_reference(),
        "{}",
        out.failures.join("\n")
    );
}
