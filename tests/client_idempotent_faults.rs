//! Exactly-once through faults: N events of 100 B to 4 partitions through a proxy that cuts
//! every connection every 1-3 s (sometimes mid-frame) or stalls it 5 s. With the idempotent
//! producer every event is read back once, in order per partition; the same run without
//! idempotence prints how many duplicates the resends made.
//!
//! N is `IDEMPOTENT_SOAK_EVENTS` (default 200 000); `scripts/idempotent_soak.sh` runs 1 000 000.

mod client_common;
mod support;

use client_common::*;
use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::{BatchOptions, ConsumerOptions, EventData, EventPosition, ProducerOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{emulator_with, Proxy};

const PARTITIONS: usize = 4;

fn total_events() -> usize {
    std::env::var("IDEMPOTENT_SOAK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
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

/// Breaks the proxy's connections until `stop`: first within 250 ms, then every 1-3 s a cut, a cut mid-frame, or a
/// 5-second stall. Returns how many faults it made.
async fn chaos(proxy: Arc<Proxy>, stop: Arc<AtomicBool>) -> usize {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut faults = 0;
    // The first fault comes early, so that a small N still meets one.
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        // xorshift: a fixed, reproducible fault pattern.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let wait = if std::mem::take(&mut first) {
            Duration::from_millis(50 + x % 200)
        } else {
            Duration::from_millis(1000 + x % 2000)
        };
        let mut slept = Duration::ZERO;
        while slept < wait && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            slept += Duration::from_millis(50);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match (x >> 32) % 10 {
            0..=5 => {
                proxy.kill_all();
            }
            6..=8 => proxy.cut_mid_write(),
            _ => proxy.stall(Duration::from_secs(5)),
        }
        faults += 1;
    }
    faults
}

/// Sends `per_partition` events to each partition through the faulty proxy, in full
/// batches, and returns how many faults happened.
async fn publish(em: &Emulator, idempotent: bool, per_partition: usize) -> usize {
    let proxy = Arc::new(Proxy::start(em.local_addr()).await);
    let client = builder(em)
        .custom_endpoint("127.0.0.1", proxy.port)
        .retry(
            eventhubs::RetryOptions::default()
                .with_max_retries(1000)
                .with_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(200)),
        )
        .operation_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let breaker = tokio::spawn(chaos(proxy.clone(), stop.clone()));
    let mut senders = tokio::task::JoinSet::new();
    for p in 0..PARTITIONS {
        let client = client.clone();
        senders.spawn(async move {
            let options = ProducerOptions::partition(p.to_string())
                .with_enable_idempotent_partitions(idempotent);
            let producer = client.create_producer(options).await.unwrap();
            let mut i = 0;
            while i < per_partition {
                let mut batch = producer
                    .create_batch(BatchOptions::default())
                    .await
                    .unwrap();
                while i < per_partition {
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
    stop.store(true, Ordering::Relaxed);
    breaker.await.unwrap()
}

/// Reads each partition back directly and returns (per partition, the indices in order).
async fn read_back(em: &Emulator) -> Vec<Vec<usize>> {
    let c = client(em);
    let mut all = Vec::new();
    for p in 0..PARTITIONS {
        let id = p.to_string();
        let info = c.get_partition_properties(&id).await.unwrap();
        let n = (info.last_enqueued_sequence_number + 1) as usize;
        let mut consumer = c
            .create_consumer(
                "$default",
                &id,
                EventPosition::earliest(),
                ConsumerOptions::default().with_prefetch(2000),
            )
            .await
            .unwrap();
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let batch = consumer
                .receive(2000, Duration::from_secs(10))
                .await
                .unwrap();
            assert!(!batch.is_empty(), "partition {p} stalled at {}", got.len());
            got.extend(batch.iter().map(index_of));
        }
        all.push(got);
    }
    all
}

fn soak_emulator() -> EmulatorOptions {
    EmulatorOptions::ephemeral()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_publishing_through_faults_is_exactly_once() {
    let per_partition = total_events() / PARTITIONS;
    let em = emulator_with(soak_emulator()).await;
    let faults = publish(&em, true, per_partition).await;
    let read = read_back(&em).await;
    let mut lost = 0;
    let mut duplicates = 0;
    for (p, got) in read.iter().enumerate() {
        let want: Vec<usize> = (0..per_partition).collect();
        if got != &want {
            let unique: std::collections::BTreeSet<_> = got.iter().collect();
            duplicates += got.len() - unique.len();
            lost += per_partition - unique.len();
            panic!(
                "partition {p}: {} read for {per_partition} sent ({lost} lost, {duplicates} duplicates, or out of order)",
                got.len()
            );
        }
    }
    println!(
        "idempotent: {} events, {faults} faults: 0 lost, 0 duplicates, in order",
        per_partition * PARTITIONS
    );
    assert!(faults > 0, "no fault happened: the run proves nothing");

    // The same without idempotence: nothing lost, but resends may duplicate.
    let em = emulator_with(soak_emulator()).await;
    let faults = publish(&em, false, per_partition).await;
    let read = read_back(&em).await;
    let mut duplicates = 0;
    for (p, got) in read.iter().enumerate() {
        let unique: std::collections::BTreeSet<_> = got.iter().collect();
        assert_eq!(unique.len(), per_partition, "partition {p} lost events");
        duplicates += got.len() - unique.len();
    }
    println!(
        "without idempotence: {} events, {faults} faults: {duplicates} duplicates",
        per_partition * PARTITIONS
    );
}
