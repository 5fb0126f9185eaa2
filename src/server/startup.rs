//! Start-up steps around the server proper: `-d` (detach), `-P` (pid file), `-u`
//! (dropping root), the locked-memory limit io_uring lives with, and a probe that
//! io_uring is allowed at all.
//!
//! Every failure here is one clear line on stderr and a non-zero exit status, never a
//! silent exit 0: systemd's `Restart=on-failure`, Docker's restart policies and
//! `memcached-rs -d` callers act on the status.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// memcached's exit statuses (sysexits.h).
pub const EX_NOUSER: i32 = 67;
pub const EX_OSERR: i32 = 71;

/// A start-up failure: the line to print and the exit status.
pub type Failure = (String, i32);

/// glommio's default ring depth (entries per ring, three rings per executor).
const DEFAULT_RING_DEPTH: usize = 128;
/// glommio's own minimum RLIMIT_MEMLOCK (see vendor/glommio/PATCHES.md, patch 12).
const GLOMMIO_MEMLOCK_MINIMUM: u64 = 512 * 1024;

/// `-d`: the write end of the pipe the waiting parent reads; -1 when not detached.
static DAEMON_READY_FD: AtomicI32 = AtomicI32::new(-1);

/// `-d`: forks; the parent waits until the child is serving (exit 0) or has failed (the
/// child's status), so a failure to start is never reported as success. memcached's
/// parent exits 0 at once, before the child even binds its port. Returns in the child.
pub fn detach() -> Result<(), Failure> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err((format!("failed to daemon() in order to daemonize: {}", io::Error::last_os_error()), EX_OSERR));
    }
    let [read_end, write_end] = fds;
    // SAFETY: called before any thread exists; the child continues alone.
    match unsafe { libc::fork() } {
        -1 => Err(("failed to daemon() in order to daemonize".into(), EX_OSERR)),
        0 => {
            // SAFETY: plain syscalls on fds we own.
            unsafe {
                libc::close(read_end);
                libc::setsid();
            }
            DAEMON_READY_FD.store(write_end, Ordering::Relaxed);
            Ok(())
        }
        child => {
            // SAFETY: plain syscalls on fds and a pid we own.
            unsafe {
                libc::close(write_end);
                let mut byte = 0u8;
                let n = loop {
                    let n = libc::read(read_end, (&mut byte as *mut u8).cast(), 1);
                    if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                        break n;
                    }
                };
                if n == 1 {
                    std::process::exit(0);
                }
                // The child closed the pipe without being ready: it has exited (its
                // own message is already on the shared stderr). Report its status.
                let mut status = 0;
                libc::waitpid(child, &mut status, 0);
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                std::process::exit(if code == 0 { 1 } else { code });
            }
        }
    }
}

/// Tells a waiting `-d` parent that we serve, and then, as memcached's `daemonize`
/// does unless `-v`, points stdin, stdout and stderr at /dev/null.
pub fn detached_ready(verbosity: u8) {
    let fd = DAEMON_READY_FD.swap(-1, Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        libc::write(fd, b"R".as_ptr().cast(), 1);
        libc::close(fd);
        if verbosity == 0 {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for target in 0..3 {
                    libc::dup2(null, target);
                }
                if null > 2 {
                    libc::close(null);
                }
            }
        }
    }
}

/// `-P`: memcached writes `PATH.tmp` and renames it into place. memcached carries on
/// when it cannot; we stop, as for every other start-up failure: an init script or
/// monitor reading the file would otherwise act on a stale or missing pid.
pub fn write_pid_file(path: &Path) -> Result<(), Failure> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = Path::new(&temp);
    std::fs::write(temp, format!("{}\n", std::process::id()))
        .map_err(|e| (format!("Could not open the pid file {} for writing: {e}", temp.display()), EX_OSERR))?;
    std::fs::rename(temp, path).map_err(|e| {
        let _ = std::fs::remove_file(temp);
        (format!("Could not rename the pid file from {} to {}: {e}", temp.display(), path.display()), EX_OSERR)
    })
}

/// `-u USER`, as memcached: only when started as root, become USER (no supplementary
/// groups, USER's primary group, USER's uid), with memcached's messages and statuses.
/// Called after the TCP ports are bound (so a port below 1024 works, which memcached,
/// dropping before it binds, cannot do) and before any executor starts serving.
///
/// As root without `-u`, memcached refuses to start ("can't run as root without the -u
/// switch"); we warn instead, so `cargo run` in a root shell or a container still works.
pub fn drop_privileges(user: Option<&str>) -> Result<(), Failure> {
    // SAFETY: getuid and geteuid cannot fail.
    let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
    if !root {
        return Ok(());
    }
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        eprintln!(
            "warning: running as root without -u USER (memcached refuses to start so); \
             give -u USER to drop root after binding"
        );
        return Ok(());
    };
    let no_user = || (format!("can't find the user {user} to switch to"), EX_NOUSER);
    let name = CString::new(user).map_err(|_| no_user())?;
    // SAFETY: getpwnam returns a pointer into static storage or null; the signal thread
    // (the only other thread yet) never calls it. We copy the ids out at once.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(no_user());
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    // SAFETY: plain syscalls; glibc applies setgid/setuid to every thread of the process.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            // EPERM: already without the privilege to change groups; carry on, as memcached.
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err((format!("failed to drop supplementary groups: {e}"), EX_OSERR));
            }
            eprintln!("failed to drop supplementary groups: {e}");
        }
        if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err((format!("failed to assume identity of user {user}"), EX_OSERR));
        }
    }
    Ok(())
}

/// The ring depth the executors use, after making room in RLIMIT_MEMLOCK.
///
/// glommio refuses to start below 512 KiB of lockable memory, and many containers give
/// 64 KiB. First the soft limit is raised to the hard one. If that is still too low and
/// the process lacks CAP_IPC_LOCK (the kernel then charges io_uring rings and registered
/// buffers to the limit, per user), the rings are made shallower to fit and glommio's
/// registered I/O buffer is left out (memcached-rs does no file I/O); if even the
/// smallest rings do not fit, the start fails with what to change. `-v` says what was
/// done. Called after `drop_privileges`: the user that will own the rings counts.
pub fn fit_locked_memory(threads: usize, verbosity: u8) -> Result<usize, Failure> {
    let (mut soft, hard) = memlock_limit();
    if soft < GLOMMIO_MEMLOCK_MINIMUM && hard > soft {
        let raised = libc::rlimit { rlim_cur: hard, rlim_max: hard };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            if verbosity > 0 {
                eprintln!("raised the RLIMIT_MEMLOCK soft limit from {} to {}", kib(soft), kib(hard));
            }
            soft = hard;
        }
    }
    if soft >= GLOMMIO_MEMLOCK_MINIMUM {
        return Ok(DEFAULT_RING_DEPTH);
    }
    let raise = "raise it (systemd: LimitMEMLOCK=infinity; docker: --ulimit memlock=-1; shell: ulimit -l unlimited)";
    glommio::set_low_memlock(soft);
    if has_cap_ipc_lock() {
        if verbosity > 0 {
            eprintln!(
                "RLIMIT_MEMLOCK is {}, below glommio's {}: running anyway (CAP_IPC_LOCK: not charged to it)",
                kib(soft),
                kib(GLOMMIO_MEMLOCK_MINIMUM)
            );
        }
        return Ok(DEFAULT_RING_DEPTH);
    }
    let Some(depth) = fit_ring_depth(soft, threads) else {
        let need = RING_SLACK + threads as u64 * executor_bytes(MIN_RING_DEPTH);
        let message = format!(
            "RLIMIT_MEMLOCK is {}: too low for the io_uring rings of {threads} executors (they need {}); {raise}, or lower -t",
            kib(soft),
            kib(need)
        );
        return Err((message, EX_OSERR));
    };
    if verbosity > 0 {
        let rings = if depth < DEFAULT_RING_DEPTH {
            format!("io_uring rings of {depth} entries (instead of {DEFAULT_RING_DEPTH}) and ")
        } else {
            String::new()
        };
        eprintln!(
            "RLIMIT_MEMLOCK is {}, below glommio's {}: running with {rings}no registered I/O buffers; {raise}",
            kib(soft),
            kib(GLOMMIO_MEMLOCK_MINIMUM)
        );
    }
    Ok(depth)
}

/// The provided-buffer ring (client sockets' receive buffers, registered at start)
/// refused, in one line: ENOMEM is the locked-memory limit (the ring is pinned and
/// charged to it), anything else a kernel without it.
pub fn buffer_ring_failure(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        let (soft, _) = memlock_limit();
        format!(
            "io_uring provided-buffer ring: {e}: RLIMIT_MEMLOCK is {}, shared by every process of this user; \
             raise it (systemd: LimitMEMLOCK=infinity; docker: --ulimit memlock=-1; shell: ulimit -l unlimited)",
            kib(soft)
        )
    } else {
        format!("io_uring provided-buffer ring: {e} (memcached-rs needs Linux 6.0 or later)")
    }
}

/// An executor glommio could not build, in one line; ENOMEM under a low RLIMIT_MEMLOCK
/// says what to change: the kernel charges rings to the user, so other processes of the
/// same user (another instance, one that just exited) take from the same budget.
pub fn executor_failure(executor: usize, error: &str) -> String {
    let (soft, _) = memlock_limit();
    if error.contains("os error 12") && soft < GLOMMIO_MEMLOCK_MINIMUM {
        format!(
            "failed to start executor {executor}: {error}: RLIMIT_MEMLOCK is {}, shared by every process of this \
             user; raise it (systemd: LimitMEMLOCK=infinity; docker: --ulimit memlock=-1; shell: ulimit -l unlimited)",
            kib(soft)
        )
    } else {
        format!("failed to start executor {executor}: {error}")
    }
}

/// Whether CAP_IPC_LOCK is in our effective set (bit 14 of /proc/self/status's CapEff):
/// then nothing we lock is charged to RLIMIT_MEMLOCK.
fn has_cap_ipc_lock() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// linux/capability.h's bit for CAP_IPC_LOCK.
const CAP_IPC_LOCK: u32 = 14;

/// glommio's three rings per executor (main, latency, poll).
const RINGS_PER_EXECUTOR: u64 = 3;
/// Each executor's provided-buffer ring for client receives (glommio patch 10's
/// `netops`: 1024 entries of 16 bytes), pinned and charged like the rings.
const BUFFER_RING_BYTES: u64 = 16 << 10;
/// Room for the short-lived probe rings (ours and glommio's), whose memory the kernel
/// may release a little after they are closed.
const RING_SLACK: u64 = 16 << 10;
const MIN_RING_DEPTH: usize = 16;

/// The deepest rings (128, 64, 32, 16 entries) whose locked memory, each executor's
/// three rings and buffer ring plus the probes' slack, fits in `limit` bytes.
fn fit_ring_depth(limit: u64, threads: usize) -> Option<usize> {
    let mut depth = DEFAULT_RING_DEPTH;
    while depth >= MIN_RING_DEPTH {
        if RING_SLACK + threads as u64 * executor_bytes(depth) <= limit {
            return Some(depth);
        }
        depth /= 2;
    }
    None
}

/// One executor's locked memory at this ring depth.
fn executor_bytes(depth: usize) -> u64 {
    RINGS_PER_EXECUTOR * ring_bytes(depth) + BUFFER_RING_BYTES
}

/// One ring's locked memory (an estimate from the kernel's layout): the SQ and CQ rings
/// (one mapping: header, SQ index array, CQ of twice the entries at 16 bytes) and the
/// SQE array (64 bytes each), each rounded up to pages.
fn ring_bytes(depth: usize) -> u64 {
    let page = |n: usize| n.div_ceil(4096) * 4096;
    (page(128 + 4 * depth + 16 * 2 * depth) + page(64 * depth)) as u64
}

fn memlock_limit() -> (u64, u64) {
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) != 0 {
            return (u64::MAX, u64::MAX);
        }
        (limit.rlim_cur, limit.rlim_max)
    }
}

fn kib(bytes: u64) -> String {
    if bytes == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// Creates and closes a tiny io_uring, so that a kernel or sandbox that refuses io_uring
/// is named in one line instead of surfacing as an executor that failed to build. Run
/// after `drop_privileges`: `kernel.io_uring_disabled=1` allows root only.
pub fn probe_io_uring() -> Result<(), Failure> {
    // struct io_uring_params: 120 bytes, zeroed: no flags.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup writes into the params struct we pass; we close its fd.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: we own the fd just returned.
        unsafe { libc::close(fd as RawFd) };
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let why = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            "io_uring is refused: check `sysctl kernel.io_uring_disabled` (0 allows it; 1 allows root and \
             kernel.io_uring_group only; 2 refuses all) and the seccomp filter (Docker's default profile refuses \
             io_uring: --security-opt seccomp=seccomp-io_uring.json, see deploy/docker/)"
        }
        Some(libc::ENOSYS) => "io_uring is not available: Linux 5.8 or later is needed (gVisor and some sandboxes lack it)",
        Some(libc::ENOMEM) => "no memory for an io_uring: raise RLIMIT_MEMLOCK (LimitMEMLOCK=infinity, --ulimit memlock=-1)",
        _ => "cannot create an io_uring",
    };
    Err((format!("{why} (io_uring_setup: {e})"), EX_OSERR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_depth_fits_the_limit() {
        // 128 entries: 8 KiB of rings + 8 KiB of SQEs; 64 and fewer: a page each.
        assert_eq!(ring_bytes(128), 16 << 10);
        assert_eq!(ring_bytes(64), 8 << 10);
        assert_eq!(ring_bytes(16), 8 << 10);
        // Per executor: 3 rings + a 16 KiB buffer ring; 16 KiB of slack for probes.
        assert_eq!(executor_bytes(128), 64 << 10);
        assert_eq!(executor_bytes(64), 40 << 10);
        assert_eq!(fit_ring_depth(512 << 10, 2), Some(128));
        assert_eq!(fit_ring_depth(128 << 10, 2), Some(64));
        assert_eq!(fit_ring_depth(64 << 10, 1), Some(64));
        assert_eq!(fit_ring_depth(64 << 10, 2), None);
        assert_eq!(fit_ring_depth(0, 1), None);
    }
}
