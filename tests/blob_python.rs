//! Our `EventProcessor` with `BlobPartitionManager` and the official Python client with its
//! `BlobCheckpointStore` (azure-eventhub-checkpointstoreblob 1.2.0) sharing one Azurite
//! container and our emulator: each resumes right after the other's checkpoints, and a mixed
//! fleet splits the partitions and hands them over when one side stops.
//!
//! Needs `EVENTHUBS_PYTHON_BLOB` (a python with azure-eventhub and the checkpoint store, see
//! .ci/run) and `EVENTHUBS_AZURITE`; skips without them, fails under `CI=true`.
#![cfg(all(feature = "blob", feature = "emulator"))]

mod python_support;
mod support;

use eventhubs::emulator::{EmulatorOptions, EntityConfig, HubConfig};
use eventhubs::processor::{
    BlobOptions, BlobPartitionManager, EventProcessor, EventProcessorOptions, PartitionContext,
    PartitionManager, PartitionProcessor, StorageConnectionString, StorageCredential,
};
use eventhubs::{EventData, EventHubClient, EventPosition, ProducerOptions};
use python_support::{scenario, Running, HUB};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: usize = 4;

struct Peers {
    python: String,
    /// The storage connection string with every part spelled out (the Python store does not
    /// take `UseDevelopmentStorage=true`).
    storage: String,
}

fn peers() -> Option<Peers> {
    let python = support::peer(
        "EVENTHUBS_PYTHON_BLOB",
        "official Python client with azure-eventhub-checkpointstoreblob",
    )?;
    let azurite = support::peer("EVENTHUBS_AZURITE", "Azurite (Blob Storage)")?;
    let cs = StorageConnectionString::parse(&azurite).expect("EVENTHUBS_AZURITE parses");
    let StorageCredential::SharedKey { account, key } = &cs.credential else {
        panic!("EVENTHUBS_AZURITE must carry an account key");
    };
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let storage = format!(
        "DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};BlobEndpoint={}/;",
        cs.blob_endpoint
    );
    Some(Peers { python, storage })
}

type Seen = Arc<Mutex<HashMap<(String, i64), u32>>>;

struct Recorder(Seen);

impl PartitionProcessor for Recorder {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        let Some(last) = events.last() else { return };
        {
            let mut seen = self.0.lock().unwrap();
            for e in &events {
                *seen
                    .entry((ctx.partition_id.clone(), e.sequence_number().unwrap_or(-1)))
                    .or_default() += 1;
            }
        }
        ctx.update_checkpoint_from_event(last).await.unwrap();
    }
}

fn options() -> EventProcessorOptions {
    EventProcessorOptions::default()
        .with_initial_position(EventPosition::earliest())
        .with_load_balancing_interval(Duration::from_millis(1000))
        .with_ownership_expiration(Duration::from_secs(6))
        .with_max_batch_size(100)
        .with_max_wait_time(Duration::from_millis(100))
}

async fn send(client: &EventHubClient, partitions: usize, per_partition: usize) {
    for p in 0..partitions {
        let producer = client
            .create_producer(ProducerOptions::partition(p.to_string()))
            .await
            .unwrap();
        let events: Vec<EventData> = (0..per_partition)
            .map(|i| EventData::new(format!("p{p} e{i}")))
            .collect();
        producer.send(events).await.unwrap();
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

struct Setup {
    run: Running,
    client: EventHubClient,
    peers: Peers,
    container: String,
}

impl Setup {
    fn new(peers: Peers, test: &str) -> Setup {
        Setup::with_partitions(peers, test, PARTITIONS as u32)
    }

    fn with_partitions(peers: Peers, test: &str, partitions: u32) -> Setup {
        let options = EmulatorOptions::ephemeral().with_entities(
            EntityConfig::default().with_hubs(vec![HubConfig::new(HUB.into(), partitions)
                .with_consumer_groups(vec!["$default".into()])]),
        );
        let run = Running::start_with(options);
        let client =
            EventHubClient::from_connection_string(&run.emulator().connection_string(), Some(HUB))
                .unwrap();
        let container = format!("{test}-{}", std::process::id());
        Setup {
            run,
            client,
            peers,
            container,
        }
    }

    fn store(&self) -> Arc<dyn PartitionManager> {
        let cs = std::env::var("EVENTHUBS_AZURITE").unwrap();
        Arc::new(
            self.run
                .runtime
                .block_on(BlobPartitionManager::connect(
                    &cs,
                    &self.container,
                    BlobOptions::default().with_create_container(true),
                ))
                .expect("Azurite reachable"),
        )
    }

    fn processor(
        &self,
        seen: &Seen,
    ) -> EventProcessor<impl Fn() -> Recorder + Send + Sync + 'static> {
        let s = seen.clone();
        let _guard = self.run.runtime.enter();
        EventProcessor::new(
            self.client.clone(),
            "$default",
            move || Recorder(s.clone()),
            self.store(),
            options(),
        )
        .unwrap()
    }

    fn python(&self, extra: &[&str]) -> Json {
        let mut args = vec![
            "--storage",
            &self.peers.storage,
            "--container",
            &self.container,
            "--namespace",
            self.client.host(),
        ];
        args.extend_from_slice(extra);
        scenario(
            &self.peers.python,
            "blobstore.py",
            self.run.emulator(),
            &args,
        )
    }

    fn send(&self, per_partition: usize) {
        self.send_to(PARTITIONS, per_partition);
    }

    fn send_to(&self, partitions: usize, per_partition: usize) {
        self.run
            .runtime
            .block_on(send(&self.client, partitions, per_partition));
    }
}

/// (partition, sequence numbers) the Python client reported.
fn python_events(r: &Json) -> Vec<(String, Vec<i64>)> {
    r["events"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(p, v)| {
                    let seqs = v
                        .as_array()
                        .map(|a| a.iter().filter_map(Json::as_i64).collect())
                        .unwrap_or_default();
                    (p.clone(), seqs)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn our_processor_resumes_after_python_checkpoints() {
    let Some(peers) = peers() else { return };
    let s = Setup::new(peers, "py-to-rust");
    let _ = s.store(); // creates the container (the Python store does not)
    s.send(40);
    let r = s.python(&["--expect", "160"]);
    assert_eq!(r["total"], 160, "python read every event: {r}");
    s.send(10);
    let seen: Seen = Arc::default();
    let p = s.processor(&seen);
    {
        let _g = s.run.runtime.enter();
        p.start();
    }
    assert!(
        wait_until(Duration::from_secs(60), || seen.lock().unwrap().len() >= 40),
        "our processor got {} events",
        seen.lock().unwrap().len()
    );
    s.run.runtime.block_on(p.stop());
    let seen = seen.lock().unwrap();
    for p in 0..PARTITIONS {
        let mut got: Vec<i64> = seen
            .keys()
            .filter(|(part, _)| *part == p.to_string())
            .map(|(_, s)| *s)
            .collect();
        got.sort();
        assert_eq!(
            got,
            (40..50).collect::<Vec<i64>>(),
            "partition {p} resumed right after Python's checkpoint"
        );
    }
    assert!(seen.values().all(|n| *n == 1));
    println!("our processor resumed after Python's BlobCheckpointStore checkpoints on Azurite");
}

#[test]
fn python_resumes_after_our_checkpoints() {
    let Some(peers) = peers() else { return };
    let s = Setup::new(peers, "rust-to-py");
    s.send(40);
    let seen: Seen = Arc::default();
    let p = s.processor(&seen);
    {
        let _g = s.run.runtime.enter();
        p.start();
    }
    assert!(
        wait_until(Duration::from_secs(60), || seen.lock().unwrap().len()
            == 160),
        "our processor got {} events",
        seen.lock().unwrap().len()
    );
    s.run.runtime.block_on(p.stop());
    s.send(10);
    let r = s.python(&["--expect", "40"]);
    let events = python_events(&r);
    assert_eq!(events.len(), PARTITIONS, "{r}");
    for (p, seqs) in events {
        assert_eq!(
            seqs,
            (40..50).collect::<Vec<i64>>(),
            "Python resumed partition {p} right after our checkpoint"
        );
    }
    println!("Python's BlobCheckpointStore resumed after our checkpoints on Azurite");
}

/// Owners of each partition in the shared store.
fn owners(s: &Setup, store: &dyn PartitionManager) -> HashMap<String, String> {
    s.run
        .runtime
        .block_on(store.list_ownership(s.client.host(), HUB, "$default"))
        .unwrap()
        .into_iter()
        .map(|o| (o.partition_id, o.owner_id))
        .collect()
}

/// A mixed fleet on 8 partitions: one Python consumer client with its BlobCheckpointStore and
/// one of our processors split 4/4; every event is processed, duplicates only in partitions
/// that changed hands and never more than a batch; when Python stops, ours takes all 8 within
/// one expiration interval (and the other way round in the second phase).
#[test]
fn a_mixed_fleet_splits_and_hands_over() {
    let Some(peers) = peers() else { return };
    const N: usize = 8;
    let s = Setup::with_partitions(peers, "mixed", N as u32);
    let store = s.store();
    s.send_to(N, 100);
    let seen: Seen = Arc::default();
    let ours = s.processor(&seen);
    let expiration = Duration::from_secs(6);
    let (python, split, takeover) = std::thread::scope(|scope| {
        let py = scope.spawn(|| s.python(&["--run", "20"]));
        {
            let _g = s.run.runtime.enter();
            ours.start();
        }
        let split = wait_until(Duration::from_secs(18), || {
            let o = owners(&s, store.as_ref());
            let mine = o.values().filter(|v| *v == ours.owner_id()).count();
            let theirs = o
                .values()
                .filter(|v| !v.is_empty() && *v != ours.owner_id())
                .count();
            mine == 4 && theirs == 4
        });
        s.send_to(N, 50);
        let python = py.join().expect("python thread");
        // Python released its partitions when it closed: ours takes them all.
        let t = Instant::now();
        let all = wait_until(expiration, || ours.owned_partitions().len() == N);
        (python, split, all.then(|| t.elapsed()))
    });
    assert!(
        split,
        "the fleet split 4/4: {:?}",
        owners(&s, store.as_ref())
    );
    assert_eq!(
        python["owned_at_stop"].as_array().map(Vec::len),
        Some(4),
        "{python}"
    );
    let takeover = takeover.expect("ours took every partition within one expiration interval");
    s.send_to(N, 20);
    let total = N * 170;
    let py_events = python_events(&python);
    let all_seen = || {
        let mut all: HashMap<(String, i64), u32> = seen.lock().unwrap().clone();
        for (p, seqs) in &py_events {
            for q in seqs {
                *all.entry((p.clone(), *q)).or_default() += 1;
            }
        }
        all
    };
    assert!(
        wait_until(Duration::from_secs(30), || all_seen().len() == total),
        "every event processed: {} of {total}",
        all_seen().len()
    );
    let python_parts: Vec<&String> = py_events.iter().map(|(p, _)| p).collect();
    let all = all_seen();
    let dups: Vec<_> = all
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    for (p, _) in &dups {
        assert!(
            python_parts.contains(&p),
            "a duplicate only where a partition changed hands: {p}"
        );
    }
    for p in 0..N {
        let n = dups.iter().filter(|(q, _)| *q == p.to_string()).count();
        assert!(
            n <= 100,
            "partition {p}: {n} duplicates, more than one batch since a checkpoint"
        );
    }
    // Phase two: a new Python client joins, then ours stops; Python ends with all 8.
    let python = std::thread::scope(|scope| {
        let py = scope.spawn(|| s.python(&["--run", "20"]));
        let joined = wait_until(Duration::from_secs(12), || {
            owners(&s, store.as_ref())
                .values()
                .filter(|v| !v.is_empty() && *v != ours.owner_id())
                .count()
                == 4
        });
        assert!(joined, "python joined: {:?}", owners(&s, store.as_ref()));
        s.run.runtime.block_on(ours.stop());
        py.join().expect("python thread")
    });
    assert_eq!(
        python["owned_at_stop"].as_array().map(Vec::len),
        Some(N),
        "python took every partition after ours stopped: {python}"
    );
    println!(
        "mixed fleet with Python's BlobCheckpointStore on Azurite: 4/4, {total} events, {} duplicates, takeover in {:.1} s",
        dups.len(),
        takeover.as_secs_f64()
    );
}
