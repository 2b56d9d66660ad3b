//! The soak run (`scripts/soak.sh`), not a CI test: continuous send and receive through a
//! fault proxy that cuts every connection every few seconds, with the emulator (`ehub
//! emulator --data-dir`, a separate process) killed with SIGKILL every few minutes and
//! restarted on the same directory. At the end every partition is read back from the start
//! on a clean connection, and the run reports events sent, acknowledged, stored, read, lost
//! (acknowledged but not stored, or stored but never read live) and duplicates, with the
//! emulator's and this process's RSS over time.
//!
//! Ignored by default; settings come from the environment: `SOAK_MINUTES` (30),
//! `SOAK_KILL_EVERY_S` (180), `SOAK_CUT_MS` (`1000-5000`, the range the proxy waits between
//! cuts), `SOAK_RATE` (events per second in all, 2000), `SOAK_REPORT` (a file for the final
//! JSON line). The test fails when anything acknowledged is lost.
#![cfg(feature = "emulator")]

mod support;

use eventhubs::{ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: u64 = 4;
const BATCH: u64 = 100;
const BODY: usize = 100;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn connection_string(port: u16) -> String {
    format!(
        "Endpoint=sb://localhost:{port};SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
}

/// An event's identity: its partition and its index among that partition's events.
fn body(partition: u64, index: u64) -> EventData {
    let mut b = vec![0u8; BODY];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8] = partition as u8;
    EventData::new(b)
}

fn index_of(event: &EventData) -> Option<u64> {
    let b = event.body();
    (b.len() == BODY).then(|| u64::from_be_bytes(b[..8].try_into().unwrap_or_default()))
}

/// A tiny xorshift, so the run needs no random-number crate (the cut times need no quality).
struct Rng(u64);

impl Rng {
    fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo + 1).max(1)
    }
}

/// The emulator as a child process on a fixed port and data directory.
struct EmulatorProcess {
    child: Child,
}

impl EmulatorProcess {
    fn start(dir: &Path, port: u16) -> EmulatorProcess {
        EmulatorProcess {
            child: support::spawn_ehub_emulator(dir, port),
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(&format!("/proc/{}/status", self.child.id()))
    }

    /// SIGKILL: no chance to flush or close anything.
    fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Per partition: how many events were acknowledged (indices below it, since each partition
/// sends in order and resends until acknowledged), and how often each index was read.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    acked: AtomicU64,
    resent_batches: AtomicU64,
    reads: Mutex<Vec<u32>>,
    live_reads: AtomicU64,
    reconnects: AtomicU64,
}

fn count_read(counts: &mut Vec<u32>, index: u64) {
    let i = index as usize;
    if counts.len() <= i {
        counts.resize(i + 1, 0);
    }
    counts[i] += 1;
}

async fn produce(
    client: EventHubClient,
    partition: u64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    per_s: u64,
) {
    let producer = loop {
        match client
            .create_producer(ProducerOptions::partition(partition.to_string()))
            .await
        {
            Ok(p) => break p,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let pace = Duration::from_secs_f64(BATCH as f64 / per_s.max(1) as f64);
    let mut next = 0u64;
    let mut tick = tokio::time::interval(pace);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let events: Vec<EventData> = (next..next + BATCH).map(|i| body(partition, i)).collect();
        tally.sent.fetch_add(BATCH, Ordering::Relaxed);
        // Resend the same events until they are acknowledged: what the service may have
        // stored from a failed attempt shows up as duplicates, never as a gap.
        loop {
            match producer.send(events.clone()).await {
                Ok(()) => break,
                Err(_) => {
                    tally.resent_batches.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        next += BATCH;
        tally.acked.store(next, Ordering::Relaxed);
    }
    let _ = producer.close().await;
}

async fn consume(client: EventHubClient, partition: u64, tally: Arc<Tally>, done: Arc<AtomicBool>) {
    let mut position = EventPosition::earliest();
    'connect: loop {
        let mut consumer = match client
            .create_consumer(
                "$default",
                &partition.to_string(),
                position.clone(),
                ConsumerOptions::default(),
            )
            .await
        {
            Ok(c) => c,
            Err(_) => {
                tally.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            if done.load(Ordering::Relaxed) {
                break 'connect;
            }
            match consumer.receive(500, Duration::from_millis(500)).await {
                Ok(events) => {
                    let mut counts = tally.reads.lock().unwrap();
                    for e in &events {
                        if let Some(i) = index_of(e) {
                            count_read(&mut counts, i);
                        }
                        if let Some(s) = e.sequence_number() {
                            position = EventPosition::sequence_number(s).inclusive(false);
                        }
                    }
                    tally
                        .live_reads
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                }
                // Retries ran out (the emulator was down for a while): start again after
                // the last event seen.
                Err(_) => {
                    tally.reconnects.fetch_add(1, Ordering::Relaxed);
                    continue 'connect;
                }
            }
        }
    }
}

/// Reads a whole partition from the start on a direct connection: how often each index is
/// stored.
async fn stored(port: u16, partition: u64) -> Vec<u32> {
    let client =
        EventHubClient::from_connection_string(&connection_string(port), Some("eh1")).unwrap();
    let mut consumer = client
        .create_consumer(
            "$default",
            &partition.to_string(),
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut counts = Vec::new();
    loop {
        let events = consumer
            .receive(5000, Duration::from_secs(3))
            .await
            .unwrap();
        if events.is_empty() {
            break;
        }
        for e in &events {
            if let Some(i) = index_of(e) {
                count_read(&mut counts, i);
            }
        }
    }
    let _ = client.close().await;
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long soak run: scripts/soak.sh"]
async fn soak() {
    support::init_tracing();
    let minutes = env_u64("SOAK_MINUTES", 30);
    let kill_every = Duration::from_secs(env_u64("SOAK_KILL_EVERY_S", 180));
    let rate = env_u64("SOAK_RATE", 2000);
    let (cut_lo, cut_hi) = std::env::var("SOAK_CUT_MS")
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((1000u64, 5000u64));
    let dir = std::env::temp_dir().join(format!("eventhubs-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut emulator = Some(EmulatorProcess::start(&dir, port));
    let proxy = support::Proxy::start(([127, 0, 0, 1], port).into()).await;
    let client =
        EventHubClient::from_connection_string(&connection_string(proxy.port), Some("eh1"))
            .unwrap();

    let tallies: Vec<Arc<Tally>> = (0..PARTITIONS)
        .map(|_| Arc::new(Tally::default()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let t = tallies[p as usize].clone();
        tasks.push(tokio::spawn(produce(
            client.clone(),
            p,
            t.clone(),
            stop.clone(),
            rate / PARTITIONS,
        )));
        tasks.push(tokio::spawn(consume(client.clone(), p, t, done.clone())));
    }

    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64);
    let mut next_cut = Instant::now() + Duration::from_millis(rng.next_in(cut_lo, cut_hi));
    let mut next_kill = Instant::now() + kill_every;
    let mut next_sample = Instant::now();
    let (mut cuts, mut kills) = (0u64, 0u64);
    let mut rss_samples: Vec<(u64, u64, u64)> = Vec::new();
    let totals = |f: &dyn Fn(&Tally) -> u64| tallies.iter().map(|t| f(t)).sum::<u64>();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if now >= next_cut {
            cuts += proxy.kill_all() as u64;
            next_cut = now + Duration::from_millis(rng.next_in(cut_lo, cut_hi));
        }
        if now >= next_kill {
            if let Some(e) = emulator.take() {
                e.kill_9();
            }
            kills += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            emulator = Some(tokio::task::block_in_place(|| {
                EmulatorProcess::start(&dir, port)
            }));
            next_kill = Instant::now() + kill_every;
        }
        if now >= next_sample {
            let em = emulator.as_ref().map_or(0, EmulatorProcess::rss_kib);
            let me = rss_kib("/proc/self/status");
            let t = start.elapsed().as_secs();
            rss_samples.push((t, em, me));
            println!(
                "t={t:>5} s  emulator RSS {:>6} MiB  client RSS {:>5} MiB  sent {}  acked {}  read {}  kills {kills}  cuts {cuts}",
                em / 1024,
                me / 1024,
                totals(&|t| t.sent.load(Ordering::Relaxed)),
                totals(&|t| t.acked.load(Ordering::Relaxed)),
                totals(&|t| t.live_reads.load(Ordering::Relaxed)),
            );
            next_sample = now + Duration::from_secs(30);
        }
    }

    // Stop sending; give the live consumers time to catch up with everything acknowledged.
    stop.store(true, Ordering::Relaxed);
    for t in tasks.iter().step_by(2) {
        while !t.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let caught_up = |t: &Tally| {
        let acked = t.acked.load(Ordering::Relaxed) as usize;
        let reads = t.reads.lock().unwrap();
        reads.len() >= acked && reads[..acked].iter().all(|&c| c > 0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !tallies.iter().all(|t| caught_up(t)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = client.close().await;

    let (mut acked, mut stored_events, mut lost, mut stored_dups, mut unacked_stored) =
        (0, 0, 0, 0, 0);
    let (mut read_missing, mut read_dups) = (0, 0);
    for p in 0..PARTITIONS {
        let t = &tallies[p as usize];
        let a = t.acked.load(Ordering::Relaxed);
        acked += a;
        let counts = stored(port, p).await;
        for (i, &c) in counts.iter().enumerate() {
            stored_events += c as u64;
            stored_dups += c.saturating_sub(1) as u64;
            if (i as u64) >= a && c > 0 {
                unacked_stored += 1;
            }
        }
        lost += (0..a as usize)
            .filter(|&i| counts.get(i).copied().unwrap_or(0) == 0)
            .count() as u64;
        let reads = t.reads.lock().unwrap();
        read_missing += (0..a as usize)
            .filter(|&i| reads.get(i).copied().unwrap_or(0) == 0)
            .count() as u64;
        read_dups += reads
            .iter()
            .map(|&c| c.saturating_sub(1) as u64)
            .sum::<u64>();
    }
    let sent = totals(&|t| t.sent.load(Ordering::Relaxed));
    let resent = totals(&|t| t.resent_batches.load(Ordering::Relaxed));
    let reconnects = totals(&|t| t.reconnects.load(Ordering::Relaxed));
    let live = totals(&|t| t.live_reads.load(Ordering::Relaxed));
    let peak = |f: fn(&(u64, u64, u64)) -> u64| rss_samples.iter().map(f).max().unwrap_or(0) / 1024;
    let last = rss_samples.last().copied().unwrap_or_default();
    println!(
        "soak {minutes} min, rate {rate}/s, cuts every {cut_lo}-{cut_hi} ms ({cuts} connections cut), \
         emulator killed -9 {kills} times"
    );
    println!(
        "sent {sent}, acknowledged {acked}, stored {stored_events} (duplicates {stored_dups}, \
         stored but unacknowledged {unacked_stored}), read live {live} (duplicates {read_dups}), \
         LOST {lost}, acknowledged but never read live {read_missing}; \
         batches resent after an error {resent}, consumer restarts {reconnects}"
    );
    println!(
        "RSS peak: emulator {} MiB, client {} MiB; at the end: emulator {} MiB, client {} MiB",
        peak(|s| s.1),
        peak(|s| s.2),
        last.1 / 1024,
        last.2 / 1024
    );
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        let json = serde_json::json!({
            "minutes": minutes, "rate": rate, "cuts": cuts, "kills": kills,
            "sent": sent, "acknowledged": acked, "stored": stored_events,
            "stored_duplicates": stored_dups, "stored_unacknowledged": unacked_stored,
            "read_live": live, "read_duplicates": read_dups, "lost": lost,
            "never_read_live": read_missing, "resent_batches": resent,
            "rss_kib": rss_samples.iter().map(|s| [s.0, s.1, s.2]).collect::<Vec<_>>(),
        });
        std::fs::write(path, format!("{json}\n")).unwrap();
    }
    if let Some(e) = emulator.take() {
        e.kill_9();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(lost, 0, "acknowledged events are missing from the store");
    assert_eq!(
        read_missing, 0,
        "acknowledged events were never read by the live consumers"
    );
    assert!(
        kills > 0 || minutes * 60 < kill_every.as_secs(),
        "the emulator was never killed"
    );
}
