//! TLS (`-Z`, #20): the server's rustls setup, built from memcached's `ssl_*` options,
//! reloaded by `refresh_certs`, and its counters for `stats`. The per-connection side
//! (records through the ring) is `stream::TlsStream`.
//!
//! One `ServerConfig` is shared by every executor; `refresh_certs` builds a new one from
//! the files (certificate chain, key, CA) and swaps it in, as memcached swaps its
//! SSL_CTX contents: connections already open keep the session they negotiated, new
//! ones get the new certificate. A refresh that fails leaves the old one in force.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::commands::TlsFacts;
use crate::config::TlsOptions;

/// Sessions kept for resumption under `ssl_session_cache` (OpenSSL's default cache
/// holds 20480; rustls's memory cache evicts the oldest past this).
const SESSION_CACHE_SIZE: usize = 20480;

/// The TLS side of the server, shared by every executor.
pub struct Tls {
    options: TlsOptions,
    config: RwLock<Arc<ServerConfig>>,
    sessions: Arc<dyn StoresServerSessions>,
    new_sessions: Arc<AtomicU64>,
    handshake_errors: AtomicU64,
    /// Server clock (seconds) of the last successful load of the certificate.
    refreshed_at: AtomicU32,
}


impl Tls {
    /// Loads the certificate chain, key and CA named by the options. The error is
    /// memcached's message (it exits with EX_USAGE at start).
    pub fn start(options: &TlsOptions, now: u32) -> Result<Tls, String> {
        let new_sessions = Arc::new(AtomicU64::new(0));
        let sessions: Arc<dyn StoresServerSessions> = if options.session_cache {
            Arc::new(CountingSessions { inner: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE), new: new_sessions.clone() })
        } else {
            Arc::new(NoServerSessionStorage {})
        };
        let config = build(options, &sessions)?;
        Ok(Tls {
            options: options.clone(),
            config: RwLock::new(config),
            sessions,
            new_sessions,
            handshake_errors: AtomicU64::new(0),
            refreshed_at: AtomicU32::new(now),
        })
    }

    /// What is accepted and not acted on, for the note at `-v`.
    pub fn notes(&self) -> Vec<String> {
        let o = &self.options;
        let mut notes = Vec::new();
        if let Some(ciphers) = &o.ciphers {
            notes.push(format!("ignoring ssl_ciphers={ciphers}: OpenSSL cipher lists do not apply; rustls offers its own suites (TLS 1.3: AES-GCM, ChaCha20-Poly1305; TLS 1.2: ECDHE with AES-GCM, ChaCha20-Poly1305)"));
        }
        if o.min_version < 2 {
            notes.push(format!("ssl_min_version={}: TLS 1.0 and 1.1 are not offered (rustls); the minimum is TLS 1.2", o.min_version));
        }
        if o.kernel_tls {
            notes.push("ignoring ssl_kernel_tls: records are encrypted in user space".into());
        }
        if o.keyformat != 1 {
            notes.push(format!("ignoring ssl_keyformat={}: keys are read as PEM", o.keyformat));
        }
        if o.wbuf_size != 16 * 1024 {
            notes.push("ignoring ssl_wbuf_size: a round's replies are encrypted as one write".into());
        }
        if o.verify_mode == 1 && o.ca_cert.is_none() {
            notes.push("ssl_verify_mode=1 without ssl_ca_cert: client certificates are not requested".into());
        }
        notes
    }

    /// A new server-side TLS connection with the configuration in force.
    pub fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut conn = ServerConnection::new(config)?;
        // Replies are bounded by the connection (one round in flight); rustls need not.
        conn.set_buffer_limit(None);
        Ok(conn)
    }

    /// `refresh_certs`: reloads the files; on failure, memcached's message.
    pub fn refresh(&self, now: u32) -> Result<(), String> {
        let config = build(&self.options, &self.sessions)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        self.refreshed_at.store(now, Relaxed);
        Ok(())
    }

    pub fn handshake_failed(&self) {
        self.handshake_errors.fetch_add(1, Relaxed);
    }

    pub fn facts(&self, now: u32) -> TlsFacts {
        TlsFacts {
            handshake_errors: self.handshake_errors.load(Relaxed),
            new_sessions: self.options.session_cache.then(|| self.new_sessions.load(Relaxed)),
            since_refresh: now.wrapping_sub(self.refreshed_at.load(Relaxed)),
        }
    }
}

/// The rustls configuration from the files, with memcached's messages for what fails.
fn build(o: &TlsOptions, sessions: &Arc<dyn StoresServerSessions>) -> Result<Arc<ServerConfig>, String> {
    // aws-lc-rs, not ring: ring's RSA signature costs about twice aws-lc's, and made a
    // new connection with an RSA certificate cost us more CPU than memcached (figures
    // in Cargo.toml and README).
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // X25519 first, as OpenSSL (and so memcached) prefers it: where a client offers
    // several groups, the cheapest key exchange wins (a P-384 share costs both sides
    // several times X25519's).
    {
        use rustls::crypto::aws_lc_rs::kx_group;
        provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    }
    let provider = Arc::new(provider);
    let chain_path = o.chain_cert.as_deref().unwrap_or("(null)");
    let chain = load_certs(o.chain_cert.as_deref())
        .map_err(|e| format!("Error loading the certificate chain: {chain_path} : {e}"))?;
    // memcached: the key may be in the chain file when ssl_key is not given.
    let key_path = o.key.as_deref().or(o.chain_cert.as_deref());
    let key = load_key(key_path).map_err(|e| format!("Error loading the key: {} : {e}", key_path.unwrap_or("(null)")))?;
    let versions: &[&rustls::SupportedProtocolVersion] =
        if o.min_version >= 3 { &[&rustls::version::TLS13] } else { &[&rustls::version::TLS13, &rustls::version::TLS12] };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("Error setting the TLS versions: {e}"))?;
    let builder = match (&o.ca_cert, o.verify_mode) {
        (Some(ca), mode) => {
            let roots = load_roots(ca).map_err(|e| format!("Error loading the CA certificate: {ca} : {e}"))?;
            if mode == 0 {
                builder.with_no_client_auth()
            } else {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone());
                // 1: request a certificate, verify one if given; 2 and 3: require one
                // (3 adds "once", which concerns renegotiation: TLS here has none).
                let verifier = if mode == 1 { verifier.allow_unauthenticated() } else { verifier };
                let verifier =
                    verifier.build().map_err(|e| format!("Error loading the CA certificate: {ca} : {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        }
        (None, 0 | 1) => builder.with_no_client_auth(),
        // No CA: OpenSSL would refuse every client; say so at once instead.
        (None, mode) => return Err(format!("Error loading the CA certificate: ssl_verify_mode {mode} requires ssl_ca_cert")),
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|e| format!("Error validating the certificate: {e}"))?;
    config.session_storage = sessions.clone();
    if !o.session_cache {
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

fn load_certs(path: Option<&str>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = path.ok_or("no file given")?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(certs)
}

fn load_key(path: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path.ok_or("no file given")?).map_err(pem_error)
}

fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(Some(path))? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of that kind in the file".into(),
        other => format!("{other:?}"),
    }
}

/// rustls's session cache, counting new sessions for `ssl_new_sessions` (memcached
/// counts them in OpenSSL's new-session callback).
#[derive(Debug)]
struct CountingSessions {
    inner: Arc<ServerSessionMemoryCache>,
    new: Arc<AtomicU64>,
}

impl StoresServerSessions for CountingSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.new.fetch_add(1, Relaxed);
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}
