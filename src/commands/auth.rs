//! Authentication: binary SASL (`-S`: PLAIN and LOGIN, users from the
//! `MEMCACHED_SASL_PWDB` file) and memcached 1.6's ASCII handshake (`-Y FILE`).
//!
//! Each connection holds a [`Session`]; the protocol parses a step into an
//! [`AuthStep`], [`run`] decides it against the session (the state machine memcached's
//! Cyrus SASL context and `proto_bin.c` make together), counts `auth_cmds` and
//! `auth_errors`, and the protocol writes the [`AuthAnswer`]. Passwords are compared
//! here and nowhere else kept: never logged, never in `stats`, never in arguments.

use std::path::Path;

use super::CommandCounters;
use crate::protocol::{AuthAnswer, AuthStep};

/// The mechanisms we offer, as memcached lists them (Cyrus, `mech_list: plain login`).
pub const MECHANISMS: &str = "PLAIN LOGIN";

/// memcached's authfile limits: at most 8 entries, lines of at most 256 bytes.
const MAX_ENTRIES: usize = 8;
const MAX_ENTRY_LEN: usize = 256;

/// Users and passwords (`user:password` lines). Debug never shows them.
#[derive(Clone, Default)]
pub struct Credentials(Vec<(Vec<u8>, Vec<u8>)>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} users)", self.0.len())
    }
}

impl Credentials {
    /// Parses `-Y`'s file as memcached's `authfile_load`: `user:password` lines, the
    /// password ending at `\r`, `\n` or the end; at most 8 entries; a line without `:`
    /// makes the whole file malformed (None).
    pub fn parse_authfile(data: &[u8]) -> Option<Credentials> {
        let mut entries = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            let line = &line[..line.len().min(MAX_ENTRY_LEN - 1)];
            let line = line.split(|&b| b == 0).next().unwrap_or(b"");
            let colon = line.iter().position(|&b| b == b':')?;
            let pass = &line[colon + 1..];
            let end = pass.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(pass.len());
            entries.push((line[..colon].to_vec(), pass[..end].to_vec()));
            if entries.len() == MAX_ENTRIES {
                break;
            }
        }
        Some(Credentials(entries))
    }

    /// Reads and parses `-Y`'s file; the error is one line for the user.
    pub fn load_authfile(path: &Path) -> Result<Credentials, String> {
        let data = std::fs::read(path).map_err(|e| format!("Could not load authfile [{}]: {e}", path.display()))?;
        Credentials::parse_authfile(&data).ok_or_else(|| format!("authfile [{}] is malformed", path.display()))
    }

    /// memcached's `authfile_check`: exact user and password.
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        // Compare every entry in full, so the time taken does not tell which matched.
        self.0.iter().fold(false, |ok, (u, p)| ok | (constant_eq(u, user) & constant_eq(p, pass)))
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `MEMCACHED_SASL_PWDB` as memcached's `sasl_server_userdb_checkpass` reads it: the
/// file is read at each attempt (so it can change while the server runs); the first
/// line whose user matches decides; the password ends at `:`, `\n`, `\r` or the end.
pub fn check_pwdb(path: &Path, user: &[u8], pass: &[u8]) -> bool {
    if user.len() + pass.len() > MAX_ENTRY_LEN - 4 {
        return false;
    }
    let Ok(data) = std::fs::read(path) else { return false };
    for line in data.split(|&b| b == b'\n') {
        if line.len() > user.len() && line.starts_with(user) && line[user.len()] == b':' {
            let rest = &line[user.len() + 1..];
            let end = rest.iter().position(|&b| matches!(b, b':' | b'\r' | 0)).unwrap_or(rest.len());
            return constant_eq(&rest[..end], pass);
        }
    }
    false
}

/// Where a SASL exchange stands on one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Fresh,
    /// PLAIN started without an initial response: the Step carries it.
    AwaitPlain,
    /// LOGIN: the user name, then the password.
    AwaitUser,
    AwaitPass(Vec<u8>),
    /// An exchange succeeded: Cyrus does not restart a finished one on the same
    /// connection, so every later Auth or Step fails.
    Done,
}

/// One connection's authentication state.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub authenticated: bool,
    /// memcached's `sasl_started`: the last Auth began an exchange.
    started: bool,
    phase: Phase,
}

/// What a step is checked against: the server's settings.
pub struct Users<'a> {
    /// `MEMCACHED_SASL_PWDB` (SASL).
    pub pwdb: Option<&'a Path>,
    /// `-Y`'s entries.
    pub ascii: Option<&'a Credentials>,
}

/// Runs one authentication step on the connection's session.
pub fn run(session: &mut Session, users: &Users, step: AuthStep, counters: &CommandCounters) -> AuthAnswer<'static> {
    let answer = match step {
        AuthStep::ListMechs => {
            // memcached's init_sasl_conn: listing marks the connection unauthenticated.
            session.authenticated = false;
            return AuthAnswer::Mechs(MECHANISMS);
        }
        AuthStep::Ascii { credentials: None } => return AuthAnswer::BadFormat,
        AuthStep::Ascii { credentials: Some((user, pass)) } => {
            if users.ascii.is_some_and(|c| c.check(user, pass)) {
                AuthAnswer::Ok
            } else {
                AuthAnswer::Failed
            }
        }
        AuthStep::Sasl { start, mech, data } => {
            session.authenticated = false;
            let answer = sasl(session, users, start, mech, data);
            if start {
                session.started = matches!(answer, AuthAnswer::Ok | AuthAnswer::Continue(_));
            }
            answer
        }
    };
    match answer {
        AuthAnswer::Ok => {
            session.authenticated = true;
            counters.auth_cmds.incr();
        }
        AuthAnswer::Continue(_) => {}
        _ => {
            counters.auth_cmds.incr();
            counters.auth_errors.incr();
        }
    }
    answer
}

fn sasl(s: &mut Session, users: &Users, start: bool, mech: &[u8], data: &[u8]) -> AuthAnswer<'static> {
    let check = |user: &[u8], pass: &[u8]| users.pwdb.is_some_and(|p| check_pwdb(p, user, pass));
    let finish = |s: &mut Session, ok: bool| {
        s.phase = if ok { Phase::Done } else { Phase::Fresh };
        if ok { AuthAnswer::Ok } else { AuthAnswer::Failed }
    };
    if s.phase == Phase::Done {
        return AuthAnswer::Failed;
    }
    if start {
        // Cyrus matches mechanism names without regard to case.
        if mech.eq_ignore_ascii_case(b"PLAIN") {
            if data.is_empty() {
                s.phase = Phase::AwaitPlain;
                return AuthAnswer::Continue(b"");
            }
            let ok = plain(data).is_some_and(|(user, pass)| check(user, pass));
            return finish(s, ok);
        }
        if mech.eq_ignore_ascii_case(b"LOGIN") {
            if data.is_empty() {
                s.phase = Phase::AwaitUser;
                return AuthAnswer::Continue(b"Username:");
            }
            s.phase = Phase::AwaitPass(data.to_vec());
            return AuthAnswer::Continue(b"Password:");
        }
        s.phase = Phase::Fresh;
        return AuthAnswer::Failed;
    }
    if !s.started {
        return AuthAnswer::Failed;
    }
    match std::mem::take(&mut s.phase) {
        Phase::AwaitPlain => {
            let ok = plain(data).is_some_and(|(user, pass)| check(user, pass));
            finish(s, ok)
        }
        Phase::AwaitUser => {
            s.phase = Phase::AwaitPass(data.to_vec());
            AuthAnswer::Continue(b"Password:")
        }
        Phase::AwaitPass(user) => {
            let ok = check(&user, data);
            finish(s, ok)
        }
        Phase::Fresh | Phase::Done => AuthAnswer::Failed,
    }
}

/// PLAIN's message: `authzid NUL authcid NUL password`; an authorization id other
/// than the user itself is refused (no proxy policy), as Cyrus does by default.
fn plain(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if user.is_empty() || (!authz.is_empty() && authz != user) || pass.contains(&0) {
        return None;
    }
    Some((user, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authfile_like_memcached() {
        let c = Credentials::parse_authfile(b"a:b\r\nuser2:secret2\nx:y:z").unwrap();
        assert!(c.check(b"a", b"b"));
        assert!(c.check(b"user2", b"secret2"));
        assert!(c.check(b"x", b"y:z"));
        assert!(!c.check(b"a", b"B"));
        assert!(Credentials::parse_authfile(b"nocolon\n").is_none());
        assert!(!format!("{c:?}").contains("secret2"));
    }

    #[test]
    fn plain_message() {
        assert_eq!(plain(b"\0u\0p"), Some((&b"u"[..], &b"p"[..])));
        assert_eq!(plain(b"u\0u\0p"), Some((&b"u"[..], &b"p"[..])));
        assert_eq!(plain(b"x\0u\0p"), None);
        assert_eq!(plain(b"up"), None);
    }

    #[test]
    fn sasl_exchanges() {
        let dir = std::env::temp_dir().join(format!("mc-auth-test-{}", std::process::id()));
        std::fs::write(&dir, "u:p\n").unwrap();
        let users = Users { pwdb: Some(&dir), ascii: None };
        let counters = CommandCounters::default();
        let mut s = Session::default();
        let step = |start, data: &'static [u8]| AuthStep::Sasl { start, mech: b"LOGIN", data };
        assert_eq!(run(&mut s, &users, step(true, b""), &counters), AuthAnswer::Continue(b"Username:"));
        assert_eq!(run(&mut s, &users, step(false, b"u"), &counters), AuthAnswer::Continue(b"Password:"));
        assert_eq!(run(&mut s, &users, step(false, b"p"), &counters), AuthAnswer::Ok);
        assert!(s.authenticated);
        assert_eq!(run(&mut s, &users, step(true, b""), &counters), AuthAnswer::Failed);
        assert!(!s.authenticated);
        assert_eq!((counters.auth_cmds.get(), counters.auth_errors.get()), (2, 1));
        std::fs::remove_file(&dir).unwrap();
    }
}
