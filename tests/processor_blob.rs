//! `BlobPartitionManager` against Azurite over real HTTP (`EVENTHUBS_AZURITE`: its connection
//! string): authentication failures at connect, a missing container, List Blobs paging,
//! secrets kept out of `Debug` and logs, `503 ServerBusy` retried (a forwarder in front of
//! Azurite injects it), and an `EventProcessor` over the emulator that resumes from the
//! checkpoints it stored in blobs, one checkpointing in the background whose blobs hold the
//! last scheduled event once it stopped, and one that lost a partition and did not write its
//! pending checkpoint over the new owner's. With `EVENTHUBS_AZURITE_BIN`, tests start
//! Azurites of their own: one paused for 10 s under one and under two processors, one over
//! HTTPS taking Azure AD bearer tokens.
#![cfg(all(feature = "blob", feature = "emulator"))]

mod support;

use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, HubConfig};
use eventhubs::processor::{
    BlobOptions, BlobPartitionManager, Checkpoint, EventProcessor, EventProcessorOptions,
    Ownership, PartitionContext, PartitionManager, PartitionManagerError, PartitionProcessor,
    StorageConnectionString, StorageCredential,
};
use eventhubs::{ErrorKind, EventData, EventHubClient, EventPosition, ProducerOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

fn azurite() -> Option<String> {
    support::peer("EVENTHUBS_AZURITE", "Azurite (Blob Storage)")
}

/// A container name unique to this process and test.
fn container(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

fn endpoint(cs: &str) -> String {
    StorageConnectionString::parse(cs).unwrap().blob_endpoint
}

async fn store(cs: &str, test: &str) -> BlobPartitionManager {
    BlobPartitionManager::connect(
        cs,
        &container(test),
        BlobOptions::default().with_create_container(true),
    )
    .await
    .expect("Azurite reachable")
}

#[tokio::test]
async fn wrong_key_or_sas_fails_at_connect_with_authentication() {
    let Some(cs) = azurite() else { return };
    let _ = store(&cs, "auth").await;
    let wrong_key = format!(
        "AccountName=devstoreaccount1;AccountKey=d3Jvbmcga2V5IHdyb25nIGtleQ==;BlobEndpoint={}",
        endpoint(&cs)
    );
    let err = BlobPartitionManager::connect(&wrong_key, &container("auth"), BlobOptions::default())
        .await
        .unwrap_err();
    match &err {
        PartitionManagerError::Authentication { code, .. } => {
            assert!(!code.is_empty(), "the service's error code is kept: {err}")
        }
        other => panic!("expected Authentication, got {other:?}"),
    }
    let sas = StorageCredential::sas(
        "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&spr=http&sig=Ym9ndXM%3D",
    );
    let err = BlobPartitionManager::connect_with(
        &endpoint(&cs),
        sas,
        &container("auth"),
        BlobOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PartitionManagerError::Authentication { .. }),
        "{err:?}"
    );
    println!("wrong key and wrong SAS refused on Azurite: {err}");
}

#[tokio::test]
async fn a_missing_container_is_a_clear_error_unless_created() {
    let Some(cs) = azurite() else { return };
    let name = container("missing");
    let err = BlobPartitionManager::connect(&cs, &name, BlobOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PartitionManagerError::ContainerNotFound(c) if *c == name),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name));
    let created = BlobPartitionManager::connect(
        &cs,
        &name,
        BlobOptions::default().with_create_container(true),
    )
    .await
    .unwrap();
    assert!(created
        .list_checkpoints("ns", "eh", "$default")
        .await
        .unwrap()
        .is_empty());
    BlobPartitionManager::connect(&cs, &name, BlobOptions::default())
        .await
        .expect("exists now");
    assert!(matches!(
        BlobPartitionManager::connect(&cs, "Bad_Name", BlobOptions::default()).await,
        Err(PartitionManagerError::Config(_))
    ));
    println!("missing container reported and created on Azurite");
}

fn claim(p: usize) -> Ownership {
    Ownership {
        fully_qualified_namespace: "NS.Example".into(),
        event_hub_name: "Hub".into(),
        consumer_group: "$Default".into(),
        partition_id: p.to_string(),
        owner_id: format!("owner-{p}"),
        last_modified_time: SystemTime::UNIX_EPOCH,
        etag: None,
    }
}

#[tokio::test]
async fn listing_follows_next_marker_pages_and_names_are_case_insensitive() {
    let Some(cs) = azurite() else { return };
    let _ = store(&cs, "paging").await;
    let paged = BlobPartitionManager::connect(
        &cs,
        &container("paging"),
        BlobOptions::default().with_list_page_size(2),
    )
    .await
    .unwrap();
    let won = paged
        .claim_ownership((0..7).map(claim).collect())
        .await
        .unwrap();
    assert_eq!(won.len(), 7);
    for p in 0..7 {
        paged
            .update_checkpoint(Checkpoint {
                fully_qualified_namespace: "NS.Example".into(),
                event_hub_name: "Hub".into(),
                consumer_group: "$Default".into(),
                partition_id: p.to_string(),
                offset: Some((p * 10).to_string()),
                sequence_number: Some(p as i64),
            })
            .await
            .unwrap();
    }
    // Written with capitals, found lower-cased (the layout every official SDK uses).
    let mut owners = paged
        .list_ownership("ns.example", "hub", "$default")
        .await
        .unwrap();
    owners.sort_by(|a, b| a.partition_id.cmp(&b.partition_id));
    assert_eq!(owners.len(), 7, "four pages of two");
    assert_eq!(owners[6].owner_id, "owner-6");
    assert!(owners
        .iter()
        .all(|o| o.etag.is_some() && o.last_modified_time > SystemTime::UNIX_EPOCH));
    let cps = paged
        .list_checkpoints("NS.EXAMPLE", "HUB", "$DEFAULT")
        .await
        .unwrap();
    assert_eq!(cps.len(), 7);
    assert!(cps.iter().all(
        |c| c.offset.as_deref() == Some((c.sequence_number.unwrap() * 10).to_string().as_str())
    ));
    println!(
        "List Blobs paging on Azurite: {} owners, {} checkpoints",
        owners.len(),
        cps.len()
    );
}

/// A log sink for the test below.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn keys_and_signatures_stay_out_of_debug_and_logs() {
    let Some(cs) = azurite() else { return };
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = store(&cs, "secrets").await;
    s.claim_ownership(vec![claim(0)]).await.unwrap();
    s.list_ownership("ns.example", "hub", "$default")
        .await
        .unwrap();
    let wrong = format!(
        "AccountName=devstoreaccount1;AccountKey=d3Jvbmcga2V5IHdyb25nIGtleQ==;BlobEndpoint={}",
        endpoint(&cs)
    );
    let err = BlobPartitionManager::connect(&wrong, &container("secrets"), BlobOptions::default())
        .await
        .unwrap_err();
    let sas_store = BlobPartitionManager::connect_with(
        &endpoint(&cs),
        StorageCredential::sas("sv=2021-08-06&sig=U0VDUkVUU0lH"),
        &container("secrets"),
        BlobOptions::default().with_max_retries(0),
    )
    .await;
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("blob request"),
        "the requests were logged: {logs}"
    );
    let debug = format!("{s:?} {err:?} {err} {sas_store:?}");
    for secret in [
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq",
        "d3Jvbmcga2V5IHdyb25nIGtleQ",
        "U0VDUkVUU0lH",
        "SharedKey devstoreaccount1:",
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs");
        assert!(
            !debug.contains(secret),
            "{secret} in Debug/Display: {debug}"
        );
    }
    println!("no key or signature in Debug or logs on Azurite");
}

// ---- an EventProcessor over the emulator, its checkpoints in Azurite -------------------------

const HUB: &str = "eh8";

async fn emulator() -> Emulator {
    support::emulator_with(EmulatorOptions::ephemeral().with_entities(
        EntityConfig::default().with_hubs(vec![
            HubConfig::new(HUB.into(), 8).with_consumer_groups(vec!["$default".into()]),
        ]),
    ))
    .await
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
        // A partition taken over while this batch ran refuses the checkpoint, as it must.
        if let Err(e) = ctx.update_checkpoint_from_event(last).await {
            assert_eq!(e.kind(), ErrorKind::OwnershipLost, "{e}");
        }
    }
}

fn options() -> EventProcessorOptions {
    // Blob times have one-second resolution: the expiration leaves room for it.
    EventProcessorOptions::default()
        .with_initial_position(EventPosition::earliest())
        .with_load_balancing_interval(Duration::from_millis(300))
        .with_ownership_expiration(Duration::from_secs(5))
        .with_max_batch_size(100)
        .with_max_wait_time(Duration::from_millis(100))
}

async fn send(client: &EventHubClient, per_partition: usize) {
    for p in 0..8 {
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

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_resumes_from_its_blob_checkpoints() {
    let Some(cs) = azurite() else { return };
    let emu = emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some(HUB)).unwrap();
    send(&client, 50).await;
    let seen: Seen = Arc::default();
    let manager: Arc<dyn PartitionManager> = Arc::new(store(&cs, "resume").await);
    let s = seen.clone();
    let first = EventProcessor::new(
        client.clone(),
        "$default",
        move || Recorder(s.clone()),
        manager.clone(),
        options(),
    )
    .unwrap();
    first.start();
    assert!(
        wait_until(Duration::from_secs(30), || seen.lock().unwrap().len()
            == 400)
        .await,
        "all 400 events processed, got {}",
        seen.lock().unwrap().len()
    );
    first.stop().await;
    let cps = manager
        .list_checkpoints(client.host(), HUB, "$default")
        .await
        .unwrap();
    assert_eq!(cps.len(), 8);
    assert!(cps.iter().all(|c| c.sequence_number == Some(49)), "{cps:?}");

    send(&client, 10).await;
    // A new store instance and processor (another machine, in effect).
    let again: Arc<dyn PartitionManager> = Arc::new(store(&cs, "resume").await);
    let s = seen.clone();
    let second = EventProcessor::new(
        client.clone(),
        "$default",
        move || Recorder(s.clone()),
        again,
        options(),
    )
    .unwrap();
    second.start();
    assert!(
        wait_until(Duration::from_secs(30), || seen.lock().unwrap().len()
            == 480)
        .await,
        "the 80 new events processed, got {}",
        seen.lock().unwrap().len()
    );
    second.stop().await;
    let dup: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        dup.is_empty(),
        "resumed right after the checkpoints, no event twice: {dup:?}"
    );
    println!("processor resumed from blob checkpoints on Azurite: 480 events, no duplicates");
}

/// Checkpoints the last event of every batch in the background, and remembers, per
/// partition, the last event it scheduled (offset, sequence number).
struct BackgroundRecorder(Seen, Arc<Mutex<HashMap<String, (String, i64)>>>);

impl PartitionProcessor for BackgroundRecorder {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        let Some(last) = events.last() else { return };
        ctx.checkpoint_in_background_from_event(last).unwrap();
        self.1.lock().unwrap().insert(
            ctx.partition_id.clone(),
            (
                last.offset().unwrap().to_owned(),
                last.sequence_number().unwrap(),
            ),
        );
        let mut seen = self.0.lock().unwrap();
        for e in &events {
            *seen
                .entry((ctx.partition_id.clone(), e.sequence_number().unwrap_or(-1)))
                .or_default() += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_checkpoints_in_blobs_hold_the_last_scheduled_event_after_stop() {
    let Some(cs) = azurite() else { return };
    let emu = emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some(HUB)).unwrap();
    send(&client, 50).await;
    let seen: Seen = Arc::default();
    let scheduled = Arc::new(Mutex::new(HashMap::new()));
    let manager: Arc<dyn PartitionManager> = Arc::new(store(&cs, "background").await);
    let (s, l) = (seen.clone(), scheduled.clone());
    let processor = EventProcessor::new(
        client.clone(),
        "$default",
        move || BackgroundRecorder(s.clone(), l.clone()),
        manager,
        options(),
    )
    .unwrap();
    processor.start();
    assert!(
        wait_until(Duration::from_secs(30), || seen.lock().unwrap().len()
            == 400)
        .await,
        "all 400 events processed, got {}",
        seen.lock().unwrap().len()
    );
    processor.stop().await;
    // Read back through another store instance: what is in Azurite, not in this process.
    let stored: HashMap<String, (Option<String>, Option<i64>)> = store(&cs, "background")
        .await
        .list_checkpoints(client.host(), HUB, "$default")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition_id, (c.offset, c.sequence_number)))
        .collect();
    let scheduled = scheduled.lock().unwrap().clone();
    assert_eq!(scheduled.len(), 8);
    for (p, (offset, seq)) in &scheduled {
        assert_eq!(*seq, 49, "partition {p}: the last event was scheduled last");
        assert_eq!(
            stored.get(p),
            Some(&(Some(offset.clone()), Some(*seq))),
            "partition {p}: the blob holds the last scheduled checkpoint"
        );
    }
    println!("background checkpoints on Azurite: every blob at the last scheduled event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_partition_keeps_the_new_owners_blob_checkpoint() {
    let Some(cs) = azurite() else { return };
    let emu = emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some(HUB)).unwrap();
    let seen: Seen = Arc::default();
    let scheduled = Arc::new(Mutex::new(HashMap::new()));
    let manager: Arc<dyn PartitionManager> = Arc::new(store(&cs, "lost").await);
    let (s, l) = (seen.clone(), scheduled.clone());
    // After the first write, each partition's newest checkpoint stays pending until it closes.
    let old = EventProcessor::new(
        client.clone(),
        "$default",
        move || BackgroundRecorder(s.clone(), l.clone()),
        manager.clone(),
        options()
            .with_background_checkpoint_interval(Duration::from_secs(3600))
            .with_ownership_expiration(Duration::from_secs(3600)),
    )
    .unwrap();
    // Stepped by hand: no cycle runs but these, so the claims must last the test.
    while old.run_balancing_cycle().await.unwrap() {}
    assert_eq!(old.owned_partitions().len(), 8);
    let stored = |m: Arc<dyn PartitionManager>| {
        let host = client.host().to_owned();
        async move {
            m.list_checkpoints(&host, HUB, "$default")
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.partition_id, c.sequence_number.unwrap()))
                .collect::<HashMap<String, i64>>()
        }
    };
    send(&client, 50).await;
    assert!(
        wait_until(Duration::from_secs(30), || seen.lock().unwrap().len()
            == 400)
        .await
    );
    let end = Instant::now() + Duration::from_secs(30);
    while stored(manager.clone()).await.len() < 8 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored(manager.clone()).await.len(),
        8,
        "each first write landed"
    );
    send(&client, 50).await;
    assert!(
        wait_until(Duration::from_secs(30), || seen.lock().unwrap().len()
            == 800)
        .await
    );
    // Another machine's processor claims partition 0 (etag-checked, as a processor does) and
    // checkpoints further on; the old owner learns of it at its next cycle.
    let other: Arc<dyn PartitionManager> = Arc::new(store(&cs, "lost").await);
    let mut record = other
        .list_ownership(client.host(), HUB, "$default")
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.partition_id == "0")
        .unwrap();
    record.owner_id = "another-machine".into();
    assert_eq!(other.claim_ownership(vec![record]).await.unwrap().len(), 1);
    other
        .update_checkpoint(Checkpoint {
            fully_qualified_namespace: client.host().to_owned(),
            event_hub_name: HUB.into(),
            consumer_group: "$default".into(),
            partition_id: "0".into(),
            offset: None,
            sequence_number: Some(149),
        })
        .await
        .unwrap();
    old.run_balancing_cycle().await.unwrap();
    assert_eq!(old.owned_partitions().len(), 7);
    old.stop().await;
    let stored = stored(other).await;
    assert_eq!(
        stored.get("0"),
        Some(&149),
        "the old owner's pending 99 is not written over the new owner's 149"
    );
    for p in 1..8 {
        assert_eq!(
            stored.get(&p.to_string()),
            Some(&99),
            "partition {p} flushed at stop"
        );
    }
    println!("ownership lost on Azurite: the new owner's checkpoint kept, the old one's dropped");
}

// ---- faults: Azurite paused mid-run ----------------------------------------------------------

/// An Azurite of this test's own (so pausing it touches no other test), killed on drop.
struct OwnAzurite {
    child: std::process::Child,
    port: u16,
}

impl OwnAzurite {
    fn start(bin: &str) -> OwnAzurite {
        Self::start_with(bin, &[])
    }

    /// With extra command-line arguments (`--oauth basic --cert … --key …`).
    fn start_with(bin: &str, extra: &[&str]) -> OwnAzurite {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(bin)
            .args(["--inMemoryPersistence", "--extentMemoryLimit", "64"])
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        let up = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                up.elapsed() < Duration::from_secs(30),
                "Azurite did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        OwnAzurite { child, port }
    }

    fn connection_string(&self) -> String {
        format!(
            "AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1",
            self.port
        )
    }

    /// SIGSTOP / SIGCONT: the process keeps its in-memory blobs, but answers nothing.
    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }
}

impl Drop for OwnAzurite {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records events and counts failed checkpoints (expected while the store is away).
struct Tolerant(Seen, Arc<std::sync::atomic::AtomicUsize>);

impl PartitionProcessor for Tolerant {
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
        if ctx.update_checkpoint_from_event(last).await.is_err() {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_goes_on_while_azurite_is_paused_and_checkpoints_resume() {
    let Some(bin) = support::peer("EVENTHUBS_AZURITE_BIN", "azurite-blob (npm azurite)") else {
        return;
    };
    let azurite = OwnAzurite::start(&bin);
    let emu = emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some(HUB)).unwrap();
    let store = BlobPartitionManager::connect(
        &azurite.connection_string(),
        "faults",
        BlobOptions::default()
            .with_create_container(true)
            .with_request_timeout(Duration::from_secs(2))
            .with_max_retries(2),
    )
    .await
    .unwrap();
    let manager: Arc<dyn PartitionManager> = Arc::new(store);
    let seen: Seen = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s, f) = (seen.clone(), failed.clone());
    let processor = EventProcessor::new(
        client.clone(),
        "$default",
        move || Tolerant(s.clone(), f.clone()),
        manager.clone(),
        options().with_ownership_expiration(Duration::from_secs(8)),
    )
    .unwrap();
    processor.start();
    send(&client, 20).await;
    let count = || seen.lock().unwrap().len();
    assert!(wait_until(Duration::from_secs(30), || count() == 160).await);

    azurite.signal("-STOP");
    let paused = Instant::now();
    send(&client, 20).await;
    let during = wait_until(Duration::from_secs(9), || count() == 320).await;
    let owned_during = processor.owned_partitions().len();
    let left = Duration::from_secs(10).saturating_sub(paused.elapsed());
    tokio::time::sleep(left).await;
    azurite.signal("-CONT");
    assert!(
        during,
        "owned partitions kept being processed: {} of 320",
        count()
    );
    assert_eq!(
        owned_during, 8,
        "no partition given up while the store was away"
    );

    // Checkpoints resume: events keep coming, and once the claims are renewed (a renewal
    // that timed out meanwhile may still hold the balancing loop for a while; until then
    // awaited checkpoints are refused on the lapsed claims) the store ends at the last event
    // of every partition.
    let resumed = {
        let end = Instant::now() + Duration::from_secs(30);
        let mut sent = 40;
        loop {
            send(&client, 1).await;
            sent += 1;
            assert!(wait_until(Duration::from_secs(30), || count() == sent * 8).await);
            let last = Some(sent as i64 - 1);
            let cps = manager
                .list_checkpoints(client.host(), HUB, "$default")
                .await
                .unwrap_or_default();
            if cps.len() == 8 && cps.iter().all(|c| c.sequence_number == last) {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    processor.stop().await;
    assert!(resumed, "checkpoints resumed after Azurite came back");
    assert!(
        seen.lock().unwrap().values().all(|n| *n == 1),
        "one owner throughout"
    );
    println!(
        "Azurite paused 10 s on Azurite: processing went on, {} checkpoints failed meanwhile, resumed after",
        failed.load(std::sync::atomic::Ordering::SeqCst)
    );
}

// ---- SAS and Azure AD tokens -----------------------------------------------------------------

/// An account SAS (service version 2019-12-12) for the development account, signed here.
fn account_sas(key_base64: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (sp, ss, srt, se, spr, sv) = (
        "rwdlac",
        "b",
        "sco",
        "2099-01-01T00:00:00Z",
        "https,http",
        "2019-12-12",
    );
    let to_sign = format!("devstoreaccount1\n{sp}\n{ss}\n{srt}\n\n{se}\n\n{spr}\n{sv}\n");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&b64.decode(key_base64).unwrap()).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = eventhubs::auth::percent_encode(&b64.encode(mac.finalize().into_bytes()));
    format!(
        "sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={}&spr={}&sig={sig}",
        eventhubs::auth::percent_encode(se),
        eventhubs::auth::percent_encode(spr)
    )
}

#[tokio::test]
async fn a_sas_authorizes_every_store_call() {
    let Some(cs) = azurite() else { return };
    let _ = store(&cs, "sas").await;
    let sas = account_sas(
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    );
    let via_string = format!("BlobEndpoint={};SharedAccessSignature={sas}", endpoint(&cs));
    let s = BlobPartitionManager::connect(&via_string, &container("sas"), BlobOptions::default())
        .await
        .expect("a valid SAS is accepted");
    let won = s.claim_ownership(vec![claim(3)]).await.unwrap();
    assert_eq!(won.len(), 1);
    s.update_checkpoint(Checkpoint {
        fully_qualified_namespace: "ns.example".into(),
        event_hub_name: "hub".into(),
        consumer_group: "$default".into(),
        partition_id: "3".into(),
        offset: Some("30".into()),
        sequence_number: Some(3),
    })
    .await
    .unwrap();
    assert_eq!(
        s.list_checkpoints("ns.example", "hub", "$default")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.list_ownership("ns.example", "hub", "$default")
            .await
            .unwrap()
            .len(),
        1
    );
    println!("SAS-authorized store calls on Azurite");
}

/// A fixed token, recording the scope it was asked for.
struct FixedToken(Arc<Mutex<Vec<String>>>);

impl eventhubs::auth::TokenCredential for FixedToken {
    fn get_token<'a>(&'a self, audience: &'a str) -> eventhubs::auth::TokenFuture<'a> {
        self.0.lock().unwrap().push(audience.to_owned());
        Box::pin(async {
            Ok(eventhubs::auth::AccessToken {
                token: "aad-token-value".into(),
                expires_on: SystemTime::now() + Duration::from_secs(3600),
            })
        })
    }
}

/// What goes on the wire, checked against a minimal HTTP responder that records the request
/// heads: a bearer token for the storage scope, fetched once and reused. (Azurite accepting
/// such tokens is the HTTPS test below.)
#[tokio::test]
async fn a_token_credential_sends_bearer_tokens_for_the_storage_scope() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = heads.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        h.lock().unwrap().push(head);
                        let body = "<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>";
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let scopes: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = BlobPartitionManager::connect_with_token(
        &format!("http://127.0.0.1:{port}"),
        FixedToken(scopes.clone()),
        "tokens",
        BlobOptions::default(),
    )
    .await
    .unwrap();
    s.list_ownership("ns", "hub", "$default").await.unwrap();
    server.abort();
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    for head in heads.iter() {
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("authorization: bearer aad-token-value"),
            "{head}"
        );
        assert!(lower.contains("x-ms-version: "), "{head}");
    }
    assert_eq!(
        *scopes.lock().unwrap(),
        vec!["https://storage.azure.com/.default".to_owned()]
    );
    assert!(!format!("{s:?}").contains("aad-token-value"));
}

// ---- faults: two owners while Azurite is paused ----------------------------------------------

/// One batch as a partition processor saw it: who, which tenure, when, which events.
struct Batch {
    owner: String,
    /// The partition processor instance (the factory makes one per claim of a partition).
    tenure: u64,
    /// When `process_events` began, and when it returned (its checkpoint included).
    began: Instant,
    ended: Instant,
    seqs: Vec<i64>,
}

type Batches = Arc<Mutex<HashMap<String, Vec<Batch>>>>;

/// Logs every batch, then checkpoints (failures are expected while the store is away).
struct Witness {
    batches: Batches,
    tenure: u64,
}

impl PartitionProcessor for Witness {
    async fn process_events(&mut self, events: Vec<EventData>, ctx: &PartitionContext) {
        let Some(last) = events.last() else { return };
        let began = Instant::now();
        let _ = ctx.update_checkpoint_from_event(last).await;
        self.batches
            .lock()
            .unwrap()
            .entry(ctx.partition_id.clone())
            .or_default()
            .push(Batch {
                owner: ctx.owner_id.clone(),
                tenure: self.tenure,
                began,
                ended: Instant::now(),
                seqs: events.iter().filter_map(|e| e.sequence_number()).collect(),
            });
    }
}

/// The longest time two owners processed one partition at once, and where: a tenure spans
/// from the start of its first batch to the end of its last; two tenures of different owners
/// on one partition overlap where their spans intersect.
fn longest_overlap(batches: &HashMap<String, Vec<Batch>>) -> (Duration, String) {
    let mut worst = (Duration::ZERO, String::from("none"));
    for (partition, list) in batches {
        let mut spans: HashMap<u64, (&str, Instant, Instant)> = HashMap::new();
        for b in list {
            let s = spans
                .entry(b.tenure)
                .or_insert((b.owner.as_str(), b.began, b.ended));
            s.1 = s.1.min(b.began);
            s.2 = s.2.max(b.ended);
        }
        let spans: Vec<_> = spans.into_values().collect();
        for (i, x) in spans.iter().enumerate() {
            for y in &spans[i + 1..] {
                if x.0 == y.0 {
                    continue;
                }
                let both = x.2.min(y.2).saturating_duration_since(x.1.max(y.1));
                if both > worst.0 {
                    worst = (both, format!("partition {partition}, {} and {}", x.0, y.0));
                }
            }
        }
    }
    worst
}

/// Sends one event to every partition every 100 ms until `stop` is set; returns how many
/// each partition got (their sequence numbers are 0..n on a fresh emulator).
fn trickle(
    client: EventHubClient,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut producers = Vec::new();
        for p in 0..8 {
            producers.push(
                client
                    .create_producer(ProducerOptions::partition(p.to_string()))
                    .await
                    .unwrap(),
            );
        }
        let mut sent = vec![0i64; 8];
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            for (p, producer) in producers.iter().enumerate() {
                producer
                    .send(vec![EventData::new(format!("p{p} e{}", sent[p]))])
                    .await
                    .unwrap();
                sent[p] += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners_share_a_partition_for_less_than_an_expiration_when_azurite_pauses() {
    let Some(bin) = support::peer("EVENTHUBS_AZURITE_BIN", "azurite-blob (npm azurite)") else {
        return;
    };
    let azurite = OwnAzurite::start(&bin);
    let emu = emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some(HUB)).unwrap();
    let store = BlobPartitionManager::connect(
        &azurite.connection_string(),
        "two-owners",
        BlobOptions::default()
            .with_create_container(true)
            .with_request_timeout(Duration::from_secs(2))
            .with_max_retries(2),
    )
    .await
    .unwrap();
    let manager: Arc<dyn PartitionManager> = Arc::new(store);
    let expiration = Duration::from_secs(5);
    let batches: Batches = Arc::default();
    let tenures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let processor = || {
        let (b, t) = (batches.clone(), tenures.clone());
        EventProcessor::new(
            client.clone(),
            "$default",
            move || Witness {
                batches: b.clone(),
                tenure: t.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            },
            manager.clone(),
            options().with_ownership_expiration(expiration),
        )
        .unwrap()
    };
    let (a, b) = (processor(), processor());
    a.start();
    b.start();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = trickle(client.clone(), stop.clone());
    let split = |a: &Vec<String>, b: &Vec<String>| {
        a.len() == 4 && b.len() == 4 && a.iter().all(|p| !b.contains(p))
    };
    assert!(
        wait_until(Duration::from_secs(30), || split(
            &a.owned_partitions(),
            &b.owned_partitions()
        ))
        .await,
        "4/4 before the pause: {:?} {:?}",
        a.owned_partitions(),
        b.owned_partitions()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    azurite.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let (owned_a, owned_b) = (a.owned_partitions(), b.owned_partitions());
    tokio::time::sleep(Duration::from_secs(1)).await;
    azurite.signal("-CONT");
    assert!(
        split(&owned_a, &owned_b),
        "each kept its partitions while the store was away: {owned_a:?} {owned_b:?}"
    );
    // Every record expired meanwhile: both race for all of them, then settle again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        wait_until(Duration::from_secs(30), || split(
            &a.owned_partitions(),
            &b.owned_partitions()
        ))
        .await,
        "4/4 again after the pause: {:?} {:?}",
        a.owned_partitions(),
        b.owned_partitions()
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = sender.await.unwrap();

    let all_seen = || {
        let batches = batches.lock().unwrap();
        (0..8).all(|p| {
            let seen: std::collections::HashSet<i64> = batches
                .get(&p.to_string())
                .into_iter()
                .flatten()
                .flat_map(|b| b.seqs.iter().copied())
                .collect();
            (0..sent[p]).all(|s| seen.contains(&s))
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), all_seen).await,
        "every event processed ({sent:?} sent)"
    );
    let resumed = {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let cps = manager
                .list_checkpoints(client.host(), HUB, "$default")
                .await
                .unwrap_or_default();
            let at_end = |c: &Checkpoint| {
                let p: usize = c.partition_id.parse().unwrap_or(99);
                p < 8 && c.sequence_number == Some(sent[p] - 1)
            };
            if cps.len() == 8 && cps.iter().all(at_end) {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    a.stop().await;
    b.stop().await;
    assert!(resumed, "checkpoints resumed after Azurite came back");

    let batches = batches.lock().unwrap();
    let (overlap, at) = longest_overlap(&batches);
    // The margin: blob times have one-second resolution.
    let margin = Duration::from_secs(1);
    assert!(
        overlap < expiration + margin,
        "{at} both processed for {overlap:?}, more than one expiration ({expiration:?}) + {margin:?}"
    );
    let handovers = tenures.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "two processors, Azurite paused 10 s: {} events sent, all processed, {handovers} partition tenures, longest two-owner overlap {overlap:?} ({at}), checkpoints resumed on Azurite",
        sent.iter().sum::<i64>()
    );
}

// ---- 503 server busy, through a fault-injecting forwarder ------------------------------------

/// Which requests the forwarder answers itself with `503 Server Busy`.
#[derive(Clone, Copy, Debug)]
enum Busy {
    /// None: everything goes to Azurite.
    Never,
    /// The first n requests since [`BusyForwarder::set`].
    First(usize),
    /// Every k-th request since [`BusyForwarder::set`].
    EveryKth(usize),
    /// All of them.
    Always,
}

/// An HTTP/1.1 forwarder in front of Azurite: per request, either the Azure error a busy
/// account answers, or the request passed on byte for byte over a fresh upstream connection
/// and the answer passed back the same way.
struct BusyForwarder {
    port: u16,
    state: Arc<Mutex<(Busy, usize)>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for BusyForwarder {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The answer a busy storage account gives.
fn server_busy() -> Vec<u8> {
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code>\
        <Message>The server is currently unable to receive requests. Please retry your request.\n\
        RequestId:5b9c7d3e-0000-0000-0000-000000000000\nTime:2026-12-02T00:00:00.0000000Z</Message></Error>";
    format!(
        "HTTP/1.1 503 The server is currently unable to receive requests. Please retry your request.\r\n\
         Content-Type: application/xml\r\nContent-Length: {}\r\nx-ms-error-code: ServerBusy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one message head (through the blank line), at most 64 KiB; `None` at a clean end.
async fn read_head(
    r: &mut (impl tokio::io::AsyncBufRead + Unpin),
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncBufReadExt;
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.ends_with(b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

/// A header's value in a head, by case-insensitive name.
fn header_value(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head).lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// Appends a body framed by `head` (Content-Length, chunked, or none) to `out`, raw.
async fn read_body(
    r: &mut (impl tokio::io::AsyncBufRead + Unpin),
    head: &[u8],
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    if let Some(n) = header_value(head, "content-length") {
        let n: usize = n.parse().map_err(|_| std::io::ErrorKind::InvalidData)?;
        let start = out.len();
        out.resize(start + n, 0);
        return r.read_exact(&mut out[start..]).await.map(|_| ());
    }
    let chunked = header_value(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if !chunked {
        return Ok(());
    }
    loop {
        let line_start = out.len();
        r.read_until(b'\n', out).await?;
        let line = String::from_utf8_lossy(&out[line_start..]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::ErrorKind::InvalidData)?;
        if size == 0 {
            // Trailers, through the blank line.
            loop {
                let at = out.len();
                if r.read_until(b'\n', out).await? == 0 || &out[at..] == b"\r\n" {
                    return Ok(());
                }
            }
        }
        let start = out.len();
        out.resize(start + size + 2, 0);
        r.read_exact(&mut out[start..]).await?;
    }
}

impl BusyForwarder {
    async fn start(upstream: String) -> BusyForwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new((Busy::Never, 0usize)));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, rf) = (state.clone(), refused.clone());
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let (st, rf, upstream) = (st.clone(), rf.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = Self::serve(down, &upstream, &st, &rf).await;
                });
            }
        });
        BusyForwarder {
            port,
            state,
            refused,
            accept,
        }
    }

    /// From now on, refuse as `mode` says (counting requests afresh).
    fn set(&self, mode: Busy) {
        *self.state.lock().unwrap() = (mode, 0);
    }

    fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn serve(
        down: tokio::net::TcpStream,
        upstream: &str,
        state: &Mutex<(Busy, usize)>,
        refused: &std::sync::atomic::AtomicUsize,
    ) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let (dr, mut dw) = down.into_split();
        let mut dr = tokio::io::BufReader::new(dr);
        while let Some(head) = read_head(&mut dr).await? {
            let mut request = head.clone();
            read_body(&mut dr, &head, &mut request).await?;
            let busy = {
                let mut s = state.lock().unwrap();
                s.1 += 1;
                match s.0 {
                    Busy::Never => false,
                    Busy::First(n) => s.1 <= n,
                    Busy::EveryKth(k) => s.1.is_multiple_of(k.max(1)),
                    Busy::Always => true,
                }
            };
            if busy {
                refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                dw.write_all(&server_busy()).await?;
                continue;
            }
            let up = tokio::net::TcpStream::connect(upstream).await?;
            let (ur, mut uw) = up.into_split();
            uw.write_all(&request).await?;
            let mut ur = tokio::io::BufReader::new(ur);
            let head = read_head(&mut ur)
                .await?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            let mut response = head.clone();
            let status = String::from_utf8_lossy(&head)
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_owned();
            if !(status.starts_with('1') || status == "204" || status == "304") {
                read_body(&mut ur, &head, &mut response).await?;
            }
            dw.write_all(&response).await?;
            if header_value(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn checkpoint(p: usize) -> Checkpoint {
    Checkpoint {
        fully_qualified_namespace: "ns.example".into(),
        event_hub_name: "hub".into(),
        consumer_group: "$default".into(),
        partition_id: p.to_string(),
        offset: Some((p * 10).to_string()),
        sequence_number: Some(p as i64),
    }
}

#[tokio::test]
async fn server_busy_is_retried_and_a_store_always_busy_fails_naming_it() {
    let Some(cs) = azurite() else { return };
    let parsed = StorageConnectionString::parse(&cs).unwrap();
    let rest = parsed
        .blob_endpoint
        .strip_prefix("http://")
        .expect("Azurite over http");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let fwd = BusyForwarder::start(authority.to_owned()).await;
    let via = format!("http://127.0.0.1:{}/{path}", fwd.port);
    let (logs, _guard) = support::LogCapture::start_at(tracing::Level::DEBUG);
    let retries = || logs.text().matches("retrying blob request").count();
    let quick = BlobOptions::default()
        .with_retry_delay(Duration::from_millis(5))
        .with_max_retry_delay(Duration::from_millis(20));

    // Busy at first: connect succeeds on the fourth try.
    fwd.set(Busy::First(3));
    let s = BlobPartitionManager::connect_with(
        &via,
        parsed.credential.clone(),
        &container("busy"),
        quick
            .clone()
            .with_max_retries(4)
            .with_create_container(true),
    )
    .await
    .expect("connect succeeds after three 503s");
    assert_eq!(fwd.refused(), 3);
    assert_eq!(retries(), 3, "one retry per 503: {}", logs.text());
    assert!(
        logs.text().contains("HTTP 503 ServerBusy"),
        "{}",
        logs.text()
    );

    // Every other request busy: every call still succeeds, one retry per refusal.
    fwd.set(Busy::EveryKth(2));
    let won = s
        .claim_ownership((0..4).map(claim).collect())
        .await
        .unwrap();
    assert_eq!(won.len(), 4);
    for p in 0..4 {
        s.update_checkpoint(checkpoint(p)).await.unwrap();
    }
    let owners = s
        .list_ownership("ns.example", "hub", "$default")
        .await
        .unwrap();
    let cps = s
        .list_checkpoints("ns.example", "hub", "$default")
        .await
        .unwrap();
    assert_eq!((owners.len(), cps.len()), (4, 4));
    assert!(fwd.refused() >= 3 + 4, "every other request refused");
    assert_eq!(retries(), fwd.refused(), "each refusal retried once");

    // Always busy: fails after max_retries, naming 503 and ServerBusy.
    fwd.set(Busy::Never);
    let stubborn = BlobPartitionManager::connect_with(
        &via,
        parsed.credential.clone(),
        &container("busy"),
        quick.with_max_retries(2),
    )
    .await
    .unwrap();
    fwd.set(Busy::Always);
    let before = fwd.refused();
    let err = stubborn
        .list_ownership("ns.example", "hub", "$default")
        .await
        .unwrap_err();
    assert_eq!(fwd.refused() - before, 3, "one try and two retries");
    assert!(
        matches!(&err, PartitionManagerError::Service { status: 503, code, .. } if code == "ServerBusy"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("503") && text.contains("ServerBusy") && text.contains("after 3 attempts"),
        "{text}"
    );
    println!(
        "503 ServerBusy on Azurite via a forwarder: {} refusals retried, always-busy fails: {text}",
        fwd.refused() - 3
    );
}

// ---- Azure AD bearer tokens against Azurite over HTTPS ---------------------------------------

/// A JWT of the shape Azure AD issues. Azurite's `--oauth basic` decodes it without checking
/// the signature, and checks `iat`/`nbf`/`exp`, an Azure AD issuer (`https://sts.windows.net/…`)
/// and a storage audience (`https://storage.azure.com` and a few others).
struct AzureAdLike {
    audience: &'static str,
}

impl eventhubs::auth::TokenCredential for AzureAdLike {
    fn get_token<'a>(&'a self, scope: &'a str) -> eventhubs::auth::TokenFuture<'a> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": "https://sts.windows.net/2f4a9838-26b7-47ee-be60-ccc1fdec5953/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": "8a0b4f1e-0000-0000-0000-000000000001",
            "scp": "user_impersonation",
        });
        let token = format!(
            "{header}.{}.{}",
            b64.encode(claims.to_string()),
            b64.encode("unchecked signature")
        );
        let asked_storage = scope == "https://storage.azure.com/.default";
        Box::pin(async move {
            if !asked_storage {
                return Err("not the storage scope".into());
            }
            Ok(eventhubs::auth::AccessToken {
                token,
                expires_on: SystemTime::now() + Duration::from_secs(3600),
            })
        })
    }
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn bearer_tokens_authorize_claims_and_checkpoints_on_azurite_over_https() {
    let Some(bin) = support::peer("EVENTHUBS_AZURITE_BIN", "azurite-blob (npm azurite)") else {
        return;
    };
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!("azurite-oauth-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let azurite = OwnAzurite::start_with(
        &bin,
        &[
            "--oauth",
            "basic",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://127.0.0.1:{}/devstoreaccount1", azurite.port);
    let trusted = BlobOptions::default()
        .with_extra_roots(vec![ck.cert.der().clone()])
        .with_retry_delay(Duration::from_millis(10));

    let s = BlobPartitionManager::connect_with_token(
        &url,
        AzureAdLike {
            audience: "https://storage.azure.com",
        },
        "oauth",
        trusted.clone().with_create_container(true),
    )
    .await
    .expect("Azurite accepts the token");
    let won = s.claim_ownership(vec![claim(0), claim(1)]).await.unwrap();
    assert_eq!(won.len(), 2);
    // A renewal with the current etag wins; one with a stale etag is lost, not an error.
    let renewed = s.claim_ownership(vec![won[0].clone()]).await.unwrap();
    assert_eq!(renewed.len(), 1);
    assert!(s
        .claim_ownership(vec![won[0].clone()])
        .await
        .unwrap()
        .is_empty());
    s.update_checkpoint(checkpoint(1)).await.unwrap();
    s.update_checkpoint(checkpoint(1)).await.unwrap();
    let cps = s
        .list_checkpoints("ns.example", "hub", "$default")
        .await
        .unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].sequence_number, Some(1));
    let owners = s
        .list_ownership("ns.example", "hub", "$default")
        .await
        .unwrap();
    assert_eq!(owners.len(), 2);

    let err = BlobPartitionManager::connect_with_token(
        &url,
        AzureAdLike {
            audience: "https://eventhubs.azure.net",
        },
        "oauth",
        trusted,
    )
    .await
    .unwrap_err();
    match &err {
        PartitionManagerError::Authentication { code, message } => {
            assert_eq!(code, "AuthenticationFailed");
            assert!(message.contains("audience"), "{err}");
        }
        other => panic!("expected Authentication, got {other:?}"),
    }
    // Without the extra root the self-signed certificate is not trusted.
    let untrusted = BlobPartitionManager::connect_with_token(
        &url,
        AzureAdLike {
            audience: "https://storage.azure.com",
        },
        "oauth",
        BlobOptions::default().with_max_retries(0),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&untrusted, PartitionManagerError::Unavailable(m) if m.contains("certificate")),
        "{untrusted:?}"
    );
    println!("bearer tokens on Azurite over HTTPS: claims and checkpoints work, a wrong audience fails: {err}");
}
