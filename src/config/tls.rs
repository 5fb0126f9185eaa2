//! memcached's TLS options: `-Z` and the `ssl_*` extended options, as given.
//!
//! Split out of `config.rs` (#13): these are one family with their own parsing
//! (`take`) and their own names in `stats settings`; `server::tls` builds the rustls
//! setup from them.

/// `-Z` and memcached's `ssl_*` extended options, as given (#20). Defaults are
/// memcached's; `server::tls` builds the TLS setup from them.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub enabled: bool,
    pub chain_cert: Option<String>,
    pub key: Option<String>,
    pub ca_cert: Option<String>,
    /// 0 none, 1 request a client certificate, 2 require one, 3 require once.
    pub verify_mode: u8,
    /// memcached's `ssl_keyformat` (OpenSSL's SSL_FILETYPE_PEM = 1): shown only.
    pub keyformat: i64,
    pub ciphers: Option<String>,
    /// `ssl_wbuf_size` in bytes: shown only (records are sized by rustls).
    pub wbuf_size: u64,
    pub session_cache: bool,
    pub kernel_tls: bool,
    /// 0 TLS 1.0, 1 TLS 1.1, 2 TLS 1.2 (memcached's default), 3 TLS 1.3.
    pub min_version: u8,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            enabled: false,
            chain_cert: None,
            key: None,
            ca_cert: None,
            verify_mode: 0,
            keyformat: 1,
            ciphers: None,
            wbuf_size: 16 * 1024,
            session_cache: false,
            kernel_tls: false,
            min_version: 2,
        }
    }
}

impl TlsOptions {
    /// OpenSSL's flags for the verify mode, as memcached's `stats settings` shows them
    /// (SSL_VERIFY_PEER 1, FAIL_IF_NO_PEER_CERT 2, CLIENT_ONCE 4).
    pub fn verify_flags(&self) -> u8 {
        [0, 1, 3, 7][self.verify_mode.min(3) as usize]
    }

    /// memcached's name of the minimum version (`ssl_proto_text`).
    pub fn min_version_text(&self) -> &'static str {
        ["tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"][self.min_version.min(3) as usize]
    }

    /// Takes one `ssl_*` extended option; Ok(false) if `name` is not one. Errors are
    /// memcached's lines (it exits 1 on them).
    pub(super) fn take(&mut self, name: &str, value: Option<&str>) -> Result<bool, String> {
        let need = |v: Option<&str>| v.map(str::to_string).ok_or(format!("Missing {name} argument"));
        let number = |v: Option<&str>| -> Result<i64, String> {
            need(v)?.trim().parse::<i64>().map_err(|_| format!("could not parse argument to {name}"))
        };
        match name {
            "ssl_chain_cert" => self.chain_cert = Some(need(value)?),
            "ssl_key" => self.key = Some(need(value)?),
            "ssl_ca_cert" => self.ca_cert = Some(need(value)?),
            "ssl_ciphers" => self.ciphers = Some(need(value)?),
            "ssl_keyformat" => self.keyformat = number(value)?,
            "ssl_wbuf_size" => {
                let kib = number(value)?;
                self.wbuf_size = u64::try_from(kib).map_err(|_| format!("could not parse argument to {name}"))? * 1024;
            }
            "ssl_session_cache" => self.session_cache = true,
            "ssl_kernel_tls" => self.kernel_tls = true,
            "ssl_verify_mode" => match number(value)? {
                mode @ 0..=3 => self.verify_mode = mode as u8,
                _ => return Err("Invalid ssl_verify_mode. Use help to see valid options.".into()),
            },
            "ssl_min_version" => match number(value)? {
                version @ 0..=3 => self.min_version = version as u8,
                _ => return Err("Invalid ssl_min_version. Use help to see valid options.".into()),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The prefix of a `-l` address that is not to use TLS under `-Z` (memcached's).
pub const NOTLS: &str = "notls:";
