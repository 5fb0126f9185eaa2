//! Listening sockets and the accept loop.
//!
//! Every executor has its own socket on each TCP address, with SO_REUSEPORT, so the
//! kernel spreads incoming connections over the cores with no hand-off between threads
//! (by a hash, or with `-o cpu_steering` by the CPU that took the SYN). A UNIX socket
//! cannot be shared that way; executor 0 alone listens on it.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use socket2::{Domain, Protocol, Socket, Type};

use super::connection::Connection;
use super::core::Core;
use super::forward::ConnInfo;
use super::stream::{RingListener, RingStream};
use crate::config::Config;
use crate::protocol::text_reply::TOO_MANY_CONNECTIONS;

/// The TCP addresses to listen on: `-l`'s list, or every interface (IPv4 and IPv6).
pub fn tcp_addresses(config: &Config) -> Result<Vec<SocketAddr>, String> {
    if config.tcp_port == 0 {
        return Ok(Vec::new()); // memcached: -p 0 turns TCP off
    }
    if config.listen.is_empty() {
        if config.unix_socket.is_some() {
            return Ok(Vec::new()); // memcached: -s alone turns TCP off
        }
        return Ok(vec![
            SocketAddr::from(([0, 0, 0, 0], config.port)),
            SocketAddr::from(([0u16; 8], config.port)),
        ]);
    }
    let mut addresses = Vec::new();
    for listen in &config.listen {
        let resolved = listen
            .to_socket_addrs()
            .map_err(|e| format!("getaddrinfo(): {e} ({listen})"))?;
        addresses.extend(resolved);
    }
    Ok(addresses)
}

/// Fails if another process already listens on `addr`, as memcached's bind would.
///
/// Our executors share each port through SO_REUSEPORT, and SO_REUSEPORT would just as
/// happily let a second server (a stale instance, a typo in a unit file) share it,
/// splitting clients between two caches. A socket bound without SO_REUSEPORT conflicts
/// with every existing listener, so binding one first tells us the port is ours.
pub fn check_port_free(addr: SocketAddr) -> std::io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    probe.bind(&addr.into())
}

/// A non-blocking listening socket with SO_REUSEPORT, bound to `addr`.
pub fn bind_tcp(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; not in libc for Linux targets).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Makes the kernel hand a new connection on `listener`'s port to the executor pinned
/// to the CPU that processed its SYN: executor `i` listens on the group's `i`th socket
/// (the sockets are bound in executor order) and runs on `executor_cpus[i]`.
///
/// Why: that CPU ran the connection's network stack (the RX queue's CPU on a NIC with
/// RSS; the client's CPU over loopback), so the connection's wake-ups and socket
/// buffers stay on one core instead of crossing to another executor's. A CPU with no
/// executor gets an index past the group, and the kernel falls back to its hash.
/// Opt-in (`-o cpu_steering`): with a single-queue NIC every connection would land on
/// one executor.
pub fn steer_by_cpu(listener: &TcpListener, executor_cpus: &[usize]) -> std::io::Result<()> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
    // A = the current CPU; for each executor: if A == its CPU, return its index.
    let mut program = vec![op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32)];
    for (index, &cpu) in executor_cpus.iter().enumerate() {
        if executor_cpus[..index].contains(&cpu) {
            continue; // two executors on one CPU: the first takes its connections
        }
        program.push(op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, cpu as u32));
        program.push(op(libc::BPF_RET | libc::BPF_K, 0, 0, index as u32));
    }
    program.push(op(libc::BPF_RET | libc::BPF_K, 0, 0, u32::MAX));
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    // SAFETY: `fprog` points at `program`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The UNIX socket, with `-a`'s permissions.
pub fn bind_unix(config: &Config) -> std::io::Result<Option<UnixListener>> {
    let Some(path) = &config.unix_socket else { return Ok(None) };
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.unix_mask))?;
    Ok(Some(listener))
}

/// Takes a connection slot under `-c`, or refuses the client as memcached does.
async fn admit(core: &Core, stream: &mut RingStream) -> bool {
    let shared = &core.shared;
    let counters = &core.stats().commands;
    let open = shared.connections.fetch_add(1, Ordering::Relaxed);
    if open >= shared.config.max_connections {
        shared.connections.fetch_sub(1, Ordering::Relaxed);
        counters.rejected_connections.incr();
        let _ = stream.send_all(TOO_MANY_CONNECTIONS).await;
        return false;
    }
    counters.curr_connections.incr();
    counters.total_connections.incr();
    true
}

fn release(core: &Core) {
    core.shared.connections.fetch_sub(1, Ordering::Relaxed);
    core.stats().commands.curr_connections.decr();
}

/// Serves one accepted connection, if `-c` admits it.
async fn serve(core: Rc<Core>, socket: OwnedFd, info: ConnInfo) {
    let mut stream = match RingStream::new(socket) {
        Ok(stream) => stream,
        Err(e) => return accept_failed(&core, e).await,
    };
    if !admit(&core, &mut stream).await {
        return;
    }
    if core.shared.config.verbosity > 1 {
        eprintln!("<{} new client connection from {}", info.fd, info.addr);
    }
    Connection::new(stream, core.clone(), info).serve().await;
    release(&core);
}

/// Waits a little after a failed accept (out of descriptors and the like): memcached
/// logs it and goes on.
async fn accept_failed(core: &Core, e: std::io::Error) {
    if core.shared.config.verbosity > 0 {
        eprintln!("accept(): {e}");
    }
    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
}

/// The next connection on `listener` (blocking, close-on-exec: all its I/O goes
/// through the ring), from the listener's multishot accept.
async fn accept(listener: &mut RingListener) -> std::io::Result<OwnedFd> {
    loop {
        match listener.accept().await {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED)) => {}
            accepted => return accepted,
        }
    }
}

pub async fn accept_tcp(core: Rc<Core>, listener: TcpListener) {
    // Blocking: the ring waits for connections itself (a non-blocking listener could
    // make the accept fail with EAGAIN instead).
    let _ = listener.set_nonblocking(false);
    let mut listener = RingListener::new(listener.into());
    loop {
        let stream = match accept(&mut listener).await {
            Ok(fd) => TcpStream::from(fd),
            Err(e) => {
                accept_failed(&core, e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let info = ConnInfo {
            fd: stream.as_raw_fd(),
            addr: stream.peer_addr().map_or("tcp:?".into(), |a| format!("tcp:{a}")),
            listen_addr: stream.local_addr().map_or("tcp:?".into(), |a| format!("tcp:{a}")),
            ..ConnInfo::default()
        };
        glommio::spawn_local(serve(core.clone(), stream.into(), info)).detach();
    }
}

pub async fn accept_unix(core: Rc<Core>, listener: UnixListener) {
    let path = core.shared.config.unix_socket.as_ref().map_or(String::new(), |p| p.display().to_string());
    let _ = listener.set_nonblocking(false);
    let mut listener = RingListener::new(listener.into());
    loop {
        let stream = match accept(&mut listener).await {
            Ok(fd) => fd,
            Err(e) => {
                accept_failed(&core, e).await;
                continue;
            }
        };
        let info = ConnInfo {
            fd: -1,
            addr: format!("unix:{path}"),
            listen_addr: format!("unix:{path}"),
            ..ConnInfo::default()
        };
        glommio::spawn_local(serve(core.clone(), stream, info)).detach();
    }
}
