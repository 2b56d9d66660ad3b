//! `ehub`: the Event Hubs command-line tool, in the spirit of kcat: `send` events from stdin or
//! files, `receive` them as text or JSON lines, `info`, `bench`, and `emulator` runs a local
//! Event Hubs.

mod bench;
mod emulator;
mod info;
mod output;
mod position;
mod progress;
mod property;
mod receive;
mod send;
mod target;
mod timefmt;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use tokio::sync::watch;

/// Exit status for a command line that cannot work (bad value, event too large), as clap uses.
const USAGE: u8 = 2;
/// Exit status when fewer events than `--count` were sent or received.
const SHORT: u8 = 3;
/// Exit status after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

/// Whether the last target was a development emulator, for the hint on a refused connection.
static EMULATOR_TARGET: AtomicBool = AtomicBool::new(true);

/// Turns true on Ctrl-C. The handler is installed before any command runs, so an interrupt
/// during the first connection attempt is seen as one, not left to the default action.
static INTERRUPT: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Starts listening for Ctrl-C (SIGINT) on `runtime`, at once rather than on first poll.
fn listen_for_interrupt(runtime: &tokio::runtime::Runtime) {
    let _enter = runtime.enter();
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    let listening = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map(|mut sigint| {
            runtime.spawn(async move {
                if sigint.recv().await.is_some() {
                    let _ = tx.send(true);
                }
            });
        })
        .is_ok();
    #[cfg(not(unix))]
    let listening = {
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        true
    };
    if listening {
        let _ = INTERRUPT.set(rx);
    }
}

/// Waits for Ctrl-C.
pub async fn interrupted() {
    match INTERRUPT.get() {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(|&on| on).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A command's future, for the commands that leave Ctrl-C to `main`.
type LocalBoxed = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>>>>;

/// Why a command did not succeed, each with its own exit status.
pub enum Failure {
    /// How it was asked: status 2.
    Usage(String),
    /// What happened: status 1.
    Failed(eventhubs::Error),
    /// A local failure (stdin, a file, stdout): status 1.
    Local(String),
    /// Fewer events than `--count`: status 3.
    Short(String),
    /// Ctrl-C, after the summary was printed: status 130.
    Interrupted,
}

impl From<eventhubs::Error> for Failure {
    fn from(e: eventhubs::Error) -> Self {
        Failure::Failed(e)
    }
}

/// Folds a message onto one line so that each failure is one line on stderr.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

const EXAMPLES: &str = "\
Examples:
  ehub emulator                                  # a local Event Hubs on localhost:5672
  seq 10 | ehub send --stdin -H source=seq        # one event per line, with a property
  ehub send -c 1 -H n:i64=5 -H ok:bool=true       # typed properties (KEY:TYPE=VALUE)
  printf 'k1:a\\nk2:b\\n' | ehub send --stdin -K :  # partition key before the ':'
  ehub send -p 0 payload.bin other.json          # each file is one event, to partition 0
  ehub receive -e                                # all partitions from the beginning, then exit
  ehub receive -p 1 -o seq:>41 -c 10 -J          # 10 events after sequence number 41, as JSON
  ehub receive -o -5 -f '%p %s %t %k %h: %b\\n'   # the last 5 events of each partition
  ehub receive -o time:2026-01-31T12:00:00Z -e -q
  ehub info --json

Environment: EVENTHUB_CONNECTION_STRING, EVENTHUB_NAME (as --connection-string, --hub);
RUST_LOG for logs (e.g. RUST_LOG=eventhubs::amqp::frames=debug); NO_COLOR.
Exit status: 0 done, 1 failed, 2 bad usage, 3 fewer events than --count, 130 interrupted.";

#[derive(Parser)]
#[command(
    name = "ehub",
    version,
    about = "Azure Event Hubs from the shell: send, receive, info, bench, and a local emulator",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a local Event Hubs emulator (plain AMQP) until interrupted.
    Emulator(emulator::EmulatorArgs),
    /// Prints the hub's and each partition's properties.
    Info(info::InfoArgs),
    /// Sends events: lines of stdin, files, or generated ones.
    #[command(after_help = send::HELP)]
    Send(send::SendArgs),
    /// Receives events from one, several or all partitions and prints them on stdout.
    #[command(after_help = receive::HELP)]
    Receive(receive::ReceiveArgs),
    /// Measures one client's send or receive throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
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
    listen_for_interrupt(&runtime);
    let r = runtime.block_on(async {
        let work = match cli.command {
            // These stop on Ctrl-C by themselves: the emulator shuts down cleanly, send and
            // receive print a summary. A second listener here would race theirs.
            Command::Emulator(a) => return emulator::run(a).await,
            Command::Send(a) => return send::run(a).await,
            Command::Receive(a) => return receive::run(a).await,
            Command::Info(a) => Box::pin(info::run(a)) as LocalBoxed,
            Command::Bench(a) => Box::pin(bench::run(a)),
        };
        tokio::select! {
            r = work => r,
            _ = interrupted() => {
                eprintln!("interrupted");
                Err(Failure::Interrupted)
            }
        }
    });
    // Tasks still reading a dead connection must not hold the exit up.
    runtime.shutdown_background();
    report(r)
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

/// Whether `e` comes from a refused TCP connection.
fn refused(e: &eventhubs::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = s.source();
    }
    e.to_string().contains("onnection refused")
}

fn report(r: Result<(), Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("ehub: {}", one_line(&m));
            ExitCode::from(USAGE)
        }
        Err(Failure::Failed(e)) => {
            let hint = if refused(&e) && EMULATOR_TARGET.load(Ordering::Relaxed) {
                " (is an emulator running? start one with `ehub emulator`)"
            } else {
                ""
            };
            eprintln!("ehub: {}{hint}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
        Err(Failure::Local(m)) => {
            eprintln!("ehub: {}", one_line(&m));
            ExitCode::FAILURE
        }
        Err(Failure::Short(m)) => {
            eprintln!("ehub: {}", one_line(&m));
            ExitCode::from(SHORT)
        }
        Err(Failure::Interrupted) => ExitCode::from(INTERRUPTED),
    }
}
