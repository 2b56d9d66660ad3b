//! Emulator ingest: events per second through our low-level sender (100-byte events packed in
//! ~1 MiB Event Hubs batches, pipelined) into one partition of an in-process emulator, and the
//! resident memory the emulator needs per million retained 100-byte events, and the same ingest
//! into partition files (`data_dir`) under each `Fsync` mode.
//!
//! `cargo bench --bench emulator_ingest` (env `EHUB_BENCH_EVENTS`: events for the throughput
//! run, default 3 000 000; `EHUB_BENCH_RETAINED`: events for the memory run, default 1 000 000;
//! `EHUB_BENCH_DISK_EVENTS`: events per fsync mode, default 1 000 000, 0 to skip the disk
//! runs, written under `EHUB_BENCH_DATA_DIR`, default a scratch directory in `target/`).

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::Encode;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::{ConnectOptions, Connection, Sender, SenderOptions};
use eventhubs::emulator::{Emulator, EmulatorOptions, Fsync, Retention};
use std::time::Instant;

use eventhubs::wire::batch::{
    data_section_len, write_data_section_header, BATCH_MESSAGE_FORMAT as BATCH_FORMAT,
};
const MAX_MESSAGE: usize = 1024 * 1024;
const EVENT_BYTES: usize = 100;

/// One ~1 MiB batch of 100-byte events (an empty envelope, one data section per event), and
/// how many events it holds.
fn batch_payload() -> (Bytes, usize) {
    let event = Message::with_data(Bytes::from(vec![0x5a; EVENT_BYTES]));
    let mut encoded = BytesMut::with_capacity(event.encoded_len());
    event.encode(&mut encoded);
    let encoded = encoded.freeze();
    let envelope = Message::default();
    let per = data_section_len(encoded.len());
    let n = (MAX_MESSAGE - envelope.encoded_len()) / per;
    let mut buf = BytesMut::with_capacity(envelope.encoded_len() + n * per);
    envelope.encode(&mut buf);
    for _ in 0..n {
        write_data_section_header(&mut buf, encoded.len());
        buf.extend_from_slice(&encoded);
    }
    assert!(buf.len() <= MAX_MESSAGE);
    (buf.freeze(), n)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn emulator(retention: Retention) -> Emulator {
    Emulator::start(
        EmulatorOptions::ephemeral()
            .with_require_auth(false)
            .with_retention(retention),
    )
    .await
    .expect("emulator starts")
}

/// Bounded retention so that a run measures ingest, not memory growth.
const INGEST_RETENTION: Retention = Retention {
    max_events: 2_000_000,
    max_bytes: 256 << 20,
};

/// Ingest of `events` into partition files under `dir` with `fsync`, printed as one line.
async fn disk_ingest(
    dir: &std::path::Path,
    fsync: Fsync,
    payload: &Bytes,
    per_batch: usize,
    events: usize,
) {
    let _ = std::fs::remove_dir_all(dir);
    let em = Emulator::start(
        EmulatorOptions::ephemeral()
            .with_require_auth(false)
            .with_retention(INGEST_RETENTION)
            .with_data_dir(dir)
            .with_fsync(fsync),
    )
    .await
    .expect("emulator starts");
    let (conn, sender) = sender_to(&em).await;
    ingest(&sender, payload, 10).await; // warm-up
    let batches = events.div_ceil(per_batch);
    let start = Instant::now();
    ingest(&sender, payload, batches).await;
    let elapsed = start.elapsed().as_secs_f64();
    let n = batches * per_batch;
    println!(
        "ingest to disk, fsync {fsync:?}: {n} events in {batches} batches in {elapsed:.2} s: {:.0} events/s, {:.1} MiB/s, {:.0} batches/s",
        n as f64 / elapsed,
        (batches * payload.len()) as f64 / elapsed / (1024.0 * 1024.0),
        batches as f64 / elapsed,
    );
    let _ = conn.close().await;
    drop(em);
    let _ = std::fs::remove_dir_all(dir);
}

async fn sender_to(em: &Emulator) -> (Connection, Sender) {
    let conn = Connection::connect(
        ConnectOptions::new("127.0.0.1", em.local_addr().port()).sasl_anonymous(),
    )
    .await
    .expect("connect");
    let session = conn.open_session().await.expect("session");
    let mut options = SenderOptions::new("eh1/Partitions/0");
    options.max_in_flight = 64;
    let sender = session.attach_sender(options).await.expect("attach");
    (conn, sender)
}

/// Sends `batches` copies of `payload` pipelined and waits for every outcome.
async fn ingest(sender: &Sender, payload: &Bytes, batches: usize) {
    let mut pending = std::collections::VecDeque::with_capacity(64);
    for _ in 0..batches {
        // Keep at most 64 in flight (the sender's own limit also holds it there) and collect
        // outcomes as they come, so the futures do not pile up.
        if pending.len() == 64 {
            check(pending.pop_front().unwrap()).await;
        }
        pending.push_back(
            sender
                .start_send_bytes(payload.clone(), BATCH_FORMAT, false)
                .await
                .expect("send"),
        );
    }
    for p in pending {
        check(p).await;
    }
}

async fn check(p: eventhubs::amqp::PendingSend) {
    match p.await {
        Ok(Some(DeliveryState::Accepted(_))) => {}
        other => panic!("batch not accepted: {other:?}"),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (payload, per_batch) = batch_payload();
    println!(
        "batch: {per_batch} events of {EVENT_BYTES} B body, {} bytes on the wire",
        payload.len()
    );

    // Memory first, in a fresh process image: RSS before and after retaining N events.
    let retained = env_usize("EHUB_BENCH_RETAINED", 1_000_000);
    runtime.block_on(async {
        let em = emulator(Retention {
            max_events: usize::MAX,
            max_bytes: usize::MAX,
        })
        .await;
        let (conn, sender) = sender_to(&em).await;
        // Warm up the connection (buffers, tasks) before the baseline, then measure.
        ingest(&sender, &payload, 1).await;
        let base_events = per_batch;
        let before = rss_kib();
        let batches = retained.div_ceil(per_batch);
        ingest(&sender, &payload, batches).await;
        let _ = conn.close().await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let after = rss_kib();
        let info = em.partition_info("eh1", 0).expect("partition 0");
        let held = (info.last_sequence_number + 1) as usize - base_events;
        let delta = after.saturating_sub(before) as f64 * 1024.0;
        let per_event = delta / held as f64;
        println!(
            "memory: {held} events retained; VmRSS {before} kB -> {after} kB; {:.0} B/event; {:.1} MiB per million events (event data held: {:.0} B/event)",
            per_event,
            per_event * 1e6 / (1024.0 * 1024.0),
            em.retained_bytes() as f64 / (held + base_events) as f64,
        );
        drop(em);
    });

    // Throughput: bounded retention so the run measures ingest, not memory growth.
    let events = env_usize("EHUB_BENCH_EVENTS", 3_000_000);
    runtime.block_on(async {
        let em = emulator(INGEST_RETENTION).await;
        let (conn, sender) = sender_to(&em).await;
        ingest(&sender, &payload, 10).await; // warm-up
        let batches = events.div_ceil(per_batch);
        let start = Instant::now();
        ingest(&sender, &payload, batches).await;
        let elapsed = start.elapsed().as_secs_f64();
        let n = batches * per_batch;
        println!(
            "ingest: {n} events in {batches} batches in {elapsed:.2} s: {:.0} events/s, {:.1} MiB/s of batches, {:.0} batches/s",
            n as f64 / elapsed,
            (batches * payload.len()) as f64 / elapsed / (1024.0 * 1024.0),
            batches as f64 / elapsed,
        );
        let _ = conn.close().await;
    });

    // Durability: the same load into partition files, once per fsync mode.
    let dir = std::env::var_os("EHUB_BENCH_DATA_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulator_ingest"),
        std::path::PathBuf::from,
    );
    let disk_events = env_usize("EHUB_BENCH_DISK_EVENTS", 1_000_000);
    if disk_events == 0 {
        // Skipped whole, warm-up included, so that instruction counts of the in-memory runs
        // carry no disk writes.
        println!("ingest to disk: skipped (EHUB_BENCH_DISK_EVENTS=0)");
        return;
    }
    runtime.block_on(async {
        for fsync in [
            Fsync::Never,
            Fsync::Interval(Fsync::DEFAULT_INTERVAL),
            Fsync::Always,
        ] {
            disk_ingest(&dir, fsync, &payload, per_batch, disk_events).await;
        }
    });
}
