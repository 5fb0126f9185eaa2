//! The server: one glommio executor per core, each pinned, listening, and owning one
//! shard of the cache; requests for another core's keys are forwarded to it.

mod clock;
mod connection;
mod core;
mod forward;
mod kernel;
mod listener;
pub mod restart;
mod restart_file;
mod pacing;
mod startup;
mod stream;
pub mod systemd;
mod tls;
mod watching;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use self::core::{Core, Router, Shared};
use self::forward::{Forwarder, ToOrigin, ToOwner};
use crate::commands::{settings, ExecutorStats, ProcessFacts, Runtime};
use crate::config::Config;
use crate::protocol::{Limits, MEMCACHED_VERSION};
use crate::store::{Shard, StoreConfig};

/// memcached's exit status when it cannot listen (`EX_OSERR`).
const EX_OSERR: i32 = 71;
/// How long a stopping server waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// glommio's DMA buffer pool per executor: its minimum (we do no file I/O).
const IO_MEMORY: usize = 64 << 10;

/// Runs the server until it is told to stop; returns the process exit status.
pub fn run(config: Config) -> i32 {
    let threads = config.threads;
    let clock = clock::Clock::start();
    // -Z: the certificate and key are loaded before anything listens; memcached exits
    // with EX_USAGE when they cannot be.
    let tls = match config.tls.enabled.then(|| tls::Tls::start(&config.tls, clock.now())).transpose() {
        Ok(tls) => tls.map(Arc::new),
        Err(message) => {
            eprintln!("{message}");
            return crate::config::EX_USAGE;
        }
    };
    if let (Some(tls), true) = (&tls, config.verbosity > 0) {
        for note in tls.notes() {
            eprintln!("{note}");
        }
    }
    let restart = restart::prepare(&config, &clock);
    let shared = Arc::new(Shared {
        runtime: Runtime::new(&config),
        clock,
        stats: (0..threads).map(|_| ExecutorStats::default()).collect(),
        connections: AtomicUsize::new(0),
        listeners: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
        tls,
        route_seeds: restart.as_ref().and_then(|r| r.route_seeds()).unwrap_or_else(random_seeds),
        observe: crate::observe::Observe::new(&config),
        restart,
        config,
    });
    if let Err(message) = kernel::check() {
        eprintln!("{message}");
        return EX_OSERR;
    }
    if let Err(e) = install_signal_handlers(&shared) {
        eprintln!("failed to install signal handlers: {e}");
        return EX_OSERR;
    }
    for option in &shared.config.ignored {
        if shared.config.verbosity > 0 {
            eprintln!("ignoring extended option {option}: not applicable to memcached-rs");
        }
    }
    // Empty when the mask cannot be read (config refuses that unless -t was given).
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    if cpus.is_empty() {
        eprintln!("cannot read the CPUs this process may run on (sched_getaffinity): executors are not pinned");
    }
    // Listen first, so a failure reaches the user before anything else starts.
    let mut listeners = match bind_all(&shared.config) {
        Ok(listeners) => listeners,
        Err(message) => {
            eprintln!("{message}");
            return EX_OSERR;
        }
    };
    if shared.config.cpu_steering {
        steer_by_cpu(&shared.config, &listeners, &cpus);
    }
    if let Err(message) = start_metrics(&shared) {
        eprintln!("{message}");
        return EX_OSERR;
    }
    write_port_file(&shared.config, &listeners);
    // Set before any executor starts: `stats` counts listeners into curr_connections,
    // and executor 1 may accept (and answer `stats`) before executor 0 has run at all.
    // Executor 0 binds the UNIX socket, or the server exits.
    let unix = shared.config.unix_socket.is_some() as usize;
    shared.listeners.store(listeners.first().map_or(0, Vec::len) + unix, Ordering::Relaxed);
    // Bound: now drop root (-u), then check what the executors need as that user.
    let ring_depth = match startup::drop_privileges(shared.config.user.as_deref())
        .and_then(|()| startup::fit_locked_memory(threads, shared.config.verbosity))
        .and_then(|depth| startup::probe_io_uring().map(|()| depth))
    {
        Ok(depth) => depth,
        Err((message, status)) => {
            eprintln!("{message}");
            return status;
        }
    };
    // The main ring's completion mode (vendored glommio patch 11): see README, "How it
    // is built". MEMCACHED_RS_RING=coop|defer chooses, for measuring one against the other.
    glommio::set_main_ring_defer_taskrun(kernel::ring_mode_defer());
    let requests = MeshBuilder::<ToOwner, _>::full(threads, 256);
    let replies = MeshBuilder::<ToOrigin, _>::full(threads, 256);
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut executors = Vec::new();
    for i in 0..threads {
        let ready = Ready { executor: i, tx: ready_tx.clone(), sent: false };
        let (executor_shared, requests, replies) = (shared.clone(), requests.clone(), replies.clone());
        let bound = std::mem::take(&mut listeners[i]);
        let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        // glommio registers `io_memory` with io_uring for DMA file I/O (10 MiB by
        // default, pinned, so resident); sockets never use it. Keep its minimum.
        let builder = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("memcached-rs-{i}"))
            .io_memory(IO_MEMORY)
            .ring_depth(ring_depth);
        let builder = match kernel::spin_before_park() {
            Some(spin) => builder.spin_before_park(spin),
            None => builder,
        };
        let spawned = builder.spawn(move || async move {
            if let Some(cpu) = cpu {
                if !core_affinity::set_for_current(cpu) {
                    eprintln!("executor {i}: cannot pin it to CPU {} (sched_setaffinity): it runs unpinned", cpu.id);
                }
            }
            executor_main(executor_shared, requests, replies, bound, ready).await
        });
        match spawned {
            Ok(handle) => executors.push(Some(handle)),
            Err(e) => {
                eprintln!("failed to start executor {i}: {e}");
                shared.shutdown.store(true, Ordering::Relaxed);
                return EX_OSERR;
            }
        }
    }
    drop(ready_tx);
    let mut waiting = threads;
    while waiting > 0 {
        let message = match ready_rx.recv() {
            Ok((_, Some(Ok(())))) => {
                waiting -= 1;
                continue;
            }
            Ok((_, Some(Err(message)))) => message,
            // glommio could not build the executor and ended its thread: the reason is
            // its result. (Before, this went unnoticed and the process exited 0.)
            Ok((i, None)) => match executors[i].take().map(|handle| handle.join()) {
                Some(Err(e)) => startup::executor_failure(i, &e.to_string()),
                _ => format!("executor {i} stopped while starting"),
            },
            Err(_) => "the executors stopped while starting".to_string(),
        };
        eprintln!("{message}");
        request_shutdown(&shared);
        std::process::exit(EX_OSERR);
    }
    if shared.config.verbosity > 0 {
        eprintln!("memcached-rs {} ready: {threads} executors", env!("CARGO_PKG_VERSION"));
    }
    notify(systemd::READY);
    startup::detached_ready(shared.config.verbosity);
    for handle in executors.into_iter().flatten() {
        let _ = handle.join();
    }
    if let Some(state) = &shared.restart {
        restart::finish_save(state, threads);
    }
    0
}

/// An executor's start-up report to `run`. Dropped unsent (glommio could not build the
/// executor, so our code never ran), it reports the executor gone.
struct Ready {
    executor: usize,
    tx: mpsc::Sender<(usize, Option<Result<(), String>>)>,
    sent: bool,
}

impl Ready {
    fn send(&mut self, result: Result<(), String>) {
        self.sent = true;
        let _ = self.tx.send((self.executor, Some(result)));
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.tx.send((self.executor, None));
        }
    }
}

/// `-o metrics=ADDR:PORT`: binds the metrics listener (a failure stops the start, as a
/// port memcached cannot listen on does) and serves it on its own thread.
fn start_metrics(shared: &Arc<Shared>) -> Result<(), String> {
    let Some(addr) = shared.config.metrics else { return Ok(()) };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("failed to listen on metrics address {addr}: {e}"))?;
    let shared = shared.clone();
    let spawned = std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
        let o = &shared.observe;
        let counters = crate::observe::http::Counters { scrapes: &o.scrapes, refused: &o.scrapes_refused, timed_out: &o.scrapes_timed_out };
        crate::observe::http::serve(listener, counters, || shared.shutting_down(), || {
            let facts = process_facts(&shared);
            crate::observe::prom::render(&crate::observe::prom::Inputs {
                stats: &shared.stats,
                facts: &facts,
                config: &shared.config,
                crawler_enabled: shared.runtime.crawler_enabled.load(Ordering::Relaxed),
                observe: &shared.observe,
            })
        });
    });
    spawned.map(|_| ()).map_err(|e| format!("failed to start the metrics thread: {e}"))
}

/// Tells systemd (Type=notify) where we are; a no-op outside systemd.
fn notify(state: &str) {
    if let Err(e) = systemd::notify(state) {
        eprintln!("sd_notify({state}): {e}");
    }
}

/// A bound TCP listener, and whether its connections speak TLS (`-Z`, not `notls:`).
type Bound = (std::net::TcpListener, bool);

/// Every executor's TCP listeners, bound in executor order: SO_REUSEPORT numbers a
/// port's sockets in the order they listen, and `-o cpu_steering` relies on executor
/// `i` owning the `i`th.
///
/// First, every address is probed: memcached refuses to start on a port another
/// process listens on, and so do we (see `listener::check_port_free`).
fn bind_all(config: &Config) -> Result<Vec<Vec<Bound>>, String> {
    let addresses = listener::tcp_addresses(config)?;
    // Listening on every interface (IPv4 first): a host without IPv6 still serves IPv4.
    let may_skip = |i: usize, addr: &std::net::SocketAddr| config.listen.is_empty() && addr.is_ipv6() && i > 0;
    let failed = |addr: &std::net::SocketAddr, e| format!("failed to listen on TCP port {}: {e}", addr.port());
    for (i, (addr, _)) in addresses.iter().enumerate() {
        match listener::check_port_free(*addr) {
            // Port 0 (`-p -1`): the kernel picks a free one, nothing to probe.
            _ if addr.port() == 0 => {}
            Err(e) if !may_skip(i, addr) => return Err(failed(addr, e)),
            _ => {}
        }
    }
    let mut listening = Vec::new();
    for (i, (addr, tls)) in addresses.iter().enumerate() {
        let mut group: Vec<std::net::TcpListener> = Vec::new();
        for _ in 0..config.threads {
            // Every executor's socket on the port the first one got (the kernel's
            // pick when the address asked for port 0).
            let mut addr = *addr;
            if let Some(port) = group.first().and_then(|l| l.local_addr().ok()).map(|a| a.port()) {
                addr.set_port(port);
            }
            match listener::bind_tcp(addr, config.backlog) {
                Ok(l) => group.push(l),
                Err(e) if may_skip(i, &addr) => {
                    if config.verbosity > 0 {
                        eprintln!("not listening on {addr}: {e}");
                    }
                    break;
                }
                Err(e) => return Err(failed(&addr, e)),
            }
        }
        if group.len() == config.threads {
            listening.push((group, *tls));
        }
    }
    // Per address, per executor -> per executor, per address.
    let mut per_executor: Vec<Vec<Bound>> = (0..config.threads).map(|_| Vec::new()).collect();
    for (group, tls) in listening {
        for (executor, l) in group.into_iter().enumerate() {
            per_executor[executor].push((l, tls));
        }
    }
    Ok(per_executor)
}

/// memcached's `MEMCACHED_PORT_FILENAME`: when set, the TCP ports listened on are
/// written there, a line per address (`TCP INET: 11211`, `TCP INET6: 11211`), through
/// `<file>.lck` renamed into place once complete, so a test harness that started us
/// with `-p -1` can read the port the kernel picked. Not written with `-s`, as memcached.
fn write_port_file(config: &Config, listeners: &[Vec<Bound>]) {
    let Some(path) = std::env::var_os("MEMCACHED_PORT_FILENAME") else { return };
    if config.unix_socket.is_some() {
        return;
    }
    let mut lines = String::new();
    for (l, _) in listeners.first().into_iter().flatten() {
        if let Ok(addr) = l.local_addr() {
            let family = if addr.is_ipv6() { "INET6" } else { "INET" };
            lines.push_str(&format!("TCP {family}: {}\n", addr.port()));
        }
    }
    let mut temp = path.clone();
    temp.push(".lck");
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&temp)
        .and_then(|mut f| f.write_all(lines.as_bytes()))
        .and_then(|()| std::fs::rename(&temp, &path));
    if let Err(e) = written {
        eprintln!("Failed to open \"{}\": {e}", std::path::Path::new(&temp).display());
    }
}

/// `-o cpu_steering`: each port's connections go to the executor on the CPU that took
/// their SYN. Executor `i` runs on `cpus[i % cpus.len()]` (see `run`).
fn steer_by_cpu(config: &Config, listeners: &[Vec<Bound>], cpus: &[core_affinity::CoreId]) {
    if cpus.is_empty() {
        eprintln!("cpu_steering: the executors are not pinned; connections are spread by hash");
        return;
    }
    let executor_cpus: Vec<usize> = (0..config.threads).map(|i| cpus[i % cpus.len()].id).collect();
    // The program belongs to the port's whole group: one socket of each is enough.
    for (l, _) in listeners.first().into_iter().flatten() {
        if let Err(e) = listener::steer_by_cpu(l, &executor_cpus) {
            eprintln!("cpu_steering: {e}; connections are spread by hash");
        }
    }
    if config.verbosity > 0 {
        eprintln!("cpu_steering: executors on CPUs {executor_cpus:?}");
    }
}

/// One executor: join the mesh, serve its listeners (bound by `run`) until shutdown,
/// then drain.
async fn executor_main(
    shared: Arc<Shared>,
    requests: MeshBuilder<ToOwner, glommio::channels::channel_mesh::Full>,
    replies: MeshBuilder<ToOrigin, glommio::channels::channel_mesh::Full>,
    bound: Vec<Bound>,
    mut ready: Ready,
) {
    let threads = shared.config.threads;
    let (Ok((request_tx, request_rx)), Ok((reply_tx, reply_rx))) = (requests.join().await, replies.join().await)
    else {
        return ready.send(Err("failed to connect the executors' channel mesh".into()));
    };
    let id = request_tx.peer_id();
    let config = &shared.config;
    let mut shard = Shard::new(StoreConfig {
        memory_limit: config.memory_limit / threads,
        item_size_max: config.item_size_max,
        evict: config.evict,
        shard_id: id as u32,
        shard_count: threads as u32,
    });
    shard.configure_classes(crate::commands::stats_slabs::size_classes(config), config.cas_enabled);
    shard.set_eviction_log(Arc::new(watching::EvictionLines(shared.clone())));
    let forwarder = Rc::new(Forwarder::new(id, threads));
    // Client sockets go through this executor's ring and its provided-buffer ring
    // (kernel 6.0 for multishot receives): register it now, so that a kernel that
    // refuses it stops the server at start with one line, not its first client.
    if let Err(e) = glommio::net::prepare_ring_sockets() {
        return ready.send(Err(startup::buffer_ring_failure(&e)));
    }
    let core = Rc::new(Core {
        id,
        router: Router::new(threads, shared.route_seeds),
        shard: shard.into(),
        forwarder: forwarder.clone(),
        limits: Limits { item_size_max: config.item_size_max },
        flush_applied: Default::default(),
        now: std::cell::Cell::new(shared.clock.now()),
        observe: crate::observe::Local::new(&shared.observe),
        shared: shared.clone(),
    });
    core.stats().ring_flags.set(glommio::main_ring_setup_flags() as u64);
    core.publish();
    restart::load_on_core(&core);

    let unix = if id == 0 {
        match listener::bind_unix(config) {
            Ok(unix) => unix,
            Err(e) => {
                let path = config.unix_socket.as_deref().unwrap_or(std::path::Path::new("")).display();
                return ready.send(Err(format!("failed to listen on UNIX socket: {path}: {e}")));
            }
        }
    } else {
        None
    };
    let (request_tx, request_rx) = (Rc::new(request_tx), Rc::new(request_rx));
    let (reply_tx, reply_rx) = (Rc::new(reply_tx), Rc::new(reply_rx));
    let mut tasks = Vec::new();
    for peer in (0..threads).filter(|&p| p != id) {
        tasks.push(glommio::spawn_local(forwarder.clone().flush_loop(peer, request_tx.clone())));
        tasks.push(glommio::spawn_local(forwarder.clone().reply_loop(peer, reply_rx.clone())));
        let owner = core.clone();
        let serve = forward::serve_peer(peer, request_rx.clone(), reply_tx.clone(), move |batch, out| {
            owner.run_batch(batch, out)
        });
        tasks.push(glommio::spawn_local(serve));
    }
    let mut accepting = Vec::new();
    let listening: Vec<i32> = bound.iter().map(|(l, _)| std::os::fd::AsRawFd::as_raw_fd(l)).collect();
    for (l, tls) in bound {
        accepting.push(glommio::spawn_local(listener::accept_tcp(core.clone(), l, tls)));
    }
    if let Some(l) = unix {
        accepting.push(glommio::spawn_local(listener::accept_unix(core.clone(), l)));
    }
    ready.send(Ok(()));

    let mut last_housekeeping = Instant::now();
    while !shared.shutting_down() {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        core.reclaim_tick();
        if last_housekeeping.elapsed() >= Duration::from_secs(1) {
            last_housekeeping = Instant::now();
            core.housekeeping();
        }
    }
    // Stop accepting, then let the requests in flight on every core finish: a core
    // still forwarding needs its peers to answer. shutdown() takes the port out of
    // LISTEN at once: a closed listener that io_uring still polls stays listening until
    // the ring is torn down, after the process exits, and a successor started then (a
    // restart) could not bind the port and its first clients were reset.
    for &fd in &listening {
        // SAFETY: the fds belong to the listeners the accept tasks still own.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }
    drop(accepting);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < deadline && shared.stats.iter().any(|s| s.busy_connections.get() > 0) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    drop(tasks);
    restart::save_on_core(&core);
}

/// Stops every executor: they stop accepting, finish what is in flight and exit.
pub(crate) fn request_shutdown(shared: &Shared) {
    if !shared.shutdown.swap(true, Ordering::Relaxed) {
        notify(systemd::STOPPING);
    }
}

fn install_signal_handlers(shared: &Arc<Shared>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])?;
    let shared = shared.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            if signal == SIGHUP {
                // Ours: what `refresh_certs` does, for `systemctl reload` (ExecReload),
                // which cannot easily speak TLS to us. memcached does not stop on
                // SIGHUP either (its handler serves the proxy's reload).
                if let Some(tls) = &shared.tls {
                    match tls.refresh(shared.clock.now()) {
                        Ok(()) if shared.config.verbosity > 0 => eprintln!("SIGHUP: certificates reloaded"),
                        Ok(()) => {}
                        Err(message) => eprintln!("SIGHUP: {message}"),
                    }
                }
                continue;
            }
            if shared.shutting_down() {
                // Asked twice: the operator wants out now, whatever is in flight.
                eprintln!("Signal handled: {signal}. Exiting now.");
                std::process::exit(0);
            }
            if shared.config.verbosity > 0 {
                eprintln!("Signal handled: {signal}. Shutting down.");
            }
            request_shutdown(&shared);
        }
    })?;
    Ok(())
}

/// Random seeds for the key → core hash, from the OS's randomness via std.
fn random_seeds() -> [u64; 4] {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    [0u64, 1, 2, 3].map(|i| state.hash_one(i))
}

pub(crate) fn process_facts(shared: &Shared) -> ProcessFacts {
    // SAFETY: getrusage only writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ProcessFacts {
        pid: std::process::id(),
        uptime: shared.clock.uptime(),
        time: shared.clock.unix_now().max(0) as u64,
        version: MEMCACHED_VERSION,
        threads: shared.config.threads,
        max_connections: shared.config.max_connections,
        listeners: shared.listeners.load(Ordering::Relaxed) as u64,
        rusage_user: seconds(usage.ru_utime),
        rusage_system: seconds(usage.ru_stime),
        idle_timeout: shared.config.idle_timeout,
        slab_reassign: settings::slab_reassign(&shared.config),
        lru_crawler: shared.runtime.crawler_enabled.load(Ordering::Relaxed),
        lru_maintainer: settings::lru_maintainer(&shared.config),
        limit_maxbytes: shared.runtime.memory_limit.load(Ordering::Relaxed),
        lru_segmented: settings::lru_segmented(&shared.config),
        tls: shared.tls.as_ref().map(|tls| tls.facts(shared.clock.now())),
        logger: {
            let w = &shared.observe.watch;
            crate::commands::stats::LoggerCounts {
                watchers: w.count() as u64,
                written: w.written.load(Ordering::Relaxed),
                sent: w.sent.load(Ordering::Relaxed),
                skipped: w.skipped.load(Ordering::Relaxed),
            }
        },
        restart: shared.restart.as_ref().map(|r| r.facts()),
    }
}

/// Detaches (-d: the parent exits once we serve, or with our status if we cannot) and
/// writes the pid file (-P), as memcached does, then runs.
pub fn start(config: Config) -> i32 {
    let detached = if config.daemonize { startup::detach() } else { Ok(()) };
    if let Err((message, status)) =
        detached.and_then(|()| config.pidfile.as_deref().map_or(Ok(()), startup::write_pid_file))
    {
        eprintln!("{message}");
        return status;
    }
    if let Err(message) = raise_fd_limit(&config) {
        eprintln!("{message}");
        return EX_OSERR;
    }
    let pidfile = config.pidfile.clone();
    let status = run(config);
    if let Some(path) = pidfile {
        let _ = std::fs::remove_file(path);
    }
    status
}

/// Makes room for `-c` connections plus the server's own descriptors (listeners, rings,
/// eventfds), raising the soft limit, and the hard one when allowed, as memcached does.
fn raise_fd_limit(config: &Config) -> Result<(), String> {
    let wanted = (config.max_connections + 64 + 16 * config.threads) as libc::rlim_t;
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return Ok(());
        }
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max.max(wanted) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return Ok(());
        }
        let soft_only = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft_only) == 0 && soft_only.rlim_cur >= wanted {
            return Ok(());
        }
    }
    Err("failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value.".into())
}
