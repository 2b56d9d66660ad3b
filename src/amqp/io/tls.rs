//! TLS with rustls (ring provider). Certificate verification is always on: extra roots can be
//! added for a self-signed emulator certificate, but there is no switch to skip verification.

use super::BoxedTransport;
use crate::amqp::error::Error;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;

/// A certificate chain and its private key, presented to the peer (TLS client authentication,
/// which SASL EXTERNAL relies on). `Debug` never shows the key.
pub struct ClientCertificate {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientCertificate {
    fn clone(&self) -> Self {
        ClientCertificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Client TLS settings.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsClientOptions {
    /// Name to verify the server certificate against and send as SNI; defaults to the host.
    pub server_name: Option<String>,
    /// Root certificates trusted in addition to the webpki roots (e.g. a self-signed emulator).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Trust only `extra_roots`, not the public webpki roots.
    pub only_extra_roots: bool,
    /// A client certificate to present (for servers that require one, and SASL EXTERNAL).
    pub client_certificate: Option<ClientCertificate>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl TlsClientOptions {
    /// Sets `server_name`: name to verify the server certificate against and send as SNI; defaults to the host.
    pub fn with_server_name(mut self, value: String) -> Self {
        self.server_name = Some(value);
        self
    }

    /// Sets `extra_roots`: root certificates trusted in addition to the webpki roots (e.g. a self-signed emulator).
    pub fn with_extra_roots(mut self, value: Vec<CertificateDer<'static>>) -> Self {
        self.extra_roots = value;
        self
    }

    /// Sets `only_extra_roots`: trust only `extra_roots`, not the public webpki roots.
    pub fn with_only_extra_roots(mut self, value: bool) -> Self {
        self.only_extra_roots = value;
        self
    }

    /// Sets `client_certificate`: a client certificate to present (for servers that require one, and SASL EXTERNAL).
    pub fn with_client_certificate(mut self, value: ClientCertificate) -> Self {
        self.client_certificate = Some(value);
        self
    }
}

impl TlsClientOptions {
    /// Adds the certificates of a PEM file to the trusted roots.
    pub fn add_roots_from_pem_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let certs = CertificateDer::pem_file_iter(path.as_ref())
            .map_err(|e| Error::Tls(format!("reading {}: {e}", path.as_ref().display())))?;
        for c in certs {
            self.extra_roots
                .push(c.map_err(|e| Error::Tls(format!("bad certificate in PEM: {e}")))?);
        }
        Ok(())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Wraps a TCP stream in TLS as a client, verifying the server's certificate.
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    options: &TlsClientOptions,
) -> Result<BoxedTransport, Error> {
    let mut roots = rustls::RootCertStore::empty();
    if !options.only_extra_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for c in &options.extra_roots {
        roots
            .add(c.clone())
            .map_err(|e| Error::Tls(format!("bad root certificate: {e}")))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &options.client_certificate {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|e| Error::Tls(format!("client certificate/key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    let name = options.server_name.as_deref().unwrap_or(host).to_owned();
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| Error::Tls(format!("server name {name:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| Error::Tls(format!("handshake with {name}: {e}")))?;
    Ok(Box::new(stream))
}

/// Server TLS settings: a certificate chain and its private key.
#[derive(Clone)]
pub struct TlsServerOptions {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServerOptions { .. }")
    }
}

impl TlsServerOptions {
    /// From DER certificates (leaf first) and a private key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| Error::Tls(format!("certificate/key: {e}")))?;
        Ok(TlsServerOptions {
            config: Arc::new(config),
        })
    }

    /// Like [`Self::new`], but every client must present a certificate issued by one of
    /// `client_roots` (TLS client authentication, for SASL EXTERNAL).
    pub fn requiring_client_certificates(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        client_roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in client_roots {
            roots
                .add(c)
                .map_err(|e| Error::Tls(format!("bad client root certificate: {e}")))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| Error::Tls(format!("certificate/key: {e}")))?;
        Ok(TlsServerOptions {
            config: Arc::new(config),
        })
    }

    /// From PEM files holding the certificate chain and the private key.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        let chain = CertificateDer::pem_file_iter(cert.as_ref())
            .map_err(|e| Error::Tls(format!("reading {}: {e}", cert.as_ref().display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls(format!("bad certificate PEM: {e}")))?;
        let key = PrivateKeyDer::from_pem_file(key.as_ref())
            .map_err(|e| Error::Tls(format!("reading key {}: {e}", key.as_ref().display())))?;
        Self::new(chain, key)
    }

    /// Runs the server side of the TLS handshake.
    pub async fn accept(&self, tcp: TcpStream) -> Result<BoxedTransport, Error> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let stream = acceptor
            .accept(tcp)
            .await
            .map_err(|e| Error::Tls(format!("handshake: {e}")))?;
        Ok(Box::new(stream))
    }
}
