//! `ehub receive`: events from one, several or all partitions, printed on stdout as a
//! `--format` string or JSON lines; `-e` stops once every partition is caught up.

use crate::output::{self, Format, DIRECTIVES};
use crate::position::{self, Start, FORMS};
use crate::progress::{plural, rate, Progress};
use crate::target::Target;
use crate::Failure;
use clap::Args;
use eventhubs::{EventHubClient, EventPosition, PartitionsReader, ReadAllOptions};
use std::io::Write;
use std::time::{Duration, Instant};

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
    /// Exit once every partition read has delivered the last event it held at the start.
    #[arg(
        short = 'e',
        long,
        long_help = "\
Exit once every partition read is caught up with the start: each partition's last enqueued \
sequence number is read once, before its consumer attaches, and the partition is done when an \
event at or past it has been printed; one holding nothing at or after --from is done at once \
(so -o end -e exits at once). Events enqueued later are printed if they come in before that, \
but not waited for. With --count, whichever comes first; fewer than --count is status 3."
    )]
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
    let started = Instant::now();
    // Ctrl-C while still connecting (an emulator not up yet, retries under way) ends with a
    // summary too, not with silence.
    let mut reader = tokio::select! {
        biased;
        r = open(&client, &a, &start) => r?,
        _ = crate::interrupted() => {
            eprintln!("interrupted while connecting: received 0 events");
            return Err(Failure::Interrupted);
        }
    };
    let partitions = reader.partition_ids().len() as u64;

    let progress = Progress::new("received", a.count, a.quiet);
    let mut last_event: Option<Instant> = None;
    let mut received = 0u64;
    let mut out = Vec::with_capacity(64 * 1024);
    let stdout = std::io::stdout();
    let idle = a.idle_secs.map(Duration::from_secs);
    let summary = |received: u64, last_event: Option<Instant>| {
        let secs = last_event.map_or(0.0, |t| (t - started).as_secs_f64());
        format!(
            "received {} from {}",
            rate(received, secs),
            plural(partitions, "partition")
        )
    };
    let outcome: Result<(), Failure> = loop {
        if a.count.is_some_and(|c| received >= c) {
            break Ok(());
        }
        let wait = async {
            match idle {
                Some(d) => tokio::time::timeout_at(
                    (last_event.unwrap_or(started) + d).into(),
                    reader.next_batch(),
                )
                .await
                .ok(),
                None => Some(reader.next_batch().await),
            }
        };
        let next = tokio::select! {
            n = wait => n,
            _ = crate::interrupted() => {
                progress.clear();
                eprintln!("interrupted: {}", summary(received, last_event));
                return Err(Failure::Interrupted);
            }
        };
        match next {
            // Idle for --idle-secs, or (with -e) every partition caught up.
            None | Some(None) => break Ok(()),
            Some(Some(Err(e))) => break Err(e.into()),
            Some(Some(Ok(batch))) => {
                last_event = Some(Instant::now());
                out.clear();
                for e in &batch.events {
                    if a.count.is_some_and(|c| received >= c) {
                        break;
                    }
                    received += 1;
                    if a.json {
                        out.extend(
                            output::json_line(&batch.partition_id, e)
                                .to_string()
                                .as_bytes(),
                        );
                        out.push(b'\n');
                    } else {
                        format.write(&batch.partition_id, e, &mut out);
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
    drop(reader);
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

/// Attaches to every partition asked for, at the position `start` names in each.
async fn open(
    client: &EventHubClient,
    a: &ReceiveArgs,
    start: &Start,
) -> Result<PartitionsReader, Failure> {
    let mut options = ReadAllOptions::default()
        .with_max_batch_size(300)
        .with_stop_at_end(a.exit_at_end);
    if !a.partition.is_empty() {
        options = options.with_partitions(a.partition.iter().cloned());
    }
    let position = match start.fixed() {
        Some(p) => p,
        None => {
            // `-N` depends on where each partition ends.
            let ids = if a.partition.is_empty() {
                client.get_partition_ids().await?
            } else {
                a.partition.clone()
            };
            for id in &ids {
                let props = client.get_partition_properties(id).await?;
                options = options.with_start_position(id.clone(), position::resolve(start, &props));
            }
            EventPosition::earliest()
        }
    };
    Ok(client
        .read_all_partitions(&a.consumer_group, position, options)
        .await?)
}
