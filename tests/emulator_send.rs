//! Sending to the emulator over real sockets: round-robin, partition keys, partition
//! addresses (paths and URLs), batches unpacked into events, the 1 MiB limit, pipelining.

mod emulator_support;
mod support;

use bytes::Bytes;
use emulator_support::raw::RawPeer;
use emulator_support::*;
use eventhubs::amqp::codec::{Str, Value};
use eventhubs::amqp::types::message::{Message, MessageId};
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::types::transport::Performative;
use eventhubs::emulator::EmulatorOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::{emulator, emulator_with};

const MIB: usize = 1024 * 1024;

fn keyed(key: &str, body: &str) -> Message {
    let mut m = event(Bytes::from(body.to_owned()));
    m.message_annotations_mut()
        .insert("x-opt-partition-key", Value::String(Str::from(key)));
    m
}

fn last_seq(em: &eventhubs::emulator::Emulator, p: u32) -> i64 {
    em.partition_info("eh1", p).unwrap().last_sequence_number
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_sends_are_spread_round_robin() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1").await;
    for i in 0..8u8 {
        send_event(&sender, &event(vec![i])).await;
    }
    for p in 0..4 {
        assert_eq!(last_seq(&em, p), 1, "partition {p} holds two of eight");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_partition_key_same_partition_and_the_key_is_stamped() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1").await;
    let keys = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    for round in 0..3 {
        for k in keys {
            send_event(&sender, &keyed(k, &format!("{k}-{round}"))).await;
        }
    }
    // A batch with the key only on its envelope (Go style): every event gets it.
    let mut envelope = Message::default();
    envelope
        .message_annotations_mut()
        .insert("x-opt-partition-key", Value::String(Str::from("alpha")));
    let events: Vec<Message> = (0..3)
        .map(|i| event(Bytes::from(format!("alpha-batch-{i}"))))
        .collect();
    send_accepted(&sender, batch(&envelope, &events), BATCH_FORMAT).await;

    let mut seen: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut total = 0;
    for p in 0..4u32 {
        let n = (last_seq(&em, p) + 1) as usize;
        total += n;
        let mut rx = open_consumer(
            &session,
            &format!("eh1/ConsumerGroups/$default/Partitions/{p}"),
            Some(EARLIEST),
        )
        .await;
        for m in recv_n(&mut rx, n).await {
            let key = partition_key(&m).expect("every keyed event carries its key");
            let b = String::from_utf8(body(&m).to_vec()).unwrap();
            assert!(b.starts_with(&key), "{b} carries key {key}");
            seen.entry(key).or_default().insert(p);
        }
    }
    assert_eq!(total, 21);
    assert_eq!(seen.len(), keys.len());
    for (k, parts) in &seen {
        assert_eq!(parts.len(), 1, "key {k} landed on {parts:?}");
    }
    let used: BTreeSet<u32> = seen.values().flatten().copied().collect();
    assert!(used.len() > 1, "six keys all hashed to one partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_addresses_as_paths_and_urls() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    for (address, p) in [
        ("eh1/Partitions/3", 3),
        ("amqps://localhost/eh1/Partitions/1", 1),
        (
            &*format!(
                "amqp://127.0.0.1:{}/eh1/partitions/2",
                em.local_addr().port()
            ),
            2,
        ),
        ("/eh1/Partitions/0", 0),
    ] {
        let sender = attach_sender(&session, address).await;
        for i in 0..3u8 {
            send_event(&sender, &keyed("ignored-when-partition-given", "x")).await;
            let _ = i;
        }
        assert_eq!(
            last_seq(&em, p),
            2,
            "three events on partition {p} via {address}"
        );
    }
    let hub_url = attach_sender(&session, "amqps://localhost:5671/eh1").await;
    send_event(&hub_url, &event(&b"via url"[..])).await;
    let total: i64 = (0..4).map(|p| last_seq(&em, p) + 1).sum();
    assert_eq!(total, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_unpacked_into_annotated_events() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/1").await;
    send_event(&sender, &event(&b"before"[..])).await;
    let events: Vec<Message> = (0..5u64)
        .map(|i| {
            let mut m = event(vec![i as u8; 50 + i as usize * 100]);
            m.properties_mut().message_id = Some(MessageId::Ulong(i));
            m.application_properties_mut()
                .insert("index", Value::Long(i as i64));
            m
        })
        .collect();
    // Envelope as Go/Rust build it: a copy of the first event without a body.
    let mut envelope = events[0].clone();
    envelope.body = Default::default();
    send_accepted(&sender, batch(&envelope, &events), BATCH_FORMAT).await;
    send_event(&sender, &event(&b"after"[..])).await;

    let mut rx = open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/1",
        Some(EARLIEST),
    )
    .await;
    let got = recv_n(&mut rx, 7).await;
    let seqs: Vec<i64> = got.iter().map(seq).collect();
    assert_eq!(seqs, (0..7).collect::<Vec<_>>());
    let offsets: Vec<i64> = got.iter().map(offset).collect();
    assert_eq!(offsets[0], 0);
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "offsets increase: {offsets:?}"
    );
    let times: Vec<i64> = got.iter().map(enqueued).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        times[1..6].iter().all(|&t| t == times[1]),
        "one batch, one time"
    );
    assert_eq!(body(&got[0]), Bytes::from_static(b"before"));
    assert_eq!(body(&got[6]), Bytes::from_static(b"after"));
    for (i, m) in got[1..6].iter().enumerate() {
        assert_eq!(body(m), Bytes::from(vec![i as u8; 50 + i * 100]));
        assert_eq!(
            m.properties.as_ref().unwrap().message_id,
            Some(MessageId::Ulong(i as u64))
        );
        assert_eq!(
            m.application_property("index"),
            Some(&Value::Long(i as i64))
        );
        assert_eq!(partition_key(m), None);
    }
    // The received event is the event as sent plus the service's annotations.
    let mut expected = events[2].clone();
    expected.message_annotations = got[3].message_annotations.clone();
    assert_eq!(got[3], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_one_mib_are_refused_with_message_size_exceeded() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    assert_eq!(sender.max_message_size(), Some(MIB as u64));

    // Just under the limit, as a batch of ~1 KiB events: accepted and unpacked.
    let one = event(vec![7u8; 1000]);
    let per = eventhubs::wire::batch::data_section_len(encode(&one).len());
    let n = MIB / per;
    let events = vec![one; n];
    let payload = batch(&Message::default(), &events);
    assert!(payload.len() <= MIB && payload.len() > MIB - per);
    send_accepted(&sender, payload, BATCH_FORMAT).await;
    assert_eq!(last_seq(&em, 0), n as i64 - 1);

    // Over it: our own sender stops it locally with the same condition.
    let big = encode(&event(vec![0u8; MIB]));
    let e = sender.start_send_bytes(big.clone(), 0, false).await;
    let e = match e {
        Ok(p) => p.await.expect_err("oversize send must fail"),
        Err(e) => e,
    };
    assert_eq!(condition(&e), "amqp:link:message-size-exceeded");

    // A peer that ignores the announced limit: the emulator refuses the delivery.
    let open = emulator_with(EmulatorOptions::ephemeral().with_require_auth(false)).await;
    let mut raw = RawPeer::connect(open.local_addr().port()).await;
    let attach = raw.attach_sender("eh1/Partitions/0").await;
    assert_eq!(attach.max_message_size, Some(MIB as u64));
    raw.transfer(&big, 60_000).await;
    let mut refusal = None;
    while let Some((p, _)) = raw.next(PROMPT).await {
        match p {
            Performative::Detach(d) => {
                refusal = d.error.map(|e| e.condition.as_str().to_owned());
                break;
            }
            Performative::Disposition(d) => {
                let Some(DeliveryState::Rejected(r)) = d.state else {
                    panic!("oversize delivery settled as {:?}", d.state);
                };
                refusal = r.error.map(|e| e.condition.as_str().to_owned());
                break;
            }
            _ => {}
        }
    }
    assert_eq!(refusal.as_deref(), Some("amqp:link:message-size-exceeded"));
    assert!(open.partition_info("eh1", 0).unwrap().is_empty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_deliveries_are_all_settled() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/2").await;
    let n = 3000u32;
    let mut pending = Vec::with_capacity(n as usize);
    for i in 0..n {
        let m = event(Bytes::from(i.to_be_bytes().to_vec()));
        pending.push(sender.start_send(&m).await.unwrap());
    }
    // Batches pipelined behind them.
    for b in 0..20u32 {
        let events: Vec<Message> = (0..50u32)
            .map(|i| event(Bytes::from((n + b * 50 + i).to_be_bytes().to_vec())))
            .collect();
        pending.push(
            sender
                .start_send_bytes(batch(&Message::default(), &events), BATCH_FORMAT, false)
                .await
                .unwrap(),
        );
    }
    let outcomes = tokio::time::timeout(Duration::from_secs(20), async {
        let mut v = Vec::new();
        for p in pending {
            v.push(p.await.unwrap());
        }
        v
    })
    .await
    .expect("all settled");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Some(DeliveryState::Accepted(_)))));
    let total = n + 20 * 50;
    assert_eq!(last_seq(&em, 2), i64::from(total) - 1);
    // Stored in the order sent.
    let mut rx = open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/2",
        Some(EARLIEST),
    )
    .await;
    for (i, m) in recv_n(&mut rx, total as usize).await.iter().enumerate() {
        assert_eq!(body(m), Bytes::from((i as u32).to_be_bytes().to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_send_targets_are_not_found() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    for address in [
        "nohub",
        "nohub/Partitions/0",
        "eh1/Partitions/4",
        "eh1/Partitions/x",
        "eh1/Bogus/0",
        "amqps://localhost/nohub",
    ] {
        assert_eq!(
            refused_sender(&session, address).await,
            "amqp:not-found",
            "{address}"
        );
    }
}
