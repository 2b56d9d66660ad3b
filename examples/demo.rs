//! The end-to-end demo: an in-process Event Hubs emulator, a producer, and two event
//! processors sharing a partition manager that split the partitions between them, checkpoint,
//! and hand partitions over. No Azure account, no setup.
//!
//! `cargo run --release --example demo` (set `DEMO_EVENTS` to change the number of events).

mod common;

use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, HubConfig};
use eventhubs::processor::{
    EventProcessor, EventProcessorOptions, InMemoryPartitionManager, PartitionContext,
    PartitionProcessor,
};
use eventhubs::{BatchOptions, EventData, EventHubClient, ProducerOptions};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HUB: &str = "demo";
const PARTITIONS: u32 = 8;

/// What every processor saw, keyed by (partition, sequence number), to count duplicates.
#[derive(Default)]
struct Tally {
    seen: HashMap<(String, i64), u32>,
    by_processor: HashMap<String, u64>,
}

struct Counter {
    name: &'static str,
    tally: Arc<Mutex<Tally>>,
}

impl PartitionProcessor for Counter {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        let last = events.last().cloned();
        {
            let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            for e in &events {
                let seq = e.sequence_number().unwrap_or(-1);
                *t.seen.entry((ctx.partition_id.clone(), seq)).or_default() += 1;
            }
            *t.by_processor.entry(self.name.to_owned()).or_default() += events.len() as u64;
        }
        if let Some(last) = last {
            if let Err(e) = ctx.update_checkpoint_from_event(&last).await {
                eprintln!("checkpoint failed: {e}");
            }
        }
    }
}

fn owned(p: &[String]) -> String {
    if p.is_empty() {
        "-".into()
    } else {
        p.join(",")
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    common::report(run().await)
}

async fn run() -> Result<(), common::Failure> {
    let total = common::count_from_env("DEMO_EVENTS", 20_000)?;
    let entities =
        EntityConfig::default()
            .with_hubs(vec![HubConfig::new(HUB.into(), PARTITIONS)
                .with_consumer_groups(vec!["$default".into()])]);
    let emulator = Emulator::start(EmulatorOptions::ephemeral().with_entities(entities)).await?;
    println!("emulator: {}", emulator.connection_string_for(HUB));

    let client = EventHubClient::from_connection_string(&emulator.connection_string(), Some(HUB))?;
    let manager = Arc::new(InMemoryPartitionManager::new());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let options = EventProcessorOptions::default()
        .with_load_balancing_interval(Duration::from_millis(500))
        .with_ownership_expiration(Duration::from_secs(3))
        .with_max_batch_size(500)
        .with_max_wait_time(Duration::from_millis(200));
    let make = |name: &'static str| {
        let tally = tally.clone();
        EventProcessor::new(
            client.clone(),
            "$default",
            move || Counter {
                name,
                tally: tally.clone(),
            },
            manager.clone(),
            options.clone(),
        )
    };
    let a = make("A")?;
    let b = make("B")?;
    a.start();
    println!("processor A started ({})", a.owner_id());

    let producer = client.create_producer(ProducerOptions::default()).await?;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut next_report = total / 10;
    let mut b_started = false;
    while sent < total {
        let mut batch = producer.create_batch(BatchOptions::default()).await?;
        // Small batches, paced, so the rebalancing is visible while events flow.
        while sent < total && batch.len() < 200 {
            let event = EventData::new(format!("event {sent}")).with_property("n", sent as i64);
            if batch.try_add(event).is_err() {
                break;
            }
            sent += 1;
        }
        producer.send(batch).await?;
        tokio::time::sleep(Duration::from_millis(25)).await;
        if sent >= next_report {
            println!(
                "sent {sent:>7}/{total} ({:>3}%)   A owns [{}]   B owns [{}]",
                sent * 100 / total,
                owned(&a.owned_partitions()),
                owned(&b.owned_partitions())
            );
            next_report += total / 10;
        }
        if !b_started && sent >= total * 3 / 10 {
            b.start();
            b_started = true;
            println!(
                "processor B started ({}): partitions will rebalance",
                b.owner_id()
            );
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    println!("sent {sent} events in {send_secs:.2} s (paced)");

    // Wait for the processors to catch up, showing the rebalancing as it happens.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_print = Instant::now();
    loop {
        let unique = tally.lock().unwrap_or_else(|e| e.into_inner()).seen.len();
        if unique >= total || Instant::now() > deadline {
            break;
        }
        if last_print.elapsed() > Duration::from_secs(1) {
            println!(
                "received {unique:>7}/{total}   A owns [{}]   B owns [{}]",
                owned(&a.owned_partitions()),
                owned(&b.owned_partitions())
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_secs = started.elapsed().as_secs_f64();
    // Let balancing settle to a fair split, then stop gracefully.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "final ownership: A [{}]   B [{}]",
        owned(&a.owned_partitions()),
        owned(&b.owned_partitions())
    );
    a.stop().await;
    b.stop().await;

    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    let unique = t.seen.len();
    let deliveries: u64 = t.seen.values().map(|&n| u64::from(n)).sum();
    let duplicates = deliveries - unique as u64;
    println!();
    println!("summary");
    println!("  events sent        {sent}");
    println!("  events received    {deliveries} ({unique} unique)");
    println!("  duplicates         {duplicates}");
    println!(
        "  by processor       A {}   B {}",
        t.by_processor.get("A").copied().unwrap_or(0),
        t.by_processor.get("B").copied().unwrap_or(0)
    );
    println!(
        "  end-to-end rate    {:.0} events/s ({all_secs:.2} s)",
        unique as f64 / all_secs
    );
    if unique != total {
        eprintln!("MISSING {} events", total - unique);
        std::process::exit(1);
    }
    Ok(())
}
