//! `ehub send`: events from stdin (one per line or per delimiter), from files (one per file),
//! or generated (`--count`/`--size`), in as few batches as fit.

use crate::progress::{plural, rate, Progress};
use crate::property::{self, TYPES};
use crate::target::Target;
use crate::Failure;
use clap::Args;
use eventhubs::{AmqpValue, BatchOptions, EventData, EventHubProducer, ProducerOptions};
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// The largest event body `ehub send` will build: Event Hubs' largest max-message-size (20 MiB,
/// Dedicated); the hub's own limit is checked once the producer reports it.
const MAX_EVENT_SIZE: usize = 20 * 1024 * 1024;

/// The examples under `ehub send --help`.
pub const HELP: &str = "\
Examples:
  seq 100 | ehub send --stdin                     # 100 events, one per line
  ehub send --stdin -D '\\0' < records              # NUL-separated events
  printf 'user1:hello\\n' | ehub send --stdin -K :   # key user1, body hello
  ehub send --stdin -k orders -H type=created -H v:i32=2 < lines.txt
  ehub send -c 1 -H n:i64=5 -H ok:bool=true -H at:timestamp=2026-01-31T12:00:00Z
Properties (-H): KEY=VALUE is a string; KEY:TYPE=VALUE is sent as that AMQP type
  (string, symbol, bool, i8..i64, u8..u64, f32, f64, timestamp, uuid, binary as base64);
  `ehub receive -J` shows each property with its type.
  ehub send -p 2 a.json b.json                    # two events, to partition 2
  ehub send -c 10000 --size 1024                  # generated 1 KiB events
A summary goes to stderr (unless -q), a progress bar too when stderr is a terminal.";

/// `ehub send` options.
#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    target: Target,
    /// Files to send, each as one event.
    files: Vec<PathBuf>,
    /// Read events from stdin, one per line (or per --delimiter).
    #[arg(long, conflicts_with = "files")]
    stdin: bool,
    /// Event delimiter for --stdin: one byte, or \n, \t, \0 (default: newline).
    #[arg(short = 'D', long, default_value = "\\n")]
    delimiter: String,
    /// Split each --stdin event at the first DELIM into a partition key and a body.
    #[arg(short = 'K', long, value_name = "DELIM")]
    key_delimiter: Option<String>,
    /// Partition key for every event.
    #[arg(short = 'k', long)]
    key: Option<String>,
    /// An application property on every event, KEY=VALUE (a string) or KEY:TYPE=VALUE
    /// (e.g. n:i64=5, ok:bool=true); repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY[:TYPE]=VALUE",
          long_help = format!("An application property on every event; repeatable. \
              KEY=VALUE sends a string; KEY:TYPE=VALUE sends VALUE as that AMQP type, one of: \
              {TYPES}. The key ends at the first '='; in a key with a ':', what follows the \
              last ':' is the type (a:b:string=c is key a:b)."))]
    headers: Vec<String>,
    /// Send to this partition (default: the service chooses, or hashes the key).
    #[arg(short = 'p', long)]
    partition: Option<String>,
    /// Events to generate (default 1000); with --stdin, at most this many are read, and
    /// fewer is exit status 3.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Body size in bytes of generated events.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// No summary and no progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// An event to send, with the partition key its batch must have.
struct Outgoing {
    key: Option<String>,
    event: EventData,
}

fn delimiter(text: &str, what: &str) -> Result<u8, Failure> {
    match text {
        "\\n" | "\n" => Ok(b'\n'),
        "\\t" | "\t" => Ok(b'\t'),
        "\\0" | "\0" => Ok(0),
        t if t.len() == 1 => Ok(t.as_bytes()[0]),
        t => Err(Failure::Usage(format!(
            "{what} {t:?}: expected one byte, or \\n, \\t or \\0"
        ))),
    }
}

fn headers(raw: &[String]) -> Result<Vec<(String, AmqpValue)>, Failure> {
    raw.iter()
        .map(|h| property::parse(h).map_err(Failure::Usage))
        .collect()
}

/// Sends every event its source yields, then prints a summary.
pub async fn run(a: SendArgs) -> Result<(), Failure> {
    // Checked before anything is allocated or a connection is made.
    if a.size > MAX_EVENT_SIZE {
        return Err(Failure::Usage(format!(
            "--size {}: no event hub accepts events over {MAX_EVENT_SIZE} bytes",
            a.size
        )));
    }
    let delim = delimiter(&a.delimiter, "--delimiter")?;
    let key_delim = match &a.key_delimiter {
        Some(d) if !a.stdin => {
            return Err(Failure::Usage(format!("-K {d:?} needs --stdin")));
        }
        Some(d) => Some(delimiter(d, "-K")?),
        None => None,
    };
    if a.partition.is_some() && (a.key.is_some() || key_delim.is_some()) {
        return Err(Failure::Usage(
            "-p and -k/-K: an event goes to a partition by id or by key, not both".into(),
        ));
    }
    let props = headers(&a.headers)?;
    let generated = !a.stdin && a.files.is_empty();
    let limit = if generated {
        Some(a.count.unwrap_or(1000))
    } else {
        a.count
    };

    let client = a.target.client()?;
    let options = match &a.partition {
        Some(p) => ProducerOptions::partition(p.clone()),
        None => ProducerOptions::default(),
    };
    // Ctrl-C while still connecting ends with a summary too.
    let producer = tokio::select! {
        biased;
        r = client.create_producer(options) => r?,
        _ = crate::interrupted() => {
            eprintln!("interrupted while connecting: sent 0 events");
            return Err(Failure::Interrupted);
        }
    };
    let max = producer.max_message_size();
    if generated && a.size as u64 > max {
        let _ = client.close().await;
        return Err(Failure::Usage(format!(
            "--size {}: over this hub's max message size of {max} bytes",
            a.size
        )));
    }

    // Events are read on a thread of their own (stdin and files block) and handed over
    // through a bounded queue, so memory stays bounded however much comes in.
    let (tx, rx) = mpsc::channel::<Result<Outgoing, String>>(1024);
    let fixed_key = a.key.clone();
    let make = move |body: Vec<u8>, key: Option<String>| {
        let mut event = EventData::new(body);
        for (k, v) in &props {
            event.set_property(k.as_str(), v.clone());
        }
        Outgoing {
            key: key.or_else(|| fixed_key.clone()),
            event,
        }
    };
    let (stdin, files, size) = (a.stdin, a.files.clone(), a.size);
    std::thread::spawn(move || {
        let send = |o| tx.blocking_send(o).is_ok();
        let mut n = 0u64;
        let more = |n: u64| limit.is_none_or(|l| n < l);
        if stdin {
            let mut input = std::io::stdin().lock();
            while more(n) {
                let mut record = Vec::new();
                let read = (&mut input)
                    .take(MAX_EVENT_SIZE as u64 + 1)
                    .read_until(delim, &mut record);
                match read {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        send(Err(format!("reading stdin: {e}")));
                        return;
                    }
                }
                if record.last() == Some(&delim) {
                    record.pop();
                } else if record.len() > MAX_EVENT_SIZE {
                    send(Err(format!(
                        "stdin event {}: over {MAX_EVENT_SIZE} bytes",
                        n + 1
                    )));
                    return;
                }
                let (key, body) = match key_delim.and_then(|d| record.iter().position(|&b| b == d))
                {
                    Some(i) => (
                        Some(String::from_utf8_lossy(&record[..i]).into_owned()),
                        record[i + 1..].to_vec(),
                    ),
                    None => (None, record),
                };
                n += 1;
                if !send(Ok(make(body, key))) {
                    return;
                }
            }
        } else if !files.is_empty() {
            for path in files.iter().take(limit.unwrap_or(u64::MAX) as usize) {
                let body = std::fs::File::open(path).and_then(|f| {
                    let mut body = Vec::new();
                    f.take(MAX_EVENT_SIZE as u64 + 1).read_to_end(&mut body)?;
                    Ok(body)
                });
                let o = match body {
                    Ok(b) if b.len() > MAX_EVENT_SIZE => {
                        Err(format!("{}: over {MAX_EVENT_SIZE} bytes", path.display()))
                    }
                    Ok(b) => Ok(make(b, None)),
                    Err(e) => Err(format!("{}: {e}", path.display())),
                };
                let stop = o.is_err();
                if !send(o) || stop {
                    return;
                }
            }
        } else {
            let body = vec![b'x'; size];
            while more(n) {
                n += 1;
                if !send(Ok(make(body.clone(), None))) {
                    return;
                }
            }
        }
    });

    let sent = Arc::new(AtomicU64::new(0));
    let progress = Progress::new("sent", limit.filter(|_| generated), a.quiet);
    let started = Instant::now();
    let work = pump(&producer, rx, &sent, &progress, max, a.size, generated);
    let r = tokio::select! {
        r = work => r,
        _ = crate::interrupted() => {
            progress.clear();
            let n = sent.load(Ordering::Relaxed);
            eprintln!("interrupted: sent {}", rate(n, started.elapsed().as_secs_f64()));
            return Err(Failure::Interrupted);
        }
    };
    progress.clear();
    let n = sent.load(Ordering::Relaxed);
    r?;
    if !a.quiet {
        eprintln!("sent {}", rate(n, started.elapsed().as_secs_f64()));
    }
    client.close().await?;
    match limit {
        Some(l) if n < l && !generated => Err(Failure::Short(format!(
            "sent {} of the {} asked for (input ended)",
            plural(n, "event"),
            l
        ))),
        _ => Ok(()),
    }
}

/// Sends what comes through `rx`, batching whatever is already waiting; one batch per key.
async fn pump(
    producer: &EventHubProducer,
    mut rx: mpsc::Receiver<Result<Outgoing, String>>,
    sent: &AtomicU64,
    progress: &Progress,
    max: u64,
    size: usize,
    generated: bool,
) -> Result<(), Failure> {
    let mut next = rx.recv().await;
    while let Some(first) = next.take() {
        let first = first.map_err(Failure::Local)?;
        let key = first.key.clone();
        let mut options = BatchOptions::default();
        if let Some(k) = &key {
            options = options.partition_key(k.clone());
        }
        let mut batch = producer.create_batch(options).await?;
        let len = first.event.body().len();
        if batch.try_add(first.event).is_err() {
            return Err(if generated {
                Failure::Usage(format!(
                    "--size {size}: an event of {size} bytes and its headers do not fit in a \
                     batch of at most {max} bytes"
                ))
            } else {
                Failure::Local(format!(
                    "event {} ({len} bytes) and its headers do not fit in this hub's max \
                     message size of {max} bytes",
                    sent.load(Ordering::Relaxed) + 1
                ))
            });
        }
        // Whatever is already waiting joins the batch; nothing waits for more to arrive.
        loop {
            match rx.try_recv() {
                Ok(Ok(o)) if o.key == key => {
                    if let Err(event) = batch.try_add(o.event) {
                        next = Some(Ok(Outgoing {
                            key: key.clone(),
                            event,
                        }));
                        break;
                    }
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        producer.send(batch).await?;
        let total = sent.fetch_add(n, Ordering::Relaxed) + n;
        progress.set(total);
        if next.is_none() {
            next = rx.recv().await;
        }
    }
    Ok(())
}
