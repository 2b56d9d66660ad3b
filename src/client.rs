//! [`EventHubClient`]: one event hub, one lazily opened AMQP connection shared by the client's
//! producers, consumers and management calls, re-opened after it is lost.

use crate::amqp::codec::{Symbol, Value};
use crate::amqp::engine::FrameTrace;
use crate::amqp::types::definitions::Fields;
use crate::amqp::{ConnectOptions, Connection, ReceiverOptions, SenderOptions, Session};
use crate::auth::{
    ConnectionString, SasCredential, SharedAccessSignatureCredential, TokenCredential,
};
use crate::cbs::{AbortOnDrop, Cbs, RpcLink, TokenHold};
use crate::error::{Error, ErrorKind};
use crate::retry::RetryOptions;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Tracing target of client-level network events (connections, links, CBS) when
/// [`ClientOptions::network_tracing`] is on. AMQP frames are traced under
/// [`crate::amqp::engine::FRAME_TRACE_TARGET`], with a `conn` field naming the connection's
/// container id.
pub const NETWORK_TRACE_TARGET: &str = "eventhubs::network";

/// [`ClientOptions::connect_timeout`]'s default: several round trips to a far region fit, and
/// four attempts of it still fail a silent endpoint within 30 s.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The WebSocket path, for error text (without the feature no client uses WebSockets).
#[cfg(feature = "websockets")]
const WEBSOCKET_PATH: &str = crate::amqp::io::ws::PATH;
#[cfg(not(feature = "websockets"))]
const WEBSOCKET_PATH: &str = "";

/// How the client reaches Event Hubs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportType {
    /// AMQP on its own port (5671 with TLS, 5672 without).
    #[default]
    Amqp,
    /// AMQP inside a WebSocket at `/$servicebus/websocket/` on port 443 (80 without TLS), for
    /// networks that only let HTTPS out; needs the `websockets` feature.
    AmqpWebSockets,
}

/// Client options; set them through [`EventHubClientBuilder`].
///
/// **Time to fail.** An endpoint that cannot be reached, or accepts TCP and never answers,
/// fails a call (e.g. [`EventHubClient::get_properties`]) within
/// `(1 + retry.max_retries) × connect_timeout` plus the retry waits: with the defaults
/// 4 × 5 s + at most 7.3 s, under 30 s. An endpoint that connects and then stops answering
/// fails each attempt after `operation_timeout` (60 s) instead.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Retry policy for transient failures.
    pub retry: RetryOptions,
    /// Limit for each attempt of an operation (send, management call, attach), including
    /// connecting when the operation needs a connection.
    pub operation_timeout: Duration,
    /// Limit for opening a connection until it is usable (TCP, TLS, SASL, `open`, the first
    /// session and the CBS links); 5 s by default. A connection that takes longer is a
    /// transient [`ErrorKind::OperationTimeout`], retried under `retry`.
    pub connect_timeout: Duration,
    /// Connect to this host and port instead of the namespace's (a proxy or gateway); the
    /// namespace host is still used for TLS verification, `open` and token audiences.
    pub custom_endpoint: Option<(String, u16)>,
    /// Use TLS (default true; false for `UseDevelopmentEmulator=true`).
    pub use_tls: bool,
    /// TLS settings (extra roots for a self-signed emulator certificate).
    #[cfg(feature = "tls")]
    pub tls: crate::amqp::io::tls::TlsClientOptions,
    /// AMQP on its own port, or inside WebSockets on 443.
    pub transport: TransportType,
    /// Tunnel connections through this HTTP proxy (`CONNECT`), for either transport.
    pub proxy: Option<crate::amqp::io::proxy::ProxyOptions>,
    /// When `proxy` is `None`, take the proxy from `HTTPS_PROXY`/`https_proxy`, honouring
    /// `NO_PROXY`/`no_proxy` (default false: the environment is read only when asked).
    pub proxy_from_env: bool,
    /// Default consumer prefetch (credit window), 300 events.
    pub prefetch: u32,
    /// Log this client's traffic at INFO level: connections, links and token operations
    /// under [`NETWORK_TRACE_TARGET`], and every AMQP frame in and out (performative, channel,
    /// size, fields; never payloads or secrets) under
    /// [`FRAME_TRACE_TARGET`](crate::amqp::engine::FRAME_TRACE_TARGET). Off, the frames are
    /// still emitted at DEBUG for a subscriber that asks for that target.
    pub network_tracing: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retry: RetryOptions::default(),
            operation_timeout: Duration::from_secs(60),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            custom_endpoint: None,
            use_tls: true,
            #[cfg(feature = "tls")]
            tls: Default::default(),
            transport: TransportType::Amqp,
            proxy: None,
            proxy_from_env: false,
            prefetch: 300,
            network_tracing: false,
        }
    }
}

/// Builds an [`EventHubClient`] with options.
pub struct EventHubClientBuilder {
    host: String,
    port: Option<u16>,
    hub: String,
    credential: Arc<dyn TokenCredential>,
    options: ClientOptions,
}

impl fmt::Debug for EventHubClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHubClientBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hub", &self.hub)
            .field("options", &self.options)
            .finish()
    }
}

impl EventHubClientBuilder {
    /// From a connection string; `hub` overrides (and must agree with) its `EntityPath`.
    pub fn from_connection_string(conn: &str, hub: Option<&str>) -> Result<Self, Error> {
        let cs = ConnectionString::parse(conn)?;
        let hub = cs.hub_name(hub)?;
        let credential: Arc<dyn TokenCredential> =
            match (&cs.key_name, &cs.key, &cs.shared_access_signature) {
                (Some(name), Some(key), _) => {
                    Arc::new(SasCredential::new(name.clone(), key.clone()))
                }
                (_, _, Some(sig)) => Arc::new(
                    SharedAccessSignatureCredential::new(sig.clone()).map_err(|e| {
                        Error::invalid_argument(format!(
                            "connection string SharedAccessSignature: {e}"
                        ))
                    })?,
                ),
                _ => {
                    return Err(Error::invalid_argument(
                        "connection string has no SharedAccessKey or SharedAccessSignature",
                    ))
                }
            };
        let options = ClientOptions {
            use_tls: !cs.use_development_emulator,
            ..ClientOptions::default()
        };
        Ok(EventHubClientBuilder {
            port: Some(cs.amqp_port()),
            host: cs.host,
            hub,
            credential,
            options,
        })
    }

    /// From a namespace host (`ns.servicebus.windows.net`, optionally `:port`), an event hub
    /// name and a credential.
    pub fn new(host: &str, hub: &str, credential: impl TokenCredential + 'static) -> Self {
        let (host, port) = match host.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => (h, p.parse().ok()),
            _ => (host, None),
        };
        EventHubClientBuilder {
            host: host.to_owned(),
            port,
            hub: hub.to_owned(),
            credential: Arc::new(credential),
            options: ClientOptions::default(),
        }
    }

    /// Replaces the credential (e.g. a short-lived SAS credential).
    pub fn credential(mut self, credential: impl TokenCredential + 'static) -> Self {
        self.credential = Arc::new(credential);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryOptions) -> Self {
        self.options.retry = retry;
        self
    }

    /// Sets the per-attempt operation timeout.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.options.operation_timeout = timeout;
        self
    }

    /// Sets the limit for opening a connection (see [`ClientOptions::connect_timeout`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Connects to `host:port` instead of the namespace endpoint.
    pub fn custom_endpoint(mut self, host: impl Into<String>, port: u16) -> Self {
        self.options.custom_endpoint = Some((host.into(), port));
        self
    }

    /// Turns TLS on or off.
    pub fn use_tls(mut self, use_tls: bool) -> Self {
        self.options.use_tls = use_tls;
        self
    }

    /// Trusts the certificates of a PEM file in addition to the public roots.
    #[cfg(feature = "tls")]
    pub fn add_tls_roots_from_pem_file(
        mut self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, Error> {
        self.options
            .tls
            .add_roots_from_pem_file(path)
            .map_err(|e| Error::invalid_argument(format!("TLS roots: {e}")))?;
        Ok(self)
    }

    /// Sets the TLS settings.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::amqp::io::tls::TlsClientOptions) -> Self {
        self.options.tls = tls;
        self
    }

    /// Chooses the transport (AMQP, or AMQP over WebSockets).
    pub fn transport(mut self, transport: TransportType) -> Self {
        self.options.transport = transport;
        self
    }

    /// Tunnels connections through an HTTP proxy.
    pub fn proxy(mut self, proxy: crate::amqp::io::proxy::ProxyOptions) -> Self {
        self.options.proxy = Some(proxy);
        self
    }

    /// Tunnels connections through the HTTP proxy at `url`
    /// (`http://[user:password@]host[:port]`).
    pub fn proxy_url(self, url: &str) -> Result<Self, Error> {
        let proxy = crate::amqp::io::proxy::ProxyOptions::from_url(url)
            .map_err(|e| Error::invalid_argument(e.to_string()))?;
        Ok(self.proxy(proxy))
    }

    /// Takes the proxy from `HTTPS_PROXY` with `NO_PROXY` when none is set explicitly.
    pub fn proxy_from_env(mut self, on: bool) -> Self {
        self.options.proxy_from_env = on;
        self
    }

    /// Sets the default consumer prefetch.
    pub fn prefetch(mut self, prefetch: u32) -> Self {
        self.options.prefetch = prefetch;
        self
    }

    /// Turns this client's network tracing on or off (see [`ClientOptions::network_tracing`]).
    pub fn network_tracing(mut self, on: bool) -> Self {
        self.options.network_tracing = on;
        self
    }

    /// Builds the client. No connection is made until the first operation.
    pub fn build(self) -> Result<EventHubClient, Error> {
        #[cfg(not(feature = "tls"))]
        if self.options.use_tls {
            return Err(Error::invalid_argument(
                "TLS is required for this endpoint but the `tls` feature is off",
            ));
        }
        if self.hub.is_empty() {
            return Err(Error::invalid_argument("event hub name is empty"));
        }
        #[cfg(not(feature = "websockets"))]
        if self.options.transport == TransportType::AmqpWebSockets {
            return Err(Error::invalid_argument(
                "AMQP over WebSockets needs the `websockets` feature",
            ));
        }
        let port = match self.options.transport {
            // Like the official clients: WebSockets go to the HTTPS port unless a custom
            // endpoint says otherwise; the connection string's port is the AMQP one.
            TransportType::AmqpWebSockets if self.options.use_tls => 443,
            TransportType::AmqpWebSockets => 80,
            TransportType::Amqp => {
                self.port
                    .unwrap_or(if self.options.use_tls { 5671 } else { 5672 })
            }
        };
        Ok(EventHubClient {
            inner: Arc::new(ClientInner {
                host: self.host,
                port,
                hub: self.hub,
                credential: self.credential,
                options: self.options,
                conn: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }
}

/// One connection's shared state: the connection, a session for `$cbs` and `$management`,
/// the token manager and its refresh task.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) connection: Connection,
    session: Session,
    pub(crate) cbs: Arc<Cbs>,
    management: tokio::sync::OnceCell<RpcLink>,
    _refresher: AbortOnDrop,
}

impl ConnState {
    fn is_usable(&self) -> bool {
        !self.connection.is_closed() && !self.cbs.is_closed()
    }

    /// The `$management` link pair, attached on first use.
    pub(crate) async fn management(&self) -> Result<&RpcLink, Error> {
        self.management
            .get_or_try_init(|| RpcLink::open(&self.session, crate::wire::address::MANAGEMENT_NODE))
            .await
    }
}

pub(crate) struct ClientInner {
    pub(crate) host: String,
    port: u16,
    pub(crate) hub: String,
    credential: Arc<dyn TokenCredential>,
    pub(crate) options: ClientOptions,
    conn: tokio::sync::Mutex<Option<Arc<ConnState>>>,
    generation: AtomicU64,
    closed: AtomicBool,
}

/// A client for one event hub. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EventHubClient {
    pub(crate) inner: Arc<ClientInner>,
}

impl fmt::Debug for EventHubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHubClient")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("hub", &self.inner.hub)
            .finish()
    }
}

/// A link type that can be detached (closed).
pub(crate) trait CloseLink: Send + Sized + 'static {
    /// Detaches the link, ignoring errors (the link may be gone already).
    fn close_link(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

impl CloseLink for crate::amqp::Sender {
    fn close_link(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let _ = self.close().await;
        })
    }
}

impl CloseLink for crate::amqp::Receiver {
    fn close_link(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let _ = self.close().await;
        })
    }
}

/// A link with the session it lives on and the connection that carries it. Dropping it
/// detaches the link and ends the session in the background; [`LinkHandle::close`] does it
/// in the foreground.
#[derive(Debug)]
pub(crate) struct LinkHandle<L: CloseLink> {
    pub(crate) conn: Arc<ConnState>,
    pub(crate) session: Session,
    link: Option<L>,
    /// Keeps the link's token refreshed for as long as the link lives.
    _token: TokenHold,
}

impl<L: CloseLink> LinkHandle<L> {
    fn new(conn: Arc<ConnState>, session: Session, link: L, token: TokenHold) -> Self {
        LinkHandle {
            conn,
            session,
            link: Some(link),
            _token: token,
        }
    }

    /// The link (present until the handle is closed or dropped).
    pub(crate) fn link(&self) -> &L {
        self.link
            .as_ref()
            .expect("link present until close or drop")
    }

    /// The link, mutably.
    pub(crate) fn link_mut(&mut self) -> &mut L {
        self.link
            .as_mut()
            .expect("link present until close or drop")
    }

    /// Detaches the link and ends its session, waiting for both.
    pub(crate) async fn close(mut self) {
        if let Some(l) = self.link.take() {
            l.close_link().await;
            let _ = self.session.end().await;
        }
    }
}

impl<L: CloseLink> Drop for LinkHandle<L> {
    fn drop(&mut self) {
        if let Some(l) = self.link.take() {
            let session = self.session.clone();
            close_in_background(async move {
                l.close_link().await;
                let _ = session.end().await;
            });
        }
    }
}

impl EventHubClient {
    /// A client from a connection string (see [`EventHubClientBuilder::from_connection_string`]).
    pub fn from_connection_string(conn: &str, hub: Option<&str>) -> Result<Self, Error> {
        EventHubClientBuilder::from_connection_string(conn, hub)?.build()
    }

    /// A client from a namespace host, event hub name and credential.
    pub fn new(
        host: &str,
        hub: &str,
        credential: impl TokenCredential + 'static,
    ) -> Result<Self, Error> {
        EventHubClientBuilder::new(host, hub, credential).build()
    }

    /// A builder for a client with options, from a connection string.
    pub fn builder_from_connection_string(
        conn: &str,
        hub: Option<&str>,
    ) -> Result<EventHubClientBuilder, Error> {
        EventHubClientBuilder::from_connection_string(conn, hub)
    }

    /// The event hub name.
    pub fn event_hub_name(&self) -> &str {
        &self.inner.hub
    }

    /// The namespace host.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The client's options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The token audience for an entity path (`hub`, `hub/Partitions/0`, ...).
    pub(crate) fn audience(&self, path: &str) -> String {
        format!("amqps://{}/{}", self.inner.host, path)
    }

    fn trace(&self, what: &str) {
        if self.inner.options.network_tracing {
            tracing::info!(target: NETWORK_TRACE_TARGET, host = %self.inner.host, hub = %self.inner.hub, "{what}");
        }
    }

    /// The current connection, opened (or re-opened after a loss) as needed.
    pub(crate) async fn connection(&self) -> Result<Arc<ConnState>, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::EventHub, "the client is closed"));
        }
        let mut guard = self.inner.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.is_usable() {
                return Ok(c.clone());
            }
            let old = c.connection.clone();
            tokio::spawn(async move {
                let _ = old.close().await;
            });
            *guard = None;
        }
        let c = self.connect().await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn connect(&self) -> Result<Arc<ConnState>, Error> {
        let limit = self.inner.options.connect_timeout;
        match tokio::time::timeout(limit, self.connect_unbounded()).await {
            Ok(r) => r,
            Err(_) => {
                let (host, port) = self.endpoint();
                Err(Error::new(
                    ErrorKind::OperationTimeout,
                    format!("connecting to {host}:{port}: no usable connection within {limit:?}"),
                ))
            }
        }
    }

    /// Where connections go: the custom endpoint if any, else the namespace.
    fn endpoint(&self) -> (String, u16) {
        let i = &self.inner;
        i.options
            .custom_endpoint
            .clone()
            .unwrap_or_else(|| (i.host.clone(), i.port))
    }

    /// The endpoint as connections really reach it, for error text: `amqp://` or `amqps://`
    /// (`ws://`, `wss://` plus the WebSocket path), then the host and port dialled. Token
    /// audiences keep their `amqps://namespace/...` form whatever the transport, so naming
    /// them in an error would send a user reading it after the wrong scheme and port.
    pub(crate) fn endpoint_url(&self) -> String {
        let (host, port) = self.endpoint();
        let tls = self.inner.options.use_tls;
        let (scheme, path) = match self.inner.options.transport {
            TransportType::AmqpWebSockets => (if tls { "wss" } else { "ws" }, WEBSOCKET_PATH),
            TransportType::Amqp => (if tls { "amqps" } else { "amqp" }, ""),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        format!("{scheme}://{host}:{port}{path}")
    }

    /// Opens a connection; [`Self::connect`] bounds it in time.
    async fn connect_unbounded(&self) -> Result<Arc<ConnState>, Error> {
        let i = &self.inner;
        let (host, port) = self.endpoint();
        let proxy = match &i.options.proxy {
            Some(p) => Some(p.clone()),
            None if i.options.proxy_from_env => {
                crate::amqp::io::proxy::ProxyOptions::from_env(&host)
                    .map_err(|e| Error::invalid_argument(e.to_string()))?
            }
            None => None,
        };
        let what = match &proxy {
            Some(p) => format!(
                "connecting to {host}:{port} through proxy {}:{}",
                p.host, p.port
            ),
            None => format!("connecting to {host}:{port}"),
        };
        self.trace(&what);
        let mut o = ConnectOptions::new(host.clone(), port)
            .sasl_anonymous()
            .hostname(i.host.clone())
            .connect_timeout(i.options.connect_timeout.min(i.options.operation_timeout))
            .max_frame_size(256 * 1024)
            .frame_trace(if i.options.network_tracing {
                FrameTrace::Info
            } else {
                FrameTrace::Debug
            })
            .channel_max(1023);
        let prop = |k: &str, v: &str| (Symbol::from(k), Value::from(v));
        let props: Fields = vec![
            prop("product", "eventhubs-rs"),
            prop("version", env!("CARGO_PKG_VERSION")),
            prop("platform", std::env::consts::OS),
            prop("framework", "tokio"),
            prop(
                "user-agent",
                concat!("eventhubs-rs/", env!("CARGO_PKG_VERSION")),
            ),
        ];
        o = o.properties(props);
        o.proxy = proxy;
        #[cfg(feature = "websockets")]
        if i.options.transport == TransportType::AmqpWebSockets {
            o = o.websocket(crate::amqp::io::ws::PATH);
        }
        #[cfg(feature = "tls")]
        if i.options.use_tls {
            let mut tls = i.options.tls.clone();
            if tls.server_name.is_none() {
                tls.server_name = Some(i.host.clone());
            }
            o.tls = Some(tls);
        }
        let connection = Connection::connect(o)
            .await
            .map_err(|e| Error::from_amqp(ErrorKind::Connect, &what, e))?;
        let session = connection
            .open_session()
            .await
            .map_err(|e| Error::from_amqp(ErrorKind::Connect, &what, e))?;
        let cbs = Cbs::open(&session, i.credential.clone(), self.endpoint_url()).await?;
        let refresher = AbortOnDrop(tokio::spawn(cbs.clone().refresh_loop()));
        let generation = i.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.trace(&format!("connected (generation {generation})"));
        Ok(Arc::new(ConnState {
            connection,
            session,
            cbs,
            management: tokio::sync::OnceCell::new(),
            _refresher: refresher,
        }))
    }

    /// Forgets `conn` if it is still the current connection and is broken, so the next call
    /// opens a fresh one.
    pub(crate) async fn connection_failed(&self, conn: &Arc<ConnState>) {
        let mut guard = self.inner.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if Arc::ptr_eq(c, conn) && !c.is_usable() {
                *guard = None;
            }
        }
    }

    /// Authorizes `path` on the current connection and attaches a sender to it on a new
    /// session.
    pub(crate) async fn open_sender(
        &self,
        path: &str,
        options: SenderOptions,
    ) -> Result<LinkHandle<crate::amqp::Sender>, Error> {
        self.open_link(path, "sender", |session| async move {
            session.attach_sender(options).await
        })
        .await
    }

    /// Authorizes `path` on the current connection and attaches a receiver to it on a new
    /// session.
    pub(crate) async fn open_receiver(
        &self,
        path: &str,
        options: ReceiverOptions,
    ) -> Result<LinkHandle<crate::amqp::Receiver>, Error> {
        self.open_link(path, "receiver", |session| async move {
            session.attach_receiver(options).await
        })
        .await
    }

    /// Puts (and holds) the token for `path`, opens a session and attaches a link on it with
    /// `attach`. A failure makes the connection be checked before the next use.
    async fn open_link<L, F, Fut>(
        &self,
        path: &str,
        kind: &str,
        attach: F,
    ) -> Result<LinkHandle<L>, Error>
    where
        L: CloseLink,
        F: FnOnce(Session) -> Fut,
        Fut: std::future::Future<Output = Result<L, crate::amqp::Error>>,
    {
        let conn = self.connection().await?;
        let what = format!("attaching a {kind} to {path}");
        self.trace(&what);
        let r = async {
            let hold = conn.cbs.authorize_and_hold(&self.audience(path)).await?;
            let session = conn
                .connection
                .open_session()
                .await
                .map_err(|e| Error::from_amqp(ErrorKind::EventHub, &what, e))?;
            let link = attach(session.clone())
                .await
                .map_err(|e| Error::from_amqp(ErrorKind::EventHub, &what, e))?;
            Ok((session, link, hold))
        }
        .await;
        match r {
            Ok((session, link, hold)) => Ok(LinkHandle::new(conn, session, link, hold)),
            Err(e) => {
                self.connection_failed(&conn).await;
                Err(e)
            }
        }
    }

    /// Closes the connection. Producers and consumers of this client stop working.
    pub async fn close(&self) -> Result<(), Error> {
        self.inner.closed.store(true, Ordering::Release);
        let c = self.inner.conn.lock().await.take();
        if let Some(c) = c {
            match c.connection.close().await {
                Ok(()) | Err(crate::amqp::Error::ConnectionClosed(_)) => {}
                Err(e) => return Err(Error::from_amqp(ErrorKind::EventHub, "closing", e)),
            }
        }
        Ok(())
    }

    /// Runs `op` under the client's retry policy and operation timeout.
    pub(crate) async fn with_retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let o = &self.inner.options;
        o.retry.run(what, o.operation_timeout, op).await
    }
}

/// Closes a link and its session in the background (best effort; nothing waits for it).
pub(crate) fn close_in_background<F>(f: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_reads_connection_strings() {
        let c = EventHubClient::from_connection_string(
            "Endpoint=sb://localhost:5673;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;EntityPath=eh1",
            None,
        )
        .unwrap();
        assert_eq!(c.event_hub_name(), "eh1");
        assert_eq!(c.inner.port, 5673);
        assert!(!c.options().use_tls);
        let c = EventHubClient::from_connection_string(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
            Some("hub"),
        )
        .unwrap();
        assert_eq!(c.inner.port, 5671);
        assert!(c.options().use_tls);
        let e = EventHubClient::from_connection_string(
            "Endpoint=sb://h/;SharedAccessKeyName=k",
            Some("x"),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("SharedAccessKey"), "{e}");
        let e = EventHubClient::from_connection_string(
            "Endpoint=sb://h/;SharedAccessKeyName=k;SharedAccessKey=v",
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let b = EventHubClientBuilder::new("ns.example:5000", "h", SasCredential::new("a", "b"));
        assert_eq!((b.host.as_str(), b.port), ("ns.example", Some(5000)));
    }

    #[test]
    fn websockets_default_to_the_https_port_and_proxies_hide_passwords() {
        let c = EventHubClientBuilder::new("ns.example:5000", "h", SasCredential::new("a", "b"))
            .transport(TransportType::AmqpWebSockets)
            .proxy_url("http://me:hunter2@proxy.example:3128")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.inner.port, 443);
        let shown = format!("{c:?} {:?}", c.options());
        assert!(
            shown.contains("proxy.example") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn errors_name_the_endpoint_as_dialled() {
        let cs = "Endpoint=sb://localhost:5673;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true";
        let c = EventHubClient::from_connection_string(cs, Some("eh1")).unwrap();
        assert_eq!(c.endpoint_url(), "amqp://localhost:5673");
        // The audience keeps the form the service wants, whatever the transport.
        assert_eq!(c.audience("eh1"), "amqps://localhost/eh1");
        let c = EventHubClientBuilder::from_connection_string(cs, Some("eh1"))
            .unwrap()
            .custom_endpoint("::1", 6000)
            .build()
            .unwrap();
        assert_eq!(c.endpoint_url(), "amqp://[::1]:6000");
        let b = || EventHubClientBuilder::new("ns.example", "h", SasCredential::new("a", "b"));
        #[cfg(feature = "tls")]
        assert_eq!(
            b().build().unwrap().endpoint_url(),
            "amqps://ns.example:5671"
        );
        #[cfg(feature = "websockets")]
        assert_eq!(
            b().use_tls(false)
                .transport(TransportType::AmqpWebSockets)
                .build()
                .unwrap()
                .endpoint_url(),
            "ws://ns.example:80/$servicebus/websocket/"
        );
        let _ = b;
    }
}
