//! The TLS tests' harness (`-Z`, issue #20): certificates made here (rcgen), a server
//! started as memcached's users start it (`-Z -o ssl_chain_cert=...,ssl_key=...`) with a
//! plain listener (`-l notls:...`) beside the TLS one for the readiness probe and the
//! plaintext side of some checks, and a blocking rustls client. Used by tests/tls*.rs.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{find, server_bin, Client};

/// A certificate authority made for one test.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf certificate for `name` (server: localhost and 127.0.0.1), as PEM (cert, key).
    pub fn issue(&self, name: &str, client: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages =
            vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Files for one server: its certificate and key, the CA that issued it.
pub struct Files {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
}

impl Files {
    pub fn new() -> Files {
        let files = Files { dir: tempfile::tempdir().unwrap(), ca: Ca::new("memcached-rs test CA") };
        let (cert, key) = files.ca.issue("server one", false);
        files.write("cert.pem", &cert);
        files.write("key.pem", &key);
        files.write("ca.pem", &files.ca.cert.pem());
        files
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    pub fn cert_opts(&self) -> String {
        format!("ssl_chain_cert={},ssl_key={}", self.path("cert.pem").display(), self.path("key.pem").display())
    }
}

/// A server with a TLS port and a plain (`notls:`) one.
pub struct TlsServer {
    pub child: Child,
    pub tls_port: u16,
    pub plain_port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(server_bin());
    cmd.args(args);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "root"]);
    }
    // SAFETY: only close_range between fork and exec (a clean fd table, as common).
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    cmd
}

/// The `pid` a plain `stats` on `port` reports, or None on any failure (a reset, a
/// timeout, not memcached): never a panic, so a port collision is a retry.
fn probe_pid(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"stats\r\n").ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&got, b"END\r\n").is_none() {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().find_map(|l| l.strip_prefix("STAT pid ").map(|p| p.trim().to_string()))
}

impl TlsServer {
    /// `-Z -o <cert options>,<extra_opts> -t <threads>` plus `extra`.
    pub fn start(files: &Files, threads: &str, extra_opts: &str, extra: &[&str]) -> TlsServer {
        for _ in 0..10 {
            let (tls_port, plain_port) = (free_port(), free_port());
            let listen = format!("127.0.0.1:{tls_port},notls:127.0.0.1:{plain_port}");
            let mut opts = files.cert_opts();
            if !extra_opts.is_empty() {
                opts = format!("{opts},{extra_opts}");
            }
            let port = tls_port.to_string();
            let mut args = vec!["-Z", "-p", &port, "-U", "0", "-l", &listen];
            args.extend(["-o", &opts, "-t", threads]);
            args.extend(extra);
            let log = std::env::var_os("MC_TEST_SERVER_LOG").is_some();
            let child = command(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(if log { Stdio::inherit() } else { Stdio::null() })
                .spawn()
                .unwrap();
            let mut server = TlsServer { child, tls_port, plain_port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", plain_port)).is_ok() {
                    // The port was free when chosen, not reserved: a parallel test's
                    // server (even its TLS port, which resets a plain `stats`) may hold
                    // it. Only our own pid on it counts; anything else is a retry.
                    if probe_pid(plain_port) == Some(server.child.id().to_string()) {
                        return server;
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("could not start {} with TLS", server_bin().display());
    }

    pub fn plain(&self) -> Client {
        Client::connect(self.plain_port)
    }

    pub fn tls(&self, files: &Files) -> TlsClient {
        TlsClient::connect(self.tls_port, client_config(files, None, None)).unwrap()
    }

    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.plain().stats("");
        stats.get(name).unwrap_or_else(|| panic!("no stat {name}")).parse().unwrap()
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client trusting the test CA; with a client certificate (PEM cert, key) if given;
/// TLS 1.2 only when `version` says so.
pub fn client_config(files: &Files, client_cert: Option<(&str, &str)>, version: Option<u8>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(files.ca.cert.der().clone()).unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        Some(2) => &[&rustls::version::TLS12],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => {
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A text-protocol client over TLS.
pub struct TlsClient {
    pub stream: StreamOwned<ClientConnection, TcpStream>,
    pub pending: Vec<u8>,
}

impl TlsClient {
    /// Connects and completes the handshake (as far as the client can tell: under TLS
    /// 1.3 the server's verdict on a client certificate comes with its first reply).
    pub fn connect(port: u16, config: Arc<ClientConfig>) -> std::io::Result<TlsClient> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        let conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient { stream, pending: Vec::new() })
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).unwrap();
        self.stream.flush().unwrap();
    }

    /// Reads until `end` has arrived; returns everything up to and including it.
    pub fn read_until(&mut self, end: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(at) = find(&self.pending, end) {
                let rest = self.pending.split_off(at + end.len());
                return Ok(std::mem::replace(&mut self.pending, rest));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed")),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn expect(&mut self, want: impl AsRef<[u8]>) {
        let want = want.as_ref();
        let mut buf = vec![0u8; 64 * 1024];
        while self.pending.len() < want.len() {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e} after {} of {} bytes: {:?}", self.pending.len(), want.len(), short(&self.pending)),
            }
        }
        let got: Vec<u8> = self.pending.drain(..want.len().min(self.pending.len())).collect();
        if got != want {
            let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            panic!("replies differ at byte {at}: got {:?}, want {:?}", short(&got[at..]), short(&want[at..]));
        }
    }

    pub fn roundtrip(&mut self, req: &str, reply: &str) {
        self.send(req);
        self.expect(reply);
    }

    /// The peer certificate's DER, to tell which certificate the server presented.
    pub fn server_cert(&self) -> Vec<u8> {
        self.stream.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// The first reply line, or the error the connection ended with.
    pub fn try_version(&mut self) -> Result<Vec<u8>, std::io::Error> {
        self.stream.write_all(b"version\r\n")?;
        self.stream.flush()?;
        self.read_until(b"\r\n")
    }
}

pub fn short(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    if bytes.len() > 200 { format!("{text}... ({} bytes)", bytes.len()) } else { text }
}

pub fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

