//! `ehub bench send|receive`: one client's throughput, with the figures
//! scripts/bench_producer.sh prints (events/s, MB/s, client CPU, CPU µs per event, peak RSS).

use crate::target::Target;
use crate::Failure;
use clap::{Args, Subcommand};
use eventhubs::{BatchOptions, ConsumerOptions, EventData, EventPosition, ProducerOptions};
use std::time::{Duration, Instant};

/// `ehub bench` modes.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Sends generated events in link-sized batches, one batch in flight.
    Send(BenchArgs),
    /// Receives events from the beginning of one partition.
    Receive(BenchArgs),
}

/// `ehub bench` options.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    target: Target,
    /// Events to send or receive.
    #[arg(short = 'c', long, default_value_t = 100_000)]
    count: u64,
    /// Body size in bytes (send).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partition.
    #[arg(short = 'p', long, default_value = "0")]
    partition: String,
}

/// CPU seconds this process used so far (user + system), from /proc; `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    Some(ticks as f64 / 100.0)
}

/// Peak resident memory (VmHWM) in MiB, from /proc; `None` elsewhere.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn figures(what: &str, events: u64, bytes: u64, secs: f64, cpu: Option<f64>) {
    let secs = secs.max(1e-9);
    let cpu_text = cpu.map_or("n/a".to_owned(), |c| format!("{c:.2} s"));
    let per_event = cpu.map_or("n/a".to_owned(), |c| {
        format!("{:.2} µs", c * 1e6 / events.max(1) as f64)
    });
    let rss = peak_rss_mib().map_or("n/a".to_owned(), |m| format!("{m:.0} MiB"));
    println!(
        "{what}: {events} events in {secs:.3} s: {:.0} events/s, {:.2} MB/s, client CPU {cpu_text}, \
         CPU/event {per_event}, peak RSS {rss}",
        events as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
}

/// Runs one benchmark and prints its figures on stdout.
pub async fn run(c: BenchCommand) -> Result<(), Failure> {
    match c {
        BenchCommand::Send(a) => send(a).await,
        BenchCommand::Receive(a) => receive(a).await,
    }
}

async fn send(a: BenchArgs) -> Result<(), Failure> {
    let client = a.target.client()?;
    let producer = client
        .create_producer(ProducerOptions::partition(a.partition.clone()))
        .await?;
    if a.size as u64 >= producer.max_message_size() {
        return Err(Failure::Usage(format!(
            "--size {}: does not fit this hub's max message size of {} bytes",
            a.size,
            producer.max_message_size()
        )));
    }
    let body = bytes::Bytes::from(vec![b'x'; a.size]);
    let mut sent = 0u64;
    let (mut started, mut cpu0) = (None, None);
    while sent < a.count {
        let mut batch = producer.create_batch(BatchOptions::default()).await?;
        while sent + (batch.len() as u64) < a.count
            && batch.try_add(EventData::new(body.clone())).is_ok()
        {}
        if batch.is_empty() {
            return Err(Failure::Usage(format!(
                "--size {}: one event does not fit in a batch",
                a.size
            )));
        }
        sent += batch.len() as u64;
        // The timed window starts at the first batch, as in scripts/bench_producer.sh.
        if started.is_none() {
            started = Some(Instant::now());
            cpu0 = cpu_seconds();
        }
        producer.send(batch).await?;
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    figures("send", sent, sent * a.size as u64, secs, cpu);
    Ok(client.close().await?)
}

async fn receive(a: BenchArgs) -> Result<(), Failure> {
    let client = a.target.client()?;
    let mut consumer = client
        .create_consumer(
            "$Default",
            &a.partition,
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await?;
    let (mut got, mut bytes) = (0u64, 0u64);
    let (mut started, mut cpu0) = (None, None);
    let mut last = Instant::now();
    while got < a.count {
        let want = (a.count - got).min(1000) as usize;
        let events = consumer.receive(want, Duration::from_secs(5)).await?;
        if events.is_empty() {
            break;
        }
        if started.is_none() {
            started = Some(Instant::now());
            cpu0 = cpu_seconds();
        }
        got += events.len() as u64;
        bytes += events.iter().map(|e| e.body().len() as u64).sum::<u64>();
        last = Instant::now();
    }
    let secs = started.map_or(0.0, |s| (last - s).as_secs_f64());
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    figures("receive", got, bytes, secs, cpu);
    consumer.close().await?;
    client.close().await?;
    if got < a.count {
        return Err(Failure::Short(format!(
            "received {got} of {} events (the partition holds fewer)",
            a.count
        )));
    }
    Ok(())
}
