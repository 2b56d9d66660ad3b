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

/// How to reach and open a connection.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Host name or address.
    pub host: String,
    /// TCP port (5672 plain, 5671 TLS).
    pub port: u16,
    /// TLS settings; `None` for plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<super::io::tls::TlsClientOptions>,
    /// SASL mechanism; `None` skips the SASL layer.
    pub sasl: Option<SaslClientMechanism>,
    /// Our container id.
    pub container_id: String,
    /// Virtual host for `open` (defaults to `host`).
    pub hostname: Option<String>,
    /// Largest frame we accept.
    pub max_frame_size: u32,
    /// Highest channel we accept.
    pub channel_max: u16,
    /// Silence we tolerate from the peer before giving up.
    pub idle_timeout: Option<Duration>,
    /// Connection properties for `open`.
    pub properties: Option<Fields>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Limit for TCP connect, TLS handshake and the open exchange together.
    pub connect_timeout: Duration,
    /// How this connection's frames are traced.
    pub frame_trace: FrameTrace,
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
    /// Plain TCP to `host:port`, no SASL, with our defaults.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            #[cfg(feature = "tls")]
            tls: None,
            sasl: None,
            container_id: fresh_container_id("eventhubs"),
            hostname: None,
            max_frame_size: 65536,
            channel_max: 255,
            idle_timeout: Some(Duration::from_secs(60)),
            properties: None,
            desired_capabilities: None,
            connect_timeout: Duration::from_secs(30),
            frame_trace: FrameTrace::Debug,
        }
    }

    /// Uses SASL ANONYMOUS.
    pub fn sasl_anonymous(mut self) -> Self {
        self.sasl = Some(SaslClientMechanism::Anonymous);
        self
    }

    /// Uses SASL PLAIN.
    pub fn sasl_plain(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl = Some(SaslClientMechanism::Plain {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Uses TLS with the given settings.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::io::tls::TlsClientOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    fn engine_config(&self) -> ConnectionConfig {
        ConnectionConfig {
            container_id: self.container_id.clone(),
            hostname: Some(self.hostname.clone().unwrap_or_else(|| self.host.clone())),
            max_frame_size: self.max_frame_size,
            channel_max: self.channel_max,
            idle_timeout: self.idle_timeout,
            properties: self.properties.clone(),
            offered_capabilities: None,
            desired_capabilities: self.desired_capabilities.clone(),
            sasl: self.sasl.clone(),
            sasl_server: None,
            allow_no_sasl: true,
            frame_trace: self.frame_trace,
        }
    }
}

impl Connection {
    /// Connects, runs TLS and SASL as configured, and exchanges `open`.
    pub async fn connect(options: ConnectOptions) -> Result<Connection, Error> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let work = async {
            let tcp = TcpStream::connect((options.host.as_str(), options.port)).await?;
            tcp.set_nodelay(true)?;
            #[cfg(feature = "tls")]
            let io: BoxedTransport = match &options.tls {
                Some(tls) => super::io::tls::connect(tcp, &options.host, tls).await?,
                None => Box::new(tcp),
            };
            #[cfg(not(feature = "tls"))]
            let io: BoxedTransport = Box::new(tcp);
            Self::connect_over(io, options.engine_config()).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout),
        }
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
