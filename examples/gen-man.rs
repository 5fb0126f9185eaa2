//! Writes the memcached-rs(1) man page, generated from the clap flag definitions
//! (`memcached_rs::config::command`), to stdout. The page is committed as
//! deploy/memcached-rs.1 (installed by the .deb and scripts/install.sh);
//! scripts/deploy-check.sh fails when it is stale. Regenerate with:
//!
//!     cargo run --release --example gen-man > deploy/memcached-rs.1

use std::io::Write;

/// Sections clap does not know about, in roff.
const EXTRA: &str = r#".SH "RUNNING AS ROOT"
Started as root with \fB\-u\fR \fIUSER\fR, memcached\-rs binds its ports, then drops its
supplementary groups and assumes \fIUSER\fR's group and user id before it serves (so a
port below 1024 works). Started as root without \fB\-u\fR, memcached refuses to start;
memcached\-rs prints a warning on stderr and runs as root. \fB\-u\fR does nothing when not
started as root.
.SH "EXIT STATUS"
0 after SIGTERM or SIGINT (requests in flight are finished first), 64 for a usage
error, 67 when the \fB\-u\fR user does not exist, 71 when the system refuses something
at start (a port in use, a socket or pid file that cannot be created, io_uring refused
by seccomp or \fBkernel.io_uring_disabled\fR, RLIMIT_MEMLOCK too low for the rings), each
with one line on stderr. With \fB\-d\fR the parent exits once the server serves, or with
the server's status if it could not start.
.SH ENVIRONMENT
.TP
\fBMEMCACHED_PORT_FILENAME\fR
write the TCP ports listened on to this file, as memcached does.
.TP
\fBMEMCACHED_RS_RING\fR
\fBcoop\fR (the default) or \fBdefer\fR: each executor's main io_uring ring is created with
COOP_TASKRUN or with SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1), for measuring one
against the other.
.TP
\fBMEMCACHED_RS_SPIN_US\fR
an executor with nothing to run polls its rings this many microseconds before it
sleeps (off by default: at low load it trades CPU for latency; see README).
.TP
\fBNOTIFY_SOCKET\fR
set by systemd (Type=notify): READY=1 is sent once every core listens.
.SH FILES
.TP
\fB/etc/memcached\-rs.conf\fR
options for memcached\-rs.service in memcached.conf's format (one flag per line,
\fB#\fR comments): a copy of \fI/etc/memcached.conf\fR works.
.TP
\fB/etc/default/memcached\-rs\fR
LISTEN, PORT, CACHESIZE, MAXCONN, UDPPORT and OPTIONS for the systemd units.
.TP
\fB/usr/bin/memcached\-rs\-tool\fR
memcached's \fBmemcached\-tool\fR (stats, settings, display, dump), which works against
memcached\-rs too: \fBmemcached\-rs\-tool 127.0.0.1:11211 stats\fR.
.TP
\fB/usr/share/doc/memcached\-rs/README.md\fR
installing, configuring and switching from memcached.
.SH NOTES
memcached\-rs runs each core's I/O on io_uring. It needs Linux 5.8 or later with
io_uring allowed (\fBsysctl kernel.io_uring_disabled\fR 0, and a seccomp profile that
allows io_uring_setup, io_uring_enter and io_uring_register: Docker's default does not).
Below 512 KiB of RLIMIT_MEMLOCK it runs with smaller rings (see \fB\-v\fR), or stops
with a message when even those do not fit.
.SH "SEE ALSO"
\fBmemcached\fR(1)
"#;

fn main() -> std::io::Result<()> {
    let command = memcached_rs::config::command()
        .about("a memcached 1.6 compatible cache server, thread per core on io_uring")
        .long_about(
            "memcached-rs is a drop-in replacement for memcached 1.6: the same text protocol, \
             replies, flags and defaults, with one thread and one shard of the cache per core, \
             each core doing its I/O on io_uring. Flags that tune memcached's own internals \
             (slab classes, LRU threads) are accepted and reported as ignored at -v.",
        );
    let man = clap_mangen::Man::new(command)
        .section("1")
        .source(format!("memcached-rs {}", env!("CARGO_PKG_VERSION")))
        .manual("User Commands");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(EXTRA.as_bytes());
    std::io::stdout().write_all(&out)
}
