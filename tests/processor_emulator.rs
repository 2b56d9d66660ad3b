//! The event processor against the emulator over real sockets: convergence without flapping,
//! take-over after a crash, graceful hand-over without duplicates, restart from checkpoints,
//! and checkpoints written in the background (coalesced, flushed at stop, failures kept, never
//! written over a new owner's once the partition is lost).

mod support;

use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, HubConfig};
use eventhubs::processor::{
    Checkpoint, EventProcessor, EventProcessorOptions, FilePartitionManager,
    InMemoryPartitionManager, Ownership, PartitionContext, PartitionManager, PartitionManagerError,
    PartitionProcessor, StoreFuture,
};
use eventhubs::{ErrorKind, EventData, EventHubClient, ProducerOptions};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const HUB: &str = "eh8";

async fn emulator(partitions: u32) -> Emulator {
    support::emulator_with(
        EmulatorOptions::ephemeral().with_entities(
            EntityConfig::default().with_hubs(vec![HubConfig::new(HUB.into(), partitions)
                .with_consumer_groups(vec!["$default".into()])]),
        ),
    )
    .await
}

fn client(e: &Emulator) -> EventHubClient {
    EventHubClient::from_connection_string(&e.connection_string(), Some(HUB)).unwrap()
}

/// How long a claim lasts in [`fast_options`].
const EXPIRATION: Duration = Duration::from_millis(1500);

fn fast_options() -> EventProcessorOptions {
    EventProcessorOptions::default()
        .with_load_balancing_interval(Duration::from_millis(100))
        .with_ownership_expiration(EXPIRATION)
        .with_max_batch_size(50)
        .with_max_wait_time(Duration::from_millis(100))
        .with_prefetch(100)
}

/// Every (partition, sequence number) any processor was handed, with counts.
type Seen = Arc<Mutex<HashMap<(String, i64), u32>>>;

struct Recorder {
    seen: Seen,
    /// Slows processing down so a crash or stop lands mid-stream.
    delay: Duration,
}

impl PartitionProcessor for Recorder {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        tokio::time::sleep(self.delay).await;
        {
            let mut seen = self.seen.lock().unwrap();
            for e in &events {
                *seen
                    .entry((ctx.partition_id.clone(), e.sequence_number().unwrap()))
                    .or_default() += 1;
            }
        }
        let done = ctx
            .update_checkpoint_from_event(events.last().unwrap())
            .await;
        // A partition taken over while this batch ran refuses the checkpoint, as it must.
        if let Err(e) = done {
            assert_eq!(e.kind(), ErrorKind::OwnershipLost, "{e}");
        }
    }
}

fn processor(
    client: &EventHubClient,
    manager: Arc<dyn PartitionManager>,
    seen: &Seen,
    delay: Duration,
    options: EventProcessorOptions,
) -> EventProcessor<impl Fn() -> Recorder + Send + Sync + 'static> {
    let seen = seen.clone();
    EventProcessor::new(
        client.clone(),
        "$default",
        move || Recorder {
            seen: seen.clone(),
            delay,
        },
        manager,
        options,
    )
    .unwrap()
}

async fn send(client: &EventHubClient, partitions: u32, per_partition: usize) {
    for p in 0..partitions {
        let producer = client
            .create_producer(ProducerOptions::partition(p.to_string()))
            .await
            .unwrap();
        let events: Vec<EventData> = (0..per_partition)
            .map(|i| EventData::new(format!("p{p} e{i}")))
            .collect();
        for chunk in events.chunks(100) {
            producer.send(chunk.to_vec()).await.unwrap();
        }
    }
}

async fn ownership(manager: &dyn PartitionManager, client: &EventHubClient) -> Vec<Ownership> {
    manager
        .list_ownership(client.host(), HUB, "$default")
        .await
        .unwrap()
}

fn counts(records: &[Ownership], owners: &[&str]) -> Vec<usize> {
    let mut c: Vec<usize> = owners
        .iter()
        .map(|o| records.iter().filter(|r| r.owner_id == *o).count())
        .collect();
    c.sort();
    c
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_three_processors_converge_to_3_3_2_and_stay() {
    let emu = emulator(8).await;
    let client = client(&emu);
    let manager: Arc<dyn PartitionManager> = Arc::new(InMemoryPartitionManager::new());
    let seen: Seen = Arc::default();
    let a = processor(
        &client,
        manager.clone(),
        &seen,
        Duration::ZERO,
        fast_options(),
    );
    a.start();
    assert!(
        wait_until(Duration::from_secs(10), || a.owned_partitions().len() == 8).await,
        "a lone processor claims every partition"
    );
    let b = processor(
        &client,
        manager.clone(),
        &seen,
        Duration::ZERO,
        fast_options(),
    );
    let c = processor(
        &client,
        manager.clone(),
        &seen,
        Duration::ZERO,
        fast_options(),
    );
    b.start();
    c.start();
    let ids = [
        a.owner_id().to_owned(),
        b.owner_id().to_owned(),
        c.owner_id().to_owned(),
    ];
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    // Converge within a bounded number of cycles (interval 100 ms, ×1.3 jitter at most).
    let mut converged_at = None;
    for cycle in 0..60 {
        let records = ownership(manager.as_ref(), &client).await;
        if counts(&records, &ids) == vec![2, 3, 3] {
            converged_at = Some(cycle);
            break;
        }
        tokio::time::sleep(Duration::from_millis(130)).await;
    }
    let converged_at = converged_at.expect("did not reach 3/3/2 within 60 cycles");
    // Then no partition changes hands for 50 cycles.
    let owners_of = |records: &[Ownership]| -> BTreeMap<String, String> {
        records
            .iter()
            .map(|r| (r.partition_id.clone(), r.owner_id.clone()))
            .collect()
    };
    let settled = owners_of(&ownership(manager.as_ref(), &client).await);
    for cycle in 0..50 {
        tokio::time::sleep(Duration::from_millis(130)).await;
        let now = owners_of(&ownership(manager.as_ref(), &client).await);
        assert_eq!(now, settled, "ownership flapped at stable cycle {cycle}");
    }
    println!("converged after {converged_at} observation cycles; stable for 50");
    for p in [&a, &b, &c] {
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_processor_is_taken_over_with_duplicates_only_after_checkpoints() {
    let emu = emulator(4).await;
    let client = client(&emu);
    send(&client, 4, 400).await;
    let manager: Arc<dyn PartitionManager> = Arc::new(InMemoryPartitionManager::new());
    let seen: Seen = Arc::default();
    let options = fast_options().with_strategy(eventhubs::processor::Strategy::Greedy);
    let a = processor(
        &client,
        manager.clone(),
        &seen,
        Duration::from_millis(30),
        options.clone(),
    );
    a.start();
    assert!(wait_until(Duration::from_secs(10), || seen.lock().unwrap().len() > 200).await);
    // Crash: no stop, no close, no release.
    drop(a);
    let checkpoints_at_crash: HashMap<String, i64> = manager
        .list_checkpoints(client.host(), HUB, "$default")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, c.sequence_number.unwrap()))
        .collect();
    let seen_at_crash = seen.lock().unwrap().clone();
    // A's claims expire from their last renewal, which a loaded machine may have delayed well
    // before the crash; the earliest of them is when B may first take a partition.
    let claims = manager
        .list_ownership(client.host(), HUB, "$default")
        .await
        .unwrap();
    assert_eq!(claims.len(), 4, "A owned every partition: {claims:?}");
    let first_expiry = claims.iter().map(|o| o.last_modified_time).min().unwrap() + EXPIRATION;
    let b = processor(&client, manager.clone(), &seen, Duration::ZERO, options);
    b.start();
    assert!(
        wait_until(Duration::from_secs(20), || seen.lock().unwrap().len()
            == 1600)
        .await,
        "every event processed at least once"
    );
    // B needs every partition to finish, so finishing before A's first claim expired means
    // it took one that was still A's.
    assert!(
        SystemTime::now() >= first_expiry,
        "partitions are taken over only once the crashed owner's ownership expires"
    );
    let seen = seen.lock().unwrap().clone();
    for ((p, seq), n) in seen.iter() {
        if *n > 1 {
            let cp = checkpoints_at_crash.get(p).copied().unwrap_or(-1);
            assert!(
                *seq > cp,
                "partition {p} event {seq} repeated but was checkpointed ({cp})"
            );
            assert!(seen_at_crash.contains_key(&(p.clone(), *seq)));
        }
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_over_at_once_without_duplicates() {
    let emu = emulator(4).await;
    let client = client(&emu);
    send(&client, 4, 400).await;
    let manager: Arc<dyn PartitionManager> = Arc::new(InMemoryPartitionManager::new());
    let seen: Seen = Arc::default();
    let options = fast_options()
        .with_strategy(eventhubs::processor::Strategy::Greedy)
        .with_ownership_expiration(Duration::from_secs(30));
    let a = processor(
        &client,
        manager.clone(),
        &seen,
        Duration::from_millis(30),
        options.clone(),
    );
    a.start();
    assert!(wait_until(Duration::from_secs(10), || seen.lock().unwrap().len() > 200).await);
    // B joins as A stops (joining earlier would make B steal partitions mid-batch, which is
    // the at-least-once rebalancing case, covered by the crash test).
    let b = processor(&client, manager.clone(), &seen, Duration::ZERO, options);
    let stopped = Instant::now();
    a.stop().await;
    b.start();
    // Released ownership is claimable at once: well before the 30 s expiration.
    assert!(
        wait_until(Duration::from_secs(5), || b.owned_partitions().len() == 4).await,
        "B takes every partition right after A's graceful stop"
    );
    assert!(stopped.elapsed() < Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(20), || seen.lock().unwrap().len()
            == 1600)
        .await
    );
    let dupes: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        dupes.is_empty(),
        "duplicates after a graceful hand-over: {dupes:?}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_processor_resumes_from_file_checkpoints() {
    let emu = emulator(4).await;
    let client = client(&emu);
    let dir = std::env::temp_dir().join(format!("eventhubs-proc-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    send(&client, 4, 100).await;
    let seen: Seen = Arc::default();
    {
        let manager: Arc<dyn PartitionManager> = Arc::new(FilePartitionManager::new(&dir).unwrap());
        let p = processor(&client, manager, &seen, Duration::ZERO, fast_options());
        p.start();
        assert!(
            wait_until(Duration::from_secs(15), || seen.lock().unwrap().len()
                == 400)
            .await
        );
        p.stop().await;
    }
    send(&client, 4, 25).await;
    let after: Seen = Arc::default();
    // A new manager over the same directory: what a restarted process would open.
    let manager: Arc<dyn PartitionManager> = Arc::new(FilePartitionManager::new(&dir).unwrap());
    let p = processor(&client, manager, &after, Duration::ZERO, fast_options());
    p.start();
    assert!(
        wait_until(Duration::from_secs(15), || after.lock().unwrap().len()
            == 100)
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = after.lock().unwrap().clone();
    assert_eq!(
        after.len(),
        100,
        "only the new events, not the partition start"
    );
    assert!(after.keys().all(|(_, seq)| *seq >= 100));
    assert!(after.values().all(|n| *n == 1));
    p.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_expiration_not_longer_than_the_interval_is_refused_at_construction() {
    let emu = emulator(1).await;
    let client = client(&emu);
    let seen: Seen = Arc::default();
    for (interval, expiration) in [(10, 10), (10, 5)] {
        let r = EventProcessor::new(
            client.clone(),
            "$default",
            {
                let seen = seen.clone();
                move || Recorder {
                    seen: seen.clone(),
                    delay: Duration::ZERO,
                }
            },
            Arc::new(InMemoryPartitionManager::new()),
            EventProcessorOptions::default()
                .with_load_balancing_interval(Duration::from_secs(interval))
                .with_ownership_expiration(Duration::from_secs(expiration)),
        );
        let e = r.expect_err("refused");
        assert_eq!(e.kind(), eventhubs::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("expiration"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_with_default_options_it_owns_every_partition_after_its_first_cycle() {
    let emu = emulator(4).await;
    let client = client(&emu);
    let manager: Arc<dyn PartitionManager> = Arc::new(InMemoryPartitionManager::new());
    let seen: Seen = Arc::default();
    let p = processor(
        &client,
        manager.clone(),
        &seen,
        Duration::ZERO,
        EventProcessorOptions::default(),
    );
    let started = Instant::now();
    p.start();
    // A hang guard only: the first cycle runs at start, the next one 10 s later.
    assert!(
        wait_until(Duration::from_secs(8), || p.balancing_cycles() >= 1).await,
        "the first balancing cycle runs at start"
    );
    assert_eq!(
        p.owned_partitions(),
        vec!["0", "1", "2", "3"],
        "after its first cycle (cycles so far: {})",
        p.balancing_cycles()
    );
    println!(
        "owned 4/4 after {} cycle(s), {:?} after start",
        p.balancing_cycles(),
        started.elapsed()
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_stepped_together_reach_3_3_2_within_three_cycles_and_stay() {
    let emu = emulator(8).await;
    let client = client(&emu);
    let manager: Arc<dyn PartitionManager> = Arc::new(InMemoryPartitionManager::new());
    let seen: Seen = Arc::default();
    let procs: Vec<_> = (0..3)
        .map(|_| {
            processor(
                &client,
                manager.clone(),
                &seen,
                Duration::ZERO,
                EventProcessorOptions::default(),
            )
        })
        .collect();
    let ids: Vec<String> = procs.iter().map(|p| p.owner_id().to_owned()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut settled = None;
    for cycle in 1..=8 {
        for p in &procs {
            p.run_balancing_cycle().await.unwrap();
        }
        let records = ownership(manager.as_ref(), &client).await;
        let running: Vec<usize> = procs.iter().map(|p| p.owned_partitions().len()).collect();
        if cycle < 3 {
            continue;
        }
        assert_eq!(
            counts(&records, &ids),
            vec![2, 3, 3],
            "records after cycle {cycle}"
        );
        // A processor learns that a partition was taken at its own next cycle.
        if cycle > 3 {
            let mut sorted = running.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                vec![2, 3, 3],
                "consumers running after cycle {cycle}"
            );
        }
        let owners: BTreeMap<String, String> = records
            .iter()
            .map(|r| (r.partition_id.clone(), r.owner_id.clone()))
            .collect();
        match &settled {
            None => settled = Some(owners),
            Some(s) => assert_eq!(&owners, s, "a partition moved at cycle {cycle}"),
        }
    }
    for p in &procs {
        assert_eq!(p.balancing_cycles(), 8);
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_started_together_reach_3_3_2_within_three_cycles_and_stay() {
    let emu = emulator(8).await;
    let client = client(&emu);
    let manager: Arc<dyn PartitionManager> = Arc::new(InMemoryPartitionManager::new());
    let seen: Seen = Arc::default();
    let procs: Vec<_> = (0..3)
        .map(|_| {
            processor(
                &client,
                manager.clone(),
                &seen,
                Duration::ZERO,
                fast_options(),
            )
        })
        .collect();
    for p in &procs {
        p.start();
    }
    let ids: Vec<String> = procs.iter().map(|p| p.owner_id().to_owned()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut at = None;
    // Counted in the loop's own intervals, not in wall-clock time; the polling only bounds a
    // hang (a failure to converge at all).
    for _ in 0..500 {
        // Read before the records: a count read after could be one interval later.
        let intervals: Vec<u64> = procs.iter().map(|p| p.balancing_intervals()).collect();
        let cycles: Vec<u64> = procs.iter().map(|p| p.balancing_cycles()).collect();
        if counts(&ownership(manager.as_ref(), &client).await, &ids) == vec![2, 3, 3] {
            at = Some((intervals, cycles));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (at, cycles_at) = at.expect("three processors did not reach 3/3/2");
    assert!(
        at.iter().all(|&n| n <= 2),
        "3/3/2 reached only after intervals {at:?}: later than each one's third cycle"
    );
    let owners_of = |records: &[Ownership]| -> BTreeMap<String, String> {
        records
            .iter()
            .map(|r| (r.partition_id.clone(), r.owner_id.clone()))
            .collect()
    };
    let settled = owners_of(&ownership(manager.as_ref(), &client).await);
    let target: Vec<u64> = at.iter().map(|c| c + 5).collect();
    while procs
        .iter()
        .zip(&target)
        .any(|(p, t)| p.balancing_intervals() < *t)
    {
        assert_eq!(
            owners_of(&ownership(manager.as_ref(), &client).await),
            settled,
            "ownership moved after settling"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        owners_of(&ownership(manager.as_ref(), &client).await),
        settled
    );
    println!(
        "3/3/2 after intervals {at:?} (cycles run by then, back-to-back ones included: {cycles_at:?}); unchanged for 5 more intervals each"
    );
    for p in &procs {
        p.stop().await;
    }
}

// ---- checkpoints in the background ---------------------------------------------------------

/// An in-memory store whose checkpoint writes wait at a gate the test opens (and fail while
/// `fail` is set). It logs, in order, each write as it starts (`cp <partition> <sequence>`)
/// and each release of ownership (`release <partition>`).
struct GatedWrites {
    inner: InMemoryPartitionManager,
    gate: tokio::sync::watch::Sender<bool>,
    fail: std::sync::atomic::AtomicBool,
    log: Mutex<Vec<String>>,
    started: tokio::sync::Notify,
}

impl GatedWrites {
    fn new(open: bool) -> Arc<Self> {
        Arc::new(GatedWrites {
            inner: InMemoryPartitionManager::new(),
            gate: tokio::sync::watch::channel(open).0,
            fail: Default::default(),
            log: Mutex::default(),
            started: tokio::sync::Notify::new(),
        })
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The sequence numbers of the checkpoint writes started for `partition`, in order.
    fn writes(&self, partition: &str) -> Vec<i64> {
        let prefix = format!("cp {partition} ");
        self.log()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
            .collect()
    }

    /// What the store holds, by partition.
    async fn stored(&self, client: &EventHubClient) -> BTreeMap<String, i64> {
        self.inner
            .list_checkpoints(client.host(), HUB, "$default")
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.partition_id, c.sequence_number.unwrap()))
            .collect()
    }
}

impl PartitionManager for GatedWrites {
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
        for c in claims.iter().filter(|c| c.owner_id.is_empty()) {
            self.log
                .lock()
                .unwrap()
                .push(format!("release {}", c.partition_id));
        }
        self.inner.claim_ownership(claims)
    }

    fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.log.lock().unwrap().push(format!(
                "cp {} {}",
                checkpoint.partition_id,
                checkpoint.sequence_number.unwrap()
            ));
            self.started.notify_one();
            let mut gate = self.gate.subscribe();
            let _ = gate.wait_for(|open| *open).await;
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(PartitionManagerError::Other(
                    "injected write failure".into(),
                ));
            }
            self.inner.update_checkpoint(checkpoint).await
        })
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

/// Counts events and schedules background checkpoints: after every event, or after the last
/// of each batch. Keeps its context so the test can ask it about failed writes.
struct Scheduler {
    store: Arc<GatedWrites>,
    seen: Arc<std::sync::atomic::AtomicUsize>,
    every_event: bool,
    /// Before anything else is scheduled, wait until the first write is in flight.
    first_in_flight: bool,
    /// Checkpoint the last event of each batch with the awaited `update_checkpoint` instead,
    /// setting `awaiting` first.
    awaited_last: bool,
    awaiting: Arc<std::sync::atomic::AtomicBool>,
    ctx: Arc<Mutex<Option<PartitionContext>>>,
}

impl PartitionProcessor for Scheduler {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        *self.ctx.lock().unwrap() = Some(ctx.clone());
        let scheduled = if self.every_event {
            &events[..]
        } else {
            &events[events.len() - 1..]
        };
        let (scheduled, awaited) = match scheduled.split_last() {
            Some((last, rest)) if self.awaited_last => (rest, Some(last)),
            _ => (scheduled, None),
        };
        for e in scheduled {
            ctx.checkpoint_in_background_from_event(e).unwrap();
            if self.first_in_flight {
                self.first_in_flight = false;
                self.store.started.notified().await;
            }
        }
        if let Some(last) = awaited {
            self.awaiting
                .store(true, std::sync::atomic::Ordering::SeqCst);
            ctx.update_checkpoint_from_event(last).await.unwrap();
        }
        self.seen
            .fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
    }
}

struct Background {
    seen: Arc<std::sync::atomic::AtomicUsize>,
    awaiting: Arc<std::sync::atomic::AtomicBool>,
    ctx: Arc<Mutex<Option<PartitionContext>>>,
    processor: EventProcessor<Box<dyn Fn() -> Scheduler + Send + Sync>>,
}

impl Background {
    fn seen(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn background(
    client: &EventHubClient,
    store: &Arc<GatedWrites>,
    every_event: bool,
    first_in_flight: bool,
    awaited_last: bool,
) -> Background {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let awaiting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctx = Arc::new(Mutex::new(None));
    let (s, st, c, a) = (seen.clone(), store.clone(), ctx.clone(), awaiting.clone());
    let factory: Box<dyn Fn() -> Scheduler + Send + Sync> = Box::new(move || Scheduler {
        store: st.clone(),
        seen: s.clone(),
        every_event,
        first_in_flight,
        awaited_last,
        awaiting: a.clone(),
        ctx: c.clone(),
    });
    let processor = EventProcessor::new(
        client.clone(),
        "$default",
        factory,
        store.clone(),
        // One processor: a long expiration, so that a balancing cycle delayed by a loaded
        // machine cannot let the claim lapse and make an awaited checkpoint refuse.
        fast_options().with_ownership_expiration(Duration::from_secs(60)),
    )
    .unwrap();
    Background {
        seen,
        awaiting,
        ctx,
        processor,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_checkpoints_scheduled_during_a_slow_write_coalesce_into_the_newest() {
    let emu = emulator(1).await;
    let client = client(&emu);
    send(&client, 1, 200).await;
    let store = GatedWrites::new(false);
    let b = background(&client, &store, true, true, false);
    b.processor.start();
    assert!(
        wait_until(Duration::from_secs(20), || b.seen() == 200).await,
        "processing goes on while the write is held: {} of 200",
        b.seen()
    );
    // 200 schedules, every one returned at once; only the first write has started.
    assert_eq!(store.writes("0"), vec![0]);
    assert!(store.stored(&client).await.is_empty());
    store.open();
    b.processor.stop().await;
    assert_eq!(
        store.writes("0"),
        vec![0, 199],
        "the 198 scheduled during the write coalesce into one, of the newest, after it"
    );
    assert_eq!(store.stored(&client).await.get("0"), Some(&199));
    let ctx = b.ctx.lock().unwrap().clone().unwrap();
    assert!(ctx.last_background_checkpoint_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_writes_the_pending_background_checkpoints_before_releasing_ownership() {
    let emu = emulator(4).await;
    let client = client(&emu);
    send(&client, 4, 100).await;
    let store = GatedWrites::new(false);
    let b = background(&client, &store, false, false, false);
    b.processor.start();
    assert!(wait_until(Duration::from_secs(20), || b.seen() == 400).await);
    assert!(
        store.stored(&client).await.is_empty(),
        "every write is still held at the gate"
    );
    let Background { processor, ctx, .. } = b;
    let stopping = tokio::spawn(async move {
        processor.stop().await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "stop waits for the pending checkpoints"
    );
    store.open();
    stopping.await.unwrap();
    let stored = store.stored(&client).await;
    let log = store.log();
    for p in ["0", "1", "2", "3"] {
        assert_eq!(stored.get(p), Some(&99), "partition {p}: {stored:?}");
        let writes = store.writes(p);
        assert!(
            writes.windows(2).all(|w| w[0] < w[1]) && writes.last() == Some(&99),
            "partition {p}: writes in order, the last event's last: {writes:?}"
        );
        let last_cp = log
            .iter()
            .rposition(|l| *l == format!("cp {p} 99"))
            .unwrap();
        let release = log.iter().position(|l| *l == format!("release {p}"));
        assert!(
            release.is_some_and(|r| r > last_cp),
            "partition {p} released after its checkpoint: {log:?}"
        );
    }
    let ctx = ctx.lock().unwrap().clone().unwrap();
    assert!(
        ctx.checkpoint_in_background("0", 0).is_err(),
        "a closed partition takes no more checkpoints"
    );
}

#[tokio::test]
async fn a_failed_background_write_is_logged_kept_and_superseded_by_the_next() {
    let (logs, _guard) = support::LogCapture::start();
    let emu = emulator(1).await;
    let client = client(&emu);
    send(&client, 1, 50).await;
    let store = GatedWrites::new(true);
    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let b = background(&client, &store, false, false, false);
    b.processor.start();
    let ctx = || b.ctx.lock().unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(20), || ctx()
            .is_some_and(|c| c.last_background_checkpoint_error().is_some()))
        .await,
        "the failure is visible on the context"
    );
    let err = ctx().unwrap().last_background_checkpoint_error().unwrap();
    assert!(err.to_string().contains("injected write failure"), "{err}");
    assert!(
        logs.text().contains("background checkpoint failed"),
        "and logged: {}",
        logs.text()
    );
    assert!(store.stored(&client).await.is_empty());
    store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    send(&client, 1, 10).await;
    assert!(wait_until(Duration::from_secs(20), || b.seen() == 60).await);
    assert!(
        wait_until(Duration::from_secs(20), || ctx()
            .is_some_and(|c| c.last_background_checkpoint_error().is_none()))
        .await,
        "the next write succeeds and clears the error"
    );
    b.processor.stop().await;
    assert_eq!(store.stored(&client).await.get("0"), Some(&59));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_checkpoint_after_background_ones_is_never_overwritten_by_them() {
    let emu = emulator(1).await;
    let client = client(&emu);
    send(&client, 1, 50).await;
    let store = GatedWrites::new(false);
    // Background checkpoints for every event of a batch but its last, which is awaited.
    let b = background(&client, &store, true, true, true);
    b.processor.start();
    assert!(
        wait_until(Duration::from_secs(20), || b
            .awaiting
            .load(std::sync::atomic::Ordering::SeqCst))
        .await
    );
    store.open();
    assert!(wait_until(Duration::from_secs(20), || b.seen() == 50).await);
    b.processor.stop().await;
    let writes = store.writes("0");
    assert!(
        writes.windows(2).all(|w| w[0] < w[1]) && writes.last() == Some(&49),
        "no background checkpoint lands after the newer awaited one: {writes:?}"
    );
    assert_eq!(store.stored(&client).await.get("0"), Some(&49));
}

// ---- ownership lost with a background checkpoint pending ------------------------------------

/// Schedules a background checkpoint of the last event of each batch; when its partition is
/// lost, `close` waits for the test's gate (slow clean-up code), so the new owner can make
/// progress first.
struct Lingering {
    seen: Arc<std::sync::atomic::AtomicUsize>,
    gate: tokio::sync::watch::Receiver<bool>,
}

impl PartitionProcessor for Lingering {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        ctx.checkpoint_in_background_from_event(events.last().unwrap())
            .unwrap();
        self.seen
            .fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
    }

    async fn close(&mut self, reason: eventhubs::processor::CloseReason, _: &PartitionContext) {
        if reason == eventhubs::processor::CloseReason::OwnershipLost {
            let _ = self.gate.wait_for(|open| *open).await;
        }
    }
}

struct Old {
    seen: Arc<std::sync::atomic::AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
    processor: EventProcessor<Box<dyn Fn() -> Lingering + Send + Sync>>,
}

/// A processor whose background checkpoints, after the first, stay pending until its
/// partitions close: its interval is longer than any test.
fn lingering(
    client: &EventHubClient,
    store: &Arc<GatedWrites>,
    options: EventProcessorOptions,
) -> Old {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = tokio::sync::watch::channel(false).0;
    let (s, g) = (seen.clone(), gate.subscribe());
    let factory: Box<dyn Fn() -> Lingering + Send + Sync> = Box::new(move || Lingering {
        seen: s.clone(),
        gate: g.clone(),
    });
    let processor = EventProcessor::new(
        client.clone(),
        "$default",
        factory,
        store.clone(),
        options.with_background_checkpoint_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    Old {
        seen,
        gate,
        processor,
    }
}

impl Old {
    fn seen(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets the processor read 100 events per partition, waits until each partition's first
    /// background checkpoint is stored, then has it read 50 more: their checkpoint (149)
    /// stays pending.
    async fn read_until_a_checkpoint_is_pending(
        &self,
        client: &EventHubClient,
        partitions: u32,
        store: &GatedWrites,
    ) {
        send(client, partitions, 100).await;
        let all = 100 * partitions as usize;
        assert!(wait_until(Duration::from_secs(20), || self.seen() == all).await);
        for _ in 0..1000 {
            if store.stored(client).await.len() == partitions as usize {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.stored(client).await.len(), partitions as usize);
        send(client, partitions, 50).await;
        let all = 150 * partitions as usize;
        assert!(wait_until(Duration::from_secs(20), || self.seen() == all).await);
        for p in 0..partitions {
            let writes = store.writes(&p.to_string());
            assert_eq!(
                writes.len(),
                1,
                "partition {p}: one write, the first: {writes:?}"
            );
            assert!(writes[0] < 149, "partition {p}: {writes:?}");
        }
    }
}

/// Where `writes` (a partition's checkpoint writes, in order) goes back after `newest`.
fn moved_back(writes: &[i64], newest: i64) -> Option<i64> {
    let at = writes.iter().position(|&s| s == newest)?;
    writes[at + 1..].iter().copied().find(|&s| s < newest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_taken_over_keeps_the_new_owners_checkpoint_not_the_old_owners_pending_one() {
    let emu = emulator(2).await;
    let client = client(&emu);
    let store = GatedWrites::new(true);
    let old = lingering(&client, &store, fast_options());
    old.processor.start();
    old.read_until_a_checkpoint_is_pending(&client, 2, &store)
        .await;
    // A second processor steals one partition (its consumer takes the link); the old owner's
    // close of it is held while the new owner reads on past 149 and checkpoints.
    let seen = Seen::default();
    let new = processor(
        &client,
        store.clone(),
        &seen,
        Duration::ZERO,
        fast_options(),
    );
    new.start();
    assert!(
        wait_until(Duration::from_secs(20), || new.owned_partitions().len()
            == 1)
        .await
    );
    let taken = new.owned_partitions().remove(0);
    send(&client, 2, 50).await;
    let mut newest = None;
    for _ in 0..1000 {
        newest = store.stored(&client).await.get(&taken).copied();
        if newest == Some(199) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        newest,
        Some(199),
        "the new owner checkpointed past the old one's pending 149"
    );
    old.gate.send_replace(true);
    // Waits for the lost partition's close too.
    old.processor.stop().await;
    new.stop().await;
    let writes = store.writes(&taken);
    assert_eq!(
        moved_back(&writes, 199),
        None,
        "partition {taken}: no write of the old owner after the new owner's 199: {writes:?}"
    );
    assert_eq!(store.stored(&client).await.get(&taken), Some(&199));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_lost_at_a_balancing_cycle_drops_its_pending_background_checkpoint() {
    let emu = emulator(1).await;
    let client = client(&emu);
    let store = GatedWrites::new(true);
    // Stepped by hand: no cycle runs but those below, so the claim must last the test.
    let options = fast_options().with_ownership_expiration(Duration::from_secs(3600));
    let old = lingering(&client, &store, options);
    old.gate.send_replace(true);
    old.processor.run_balancing_cycle().await.unwrap();
    assert_eq!(old.processor.owned_partitions(), vec!["0".to_owned()]);
    old.read_until_a_checkpoint_is_pending(&client, 1, &store)
        .await;
    // Another processor claims the partition through the store (it opens no consumer, so the
    // old owner learns of it at its next cycle only) and checkpoints further on.
    let mut record = ownership(store.as_ref(), &client).await.remove(0);
    record.owner_id = "another-processor".into();
    let won = store.claim_ownership(vec![record]).await.unwrap();
    assert_eq!(won.len(), 1);
    store
        .update_checkpoint(Checkpoint {
            fully_qualified_namespace: client.host().to_owned(),
            event_hub_name: HUB.into(),
            consumer_group: "$default".into(),
            partition_id: "0".into(),
            offset: None,
            sequence_number: Some(199),
        })
        .await
        .unwrap();
    old.processor.run_balancing_cycle().await.unwrap();
    assert!(old.processor.owned_partitions().is_empty());
    // Waits for the lost partition's close.
    old.processor.stop().await;
    let writes = store.writes("0");
    assert_eq!(
        moved_back(&writes, 199),
        None,
        "no write of the old owner after the new owner's 199: {writes:?}"
    );
    assert_eq!(store.stored(&client).await.get("0"), Some(&199));
}
