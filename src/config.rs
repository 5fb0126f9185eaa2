//! memcached-compatible command-line flags and their defaults.
//!
//! Same letters, long names and defaults as memcached 1.6, so unit files and scripts
//! written for memcached start memcached-rs unchanged. Flags that tune memcached's own
//! internals (slab growth, LRU threads, ...) are accepted and reported as ignored.
//! The flag table clap parses is in `config/flags.rs`; the TLS options in `config/tls.rs`.

use clap::Parser;
use std::path::PathBuf;

mod flags;
mod tls;

use flags::{Flags, KNOWN_EXTENDED};
pub use tls::{TlsOptions, NOTLS};

/// memcached's exit status for a usage error found after parsing (`EX_USAGE`).
pub const EX_USAGE: i32 = 64;
/// memcached's exit status when the system refuses something (`EX_OSERR`).
const EX_OSERR: i32 = 71;

/// The clap definition of the flags, for the man page (`examples/gen-man.rs`).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Flags::command()
}

/// Everything the server needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// The port to bind (0: one the kernel picks, from `-p -1`).
    pub port: u16,
    /// `-p` as given (memcached shows it as `tcpport`): 0 turns TCP off.
    pub tcp_port: i32,
    /// Addresses to listen on, each with its port.
    pub listen: Vec<String>,
    pub unix_socket: Option<PathBuf>,
    pub unix_mask: u32,
    pub enable_shutdown: bool,
    pub daemonize: bool,
    pub pidfile: Option<PathBuf>,
    pub user: Option<String>,
    /// `-m` in bytes.
    pub memory_limit: usize,
    pub evict: bool,
    pub max_connections: usize,
    pub verbosity: u8,
    pub threads: usize,
    pub cas_enabled: bool,
    pub flush_enabled: bool,
    pub backlog: i32,
    /// `-I` in bytes.
    pub item_size_max: usize,
    /// Extended options accepted but not acted on, for the warning at start (and for
    /// `stats settings`, which shows the values given).
    pub ignored: Vec<String>,
    /// `-f`, `-n`, `-D`: memcached's slab growth factor, smallest chunk and stats key
    /// delimiter, accepted and shown by `stats settings` (no slab classes here).
    pub growth_factor: f64,
    pub chunk_size: u32,
    pub prefix_delimiter: char,
    /// `-R`: requests a connection may run per event before it yields (memcached's 20).
    pub reqs_per_event: u32,
    /// `-o idle_timeout=N`: seconds a connection may stay idle (0: forever).
    pub idle_timeout: u32,
    /// `-o cpu_steering` (ours): a new connection goes to the executor pinned to the CPU
    /// its SYN arrived on (see `listener::steer_by_cpu`).
    pub cpu_steering: bool,
    /// `-Z` and the `ssl_*` extended options.
    pub tls: TlsOptions,
    /// `-o metrics[=[ADDR:]PORT]` (ours): serve `/metrics` over HTTP there (loopback and
    /// port 9150, memcached_exporter's, by default), with latency histograms and hot
    /// keys kept per core (see `crate::observe`). Off by default.
    pub metrics: Option<std::net::SocketAddr>,
    /// `-o hotkeys` (ours): keep hot keys per core for `stats hotkeys` without `/metrics`.
    pub hotkeys: bool,
    /// memcached's `watch` command; `-W` turns it off.
    pub watch_enabled: bool,
    /// `-e PATH` / `--restart-dir DIR`: where the cache is kept across a restart
    /// (`server::restart`). None: it is not kept.
    pub memory_file: Option<MemoryFile>,
    /// `-B`, after `-S`/`-Y` decided it when not given.
    pub binding: Binding,
    /// `-S`.
    pub sasl: bool,
    /// `MEMCACHED_SASL_PWDB` (read at each SASL attempt, as memcached does).
    pub sasl_pwdb: Option<PathBuf>,
    /// `-Y`: the file, and the users read from it at start.
    pub auth_file: Option<PathBuf>,
    pub ascii_auth: Option<crate::commands::auth::Credentials>,
    /// `-l` as given (memcached's `stats settings` shows it so, as `inter`).
    pub inter: Vec<String>,
}

/// Where a warm restart keeps the cache: memcached's `-e FILE` (our files are `FILE`
/// and `FILE.<core>`) or a directory of ours (`DIR/memcached-rs.cache*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryFile {
    /// As given, for `stats settings memory_file`.
    pub given: PathBuf,
    /// Names of the files: `<base>.<core>` for each core's shard.
    pub base: PathBuf,
    /// The directory form: create it at start if missing.
    pub directory: bool,
    /// How long each core may spend saving at stop (`--restart-save-timeout`).
    pub save_timeout: std::time::Duration,
}

impl MemoryFile {
    /// `-e PATH`: a directory when PATH is one (or ends in '/'), else memcached's file.
    pub fn from_flag(given: PathBuf, directory: bool) -> MemoryFile {
        let directory = directory || given.is_dir() || given.as_os_str().to_string_lossy().ends_with('/');
        let base = if directory { given.join("memcached-rs.cache") } else { given.clone() };
        MemoryFile { given, base, directory, save_timeout: std::time::Duration::from_secs(8) }
    }
}

/// Which protocol a connection speaks (`-B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// By the connection's first byte: 0x80 binary, anything else text.
    Auto,
    Ascii,
    Binary,
}

impl Binding {
    /// As memcached's `stats settings` names it.
    pub fn name(self) -> &'static str {
        match self {
            Binding::Auto => "auto-negotiate",
            Binding::Ascii => "ascii",
            Binding::Binary => "binary",
        }
    }
}

/// What the command line asks for: run, or print something and exit.
#[derive(Debug)]
pub enum Invocation {
    Run(Config),
    /// Print this to stdout and exit 0 (-h, -V, -i).
    Print(String),
    /// Print this to stderr and exit with this status.
    Fail(String, i32),
}

const LICENSE: &str = include_str!("../LICENSE");

pub fn parse_args<I, T>(args: I) -> Invocation
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let flags = match Flags::try_parse_from(args) {
        Ok(flags) => flags,
        // memcached exits 1 on an unknown or malformed option.
        Err(e) => return Invocation::Fail(e.to_string(), 1),
    };
    if flags.help {
        use clap::CommandFactory;
        return Invocation::Print(Flags::command().render_help().to_string());
    }
    if flags.version {
        return Invocation::Print(format!("memcached-rs {}\n", env!("CARGO_PKG_VERSION")));
    }
    if flags.license {
        return Invocation::Print(LICENSE.to_string());
    }
    match validate(flags) {
        Ok(config) => Invocation::Run(config),
        Err((message, status)) => Invocation::Fail(message, status),
    }
}

fn validate(f: Flags) -> Result<Config, (String, i32)> {
    let usage = |m: &str| Err((m.to_string(), EX_USAGE));
    let item_size_max = parse_size(&f.max_item_size)
        .ok_or((format!("Invalid -I size: {}", f.max_item_size), EX_USAGE))?;
    if item_size_max < 1024 {
        return usage("Item max size cannot be less than 1024 bytes.");
    }
    if item_size_max > 1024 * 1024 * 1024 {
        return usage("Cannot set item size limit higher than a gigabyte.");
    }
    let memory_limit = (f.memory_limit as usize).saturating_mul(1024 * 1024);
    if item_size_max > memory_limit / 2 {
        return usage("Cannot set item size limit higher than 1/2 of memory max.");
    }
    // One executor per CPU this process may run on, unless -t says otherwise.
    let threads = match f.threads {
        Some(threads) => threads,
        None => match core_affinity::get_core_ids() {
            Some(cpus) if !cpus.is_empty() => cpus.len(),
            _ => {
                let message = "no CPUs in this process's affinity mask (sched_getaffinity failed): give -t N";
                return Err((message.into(), EX_OSERR));
            }
        },
    };
    if threads == 0 {
        return Err(("Number of threads must be greater than 0".into(), 1));
    }
    if f.udp_port != 0 {
        return usage("UDP is not supported (memcached's default since 1.5.6 is -U 0)");
    }
    let specified = match f.protocol.as_deref() {
        None => None,
        Some("auto") => Some(Binding::Auto),
        Some("ascii") => Some(Binding::Ascii),
        Some("binary") => Some(Binding::Binary),
        Some(other) => return Err((format!("Invalid value for binding protocol: {other}"), EX_USAGE)),
    };
    let mut binding = specified.unwrap_or(Binding::Auto);
    if f.enable_sasl {
        match specified {
            None => binding = Binding::Binary,
            Some(Binding::Binary) => {}
            Some(_) => return usage("ERROR: You cannot allow the ASCII protocol while using SASL."),
        }
    }
    if f.auth_file.is_some() {
        match specified {
            None => binding = Binding::Ascii,
            Some(Binding::Ascii) => {}
            Some(_) => {
                return usage("ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.")
            }
        }
    }
    // Read here, at start: the variable names a file, never a secret itself.
    let sasl_pwdb = std::env::var_os("MEMCACHED_SASL_PWDB").map(PathBuf::from);
    if f.enable_sasl && sasl_pwdb.is_none() {
        return Err(("-S needs MEMCACHED_SASL_PWDB: the file of user:password lines SASL checks".into(), 1));
    }
    let ascii_auth = match &f.auth_file {
        Some(path) => Some(crate::commands::auth::Credentials::load_authfile(path).map_err(|e| (e, 1))?),
        None => None,
    };
    let unix_mask = u32::from_str_radix(&f.unix_mask, 8)
        .map_err(|_| (format!("Invalid -a mask: {}", f.unix_mask), EX_USAGE))?;
    let mut ignored = Vec::new();
    let mut cpu_steering = false;
    let mut idle_timeout = 0;
    let mut tls = TlsOptions { enabled: f.enable_ssl, ..TlsOptions::default() };
    let (mut metrics, mut hotkeys) = (None, false);
    if let Some(value) = &f.metrics {
        metrics = Some(metrics_address(value).ok_or((format!("Invalid --metrics address: {value}"), EX_USAGE))?);
    }
    for option in f.extended.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
        if option == "cpu_steering" {
            cpu_steering = true;
            continue;
        }
        if option == "hotkeys" {
            hotkeys = true;
            continue;
        }
        if option == "metrics" || option.starts_with("metrics=") {
            let value = option.split_once('=').map_or("", |(_, v)| v);
            metrics = Some(metrics_address(value).ok_or((format!("Illegal suboption \"{option}\""), 1))?);
            continue;
        }
        let name = option.split('=').next().unwrap_or(option);
        if tls.take(name, option.split_once('=').map(|(_, v)| v)).map_err(|e| (e, 1))? {
            continue;
        }
        if !KNOWN_EXTENDED.contains(&name) {
            return Err((format!("Illegal suboption \"{option}\""), 1));
        }
        if name == "idle_timeout" {
            let value = option.split_once('=').map_or("", |(_, v)| v);
            idle_timeout = value.parse().map_err(|_| (format!("Illegal suboption \"{option}\""), 1))?;
        }
        ignored.push(option.to_string());
    }
    let listen = f
        .listen
        .iter()
        .flat_map(|l| l.split(','))
        .filter(|l| !l.is_empty())
        .map(|l| match l.strip_prefix(NOTLS) {
            // memcached: `-l notls:ADDR:PORT` is a plain listener beside TLS ones.
            Some(addr) => format!("{NOTLS}{}", with_port(addr, f.port.max(0) as u16)),
            None => with_port(l, f.port.max(0) as u16),
        })
        .collect::<Vec<String>>();
    if !tls.enabled && listen.iter().any(|l| l.starts_with(NOTLS)) {
        return Err(("'notls' option is valid only when SSL is enabled".into(), EX_OSERR));
    }
    if tls.enabled && f.port == 0 {
        return usage("ERROR: You cannot enable SSL without a TCP port.");
    }
    Ok(Config {
        port: f.port.max(0) as u16,
        tcp_port: f.port,
        listen,
        unix_socket: f.unix_socket,
        unix_mask,
        enable_shutdown: f.enable_shutdown,
        daemonize: f.daemon,
        pidfile: f.pidfile,
        user: f.user,
        memory_limit,
        evict: !f.disable_evictions,
        max_connections: f.conn_limit as usize,
        verbosity: f.verbose,
        threads,
        cas_enabled: !f.disable_cas,
        flush_enabled: !f.disable_flush_all,
        backlog: f.listen_backlog,
        item_size_max,
        ignored,
        growth_factor: f.slab_growth_factor.unwrap_or(1.25),
        chunk_size: f.slab_min_size.unwrap_or(48),
        prefix_delimiter: f.prefix_delimiter.as_deref().and_then(|d| d.chars().next()).unwrap_or(':'),
        reqs_per_event: f.max_reqs_per_event.unwrap_or(20),
        idle_timeout,
        cpu_steering,
        tls,
        hotkeys: hotkeys || metrics.is_some(),
        metrics,
        watch_enabled: !f.disable_watch,
        memory_file: match (f.restart_dir, f.memory_file) {
            (Some(dir), _) => Some(MemoryFile::from_flag(dir, true)),
            (None, Some(path)) => Some(MemoryFile::from_flag(path, false)),
            (None, None) => None,
        }
        .map(|m| MemoryFile { save_timeout: std::time::Duration::from_secs(f.restart_save_timeout), ..m }),
        binding,
        sasl: f.enable_sasl,
        sasl_pwdb,
        auth_file: f.auth_file,
        ascii_auth,
        inter: f.listen.clone(),
    })
}

/// The metrics listener's address: `PORT`, `ADDR:PORT` or `[V6]:PORT`; loopback and
/// 9150 (memcached_exporter's port) where not given.
fn metrics_address(value: &str) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, SocketAddr};
    if value.is_empty() {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9150)));
    }
    if let Ok(port) = value.parse::<u16>() {
        return Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    value.parse().ok()
}

/// `ADDR` → `ADDR:port`; `ADDR:PORT` and `[V6]:PORT` kept; a bare IPv6 address bracketed.
fn with_port(addr: &str, port: u16) -> String {
    if addr.starts_with('[') {
        if addr.contains("]:") { addr.to_string() } else { format!("{addr}:{port}") }
    } else if addr.matches(':').count() > 1 {
        format!("[{addr}]:{port}")
    } else if addr.contains(':') {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}

/// memcached's size syntax for -I: a number with an optional k, m or g suffix.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1024),
        (i, 'm' | 'M') => (&s[..i], 1024 * 1024),
        (i, 'g' | 'G') => (&s[..i], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(std::iter::once("memcached-rs").chain(args.iter().copied())) {
            Invocation::Run(c) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn fail(args: &[&str]) -> (String, i32) {
        match parse_args(std::iter::once("memcached-rs").chain(args.iter().copied())) {
            Invocation::Fail(m, s) => (m, s),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn memcached_defaults() {
        let c = run(&[]);
        assert_eq!((c.port, c.memory_limit, c.max_connections), (11211, 64 << 20, 1024));
        assert_eq!(c.item_size_max, 1 << 20);
        assert!(c.evict && c.cas_enabled && c.flush_enabled && !c.enable_shutdown);
        assert!(c.threads >= 1);
    }

    #[test]
    fn memcached_flags() {
        let c = run(&["-p", "11300", "-l", "127.0.0.1,::1", "-l", "10.0.0.1:9", "-m", "256", "-c", "10",
            "-t", "2", "-I", "2m", "-M", "-vv", "-U", "0", "-u", "nobody", "-A", "-o", "modern,hashpower=20"]);
        assert_eq!(c.listen, vec!["127.0.0.1:11300", "[::1]:11300", "10.0.0.1:9"]);
        assert_eq!((c.memory_limit, c.max_connections, c.threads), (256 << 20, 10, 2));
        assert_eq!((c.item_size_max, c.evict, c.verbosity), (2 << 20, false, 2));
        assert!(c.enable_shutdown);
        assert_eq!(c.ignored, vec!["modern", "hashpower=20"]);
        assert!(!c.cpu_steering);
        let c = run(&["-o", "modern,cpu_steering"]);
        assert!(c.cpu_steering);
        assert_eq!(c.ignored, vec!["modern"]);
        assert!(c.metrics.is_none() && !c.hotkeys && c.watch_enabled);
    }

    #[test]
    fn metrics_listener_is_opt_in_and_loopback() {
        assert_eq!(run(&["-o", "metrics"]).metrics, Some("127.0.0.1:9150".parse().unwrap()));
        assert_eq!(run(&["-o", "metrics=9999"]).metrics, Some("127.0.0.1:9999".parse().unwrap()));
        let c = run(&["-o", "metrics=0.0.0.0:9150"]);
        assert_eq!(c.metrics, Some("0.0.0.0:9150".parse().unwrap()));
        assert!(c.hotkeys, "hot keys come with the metrics");
        assert!(run(&["-o", "hotkeys"]).hotkeys);
        assert!(!run(&["-W"]).watch_enabled);
        assert_eq!(run(&["--metrics=9151"]).metrics, Some("127.0.0.1:9151".parse().unwrap()));
        assert_eq!(run(&["--metrics"]).metrics, Some("127.0.0.1:9150".parse().unwrap()));
        assert_eq!(fail(&["-o", "metrics=nowhere"]).1, 1);
    }

    #[test]
    fn memcacheds_usage_errors_and_statuses() {
        assert_eq!(fail(&["-m", "1", "-I", "1m"]).1, EX_USAGE);
        assert_eq!(fail(&["-I", "512"]), ("Item max size cannot be less than 1024 bytes.".into(), 64));
        assert_eq!(fail(&["-t", "0"]).1, 1);
        assert_eq!(fail(&["-o", "foo_bar"]), ("Illegal suboption \"foo_bar\"".into(), 1));
        assert_eq!(fail(&["-z"]).1, 1);
        assert_eq!(fail(&["-U", "11211"]).1, EX_USAGE);
    }

    #[test]
    fn tls_options_as_memcached_takes_them() {
        let c = run(&["-Z", "-o", "ssl_chain_cert=/c.pem,ssl_key=/k.pem,ssl_verify_mode=2,ssl_min_version=3,ssl_session_cache",
            "-l", "127.0.0.1,notls:127.0.0.1:9000"]);
        assert!(c.tls.enabled && c.tls.session_cache);
        assert_eq!((c.tls.chain_cert.as_deref(), c.tls.key.as_deref()), (Some("/c.pem"), Some("/k.pem")));
        assert_eq!((c.tls.verify_flags(), c.tls.min_version_text()), (3, "tlsv1.3"));
        assert_eq!(c.listen, vec!["127.0.0.1:11211", "notls:127.0.0.1:9000"]);
        assert_eq!(fail(&["-o", "ssl_verify_mode=4"]).0, "Invalid ssl_verify_mode. Use help to see valid options.");
        assert_eq!(fail(&["-o", "ssl_min_version=x"]).0, "could not parse argument to ssl_min_version");
        assert_eq!(fail(&["-o", "ssl_chain_cert"]).0, "Missing ssl_chain_cert argument");
        assert_eq!(fail(&["-l", "notls:127.0.0.1:9000"]).1, 71);
        assert_eq!(fail(&["-Z", "-p", "0"]).1, EX_USAGE);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("x"), None);
    }
}

impl Config {
    /// The value given to extended option `name` (`-o name=value`), if any.
    pub fn extended(&self, name: &str) -> Option<&str> {
        self.ignored.iter().rev().find_map(|o| match o.split_once('=') {
            Some((n, v)) if n == name => Some(v),
            None if o == name => Some(""),
            _ => None,
        })
    }
}
