//! Sending side of `scripts/bench_producer.sh`: pushes N events of one body size to partition
//! "0" of a running emulator (or any Event Hubs) and prints one `RESULT key=value ...` line
//! with the elapsed time from the first batch to the last acknowledgement, the process's CPU
//! seconds in that window and its peak RSS.
//!
//! ```text
//! bench_send producer --conn CS --size 100 --count 2000000 [--inflight 1]
//! bench_send lowlevel --port P --size 65536 --count 20000 [--inflight 1]
//! bench_send buffered --conn CS --size 100 --count 2000000 [--inflight 4]
//! ```
//!
//! `buffered` enqueues the events one by one into an `EventHubBufferedProducer` bound for
//! partition "0" (`--inflight K` batches in flight to it, queue room for K+1 link-sized
//! batches) and closes it: the window runs from the first enqueue to the end of the close.
//!
//! `producer` is the public API: `EventHubProducer::create_batch` (link-sized), `try_add` until
//! full, `send`; `--inflight K` keeps K sends in flight from clones of the producer (1 = send
//! and wait, like the Python client's `send_batch`). `lowlevel` bypasses the client: one batch
//! payload is encoded once and sent over and over with K transfers in flight through
//! `eventhubs::amqp::Sender` (anonymous SASL, no CBS, so the emulator must run `--no-auth`),
//! which measures what the emulator can ingest rather than what a producer costs.
//!
//! CPU time comes from `/proc/self/stat` (clock ticks; `CLK_TCK` from the environment,
//! default 100) and peak RSS from `VmHWM` in `/proc/self/status`; both are Linux-only, and are
//! reported as -1 elsewhere.

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::Encode;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::{ConnectOptions, Connection, SenderOptions};
use eventhubs::{BatchOptions, EventData, EventHubClient, ProducerOptions};
use std::collections::VecDeque;
use std::time::Instant;

use eventhubs::wire::batch::{
    data_section_len, write_data_section_header, BATCH_MESSAGE_FORMAT as BATCH_FORMAT,
};

struct Args {
    mode: String,
    conn: Option<String>,
    port: u16,
    hub: String,
    size: usize,
    count: usize,
    inflight: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_send producer|idempotent --conn CS [--hub eh1] --size BYTES --count N [--inflight K]\n       bench_send lowlevel --port P [--hub eh1] --size BYTES --count N\n       bench_send buffered --conn CS [--hub eh1] --size BYTES --count N [--inflight K]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        mode,
        conn: None,
        port: 5672,
        hub: "eh1".to_owned(),
        size: 100,
        count: 100_000,
        inflight: 1,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let num = || value.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--conn" => a.conn = Some(value.clone()),
            "--port" => a.port = value.parse().unwrap_or_else(|_| usage()),
            "--hub" => a.hub = value.clone(),
            "--size" => a.size = num(),
            "--count" => a.count = num(),
            "--inflight" => a.inflight = num().max(1),
            _ => usage(),
        }
    }
    a
}

/// user+sys CPU seconds of the whole process (all threads), or -1 when unknown.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return -1.0;
    };
    // The command name may contain spaces; the numeric fields start after its closing ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return -1.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the full line, utime 14 and stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = std::env::var("CLK_TCK")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(100.0);
    (ticks(14) + ticks(15)) as f64 / hz
}

/// Peak resident set size in KiB, or -1 when unknown.
fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

fn body(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// Fills a link-sized batch from `next` (the event that did not fit the previous batch goes
/// first); returns the batch, the events it holds and the leftover event.
async fn fill(
    producer: &eventhubs::EventHubProducer,
    body: &Bytes,
    left: usize,
    mut carry: Option<EventData>,
) -> Result<(eventhubs::EventDataBatch, Option<EventData>), eventhubs::Error> {
    let mut batch = producer.create_batch(BatchOptions::default()).await?;
    while batch.len() < left {
        let event = carry.take().unwrap_or_else(|| EventData::new(body.clone()));
        if let Err(back) = batch.try_add(event) {
            carry = Some(back);
            break;
        }
    }
    if batch.is_empty() {
        return Err(eventhubs::Error::invalid_argument(format!(
            "an event of {} bytes does not fit in a batch",
            body.len()
        )));
    }
    Ok((batch, carry))
}

/// The producer mode; with `idempotent`, an idempotent producer (every event stamped, each
/// batch numbered and committed on acceptance).
async fn run_producer(a: &Args, idempotent: bool) -> Result<Report, eventhubs::Error> {
    let cs = a.conn.as_deref().unwrap_or_else(|| usage());
    let client = EventHubClient::from_connection_string(cs, Some(&a.hub))?;
    let producer = client
        .create_producer(
            ProducerOptions::partition("0").with_enable_idempotent_partitions(idempotent),
        )
        .await?;
    let body = body(a.size);
    // Warm-up: one full batch, as the low-level sender does, so that connection, CBS and link
    // setup and the first growth of buffers (ours, the socket's, the emulator's) stay out of
    // the window.
    let (warm, _) = fill(&producer, &body, usize::MAX, None).await?;
    producer.send(warm).await?;

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut sent = 0usize;
    let mut batches = 0usize;
    let mut carry = None;
    let mut in_flight = tokio::task::JoinSet::new();
    while sent < a.count {
        let (batch, rest) = fill(&producer, &body, a.count - sent, carry).await?;
        carry = rest;
        sent += batch.len();
        batches += 1;
        if a.inflight == 1 {
            producer.send(batch).await?;
        } else {
            if in_flight.len() >= a.inflight {
                in_flight
                    .join_next()
                    .await
                    .expect("a send in flight")
                    .expect("send task panicked")?;
            }
            let p = producer.clone();
            in_flight.spawn(async move { p.send(batch).await });
        }
    }
    while let Some(r) = in_flight.join_next().await {
        r.expect("send task panicked")?;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    producer.close().await?;
    client.close().await?;
    Ok(Report {
        events: sent,
        batches,
        secs,
        cpu,
    })
}

async fn run_buffered(a: &Args) -> Result<Report, eventhubs::Error> {
    use eventhubs::{BufferedProducerOptions, EnqueueOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let cs = a.conn.as_deref().unwrap_or_else(|| usage());
    let client = EventHubClient::from_connection_string(cs, Some(&a.hub))?;
    let body = body(a.size);
    // Room for the batches in flight and one filling, each link-sized (1 MB).
    let per_batch = (1 << 20) / (a.size + 8);
    let delivered = Arc::new(AtomicUsize::new(0));
    let batches = Arc::new(AtomicUsize::new(0));
    let (d, b) = (delivered.clone(), batches.clone());
    let producer = client
        .create_buffered_producer(
            BufferedProducerOptions::default()
                .with_max_buffered_events_per_partition(per_batch * (a.inflight + 1))
                .with_max_concurrent_sends_per_partition(a.inflight)
                .with_on_outcome(move |o| {
                    if o.error.is_none() {
                        d.fetch_add(o.events.len(), Ordering::Relaxed);
                    }
                    b.fetch_add(1, Ordering::Relaxed);
                }),
        )
        .await?;
    let to0 = EnqueueOptions::default().with_partition_id("0");
    // Warm-up, as for the other modes: one batch's worth, flushed.
    for _ in 0..per_batch {
        producer.enqueue(EventData::new(body.clone()), &to0).await?;
    }
    producer.flush().await?;
    let (d0, b0) = (
        delivered.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed),
    );

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for _ in 0..a.count {
        producer.enqueue(EventData::new(body.clone()), &to0).await?;
    }
    producer.close().await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    client.close().await?;
    let events = delivered.load(Ordering::Relaxed) - d0;
    if events != a.count {
        return Err(eventhubs::Error::invalid_argument(format!(
            "{events} of {} events delivered",
            a.count
        )));
    }
    Ok(Report {
        events,
        batches: batches.load(Ordering::Relaxed) - b0,
        secs,
        cpu,
    })
}

/// One full batch of `size`-byte events for a link limit of `max` bytes, and its event count.
fn lowlevel_payload(size: usize, max: usize) -> (Bytes, usize) {
    let event = Message::with_data(body(size));
    let mut encoded = BytesMut::with_capacity(event.encoded_len());
    event.encode(&mut encoded);
    let envelope = Message::default();
    let per = data_section_len(encoded.len());
    let n = (max - envelope.encoded_len()) / per;
    assert!(
        n > 0,
        "an event of {size} bytes does not fit in {max} bytes"
    );
    let mut buf = BytesMut::with_capacity(envelope.encoded_len() + n * per);
    envelope.encode(&mut buf);
    for _ in 0..n {
        write_data_section_header(&mut buf, encoded.len());
        buf.extend_from_slice(&encoded);
    }
    (buf.freeze(), n)
}

async fn run_lowlevel(a: &Args) -> Result<Report, eventhubs::amqp::Error> {
    let window = a.inflight;
    let conn =
        Connection::connect(ConnectOptions::new("127.0.0.1", a.port).sasl_anonymous()).await?;
    let session = conn.open_session().await?;
    let mut options = SenderOptions::new(format!("{}/Partitions/0", a.hub));
    options.max_in_flight = window;
    let sender = session.attach_sender(options).await?;
    let max = sender
        .max_message_size()
        .map_or(1024 * 1024, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let (payload, per_batch) = lowlevel_payload(a.size, max.min(1024 * 1024));
    let check = |outcome: Result<Option<DeliveryState>, eventhubs::amqp::Error>| match outcome {
        Ok(Some(DeliveryState::Accepted(_))) => {}
        other => panic!("batch not accepted: {other:?}"),
    };
    check(
        sender
            .start_send_bytes(payload.clone(), BATCH_FORMAT, false)
            .await?
            .await,
    );

    let batches = a.count.div_ceil(per_batch);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut pending = VecDeque::with_capacity(window);
    for _ in 0..batches {
        if pending.len() == window {
            check(pending.pop_front().expect("window is full").await);
        }
        pending.push_back(
            sender
                .start_send_bytes(payload.clone(), BATCH_FORMAT, false)
                .await?,
        );
    }
    for p in pending {
        check(p.await);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let _ = conn.close().await;
    Ok(Report {
        events: batches * per_batch,
        batches,
        secs,
        cpu,
    })
}

struct Report {
    events: usize,
    batches: usize,
    secs: f64,
    cpu: f64,
}

fn main() {
    let a = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = match a.mode.as_str() {
        "producer" => runtime
            .block_on(run_producer(&a, false))
            .unwrap_or_else(|e| panic!("producer failed: {e}")),
        "idempotent" => runtime
            .block_on(run_producer(&a, true))
            .unwrap_or_else(|e| panic!("idempotent producer failed: {e}")),
        "buffered" => runtime
            .block_on(run_buffered(&a))
            .unwrap_or_else(|e| panic!("buffered producer failed: {e}")),
        "lowlevel" => runtime
            .block_on(run_lowlevel(&a))
            .unwrap_or_else(|e| panic!("low-level sender failed: {e}")),
        _ => usage(),
    };
    let label = match a.mode.as_str() {
        "producer" => format!("rust-producer-x{}", a.inflight),
        "buffered" => format!("rust-buffered-x{}", a.inflight),
        "idempotent" => format!("rust-idempotent-x{}", a.inflight),
        _ => format!("rust-lowlevel-x{}", a.inflight),
    };
    println!(
        "RESULT impl={label} size={} events={} batches={} secs={:.4} cpu={:.3} maxrss_kib={}",
        a.size,
        report.events,
        report.batches,
        report.secs,
        report.cpu,
        peak_rss_kib()
    );
}
