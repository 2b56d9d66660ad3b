//! A local Event Hubs: the server role of our AMQP engine serving CBS, `$management`,
//! partitions, consumer groups and owner levels, in memory or on disk. Starts in
//! milliseconds; needs no Azure account, no Docker and no storage emulator.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use eventhubs::emulator::{Emulator, EmulatorOptions};
//! let emulator = Emulator::start(EmulatorOptions::ephemeral()).await?;
//! println!("{}", emulator.connection_string());
//! # Ok(()) }
//! ```

pub mod config;
pub mod hub;
mod nodes;
mod replies;
mod routing;
pub mod selector;
pub mod store;

use crate::amqp::codec::Symbol;
use crate::amqp::engine::{ConnectionConfig, ConnectionLimits, SaslAuthenticator, SaslDecision};
use crate::amqp::types::error::AmqpError;
use crate::amqp::{Listener, ListenerOptions};
pub use config::{ConfigError, EntityConfig, HubConfig, SasKey};
use hub::Hub;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::Partition;
pub use store::{Fsync, PartitionInfo, Retention};
use tokio::task::JoinHandle;

/// How to run the emulator.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EmulatorOptions {
    /// Address to listen on (default `127.0.0.1:5672`).
    pub bind: SocketAddr,
    /// Hubs, consumer groups and keys.
    pub entities: EntityConfig,
    /// Keep events in files under this directory (they survive restarts).
    pub data_dir: Option<PathBuf>,
    /// How much each partition retains.
    pub retention: Retention,
    /// When partition files under `data_dir` are synced to the device (default
    /// [`Fsync::Never`]: safe against an emulator crash, not against an OS crash).
    pub fsync: Fsync,
    /// Require a valid CBS token before links attach (default true, like the service).
    pub require_auth: bool,
    /// TLS (normally on 5671); `None` for plain AMQP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::amqp::io::tls::TlsServerOptions>,
    /// Connections served at once (default 1024); a TCP connection beyond it is dropped at
    /// once, so that idle sockets cannot pile up.
    pub max_connections: usize,
    /// How long a new TCP connection has to finish its TLS, SASL and open handshake before it
    /// is dropped (default 30 s).
    pub handshake_timeout: std::time::Duration,
    /// What one connection may make the emulator hold (queued output, sessions, links,
    /// pending attaches, unsettled deliveries); a peer that goes past one is closed with
    /// `amqp:resource-limit-exceeded`.
    pub limits: ConnectionLimits,
    /// Also serve AMQP over WebSockets on this address (with TLS when `tls` is set), as the
    /// service does on 443; `None` (the default) serves only `bind`.
    #[cfg(feature = "websockets")]
    pub ws_bind: Option<SocketAddr>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl EmulatorOptions {
    /// Sets the address to listen on.
    pub fn with_bind(mut self, value: SocketAddr) -> Self {
        self.bind = value;
        self
    }

    /// Sets the hubs, partitions and consumer groups.
    pub fn with_entities(mut self, value: EntityConfig) -> Self {
        self.entities = value;
        self
    }

    /// Sets a directory that keeps events across restarts (by default they live in memory).
    pub fn with_data_dir(mut self, value: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(value.into());
        self
    }

    /// Sets how long events are kept.
    pub fn with_retention(mut self, value: Retention) -> Self {
        self.retention = value;
        self
    }

    /// Sets when partition files under the data directory are synced to the device.
    pub fn with_fsync(mut self, value: Fsync) -> Self {
        self.fsync = value;
        self
    }

    /// Also serves AMQP over WebSockets on `value` (port 0: an ephemeral port, see
    /// [`Emulator::ws_local_addr`]).
    #[cfg(feature = "websockets")]
    pub fn with_ws_bind(mut self, value: SocketAddr) -> Self {
        self.ws_bind = Some(value);
        self
    }

    /// Sets whether clients must authenticate (SASL and CBS tokens).
    pub fn with_require_auth(mut self, value: bool) -> Self {
        self.require_auth = value;
        self
    }

    /// Sets the most connections served at once (more are dropped as they arrive).
    pub fn with_max_connections(mut self, value: usize) -> Self {
        self.max_connections = value;
        self
    }

    /// Sets how long a new connection may take to finish its AMQP (and SASL) handshake.
    pub fn with_handshake_timeout(mut self, value: std::time::Duration) -> Self {
        self.handshake_timeout = value;
        self
    }

    /// Sets the per-connection limits.
    pub fn with_limits(mut self, value: ConnectionLimits) -> Self {
        self.limits = value;
        self
    }

    /// Serves `amqps://` with this certificate.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, value: crate::amqp::io::tls::TlsServerOptions) -> Self {
        self.tls = Some(value);
        self
    }
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 5672)),
            entities: EntityConfig::default(),
            data_dir: None,
            retention: Retention::default(),
            fsync: Fsync::default(),
            require_auth: true,
            #[cfg(feature = "tls")]
            tls: None,
            max_connections: 1024,
            handshake_timeout: std::time::Duration::from_secs(30),
            limits: ConnectionLimits::default(),
            #[cfg(feature = "websockets")]
            ws_bind: None,
        }
    }
}

impl EmulatorOptions {
    /// Defaults, but on an ephemeral port (for tests and embedded use).
    pub fn ephemeral() -> Self {
        EmulatorOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::default()
        }
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// Binding the port failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: crate::amqp::Error,
    },
    /// The entities are not servable (the same errors as a config file's).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A partition file could not be opened.
    #[error("cannot open partition log {path}: {source}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// State shared by all connections.
pub(crate) struct Shared {
    hubs: HashMap<String, Arc<Hub>>,
    keys: Vec<SasKey>,
    require_auth: bool,
    /// Injected faults: the next deliveries to any hub are rejected with these, in order.
    send_faults: std::sync::Mutex<std::collections::VecDeque<AmqpError>>,
}

impl Shared {
    fn hub(&self, name: &str) -> Option<Arc<Hub>> {
        self.hubs.get(&name.to_ascii_lowercase()).cloned()
    }

    /// The injected fault for the next delivery, if any.
    pub(crate) fn next_send_fault(&self) -> Option<AmqpError> {
        self.send_faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

struct Authenticator {
    keys: Vec<SasKey>,
}

impl SaslAuthenticator for Authenticator {
    fn mechanisms(&self) -> Vec<Symbol> {
        ["MSSBCBS", "ANONYMOUS", "PLAIN"]
            .into_iter()
            .map(Symbol::from_static)
            .collect()
    }

    fn authenticate(&self, mechanism: &str, response: &[u8], _host: Option<&str>) -> SaslDecision {
        match mechanism {
            // Authorization happens through CBS, as with the service.
            "ANONYMOUS" | "MSSBCBS" => SaslDecision::Accept,
            "PLAIN" => {
                let mut parts = response.split(|&b| b == 0).skip(1);
                let (user, pass) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                if self
                    .keys
                    .iter()
                    .any(|k| k.name.as_bytes() == user && k.key.as_bytes() == pass)
                {
                    SaslDecision::Accept
                } else {
                    SaslDecision::Reject
                }
            }
            _ => SaslDecision::Reject,
        }
    }
}

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) stops accepting connections.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    #[cfg(feature = "websockets")]
    ws_addr: Option<SocketAddr>,
    #[cfg(feature = "websockets")]
    ws_accept: Option<JoinHandle<()>>,
    /// Syncs partition files that `Fsync::Interval` left dirty when sends pause.
    flusher: Option<JoinHandle<()>>,
    /// Whether both ports speak TLS: the connection string must not then tell clients to
    /// dial plain AMQP.
    tls: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("hubs", &self.hubs.len())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Opens the partitions (replaying files under `data_dir`) and starts listening.
    /// Refuses entities that the JSON loader would refuse, with its errors.
    pub async fn start(options: EmulatorOptions) -> Result<Emulator, EmulatorError> {
        options.entities.validate()?;
        let mut hubs = HashMap::new();
        for h in &options.entities.hubs {
            let mut partitions = Vec::new();
            for p in 0..h.partition_count {
                let partition = match &options.data_dir {
                    Some(dir) => {
                        let path = store::partition_path(dir, &h.name, p);
                        Partition::open(&path, options.retention, options.fsync)
                            .map_err(|source| EmulatorError::Storage { path, source })?
                    }
                    None => Partition::in_memory(options.retention),
                };
                partitions.push(Arc::new(partition));
            }
            hubs.insert(
                h.name.to_ascii_lowercase(),
                Arc::new(Hub::new(h.clone(), partitions)),
            );
        }
        let shared = Arc::new(Shared {
            hubs,
            keys: options.entities.keys.clone(),
            require_auth: options.require_auth,
            send_faults: Default::default(),
        });
        let listener_options = ListenerOptions {
            config: ConnectionConfig {
                container_id: format!("eventhubs-emulator-{}", options.entities.namespace),
                max_frame_size: 65536,
                channel_max: 4999,
                idle_timeout: Some(std::time::Duration::from_secs(240)),
                sasl_server: Some(Arc::new(Authenticator {
                    keys: options.entities.keys.clone(),
                })),
                allow_no_sasl: true,
                limits: options.limits.clone(),
                ..ConnectionConfig::default()
            },
            #[cfg(feature = "tls")]
            tls: options.tls.clone(),
            handshake_timeout: options.handshake_timeout,
            #[cfg(feature = "websockets")]
            websocket: false,
        };
        #[cfg(feature = "websockets")]
        let listener_options_copy = listener_options.clone();
        let listener = Listener::bind(options.bind, listener_options)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: options.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: options.bind,
                source,
            })?;
        let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
        let accept = spawn_accept_loop(
            listener,
            shared.clone(),
            slots.clone(),
            options.max_connections,
        );
        #[cfg(feature = "websockets")]
        let (ws_addr, ws_accept) = match options.ws_bind {
            Some(ws_bind) => {
                let bind_err = |source| EmulatorError::Bind {
                    addr: ws_bind,
                    source,
                };
                let ws_options = ListenerOptions {
                    websocket: true,
                    ..listener_options_copy
                };
                let ws = Listener::bind(ws_bind, ws_options)
                    .await
                    .map_err(bind_err)?;
                let ws_addr = ws.local_addr().map_err(bind_err)?;
                tracing::info!(addr = %ws_addr, "Event Hubs emulator listening for WebSockets");
                (
                    Some(ws_addr),
                    Some(spawn_accept_loop(
                        ws,
                        shared.clone(),
                        slots,
                        options.max_connections,
                    )),
                )
            }
            None => (None, None),
        };
        #[cfg(feature = "tls")]
        let tls = options.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        let flusher = match (options.fsync, &options.data_dir) {
            (Fsync::Interval(period), Some(_)) => Some(spawn_flusher(&shared, period)),
            _ => None,
        };
        tracing::info!(%addr, "Event Hubs emulator listening");
        Ok(Emulator {
            addr,
            shared,
            accept,
            #[cfg(feature = "websockets")]
            ws_addr,
            #[cfg(feature = "websockets")]
            ws_accept,
            flusher,
            tls,
        })
    }

    /// Fault injection for tests of senders: the next `errors.len()` deliveries (to any hub
    /// or partition) are rejected with these errors, in order, and not stored — as the
    /// service rejects a send it cannot take (`com.microsoft:server-busy`, a quota, ...).
    pub fn reject_next_sends(&self, errors: impl IntoIterator<Item = AmqpError>) {
        self.shared
            .send_faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(errors);
    }

    /// How many injected rejections are still waiting for a delivery.
    pub fn pending_send_faults(&self) -> usize {
        self.shared
            .send_faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address it serves AMQP over WebSockets on, when asked to.
    #[cfg(feature = "websockets")]
    pub fn ws_local_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// A connection string for clients, with the first key: `UseDevelopmentEmulator=true`
    /// (which tells every SDK to speak plain AMQP) unless the emulator serves TLS, when it is
    /// left out so that clients dial TLS on this port (they must trust its certificate).
    pub fn connection_string(&self) -> String {
        let (name, key) = self
            .shared
            .keys
            .first()
            .map(|k| (k.name.as_str(), k.key.as_str()))
            .unwrap_or_default();
        let dev = if self.tls {
            ""
        } else {
            "UseDevelopmentEmulator=true;"
        };
        format!(
            "Endpoint=sb://localhost:{};SharedAccessKeyName={name};SharedAccessKey={key};{dev}",
            self.addr.port()
        )
    }

    /// The same with `EntityPath` set to `hub`.
    pub fn connection_string_for(&self, hub: &str) -> String {
        format!("{}EntityPath={hub};", self.connection_string())
    }

    /// Metadata of one partition, for tests and tools.
    pub fn partition_info(&self, hub: &str, partition: u32) -> Option<PartitionInfo> {
        self.shared
            .hub(hub)?
            .partitions
            .get(partition as usize)
            .map(|p| p.info())
    }

    /// Bytes of event data held in memory across all partitions.
    pub fn retained_bytes(&self) -> usize {
        self.shared
            .hubs
            .values()
            .flat_map(|h| h.partitions.iter())
            .map(|p| p.retained_bytes())
            .sum()
    }

    /// Stops accepting connections (existing ones end when their clients leave).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.accept.abort();
        #[cfg(feature = "websockets")]
        if let Some(ws) = &self.ws_accept {
            ws.abort();
        }
        if let Some(f) = &self.flusher {
            f.abort();
        }
    }
}

/// Every `period`, syncs the partitions whose last writes are older than that, so that
/// `Fsync::Interval` bounds the unsynced window even after the last send.
fn spawn_flusher(shared: &Shared, period: std::time::Duration) -> JoinHandle<()> {
    let partitions: Vec<Arc<Partition>> = shared
        .hubs
        .values()
        .flat_map(|h| h.partitions.iter().cloned())
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period.max(std::time::Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = std::time::Instant::now();
            for p in &partitions {
                if let Err(e) = p.sync_if_due(now) {
                    tracing::warn!(error = %e, "syncing a partition file failed");
                }
            }
        }
    })
}

/// Accepts connections on `listener` until aborted, each served in its own task under one
/// shared `max_connections` budget.
fn spawn_accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    slots: Arc<tokio::sync::Semaphore>,
    max_connections: usize,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let incoming = match listener.accept().await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(error = %e, "emulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let peer = incoming.peer_addr();
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, limit = "max_connections", value = max_connections, "connection refused: limit reached");
                drop(incoming);
                continue;
            };
            let shared = shared.clone();
            // The handshake names the peer in the driver's span; this one is for what the
            // emulator itself logs about the connection (error level, so that it is there
            // whenever any log line is).
            let span = tracing::error_span!("connection", %peer);
            tokio::spawn(async move {
                let _slot = slot;
                match incoming.handshake().await {
                    Ok(connection) => {
                        tracing::Instrument::instrument(routing::serve(shared, connection), span)
                            .await
                    }
                    Err(crate::amqp::error::Error::Timeout) => tracing::warn!(
                        %peer,
                        limit = "handshake_timeout",
                        "connection dropped: handshake not finished in time"
                    ),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "emulator handshake failed")
                    }
                }
            });
        }
    })
}
