//! Replays a case table (tests/cases/*.txt, recorded from memcached 1.6.18 by
//! scripts/record-cases.py, whose docstring is the format) against the server under
//! test, over TCP only: each case gets a fresh server started as the recorder starts
//! memcached (its SERVER_ARGS with `-t N`, the table's and the case's `args`, the
//! table's `env`, `file`s written into a fresh $TMP, `setup` run once per replay),
//! one connection, every `send` written and its reply compared byte for byte with
//! the `expect` (after the case's `mask`/`keep` and with CAS values as variables,
//! exactly as the recorder wrote it), then the connection's state asked with the
//! table's probe. Every failing case of a table is reported in one run.
//!
//! Knobs: `MC_CASE=<substring>` replays only the cases whose name contains it;
//! `MC_CASE_JOBS=N` cases at a time (default 4); `MC_CASE_GRACE_MS=N` of silence
//! that end a reply once it matches (default below); `MC_CASE_WHOLE=1` shows the
//! replies of a failing case whole, not clipped (to write an `ours` line from one).

pub mod reply;
mod session;
pub mod table;

pub use table::Table;

use super::notation::{escape, escape_pieces, unescape};
use reply::{filter_stats, render, substitute, CasVars};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use table::Case;

/// scripts/record-cases.py SERVER_ARGS (its `-t 1` becomes `-t N`).
const SERVER_ARGS: [&str; 10] = ["-U", "0", "-t", "1", "-m", "64", "-c", "64", "-I", "1m"];

/// Silence that ends a step once its (non-empty) reply matches the expectation. A
/// reply that does not match, and an expected empty one, wait for the recorder's
/// full IDLE (so what is reported is what the recorder would have recorded, and a
/// send that gets no reply has been read before the next one comes). Short is safe
/// for the verdict: a byte that comes later still shows up, in the next step's
/// reply or in the probe.
const GRACE_MS: u64 = 20;

/// Silence a reply that does not match yet may take before the step ends.
const PATIENCE_MS: u64 = 3000;

/// Cases replayed at a time (each with its own server).
const JOBS: usize = 4;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Table {
    /// Parse tests/cases/`file` (read at run time: a re-recorded table needs no rebuild).
    pub fn load(file: &str) -> Table {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cases")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Table::parse(file, &text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Replay every case (those matching `MC_CASE`) with `-t threads`; panics with
    /// every failing case, else prints how many cases matched and in what time.
    pub fn replay(&self, threads: &str) {
        let filter = std::env::var("MC_CASE").ok();
        let out = self.replay_cases(threads, filter.as_deref());
        assert!(
            out.ran > 0,
            "{}: no case matched MC_CASE={filter:?}",
            self.name
        );
        let server = super::server_bin();
        if !out.failures.is_empty() {
            panic!(
                "{} of {} cases of {} differ from memcached (server {}, -t {threads}, {:.1} s):\n{}",
                out.failures.len(),
                out.ran,
                self.name,
                server.display(),
                out.secs,
                out.failures.join("\n")
            );
        }
        eprintln!(
            "{}: {} cases match memcached (server {}, -t {threads}) in {:.1} s",
            self.name,
            out.ran,
            server.display(),
            out.secs
        );
    }

    /// Replay the cases whose name contains `filter` (all if None), `MC_CASE_JOBS`
    /// at a time, each on its own server.
    pub fn replay_cases(&self, threads: &str, filter: Option<&str>) -> Outcome {
        let cases: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
            .collect();
        let started = Instant::now();
        let replay = Replay::prepare(self, threads);
        let results: Vec<Mutex<Option<Result<(), String>>>> =
            cases.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let jobs = (env_num("MC_CASE_JOBS", JOBS as u64) as usize).clamp(1, cases.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let r = catch_unwind(AssertUnwindSafe(|| replay.run(case, i))).unwrap_or_else(
                        |e| {
                            let msg = e
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            Err(format!("case {}: panicked: {msg}", case.name))
                        },
                    );
                    *results[i].lock().unwrap() = Some(r);
                });
            }
        });
        Outcome {
            ran: cases.len(),
            failures: results
                .into_iter()
                .filter_map(|r| r.into_inner().unwrap().expect("every case ran").err())
                .collect(),
            secs: started.elapsed().as_secs_f64(),
        }
    }
}

/// What a replay found.
pub struct Outcome {
    /// Cases replayed.
    pub ran: usize,
    /// One report per failing case, in table order.
    pub failures: Vec<String>,
    /// Wall time of the replay.
    pub secs: f64,
}

/// One replay of a table: its $TMP (files written, setup run), the server command.
struct Replay<'t> {
    table: &'t Table,
    tmp: tempfile::TempDir,
    /// Where each case's server writes its stderr (shown if it fails to start).
    logs: tempfile::TempDir,
    threads: String,
    bin: PathBuf,
    reference: bool,
    grace: Duration,
    patience: Duration,
}

impl<'t> Replay<'t> {
    fn prepare(table: &'t Table, threads: &str) -> Replay<'t> {
        let tmp = tempfile::Builder::new()
            .prefix("mc-cases.")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let logs = tempfile::Builder::new()
            .prefix("mc-cases-logs.")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let replay = Replay {
            table,
            tmp,
            logs,
            threads: threads.to_string(),
            bin: super::server_bin(),
            reference: super::is_reference(),
            grace: Duration::from_millis(env_num("MC_CASE_GRACE_MS", GRACE_MS)),
            patience: Duration::from_millis(env_num("MC_CASE_PATIENCE_MS", PATIENCE_MS)),
        };
        let h = &table.header;
        for (path, content) in &h.files {
            let path = PathBuf::from(replay.sub(path));
            let bytes = unescape(&replay.sub(content))
                .unwrap_or_else(|e| panic!("{}: file {}: {e}", table.name, path.display()));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            }
            std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for cmd in &h.setup {
            let cmd = replay.sub(cmd);
            let status = std::process::Command::new("sh")
                .args(["-c", &cmd])
                .current_dir(replay.tmp.path())
                .env("TMP", replay.tmp.path())
                .status();
            match status {
                Ok(s) if s.success() => {}
                other => panic!("{}: setup `{cmd}` failed ({other:?}); is its tool installed (scripts/test.sh installs them)?", table.name),
            }
        }
        replay
    }

    /// `$TMP` substituted.
    fn sub(&self, s: &str) -> String {
        s.replace("$TMP", &self.tmp.path().to_string_lossy())
    }

    /// The server's arguments for `case`, in the recorder's order (`-p` is added
    /// by the start).
    fn args(&self, case: &Case) -> Vec<String> {
        let mut args: Vec<String> = ["-l", "127.0.0.1"].iter().map(|s| s.to_string()).collect();
        args.extend(SERVER_ARGS.iter().map(|s| s.to_string()));
        args[5] = self.threads.clone(); // the value after -t
        args.extend(self.table.header.args.iter().map(|a| self.sub(a)));
        args.extend(case.args.iter().map(|a| self.sub(a)));
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            args.extend(["-u".to_string(), "root".to_string()]);
        }
        args
    }

    /// Replay one case; Err is the report of how it differs. A server that exits
    /// during the case fails it: no case of the tables ends its server, so an exit
    /// is a crash (the server is started on a port of its own, see `session::start`,
    /// so it is never another case's).
    fn run(&self, case: &Case, index: usize) -> Result<(), String> {
        let at = format!("case {} ({}:{})", case.name, self.table.name, case.line);
        let env: Vec<(String, String)> = self
            .table
            .header
            .env
            .iter()
            .map(|(k, v)| (k.clone(), self.sub(v)))
            .collect();
        let log = self.logs.path().join(format!("{index}.stderr"));
        let (mut server, conn) = session::start(&self.bin, &self.args(case), &env, &log)
            .map_err(|e| format!("{at}: {e}"))?;
        let verdict = self.replay_on(case, conn).map_err(|e| format!("{at}{e}"));
        match server.exit_status() {
            None => verdict,
            Some(e) => Err(format!("{at}: during the case, {e}")),
        }
    }

    /// The steps and the probe of `case` on a fresh connection to its server.
    fn replay_on(&self, case: &Case, mut conn: session::Conn) -> Result<(), String> {
        let mut vars = CasVars::default();
        let n = case.steps.len();
        for (i, step) in case.steps.iter().enumerate() {
            let want = match &step.ours {
                Some(ours) if !self.reference => ours,
                _ => &step.expect,
            };
            let data =
                substitute(&step.send, &vars).map_err(|e| format!(", step {i} of {n}: {e}"))?;
            let normal = |raw: &[u8], vars: &mut CasVars| {
                render(&filter_stats(raw, &case.mask, &case.keep), vars)
            };
            let raw = if conn.closed {
                Vec::new() // as the recorder: nothing more is sent once the server closed
            } else {
                // An empty expectation is met from the start: it waits the full IDLE,
                // as the recorder did, so that the server has read (and acted on) the
                // send before the next bytes arrive.
                // A reply that has not matched yet waits longer than the recorder's
                // IDLE: on a loaded machine (CI, parallel tests) a server can be
                // descheduled for more than 300 ms, and memcached's replies were
                // recorded on a quiet one. Only a failing case pays for it.
                let patience = if want.is_empty() { session::IDLE } else { self.patience };
                conn.exchange(&data, self.grace, patience, |r| {
                    !want.is_empty() && normal(r, &mut vars.clone()) == *want
                })
            };
            let got = normal(&raw, &mut vars);
            if got != *want {
                let (expected, got) =
                    from_first_difference(escape_pieces(want), escape_pieces(&got));
                return Err(format!(
                    ", step {i} of {n}{}:\n    sent:     {}\n    expected: {}\n    got:      {}{}",
                    if step.ours.is_some() && !self.reference {
                        " (its `ours` line)"
                    } else {
                        ""
                    },
                    clip(escape(&data)),
                    clip(expected),
                    clip(got),
                    if conn.closed {
                        " (then the server closed the connection)"
                    } else {
                        ""
                    }
                ));
            }
        }
        let state = if conn.closed {
            Ok(false)
        } else {
            conn.probe(case.probe)
        };
        match (state, case.stays_open) {
            (Ok(open), want) if open == want => Ok(()),
            (Ok(true), _) => {
                Err(": memcached closed the connection, the server under test left it open".into())
            }
            (Ok(false), _) => {
                Err(": memcached left the connection open, the server under test closed it".into())
            }
            (Err(e), _) => Err(format!(": after the last step, {e}")),
        }
    }
}

/// Long replies that differ late (a stats dump) are shown from a little before
/// their first difference.
fn from_first_difference(a: String, b: String) -> (String, String) {
    let same = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    if same < 300 || whole() {
        return (a, b);
    }
    // escape() writes ASCII only, so any index is a char boundary.
    let from = same - 100;
    let show = |s: &str| format!("[{from} equal characters]...{}", &s[from..]);
    (show(&a), show(&b))
}

/// `MC_CASE_WHOLE=1` shows replies whole (to write an `ours` line from one).
fn whole() -> bool {
    std::env::var_os("MC_CASE_WHOLE").is_some()
}

fn clip(s: String) -> String {
    const MAX: usize = 1000;
    if s.len() <= MAX || whole() {
        return s;
    }
    // escape() writes ASCII only, so any index is a char boundary.
    format!("{}... ({} more characters)", &s[..MAX], s.len() - MAX)
}
