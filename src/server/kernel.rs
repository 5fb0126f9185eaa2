//! What the server needs from the kernel, checked before any executor starts, so that
//! a kernel that cannot run it stops it with one clear line and a non-zero exit
//! instead of a panic in an executor thread or a server that accepts and never reads.
//!
//! Client sockets go through io_uring only (`stream.rs`): multishot receives into a
//! provided-buffer ring need Linux 6.0 (multishot accept and the buffer ring 5.19,
//! COOP_TASKRUN 5.19; SINGLE_ISSUER|DEFER_TASKRUN, 6.1, is used only where offered).
//! Also the two measuring knobs for how the executors use their rings
//! (`MEMCACHED_RS_RING`, `MEMCACHED_RS_SPIN_US`).

use std::time::Duration;

/// The oldest kernel the server runs on.
pub const MIN_KERNEL: (u32, u32) = (6, 0);

/// Ok, or the one line to print: a kernel too old for multishot receives. Whether
/// io_uring is allowed at all is `startup::probe_io_uring`'s question (after dropping
/// root: `kernel.io_uring_disabled=1` allows root only).
pub fn check() -> Result<(), String> {
    let release = kernel_release();
    match parse_release(&release) {
        Some(version) if version < MIN_KERNEL => Err(format!(
            "memcached-rs needs Linux {}.{} or later (io_uring multishot receive); this kernel is {release}",
            MIN_KERNEL.0, MIN_KERNEL.1
        )),
        _ => Ok(()),
    }
}

fn kernel_release() -> String {
    // SAFETY: uname fills the struct it is given.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = uts.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// (major, minor) of a release string such as "6.18.44-fc" or "5.15.0-91-generic".
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_release("6.0"), Some((6, 0)));
        assert_eq!(parse_release("weird"), None);
        assert!(parse_release("5.19.1").unwrap() < MIN_KERNEL);
    }

    #[test]
    fn this_kernel_runs_us() {
        assert_eq!(check(), Ok(()));
    }
}

/// Whether executors create their main ring with SINGLE_ISSUER | DEFER_TASKRUN
/// (completions posted only when the executor enters the ring each turn) rather than
/// COOP_TASKRUN. Either falls back to the next where the kernel refuses it.
pub fn ring_mode_defer() -> bool {
    match std::env::var("MEMCACHED_RS_RING").as_deref() {
        Ok("coop") => false,
        Ok("defer") => true,
        _ => DEFAULT_RING_DEFER,
    }
}

const DEFAULT_RING_DEFER: bool = false;

/// `MEMCACHED_RS_SPIN_US=N`: an executor with nothing to run polls its rings for N µs
/// before it sleeps (glommio's `spin_before_park`), for measuring whether saving the
/// wake-up of a sleeping core pays for the CPU burnt at low load. Off by default.
pub fn spin_before_park() -> Option<Duration> {
    let us: u64 = std::env::var("MEMCACHED_RS_SPIN_US").ok()?.parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}
