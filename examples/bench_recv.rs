//! Receiving side of `scripts/bench_receive.sh`: reads N events from partition "0" of a running
//! emulator (or any Event Hubs) from the earliest position and prints one `RESULT key=value ...`
//! line with the elapsed time from the first event to the N-th, the process's CPU seconds in
//! that window and its peak RSS.
//!
//! ```text
//! bench_recv consumer  --conn CS --count 2000000 [--batch 300]
//! bench_recv consumer-task --conn CS --count 2000000 [--batch 300]
//! bench_recv stream    --conn CS --count 2000000
//! bench_recv processor --conn CS --count 2000000 [--batch 300]
//! ```
//!
//! `consumer` is `EventHubConsumer::receive(batch, 5 s)` in a loop (default prefetch 300) on
//! the thread that runs `block_on` (as in `#[tokio::main]` code that reads in `main`);
//! `consumer-task` is the same loop in a task of the runtime (as in a service that spawns its
//! readers: no hand-off to and from a thread outside the runtime's workers);
//! `stream` is `EventHubConsumer::stream()` one event at a time; `processor` is an
//! `EventProcessor` (greedy, in-memory checkpoint store, default prefetch, `--batch` events per
//! `process_events`) that checkpoints the last event of every batch in the background, as a
//! careful application does. Only partition "0" is expected to hold events; the processor
//! claims the others too and finds them empty. Every mode checks that the events come in
//! sequence-number order without a gap and fails otherwise.
//!
//! CPU time comes from `/proc/self/stat` and peak RSS from `VmHWM` in `/proc/self/status`
//! (Linux-only; -1 elsewhere).

use eventhubs::processor::{
    EventProcessor, EventProcessorOptions, InMemoryPartitionManager, PartitionContext,
    PartitionProcessor, Strategy,
};
use eventhubs::{ConsumerOptions, EventData, EventHubClient, EventPosition};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Args {
    mode: String,
    conn: String,
    hub: String,
    count: u64,
    batch: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_recv consumer|consumer-task|stream|processor --conn CS [--hub eh1] --count N [--batch 300]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        mode,
        conn: String::new(),
        hub: "eh1".into(),
        count: 1_000_000,
        batch: 300,
    };
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--conn" => a.conn = v,
            "--hub" => a.hub = v,
            "--count" => a.count = v.parse().unwrap_or_else(|_| usage()),
            "--batch" => a.batch = v.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if a.conn.is_empty() {
        usage()
    }
    a
}

fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return -1.0;
    };
    // The command name may contain spaces; the numeric fields start after its closing ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return -1.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = std::env::var("CLK_TCK")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(100.0);
    (ticks(14) + ticks(15)) as f64 / hz
}

fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// The timed window and what came through it.
struct Report {
    events: u64,
    bytes: u64,
    secs: f64,
    cpu: f64,
}

/// Checks order (no gap, no duplicate) and counts; starts the clock at the first event.
struct Tally {
    next_seq: Option<i64>,
    events: u64,
    bytes: u64,
    started: Option<(Instant, f64)>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            next_seq: None,
            events: 0,
            bytes: 0,
            started: None,
        }
    }

    fn add(&mut self, e: &EventData) -> Result<(), String> {
        if self.started.is_none() {
            self.started = Some((Instant::now(), cpu_seconds()));
        }
        let seq = e.sequence_number().unwrap_or(-1);
        if let Some(want) = self.next_seq {
            if seq != want {
                return Err(format!("expected sequence number {want}, got {seq}"));
            }
        }
        self.next_seq = Some(seq + 1);
        self.events += 1;
        self.bytes += e.body().len() as u64;
        Ok(())
    }

    fn report(&self) -> Report {
        let (t0, c0) = self.started.unwrap_or((Instant::now(), cpu_seconds()));
        Report {
            events: self.events,
            bytes: self.bytes,
            secs: t0.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - c0,
        }
    }
}

async fn run_consumer(a: &Args, stream: bool) -> Result<Report, String> {
    let client =
        EventHubClient::from_connection_string(&a.conn, Some(&a.hub)).map_err(|e| e.to_string())?;
    let mut consumer = client
        .create_consumer(
            "$Default",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut t = Tally::new();
    if stream {
        let mut s = consumer.stream();
        while t.events < a.count {
            match s.next().await {
                Some(Ok(e)) => t.add(&e)?,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the stream ended".into()),
            }
        }
    } else {
        while t.events < a.count {
            let want = ((a.count - t.events) as usize).min(a.batch);
            let events = consumer
                .receive(want, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
            if events.is_empty() {
                return Err(format!(
                    "nothing in 5 s after {} events: the partition holds fewer",
                    t.events
                ));
            }
            for e in &events {
                t.add(e)?;
            }
        }
    }
    let r = t.report();
    let _ = consumer.close().await;
    let _ = client.close().await;
    Ok(r)
}

struct Count {
    tally: Arc<Mutex<Tally>>,
    seen: Arc<AtomicU64>,
    /// Told when the count is reached or a batch fails, so the bench's main task sleeps
    /// until then instead of polling (a polling loop's timer wake-ups would disturb the
    /// runtime the processor runs on, which the plain consumer's bench does not have).
    done: Arc<tokio::sync::Notify>,
    count: u64,
    failed: Arc<Mutex<Option<String>>>,
}

impl PartitionProcessor for Count {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        if ctx.partition_id != "0" || events.is_empty() {
            return;
        }
        {
            let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            for e in &events {
                if let Err(err) = t.add(e) {
                    *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                    break;
                }
            }
            self.seen.store(t.events, Ordering::Release);
            if t.events >= self.count
                || self
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some()
            {
                self.done.notify_one();
            }
        }
        if let Some(last) = events.last() {
            let _ = ctx.checkpoint_in_background_from_event(last);
        }
    }
}

async fn run_processor(a: &Args) -> Result<Report, String> {
    let client =
        EventHubClient::from_connection_string(&a.conn, Some(&a.hub)).map_err(|e| e.to_string())?;
    let tally = Arc::new(Mutex::new(Tally::new()));
    let seen = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(None));
    let done = Arc::new(tokio::sync::Notify::new());
    let (t2, s2, f2, d2, count) = (
        tally.clone(),
        seen.clone(),
        failed.clone(),
        done.clone(),
        a.count,
    );
    let p = EventProcessor::new(
        client.clone(),
        "$Default",
        move || Count {
            tally: t2.clone(),
            seen: s2.clone(),
            done: d2.clone(),
            count,
            failed: f2.clone(),
        },
        Arc::new(InMemoryPartitionManager::new()),
        EventProcessorOptions::default()
            .with_strategy(Strategy::Greedy)
            .with_max_batch_size(a.batch)
            .with_max_wait_time(Duration::from_millis(100)),
    )
    .map_err(|e| e.to_string())?;
    p.start();
    let mut last_progress = (Instant::now(), 0);
    let report = loop {
        // Woken when done; the timeout only serves the no-progress check.
        let _ = tokio::time::timeout(Duration::from_secs(1), done.notified()).await;
        let failure = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(e) = failure {
            p.stop().await;
            return Err(e);
        }
        let n = seen.load(Ordering::Acquire);
        if n >= a.count {
            break tally.lock().unwrap_or_else(|p| p.into_inner()).report();
        }
        if n != last_progress.1 {
            last_progress = (Instant::now(), n);
        } else if last_progress.0.elapsed() > Duration::from_secs(10) {
            p.stop().await;
            return Err(format!(
                "no progress in 10 s after {n} events: the partition holds fewer"
            ));
        }
    };
    p.stop().await;
    let _ = client.close().await;
    Ok(report)
}

fn main() {
    let a = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = match a.mode.as_str() {
        "consumer" => runtime.block_on(run_consumer(&a, false)),
        "consumer-task" => {
            let owned = a.clone();
            runtime.block_on(async move {
                tokio::spawn(async move { run_consumer(&owned, false).await })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
            })
        }
        "stream" => runtime.block_on(run_consumer(&a, true)),
        "processor" => runtime.block_on(run_processor(&a)),
        _ => usage(),
    };
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_recv {} failed: {e}", a.mode);
            std::process::exit(1);
        }
    };
    let size = r.bytes.checked_div(r.events).unwrap_or(0);
    println!(
        "RESULT impl=rust-{} size={size} events={} secs={:.4} cpu={:.3} maxrss_kib={}",
        a.mode,
        r.events,
        r.secs,
        r.cpu,
        peak_rss_kib()
    );
}
