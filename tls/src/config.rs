//! Client and server configurations: PEM files in, rustls configurations
//! out.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::{TlsError, DEFAULT_HANDSHAKE_TIMEOUT};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::config(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::config(format!(
            "{what}: no certificate in the PEM"
        )));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::config(format!("{what}: {e}")))
}

fn roots_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(pem, what)? {
        roots
            .add(c)
            .map_err(|e| TlsError::config(format!("{what}: {e}")))?;
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::config(format!("{}: {e}", path.display())))
}

fn alpn_list<I, P>(protocols: I) -> Vec<Vec<u8>>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    protocols.into_iter().map(|p| p.as_ref().to_vec()).collect()
}

/// How a TLS client checks servers and presents itself.
///
/// ```
/// use braid_tls::ClientConfig;
/// let config = ClientConfig::new().alpn(["h2", "http/1.1"]);
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    roots: Option<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    identity: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    custom: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl ClientConfig {
    /// Trusts the platform's roots (`/etc/ssl/certs` and friends, through
    /// `rustls-native-certs`), or the Mozilla roots of `webpki-roots` if the
    /// platform has none.
    pub fn new() -> Self {
        ClientConfig {
            roots: None,
            alpn: Vec::new(),
            identity: None,
            custom: None,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Trusts only the certificates in `pem` (one or more CA certificates).
    pub fn with_root_pem(pem: &[u8]) -> Result<Self, TlsError> {
        Ok(ClientConfig {
            roots: Some(roots_from_pem(pem, "root certificates")?),
            ..ClientConfig::new()
        })
    }

    /// Trusts only the certificates in the PEM file at `path`.
    pub fn with_root_pem_file(path: impl AsRef<Path>) -> Result<Self, TlsError> {
        Self::with_root_pem(&read(path.as_ref())?)
    }

    /// Uses a rustls configuration built by hand; braid's other settings
    /// except the handshake timeout are then ignored.
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> Self {
        ClientConfig {
            custom: Some(config),
            ..ClientConfig::new()
        }
    }

    /// Offers these ALPN protocols, most preferred first.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = alpn_list(protocols);
        self
    }

    /// Presents a client certificate (chain, leaf first) and its key, both
    /// PEM, to servers that ask for one.
    pub fn client_certificate_pem(mut self, chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let certs = certs_from_pem(chain, "client certificate")?;
        let key = key_from_pem(key, "client key")?;
        self.identity = Some((certs, Arc::new(key)));
        Ok(self)
    }

    /// [`client_certificate_pem`](Self::client_certificate_pem) from files.
    pub fn client_certificate_pem_files(
        self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let (c, k) = (read(chain.as_ref())?, read(key.as_ref())?);
        self.client_certificate_pem(&c, &k)
    }

    /// Fails handshakes that take longer than `timeout` (default 30 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The rustls configuration these settings describe.
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        if let Some(c) = &self.custom {
            return Ok(c.clone());
        }
        let roots = match &self.roots {
            Some(r) => r.clone(),
            None => platform_roots(),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError::config(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig::new()
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("roots", &self.roots.as_ref().map(|r| r.len()))
            .field("alpn", &self.alpn)
            .field("client_certificate", &self.identity.is_some())
            .field("custom", &self.custom.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn platform_roots() -> RootCertStore {
    thread_local! {
        static ROOTS: RootCertStore = load_platform_roots();
    }
    ROOTS.with(|r| r.clone())
}

fn load_platform_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::debug!("no platform root certificates; using webpki-roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// A TLS server's certificate, key and policies.
#[derive(Clone)]
pub struct ServerConfig {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    alpn: Vec<Vec<u8>>,
    client_roots: Option<(RootCertStore, bool)>,
    custom: Option<Arc<rustls::ServerConfig>>,
    timeout: Duration,
}

impl ServerConfig {
    /// A server presenting `chain` (PEM, leaf first) with its private `key`
    /// (PEM: PKCS#8, PKCS#1 or SEC1). The pair is checked now.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let config = ServerConfig {
            chain: certs_from_pem(chain, "server certificate")?,
            key: Arc::new(key_from_pem(key, "server key")?),
            alpn: Vec::new(),
            client_roots: None,
            custom: None,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        };
        config.build()?;
        Ok(config)
    }

    /// [`from_pem`](Self::from_pem) from files.
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::from_pem(&read(chain.as_ref())?, &read(key.as_ref())?)
    }

    /// Uses a rustls configuration built by hand; braid's other settings
    /// except the handshake timeout are then ignored.
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        ServerConfig {
            chain: Vec::new(),
            key: Arc::new(PrivateKeyDer::Pkcs8(Vec::new().into())),
            alpn: Vec::new(),
            client_roots: None,
            custom: Some(config),
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Accepts these ALPN protocols, most preferred first; a client that
    /// offers ALPN but none of these is refused.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = alpn_list(protocols);
        self
    }

    /// Asks clients for a certificate issued by one of the CAs in `pem`;
    /// with `required`, a client without one is refused.
    pub fn client_auth_pem(mut self, pem: &[u8], required: bool) -> Result<Self, TlsError> {
        self.client_roots = Some((roots_from_pem(pem, "client CA")?, required));
        Ok(self)
    }

    /// Fails handshakes that take longer than `timeout` (default 30 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The rustls configuration these settings describe.
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        if let Some(c) = &self.custom {
            return Ok(c.clone());
        }
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config(e.to_string()))?;
        let builder = match &self.client_roots {
            Some((roots, required)) => {
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots.clone()),
                    provider(),
                );
                let v = if *required {
                    v
                } else {
                    v.allow_unauthenticated()
                };
                let v = v
                    .build()
                    .map_err(|e| TlsError::config(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::config(format!("server certificate and key: {e}")))?;
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("chain", &self.chain.len())
            .field("alpn", &self.alpn)
            .field("client_auth", &self.client_roots.as_ref().map(|r| r.1))
            .field("custom", &self.custom.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}
