//! `ehub emulator`: a local Event Hubs until Ctrl-C.

use crate::Failure;
use clap::Args;
use eventhubs::amqp::engine::ConnectionLimits;
use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, Fsync};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// `--fsync` values, as `Fsync` with the interval fixed.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FsyncMode {
    Never,
    Interval,
    Always,
}

impl From<FsyncMode> for Fsync {
    fn from(mode: FsyncMode) -> Fsync {
        match mode {
            FsyncMode::Never => Fsync::Never,
            FsyncMode::Interval => Fsync::Interval(Fsync::DEFAULT_INTERVAL),
            FsyncMode::Always => Fsync::Always,
        }
    }
}

/// `ehub emulator` options.
#[derive(Args)]
pub struct EmulatorArgs {
    /// Entities in the shape of Microsoft's emulator Config.json (default: hub eh1 with 4
    /// partitions, consumer groups $default and cg1).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port to listen on.
    #[arg(long, default_value_t = 5672)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Keep events in files under this directory; they survive restarts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// When --data-dir files are synced to disk. Every mode survives an emulator crash;
    /// on an OS crash or power loss, `never` can lose recent acknowledged events, `interval`
    /// (every 100 ms) at most ~100 ms of them, `always` none (slowest).
    #[arg(long, value_enum, default_value_t = FsyncMode::Never)]
    fsync: FsyncMode,
    /// Accept links without a CBS token.
    #[arg(long)]
    no_auth: bool,
    /// Connections served at once; more are dropped on arrival.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a new connection has to finish its SASL and open handshake.
    #[arg(long, default_value_t = 30)]
    handshake_timeout: u64,
    /// Bytes of output one connection may have queued before the emulator stops reading from
    /// it (a peer that leaves them unread for 30 s is closed with resource-limit-exceeded).
    #[arg(long, default_value_t = ConnectionLimits::default().max_queued_output)]
    max_queued_output: usize,
    /// Sessions one connection may have begun at once.
    #[arg(long, default_value_t = ConnectionLimits::default().max_sessions)]
    max_sessions: usize,
    /// Links one connection may hold at once, on all its sessions.
    #[arg(long, default_value_t = ConnectionLimits::default().max_links)]
    max_links: usize,
    /// Attaches one connection may have waiting for an answer.
    #[arg(long, default_value_t = ConnectionLimits::default().max_pending_attaches)]
    max_pending_attaches: usize,
    /// Unsettled deliveries one session may hold.
    #[arg(long, default_value_t = ConnectionLimits::default().max_unsettled)]
    max_unsettled: usize,
    /// Also serve AMQP over WebSockets on this port (any path, subprotocol AMQPWSB10).
    #[arg(long)]
    ws_port: Option<u16>,
    /// Serve TLS on the AMQP port and the --ws-port with this certificate chain (PEM, leaf
    /// first); needs --tls-key. The printed connection string then has no
    /// UseDevelopmentEmulator=true, so clients dial TLS (they must trust the certificate).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Serves until Ctrl-C, after printing where and the connection string to use.
pub async fn run(a: EmulatorArgs) -> Result<(), Failure> {
    let entities = match a.config {
        Some(path) => EntityConfig::from_file(&path).map_err(|e| Failure::Local(e.to_string()))?,
        None => EntityConfig::default(),
    };
    let hubs: Vec<String> = entities
        .hubs
        .iter()
        .map(|h| format!("{} ({} partitions)", h.name, h.partition_count))
        .collect();
    // With one hub the connection string names it, so `ehub info` finds it without --hub.
    let only = match entities.hubs.as_slice() {
        [one] => Some(one.name.clone()),
        _ => None,
    };
    let mut options = EmulatorOptions::default()
        .with_bind(SocketAddr::new(a.bind, a.port))
        .with_entities(entities)
        .with_require_auth(!a.no_auth)
        .with_max_connections(a.max_connections)
        .with_handshake_timeout(std::time::Duration::from_secs(a.handshake_timeout))
        .with_limits(ConnectionLimits {
            max_queued_output: a.max_queued_output,
            max_sessions: a.max_sessions,
            max_links: a.max_links,
            max_pending_attaches: a.max_pending_attaches,
            max_unsettled: a.max_unsettled,
            ..ConnectionLimits::default()
        })
        .with_fsync(a.fsync.into());
    if let Some(dir) = a.data_dir {
        options = options.with_data_dir(dir);
    }
    if let Some(p) = a.ws_port {
        options = options.with_ws_bind(SocketAddr::new(a.bind, p));
    }
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        options = with_tls(options, cert, key)?;
    }
    let scheme = if a.tls_cert.is_some() { "wss" } else { "ws" };
    let emulator = Emulator::start(options)
        .await
        .map_err(|e| Failure::Local(e.to_string()))?;
    let tls_note = if a.tls_cert.is_some() { " (TLS)" } else { "" };
    println!(
        "Event Hubs emulator listening on {}{tls_note}",
        emulator.local_addr()
    );
    if let Some(ws) = emulator.ws_local_addr() {
        println!("AMQP over WebSockets on {scheme}://{ws}/$servicebus/websocket/");
    }
    println!("hubs: {}", hubs.join(", "));
    println!("connection string:");
    match only {
        Some(hub) => println!("{}", emulator.connection_string_for(&hub)),
        None => println!("{}", emulator.connection_string()),
    }
    crate::interrupted().await;
    println!("stopping");
    Ok(())
}

/// `options` serving TLS with the PEM certificate chain and key in these files; a file that
/// cannot be read or parsed is a usage error naming it.
#[cfg(feature = "tls")]
fn with_tls(
    options: EmulatorOptions,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<EmulatorOptions, Failure> {
    let tls = eventhubs::amqp::io::tls::TlsServerOptions::from_pem_files(cert, key)
        .map_err(|e| Failure::Usage(format!("--tls-cert/--tls-key: {e}")))?;
    Ok(options.with_tls(tls))
}

/// Without the `tls` feature there is no TLS to serve.
#[cfg(not(feature = "tls"))]
fn with_tls(
    _options: EmulatorOptions,
    _cert: &std::path::Path,
    _key: &std::path::Path,
) -> Result<EmulatorOptions, Failure> {
    Err(Failure::Usage(
        "--tls-cert/--tls-key: this ehub was built without the tls feature".into(),
    ))
}
