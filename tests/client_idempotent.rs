//! Exactly-once publishing against the emulator over real sockets: the state in the attach,
//! the stamps on every event (single and batched), the wrap from `i32::MAX` to 0, a resend
//! dropped as a duplicate, a gap refused, a stolen epoch (the old links detached at once, the
//! old producer's pending and later sends failing for good), and the state kept across a
//! restart on the same data directory.

mod client_common;
mod emulator_support;
mod support;

use client_common::*;
use emulator_support::{authorized, batch, body, encode, event, BATCH_FORMAT};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::{Sender, SenderOptions, Session};
use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::wire::idempotent::{self, PublishingState, Stamp};
use eventhubs::wire::link_props::IDEMPOTENT_PRODUCER;
use eventhubs::{
    BatchOptions, ConsumerOptions, ErrorKind, EventData, EventPosition, PartitionPublishingOptions,
    ProducerOptions,
};
use std::time::Duration;
use support::{emulator, emulator_with, Proxy};

fn idempotent(partition: &str) -> ProducerOptions {
    ProducerOptions::partition(partition).with_enable_idempotent_partitions(true)
}

fn seeded(partition: &str, id: i64, epoch: i16, last: i32) -> ProducerOptions {
    idempotent(partition).with_partition_options(
        partition,
        PartitionPublishingOptions::default()
            .with_producer_group_id(id)
            .with_owner_level(epoch)
            .with_starting_sequence_number(last),
    )
}

/// Every event of `partition`, in order.
async fn read_all(em: &Emulator, partition: &str) -> Vec<EventData> {
    let c = client(em);
    let info = c.get_partition_properties(partition).await.unwrap();
    let n = (info.last_enqueued_sequence_number + 1) as usize;
    let mut consumer = c
        .create_consumer(
            "$default",
            partition,
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut all = Vec::new();
    while all.len() < n {
        let got = consumer.receive(500, Duration::from_secs(5)).await.unwrap();
        assert!(!got.is_empty(), "stalled at {} of {n}", all.len());
        all.extend(got);
    }
    all
}

fn stamp_of(e: &EventData) -> Stamp {
    idempotent::read_stamp(e.raw_message())
        .unwrap()
        .expect("the event carries the producer stamp")
}

/// A raw idempotent sender on `partition` of `eh1` asking for `requested`.
async fn raw_sender(
    session: &Session,
    partition: u32,
    requested: Option<PublishingState>,
) -> (Sender, PublishingState) {
    let mut o = SenderOptions::new(format!("eh1/Partitions/{partition}"));
    o.desired_capabilities = Some(vec![IDEMPOTENT_PRODUCER]);
    o.properties = Some(idempotent::link_properties(requested.as_ref()));
    let sender = session.attach_sender(o).await.unwrap();
    let state = idempotent::read_link_properties(
        sender.remote_attach().and_then(|a| a.properties.as_ref()),
    )
    .unwrap()
    .expect("the attach reply carries the state");
    (sender, state)
}

fn stamped(state: PublishingState, seq: i32, text: &str) -> Message {
    let mut m = event(text.to_owned());
    idempotent::stamp(
        &mut m,
        Stamp {
            producer_id: state.producer_id,
            owner_level: state.owner_level,
            sequence: seq,
        },
    );
    m
}

async fn outcome(sender: &Sender, payload: bytes::Bytes, format: u32) -> DeliveryState {
    sender
        .start_send_bytes(payload, format, false)
        .await
        .unwrap()
        .await
        .unwrap()
        .expect("an outcome")
}

fn rejected_with(state: DeliveryState, condition: &str) {
    match state {
        DeliveryState::Rejected(r) => {
            assert_eq!(r.error.expect("an error").condition.as_str(), condition)
        }
        other => panic!("expected a rejection with {condition}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_batches_are_stamped_from_the_attach_state() {
    let em = emulator().await;
    let c = client(&em);
    let p = c.create_producer(idempotent("0")).await.unwrap();
    let start = p.get_partition_publishing_properties("0").await.unwrap();
    assert!(start.is_idempotent_publishing_enabled);
    let id = start.producer_group_id.expect("the service assigned an id");
    assert_eq!(start.owner_level, Some(0));
    assert_eq!(start.last_published_sequence_number, Some(-1));

    p.send(EventData::from("single")).await.unwrap();
    p.send(vec![EventData::from("list-a"), EventData::from("list-b")])
        .await
        .unwrap();
    let mut b = p.create_batch(BatchOptions::default()).await.unwrap();
    for i in 0..5 {
        b.add(EventData::from(format!("batch-{i}"))).unwrap();
    }
    p.send(b).await.unwrap();
    let now = p.get_partition_publishing_properties("0").await.unwrap();
    assert_eq!(now.last_published_sequence_number, Some(7));
    assert_eq!(now.producer_group_id, Some(id));

    let all = read_all(&em, "0").await;
    assert_eq!(all.len(), 8);
    for (i, e) in all.iter().enumerate() {
        let s = stamp_of(e);
        assert_eq!((s.producer_id, s.owner_level), (id, 0));
        assert_eq!(s.sequence, i as i32);
    }
    assert_eq!(all[0].body_as_str().unwrap(), "single");
    assert_eq!(all[7].body_as_str().unwrap(), "batch-4");

    let other = p
        .get_partition_publishing_properties("1")
        .await
        .unwrap_err();
    assert_eq!(other.kind(), ErrorKind::InvalidArgument);
    let plain = c
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    let off = plain
        .get_partition_publishing_properties("0")
        .await
        .unwrap();
    assert!(!off.is_idempotent_publishing_enabled);
    assert_eq!(off.producer_group_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_needs_a_partition_and_whole_options() {
    let em = emulator().await;
    let c = client(&em);
    let e = c
        .create_producer(ProducerOptions::default().with_enable_idempotent_partitions(true))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let partial = idempotent("1").with_partition_options(
        "1",
        PartitionPublishingOptions::default().with_producer_group_id(5),
    );
    let e = c.create_producer(partial).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_wrap_from_i32_max_to_zero() {
    let em = emulator().await;
    let c = client(&em);
    let p = c
        .create_producer(seeded("2", 4242, 3, i32::MAX - 1))
        .await
        .unwrap();
    let s = p.get_partition_publishing_properties("2").await.unwrap();
    assert_eq!(s.last_published_sequence_number, Some(i32::MAX - 1));
    p.send(vec![
        EventData::from("a"),
        EventData::from("b"),
        EventData::from("c"),
    ])
    .await
    .unwrap();
    p.send(EventData::from("d")).await.unwrap();
    let seqs: Vec<i32> = read_all(&em, "2")
        .await
        .iter()
        .map(|e| stamp_of(e).sequence)
        .collect();
    assert_eq!(seqs, vec![i32::MAX, 0, 1, 2]);
    let s = p.get_partition_publishing_properties("2").await.unwrap();
    assert_eq!(
        (
            s.producer_group_id,
            s.owner_level,
            s.last_published_sequence_number
        ),
        (Some(4242), Some(3), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_is_accepted_once_and_a_gap_is_refused() {
    let em = emulator().await;
    let (_conn, session) = authorized(&em).await;
    let (sender, state) = raw_sender(&session, 3, None).await;
    assert_eq!(state.last_sequence, -1);
    let events: Vec<Message> = (0..4)
        .map(|i| stamped(state, i, &format!("e{i}")))
        .collect();
    let payload = batch(&Message::default(), &events);
    assert!(matches!(
        outcome(&sender, payload.clone(), BATCH_FORMAT).await,
        DeliveryState::Accepted(_)
    ));
    // The same delivery again (an acknowledgement lost): accepted, not stored again.
    assert!(matches!(
        outcome(&sender, payload, BATCH_FORMAT).await,
        DeliveryState::Accepted(_)
    ));
    assert!(matches!(
        outcome(&sender, encode(&events[2]), 0).await,
        DeliveryState::Accepted(_)
    ));
    assert_eq!(em.partition_info("eh1", 3).unwrap().last_sequence_number, 3);
    // Sequence 5 after 3 skips 4.
    rejected_with(
        outcome(&sender, encode(&stamped(state, 5, "gap")), 0).await,
        "com.microsoft:out-of-order-sequence",
    );
    // An event without the stamp on an idempotent link is refused too.
    assert!(matches!(
        outcome(&sender, encode(&event("bare")), 0).await,
        DeliveryState::Rejected(_)
    ));
    assert!(matches!(
        outcome(&sender, encode(&stamped(state, 4, "e4")), 0).await,
        DeliveryState::Accepted(_)
    ));
    let bodies: Vec<bytes::Bytes> = read_all(&em, "3")
        .await
        .iter()
        .map(|e| body(e.raw_message()))
        .collect();
    assert_eq!(
        bodies,
        ["e0", "e1", "e2", "e3", "e4"].map(bytes::Bytes::from)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_epoch_steals_the_producer_id() {
    let em = emulator().await;
    let c = client(&em);
    let first = c.create_producer(idempotent("1")).await.unwrap();
    first.send(EventData::from("one")).await.unwrap();
    let s = first
        .get_partition_publishing_properties("1")
        .await
        .unwrap();
    let id = s.producer_group_id.unwrap();
    // Epoch 1 takes the id over, restarting the sequence where it asks.
    let second = c.create_producer(seeded("1", id, 1, 99)).await.unwrap();
    let t = second
        .get_partition_publishing_properties("1")
        .await
        .unwrap();
    assert_eq!(
        (t.owner_level, t.last_published_sequence_number),
        (Some(1), Some(99))
    );
    second.send(EventData::from("two")).await.unwrap();
    // The old owner's next send is refused for good (no retry hides it).
    let e = first.send(EventData::from("late")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProducerEpochStolen, "{e}");
    assert!(!e.is_transient());
    // And a producer asking for the old epoch cannot attach.
    let e = c.create_producer(seeded("1", id, 0, 0)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProducerEpochStolen, "{e}");
    let all = read_all(&em, "1").await;
    assert_eq!(all.len(), 2);
    assert_eq!(stamp_of(&all[1]).sequence, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_survives_a_restart_on_the_same_data_dir() {
    let dir = std::env::temp_dir().join(format!(
        "ehub-idempotent-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    let id = {
        let em = emulator_with(EmulatorOptions::ephemeral().with_data_dir(&dir)).await;
        let c = client(&em);
        let p = c.create_producer(idempotent("0")).await.unwrap();
        for i in 0..10 {
            p.send(EventData::from(format!("before-{i}")))
                .await
                .unwrap();
        }
        let s = p.get_partition_publishing_properties("0").await.unwrap();
        p.close().await.unwrap();
        c.close().await.unwrap();
        s.producer_group_id.unwrap()
    };
    let em = emulator_with(EmulatorOptions::ephemeral().with_data_dir(&dir)).await;
    // Asking for the id with an old sequence number: the stored one comes back.
    let c = client(&em);
    let p = c.create_producer(seeded("0", id, 0, 3)).await.unwrap();
    let s = p.get_partition_publishing_properties("0").await.unwrap();
    assert_eq!(s.last_published_sequence_number, Some(9));
    // A resend of an event stored before the restart is dropped.
    let (_conn, session) = authorized(&em).await;
    let (sender, state) = raw_sender(
        &session,
        0,
        Some(PublishingState {
            producer_id: id,
            owner_level: 0,
            last_sequence: 9,
        }),
    )
    .await;
    assert_eq!(state.last_sequence, 9);
    assert!(matches!(
        outcome(&sender, encode(&stamped(state, 9, "before-9")), 0).await,
        DeliveryState::Accepted(_)
    ));
    p.send(EventData::from("after")).await.unwrap();
    let all = read_all(&em, "0").await;
    assert_eq!(all.len(), 11);
    assert_eq!(stamp_of(&all[10]).sequence, 10);
    // A fresh id is not one handed out before.
    let fresh = c.create_producer(idempotent("0")).await.unwrap();
    let f = fresh
        .get_partition_publishing_properties("0")
        .await
        .unwrap();
    assert_ne!(f.producer_group_id, Some(id));
    drop(em);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn send_all_on_an_idempotent_producer_stamps_every_event_and_fills_batches_with_room() {
    let em = emulator().await;
    let c = client(&em);
    let p = c.create_producer(idempotent("2")).await.unwrap();
    // Large enough bodies that the events span several batches, each filled to the limit:
    // without room for the stamps a full batch would outgrow the link's max-message-size.
    let events: Vec<EventData> = (0..300)
        .map(|i| EventData::new(vec![b'x'; 10_000]).with_property("i", i as i64))
        .collect();
    let batches = p.send_all(events, Default::default()).await.unwrap();
    assert!(batches > 1, "{batches} batch(es)");
    let all = read_all(&em, "2").await;
    assert_eq!(all.len(), 300);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(stamp_of(e).sequence, i as i32);
        assert_eq!(e.property_i64("i"), Some(i as i64));
    }
    let now = p.get_partition_publishing_properties("2").await.unwrap();
    assert_eq!(now.last_published_sequence_number, Some(299));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_epoch_detaches_the_older_links_at_once() {
    let em = emulator().await;
    let (_conn, session) = authorized(&em).await;
    let (old, state) = raw_sender(&session, 2, None).await;
    // A second link of the same producer and epoch (as after a reconnect), and another producer.
    let (twin, _) = raw_sender(&session, 2, Some(state)).await;
    let (bystander, other) = raw_sender(&session, 2, None).await;
    assert_ne!(other.producer_id, state.producer_id);
    assert!(matches!(
        outcome(&old, encode(&stamped(state, 0, "before")), 0).await,
        DeliveryState::Accepted(_)
    ));
    let taken = PublishingState {
        owner_level: 1,
        ..state
    };
    let (new, now) = raw_sender(&session, 2, Some(taken)).await;
    assert_eq!(now, taken);
    // No send needed: the emulator detaches both old links as the new one attaches (a
    // generous bound, only so that a regression fails instead of hanging).
    for (what, link) in [("old", &old), ("twin", &twin)] {
        let gone = tokio::time::timeout(Duration::from_secs(10), link.detached())
            .await
            .unwrap_or_else(|_| panic!("the {what} link is still attached after the takeover"));
        match gone {
            eventhubs::amqp::Error::LinkDetached(Some(e)) => {
                assert_eq!(
                    e.condition.as_str(),
                    "com.microsoft:producer-epoch-stolen",
                    "{what}"
                );
            }
            other => panic!("the {what} link ended with {other:?}, not a stolen epoch"),
        }
    }
    // The new owner and the other producer publish on.
    assert!(matches!(
        outcome(&new, encode(&stamped(taken, 0, "after")), 0).await,
        DeliveryState::Accepted(_)
    ));
    assert!(!bystander.is_detached());
    assert!(matches!(
        outcome(&bystander, encode(&stamped(other, 0, "other")), 0).await,
        DeliveryState::Accepted(_)
    ));
    // Reattaching with the same (higher) epoch detaches nobody.
    let (again, _) = raw_sender(&session, 2, Some(taken)).await;
    assert!(matches!(
        outcome(&new, encode(&stamped(taken, 1, "after-2")), 0).await,
        DeliveryState::Accepted(_)
    ));
    assert!(!again.is_detached() && !new.is_detached());
}

/// A client whose retries would outlast any test if a stolen epoch were retried.
fn patient(builder: eventhubs::EventHubClientBuilder) -> eventhubs::EventHubClient {
    builder
        .retry(
            eventhubs::RetryOptions::default()
                .with_max_retries(1000)
                .with_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(1)),
        )
        .operation_timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// The send's result, or a failure naming the likely cause if it never comes (a generous
/// bound: only a send retried over and over takes that long).
async fn settles<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not fail: the stolen epoch is being retried"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_producer_pending_and_later_sends_fail_as_stolen() {
    let em = emulator().await;
    // The old producer goes through a proxy that can hold its send in flight.
    let proxy = Proxy::start(em.local_addr()).await;
    let old_client = patient(builder(&em).custom_endpoint("127.0.0.1", proxy.port));
    let old = old_client.create_producer(idempotent("0")).await.unwrap();
    old.send(EventData::from("one")).await.unwrap();
    let id = old
        .get_partition_publishing_properties("0")
        .await
        .unwrap()
        .producer_group_id
        .unwrap();

    // Held by the stall, the next send is still pending when a higher epoch takes over.
    // Long enough for the takeover below to happen inside it even on a loaded machine.
    proxy.stall(Duration::from_secs(8));
    let pending = tokio::spawn({
        let old = old.clone();
        async move { old.send(EventData::from("late")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = client(&em);
    let new = c.create_producer(seeded("0", id, 1, -1)).await.unwrap();
    assert!(
        !pending.is_finished(),
        "the send settled through a stalled proxy"
    );
    new.send(EventData::from("two")).await.unwrap();

    let e = settles("the pending send", pending)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProducerEpochStolen, "{e}");
    assert!(!e.is_transient());
    // From the detach at the takeover, not a rejection of the send arriving after it.
    assert!(
        e.description().is_some_and(|d| d.contains("taken over")),
        "{e}"
    );
    // And every later send, at once.
    for _ in 0..2 {
        let e = settles("a later send", old.send(EventData::from("later")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProducerEpochStolen, "{e}");
    }

    let bodies: Vec<String> = read_all(&em, "0")
        .await
        .iter()
        .map(|e| e.body_as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_old_producer_fails_as_stolen_without_retrying() {
    let em = emulator().await;
    let old_client = patient(builder(&em));
    let old = old_client.create_producer(idempotent("3")).await.unwrap();
    old.send(EventData::from("one")).await.unwrap();
    let id = old
        .get_partition_publishing_properties("3")
        .await
        .unwrap()
        .producer_group_id
        .unwrap();
    let c = client(&em);
    let new = c.create_producer(seeded("3", id, 5, 10)).await.unwrap();
    new.send(EventData::from("two")).await.unwrap();
    // The old link was detached while idle: the next send neither reattaches for good nor
    // retries the refusal.
    let e = settles("the next send", old.send(EventData::from("late")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProducerEpochStolen, "{e}");
    assert!(!e.is_transient());
    assert_eq!(read_all(&em, "3").await.len(), 2);
}
