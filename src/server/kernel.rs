//! What the server needs from the kernel, checked before any executor starts, so that
//! a kernel that cannot run it stops it with one clear line and a non-zero exit
//! instead of a panic in an executor thread or a server that accepts and never reads.
//!
//! Client sockets go through io_uring only (`stream.rs`): multishot receives into a
//! provided-buffer ring need Linux 6.0 (multishot accept and the buffer ring 5.19,
//! COOP_TASKRUN 5.19; SINGLE_ISSUER|DEFER_TASKRUN, 6.1, is used only where offered).

/// The oldest kernel the server runs on.
pub const MIN_KERNEL: (u32, u32) = (6, 0);

/// Ok, or the one line to print: io_uring refused (disabled by
/// `kernel.io_uring_disabled`, a seccomp profile, an old kernel) or a kernel too old.
pub fn check() -> Result<(), String> {
    let release = kernel_release();
    if let Some(version) = parse_release(&release) {
        if version < MIN_KERNEL {
            return Err(format!(
                "memcached-rs needs Linux {}.{} or later (io_uring multishot receive); this kernel is {release}",
                MIN_KERNEL.0, MIN_KERNEL.1
            ));
        }
    }
    probe_io_uring().map_err(|e| {
        format!("io_uring is not available: {e} (refused by the kernel: kernel.io_uring_disabled, or a container's seccomp profile); memcached-rs serves clients through io_uring only")
    })
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

/// Creates (and closes) a small ring.
fn probe_io_uring() -> std::io::Result<()> {
    // struct io_uring_params: 120 bytes, zeroed means no flags.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(2) with a zeroed params struct of the kernel's size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    unsafe { libc::close(fd as i32) };
    Ok(())
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
