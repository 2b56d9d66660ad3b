//! `EventHubClient::read_all_partitions` against the emulator: events from every partition,
//! each partition in order; the end with `stop_at_end`; per-partition start positions and
//! batches; new events when reading on; an unknown group at once; and connections cut under
//! it, recovered per partition with no gap and no duplicate.

mod client_common;
mod support;

use client_common::*;
use eventhubs::{
    ErrorKind, EventData, EventHubClient, EventPosition, PartitionsReader, ProducerOptions,
    ReadAllOptions, SendOptions,
};
use futures_core::Stream;
use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;
use support::{emulator, Proxy};

/// Sends `n` events `p-i` to partition `p`.
async fn fill(client: &EventHubClient, p: &str, range: std::ops::Range<u32>) {
    let producer = client
        .create_producer(ProducerOptions::partition(p))
        .await
        .unwrap();
    let events = range.map(|i| EventData::from(format!("{p}-{i}")));
    producer
        .send_all(events, SendOptions::default())
        .await
        .unwrap();
}

/// Everything the reader yields until it ends, as bodies per partition, bounded in time so
/// that a reader that never ends fails instead of hanging.
async fn drain(reader: &mut PartitionsReader) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let all = async {
        while let Some(e) = reader.next().await {
            let e = e.unwrap();
            // The body names the partition it was sent to: the tag must agree.
            let body = e.event().body_as_str().unwrap().to_owned();
            assert!(
                body.starts_with(&format!("{}-", e.partition_id())),
                "{body}"
            );
            seen.entry(e.partition_id().to_owned())
                .or_default()
                .push(body);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("the reader ends once caught up");
    seen
}

fn expected(p: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{p}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_arrives_in_order_and_the_stream_ends_when_caught_up() {
    let emu = emulator().await;
    let client = client(&emu);
    for (p, n) in [("0", 500), ("1", 7), ("2", 1), ("3", 260)] {
        fill(&client, p, 0..n).await;
    }
    let mut reader = client
        .read_all_partitions(
            "$default",
            EventPosition::earliest(),
            // Small batches and prefetch, so that partitions interleave.
            ReadAllOptions::default()
                .with_stop_at_end(true)
                .with_max_batch_size(16)
                .with_consumer_options(eventhubs::ConsumerOptions::default().with_prefetch(20)),
        )
        .await
        .unwrap();
    assert_eq!(reader.partition_ids(), ["0", "1", "2", "3"]);
    let seen = drain(&mut reader).await;
    assert_eq!(seen.len(), 4);
    for (p, n) in [("0", 500), ("1", 7), ("2", 1), ("3", 260)] {
        assert_eq!(seen[p], expected(p, 0..n), "partition {p}");
    }
    assert!(reader.next().await.is_none(), "ended stays ended");

    // An empty hub, or a position past the end, is caught up at once.
    let emu2 = emulator().await;
    let mut empty = client_common::client(&emu2)
        .read_all_partitions(
            "$default",
            EventPosition::earliest(),
            ReadAllOptions::default().with_stop_at_end(true),
        )
        .await
        .unwrap();
    assert!(drain(&mut empty).await.is_empty());
    let mut past = client
        .read_all_partitions(
            "$default",
            EventPosition::latest(),
            ReadAllOptions::default().with_stop_at_end(true),
        )
        .await
        .unwrap();
    assert!(drain(&mut past).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_partitions_start_positions_batches_and_reading_on() {
    let emu = emulator().await;
    let client = client(&emu);
    fill(&client, "1", 0..10).await;
    fill(&client, "2", 0..10).await;
    fill(&client, "3", 0..10).await;
    let mut reader = client
        .read_all_partitions(
            "$default",
            EventPosition::sequence_number(5).inclusive(true),
            ReadAllOptions::default()
                .with_partitions(["2", "1"])
                .with_start_position("1", EventPosition::sequence_number(7)),
        )
        .await
        .unwrap();
    assert_eq!(reader.partition_ids(), ["2", "1"]);
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    while got.values().map(Vec::len).sum::<usize>() < 7 {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.next_batch())
            .await
            .expect("a batch")
            .expect("not ended")
            .unwrap();
        assert!(!batch.events.is_empty());
        got.entry(batch.partition_id.clone()).or_default().extend(
            batch
                .events
                .iter()
                .map(|e| e.body_as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(got["2"], expected("2", 5..10), "from 5, inclusive");
    assert_eq!(got["1"], expected("1", 8..10), "after 7, its own position");
    assert!(!got.contains_key("3"), "not asked for");

    // Without stop_at_end it reads on: new events come through the stream interface too.
    fill(&client, "1", 10..12).await;
    let mut more = Vec::new();
    while more.len() < 2 {
        let e = tokio::time::timeout(
            Duration::from_secs(30),
            std::future::poll_fn(|cx| Pin::new(&mut reader).poll_next(cx)),
        )
        .await
        .expect("the new events")
        .expect("not ended")
        .unwrap();
        assert_eq!(e.partition_id(), "1");
        more.push(e.into_event().body_as_str().unwrap().to_owned());
    }
    assert_eq!(more, expected("1", 10..12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_group_or_partition_fails_before_any_event() {
    let emu = emulator().await;
    let client = client(&emu);
    let e = client
        .read_all_partitions(
            "nogroup",
            EventPosition::earliest(),
            ReadAllOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client
        .read_all_partitions(
            "$default",
            EventPosition::earliest(),
            ReadAllOptions::default().with_partitions(["0", "9"]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client
        .read_all_partitions(
            "$default",
            EventPosition::earliest(),
            ReadAllOptions::default().with_partitions(Vec::<String>::new()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_are_recovered_per_partition_without_gap_or_duplicate() {
    let emu = emulator().await;
    let direct = client(&emu);
    for p in ["0", "1", "2", "3"] {
        fill(&direct, p, 0..300).await;
    }
    let proxy = Proxy::start(emu.local_addr()).await;
    let cut = builder(&emu)
        .custom_endpoint("127.0.0.1", proxy.port)
        .build()
        .unwrap();
    let mut reader = cut
        .read_all_partitions(
            "$default",
            EventPosition::earliest(),
            ReadAllOptions::default()
                .with_stop_at_end(true)
                .with_max_batch_size(10)
                .with_consumer_options(eventhubs::ConsumerOptions::default().with_prefetch(10)),
        )
        .await
        .unwrap();
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let (mut total, mut cuts) = (0usize, 0usize);
    let read = async {
        while let Some(e) = reader.next().await {
            let e = e.unwrap();
            total += 1;
            // Cut every connection under the reader a few times while it reads.
            if total % 250 == 0 {
                cuts += proxy.kill_all();
            }
            seen.entry(e.partition_id().to_owned())
                .or_default()
                .push(e.event().body_as_str().unwrap().to_owned());
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the reader ends once caught up");
    assert!(cuts >= 3, "cuts {cuts}");
    for p in ["0", "1", "2", "3"] {
        assert_eq!(seen[p], expected(p, 0..300), "partition {p}");
    }
}
