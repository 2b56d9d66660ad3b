//! Exactly-once through faults: N events of 100 B to 4 partitions through a proxy that cuts
//! every connection every 1-3 s (sometimes mid-frame) or stalls it 5 s. With the idempotent
//! producer every event is read back once, in order per partition; the same run without
//! idempotence prints how many duplicates the resends made.
//!
//! The buffered producer with idempotent partitions goes through the same faults: every
//! keyed event delivered once, in order per key.
//!
//! N is `IDEMPOTENT_SOAK_EVENTS` (default 200 000); `scripts/idempotent_soak.sh` runs 1 000 000.
//! The buffered run takes `BUFFERED_SOAK_EVENTS` (default 40 000). Unpaced, a run ends within
//! seconds and so meets few faults; `IDEMPOTENT_SOAK_SECONDS` spreads each run's events evenly
//! over that many seconds, so that faults every 1-3 s land on sends in flight all along.

mod client_common;
mod support;

use client_common::*;
use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::wire::partition_key::partition_index;
use eventhubs::{
    BatchOptions, BatchOutcome, BufferedProducerOptions, EnqueueOptions, EventData, EventHubClient,
    ProducerOptions,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{emulator_with, Chaos, Proxy};

const PARTITIONS: usize = 4;

fn events_from(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn total_events() -> usize {
    events_from("IDEMPOTENT_SOAK_EVENTS", 200_000)
}

/// How long each run should take, if paced (`IDEMPOTENT_SOAK_SECONDS`).
fn pace() -> Option<Duration> {
    Some(events_from("IDEMPOTENT_SOAK_SECONDS", 0))
        .filter(|&s| s > 0)
        .map(|s| Duration::from_secs(s as u64))
}

/// How many of `total` events are due `since` the start of a run paced over `over`: all of
/// them, unpaced.
fn due(since: std::time::Instant, over: Option<Duration>, total: usize) -> usize {
    match over {
        None => total,
        Some(d) => {
            let share = since.elapsed().as_secs_f64() / d.as_secs_f64();
            ((share * total as f64).ceil() as usize).min(total)
        }
    }
}

/// Waits until event `i` of `total` is due in a paced run (at once, unpaced).
async fn until_due(i: usize, since: std::time::Instant, over: Option<Duration>, total: usize) {
    while due(since, over, total) <= i {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A 100-byte event naming its partition and index.
fn event(partition: usize, i: usize) -> EventData {
    let mut text = format!("{partition}:{i:010}:");
    text.extend(std::iter::repeat_n('x', 100 - text.len()));
    EventData::from(text)
}

fn index_of(e: &EventData) -> usize {
    let text = e.body_as_str().expect("utf-8 body");
    text.split(':')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("an index")
}

/// A client that reaches `em` through `proxy`, retrying long enough to outlast any fault.
fn faulty_client(em: &Emulator, proxy: &Proxy) -> EventHubClient {
    builder(em)
        .custom_endpoint("127.0.0.1", proxy.port)
        .retry(
            eventhubs::RetryOptions::default()
                .with_max_retries(1000)
                .with_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(200)),
        )
        .operation_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends `per_partition` events to each partition through the faulty proxy, in full
/// batches, and returns how many faults happened.
async fn publish(em: &Emulator, idempotent: bool, per_partition: usize) -> usize {
    let proxy = Arc::new(Proxy::start(em.local_addr()).await);
    let client = faulty_client(em, &proxy);
    let chaos = Arc::new(Chaos::start(proxy.clone()));
    let mut senders = tokio::task::JoinSet::new();
    for p in 0..PARTITIONS {
        let client = client.clone();
        let chaos = chaos.clone();
        senders.spawn(async move {
            let options = ProducerOptions::partition(p.to_string())
                .with_enable_idempotent_partitions(idempotent);
            let producer = client.create_producer(options).await.unwrap();
            let (over, since) = (pace(), std::time::Instant::now());
            let half = per_partition / 2;
            let mut i = 0;
            while i < per_partition {
                if i == half {
                    // The second half goes after a fault: a small run would otherwise end
                    // before the first one.
                    chaos.first_fault().await;
                }
                // Paced, a batch takes what is due: small batches, one after another.
                until_due(i, since, over, per_partition).await;
                let end = due(since, over, per_partition).min(if i < half {
                    half
                } else {
                    per_partition
                });
                let mut batch = producer
                    .create_batch(BatchOptions::default())
                    .await
                    .unwrap();
                while i < end {
                    if batch.try_add(event(p, i)).is_err() {
                        break;
                    }
                    i += 1;
                }
                producer
                    .send(batch)
                    .await
                    .expect("a send fails despite retries");
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r.unwrap();
    }
    let Ok(chaos) = Arc::try_unwrap(chaos) else {
        panic!("a sender still holds the chaos");
    };
    chaos.stop().await
}

/// Reads each partition back directly (not through the proxy): per partition, its events in
/// order.
async fn read_events(em: &Emulator) -> Vec<Vec<EventData>> {
    let c = client(em);
    let mut all = Vec::new();
    for p in 0..PARTITIONS {
        all.push(read_partition(&c, &p.to_string()).await);
    }
    all
}

/// Per partition, the indices of its events in order.
async fn read_back(em: &Emulator) -> Vec<Vec<usize>> {
    read_events(em)
        .await
        .iter()
        .map(|events| events.iter().map(index_of).collect())
        .collect()
}

fn soak_emulator() -> EmulatorOptions {
    EmulatorOptions::ephemeral()
}

/// One publishing run on a fresh emulator (dropped at the end, so that two runs of a
/// million events do not share the memory): the faults it met, what was read back per
/// partition, and how long publishing took.
async fn soak_run(idempotent: bool, per_partition: usize) -> (usize, Vec<Vec<usize>>, Duration) {
    let em = emulator_with(soak_emulator()).await;
    let started = std::time::Instant::now();
    let faults = publish(&em, idempotent, per_partition).await;
    let took = started.elapsed();
    (faults, read_back(&em).await, took)
}

/// Events per second, for the report.
fn rate(events: usize, took: Duration) -> u64 {
    (events as f64 / took.as_secs_f64().max(1e-3)) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_publishing_through_faults_is_exactly_once() {
    let per_partition = total_events() / PARTITIONS;
    let total = per_partition * PARTITIONS;
    let (faults, read, took) = soak_run(true, per_partition).await;
    for (p, got) in read.iter().enumerate() {
        if got.iter().copied().ne(0..per_partition) {
            let unique: BTreeSet<_> = got.iter().collect();
            panic!(
                "partition {p}: {} read for {per_partition} sent ({} lost, {} duplicates, or out of order)",
                got.len(),
                per_partition.saturating_sub(unique.len()),
                got.len() - unique.len(),
            );
        }
    }
    println!(
        "idempotent: {total} events, {faults} faults in {:.1} s ({} events/s): 0 lost, 0 duplicates, in order",
        took.as_secs_f64(),
        rate(total, took)
    );
    assert!(faults > 0, "no fault happened: the run proves nothing");

    // The same without idempotence: nothing lost, but resends may duplicate.
    let (faults, read, took) = soak_run(false, per_partition).await;
    let mut duplicates = 0;
    for (p, got) in read.iter().enumerate() {
        let unique: BTreeSet<_> = got.iter().collect();
        assert_eq!(unique.len(), per_partition, "partition {p} lost events");
        duplicates += got.len() - unique.len();
    }
    println!(
        "without idempotence: {total} events, {faults} faults in {:.1} s ({} events/s): {duplicates} duplicates",
        took.as_secs_f64(),
        rate(total, took)
    );
}

const KEYS: usize = 97;

/// A 100-byte event of key `i % KEYS` naming its index.
fn keyed_event(i: usize) -> (String, EventData) {
    let key = format!("key-{}", i % KEYS);
    let mut text = format!("{key}:{i:010}:");
    text.extend(std::iter::repeat_n('x', 100 - text.len()));
    (key, EventData::from(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_idempotent_publishing_through_faults_is_exactly_once_in_key_order() {
    let n = events_from("BUFFERED_SOAK_EVENTS", 40_000);
    let em = emulator_with(soak_emulator()).await;
    let proxy = Arc::new(Proxy::start(em.local_addr()).await);
    let client = faulty_client(&em, &proxy);
    // Delivered indices and failed ones (with the error), from the outcome handler.
    type Tally = (Vec<usize>, Vec<(usize, String)>);
    let tally: Arc<Mutex<Tally>> = Default::default();
    let t = tally.clone();
    let options = BufferedProducerOptions::default()
        .with_producer_options(ProducerOptions::default().with_enable_idempotent_partitions(true))
        // Asked for, but an idempotent producer keeps one send in flight per partition.
        .with_max_concurrent_sends_per_partition(4)
        // Room for full (1 MB) batches, so that whole large batches are resent.
        .with_max_buffered_events_per_partition(20_000)
        .with_on_outcome(move |o: BatchOutcome| {
            let mut t = t.lock().unwrap();
            match &o.error {
                None => t.0.extend(o.events.iter().map(index_of)),
                Some(e) => {
                    t.1.extend(o.events.iter().map(|ev| (index_of(ev), e.to_string())))
                }
            }
        });
    let chaos = Chaos::start(proxy.clone());
    let started = std::time::Instant::now();
    let producer = client.create_buffered_producer(options).await.unwrap();
    let over = pace();
    for i in 0..n {
        if i == n / 2 {
            // A small run would otherwise end before the first fault.
            chaos.first_fault().await;
        }
        until_due(i, started, over, n).await;
        let (key, e) = keyed_event(i);
        producer
            .enqueue(e, &EnqueueOptions::default().with_partition_key(key))
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    let took = started.elapsed();
    let faults = chaos.stop().await;
    {
        let t = tally.lock().unwrap();
        assert!(
            t.1.is_empty(),
            "{} events failed: {:?}",
            t.1.len(),
            t.1.first()
        );
        let reported: BTreeSet<_> = t.0.iter().collect();
        assert_eq!(
            (t.0.len(), reported.len()),
            (n, n),
            "every event reported once"
        );
    }

    let read = read_events(&em).await;
    let mut seen = BTreeSet::new();
    let mut last_of_key: HashMap<String, usize> = HashMap::new();
    for (p, events) in read.iter().enumerate() {
        for e in events {
            let i = index_of(e);
            assert!(seen.insert(i), "event {i} stored twice");
            let key = e.partition_key().expect("the key travels with the event");
            assert_eq!(key, keyed_event(i).0);
            assert_eq!(partition_index(key, PARTITIONS as u32) as usize, p);
            if let Some(prev) = last_of_key.insert(key.to_owned(), i) {
                assert!(prev < i, "{key}: event {i} stored after {prev}");
            }
        }
    }
    assert_eq!(seen.len(), n, "every event stored");
    println!(
        "buffered idempotent: {n} events, {faults} faults in {:.1} s ({} events/s): 0 lost, 0 duplicates, key order kept",
        took.as_secs_f64(),
        rate(n, took)
    );
    assert!(faults > 0, "no fault happened: the run proves nothing");
}
