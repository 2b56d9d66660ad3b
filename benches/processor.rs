//! Processor overhead: the same events read by 4 plain consumers and by an `EventProcessor`
//! on 4 partitions of an in-process emulator. Prints events/s of each and the overhead.
//!
//! `cargo bench --bench processor` (`BENCH_EVENTS` per partition, default 50 000; `BENCH_ROUNDS`
//! default 3; the median round is reported).
//!
//! With `EVENTHUBS_AZURITE` (a storage connection string) it also compares, with a checkpoint
//! requested per batch of 100 events, the processor over `InMemoryPartitionManager` with the
//! processor over `BlobPartitionManager` on Azurite, same emulator, same run, in three modes:
//! awaited checkpoints (`update_checkpoint_from_event`, a store round trip per batch), and
//! checkpoints written in the background (`checkpoint_in_background_from_event`) with a
//! `background_checkpoint_interval` of 0 (each partition's newest written as soon as the last
//! write is done) and of 1 s (the default: at most one write per partition per second). It
//! also prints how many checkpoints each run wrote to the store. The interval shows only in
//! runs of several seconds: use `BENCH_EVENTS=500000` or so.
use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, HubConfig};
use eventhubs::processor::{
    BlobOptions, BlobPartitionManager, Checkpoint, EventProcessor, EventProcessorOptions,
    InMemoryPartitionManager, Ownership, PartitionContext, PartitionManager, PartitionProcessor,
    StoreFuture, Strategy,
};
use eventhubs::{
    BatchOptions, ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 4;
const BATCH: usize = 300;

/// How `Count` checkpoints the last event of each batch.
#[derive(Clone, Copy)]
enum Checkpointing {
    /// Awaited: durable before the next batch.
    Awaited,
    /// Scheduled; the partition's writer stores the newest, starting at most one write per
    /// this interval, while processing goes on.
    Background(Duration),
}

/// Counts the checkpoint writes that reach the store under it.
struct CountWrites {
    inner: Arc<dyn PartitionManager>,
    writes: AtomicU64,
}

impl PartitionManager for CountWrites {
    fn list_ownership<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Ownership>> {
        self.inner
            .list_ownership(namespace, event_hub, consumer_group)
    }

    fn claim_ownership<'a>(&'a self, claims: Vec<Ownership>) -> StoreFuture<'a, Vec<Ownership>> {
        self.inner.claim_ownership(claims)
    }

    fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.update_checkpoint(checkpoint)
    }

    fn list_checkpoints<'a>(
        &'a self,
        namespace: &'a str,
        event_hub: &'a str,
        consumer_group: &'a str,
    ) -> StoreFuture<'a, Vec<Checkpoint>> {
        self.inner
            .list_checkpoints(namespace, event_hub, consumer_group)
    }
}

struct Count {
    n: Arc<AtomicU64>,
    checkpointing: Checkpointing,
}

impl PartitionProcessor for Count {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        self.n.fetch_add(events.len() as u64, Ordering::Relaxed);
        // Checkpoint every batch: what a careful application does, and the processor's cost.
        if let Some(last) = events.last() {
            let _ = match self.checkpointing {
                Checkpointing::Awaited => ctx.update_checkpoint_from_event(last).await,
                Checkpointing::Background(_) => ctx.checkpoint_in_background_from_event(last),
            };
        }
    }
}

async fn plain_consumers(client: &EventHubClient, per_partition: u64) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PARTITIONS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = client
                .create_consumer(
                    "$default",
                    &p.to_string(),
                    EventPosition::earliest(),
                    ConsumerOptions::default().with_prefetch(300),
                )
                .await
                .expect("consumer");
            let mut got = 0u64;
            while got < per_partition {
                got += c
                    .receive(BATCH, Duration::from_secs(5))
                    .await
                    .expect("receive")
                    .len() as u64;
            }
            let _ = c.close().await;
        }));
    }
    for t in tasks {
        t.await.expect("consumer task");
    }
    (per_partition * u64::from(PARTITIONS)) as f64 / started.elapsed().as_secs_f64()
}

async fn processor(client: &EventHubClient, per_partition: u64) -> f64 {
    processor_with(
        client,
        per_partition,
        Arc::new(InMemoryPartitionManager::new()),
        BATCH,
        Checkpointing::Awaited,
    )
    .await
    .0
}

async fn processor_with(
    client: &EventHubClient,
    per_partition: u64,
    manager: Arc<dyn PartitionManager>,
    batch: usize,
    checkpointing: Checkpointing,
) -> (f64, u64) {
    let store = Arc::new(CountWrites {
        inner: manager,
        writes: AtomicU64::new(0),
    });
    let interval = match checkpointing {
        Checkpointing::Awaited => Duration::ZERO,
        Checkpointing::Background(interval) => interval,
    };
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    let p = EventProcessor::new(
        client.clone(),
        "$default",
        move || Count {
            n: counter.clone(),
            checkpointing,
        },
        store.clone(),
        EventProcessorOptions::default()
            .with_strategy(Strategy::Greedy)
            .with_max_batch_size(batch)
            .with_prefetch(300)
            .with_max_wait_time(Duration::from_millis(100))
            .with_background_checkpoint_interval(interval),
    )
    .expect("processor");
    let total = per_partition * u64::from(PARTITIONS);
    let started = Instant::now();
    p.start();
    while n.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    // Counted before `stop` flushes what is pending: the writes made while processing.
    let writes = store.writes.load(Ordering::Relaxed);
    p.stop().await;
    (rate, writes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let per_partition: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let emulator = Emulator::start(EmulatorOptions::ephemeral().with_entities(
        EntityConfig::default().with_hubs(vec![HubConfig::new("bench".into(), PARTITIONS)
                .with_consumer_groups(vec!["$default".into()])]),
    ))
    .await
    .expect("emulator");
    let client =
        EventHubClient::from_connection_string(&emulator.connection_string(), Some("bench"))
            .expect("client");
    let body = bytes::Bytes::from(vec![b'x'; 100]);
    for p in 0..PARTITIONS {
        let producer = client
            .create_producer(ProducerOptions::partition(p.to_string()))
            .await
            .expect("producer");
        let mut sent = 0;
        while sent < per_partition {
            let mut batch = producer
                .create_batch(BatchOptions::default())
                .await
                .expect("batch");
            while sent + (batch.len() as u64) < per_partition
                && batch.try_add(EventData::new(body.clone())).is_ok()
            {}
            sent += batch.len() as u64;
            producer.send(batch).await.expect("send");
        }
    }
    let mut plain = Vec::new();
    let mut proc = Vec::new();
    for _ in 0..rounds {
        plain.push(plain_consumers(&client, per_partition).await);
        proc.push(processor(&client, per_partition).await);
    }
    let azurite = std::env::var("EVENTHUBS_AZURITE")
        .ok()
        .filter(|v| !v.is_empty());
    // Per checkpointing mode: (in memory, Azurite) (rate, store writes) of every round.
    let modes = [
        ("awaited", Checkpointing::Awaited),
        (
            "background, interval 0",
            Checkpointing::Background(Duration::ZERO),
        ),
        (
            "background, interval 1 s (default)",
            Checkpointing::Background(Duration::from_secs(1)),
        ),
    ];
    type Runs = Vec<(f64, u64)>;
    let mut per_mode: Vec<(Runs, Runs)> = modes.iter().map(|_| Default::default()).collect();
    if let Some(cs) = &azurite {
        for round in 0..rounds {
            for (i, (_, mode)) in modes.iter().enumerate() {
                per_mode[i].0.push(
                    processor_with(
                        &client,
                        per_partition,
                        Arc::new(InMemoryPartitionManager::new()),
                        100,
                        *mode,
                    )
                    .await,
                );
                // A fresh container per round and mode: every run starts without checkpoints.
                let container = format!("bench-{}-{i}-{round}", std::process::id());
                let store = BlobPartitionManager::connect(
                    cs,
                    &container,
                    BlobOptions::default().with_create_container(true),
                )
                .await
                .expect("Azurite reachable");
                per_mode[i].1.push(
                    processor_with(&client, per_partition, Arc::new(store), 100, *mode).await,
                );
            }
        }
    }
    let (plain, proc) = (median(plain), median(proc));
    println!(
        "{PARTITIONS} partitions x {per_partition} events of 100 B, median of {rounds} rounds"
    );
    println!("  4 plain consumers      {plain:>10.0} events/s");
    println!("  EventProcessor         {proc:>10.0} events/s (checkpoint per {BATCH}-event batch)");
    println!(
        "  overhead               {:>9.1} %",
        (plain - proc) / plain * 100.0
    );
    if azurite.is_some() {
        let requested = per_partition.div_ceil(100) * u64::from(PARTITIONS);
        println!("  a checkpoint requested per 100-event batch (>= {requested} per run):");
        for ((name, _), (mem, blob)) in modes.iter().zip(per_mode) {
            let rates = |runs: &Runs| median(runs.iter().map(|r| r.0).collect());
            let writes = |runs: &Runs| {
                let w: Vec<String> = runs.iter().map(|r| r.1.to_string()).collect();
                w.join(", ")
            };
            let (m, b) = (rates(&mem), rates(&blob));
            println!("  {name}:");
            println!(
                "    processor, in memory {m:>10.0} events/s (store writes per run: {})",
                writes(&mem)
            );
            println!(
                "    processor, Azurite   {b:>10.0} events/s (store writes per run: {})",
                writes(&blob)
            );
            println!(
                "    blob store cost      {:>9.1} % (target <= 10 %)",
                (m - b) / m * 100.0
            );
        }
    }
}
