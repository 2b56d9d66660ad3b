//! The blocking mirror against the emulator, from plain threads.

mod client_common;
mod support;

use eventhubs::blocking::EventHubClient;
use eventhubs::emulator::Emulator;
use eventhubs::{
    BatchOptions, ConsumerOptions, ErrorKind, EventData, EventPosition, ProducerOptions,
};
use std::time::Duration;

fn start_emulator() -> (tokio::runtime::Runtime, Emulator) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(support::emulator());
    (rt, emu)
}

#[test]
fn blocking_send_batch_receive() {
    let (_rt, emu) = start_emulator();
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some("eh1")).unwrap();
    assert_eq!(client.get_partition_ids().unwrap(), ["0", "1", "2", "3"]);
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .unwrap();
    for i in 0..5 {
        producer.send(EventData::from(format!("s{i}"))).unwrap();
    }
    let mut batch = producer.create_batch(BatchOptions::default()).unwrap();
    for i in 5..50 {
        batch.try_add(EventData::from(format!("s{i}"))).unwrap();
    }
    producer.send(batch).unwrap();
    producer
        .send(vec![EventData::from("s50"), EventData::from("s51")])
        .unwrap();
    assert_eq!(
        client
            .get_partition_properties("0")
            .unwrap()
            .last_enqueued_sequence_number,
        51
    );

    let mut consumer = client
        .create_consumer(
            "$default",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .unwrap();
    let mut n = 0;
    while n < 52 {
        for e in consumer.receive(20, Duration::from_secs(5)).unwrap() {
            assert_eq!(e.body_as_str().unwrap(), format!("s{n}"));
            n += 1;
        }
    }
    assert_eq!(consumer.last_sequence_number(), Some(51));
    assert!(consumer
        .receive(10, Duration::from_millis(200))
        .unwrap()
        .is_empty());
    producer.send(EventData::from("s52")).unwrap();
    let e = consumer.iter().next().unwrap().unwrap();
    assert_eq!(e.body_as_str().unwrap(), "s52");
    consumer.close().unwrap();
    producer.close().unwrap();

    let e = client
        .create_producer(ProducerOptions::partition("99"))
        .unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"));
    assert_eq!(e.kind(), ErrorKind::NotFound);
    client.close().unwrap();
    let e = client.get_properties().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventHub);
}

#[test]
fn blocking_clients_on_many_threads() {
    let (_rt, emu) = start_emulator();
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some("eh1")).unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("2"))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let p = producer.clone();
            s.spawn(move || {
                for i in 0..25 {
                    p.send(EventData::from(format!("{t}-{i}"))).unwrap();
                }
            });
        }
    });
    assert_eq!(
        client
            .get_partition_properties("2")
            .unwrap()
            .last_enqueued_sequence_number,
        99
    );
    drop(producer);
    drop(client);
}

#[test]
fn blocking_read_all_partitions_reads_each_partition_in_order_then_ends() {
    let (_rt, emu) = start_emulator();
    let client =
        EventHubClient::from_connection_string(&emu.connection_string(), Some("eh1")).unwrap();
    for p in ["0", "1", "3"] {
        let producer = client
            .create_producer(ProducerOptions::partition(p))
            .unwrap();
        let events = (0..30).map(|i| EventData::from(format!("{p}-{i}")));
        producer
            .send_all(events, eventhubs::SendOptions::default())
            .unwrap();
    }
    let options = eventhubs::ReadAllOptions::default()
        .with_stop_at_end(true)
        .with_max_batch_size(7);
    let mut reader = client
        .read_all_partitions("$default", EventPosition::earliest(), options)
        .unwrap();
    assert_eq!(reader.partition_ids(), ["0", "1", "2", "3"]);
    // One batch first, then the Iterator for the rest.
    let first = reader.next_batch().unwrap().unwrap();
    assert!(!first.events.is_empty() && first.events.len() <= 7);
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    seen.entry(first.partition_id.clone()).or_default().extend(
        first
            .events
            .iter()
            .map(|e| e.body_as_str().unwrap().to_owned()),
    );
    for e in reader.by_ref() {
        let e = e.unwrap();
        seen.entry(e.partition_id().to_owned())
            .or_default()
            .push(e.event().body_as_str().unwrap().to_owned());
    }
    assert!(reader.next().is_none(), "ended once caught up");
    assert_eq!(seen.len(), 3, "partition 2 holds nothing: {seen:?}");
    for (p, bodies) in &seen {
        let want: Vec<String> = (0..30).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(bodies, &want, "partition {p} complete and in order");
    }
    drop(reader);
    client.close().unwrap();
}
