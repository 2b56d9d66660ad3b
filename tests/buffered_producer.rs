//! The buffered producer against the emulator over real sockets: every event delivered once
//! and in order per key, keyed events where the service's hash puts them, close without
//! flush handing back the rest, flush, a full queue, the max-wait timer, the blocking mirror,
//! full batches of an idempotent buffered producer, outcome and handed-back events equal to
//! the enqueued ones (they are read back from the encoded batches), and an event too large
//! for any batch failing alone.

mod client_common;
mod support;

use client_common::*;
use eventhubs::wire::partition_key::partition_index;
use eventhubs::{
    BatchOutcome, BufferedProducerOptions, ConsumerOptions, EnqueueOptions, ErrorKind, EventData,
    EventHubClient, EventPosition, ProducerOptions, SendOptions,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::emulator;

/// Outcomes gathered by the handler: delivered ids per partition and failed ids.
#[derive(Default)]
struct Tally {
    delivered: Vec<(String, u64)>,
    failed: Vec<u64>,
}

fn id_of(e: &EventData) -> u64 {
    e.property_i64("id").map_or(u64::MAX, |v| v as u64)
}

fn tallying(options: BufferedProducerOptions) -> (BufferedProducerOptions, Arc<Mutex<Tally>>) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let t = tally.clone();
    let options = options.with_on_outcome(move |o: BatchOutcome| {
        let mut t = t.lock().unwrap();
        match o.error {
            None => t
                .delivered
                .extend(o.events.iter().map(|e| (o.partition_id.clone(), id_of(e)))),
            Some(_) => t.failed.extend(o.events.iter().map(id_of)),
        }
    });
    (options, tally)
}

fn event(id: u64, key: &str) -> EventData {
    let mut body = format!("{key}:{id}:").into_bytes();
    body.resize(100, b'x');
    EventData::new(body).with_property("id", id as i64)
}

/// Every event of every partition, read from the start.
async fn read_all(client: &EventHubClient) -> HashMap<String, Vec<EventData>> {
    let mut out = HashMap::new();
    for id in client.get_partition_ids().await.unwrap() {
        let props = client.get_partition_properties(&id).await.unwrap();
        let want = if props.is_empty {
            0
        } else {
            (props.last_enqueued_sequence_number - props.beginning_sequence_number + 1) as usize
        };
        let mut got = Vec::with_capacity(want);
        if want > 0 {
            let mut c = client
                .create_consumer(
                    "$default",
                    &id,
                    EventPosition::earliest(),
                    ConsumerOptions::default(),
                )
                .await
                .unwrap();
            while got.len() < want {
                let batch = c
                    .receive(want - got.len(), Duration::from_secs(10))
                    .await
                    .unwrap();
                assert!(!batch.is_empty(), "partition {id}: {} of {want}", got.len());
                got.extend(batch);
            }
            c.close().await.unwrap();
        }
        out.insert(id, got);
    }
    out
}

const KEYS: u64 = 97;

fn key(i: u64) -> String {
    format!("key-{}", i % KEYS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_run_delivers_every_event_once_in_key_order() {
    let n: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        1_000_000
    };
    let emu = emulator().await;
    let client = client(&emu);
    let (options, tally) = tallying(BufferedProducerOptions::default());
    let producer = client.create_buffered_producer(options).await.unwrap();
    let count = producer.partition_ids().len() as u32;
    for i in 0..n {
        let k = key(i);
        producer
            .enqueue(
                event(i, &k),
                &EnqueueOptions::default().with_partition_key(k),
            )
            .await
            .unwrap();
    }
    producer.close().await.unwrap();

    {
        let t = tally.lock().unwrap();
        assert!(t.failed.is_empty(), "{} events failed", t.failed.len());
        assert_eq!(t.delivered.len() as u64, n, "every event reported once");
    }

    let all = read_all(&client).await;
    let mut seen = HashSet::new();
    let mut last_per_key: HashMap<String, u64> = HashMap::new();
    for (pid, events) in &all {
        for e in events {
            let id = id_of(e);
            assert!(seen.insert(id), "event {id} stored twice");
            let k = e
                .partition_key()
                .expect("the key travels with the event")
                .to_owned();
            assert_eq!(k, key(id));
            // The client's assignment is the service's (emulator's) routing of the key.
            assert_eq!(pid, &partition_index(&k, count).to_string());
            if let Some(prev) = last_per_key.insert(k.clone(), id) {
                assert!(prev < id, "key {k}: event {id} after {prev}");
            }
        }
    }
    assert_eq!(seen.len() as u64, n, "every event stored");
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hash_is_the_emulator_routing() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_producer(ProducerOptions::default())
        .await
        .unwrap();
    let keys: Vec<String> = ["7", "131", "FWfAT", "$0cb", "ключ", "🔑-key", "", " "]
        .iter()
        .map(|s| s.to_string())
        .chain((0..24).map(|i| format!("device-{i}")))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        if k.is_empty() {
            continue;
        }
        producer
            .send_with_options(
                EventData::new(vec![1]).with_property("id", i as i64),
                SendOptions::default().with_partition_key(k.clone()),
            )
            .await
            .unwrap();
    }
    let all = read_all(&client).await;
    let mut checked = 0;
    for (pid, events) in &all {
        for e in events {
            let k = &keys[id_of(e) as usize];
            assert_eq!(pid, &partition_index(k, 4).to_string(), "key {k:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, keys.len() - 1);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_now_hands_back_what_it_did_not_send() {
    let emu = emulator().await;
    let client = client(&emu);
    let (options, tally) = tallying(
        BufferedProducerOptions::default()
            .with_max_buffered_events_per_partition(300)
            .with_max_wait_time(Duration::from_secs(3600)),
    );
    let producer = client.create_buffered_producer(options).await.unwrap();
    let p = producer.clone();
    let feeder = tokio::spawn(async move {
        let mut enqueued = 0u64;
        for i in 0..1_000_000u64 {
            if p.enqueue(event(i, "rr"), &EnqueueOptions::default())
                .await
                .is_err()
            {
                break;
            }
            enqueued += 1;
        }
        enqueued
    });
    // Close once some batches went out, while the feeder is still enqueuing.
    while tally.lock().unwrap().delivered.len() < 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let back = producer.close_now().await;
    let enqueued = feeder.await.unwrap();
    assert!(enqueued < 1_000_000, "the close stopped the feeder");

    let delivered: HashSet<u64> = {
        let t = tally.lock().unwrap();
        let delivered: HashSet<u64> = t.delivered.iter().map(|(_, id)| *id).collect();
        let back_ids: HashSet<u64> = back.iter().map(id_of).collect();
        assert!(t.failed.is_empty());
        assert_eq!(
            delivered.len(),
            t.delivered.len(),
            "no event reported twice"
        );
        assert_eq!(back_ids.len(), back.len());
        assert!(
            delivered.is_disjoint(&back_ids),
            "handed back and delivered overlap"
        );
        assert_eq!(delivered.len() as u64 + back.len() as u64, enqueued);
        let ids: HashSet<u64> = (0..enqueued).collect();
        assert_eq!(&delivered | &back_ids, ids);
        delivered
    };

    let stored: HashSet<u64> = read_all(&client)
        .await
        .values()
        .flatten()
        .map(id_of)
        .collect();
    assert_eq!(
        stored, delivered,
        "the emulator holds exactly the delivered events"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_settles_everything_enqueued_before_it() {
    let emu = emulator().await;
    let client = client(&emu);
    let (options, tally) =
        tallying(BufferedProducerOptions::default().with_max_wait_time(Duration::from_secs(3600)));
    let producer = client.create_buffered_producer(options).await.unwrap();
    for i in 0..10 {
        producer
            .enqueue(event(i, "f"), &EnqueueOptions::default())
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    assert_eq!(tally.lock().unwrap().delivered.len(), 10);
    // A second round after the flush goes the same way.
    producer
        .enqueue_many(
            (10..15).map(|i| event(i, "f")),
            &EnqueueOptions::default().with_partition_id("2"),
        )
        .await
        .unwrap();
    producer.flush().await.unwrap();
    {
        let t = tally.lock().unwrap();
        assert_eq!(t.delivered.len(), 15);
        assert!(t.delivered[10..].iter().all(|(p, _)| p == "2"));
    }
    producer.close().await.unwrap();
    assert_eq!(
        read_all(&client)
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        15
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_full_batches_keep_room_for_the_stamps() {
    let emu = emulator().await;
    let client = client(&emu);
    // Room for more than a message's worth of events and no timer: batches go when full,
    // which is where stamps added at send time could push one over the link's limit.
    let n: u64 = 12_000;
    let (options, tally) = tallying(
        BufferedProducerOptions::default()
            .with_producer_options(
                ProducerOptions::default().with_enable_idempotent_partitions(true),
            )
            .with_max_buffered_events_per_partition(n as usize)
            .with_max_wait_time(Duration::from_secs(3600)),
    );
    let producer = client.create_buffered_producer(options).await.unwrap();
    let to1 = EnqueueOptions::default().with_partition_id("1");
    for i in 0..n {
        producer.enqueue(event(i, "k"), &to1).await.unwrap();
    }
    producer.close().await.unwrap();
    let ids: Vec<u64> = {
        let t = tally.lock().unwrap();
        assert!(t.failed.is_empty(), "{} events failed", t.failed.len());
        t.delivered.iter().map(|(_, id)| *id).collect()
    };
    assert_eq!(
        ids,
        (0..n).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let stored = read_all(&client).await.remove("1").unwrap();
    assert_eq!(stored.iter().map(id_of).collect::<Vec<_>>(), ids);
    let sequences: Vec<i32> = stored
        .iter()
        .map(|e| {
            eventhubs::wire::idempotent::read_stamp(e.raw_message())
                .unwrap()
                .expect("stamped")
                .sequence
        })
        .collect();
    assert_eq!(sequences, (0..n as i32).collect::<Vec<_>>());
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_enqueue_on_a_full_queue_says_so() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_buffered_producer(
            BufferedProducerOptions::default()
                .with_max_buffered_events_per_partition(5)
                .with_max_wait_time(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let to0 = EnqueueOptions::default().with_partition_id("0");
    // A full queue is also a full batch and goes out; hold the sends back by filling first
    // then checking at once: the sixth finds either a full queue or room again.
    let mut full = 0;
    for i in 0..50 {
        match producer.try_enqueue(event(i, "q"), &to0) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
                full += 1;
            }
        }
    }
    assert!(full > 0, "50 events into a queue of 5 without waiting");
    assert_eq!(
        producer
            .try_enqueue(
                event(99, "q"),
                &EnqueueOptions::default().with_partition_id("9")
            )
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    producer.close().await.unwrap();
    let err = producer.try_enqueue(event(100, "q"), &to0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_wait_sends_a_partial_batch() {
    let emu = emulator().await;
    let client = client(&emu);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let producer = client
        .create_buffered_producer(
            BufferedProducerOptions::default()
                .with_max_wait_time(Duration::from_millis(100))
                .with_on_outcome(move |o| {
                    let _ = tx.send(o);
                }),
        )
        .await
        .unwrap();
    producer
        .enqueue(
            event(1, "w"),
            &EnqueueOptions::default().with_partition_key("w"),
        )
        .await
        .unwrap();
    // No flush, no close: only the timer can send it (the bound is a hang guard only).
    let o = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the partial batch went")
        .unwrap();
    assert!(o.error.is_none());
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.partition_id, partition_index("w", 4).to_string());
    producer.close().await.unwrap();
    client.close().await.unwrap();
}

#[test]
fn blocking_mirror_enqueues_and_closes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(emulator());
    let client = eventhubs::blocking::EventHubClient::from_builder(builder(&emu)).unwrap();
    let (options, tally) = tallying(BufferedProducerOptions::default());
    let producer = client.create_buffered_producer(options).unwrap();
    producer
        .enqueue_many((0..500).map(|i| event(i, "b")), &EnqueueOptions::default())
        .unwrap();
    producer.flush().unwrap();
    assert_eq!(tally.lock().unwrap().delivered.len(), 500);
    producer
        .enqueue(event(500, "b"), &EnqueueOptions::default())
        .unwrap();
    assert!(producer.close_now().len() <= 1);
    client.close().unwrap();
    drop(emu);
}

/// The max-wait timer on tokio's paused clock: nothing goes before the wait is over, the
/// partial batch goes after it without flush or close.
#[tokio::test(start_paused = true)]
async fn max_wait_timer_on_the_paused_clock() {
    let emu = emulator().await;
    let _clock = support::fast_clock();
    let client = client(&emu);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let wait = Duration::from_secs(30);
    let producer = client
        .create_buffered_producer(
            BufferedProducerOptions::default()
                .with_max_wait_time(wait)
                .with_on_outcome(move |o| {
                    let _ = tx.send((tokio::time::Instant::now(), o));
                }),
        )
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    producer
        .enqueue(
            event(1, "p"),
            &EnqueueOptions::default().with_partition_id("1"),
        )
        .await
        .unwrap();
    tokio::time::sleep(wait - Duration::from_secs(1)).await;
    assert!(
        rx.try_recv().is_err(),
        "the partial batch went before the max wait"
    );
    let (at, o) = rx.recv().await.unwrap();
    assert!(at - start >= wait, "sent after {:?}", at - start);
    assert!(o.error.is_none());
    assert_eq!((o.partition_id.as_str(), o.events.len()), ("1", 1));
    producer.close().await.unwrap();
    client.close().await.unwrap();
}

/// The handler and `close_now` get events read back from the encoded batches: each equal to
/// the event enqueued (body, properties of several types, message id, content type, the key
/// the enqueue stamped), in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_and_handed_back_events_equal_what_was_enqueued() {
    let emu = emulator().await;
    let client = client(&emu);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let producer = client
        .create_buffered_producer(
            BufferedProducerOptions::default()
                .with_max_wait_time(Duration::from_secs(3600))
                .with_on_outcome(move |o: BatchOutcome| {
                    let _ = tx.send(o);
                }),
        )
        .await
        .unwrap();
    let rich = |i: u64| {
        let mut e = event(i, "r")
            .with_property("text", format!("t{i}"))
            .with_property("flag", i.is_multiple_of(2))
            .with_property("ratio", i as f64 / 4.0)
            .with_property("raw", bytes::Bytes::from(vec![i as u8; 3]));
        e.set_message_id(format!("m-{i}"));
        e.set_content_type("application/x-test");
        e
    };
    let keyed = EnqueueOptions::default().with_partition_key("rich");
    let mut sent = Vec::new();
    for i in 0..300 {
        producer.enqueue(rich(i), &keyed).await.unwrap();
        sent.push(rich(i).with_partition_key("rich"));
    }
    producer.flush().await.unwrap();
    let mut reported = Vec::new();
    while let Ok(o) = rx.try_recv() {
        assert!(o.error.is_none(), "{:?}", o.error);
        assert_eq!(o.partition_id, partition_index("rich", 4).to_string());
        let n = o.events.len();
        let events = o.events.into_vec();
        assert_eq!(events.len(), n, "len() counts what decoding finds");
        reported.extend(events);
    }
    assert_eq!(
        reported, sent,
        "the outcomes carry the enqueued events, in order"
    );

    // Unsent events come back the same way.
    let mut kept = Vec::new();
    for i in 300..350 {
        producer.enqueue(rich(i), &keyed).await.unwrap();
        kept.push(rich(i).with_partition_key("rich"));
    }
    assert_eq!(producer.close_now().await, kept);
    assert!(
        rx.try_recv().is_err(),
        "nothing reported for handed-back events"
    );
    client.close().await.unwrap();
}

/// An event too large for any batch fails on its own, in its turn; the events around it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_a_batch_fails_alone_in_order() {
    let emu = emulator().await;
    let client = client(&emu);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let producer = client
        .create_buffered_producer(BufferedProducerOptions::default().with_on_outcome(
            move |o: BatchOutcome| {
                let _ = tx.send(o);
            },
        ))
        .await
        .unwrap();
    let to3 = EnqueueOptions::default().with_partition_id("3");
    for i in 0..5 {
        producer.enqueue(event(i, "s"), &to3).await.unwrap();
    }
    let huge = EventData::new(vec![7u8; 2 << 20]).with_property("id", 5i64);
    producer.enqueue(huge, &to3).await.unwrap();
    for i in 6..10 {
        producer.enqueue(event(i, "s"), &to3).await.unwrap();
    }
    producer.close().await.unwrap();
    let mut order = Vec::new();
    while let Ok(o) = rx.try_recv() {
        let ids: Vec<u64> = o.events.iter().map(id_of).collect();
        match &o.error {
            None => assert!(!ids.contains(&5)),
            Some(e) => {
                assert_eq!(ids, [5]);
                assert_eq!(e.kind(), ErrorKind::EventData, "{e}");
                assert!(e.to_string().contains("does not fit"), "{e}");
                assert_eq!(o.events[0].body().len(), 2 << 20);
            }
        }
        order.extend(ids);
    }
    assert_eq!(order, (0..10).collect::<Vec<_>>());
    let stored: Vec<u64> = read_all(&client).await["3"].iter().map(id_of).collect();
    assert_eq!(stored, [0, 1, 2, 3, 4, 6, 7, 8, 9]);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_outcome_handler_still_sees_one_partitions_batches_in_order() {
    let emu = emulator().await;
    let client = client(&emu);
    // The first outcome's handler dawdles. The next batch must wait for it (one send in
    // flight per partition): were the send slot freed before the handler ran, the next
    // batch would be sent, stored and reported while the first handler still sleeps.
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let options = BufferedProducerOptions::default()
        .with_max_buffered_events_per_partition(40_000)
        .with_max_wait_time(Duration::from_secs(3600))
        .with_on_outcome(move |o: BatchOutcome| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                // block_in_place hands this worker's queue to another thread, as the OS
                // would run other tasks while a handler thread is descheduled.
                tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(300)));
            }
            assert!(o.error.is_none(), "{:?}", o.error);
            o2.lock().unwrap().push(o.events.first().map(id_of));
        });
    let producer = client.create_buffered_producer(options).await.unwrap();
    let to0 = EnqueueOptions::default().with_partition_id("0");
    // ~3.5 MB of 100 B events: four batches or so.
    let n = 30_000u64;
    for i in 0..n {
        producer.enqueue(event(i, "k"), &to0).await.unwrap();
    }
    producer.close().await.unwrap();
    let firsts: Vec<u64> = order.lock().unwrap().iter().map(|f| f.unwrap()).collect();
    assert!(firsts.len() >= 3, "batches: {firsts:?}");
    let mut sorted = firsts.clone();
    sorted.sort_unstable();
    assert_eq!(
        firsts, sorted,
        "outcomes in the order the batches were sent"
    );
    client.close().await.unwrap();
}
