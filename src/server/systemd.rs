//! sd_notify(3) for `Type=notify` units, without libsystemd.
//!
//! systemd starts us with `$NOTIFY_SOCKET` set and waits for `READY=1` before it
//! calls the unit started (and before `systemctl restart` returns), so clients never
//! reach a half-started server. The protocol is one datagram of newline-separated
//! `KEY=VALUE` lines on a Unix socket: a path, or an abstract name written `@name`.
//! Hand-written rather than the `sd-notify` crate: it is twenty lines of std.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Every core listens: systemd may report the unit started.
pub const READY: &str = "READY=1";
/// Shutdown began (SIGTERM/SIGINT): systemd shows the unit as deactivating.
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` (e.g. [`READY`], or `"STATUS=accepting on 11211"`) to the service
/// manager. `Ok(false)` when not run by systemd (`$NOTIFY_SOCKET` unset or empty), so
/// callers need no special case for a foreground start; `Ok(true)` once sent.
pub fn notify(state: &str) -> io::Result<bool> {
    notify_via(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// `notify` given the value of `$NOTIFY_SOCKET` (None: unset), so tests need not change
/// the environment (`set_var` races with every other thread that reads it).
fn notify_via(socket: Option<&OsStr>, state: &str) -> io::Result<bool> {
    match socket {
        Some(socket) if !socket.is_empty() => notify_to(socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// `notify` with the socket address given, so tests need not touch the environment.
fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let datagram = UnixDatagram::unbound()?;
    let sent = match bytes.first() {
        Some(b'/') => datagram.send_to(state.as_bytes(), socket)?,
        Some(b'@') => send_abstract(&datagram, &bytes[1..], state)?,
        // systemd also knows `vsock:` addresses (VMs); we run on the host only.
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither a path nor an abstract (@) socket",
            ))
        }
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short sd_notify datagram",
        ));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(datagram: &UnixDatagram, name: &[u8], state: &str) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    datagram.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets are Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn temp_socket_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("mcrs-notify-{}-{tag}.sock", std::process::id()))
    }

    #[test]
    fn sends_to_a_path_socket() {
        let path = temp_socket_path("path");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1\nSTATUS=listening").unwrap();
        assert_eq!(receive(&listener), "READY=1\nSTATUS=listening");
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("mcrs-notify-{}-abstract", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(OsStr::new(&format!("@{name}")), STOPPING).unwrap();
        assert_eq!(receive(&listener), STOPPING);
    }

    #[test]
    fn rejects_relative_and_missing_sockets() {
        let relative = notify_to(OsStr::new("relative.sock"), READY).unwrap_err();
        assert_eq!(relative.kind(), io::ErrorKind::InvalidInput);
        let path = temp_socket_path("nobody-listens");
        assert!(notify_to(path.as_os_str(), READY).is_err());
    }

    /// `$NOTIFY_SOCKET` unset or empty: not under systemd, nothing sent, no error; set:
    /// sent there.
    #[test]
    fn notify_follows_the_socket_variable() {
        assert!(!notify_via(None, READY).unwrap());
        assert!(!notify_via(Some(OsStr::new("")), READY).unwrap());

        let path = temp_socket_path("env");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        assert!(notify_via(Some(path.as_os_str()), READY).unwrap());
        assert_eq!(receive(&listener), READY);
        std::fs::remove_file(&path).unwrap();
    }
}
