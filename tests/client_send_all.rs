//! `send_all` (events packed into as few batches as fit, sent pipelined) and the blocking
//! mirror's consumer accessors, against the emulator over real sockets.

mod support;

use eventhubs::{ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions};
use eventhubs::{ErrorKind, SendOptions};
use std::time::Duration;

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
