//! Parser tests. Expected results follow protocol.txt; the error cases are what
//! memcached 1.6.18 sent for the same bytes (recorded with nc against Debian's package).

use super::*;

const LIMITS: Limits = Limits { item_size_max: 1024 * 1024 };

fn done(buf: &[u8]) -> (Request<'_>, usize) {
    match parse(buf, &LIMITS) {
        Parsed::Done { request, consumed } => (request, consumed),
        other => panic!("{:?}: expected a request, got {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn reply(buf: &[u8]) -> &'static [u8] {
    match done(buf).0 {
        Request::Reply(r) => r,
        other => panic!("expected a fixed reply, got {other:?}"),
    }
}

#[test]
fn set_with_data_block() {
    let (req, used) = done(b"set k 5 100 3\r\nabc\r\nget k\r\n");
    assert_eq!(used, 20);
    assert_eq!(
        req,
        Request::Keyed(Keyed {
            key: b"k",
            value: b"abc",
            op: Op::Store { mode: StoreMode::Set, flags: 5, exptime: 100, cas_unique: 0 },
            form: Form::Text { noreply: false, cas: false },
        })
    );
}

#[test]
fn data_block_may_hold_line_ends() {
    let (req, _) = done(b"set k 0 0 4 noreply\r\n\r\n\r\n\r\n");
    assert!(matches!(req, Request::Keyed(Keyed { value: b"\r\n\r\n", form: Form::Text { noreply: true, .. }, .. })));
}

#[test]
fn waits_for_the_whole_data_block() {
    assert_eq!(parse(b"set k 0 0 5\r\nhel", &LIMITS), Parsed::Incomplete { need: 20 });
    assert_eq!(parse(b"set k 0 0 5\r\nhello\r", &LIMITS), Parsed::Incomplete { need: 20 });
    assert_eq!(parse(b"get k", &LIMITS), Parsed::Incomplete { need: 0 });
}

#[test]
fn cas_takes_a_unique() {
    let (req, _) = done(b"cas k 1 2 1 99\r\nx\r\n");
    assert!(matches!(req, Request::Keyed(Keyed { op: Op::Store { mode: StoreMode::Cas, cas_unique: 99, .. }, .. })));
    // memcached: a missing unique is a wrong token count, a bad one a format error.
    assert_eq!(reply(b"cas k 0 0 1\r\nx\r\n"), ERROR);
    assert_eq!(reply(b"cas k 0 0 1 x\r\nx\r\n"), BAD_FORMAT);
}

#[test]
fn bad_data_chunk_consumes_the_declared_length() {
    // memcached reads <bytes>+2 and checks the last two: "helloXX" here.
    let (req, used) = done(b"set k 0 0 5\r\nhelloXX\r\nget k\r\n");
    assert_eq!(req, Request::Reply(BAD_DATA_CHUNK));
    assert_eq!(used, 20);
    let (req, _) = done(b"set k 0 0 5 noreply\r\nhelloXX\r\n");
    assert_eq!(req, Request::Reply(b""));
}

#[test]
fn bare_newlines_end_command_lines_but_not_data_blocks() {
    let (req, used) = done(b"get a b\nrest");
    assert_eq!(used, 8);
    assert!(matches!(req, Request::Multi { form: Form::Text { cas: false, .. }, touch: None, .. }));
    assert_eq!(reply(b"set k 0 0 5\nhello\nget k\n"), BAD_DATA_CHUNK);
}

#[test]
fn too_large_swallows_the_data_block() {
    let parsed = parse(b"set k 0 0 2000000 noreply\r\nxx", &LIMITS);
    let request = Request::Keyed(Keyed {
        key: b"k",
        value: b"",
        op: Op::TooLarge { mode: StoreMode::Set },
        form: Form::Text { noreply: true, cas: false },
    });
    assert_eq!(parsed, Parsed::Swallow { request, consumed: 27, swallow: 2_000_002 });
}

#[test]
fn item_size_limit_matches_memcached() {
    // 1 MiB -I: key "k", the largest value memcached takes is 1048576 - 56 - 2 - 2.
    let fits = format!("set k 0 0 {}\r\n", 1_048_576 - 60);
    assert!(matches!(parse(fits.as_bytes(), &LIMITS), Parsed::Incomplete { .. }));
    let too_big = format!("set k 0 0 {}\r\n", 1_048_576 - 59);
    assert!(matches!(parse(too_big.as_bytes(), &LIMITS), Parsed::Swallow { .. }));
}

#[test]
fn storage_format_errors() {
    let long_key = format!("set {} 0 0 5\r\nhello\r\n", "a".repeat(251));
    assert_eq!(reply(long_key.as_bytes()), BAD_FORMAT);
    assert_eq!(reply(b"set k 0 0 -1\r\n"), BAD_FORMAT);
    assert_eq!(reply(b"set k 0 0 2147483647\r\n"), BAD_FORMAT);
    assert_eq!(reply(b"set k 0 0 4294967295\r\n"), BAD_FORMAT);
    assert_eq!(reply(b"set k 5 abc 1\r\nx\r\n"), BAD_FORMAT);
    assert_eq!(reply(b"set k -1 0 5\r\nhello\r\n"), BAD_FORMAT);
    assert_eq!(reply(b"set k 0 0 abc noreply\r\n"), b"");
    assert_eq!(reply(b"set k 0 0\r\n"), ERROR);
    assert_eq!(reply(b"set k 0 0 5 noreply extra\r\n"), ERROR);
}

#[test]
fn numbers_parse_as_memcacheds_c_does() {
    // flags wrap to 32 bits; '+' is accepted; exptime is an int32.
    let (req, _) = done(b"set k 4294967297 +0 +1\r\nx\r\n");
    assert!(matches!(req, Request::Keyed(Keyed { op: Op::Store { flags: 1, exptime: 0, .. }, .. })));
    let (req, _) = done(b"set k 0 4000000000 1\r\nx\r\n");
    assert!(matches!(req, Request::Keyed(Keyed { op: Op::Store { exptime: -294_967_296, .. }, .. })));
    // a trailing word after "extra" is not noreply
    let (req, _) = done(b"set k 0 0 1 extra\r\nx\r\n");
    assert!(matches!(req, Request::Keyed(Keyed { form: Form::Text { noreply: false, .. }, .. })));
    // incr's delta: a number with whitespace after it is still a number, as in C
    let (req, _) = done(b"incr k 5\t\r\n");
    assert!(matches!(req, Request::Keyed(Keyed { op: Op::Arith { delta: 5, .. }, .. })));
    assert_eq!(reply(b"incr k 5x\r\n"), INVALID_DELTA);
}

#[test]
fn multi_get_keys_in_order() {
    let (req, _) = done(b"gets a  bb ccc\r\n");
    let Request::Multi { keys, touch: None, form: Form::Text { cas: true, .. } } = req else { panic!("{req:?}") };
    assert_eq!(keys.collect::<Vec<_>>(), vec![&b"a"[..], b"bb", b"ccc"]);
    // more keys than memcached's tokenizer splits at once
    let many = format!("get {}\r\n", vec!["k"; 40].join(" "));
    let Request::Multi { keys, .. } = done(many.as_bytes()).0 else { panic!() };
    assert_eq!(keys.count(), 40);
}

#[test]
fn one_long_key_fails_the_whole_get() {
    let line = format!("get k {} k\r\n", "a".repeat(251));
    assert_eq!(reply(line.as_bytes()), BAD_FORMAT);
}

#[test]
fn gat_takes_exptime_first() {
    let (req, _) = done(b"gats 10 a b\r\n");
    assert!(matches!(req, Request::Multi { touch: Some(10), form: Form::Text { cas: true, .. }, .. }));
    assert_eq!(reply(b"gat x k\r\n"), INVALID_EXPTIME);
    // "gat 10" has no keys; memcached answers END.
    let Request::Multi { keys, .. } = done(b"gat 10\r\n").0 else { panic!() };
    assert_eq!(keys.count(), 0);
}

#[test]
fn delete_forms() {
    assert_eq!(done(b"delete k\r\n").0, keyed(b"k", Op::Delete, false));
    assert_eq!(done(b"delete k 0\r\n").0, keyed(b"k", Op::Delete, false));
    assert_eq!(done(b"delete k 0 noreply\r\n").0, keyed(b"k", Op::Delete, true));
    assert_eq!(
        reply(b"delete k 1\r\n"),
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
    );
    assert_eq!(reply(b"delete a b c d\r\n"), ERROR);
    assert_eq!(reply(b"delete\r\n"), ERROR);
}

#[test]
fn arithmetic_and_touch() {
    let (req, _) = done(b"incr k 18446744073709551615\r\n");
    assert_eq!(req, keyed(b"k", Op::Arith { incr: true, delta: u64::MAX }, false));
    assert_eq!(reply(b"decr k x\r\n"), INVALID_DELTA);
    assert_eq!(reply(b"incr k -1\r\n"), INVALID_DELTA);
    assert_eq!(reply(b"incr k\r\n"), ERROR);
    assert_eq!(reply(b"touch k x\r\n"), INVALID_EXPTIME);
    assert_eq!(done(b"touch k 10 noreply\r\n").0, keyed(b"k", Op::Touch { exptime: 10 }, true));
}

#[test]
fn flush_all_forms() {
    let flush = |delay, noreply| Request::Server { cmd: ServerCmd::FlushAll { delay }, form: Form::Text { noreply, cas: false } };
    assert_eq!(done(b"flush_all\r\n").0, flush(0, false));
    assert_eq!(done(b"flush_all noreply\r\n").0, flush(0, true));
    assert_eq!(done(b"flush_all 10 noreply\r\n").0, flush(10, true));
    assert_eq!(done(b"flush_all -1\r\n").0, flush(-1, false));
    assert_eq!(reply(b"flush_all x\r\n"), INVALID_EXPTIME);
}

#[test]
fn small_commands() {
    assert_eq!(done(b"version\r\n").0, server(ServerCmd::Version));
    assert_eq!(done(b"quit\r\n").0, server(ServerCmd::Quit));
    assert_eq!(reply(b"verbosity\r\n"), ERROR);
    assert_eq!(reply(b"verbosity x\r\n"), BAD_FORMAT);
    assert_eq!(
        done(b"verbosity 1 noreply\r\n").0,
        Request::Server { cmd: ServerCmd::Verbosity { level: 1 }, form: Form::Text { noreply: true, cas: false } }
    );
    assert_eq!(done(b"shutdown\r\n").0, server(ServerCmd::Shutdown { graceful: false, valid: true }));
    assert_eq!(done(b"shutdown graceful\r\n").0, server(ServerCmd::Shutdown { graceful: true, valid: true }));
    assert_eq!(done(b"shutdown now\r\n").0, server(ServerCmd::Shutdown { graceful: false, valid: false }));
    assert_eq!(reply(b"cache_memlimit x\r\n"), ERROR);
    assert_eq!(done(b"cache_memlimit 100\r\n").0, server(ServerCmd::CacheMemlimit { megabytes: 100 }));
    assert_eq!(done(b"cache_memlimit 4294967396\r\n").0, server(ServerCmd::CacheMemlimit { megabytes: 100 }));
    assert_eq!(reply(b"mn\r\n"), b"MN\r\n");
    assert_eq!(done(b"stats\r\n").0, server(ServerCmd::Stats(StatsKind::General)));
    assert_eq!(done(b"stats reset\r\n").0, server(ServerCmd::Stats(StatsKind::Reset)));
    assert_eq!(reply(b"stats foo\r\n"), ERROR);
    assert_eq!(reply(b"stats detail\r\n"), b"CLIENT_ERROR usage: stats detail on|off|dump\r\n");
    assert_eq!(reply(b"stats detail on\r\n"), OK);
}

#[test]
fn junk_lines() {
    for line in [&b"\r\n"[..], b"\n", b" \r\n", b"get\r\n", b"x\r\n", b"frobnicate\r\n", b"\x80\r\n"] {
        assert_eq!(reply(line), ERROR, "{line:?}");
    }
    let get_k = Request::Multi { keys: Keys::new(b"k"), touch: None, form: Form::TEXT };
    assert_eq!(done(b"   get k\r\n").0, get_k);
    // a NUL ends the command line, as in C
    assert_eq!(done(b"get k\0junk\r\n").0, get_k);
    assert_eq!(parse(b"GET / HTTP/1.1\r\n", &LIMITS), Parsed::Close);
    // "HTTP/" only closes as the last word of an unknown command
    assert_eq!(reply(b"foo HTTP/1.1 x\r\n"), ERROR);
}

#[test]
fn over_long_lines_close_unless_get() {
    assert_eq!(parse(&[b'x'; 2048], &LIMITS), Parsed::Incomplete { need: 0 });
    assert_eq!(parse(&[b'x'; 2049], &LIMITS), Parsed::Close);
    let mut get = b"get ".to_vec();
    get.resize(3000, b'k');
    assert_eq!(parse(&get, &LIMITS), Parsed::Incomplete { need: 0 });
    get.resize(MAX_GET_LINE + 1, b'k');
    assert_eq!(parse(&get, &LIMITS), Parsed::Close);
}
