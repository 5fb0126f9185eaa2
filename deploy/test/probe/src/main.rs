//! Stand-in for memcached-rs under the real unit, until the server can run there.
//!
//! Started by systemd as `/usr/bin/memcached-rs` with the unit's flags, it checks
//! what the sandbox must allow the server (io_uring_setup under SystemCallFilter and
//! LimitMEMLOCK, sched_setaffinity), runs /usr/bin/memcached with the same flags to
//! serve, and does what the server must do for `Type=notify`: READY=1 once the port
//! accepts, STOPPING=1 on SIGTERM/SIGINT, stop the work, exit 0. Everything it saw
//! goes to $RUNTIME_DIRECTORY/probe.log for the test to read.

#[path = "../../../../src/server/systemd.rs"]
mod systemd;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::TcpStream;
use std::process::{exit, Command};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut log = String::new();
    let _ = writeln!(log, "argv: {}", args.join(" "));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for field in ["Uid:", "NoNewPrivs:", "Seccomp:"] {
        if let Some(line) = status.lines().find(|l| l.starts_with(field)) {
            let _ = writeln!(
                log,
                "{}",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let _ = writeln!(log, "memlock: {}", memlock_limit());
    let _ = writeln!(log, "io_uring_setup: {}", io_uring_setup());
    let _ = writeln!(log, "sched_setaffinity: {}", pin_to_cpu0());
    write_log(&log);

    let port = flag(&args, "-p").unwrap_or("11211").to_string();
    let host = flag(&args, "-l")
        .and_then(|l| l.split(',').next())
        .unwrap_or("127.0.0.1")
        .to_string();
    // memcached-rs's own flags (the warm restart's) mean nothing to memcached.
    let mut forwarded = Vec::new();
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if a == "--restart-dir" || a == "--restart-save-timeout" {
            rest.next();
        } else {
            forwarded.push(a.clone());
        }
    }
    let mut child = match Command::new("/usr/bin/memcached").args(&forwarded).spawn() {
        Ok(child) => child,
        Err(e) => fail(&mut log, &format!("spawn memcached: {e}")),
    };
    // Block the stop signals only now: the child must keep default dispositions.
    let stop_signals = block_stop_signals();

    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((host.as_str(), port.parse::<u16>().unwrap_or(11211))).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            fail(&mut log, "memcached did not listen within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writeln!(log, "listening: {host}:{port}");
    let _ = writeln!(log, "notify READY: {:?}", systemd::notify(systemd::READY));
    write_log(&log);

    let mut signal: libc::c_int = 0;
    // SAFETY: stop_signals is an initialised sigset_t; signal is a valid out pointer.
    unsafe { libc::sigwait(&stop_signals, &mut signal) };
    let _ = writeln!(log, "signal: {signal}");
    let _ = writeln!(
        log,
        "notify STOPPING: {:?}",
        systemd::notify(systemd::STOPPING)
    );
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let waited = child.wait();
    let _ = writeln!(log, "memcached exit: {waited:?}");
    let _ = writeln!(log, "exit: 0");
    write_log(&log);
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn write_log(log: &str) {
    let dir = std::env::var("RUNTIME_DIRECTORY").unwrap_or_else(|_| "/tmp".into());
    // RUNTIME_DIRECTORY may list several, colon-separated; the first is ours.
    let dir = dir.split(':').next().unwrap_or("/tmp").to_string();
    let _ = std::fs::write(format!("{dir}/probe.log"), log);
    let _ = io::stderr().write_all(log.as_bytes());
}

fn fail(log: &mut String, why: &str) -> ! {
    let _ = writeln!(log, "FAIL: {why}");
    write_log(log);
    exit(1)
}

fn memlock_limit() -> String {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return format!("error {}", io::Error::last_os_error());
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "infinity".into()
    } else {
        lim.rlim_cur.to_string()
    }
}

/// The call every glommio executor makes first; a seccomp filter without io_uring
/// refuses it with EPERM, Docker's default profile too.
fn io_uring_setup() -> String {
    // A zeroed struct io_uring_params.
    let mut params = [0u8; 120];
    // SAFETY: params is a zeroed io_uring_params-sized buffer the kernel fills in.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 64u32, params.as_mut_ptr()) };
    if fd < 0 {
        return format!("error {}", io::Error::last_os_error());
    }
    // SAFETY: fd was just returned to us by io_uring_setup.
    unsafe { libc::close(fd as libc::c_int) };
    "ok".into()
}

fn pin_to_cpu0() -> String {
    // SAFETY: the cpu_set_t is zeroed and CPU 0 set before the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return format!("error {}", io::Error::last_os_error());
        }
    }
    "ok".into()
}

fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset operations on a set we own; pthread_sigmask on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
