//! Send/receive round trips against the emulator over real sockets: management, every start
//! position, batches, partition keys, lists.

mod client_common;
mod support;

use client_common::*;
use eventhubs::amqp::codec::Value;
use eventhubs::AmqpValue;
use eventhubs::{
    BatchOptions, ConsumerOptions, ErrorKind, EventData, EventPosition, ProducerOptions,
    SendOptions,
};
use std::time::{Duration, SystemTime};
use support::emulator;

async fn recv_n(c: &mut eventhubs::EventHubConsumer, n: usize) -> Vec<EventData> {
    let mut out = Vec::new();
    while out.len() < n {
        let got = c
            .receive(n - out.len(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            !got.is_empty(),
            "timed out after {} of {n} events",
            out.len()
        );
        // The position recorded is the batch's last event, however many came at once.
        let last = got.last().unwrap();
        assert_eq!(c.last_offset(), last.offset());
        assert_eq!(c.last_sequence_number(), last.sequence_number());
        out.extend(got);
    }
    out
}

async fn management_properties(wire: Wire) {
    let emu = wire.emulator().await;
    let client = wire.builder(&emu).build().unwrap();
    let props = client.get_properties().await.unwrap();
    assert_eq!(props.name, "eh1");
    assert_eq!(props.partition_ids, ["0", "1", "2", "3"]);
    assert_eq!(client.get_partition_ids().await.unwrap().len(), 4);
    let p = client.get_partition_properties("2").await.unwrap();
    assert_eq!(p.id, "2");
    assert_eq!(p.event_hub_name, "eh1");
    assert!(p.is_empty);
    assert_eq!(p.last_enqueued_sequence_number, -1);

    let producer = client
        .create_producer(ProducerOptions::partition("2"))
        .await
        .unwrap();
    producer.send(EventData::from("a")).await.unwrap();
    producer.send(EventData::from("b")).await.unwrap();
    let p = client.get_partition_properties("2").await.unwrap();
    assert!(!p.is_empty);
    assert_eq!(p.beginning_sequence_number, 0);
    assert_eq!(p.last_enqueued_sequence_number, 1);
    assert_ne!(p.last_enqueued_offset, "-1");
    assert!(p.last_enqueued_time_utc > SystemTime::now() - Duration::from_secs(60));
    client.close().await.unwrap();
}

async fn round_trip_with_properties_and_all_positions(wire: Wire) {
    let emu = wire.emulator().await;
    let client = wire.builder(&emu).build().unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    assert_eq!(producer.max_message_size(), 1024 * 1024);
    let before = SystemTime::now() - Duration::from_secs(1);
    for i in 0..10i64 {
        let mut e = EventData::from(format!("event {i}"))
            .with_property("index", i)
            .with_property("name", format!("n{i}"))
            .with_property("ratio", i as f32 / 2.0)
            .with_property("even", i % 2 == 0)
            .with_property("raw", bytes::Bytes::from(vec![i as u8; 3]))
            .with_property("small", i as u8);
        e.set_content_type("text/plain");
        producer.send(e).await.unwrap();
    }
    // Earliest.
    let mut c = client
        .create_consumer(
            "$default",
            "1",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let events = recv_n(&mut c, 10).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.body_as_str().unwrap(), format!("event {i}"));
        assert_eq!(e.property("index"), Some(&Value::Long(i as i64)));
        assert_eq!(e.property("index"), Some(&AmqpValue::Long(i as i64)));
        // The typed getters, without reaching into the codec.
        assert_eq!(e.property_i64("index"), Some(i as i64));
        assert_eq!(e.property_i64("small"), Some(i as i64), "a ubyte widens");
        assert_eq!(e.property_str("name"), Some(format!("n{i}").as_str()));
        assert_eq!(
            e.property_f64("ratio"),
            Some(i as f64 / 2.0),
            "a float widens"
        );
        assert_eq!(e.property_bool("even"), Some(i % 2 == 0));
        assert_eq!(
            e.property_bytes("raw").map(|b| b.to_vec()),
            Some(vec![i as u8; 3])
        );
        assert_eq!(e.property_str("index"), None, "wrong type is None");
        assert_eq!(e.property_i64("missing"), None);
        assert_eq!(e.property_time("index"), None);
        assert_eq!(e.content_type(), Some("text/plain"));
        assert_eq!(e.sequence_number(), Some(i as i64));
        assert!(e.offset().is_some());
        assert!(e.enqueued_time().unwrap() >= before);
        assert!(e.is_received());
    }
    let fifth = &events[5];
    // Sequence number, exclusive and inclusive.
    for (pos, first) in [
        (EventPosition::sequence_number(5), 6),
        (EventPosition::sequence_number(5).inclusive(true), 5),
        (EventPosition::offset(fifth.offset().unwrap()), 6),
        (
            EventPosition::offset(fifth.offset().unwrap()).inclusive(true),
            5,
        ),
        (EventPosition::enqueued_time(before), 0),
    ] {
        let mut c = client
            .create_consumer("cg1", "1", pos.clone(), ConsumerOptions::default())
            .await
            .unwrap();
        let got = recv_n(&mut c, 10 - first).await;
        assert_eq!(got[0].sequence_number(), Some(first as i64), "{pos:?}");
        assert_eq!(got.last().unwrap().sequence_number(), Some(9));
    }
    // Latest: only what comes after attaching.
    let mut latest = client
        .create_consumer(
            "$default",
            "1",
            EventPosition::latest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    assert!(latest
        .receive(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    producer.send(EventData::from("late")).await.unwrap();
    let got = recv_n(&mut latest, 1).await;
    assert_eq!(got[0].body_as_str().unwrap(), "late");
    assert_eq!(got[0].sequence_number(), Some(10));
}

async fn batches_lists_and_partition_keys(wire: Wire) {
    let emu = wire.emulator().await;
    let client = wire.builder(&emu).build().unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("3"))
        .await
        .unwrap();
    let mut batch = producer
        .create_batch(BatchOptions::default())
        .await
        .unwrap();
    assert_eq!(batch.max_size(), 1024 * 1024);
    for i in 0..100 {
        batch.try_add(EventData::from(format!("b{i}"))).unwrap();
    }
    producer.send(batch).await.unwrap();
    let list: Vec<EventData> = (0..5).map(|i| EventData::from(format!("l{i}"))).collect();
    producer.send(list).await.unwrap();
    let mut c = client
        .create_consumer(
            "$default",
            "3",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let got = recv_n(&mut c, 105).await;
    for (i, e) in got.iter().take(100).enumerate() {
        assert_eq!(e.body_as_str().unwrap(), format!("b{i}"));
    }
    assert_eq!(got[104].body_as_str().unwrap(), "l4");

    // A smaller max size is honoured; a larger one is an error naming both numbers.
    let small = producer
        .create_batch(BatchOptions::default().max_size(100))
        .await
        .unwrap();
    assert_eq!(small.max_size(), 100);
    let e = producer
        .create_batch(BatchOptions::default().max_size(5_000_000))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.to_string().contains("5000000") && e.to_string().contains("1048576"),
        "{e}"
    );
    // Keys cannot go to a partition producer.
    let e = producer
        .send_with_options(
            EventData::from("x"),
            SendOptions::default().with_partition_key("k"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    // Partition keys through the hub: same key, same partition.
    let hub = client
        .create_producer(ProducerOptions::default())
        .await
        .unwrap();
    let mut keyed = hub
        .create_batch(BatchOptions::default().partition_key("device-7"))
        .await
        .unwrap();
    for i in 0..3 {
        keyed.try_add(EventData::from(format!("k{i}"))).unwrap();
    }
    hub.send(keyed).await.unwrap();
    hub.send_with_options(
        EventData::from("k3"),
        SendOptions::default().with_partition_key("device-7"),
    )
    .await
    .unwrap();
    hub.send_with_options(
        vec![EventData::from("k4"), EventData::from("k5")],
        SendOptions::default().with_partition_key("device-7"),
    )
    .await
    .unwrap();
    let mut found = None;
    for p in ["0", "1", "2", "3"] {
        let props = client.get_partition_properties(p).await.unwrap();
        let n = props.last_enqueued_sequence_number + 1;
        let mut c = client
            .create_consumer(
                "cg1",
                p,
                EventPosition::earliest(),
                ConsumerOptions::default(),
            )
            .await
            .unwrap();
        let got = recv_n(&mut c, n as usize).await;
        let keyed: Vec<_> = got
            .iter()
            .filter(|e| e.partition_key() == Some("device-7"))
            .collect();
        if !keyed.is_empty() {
            assert!(found.is_none(), "key spread over partitions");
            let bodies: Vec<_> = keyed
                .iter()
                .map(|e| e.body_as_str().unwrap().to_owned())
                .collect();
            assert_eq!(bodies, ["k0", "k1", "k2", "k3", "k4", "k5"]);
            found = Some(p);
        }
    }
    assert!(found.is_some());

    // Round robin: events sent to the hub without a key land on more than one partition.
    for i in 0..8 {
        hub.send(EventData::from(format!("rr{i}"))).await.unwrap();
    }
    let mut used = 0;
    for p in 0..4u32 {
        let info = client
            .get_partition_properties(&p.to_string())
            .await
            .unwrap();
        if !info.is_empty {
            used += 1;
        }
    }
    assert!(used >= 2, "round robin used {used} partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_from_many_tasks() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let p = producer.clone();
        set.spawn(async move { p.send(EventData::from(format!("p{i}"))).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let info = client.get_partition_properties("0").await.unwrap();
    assert_eq!(info.last_enqueued_sequence_number, 199);
    let mut c = client
        .create_consumer(
            "$default",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut stream = c.stream();
    let mut n = 0;
    while n < 200 {
        let e = stream.next().await.unwrap().unwrap();
        assert_eq!(e.sequence_number(), Some(n));
        n += 1;
    }
}

over_each_wire!(
    management_properties,
    round_trip_with_properties_and_all_positions,
    batches_lists_and_partition_keys,
);
