//! `send_all` (events packed into as few batches as fit, sent pipelined) and the blocking
//! mirror's consumer accessors, against the emulator over real sockets.

mod client_common;
mod support;

use client_common::builder;
use eventhubs::amqp::codec::Symbol;
use eventhubs::amqp::types::error::AmqpError;
use eventhubs::emulator::Emulator;
use eventhubs::producer::SEND_ALL_IN_FLIGHT;
use eventhubs::{ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions};
use eventhubs::{ErrorKind, RetryOptions, SendOptions};
use std::sync::Arc;
use std::time::Duration;
use support::{Chaos, Proxy};

fn events(n: usize, size: usize) -> Vec<EventData> {
    (0..n)
        .map(|i| EventData::new(format!("{i:08}{}", "x".repeat(size - 8))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_packs_few_batches_and_keeps_the_order() {
    let emu = support::emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some("eh1")).unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    let n = 3000;
    let batches = producer
        .send_all(events(n, 1000), SendOptions::default())
        .await
        .unwrap();
    let max = producer.max_message_size() as usize;
    // Each batch is full but for the last one: no more batches than the bytes need plus one.
    let least = (n * 1000).div_ceil(max);
    assert!(
        batches >= least && batches <= least + 1 + n * 1000 / max / 10,
        "{batches} batches for {n} events of 1000 bytes (max {max})"
    );
    let mut consumer = client
        .create_consumer(
            "$default",
            "1",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        let batch = consumer
            .receive(500, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "stalled after {} events", got.len());
        got.extend(batch);
    }
    for (i, e) in got.iter().enumerate() {
        assert!(
            e.body_as_str().unwrap().starts_with(&format!("{i:08}")),
            "event {i} out of order"
        );
    }
    assert_eq!(send_nothing(&producer).await, 0);
}

async fn send_nothing(p: &eventhubs::EventHubProducer) -> usize {
    p.send_all(Vec::new(), SendOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_refuses_an_event_too_large_before_sending_anything() {
    let emu = support::emulator().await;
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some("eh1")).unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("2"))
        .await
        .unwrap();
    let max = producer.max_message_size() as usize;
    let mut list = events(3, 100);
    list.push(EventData::new(vec![0u8; max + 1]));
    let err = producer
        .send_all(list, SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EventData);
    assert!(err.to_string().contains("nothing was sent"), "{err}");
    let props = client.get_partition_properties("2").await.unwrap();
    assert!(props.is_empty, "nothing stored: {props:?}");
}

#[test]
fn the_blocking_mirror_sends_all_and_knows_its_consumer() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(support::emulator());
    let builder = eventhubs::blocking::EventHubClient::builder_from_connection_string(
        &emu.connection_string(),
        Some("eh1"),
    )
    .unwrap()
    .operation_timeout(Duration::from_secs(20));
    let client = eventhubs::blocking::EventHubClient::from_builder(builder).unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("3"))
        .unwrap();
    assert_eq!(
        producer
            .send_all(events(10, 20), SendOptions::default())
            .unwrap(),
        1
    );
    let mut consumer = client
        .create_consumer(
            "$default",
            "3",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .unwrap();
    assert_eq!(consumer.partition_id(), "3");
    assert_eq!(consumer.consumer_group(), "$default");
    assert_eq!(consumer.last_offset(), None, "nothing received yet");
    for i in 0..10 {
        let e = consumer.next_event().unwrap();
        assert!(e.body_as_str().unwrap().starts_with(&format!("{i:08}")));
        assert_eq!(consumer.last_offset(), e.offset());
    }
    assert!(consumer.last_offset().is_some());
    consumer.close().unwrap();
}

fn busy() -> AmqpError {
    AmqpError::with_description(Symbol::from_static("com.microsoft:server-busy"), "busy")
}

/// Retries quick enough for a test, even after server-busy (which waits at least 4 s by
/// default but never past the max delay).
fn quick_retry() -> RetryOptions {
    RetryOptions::default()
        .with_max_retries(5)
        .with_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(50))
}

/// Per event of 1000 bytes, its index; a full batch of the emulator's 1 MiB holds ~1000.
fn index_of(e: &EventData) -> usize {
    e.body_as_str().unwrap()[..8].parse().unwrap()
}

/// The indices of every event stored in partition `p`, in order.
async fn stored(emu: &Emulator, p: &str) -> Vec<usize> {
    let client = builder(emu).build().unwrap();
    let got = client_common::read_partition(&client, p).await;
    got.iter().map(index_of).collect()
}

/// Whether `got` holds each of `0..n` and never an event before one sent earlier first
/// appears: resends may repeat a stretch, but the stream never jumps ahead.
fn in_order_at_least_once(got: &[usize], n: usize) -> Result<(), String> {
    let mut next_new = 0;
    for (j, &i) in got.iter().enumerate() {
        if i > next_new {
            return Err(format!("at {j}: event {i} before event {next_new}"));
        }
        if i == next_new {
            next_new += 1;
        }
    }
    if next_new != n {
        return Err(format!("only events 0..{next_new} of {n} stored"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_pipelined_so_a_refused_first_batch_is_not_resent_behind_later_ones() {
    let emu = support::emulator().await;
    let client = builder(&emu).retry(quick_retry()).build().unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    // Only the first delivery is refused: the batches sent before its outcome came back are
    // stored, which can only happen if they were in flight together with it.
    emu.reject_next_sends([busy()]);
    let n = 20_000;
    let err = producer
        .send_all(events(n, 1000), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EventDataSend, "{err}");
    assert_eq!(err.condition(), Some("com.microsoft:server-busy"));
    assert!(!err.is_transient(), "a resend would reorder: {err}");
    let text = err.to_string();
    assert!(
        text.contains("batch 1 of") && text.contains("0 stored before it"),
        "{text}"
    );
    assert!(text.contains("would reorder"), "{text}");
    let got = stored(&emu, "0").await;
    assert!(!got.is_empty(), "later batches stored");
    assert!(got[0] > 0, "the first batch was refused: {:?}", &got[..3]);
    // What was stored is one stretch in order: the window after the refused batch.
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "one run in order");
    let per_batch = got[0];
    assert!(
        got.len() <= per_batch * (SEND_ALL_IN_FLIGHT - 1),
        "{} events stored, {per_batch} per batch: no more than the window after the first",
        got.len()
    );
    assert!(got.len() < n - per_batch, "stopped rather than going on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_window_is_resent_whole_in_order() {
    let emu = support::emulator().await;
    let client = builder(&emu).retry(quick_retry()).build().unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    // Every batch of the first window refused (a throttled service refuses what follows
    // too): nothing after a refused batch was stored, so all of them are resent.
    emu.reject_next_sends(std::iter::repeat_n(busy(), SEND_ALL_IN_FLIGHT));
    let n = 12_000;
    let batches = producer
        .send_all(events(n, 1000), SendOptions::default())
        .await
        .unwrap();
    assert!(batches > SEND_ALL_IN_FLIGHT, "{batches} batches");
    assert_eq!(emu.pending_send_faults(), 0);
    let got = stored(&emu, "1").await;
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "once each, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_send_all_is_pipelined_and_exactly_once_after_a_refusal() {
    let emu = support::emulator().await;
    let client = builder(&emu).retry(quick_retry()).build().unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("2").with_enable_idempotent_partitions(true))
        .await
        .unwrap();
    // The first batch refused: the service refuses the numbered batches after it as out
    // of order (a gap), so a resend from the first one stores everything once, in order.
    emu.reject_next_sends([busy()]);
    let n = 12_000;
    producer
        .send_all(events(n, 1000), SendOptions::default())
        .await
        .unwrap();
    let got = stored(&emu, "2").await;
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "once each, in order");
    let state = producer
        .get_partition_publishing_properties("2")
        .await
        .unwrap();
    assert_eq!(state.last_published_sequence_number, Some(n as i32 - 1));
    // The next run numbers on from there.
    producer
        .send_all(events(10, 100), SendOptions::default())
        .await
        .unwrap();
    assert_eq!(stored(&emu, "2").await.len(), n + 10);
}

/// `send_all` through a proxy that cuts, truncates and stalls connections every 1-3 s:
/// every event stored, none ahead of an earlier one; with idempotence, exactly once.
async fn through_faults(idempotent: bool, partition: &str) {
    let emu = support::emulator().await;
    let proxy = Arc::new(Proxy::start(emu.local_addr()).await);
    let client = builder(&emu)
        .custom_endpoint("127.0.0.1", proxy.port)
        .retry(
            RetryOptions::default()
                .with_max_retries(1000)
                .with_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(200)),
        )
        .operation_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let producer = client
        .create_producer(
            ProducerOptions::partition(partition).with_enable_idempotent_partitions(idempotent),
        )
        .await
        .unwrap();
    let chaos = Chaos::start(proxy.clone());
    // Rounds of 8 batches (the window) until the chaos has struck a few times, each one
    // send_all. A pause between rounds bounds what a fast (release) build piles up in the
    // partition while waiting for the faults: it must stay under the emulator's retention.
    let round = 8_000;
    let mut sent = 0;
    while chaos.faults() < 3 || sent == 0 {
        if sent > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let events =
            (sent..sent + round).map(|i| EventData::new(format!("{i:08}{}", "x".repeat(992))));
        producer
            .send_all(events, SendOptions::default())
            .await
            .expect("send_all fails despite retries");
        sent += round;
        assert!(sent < 60 * round, "the chaos never struck");
    }
    let faults = chaos.stop().await;
    let got = stored(&emu, partition).await;
    in_order_at_least_once(&got, sent).unwrap();
    let repeats = got.len() - sent;
    eprintln!(
        "idempotent={idempotent}: {sent} events through {faults} faults, {repeats} stored twice"
    );
    if idempotent {
        assert_eq!(repeats, 0, "exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_through_faults_keeps_the_order() {
    through_faults(false, "3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_send_all_through_faults_is_exactly_once_in_order() {
    through_faults(true, "0").await;
}

#[test]
fn the_order_check_catches_a_jump_ahead() {
    assert!(in_order_at_least_once(&[0, 1, 2, 1, 2, 3], 4).is_ok());
    assert!(in_order_at_least_once(&[0, 2, 1], 3).is_err());
    assert!(in_order_at_least_once(&[0, 1], 3).is_err());
}
