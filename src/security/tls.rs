//! TLS for SSL and SASL_SSL listeners (decision 0013): the broker's rustls `ServerConfig`
//! built from Kafka's `ssl.*` settings (PEM files, `ssl.client.auth`, enabled protocols and
//! cipher suites), swapped whole on reload so new handshakes use new certificates while
//! established sessions keep theirs, and the one-time probe of kernel TLS (kTLS).
//!
//! Owns: reading and checking certificate, key and CA files; the server config every shard's
//! handshakes start from. Must not: touch sockets (the server's `transport` drives the
//! session over the connection's own buffers) or know any Kafka request.

use super::ssl_principal::PrincipalMapper;
use crate::config::listeners::SecurityProtocol;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Largest PEM file (certificate chain, key or CA bundle) read: a bundle of a few hundred
/// CA certificates fits; anything bigger is a wrong path, not a certificate.
pub const PEM_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Kafka's `ssl.enabled.protocols` default.
pub const DEFAULT_ENABLED_PROTOCOLS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// The broker's `ssl_*` settings, as the config file gives them (Kafka's `ssl.*` keys with
/// PEM files: `ssl.keystore.location` becomes a certificate chain and a key file).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `ssl_certificate_location`: the PEM certificate chain, the broker's first.
    pub certificate_location: Option<PathBuf>,
    /// `ssl_key_location`: its unencrypted PEM private key.
    pub key_location: Option<PathBuf>,
    /// `ssl_truststore_location`: PEM CA certificates client certificates must chain to.
    pub truststore_location: Option<PathBuf>,
    /// `ssl_client_auth`: none, requested or required.
    pub client_auth: String,
    /// `ssl_enabled_protocols`: TLSv1.2, TLSv1.3.
    pub enabled_protocols: Vec<String>,
    /// `ssl_cipher_suites`: empty for every suite the provider offers.
    pub cipher_suites: Vec<String>,
    /// `ssl_principal_mapping_rules`.
    pub principal_mapping_rules: String,
}

/// Kafka's `ssl.client.auth`: whether a client certificate is asked for, and needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(text: &str) -> Option<ClientAuth> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

/// Why a TLS configuration could not be built: the key it came from and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError {
    pub key: &'static str,
    pub message: String,
}

impl std::fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for TlsConfigError {}

fn error(key: &'static str, message: impl Into<String>) -> TlsConfigError {
    TlsConfigError {
        key,
        message: message.into(),
    }
}

/// What a TLS listener's handshakes start from, built whole from the config.
pub struct TlsContext {
    /// SSL listeners: client certificates as `ssl_client_auth` says.
    pub ssl: Arc<ServerConfig>,
    /// SASL_SSL listeners: SASL says who the client is, so (as Kafka since KIP-684) the
    /// broker-wide `ssl_client_auth` does not apply and no certificate is asked for.
    pub sasl_ssl: Arc<ServerConfig>,
    /// `ssl_principal_mapping_rules`.
    pub mapper: PrincipalMapper,
}

impl TlsContext {
    /// The server config for a listener of `protocol`.
    pub fn server_config(&self, protocol: SecurityProtocol) -> Arc<ServerConfig> {
        match protocol {
            SecurityProtocol::SaslSsl => self.sasl_ssl.clone(),
            _ => self.ssl.clone(),
        }
    }

    pub fn new(config: &TlsSettings) -> Result<TlsContext, TlsConfigError> {
        let mapper = PrincipalMapper::parse(&config.principal_mapping_rules)
            .map_err(|e| error("ssl_principal_mapping_rules", e))?;
        Ok(TlsContext {
            ssl: build_server_config(config, None)?,
            sasl_ssl: build_server_config(config, Some(ClientAuth::None))?,
            mapper,
        })
    }
}

/// The TLS context every shard's handshakes start from; `reload` swaps it whole.
pub struct TlsAcceptor {
    context: ArcSwap<TlsContext>,
}

impl TlsAcceptor {
    /// Builds the context `config` describes; an error names the key at fault.
    pub fn new(config: &TlsSettings) -> Result<TlsAcceptor, TlsConfigError> {
        Ok(TlsAcceptor {
            context: ArcSwap::from_pointee(TlsContext::new(config)?),
        })
    }

    /// The context new handshakes use (a wait-free load).
    pub fn current(&self) -> Arc<TlsContext> {
        self.context.load_full()
    }

    /// Re-reads every file `config` names. On success new handshakes use them while
    /// established sessions keep the keys they negotiated; on failure the old ones stay.
    pub fn reload(&self, config: &TlsSettings) -> Result<(), TlsConfigError> {
        self.context.store(Arc::new(TlsContext::new(config)?));
        Ok(())
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The rustls server config for `config`'s `ssl_*` keys, with `client_auth` instead of
/// `ssl_client_auth` when given.
pub fn build_server_config(
    config: &TlsSettings,
    client_auth: Option<ClientAuth>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let cert_path = config.certificate_location.as_deref().ok_or_else(|| {
        error(
            "ssl_certificate_location",
            "a TLS listener needs a PEM certificate chain",
        )
    })?;
    let key_path = config
        .key_location
        .as_deref()
        .ok_or_else(|| error("ssl_key_location", "a TLS listener needs a PEM private key"))?;
    let certs = read_certificates("ssl_certificate_location", cert_path)?;
    let key = read_private_key(key_path)?;
    let mut provider = provider();
    provider.cipher_suites = cipher_suites(&provider, &config.cipher_suites)?;
    let versions = protocol_versions(&config.enabled_protocols)?;
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| error("ssl_cipher_suites", e.to_string()))?;
    let configured = ClientAuth::parse(&config.client_auth).ok_or_else(|| {
        error(
            "ssl_client_auth",
            format!(
                "{:?} is not none, requested or required",
                config.client_auth
            ),
        )
    })?;
    let builder = match client_auth.unwrap_or(configured) {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let ca_path = config.truststore_location.as_deref().ok_or_else(|| {
                error(
                    "ssl_truststore_location",
                    "ssl_client_auth requested or required needs the CA certificates that \
                     client certificates chain to",
                )
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for ca in read_certificates("ssl_truststore_location", ca_path)? {
                roots
                    .add(ca)
                    .map_err(|e| error("ssl_truststore_location", e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| error("ssl_truststore_location", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| {
        error(
            "ssl_key_location",
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    Ok(Arc::new(server))
}

/// The bytes of a PEM file, refused past `PEM_FILE_BYTES_MAX`.
fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    let fail = |e: std::io::Error| error(key, format!("{}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(fail)?.len();
    if len > PEM_FILE_BYTES_MAX {
        return Err(error(
            key,
            format!(
                "{} is {len} bytes, at most {PEM_FILE_BYTES_MAX}",
                path.display()
            ),
        ));
    }
    std::fs::read(path).map_err(fail)
}

/// Every certificate in a PEM file; none is an error.
fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_pem(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1) of a PEM file. Encrypted keys are refused:
/// Kafka's `ssl.key.password` has no counterpart here.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    const KEY: &str = "ssl_key_location";
    let pem = read_pem(KEY, path)?;
    if pem.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
        return Err(error(
            KEY,
            format!(
                "{} is an encrypted key; give an unencrypted one",
                path.display()
            ),
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| error(KEY, format!("{}: no private key ({e})", path.display())))
}

/// Kafka's protocol names (`TLSv1.2`, `TLSv1.3`) as rustls versions.
fn protocol_versions(
    names: &[String],
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsConfigError> {
    const KEY: &str = "ssl_enabled_protocols";
    let mut versions = Vec::new();
    for name in names {
        let version = match name.trim() {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            other => {
                return Err(error(
                    KEY,
                    format!("{other:?} is not served (TLSv1.2 and TLSv1.3 are)"),
                ));
            }
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Err(error(KEY, "enables no protocol"));
    }
    Ok(versions)
}

/// Kafka's `ssl.cipher.suites` (IANA names, `TLS_AES_128_GCM_SHA256` or
/// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`) as the provider's suites; empty keeps them all.
fn cipher_suites(
    provider: &CryptoProvider,
    names: &[String],
) -> Result<Vec<rustls::SupportedCipherSuite>, TlsConfigError> {
    if names.is_empty() {
        return Ok(provider.cipher_suites.clone());
    }
    let mut suites = Vec::new();
    for name in names {
        let wanted = name.trim();
        let suite = provider
            .cipher_suites
            .iter()
            .find(|s| {
                let ours = s.suite().as_str().unwrap_or("");
                ours == wanted || ours.replacen("TLS13_", "TLS_", 1) == wanted
            })
            .ok_or_else(|| {
                error(
                    "ssl_cipher_suites",
                    format!("{wanted:?} is not a cipher suite this broker offers"),
                )
            })?;
        suites.push(*suite);
    }
    Ok(suites)
}

/// Whether the kernel could take TLS sessions over (kTLS), found once per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KtlsStatus {
    /// The `tls` upper-layer protocol attached to a TCP socket.
    Available,
    /// Records are encrypted by rustls and copied through user space; why.
    Unavailable(String),
}

static KTLS_STATUS: OnceLock<KtlsStatus> = OnceLock::new();

/// kTLS's status once a TLS listener probed it (`None` without TLS listeners).
pub fn ktls_status() -> Option<&'static KtlsStatus> {
    KTLS_STATUS.get()
}

/// Probes kTLS once (a loopback TCP pair, `setsockopt(TCP_ULP, "tls")`) and says what TLS
/// connections will use: in the log here and in `sluice_tls_ktls_unavailable`.
pub fn probe_ktls() -> &'static KtlsStatus {
    KTLS_STATUS.get_or_init(|| {
        let status = match attach_tls_ulp() {
            // Attaching the ULP is only the first step: installing rustls's traffic secrets
            // with TLS_TX/TLS_RX is not built yet (decision 0013), so the copy path serves.
            Ok(()) => KtlsStatus::Unavailable(
                "the kernel has the tls ULP, but handing sessions to it is not built yet"
                    .to_string(),
            ),
            Err(why) => KtlsStatus::Unavailable(why),
        };
        if let KtlsStatus::Unavailable(why) = &status {
            tracing::warn!(
                reason = %why,
                "kernel TLS is not used: TLS records are encrypted in user space and fetched \
                 bytes are copied through it instead of sent with sendfile"
            );
        }
        status
    })
}

/// Attaches the kernel's `tls` ULP to a connected loopback socket; `Err` says why not.
fn attach_tls_ulp() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let client = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let _server = listener.accept().map_err(|e| e.to_string())?;
    const ULP: &[u8] = b"tls";
    // SAFETY: setsockopt on a socket this function owns, with a pointer to a static byte
    // string and its length.
    let rc = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_ULP,
            ULP.as_ptr().cast(),
            ULP.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let errno = std::io::Error::last_os_error();
    let available = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Err(format!(
        "the kernel has no tls ULP (setsockopt TCP_ULP: {errno}; tcp_available_ulp: {available})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_reads_kafkas_words() {
        assert_eq!(ClientAuth::parse("required"), Some(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("Requested"), Some(ClientAuth::Requested));
        assert_eq!(ClientAuth::parse("none"), Some(ClientAuth::None));
        assert_eq!(ClientAuth::parse("always"), None);
    }

    #[test]
    fn protocols_and_suites_take_kafkas_names() {
        let both = protocol_versions(&["TLSv1.2".into(), "TLSv1.3".into()]).unwrap();
        assert_eq!(both.len(), 2);
        assert!(protocol_versions(&["TLSv1.1".into()]).is_err());
        assert!(protocol_versions(&[]).is_err());
        let p = provider();
        let picked = cipher_suites(
            &p,
            &[
                "TLS_AES_256_GCM_SHA384".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            ],
        )
        .unwrap();
        assert_eq!(picked.len(), 2);
        assert!(cipher_suites(&p, &["TLS_RSA_WITH_RC4_128_MD5".into()]).is_err());
    }

    #[test]
    fn missing_files_name_their_key() {
        let mut config = TlsSettings {
            client_auth: "none".into(),
            enabled_protocols: vec!["TLSv1.3".into()],
            ..TlsSettings::default()
        };
        assert_eq!(
            build_server_config(&config, None).unwrap_err().key,
            "ssl_certificate_location"
        );
        config.certificate_location = Some("/nonexistent/cert.pem".into());
        config.key_location = Some("/nonexistent/key.pem".into());
        assert_eq!(
            build_server_config(&config, None).unwrap_err().key,
            "ssl_certificate_location"
        );
    }
}
