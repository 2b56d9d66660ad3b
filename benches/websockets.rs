//! AMQP over WebSockets against plain AMQP: events per second through the client's producer
//! (full batches, several sends in flight) into one in-process emulator serving both ports,
//! for 100-byte and 64 KiB events, in one run so the figures compare.
//!
//! `cargo bench --bench websockets`. Environment: `EHUB_BENCH_MIB`, MiB of event bodies per
//! case (default 256); `EHUB_BENCH_ROUNDS`, rounds per size (default 3, alternating which wire
//! goes first; the median ratio is reported); `EHUB_BENCH_SIZES=100,65536`, the event sizes;
//! `EHUB_BENCH_WIRE=amqp|websockets`, one wire only (for instruction counts under callgrind).

use bytes::Bytes;
use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::{BatchOptions, EventData, EventHubClientBuilder, ProducerOptions, TransportType};
use std::time::Instant;

const IN_FLIGHT: usize = 8;

async fn events_per_second(
    emu: &Emulator,
    transport: TransportType,
    size: usize,
    total: usize,
) -> f64 {
    let port = match transport {
        TransportType::AmqpWebSockets => emu.ws_local_addr().expect("ws listener").port(),
        _ => emu.local_addr().port(),
    };
    let client =
        EventHubClientBuilder::from_connection_string(&emu.connection_string(), Some("eh1"))
            .unwrap()
            .custom_endpoint("127.0.0.1", port)
            .transport(transport)
            .build()
            .unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    let body = Bytes::from(vec![0x5a; size]);
    let mut batches = Vec::new();
    let mut sent = 0;
    while sent < total {
        let mut batch = producer
            .create_batch(BatchOptions::default())
            .await
            .unwrap();
        while sent < total && batch.try_add(EventData::from(body.clone())).is_ok() {
            sent += 1;
        }
        batches.push(batch);
    }
    let started = Instant::now();
    let producer = std::sync::Arc::new(producer);
    let mut pending: tokio::task::JoinSet<Result<(), eventhubs::Error>> =
        tokio::task::JoinSet::new();
    for batch in batches {
        if pending.len() >= IN_FLIGHT {
            pending.join_next().await.unwrap().unwrap().unwrap();
        }
        let p = producer.clone();
        pending.spawn(async move { p.send(batch).await });
    }
    while let Some(r) = pending.join_next().await {
        r.unwrap().unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    client.close().await.unwrap();
    rate
}

fn main() {
    let mib: usize = std::env::var("EHUB_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let rounds: usize = std::env::var("EHUB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = EmulatorOptions::ephemeral()
            .with_require_auth(true)
            .with_ws_bind(([127, 0, 0, 1], 0).into());
        let emu = Emulator::start(options).await.unwrap();
        let sizes: Vec<usize> = std::env::var("EHUB_BENCH_SIZES")
            .ok()
            .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![100, 64 * 1024]);
        let only = std::env::var("EHUB_BENCH_WIRE").ok();
        for size in sizes {
            let total = (mib << 20) / size;
            if let Some(wire) = &only {
                let t = match wire.as_str() {
                    "websockets" => TransportType::AmqpWebSockets,
                    _ => TransportType::Amqp,
                };
                let rate = events_per_second(&emu, t, size, total).await;
                println!("{size:>6} B events, {total} of them: {wire} {rate:>10.0} ev/s");
                continue;
            }
            // Warm-up of each wire, then rounds that alternate which wire goes first (the
            // emulator's store grows as they go); the median ratio is the figure.
            for t in [TransportType::Amqp, TransportType::AmqpWebSockets] {
                events_per_second(&emu, t, size, total / 10 + 1).await;
            }
            let mut ratios = Vec::new();
            for round in 0..rounds {
                let (plain, ws) = if round % 2 == 0 {
                    let plain = events_per_second(&emu, TransportType::Amqp, size, total).await;
                    let ws =
                        events_per_second(&emu, TransportType::AmqpWebSockets, size, total).await;
                    (plain, ws)
                } else {
                    let ws =
                        events_per_second(&emu, TransportType::AmqpWebSockets, size, total).await;
                    let plain = events_per_second(&emu, TransportType::Amqp, size, total).await;
                    (plain, ws)
                };
                ratios.push(ws / plain);
                println!(
                    "{size:>6} B events, {total} of them: AMQP {plain:>10.0} ev/s, WebSockets {ws:>10.0} ev/s ({:.0} %)",
                    100.0 * ws / plain
                );
            }
            ratios.sort_by(f64::total_cmp);
            if let Some(median) = ratios.get(ratios.len() / 2) {
                println!("{size:>6} B events: WebSockets / AMQP, median of {rounds} rounds: {:.0} %", 100.0 * median);
            }
        }
    });
}
