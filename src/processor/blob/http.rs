//! HTTP to the Blob service: hyper's pooled HTTP/1.1 client over TCP or our rustls, request
//! authorization, a per-request timeout, and retries with backoff and jitter.

use super::listing::parse_error;
use super::shared_key::{authorization, ToSign};
use super::storage_connection::StorageCredential;
use super::BlobOptions;
use crate::auth::{percent_encode, AccessToken};
use crate::processor::PartitionManagerError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::{HeaderMap, Method, Request, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The service version every request asks for.
const SERVICE_VERSION: &str = "2021-08-06";
/// A response body larger than this is refused (a List Blobs page of 5000 blobs with
/// metadata is well under 4 MiB).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// The Azure AD scope of Blob Storage.
pub(super) const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// A TCP or TLS stream.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection as hyper's pool sees it.
pub(super) struct Io(TokioIo<Stream>);

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for Io {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Opens TCP, and TLS for `https` (webpki roots, ring), for hyper's pool.
#[derive(Clone)]
pub(super) struct Connector {
    tls: Arc<rustls::ClientConfig>,
}

impl Connector {
    fn new(
        extra_roots: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Result<Self, PartitionManagerError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for c in extra_roots {
            roots.add(c.clone()).map_err(|e| {
                PartitionManagerError::Config(format!("bad extra root certificate: {e}"))
            })?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| PartitionManagerError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Connector {
            tls: Arc::new(config),
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Io;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Io, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let https = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URL without a host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            if !https {
                return Ok(Io(TokioIo::new(Stream::Plain(tcp))));
            }
            let name = rustls_pki_types::ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok(Io(TokioIo::new(Stream::Tls(Box::new(stream)))))
        })
    }
}

/// A response: status, headers and the whole (bounded) body.
pub(super) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The service's error code and message (from the body, or the `x-ms-error-code` header).
    pub(super) fn error(&self) -> (String, String) {
        let (mut code, message) = parse_error(&String::from_utf8_lossy(&self.body));
        if code.is_empty() {
            code = self.header("x-ms-error-code").unwrap_or("").to_owned();
        }
        (code, message)
    }
}

/// The blob service endpoint split up: `scheme://authority` and the base path (the account,
/// for path-style endpoints like Azurite's).
pub(super) struct Endpoint {
    origin: String,
    base_path: String,
}

impl Endpoint {
    pub(super) fn parse(url: &str) -> Result<Self, PartitionManagerError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| PartitionManagerError::Config(format!("blob endpoint {url:?}: {e}")))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            return Err(PartitionManagerError::Config(format!(
                "blob endpoint {url:?} is not http(s)"
            )));
        }
        let authority = uri.authority().ok_or_else(|| {
            PartitionManagerError::Config(format!("blob endpoint {url:?} has no host"))
        })?;
        Ok(Endpoint {
            origin: format!("{scheme}://{authority}"),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `scheme://host[:port]`, for messages.
    pub(super) fn origin(&self) -> &str {
        &self.origin
    }
}

/// Sends blob requests with authorization, timeout and retries.
pub(super) struct Http {
    client: Client<Connector, Full<Bytes>>,
    endpoint: Endpoint,
    credential: StorageCredential,
    token: tokio::sync::Mutex<Option<AccessToken>>,
    options: BlobOptions,
    jitter: AtomicU64,
}

fn transport(e: impl std::fmt::Display) -> PartitionManagerError {
    PartitionManagerError::Unavailable(e.to_string())
}

/// An error with its causes: hyper's own message ("client error (Connect)") says nothing of
/// why, which is in the source chain (refused, a certificate not trusted, ...).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    // Bounded: a chain is a handful of layers.
    for _ in 0..8 {
        let Some(c) = cause else { break };
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Statuses worth another try: the service is busy, failing or timed out.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl Http {
    pub(super) fn new(
        endpoint: Endpoint,
        credential: StorageCredential,
        options: BlobOptions,
    ) -> Result<Self, PartitionManagerError> {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Connector::new(&options.extra_roots)?);
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Ok(Http {
            client,
            endpoint,
            credential,
            token: tokio::sync::Mutex::new(None),
            options,
            jitter: AtomicU64::new(seed),
        })
    }

    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A factor in [0.5, 1.0) (xorshift: jitter needs no quality, only spread).
    fn jitter(&self) -> f64 {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        0.5 + (x >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }

    async fn bearer(&self) -> Result<String, PartitionManagerError> {
        let StorageCredential::Token(cred) = &self.credential else {
            return Ok(String::new());
        };
        let mut cached = self.token.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|t| t.expires_on > SystemTime::now() + Duration::from_secs(300));
        if !fresh {
            let t = cred.get_token(STORAGE_SCOPE).await.map_err(|e| {
                PartitionManagerError::Authentication {
                    code: "TokenCredential".into(),
                    message: e.to_string(),
                }
            })?;
            *cached = Some(t);
        }
        Ok(cached
            .as_ref()
            .map(|t| format!("Bearer {}", t.token))
            .unwrap_or_default())
    }

    /// Sends `method path?query` (path relative to the endpoint, encoded) and returns the
    /// response whatever its status, except: 401/403 become `Authentication`, and transport
    /// failures, timeouts and busy/failing statuses are retried, then `Unavailable`/`Service`.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
    ) -> Result<Response, PartitionManagerError> {
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::time::timeout(
                self.options.request_timeout,
                self.once(&method, path, query, headers),
            )
            .await;
            let retry_why = match outcome {
                Ok(Ok(resp)) if resp.status == 401 || resp.status == 403 => {
                    let (code, message) = resp.error();
                    return Err(PartitionManagerError::Authentication { code, message });
                }
                Ok(Ok(resp)) if retryable(resp.status) => {
                    let (code, message) = resp.error();
                    if attempt >= self.options.max_retries {
                        return Err(PartitionManagerError::Service {
                            status: resp.status,
                            code,
                            message: format!(
                                "{message} (after {} attempts)",
                                attempt.saturating_add(1)
                            ),
                        });
                    }
                    format!("HTTP {} {code}", resp.status)
                }
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e)) => {
                    if attempt >= self.options.max_retries {
                        return Err(e);
                    }
                    e.to_string()
                }
                Err(_) => {
                    if attempt >= self.options.max_retries {
                        return Err(PartitionManagerError::Unavailable(format!(
                            "{} {path}: no answer within {:?}",
                            self.endpoint.origin, self.options.request_timeout
                        )));
                    }
                    "timeout".to_owned()
                }
            };
            let backoff = self
                .options
                .retry_delay
                .saturating_mul(1u32 << attempt.min(16))
                .min(self.options.max_retry_delay)
                .mul_f64(self.jitter());
            tracing::debug!(target: "eventhubs::blob", %method, path, attempt, why = %retry_why, ?backoff, "retrying blob request");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    async fn once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, String)],
    ) -> Result<Response, PartitionManagerError> {
        let full_path = format!("{}{path}", self.endpoint.base_path);
        let mut headers: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        headers.push(("x-ms-version".into(), SERVICE_VERSION.into()));
        headers.push((
            "x-ms-date".into(),
            super::http_date::format(SystemTime::now()),
        ));
        let mut qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        match &self.credential {
            StorageCredential::SharedKey { account, key } => {
                let q: Vec<(String, String)> = query
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                let auth = authorization(
                    account,
                    key,
                    &ToSign {
                        method: method.as_str(),
                        path: &full_path,
                        query: &q,
                        headers: &headers,
                        content_length: 0,
                    },
                );
                headers.push(("authorization".into(), auth));
            }
            StorageCredential::Sas(sas) => qs.push(sas.clone()),
            StorageCredential::Token(_) => {
                headers.push(("authorization".into(), self.bearer().await?))
            }
        }
        let url = if qs.is_empty() {
            format!("{}{full_path}", self.endpoint.origin)
        } else {
            format!("{}{full_path}?{}", self.endpoint.origin, qs.join("&"))
        };
        let mut req = Request::builder().method(method.clone()).uri(url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if *method == Method::PUT {
            req = req.header("content-length", "0");
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| PartitionManagerError::Config(format!("request for {path}: {e}")))?;
        let resp = self.client.request(req).await.map_err(|e| {
            transport(format!(
                "{} {path}: {}",
                self.endpoint.origin,
                with_causes(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer to {path}: {e}")))?
            .to_bytes();
        tracing::debug!(target: "eventhubs::blob", %method, path, status, "blob request");
        Ok(Response {
            status,
            headers: parts.headers,
            body,
        })
    }
}
