//! `BlobPartitionManager` against Azurite over real HTTP (`EVENTHUBS_AZURITE`: its connection
//! string): authentication failures at connect, a missing container, List Blobs paging,
//! secrets kept out of `Debug` and logs, and an `EventProcessor` over the emulator that
//! resumes from the checkpoints it stored in blobs.
#![cfg(all(feature = "blob", feature = "emulator"))]

mod support;

use eventhubs::emulator::{Emulator, EmulatorOptions, EntityConfig, HubConfig};
use eventhubs::processor::{
    BlobOptions, BlobPartitionManager, Checkpoint, EventProcessor, EventProcessorOptions,
    Ownership, PartitionContext, PartitionManager, PartitionManagerError, PartitionProcessor,
    StorageConnectionString, StorageCredential,
};
use eventhubs::{EventData, EventHubClient, EventPosition, ProducerOptions};
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
        ctx.update_checkpoint_from_event(last).await.unwrap();
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

// ---- faults: Azurite paused mid-run ----------------------------------------------------------

/// An Azurite of this test's own (so pausing it touches no other test), killed on drop.
struct OwnAzurite {
    child: std::process::Child,
    port: u16,
}

impl OwnAzurite {
    fn start(bin: &str) -> OwnAzurite {
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

    send(&client, 5).await;
    assert!(wait_until(Duration::from_secs(30), || count() == 360).await);
    // Checkpoints resume: the store ends at the last event of every partition.
    let resumed = {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let cps = manager
                .list_checkpoints(client.host(), HUB, "$default")
                .await
                .unwrap_or_default();
            if cps.len() == 8 && cps.iter().all(|c| c.sequence_number == Some(44)) {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
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

/// Azurite takes Azure AD tokens only over HTTPS, so this one layer is checked against a
/// minimal HTTP responder that records the request heads: a bearer token for the storage
/// scope, fetched once and reused.
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
