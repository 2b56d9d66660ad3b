//! The official Azure SDK for Rust (`azure_messaging_eventhubs`) timed against our emulator,
//! for `scripts/bench_rust_sdk.sh`: it sends generated events to one partition in full batches,
//! or receives a partition from its start, and prints one line in the format of
//! `examples/bench_send.rs`, so that the script reads both clients' figures the same way:
//!
//! ```text
//! eventhubs-rust-sdk-bench send    --address HOST:PORT --size BYTES --count N [--inflight K]
//! eventhubs-rust-sdk-bench receive --address HOST:PORT --count N [--prefetch P]
//!     [--partition 0] [--hub eh1] [--runtime current-thread|multi-thread]
//! RESULT impl=sdk-send size=100 events=N batches=B secs=S cpu=C maxrss_kib=K
//! ```
//!
//! The timed window runs from the first batch handed to the SDK to the last acknowledgement
//! (send), or from the first event received to the last (receive); `cpu` is this process's
//! user + system time over the same window. The SDK runs on a current-thread runtime by
//! default: on a multi-thread one it races with its own connection task against a local
//! emulator (see tests/rust_sdk/src/main.rs).

use azure_messaging_eventhubs::{
    models::EventData, ConsumerClient, EventDataBatchOptions, OpenReceiverOptions, ProducerClient,
    StartLocation, StartPosition,
};
use futures::stream::StreamExt;
use std::collections::VecDeque;
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long one SDK call may go without an answer: the SDK can hang instead of failing
/// against a fast local peer, and a benchmark must end.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `call` under [`CALL_TIMEOUT`], its error or the timeout turned into a message about `what`.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s (the SDK hung)",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// What the command line asked for.
struct Args {
    mode: Mode,
    address: String,
    hub: String,
    partition: String,
    size: usize,
    count: u64,
    inflight: usize,
    prefetch: u32,
    multi_thread: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Send,
    Receive,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut it = std::env::args().skip(1);
        let mode = match it.next().as_deref() {
            Some("send") => Mode::Send,
            Some("receive") => Mode::Receive,
            other => {
                return Err(format!(
                    "the first argument must be send or receive, not {other:?}"
                ))
            }
        };
        let mut args = Args {
            mode,
            address: String::new(),
            hub: "eh1".into(),
            partition: "0".into(),
            size: 100,
            count: 100_000,
            inflight: 1,
            // The SDK's own default.
            prefetch: 300,
            multi_thread: false,
        };
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--address" => args.address = value()?,
                "--hub" => args.hub = value()?,
                "--partition" => args.partition = value()?,
                "--size" => args.size = number(&flag, value()?)?,
                "--count" => args.count = number(&flag, value()?)?,
                "--inflight" => args.inflight = number::<usize>(&flag, value()?)?.max(1),
                "--prefetch" => args.prefetch = number(&flag, value()?)?,
                "--runtime" => {
                    args.multi_thread = match value()?.as_str() {
                        "current-thread" => false,
                        "multi-thread" => true,
                        other => return Err(format!("--runtime: unknown runtime {other}")),
                    }
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if args.address.is_empty() {
            return Err("--address HOST:PORT is required".into());
        }
        if args.count == 0 {
            return Err("--count must be at least 1".into());
        }
        Ok(args)
    }

    /// The SDK takes the key name and key from here but dials neither the port in `Endpoint`
    /// nor plain AMQP for `UseDevelopmentEmulator=true`; the custom endpoint reaches the
    /// emulator.
    fn connection_string(&self) -> &'static str {
        "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    }

    fn custom_endpoint(&self) -> String {
        format!("amqp://{}", self.address)
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: String) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{flag}: {e}"))
}

/// CPU seconds this process used so far (user + system, in Linux's 100 Hz ticks).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

/// Peak resident memory (VmHWM) in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The figures of one timed window.
struct Figures {
    events: u64,
    batches: u64,
    secs: f64,
    cpu: f64,
}

async fn send(args: &Args) -> Result<Figures, String> {
    let producer = within(
        "open producer",
        ProducerClient::builder()
            .with_custom_endpoint(args.custom_endpoint())
            .open_with_connection_string(args.connection_string(), Some(&args.hub)),
    )
    .await?;
    // Batches borrow their producer, and sends in flight must run as tasks of their own (a
    // send future that is not polled holds the SDK's link while the next create_batch waits
    // for it), so the producer lives for the rest of the process.
    let producer: &'static ProducerClient = Box::leak(Box::new(producer));
    let (mut sent, mut batches) = (0u64, 0u64);
    let mut window = None;
    let mut pending = VecDeque::new();
    while sent < args.count {
        let batch = within(
            "create batch",
            producer.create_batch(Some(EventDataBatchOptions {
                partition_id: Some(args.partition.clone()),
                ..Default::default()
            })),
        )
        .await?;
        let mut n = 0u64;
        while sent + n < args.count {
            // A fresh body per event: the SDK takes its bodies by value.
            let event = EventData::builder()
                .with_body(vec![b'x'; args.size])
                .build();
            match batch.try_add_event_data(event, None) {
                Ok(true) => n += 1,
                Ok(false) => break,
                Err(e) => return Err(format!("add to batch: {e}")),
            }
        }
        if n == 0 {
            return Err(format!(
                "--size {}: one event does not fit in a batch",
                args.size
            ));
        }
        sent += n;
        batches += 1;
        if window.is_none() {
            window = Some((Instant::now(), cpu_seconds()));
        }
        pending.push_back(tokio::spawn(producer.send_batch(batch, None)));
        if pending.len() >= args.inflight {
            settle(pending.pop_front()).await?;
        }
    }
    while let Some(oldest) = pending.pop_front() {
        settle(Some(oldest)).await?;
    }
    let (started, cpu0) = window.unwrap_or((Instant::now(), cpu_seconds()));
    Ok(Figures {
        events: sent,
        batches,
        secs: started.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu0,
    })
}

/// Waits for one send task to end, under [`CALL_TIMEOUT`].
async fn settle<E: std::fmt::Display>(
    task: Option<tokio::task::JoinHandle<Result<(), E>>>,
) -> Result<(), String> {
    let Some(task) = task else {
        return Ok(());
    };
    match within("send batch", task).await? {
        Ok(()) => Ok(()),
        Err(e) => Err(format!("send batch: {e}")),
    }
}

async fn receive(args: &Args) -> Result<Figures, String> {
    let consumer = within(
        "open consumer",
        ConsumerClient::builder()
            .with_custom_endpoint(args.custom_endpoint())
            .open_with_connection_string(args.connection_string(), Some(&args.hub)),
    )
    .await?;
    let receiver = within(
        "open receiver",
        consumer.open_receiver_on_partition(
            args.partition.clone(),
            Some(OpenReceiverOptions {
                prefetch: Some(args.prefetch),
                start_position: Some(StartPosition {
                    location: StartLocation::Earliest,
                    inclusive: true,
                }),
                ..Default::default()
            }),
        ),
    )
    .await?;
    let mut got = 0u64;
    let mut window = None;
    {
        let mut stream = receiver.stream_events();
        while got < args.count {
            let next = tokio::time::timeout(CALL_TIMEOUT, stream.next()).await;
            match next.map_err(|_| {
                format!(
                    "no event within {} s after {got} (the SDK hung)",
                    CALL_TIMEOUT.as_secs()
                )
            })? {
                Some(Ok(event)) => {
                    if window.is_none() {
                        window = Some((Instant::now(), cpu_seconds()));
                    }
                    // Touch the body, as a real consumer would.
                    std::hint::black_box(event.event_data().body().map_or(0, <[u8]>::len));
                    got += 1;
                }
                Some(Err(e)) => return Err(format!("receive after {got} events: {e}")),
                None => return Err(format!("the event stream ended after {got} events")),
            }
        }
    }
    // The loop ends right after the last event.
    let (last, end_cpu) = (Instant::now(), cpu_seconds());
    let (started, cpu0) = window.unwrap_or((last, end_cpu));
    let figures = Figures {
        events: got,
        batches: 0,
        secs: (last - started).as_secs_f64(),
        cpu: end_cpu - cpu0,
    };
    let _ = receiver.close().await;
    let _ = consumer.close().await;
    Ok(figures)
}

async fn run(args: Args) -> ExitCode {
    let outcome = match args.mode {
        Mode::Send => send(&args).await,
        Mode::Receive => receive(&args).await,
    };
    match outcome {
        Ok(f) => {
            let label = if args.mode == Mode::Send {
                "sdk-send"
            } else {
                "sdk-receive"
            };
            let inflight = if args.mode == Mode::Send {
                format!("-x{}", args.inflight)
            } else {
                String::new()
            };
            println!(
                "RESULT impl={label}{inflight} size={} events={} batches={} secs={:.4} cpu={:.3} maxrss_kib={}",
                args.size,
                f.events,
                f.batches,
                f.secs.max(1e-9),
                f.cpu,
                peak_rss_kib()
            );
            // The SDK's connection tasks may linger; the result is out.
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("eventhubs-rust-sdk-bench: {e}");
            std::process::exit(1)
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("eventhubs-rust-sdk-bench: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = if args.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build();
    match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => {
            eprintln!("eventhubs-rust-sdk-bench: cannot start a tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
