//! Warm restart (`-e`, issue #19): the cache survives a stop and a start, across core
//! counts and memory sizes, and a damaged or unfinished save is refused with one log
//! line and an empty cache. Each test runs the real binary, stops it with SIGTERM (or
//! `shutdown`) and starts it again on the same files.
//!
//! Against memcached (`MC_SERVER_BIN`) these are skipped: its `-e` keeps the cache only
//! on SIGUSR1, needs the same settings, and its files are not ours to damage.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Client;

/// A server process on a chosen port, its stderr kept in a file.
struct Proc {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// A free port below the ephemeral range: a server restarted on an ephemeral port
/// can find it taken by a client socket, even by the probe's own connect to it (a
/// TCP self-connect), between the stop and the start.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id() * 7919 + unix_now() as u32;
    loop {
        let port = 20_000 + (seed + NEXT.fetch_add(1, Ordering::Relaxed) * 104_729) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
}

impl Proc {
    fn start(port: u16, args: &[&str], log: &Path) -> Proc {
        Proc::start_limited(port, args, log, None)
    }

    /// With `fsize`: RLIMIT_FSIZE for the server (a disk that fills up).
    fn start_limited(port: u16, args: &[&str], log: &Path, fsize: Option<u64>) -> Proc {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut cmd = Command::new(common::server_bin());
        cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"]).args(args);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                if let Some(limit) = fsize {
                    let l = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    libc::setrlimit(libc::RLIMIT_FSIZE, &l);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("server runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("server exited at start with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let proc = Proc { child, port, log: log.to_path_buf() };
                let pid = proc.client().stats("")["pid"].clone();
                assert_eq!(pid, proc.child.id().to_string(), "port {port} answered by another process");
                return proc;
            }
            assert!(Instant::now() < deadline, "server did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// SIGTERM, then wait for the exit; how long the stop took.
    fn stop(mut self) -> Duration {
        let t = Instant::now();
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = t + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "stopped with {status}");
                return t.elapsed();
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gets key`: (flags, cas, value), or None on a miss.
fn gets(c: &mut Client, key: &str) -> Option<(u32, u64, Vec<u8>)> {
    c.send(format!("gets {key}\r\n"));
    let line = String::from_utf8(c.read_line()).unwrap();
    if line == "END\r\n" {
        return None;
    }
    let f: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!((f[0], f[1]), ("VALUE", key), "{line}");
    let len: usize = f[3].parse().unwrap();
    let mut value = c.read_n(len + 2);
    value.truncate(len);
    c.expect("END\r\n");
    Some((f[2].parse().unwrap(), f[4].parse().unwrap(), value))
}

fn set(c: &mut Client, key: &str, flags: u32, exptime: i64, value: &[u8]) {
    c.send(format!("set {key} {flags} {exptime} {}\r\n", value.len()));
    c.send(value);
    c.send("\r\n");
    c.expect("STORED\r\n");
}

/// Stores `n` keys `<prefix><i>` with flags and values from `i`; what `gets` says of each.
fn fill(c: &mut Client, prefix: &str, n: usize, exptime: i64) -> HashMap<String, (u32, u64, Vec<u8>)> {
    let mut want = HashMap::new();
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let value = format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes();
        set(c, &key, i as u32 * 7, exptime, &value);
    }
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let got = gets(c, &key).expect("just stored");
        want.insert(key, got);
    }
    want
}

fn check_all(c: &mut Client, want: &HashMap<String, (u32, u64, Vec<u8>)>) {
    for (key, v) in want {
        assert_eq!(gets(c, key).as_ref(), Some(v), "{key} after the restart");
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// One test's directory (on tmpfs where there is one, as /run is: segments then live
/// in arena files there), server log, `-e` path and port: what every test starts from.
struct Env {
    dir: tempfile::TempDir,
    log: PathBuf,
    /// The `-e` path: files `<e>.<core>`, arenas `<e>.<core>.arena`.
    e: String,
    port: u16,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("restart-test")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let log = dir.path().join("log");
        let e = dir.path().join("cache").to_str().unwrap().to_string();
        Env { dir, log, e, port: free_port() }
    }

    /// The server with `args` and `-e <e>`, on this test's port and log.
    fn start(&self, args: &[&str]) -> Proc {
        self.start_limited(args, None)
    }

    fn start_limited(&self, args: &[&str], fsize: Option<u64>) -> Proc {
        let args: Vec<&str> = args.iter().copied().chain(["-e", self.e.as_str()]).collect();
        Proc::start_limited(self.port, &args, &self.log, fsize)
    }
}

macro_rules! ours_only {
    () => {
        skip_on_reference!("memcached's -e restores only on SIGUSR1 and with the same settings");
    };
}

fn restart_keeps_items(threads: &str) {
    ours_only!();
    let env = Env::new();
    let e = env.e.as_str();
    let args = ["-t", threads];
    let s = env.start(&args);
    let mut c = s.client();
    let want = fill(&mut c, "k", 500, 0);
    let set_at = unix_now();
    let later = fill(&mut c, "t", 50, 600);
    set(&mut c, "gone-in-gap", 1, 2, b"short-lived");
    set(&mut c, "deleted", 1, 0, b"x");
    c.roundtrip("delete deleted\r\n", "DELETED\r\n");
    let old_max_cas = want.values().chain(later.values()).map(|v| v.1).max().unwrap();
    s.stop();
    assert!(std::fs::metadata(format!("{e}.0")).is_ok(), "a file per core");
    std::thread::sleep(Duration::from_secs(3));
    let s = env.start(&args);
    let mut c = s.client();
    check_all(&mut c, &want);
    check_all(&mut c, &later);
    assert_eq!(gets(&mut c, "gone-in-gap"), None, "expired during the gap: not loaded");
    assert_eq!(gets(&mut c, "deleted"), None);
    set(&mut c, "new", 0, 0, b"n");
    let (_, cas, _) = gets(&mut c, "new").unwrap();
    assert!(cas > old_max_cas, "CAS continues above the saved ones: {cas} <= {old_max_cas}");
    let st = c.stats("");
    assert_eq!(st["restart_restored"], "1");
    assert_eq!(st["restart_items"], "550");
    assert_eq!(st["curr_items"], "551");
    assert!(st["restart_load_seconds"].parse::<f64>().unwrap() < 10.0);
    assert_eq!(c.stats("settings")["memory_file"], e);
    assert!(!Path::new(&format!("{e}.0")).exists(), "files are removed once loaded");
    assert!(s.log().contains("warm restart: restored 550 items"), "{}", s.log());
    // Relative exptimes keep counting across the gap: 600 s from the first set, as a
    // Unix time in the dump.
    c.send("lru_crawler metadump all\r\n");
    let dump = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    let line = dump.lines().find(|l| l.starts_with("key=t0 ")).expect("t0 in the dump");
    let exp: i64 = line.split(' ').find_map(|f| f.strip_prefix("exp=")).unwrap().parse().unwrap();
    assert!((set_at + 598..=set_at + 602).contains(&exp), "exp {exp}, set at {set_at}: {line}");
}

fn flush_all_stays_flushed(threads: &str) {
    ours_only!();
    let env = Env::new();
    let args = ["-t", threads];
    let s = env.start(&args);
    let mut c = s.client();
    fill(&mut c, "before", 100, 0);
    c.roundtrip("flush_all\r\n", "OK\r\n");
    let after = fill(&mut c, "after", 20, 0);
    s.stop();
    let s = env.start(&args);
    let mut c = s.client();
    check_all(&mut c, &after);
    assert_eq!(gets(&mut c, "before0"), None, "flushed before the restart, flushed after");
    assert_eq!(c.stat_u64("curr_items"), 20);
    // A delayed flush that comes due during the gap: nothing it covers comes back.
    c.roundtrip("flush_all 2\r\n", "OK\r\n");
    s.stop();
    std::thread::sleep(Duration::from_secs(3));
    let s = env.start(&args);
    let mut c = s.client();
    assert_eq!(gets(&mut c, "after0"), None, "the delayed flush came due in the gap");
    assert_eq!(c.stat_u64("curr_items"), 0);
}

fn fewer_and_more_cores(_: &str) {
    ours_only!();
    let env = Env::new();
    let s = env.start(&["-t", "2"]);
    let mut c = s.client();
    let want = fill(&mut c, "k", 2000, 0);
    s.stop();
    // The last start is direct again after a re-shard (whose segments were on the heap).
    for t in ["1", "3", "2", "2"] {
        let s = env.start(&["-t", t]);
        let mut c = s.client();
        check_all(&mut c, &want);
        assert_eq!(c.stat_u64("curr_items"), 2000, "-t {t}");
        assert_eq!(c.stat_u64("restart_items"), 2000, "-t {t}");
        s.stop();
    }
}

/// A smaller `-m` keeps the most recently written items: with the same core count
/// (whole segments) and with another (item by item).
fn smaller_memory(threads: &str) {
    ours_only!();
    let env = Env::new();
    let s = env.start(&["-t", "2", "-m", "64"]);
    let mut c = s.client();
    let value = vec![b'v'; 1000];
    let n = 40_000; // about 41 MB
    for i in 0..n {
        c.send(format!("set k{i} {i} 0 1000 noreply\r\n"));
        c.send(&value);
        c.send("\r\n");
    }
    assert_eq!(gets(&mut c, &format!("k{}", n - 1)).unwrap().0, n - 1);
    s.stop();
    let s = env.start(&["-t", threads, "-m", "16"]);
    let mut c = s.client();
    let items = c.stat_u64("curr_items");
    assert!((8_000..16_000).contains(&items), "{items} items in 16 MB");
    assert_eq!(c.stat_u64("restart_items"), items);
    let newest: usize = (n - 2000..n).filter(|i| gets(&mut c, &format!("k{i}")).is_some()).count();
    let oldest: usize = (0..2000).filter(|i| gets(&mut c, &format!("k{i}")).is_some()).count();
    assert!(newest >= 1990, "the newest items are kept: {newest} of 2000");
    assert_eq!(oldest, 0, "the oldest go");
    let (flags, _, v) = gets(&mut c, &format!("k{}", n - 1)).unwrap();
    assert_eq!((flags, v), (n - 1, value));
    assert!(c.stat_u64("bytes") <= 16 << 20);
}

/// Saves, lets `damage` change the files, starts again: the cache must be empty, the
/// server serving, and the log say why in one line containing `why`.
fn refused(damage: impl FnOnce(&Path), why: &str) {
    let env = Env::new();
    let e = env.e.as_str();
    let args = ["-t", "2"];
    let s = env.start(&args);
    let mut c = s.client();
    fill(&mut c, "k", 3000, 0);
    s.stop();
    damage(Path::new(&format!("{e}.0")));
    let before = std::fs::read_to_string(&env.log).unwrap().lines().count();
    let s = env.start(&args);
    let mut c = s.client();
    assert_eq!(c.stat_u64("curr_items"), 0, "nothing from a refused save");
    assert_eq!(c.stat_u64("restart_restored"), 0);
    assert_eq!(gets(&mut c, "k1"), None);
    set(&mut c, "k1", 3, 0, b"fresh");
    assert_eq!(gets(&mut c, "k1").unwrap().2, b"fresh");
    let log = s.log();
    let new: Vec<&str> = log.lines().skip(before).filter(|l| l.contains("restor")).collect();
    assert_eq!(new.len(), 1, "one line: {new:?}");
    assert!(new[0].starts_with("warm restart: not restoring") && new[0].contains(why), "{new:?}");
    assert!(!Path::new(&format!("{e}.0")).exists() && !Path::new(&format!("{e}.1")).exists());
}

/// 512 zero bytes in the middle of `f`'s first `len` bytes (all of it by default).
fn tear(f: &Path, len: Option<usize>) {
    let mut bytes = std::fs::read(f).unwrap();
    let mid = len.unwrap_or(bytes.len()) / 2;
    let end = (mid + 512).min(bytes.len());
    bytes[mid..end].fill(0);
    std::fs::write(f, bytes).unwrap();
}

#[test]
fn torn_file_is_refused() {
    ours_only!();
    refused(|f| tear(f, None), "checksum mismatch");
}

/// On tmpfs the segments stay in `<file>.<core>.arena` (only their places are in the
/// file): damage to their bytes there is found too.
#[test]
fn torn_arena_is_refused() {
    ours_only!();
    refused(
        |f| {
            let arena = f.with_extension("0.arena");
            // Segment 0's records start at offset 0; 3000 keys over two cores fill ~100 KB.
            tear(if arena.exists() { &arena } else { f }, Some(64 << 10));
        },
        "checksum mismatch",
    );
}

#[test]
fn truncated_file_is_refused() {
    ours_only!();
    refused(
        |f| {
            let len = std::fs::metadata(f).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(f).unwrap().set_len(len * 2 / 3).unwrap();
        },
        "truncated",
    );
}

#[test]
fn other_format_version_is_refused() {
    ours_only!();
    refused(
        |f| {
            let mut bytes = std::fs::read(f).unwrap();
            bytes[8..12].copy_from_slice(&999u32.to_le_bytes());
            std::fs::write(f, bytes).unwrap();
        },
        "format 999",
    );
}

#[test]
fn missing_core_file_is_refused() {
    ours_only!();
    refused(
        |f| {
            let other = f.with_extension("1");
            std::fs::remove_file(other).unwrap();
        },
        "did not finish saving",
    );
}

/// The disk fills up during the save (a file size limit of 256 KiB): the stop still
/// ends in bounded time, says the cache was not saved, and leaves no file behind; the
/// next start is empty and serving.
#[test]
fn full_disk_at_shutdown() {
    ours_only!();
    let env = Env::new();
    let s = env.start_limited(&["-t", "2"], Some(256 << 10));
    let mut c = s.client();
    let value = vec![b'v'; 10_000];
    for i in 0..300 {
        set(&mut c, &format!("k{i}"), 0, 0, &value);
    }
    let took = s.stop();
    assert!(took < Duration::from_secs(15), "stop took {took:?}");
    let text = std::fs::read_to_string(&env.log).unwrap();
    assert!(text.contains("warm restart: cache not saved"), "{text}");
    let left: Vec<_> = std::fs::read_dir(env.dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("log")], "no file of the failed save is left");
    let s = env.start(&["-t", "2"]);
    let mut c = s.client();
    assert_eq!(c.stat_u64("curr_items"), 0);
    assert_eq!(c.stat_u64("restart_restored"), 0);
    set(&mut c, "a", 0, 0, b"b");
}

/// The `shutdown` command saves too, and the directory form (`--restart-dir`).
#[test]
fn shutdown_command_and_directory_form() {
    ours_only!();
    let env = Env::new();
    let dir = env.dir.path().join("state");
    let dir = dir.to_str().unwrap();
    let args = ["-t", "2", "-A", "--restart-dir", dir];
    let mut s = Proc::start(env.port, &args, &env.log);
    let mut c = s.client();
    let want = fill(&mut c, "k", 100, 0);
    c.send("shutdown\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(Path::new(dir).join("memcached-rs.cache.1").exists());
    s = Proc::start(env.port, &args, &env.log);
    check_all(&mut s.client(), &want);
}

/// Where mcbench is, built if needed.
fn mcbench() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/mcbench");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo).args(["build", "--release", "-p", "mcbench"]).current_dir(&root).status();
        assert!(ok.is_ok_and(|s| s.success()), "cannot build mcbench");
    }
    bin
}

/// mcbench runs through a restart: every reply it checks is right (errors only from
/// the gap: closed connections, timeouts), and every key the test stored before the
/// SIGTERM reads back after it with its flags and CAS.
fn restart_under_load(threads: &str) {
    ours_only!();
    let env = Env::new();
    let args = ["-t", threads];
    let s = env.start(&args);
    let mut c = s.client();
    let want = fill(&mut c, "mine:", 3000, 0);
    let out = env.dir.path().join("mcbench.json");
    let mut bench = Command::new(mcbench())
        .args(["--servers", &format!("127.0.0.1:{}", env.port), "--connections", "8", "--duration", "6"])
        .args(["--keys", "20000", "--value-size", "10-2000", "--preload", "--json", "-q"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    s.stop();
    let s = env.start(&args);
    let mut c = s.client();
    check_all(&mut c, &want);
    assert!(bench.wait().unwrap().success());
    let mut report = String::new();
    std::fs::File::open(&out).unwrap().read_to_string(&mut report).unwrap();
    let kinds = report.split("\"errors_by_kind\":").nth(1).and_then(|r| r.split('}').next()).unwrap_or("");
    for kind in ["unexpected_reply", "wrong_key", "bad_length", "bad_flags", "bad_data", "server_error", "client_error"] {
        assert!(!kinds.contains(kind), "mcbench saw {kind} across the restart: {kinds}");
    }
    assert!(c.stat_u64("get_hits") > 0, "mcbench's gets hit after the restart");
}

per_threads!(restart_keeps_items, flush_all_stays_flushed, smaller_memory, restart_under_load);

#[test]
fn cores_change() {
    fewer_and_more_cores("");
}
