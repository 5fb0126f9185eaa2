//! A connection's byte stream: plain TCP, or TLS (`--tls`, #20) through a rustls client
//! whose records go over the same socket. Both read through the executor's epoll set
//! (`poller`) and write with one `send` per batch, so a TLS run differs from a plain one
//! only by the encryption: a batch of requests is encrypted into one buffer and sent
//! with one write, and what a `recv` brings is decrypted into the connection's read
//! buffer as the plain stream would have filled it.

use crate::config::Settings;
use futures_lite::future::poll_fn;
use futures_lite::{AsyncWriteExt, Future};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use poller::{Poller, Registration};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Ciphertext read per `recv` (a few TLS records).
const TLS_READ: usize = 64 * 1024;
/// A handshake not done by then fails (a server that accepts and never answers must not
/// hold the connection, and the run, forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a TLS run negotiated (its first connection's), for the report.
pub static NEGOTIATED: OnceLock<String> = OnceLock::new();

pub enum Wait {
    Read(io::Result<usize>),
    Woken,
}

/// The client's TLS side of one connection.
struct Tls {
    conn: ClientConnection,
    /// Records to send (one write per batch).
    out: Vec<u8>,
    /// Records received and not yet handed to rustls (`inbuf[pos..end]`): rustls takes
    /// them only as fast as its plaintext is read out.
    inbuf: Vec<u8>,
    pos: usize,
    end: usize,
}

pub struct Link {
    stream: TcpStream,
    reg: Registration,
    tls: Option<Box<Tls>>,
}

/// glommio's `TcpStream` has `AsRawFd` only.
fn fd(stream: &TcpStream) -> BorrowedFd<'_> {
    // SAFETY: the descriptor stays open while `stream` is borrowed.
    unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Reads what the socket has once the executor's epoll set says it may have some (see
/// the `poller` crate), or returns when `wake` passes, whichever first.
async fn recv_until(stream: &TcpStream, reg: &Registration, buf: &mut [u8], wake: Option<Instant>) -> Wait {
    let mut timer = wake.map(|w| Timer::new(w.saturating_duration_since(Instant::now())));
    poll_fn(|cx| {
        if let Poll::Ready(r) = reg.poll_recv(cx, fd(stream), buf) {
            return Poll::Ready(Wait::Read(r));
        }
        if let Some(t) = timer.as_mut() {
            if Pin::new(t).poll(cx).is_ready() {
                return Poll::Ready(Wait::Woken);
            }
        }
        Poll::Pending
    })
    .await
}

impl Link {
    /// Connects to `addr`; with TLS, also completes the handshake (a full one: the
    /// client keeps no sessions, so every connection pays for its key exchange).
    /// The error says which step failed.
    pub async fn connect(addr: SocketAddr, s: &Settings, poller: &Rc<Poller>) -> Result<Link, (&'static str, io::Error)> {
        let stream = TcpStream::connect(addr).await.map_err(|e| ("connect", io::Error::from(e)))?;
        let _ = stream.set_nodelay(true);
        // Not expected to fail (the epoll set takes any socket).
        let reg = poller.register(fd(&stream)).map_err(|e| ("epoll", e))?;
        let mut link = Link { stream, reg, tls: None };
        if let Some(tls) = &s.tls {
            let mut conn = ClientConnection::new(tls.config.clone(), tls.name.clone()).map_err(|e| ("tls", tls_err(e)))?;
            // A batch is encrypted whole and sent at once (it is bounded by the pipeline):
            // rustls's default 64 KiB limit would cut large values short.
            conn.set_buffer_limit(None);
            link.tls = Some(Box::new(Tls { conn, out: Vec::new(), inbuf: vec![0; TLS_READ], pos: 0, end: 0 }));
            link.handshake().await.map_err(|e| ("tls", e))?;
        }
        Ok(link)
    }

    async fn handshake(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let t = self.tls.as_mut().expect("a TLS link");
            if t.conn.wants_write() {
                self.flush_tls().await?;
                continue;
            }
            if !t.conn.is_handshaking() {
                break;
            }
            // The client's Finished goes out with the first batch of requests.
            match recv_until(&self.stream, &self.reg, &mut t.inbuf, Some(deadline)).await {
                Wait::Read(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Wait::Read(Ok(n)) => {
                    (t.pos, t.end) = (0, n);
                    t.feed()?;
                }
                Wait::Read(Err(e)) => return Err(e),
                Wait::Woken => return Err(io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake from the server")),
            }
        }
        let t = self.tls.as_ref().expect("a TLS link");
        NEGOTIATED.get_or_init(|| {
            let kx = t.conn.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
            format!(
                "{:?} {:?} {}",
                t.conn.protocol_version().unwrap_or(rustls::ProtocolVersion::Unknown(0)),
                t.conn.negotiated_cipher_suite().map(|s| s.suite()).unwrap_or(rustls::CipherSuite::Unknown(0)),
                kx.unwrap_or_default()
            )
        });
        Ok(())
    }

    /// Sends `buf` (encrypted first under TLS) with one write.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            None => self.stream.write_all(buf).await,
            Some(t) => {
                t.conn.writer().write_all(buf)?;
                self.flush_tls().await
            }
        }
    }

    async fn flush_tls(&mut self) -> io::Result<()> {
        let t = self.tls.as_mut().expect("a TLS link");
        while t.conn.wants_write() {
            t.conn.write_tls(&mut t.out)?;
        }
        let r = self.stream.write_all(&t.out).await;
        t.out.clear();
        r
    }

    /// Reads what has arrived (decrypted under TLS) into `buf`, waiting until something
    /// has, or until `wake` passes. `Ok(0)`: the server closed the connection.
    pub async fn read(&mut self, buf: &mut [u8], wake: Option<Instant>) -> Wait {
        let Some(t) = self.tls.as_mut() else {
            return recv_until(&self.stream, &self.reg, buf, wake).await;
        };
        loop {
            match t.conn.reader().read(buf) {
                // Ok(0): the server's close_notify.
                Ok(n) => return Wait::Read(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Wait::Read(Err(e)),
            }
            if t.pos < t.end {
                if let Err(e) = t.feed() {
                    return Wait::Read(Err(e));
                }
                continue;
            }
            match recv_until(&self.stream, &self.reg, &mut t.inbuf, wake).await {
                Wait::Read(Ok(n)) if n > 0 => (t.pos, t.end) = (0, n),
                other => return other,
            }
            // Session tickets and key updates need no answer; an alert ends the stream.
        }
    }
}

impl Tls {
    /// Hands received records to rustls, as many as it takes now, and processes them.
    fn feed(&mut self) -> io::Result<()> {
        let mut rest = &self.inbuf[self.pos..self.end];
        let n = self.conn.read_tls(&mut rest)?;
        self.pos += n;
        self.conn.process_new_packets().map_err(tls_err)?;
        Ok(())
    }
}

/// The client side of `--tls`: the configuration every connection shares and the name
/// the server's certificate is checked against.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl TlsClient {
    /// With `ca`: the server's certificate must chain to a certificate in that PEM file
    /// and name `name`. Without: any certificate is accepted (`--tls-skip-verify`, for
    /// a throwaway self-signed one), but the handshake's signature is still checked, so
    /// the server signs and the client verifies as with a real certificate.
    pub fn new(ca: Option<&str>, name: &str) -> Result<TlsClient, String> {
        // aws-lc-rs, as the server. X25519 first, as OpenSSL's clients (memtier,
        // libmemcached, pymemcache) offer it, whatever the provider's own order: a key
        // share on P-384 costs both sides several times X25519's.
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        use rustls::crypto::aws_lc_rs::kx_group;
        provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
        let provider = Arc::new(provider);
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let mut config = match ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("--tls-ca {path}: {e:?}"))? {
                    let cert = cert.map_err(|e| format!("--tls-ca {path}: {e:?}"))?;
                    roots.add(cert).map_err(|e| format!("--tls-ca {path}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("--tls-ca {path}: no certificate in the file"));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        // Every connection a full handshake: what a new client costs the server.
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from(name.to_string()).map_err(|e| format!("--tls-name {name:?}: {e}"))?;
        Ok(TlsClient { config: Arc::new(config), name })
    }
}

/// `--tls-skip-verify`: any certificate, its handshake signature still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
