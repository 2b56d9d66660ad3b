//! `ehub`: the Event Hubs command-line tool. `ehub emulator` runs a local Event Hubs.

use clap::{Parser, Subcommand};
use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

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
        /// Accept links without a CBS token.
        #[arg(long)]
        no_auth: bool,
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

/// Logs to stderr, filtered by `RUST_LOG` (frames: `RUST_LOG=eventhubs::amqp::frames=debug`).
fn tracing_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Emulator {
            config,
            port,
            bind,
            data_dir,
            no_auth,
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
            let options = EmulatorOptions {
                bind: SocketAddr::new(bind, port),
                entities,
                data_dir,
                require_auth: !no_auth,
                ..EmulatorOptions::default()
            };
            let emulator = match Emulator::start(options).await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("ehub: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("Event Hubs emulator listening on {}", emulator.local_addr());
            println!("hubs: {}", hubs.join(", "));
            println!("connection string:");
            println!("{}", emulator.connection_string());
            let _ = tokio::signal::ctrl_c().await;
            println!("stopping");
            ExitCode::SUCCESS
        }
    }
}
