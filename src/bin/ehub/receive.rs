//! `ehub receive`: events from one, several or all partitions, printed on stdout as a
//! `--format` string or JSON lines; `-e` stops once every partition is caught up.

use crate::output::{self, Format, DIRECTIVES};
use crate::position::{self, FORMS};
use crate::progress::{plural, rate, Progress};
use crate::target::Target;
use crate::Failure;
use clap::Args;
use eventhubs::{ConsumerOptions, EventData, EventHubClient};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The positions and examples under `ehub receive --help`.
pub const HELP: &str = "\
Positions (-o): beginning, end, seq:N, seq:>N, offset:X, offset:>X, time:T, time:>T, -N.
  seq:N, offset:X and time:T include the event they name; with '>' they start after it.
  T is ISO 8601 (2026-01-31T12:00:00Z, 2026-01-31, +01:00 zones) or epoch milliseconds.
  -N starts N events before the end of each partition; a bare N is seq:N.
Examples:
  ehub receive -e                            # everything there is, then exit
  ehub receive -p 0 -o seq:>41 -c 10         # 10 events after sequence number 41
  ehub receive -o -1 -e -J                   # the last event of each partition, as JSON
  ehub receive -o end                        # new events until Ctrl-C
  ehub receive -f '%p/%s %k [%h] %b\\n'
Data goes to stdout; a summary to stderr (unless -q), a progress bar too on a terminal.
-J lines: partition, sequence_number, offset, enqueued_time, partition_key, content_type,
  body (UTF-8 text, or base64 with body_encoding \"base64\"), properties and
  system_properties as {\"type\": AMQP type, \"value\": ...}.";

/// `ehub receive` options.
#[derive(Args)]
pub struct ReceiveArgs {
    #[command(flatten)]
    target: Target,
    /// Partitions to read, repeatable or comma-separated (default: all).
    #[arg(short = 'p', long, value_delimiter = ',')]
    partition: Vec<String>,
    /// Consumer group.
    #[arg(short = 'g', long, default_value = "$Default")]
    consumer_group: String,
    /// Where to start in each partition (see Positions below).
    #[arg(short = 'o', long = "from", visible_alias = "position", default_value = "beginning",
          allow_hyphen_values = true,
          long_help = format!("Where to start in each partition: {FORMS}"))]
    from: String,
    /// Exit once every partition is caught up with its last event at start.
    #[arg(short = 'e', long)]
    exit_at_end: bool,
    /// Stop after this many events; fewer is exit status 3.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Stop after this many seconds without events (default: wait for more).
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Output format for each event (default: the body and a newline).
    #[arg(short = 'f', long, conflicts_with = "json",
          long_help = format!("Output format for each event: {DIRECTIVES} (default: %b\\n)"))]
    format: Option<String>,
    /// One JSON object per event and line.
    #[arg(short = 'J', long)]
    json: bool,
    /// Like -f 'partition %p seq %s offset %o enqueued %t key %k properties %h: %b\n'.
    #[arg(long, conflicts_with_all = ["json", "format"])]
    print: bool,
    /// No summary and no progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// What a partition's reader tells the printer.
enum Note {
    Events(String, Vec<EventData>),
    CaughtUp,
    Failed(eventhubs::Error),
}

/// How a partition's reader goes about it.
struct Plan {
    partition: String,
    position: eventhubs::EventPosition,
    /// The sequence number that, once received, means caught up (`None`: caught up already).
    last: Option<i64>,
}

/// Reads until caught up (`-e`), `--count`, `--idle-secs`, a failure or Ctrl-C.
pub async fn run(a: ReceiveArgs) -> Result<(), Failure> {
    let start = position::parse(&a.from).map_err(Failure::Usage)?;
    let format = if a.print {
        Some(Format::parse(
            "partition %p seq %s offset %o enqueued %t key %k properties %h: %b\\n",
        ))
    } else {
        a.format.as_deref().map(Format::parse)
    }
    .transpose()
    .map_err(Failure::Usage)?
    .unwrap_or_else(Format::body_line);
    if a.count == Some(0) {
        return Err(Failure::Usage("--count 0: expected at least 1".into()));
    }
    let client = a.target.client()?;
    let partitions = if a.partition.is_empty() {
        client.get_partition_ids().await?
    } else {
        a.partition.clone()
    };
    let (tx, mut rx) = mpsc::channel::<Note>(64);
    let mut plans = Vec::new();
    for p in &partitions {
        let props = client.get_partition_properties(p).await?;
        let (position, caught_up) = position::resolve(&start, &props);
        plans.push(Plan {
            partition: p.clone(),
            position,
            last: (!caught_up).then_some(props.last_enqueued_sequence_number),
        });
    }
    for plan in plans {
        let consumer = client
            .create_consumer(
                &a.consumer_group,
                &plan.partition,
                plan.position.clone(),
                ConsumerOptions::default(),
            )
            .await?;
        tokio::spawn(read(
            client.clone(),
            consumer,
            plan,
            a.exit_at_end,
            tx.clone(),
        ));
    }
    drop(tx);

    let progress = Progress::new("received", a.count, a.quiet);
    let started = Instant::now();
    let mut last_event: Option<Instant> = None;
    let mut received = 0u64;
    let mut caught_up = 0usize;
    let mut out = Vec::with_capacity(64 * 1024);
    let stdout = std::io::stdout();
    let idle = a.idle_secs.map(Duration::from_secs);
    let summary = |received: u64, last_event: Option<Instant>| {
        let secs = last_event.map_or(0.0, |t| (t - started).as_secs_f64());
        format!(
            "received {} from {}",
            rate(received, secs),
            plural(partitions.len() as u64, "partition")
        )
    };
    let outcome: Result<(), Failure> = loop {
        if a.exit_at_end && caught_up == partitions.len() {
            break Ok(());
        }
        if a.count.is_some_and(|c| received >= c) {
            break Ok(());
        }
        let wait = async {
            match idle {
                Some(d) => {
                    tokio::time::timeout_at((last_event.unwrap_or(started) + d).into(), rx.recv())
                        .await
                        .ok()
                }
                None => Some(rx.recv().await),
            }
        };
        let note = tokio::select! {
            n = wait => n,
            _ = tokio::signal::ctrl_c() => {
                progress.clear();
                eprintln!("interrupted: {}", summary(received, last_event));
                return Err(Failure::Interrupted);
            }
        };
        match note {
            None => break Ok(()),
            Some(None) => break Ok(()),
            Some(Some(Note::CaughtUp)) => caught_up += 1,
            Some(Some(Note::Failed(e))) => break Err(e.into()),
            Some(Some(Note::Events(p, events))) => {
                last_event = Some(Instant::now());
                out.clear();
                for e in &events {
                    if a.count.is_some_and(|c| received >= c) {
                        break;
                    }
                    received += 1;
                    if a.json {
                        out.extend(output::json_line(&p, e).to_string().as_bytes());
                        out.push(b'\n');
                    } else {
                        format.write(&p, e, &mut out);
                    }
                }
                let mut lock = stdout.lock();
                if let Err(e) = lock.write_all(&out).and_then(|()| lock.flush()) {
                    // A reader that went away (`| head`) has all it wanted.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        break Ok(());
                    }
                    break Err(Failure::Local(format!("writing to stdout: {e}")));
                }
                progress.set(received);
            }
        }
    };
    progress.clear();
    outcome?;
    if !a.quiet {
        eprintln!("{}", summary(received, last_event));
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
    match a.count {
        Some(c) if received < c => Err(Failure::Short(format!(
            "received {} of the {c} asked for",
            plural(received, "event")
        ))),
        _ => Ok(()),
    }
}

/// Reads one partition until told to stop (the printer drops its end of the queue).
async fn read(
    client: EventHubClient,
    mut consumer: eventhubs::EventHubConsumer,
    plan: Plan,
    exit_at_end: bool,
    tx: mpsc::Sender<Note>,
) {
    let mut last = plan.last;
    if last.is_none() && exit_at_end {
        let _ = tx.send(Note::CaughtUp).await;
        return;
    }
    let mut quiet_polls = 0u32;
    loop {
        match consumer.receive(300, Duration::from_secs(1)).await {
            Ok(events) if events.is_empty() => {
                quiet_polls += 1;
                // The consumer reconnects on its own and says nothing while it does: ask the
                // service directly, so a dead endpoint is reported in seconds, not never.
                if quiet_polls.is_multiple_of(2) {
                    if let Err(e) = client.get_partition_properties(&plan.partition).await {
                        let _ = tx.send(Note::Failed(e)).await;
                        return;
                    }
                }
            }
            Ok(events) => {
                quiet_polls = 0;
                let newest = events.iter().filter_map(|e| e.sequence_number()).max();
                if tx
                    .send(Note::Events(plan.partition.clone(), events))
                    .await
                    .is_err()
                {
                    return;
                }
                if let (Some(l), Some(n)) = (last, newest) {
                    if n >= l {
                        last = None;
                        if exit_at_end {
                            let _ = tx.send(Note::CaughtUp).await;
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Note::Failed(e)).await;
                return;
            }
        }
    }
}
