//! Dialing: how to reach a peer, and opening a connection to it.

use super::connection::Connection;
use super::engine::{Connection as Engine, ConnectionConfig, FrameTrace, SaslClientMechanism};
use super::error::Error;
use super::io::driver::{self, DriverSetup};
use super::io::BoxedTransport;
use super::types::definitions::Fields;
use crate::amqp::codec::Symbol;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// How to reach a peer, and the engine settings of the connection opened to it.
///
/// The settings of the AMQP connection itself are the engine's [`ConnectionConfig`], held as
/// is; the builder methods set its fields, so there is one list of connection settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Host name or address.
    pub host: String,
    /// TCP port (5672 plain, 5671 TLS).
    pub port: u16,
    /// TLS settings; `None` for plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<super::io::tls::TlsClientOptions>,
    /// Tunnel through this HTTP proxy (`CONNECT host:port`) before TLS; `None` dials directly.
    pub proxy: Option<super::io::proxy::ProxyOptions>,
    /// Speak AMQP inside a WebSocket at this path (e.g. `/$servicebus/websocket/`), over TLS
    /// when `tls` is set; `None` for AMQP straight on the stream.
    #[cfg(feature = "websockets")]
    pub websocket_path: Option<String>,
    /// Limit for TCP connect, TLS handshake and the open exchange together.
    pub connect_timeout: Duration,
    /// The connection's engine settings. A `hostname` left `None` is sent as `host`.
    pub config: ConnectionConfig,
}

static CONTAINER_SEQ: AtomicU64 = AtomicU64::new(0);

/// A container id unique within this process and unlikely to collide across processes.
pub(crate) fn fresh_container_id(prefix: &str) -> String {
    let n = CONTAINER_SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}-{:x}-{n}",
        std::process::id(),
        t & 0xffff_ffff
    )
}

impl ConnectOptions {
    /// Plain TCP to `host:port`, no SASL, with our defaults and a fresh container id.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            #[cfg(feature = "tls")]
            tls: None,
            proxy: None,
            #[cfg(feature = "websockets")]
            websocket_path: None,
            connect_timeout: Duration::from_secs(30),
            config: ConnectionConfig {
                container_id: fresh_container_id("eventhubs"),
                ..ConnectionConfig::default()
            },
        }
    }

    /// Uses SASL ANONYMOUS.
    pub fn sasl_anonymous(self) -> Self {
        self.sasl(SaslClientMechanism::Anonymous)
    }

    /// Uses SASL PLAIN.
    pub fn sasl_plain(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl(SaslClientMechanism::Plain {
            username: username.into(),
            password: password.into(),
        })
    }

    /// Uses the given SASL mechanism.
    pub fn sasl(mut self, mechanism: SaslClientMechanism) -> Self {
        self.config.sasl = Some(mechanism);
        self
    }

    /// Uses TLS with the given settings.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::io::tls::TlsClientOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Tunnels through an HTTP proxy.
    pub fn proxy(mut self, proxy: super::io::proxy::ProxyOptions) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Carries AMQP inside a WebSocket at `path`.
    #[cfg(feature = "websockets")]
    pub fn websocket(mut self, path: impl Into<String>) -> Self {
        self.websocket_path = Some(path.into());
        self
    }

    /// Sets the limit for TCP connect, TLS handshake and the open exchange together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets our container id.
    pub fn container_id(mut self, id: impl Into<String>) -> Self {
        self.config.container_id = id.into();
        self
    }

    /// Sets the virtual host sent in `open` (Event Hubs wants the namespace host even when
    /// the socket goes elsewhere).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.config.hostname = Some(hostname.into());
        self
    }

    /// Sets the largest frame we accept.
    pub fn max_frame_size(mut self, size: u32) -> Self {
        self.config.max_frame_size = size;
        self
    }

    /// Sets the highest channel we accept.
    pub fn channel_max(mut self, channel_max: u16) -> Self {
        self.config.channel_max = channel_max;
        self
    }

    /// Sets the silence we tolerate from the peer; `None` disables the check.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sets the connection properties sent in `open`.
    pub fn properties(mut self, properties: Fields) -> Self {
        self.config.properties = Some(properties);
        self
    }

    /// Sets the capabilities we want.
    pub fn desired_capabilities(mut self, capabilities: Vec<Symbol>) -> Self {
        self.config.desired_capabilities = Some(capabilities);
        self
    }

    /// Sets how this connection's frames are traced.
    pub fn frame_trace(mut self, trace: FrameTrace) -> Self {
        self.config.frame_trace = trace;
        self
    }

    /// The engine settings to open with: the held config, its virtual host defaulting to
    /// the host we dial.
    fn into_engine_config(self) -> ConnectionConfig {
        let mut config = self.config;
        if config.hostname.is_none() {
            config.hostname = Some(self.host);
        }
        config
    }
}

impl Connection {
    /// Connects, runs TLS and SASL as configured, and exchanges `open`.
    pub async fn connect(options: ConnectOptions) -> Result<Connection, Error> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        // The driver inherits this span, so its logs (a limit the peer hit, a lost socket)
        // name the peer. Error level, so that it is there whenever any log line is.
        let span = tracing::error_span!(
            "connection",
            peer = %format_args!("{}:{}", options.host, options.port)
        );
        let work = async move {
            let io = Self::open_stream(&options).await?;
            Self::connect_over(io, options.into_engine_config()).await
        };
        match tokio::time::timeout_at(deadline, tracing::Instrument::instrument(work, span)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout),
        }
    }

    /// The byte stream AMQP runs on: TCP (through the proxy's tunnel if any), then TLS, then
    /// the WebSocket, as configured.
    async fn open_stream(options: &ConnectOptions) -> Result<BoxedTransport, Error> {
        let (host, port) = (options.host.as_str(), options.port);
        let tcp = match &options.proxy {
            Some(p) => {
                let mut tcp = TcpStream::connect((p.host.as_str(), p.port)).await?;
                tcp.set_nodelay(true)?;
                super::io::proxy::tunnel(&mut tcp, p, host, port).await?;
                tcp
            }
            None => {
                let tcp = TcpStream::connect((host, port)).await?;
                tcp.set_nodelay(true)?;
                tcp
            }
        };
        #[cfg(feature = "tls")]
        let (io, secure): (BoxedTransport, bool) = match &options.tls {
            Some(tls) => (super::io::tls::connect(tcp, host, tls).await?, true),
            None => (Box::new(tcp), false),
        };
        #[cfg(not(feature = "tls"))]
        let (io, secure): (BoxedTransport, bool) = (Box::new(tcp), false);
        #[cfg(feature = "websockets")]
        if let Some(path) = &options.websocket_path {
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            return super::io::ws::connect(io, &authority, path, secure).await;
        }
        let _ = secure;
        Ok(io)
    }

    /// Opens a connection over an already-established transport (e.g. an in-memory pipe).
    pub async fn connect_over(
        io: BoxedTransport,
        config: ConnectionConfig,
    ) -> Result<Connection, Error> {
        let engine = Engine::client(config, Instant::now());
        let (opened_tx, opened_rx) = oneshot::channel();
        let handle = driver::spawn(
            engine,
            io,
            DriverSetup {
                opened: opened_tx,
                incoming: None,
            },
        );
        let remote = opened_rx
            .await
            .unwrap_or(Err(Error::ConnectionClosed(None)))?;
        Ok(Connection::from_parts(handle, remote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_host_defaults_to_the_dialed_host() {
        let c = ConnectOptions::new("broker.example", 5672).into_engine_config();
        assert_eq!(c.hostname.as_deref(), Some("broker.example"));
        let c = ConnectOptions::new("127.0.0.1", 5672)
            .hostname("ns.example")
            .into_engine_config();
        assert_eq!(c.hostname.as_deref(), Some("ns.example"));
    }

    #[test]
    fn builder_methods_set_the_engine_config() {
        let o = ConnectOptions::new("h", 1)
            .sasl_anonymous()
            .max_frame_size(1024)
            .channel_max(7)
            .idle_timeout(None)
            .frame_trace(FrameTrace::Info)
            .container_id("me");
        let c = &o.config;
        assert_eq!(c.sasl, Some(SaslClientMechanism::Anonymous));
        assert_eq!((c.max_frame_size, c.channel_max), (1024, 7));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.frame_trace, FrameTrace::Info);
        assert_eq!(c.container_id, "me");
        assert!(c.sasl_server.is_none() && c.allow_no_sasl);
    }
}
