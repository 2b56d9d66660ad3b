//! `ehub`: the Event Hubs command-line tool. `ehub emulator` runs a local Event Hubs.

use clap::{Args, Parser, Subcommand};
use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, Fsync};
use eventhubs::{
    BatchOptions, ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions,
};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The local emulator's connection string, used when none is given.
const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

/// The largest event body `ehub send` will build: Event Hubs' largest max-message-size (20 MiB,
/// Dedicated); the hub's own limit is checked once the producer reports it.
const MAX_EVENT_SIZE: usize = 20 * 1024 * 1024;

/// Exit status for a command line that cannot work (bad value, event too large), as clap uses.
const USAGE: u8 = 2;

/// Why a command failed: how it was asked (exit status 2) or what happened (exit status 1).
enum Failure {
    Usage(String),
    Failed(eventhubs::Error),
}

impl From<eventhubs::Error> for Failure {
    fn from(e: eventhubs::Error) -> Self {
        Failure::Failed(e)
    }
}

/// Where to connect: any Event Hubs (Azure or an emulator).
#[derive(Args)]
struct Target {
    /// Connection string [env: EVENTHUB_CONNECTION_STRING; default: the local emulator].
    #[arg(long, env = "EVENTHUB_CONNECTION_STRING", hide_env_values = true)]
    connection_string: Option<String>,
    /// Event hub [env: EVENTHUB_NAME; default: the connection string's EntityPath, else eh1].
    #[arg(long, env = "EVENTHUB_NAME")]
    hub: Option<String>,
    /// Seconds to wait for a connection before the attempt counts as failed (4 attempts).
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// How to reach the service: plain AMQP, or AMQP over WebSockets on 443.
    #[arg(long, value_enum, default_value_t = TransportMode::Amqp)]
    transport: TransportMode,
    /// Tunnel through this HTTP proxy: http://[user:password@]host[:port].
    #[arg(long, env = "EHUB_PROXY", hide_env_values = true)]
    proxy: Option<String>,
    /// Connect to HOST:PORT instead of the namespace's endpoint (e.g. an emulator's --ws-port).
    #[arg(long)]
    custom_endpoint: Option<String>,
}

/// `--transport`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TransportMode {
    /// AMQP on 5671 (5672 for the emulator).
    Amqp,
    /// AMQP over WebSockets (`/$servicebus/websocket/` on 443).
    Websockets,
}

impl Target {
    fn client(&self) -> Result<EventHubClient, Failure> {
        let cs = self.connection_string.as_deref().unwrap_or(EMULATOR);
        let hub = match (&self.hub, cs.to_ascii_lowercase().contains("entitypath=")) {
            (Some(h), _) => Some(h.as_str()),
            (None, true) => None,
            (None, false) => Some("eh1"),
        };
        let t = self.connect_timeout;
        if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
            return Err(Failure::Usage(format!(
                "--connect-timeout {t}: expected seconds, more than 0 and at most 3600"
            )));
        }
        let builder = eventhubs::EventHubClientBuilder::from_connection_string(cs, hub)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let mut retry = eventhubs::RetryOptions::default();
        if std::io::stderr().is_terminal() {
            // Silence is the worst answer a tool can give while it retries: say what it waits for.
            let host = builder_host(cs);
            retry.observer = Some(eventhubs::RetryObserver::new(move |n| {
                eprintln!(
                    "waiting for {host}, attempt {}/{} ({})",
                    n.attempt,
                    n.attempts,
                    one_line(&n.error.to_string())
                );
            }));
        }
        let mut builder = builder.transport(match self.transport {
            TransportMode::Amqp => eventhubs::TransportType::Amqp,
            TransportMode::Websockets => eventhubs::TransportType::AmqpWebSockets,
        });
        if let Some(url) = &self.proxy {
            builder = builder
                .proxy_url(url)
                .map_err(|e| Failure::Usage(format!("--proxy: {}", e.message())))?;
        }
        if let Some(ep) = &self.custom_endpoint {
            let (host, port) = ep
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| {
                    Failure::Usage(format!("--custom-endpoint {ep}: expected HOST:PORT"))
                })?;
            builder = builder.custom_endpoint(host.trim_matches(['[', ']']), port);
        }
        Ok(builder
            .retry(retry)
            .connect_timeout(Duration::from_secs_f64(t))
            .build()?)
    }
}

/// The namespace host a connection string names, for progress lines.
fn builder_host(cs: &str) -> String {
    cs.split(';')
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case("endpoint").then(|| v.trim())
        })
        .map(|v| v.split_once("://").map_or(v, |(_, rest)| rest))
        .map(|v| v.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| "the event hub".to_owned())
}

/// Folds a message onto one line so that each failure is one line on stderr.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Parser)]
#[command(
    name = "ehub",
    version,
    about = "Azure Event Hubs tools: a local emulator and more"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--fsync` values, as `Fsync` with the interval fixed.
#[derive(Clone, Copy, clap::ValueEnum)]
enum FsyncMode {
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

#[derive(Subcommand)]
enum Command {
    /// Runs a local Event Hubs emulator (plain AMQP) until interrupted.
    Emulator {
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
        /// Also serve AMQP over WebSockets on this port (any path, subprotocol AMQPWSB10).
        #[arg(long)]
        ws_port: Option<u16>,
    },
    /// Prints the hub's and each partition's properties.
    Info {
        #[command(flatten)]
        target: Target,
    },
    /// Sends events in batches, with progress.
    Send {
        #[command(flatten)]
        target: Target,
        /// Number of events.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Body size in bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Send to this partition (default: let the service choose).
        #[arg(long)]
        partition: Option<String>,
        /// Partition key for every event.
        #[arg(long)]
        key: Option<String>,
    },
    /// Receives events from one partition, with progress.
    Receive {
        #[command(flatten)]
        target: Target,
        /// Partition to read.
        #[arg(long, default_value = "0")]
        partition: String,
        /// Consumer group.
        #[arg(long, default_value = "$Default")]
        consumer_group: String,
        /// Start: earliest, latest, seq:N, offset:X or time:MS (exclusive).
        #[arg(long, default_value = "earliest")]
        from: String,
        /// Stop after this many events (default: run until idle).
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long without events.
        #[arg(long, default_value_t = 10)]
        idle_secs: u64,
        /// Print each event's body and system properties.
        #[arg(long)]
        print: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ehub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// Logs to stderr, filtered by `RUST_LOG` (frames: `RUST_LOG=eventhubs::amqp::frames=debug`);
/// coloured only on a terminal and when `NO_COLOR` is unset or empty (no-color.org).
fn tracing_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .try_init();
}

/// Whether logs may carry ANSI colour codes.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Emulator {
            config,
            port,
            bind,
            data_dir,
            fsync,
            no_auth,
            max_connections,
            handshake_timeout,
            ws_port,
        } => {
            let entities = match config {
                Some(path) => match EntityConfig::from_file(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("ehub: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => EntityConfig::default(),
            };
            let hubs: Vec<String> = entities
                .hubs
                .iter()
                .map(|h| format!("{} ({} partitions)", h.name, h.partition_count))
                .collect();
            let mut options = EmulatorOptions::default()
                .with_bind(SocketAddr::new(bind, port))
                .with_entities(entities)
                .with_require_auth(!no_auth)
                .with_max_connections(max_connections)
                .with_handshake_timeout(std::time::Duration::from_secs(handshake_timeout))
                .with_fsync(fsync.into());
            if let Some(dir) = data_dir {
                options = options.with_data_dir(dir);
            }
            if let Some(p) = ws_port {
                options = options.with_ws_bind(SocketAddr::new(bind, p));
            }
            let emulator = match Emulator::start(options).await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("ehub: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("Event Hubs emulator listening on {}", emulator.local_addr());
            if let Some(ws) = emulator.ws_local_addr() {
                println!("AMQP over WebSockets on ws://{ws}/$servicebus/websocket/");
            }
            println!("hubs: {}", hubs.join(", "));
            println!("connection string:");
            println!("{}", emulator.connection_string());
            let _ = tokio::signal::ctrl_c().await;
            println!("stopping");
            ExitCode::SUCCESS
        }
        Command::Info { target } => report(info(target).await),
        Command::Send {
            target,
            count,
            size,
            partition,
            key,
        } => report(send(target, count, size, partition, key).await),
        Command::Receive {
            target,
            partition,
            consumer_group,
            from,
            count,
            idle_secs,
            print,
        } => report(
            receive(
                target,
                &partition,
                &consumer_group,
                &from,
                count,
                Duration::from_secs(idle_secs),
                print,
            )
            .await,
        ),
    }
}

fn report(r: Result<(), Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("ehub: {}", one_line(&m));
            ExitCode::from(USAGE)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("ehub: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn info(target: Target) -> Result<(), Failure> {
    let client = target.client()?;
    let p = client.get_properties().await?;
    println!(
        "event hub {} ({} partitions)",
        p.name,
        p.partition_ids.len()
    );
    for id in &p.partition_ids {
        let pp = client.get_partition_properties(id).await?;
        println!(
            "  partition {id}: sequence numbers {}..={}, last offset {}, empty {}",
            pp.beginning_sequence_number,
            pp.last_enqueued_sequence_number,
            pp.last_enqueued_offset,
            pp.is_empty
        );
    }
    Ok(client.close().await?)
}

/// Rewrites one progress line in place.
fn progress(label: &str, done: u64, total: Option<u64>, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let of = total.map(|t| format!("/{t}")).unwrap_or_default();
    print!(
        "\r{label} {done}{of} events ({:.0} events/s)   ",
        done as f64 / secs
    );
    let _ = std::io::stdout().flush();
}

async fn send(
    target: Target,
    count: u64,
    size: usize,
    partition: Option<String>,
    key: Option<String>,
) -> Result<(), Failure> {
    // Checked before anything is allocated or a connection is made.
    if size > MAX_EVENT_SIZE {
        return Err(Failure::Usage(format!(
            "--size {size}: no event hub accepts events over {MAX_EVENT_SIZE} bytes"
        )));
    }
    let client = target.client()?;
    let options = match partition {
        Some(p) => ProducerOptions::partition(p),
        None => ProducerOptions::default(),
    };
    let producer = client.create_producer(options).await?;
    let max = producer.max_message_size();
    if size as u64 > max {
        let _ = client.close().await;
        return Err(Failure::Usage(format!(
            "--size {size}: over this hub's max message size of {max} bytes"
        )));
    }
    let body = bytes::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut last = Instant::now();
    while sent < count {
        let mut options = BatchOptions::default();
        if let Some(k) = &key {
            options = options.partition_key(k.clone());
        }
        let mut batch = producer.create_batch(options).await?;
        while sent + (batch.len() as u64) < count {
            if batch.try_add(EventData::new(body.clone())).is_err() {
                break;
            }
        }
        if batch.is_empty() {
            let _ = client.close().await;
            return Err(Failure::Usage(format!(
                "--size {size}: an event of {size} bytes and its headers do not fit in a \
                 batch of at most {max} bytes"
            )));
        }
        sent += batch.len() as u64;
        producer.send(batch).await?;
        if last.elapsed() > Duration::from_millis(200) || sent == count {
            progress("sent", sent, Some(count), started);
            last = Instant::now();
        }
    }
    println!();
    Ok(client.close().await?)
}

fn position(from: &str) -> Result<EventPosition, Failure> {
    let bad = || {
        Failure::Usage(format!(
            "bad --from {from:?}: expected earliest, latest, seq:N, offset:X or time:MS"
        ))
    };
    Ok(match from.split_once(':') {
        None if from == "earliest" => EventPosition::earliest(),
        None if from == "latest" => EventPosition::latest(),
        Some(("seq", n)) => EventPosition::sequence_number(n.parse().map_err(|_| bad())?),
        Some(("offset", o)) => EventPosition::offset(o),
        Some(("time", ms)) => EventPosition::enqueued_time_millis(ms.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

async fn receive(
    target: Target,
    partition: &str,
    consumer_group: &str,
    from: &str,
    count: Option<u64>,
    idle: Duration,
    print: bool,
) -> Result<(), Failure> {
    let start = position(from)?;
    let client = target.client()?;
    let mut consumer = client
        .create_consumer(consumer_group, partition, start, ConsumerOptions::default())
        .await?;
    let started = Instant::now();
    let mut received = 0u64;
    let mut last_event = Instant::now();
    let mut last_print = Instant::now();
    while count.is_none_or(|c| received < c) && last_event.elapsed() < idle {
        let want = count.map_or(300, |c| (c - received).min(300)) as usize;
        let events = consumer.receive(want, Duration::from_millis(500)).await?;
        if !events.is_empty() {
            last_event = Instant::now();
        }
        for e in &events {
            received += 1;
            if print {
                println!(
                    "partition {partition} seq {} offset {} enqueued {:?}: {}",
                    e.sequence_number().unwrap_or(-1),
                    e.offset().unwrap_or("?"),
                    e.enqueued_time_millis(),
                    String::from_utf8_lossy(e.body())
                );
            }
        }
        if !print && (last_print.elapsed() > Duration::from_millis(200)) {
            progress("received", received, count, started);
            last_print = Instant::now();
        }
    }
    if !print {
        progress("received", received, count, started);
        println!();
    }
    println!("received {received} events");
    consumer.close().await?;
    Ok(client.close().await?)
}
