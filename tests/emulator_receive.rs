//! Receiving from the emulator over real sockets: start positions, credit, waiting for new
//! events, pre-settled deliveries, owner levels and the five-reader limit, runtime metrics,
//! consumer group names, unknown entities.

mod emulator_support;
mod support;

use bytes::Bytes;
use emulator_support::*;
use eventhubs::amqp::codec::{Descriptor, Str, Symbol, Value};
use eventhubs::amqp::types::definitions::SenderSettleMode;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::{Receiver, ReceiverOptions, Session};
use eventhubs::wire::selector::FILTER_KEY as SELECTOR_FILTER_KEY;
use std::time::{Duration, Instant};
use support::{emulator, emulator_with};

const P0: &str = "eh1/ConsumerGroups/$default/Partitions/0";
const QUIET: Duration = Duration::from_millis(250);

fn numbered(i: u32) -> Message {
    event(Bytes::from(i.to_be_bytes().to_vec()))
}

fn number(m: &Message) -> u32 {
    let b = body(m);
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// First sequence number a consumer with `selector` gets from partition 0.
async fn first_from(session: &Session, selector: &str) -> i64 {
    let mut rx = open_consumer(session, P0, Some(selector)).await;
    let m = recv_within(&mut rx, PROMPT)
        .await
        .unwrap_or_else(|| panic!("nothing from {selector}"));
    // Readers without an owner level are limited to five: give the place back.
    rx.close().await.unwrap();
    seq(&m.message().unwrap())
}

async fn nothing_arrives(rx: &mut Receiver) {
    if let Some(m) = recv_within(rx, QUIET).await {
        panic!(
            "unexpected event seq {}",
            seq(&m.message().expect("decodes"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_position() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    for i in 0..5 {
        send_event(&sender, &numbered(i)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    for i in 5..10 {
        send_event(&sender, &numbered(i)).await;
    }
    let mut all = open_consumer(&session, P0, Some(EARLIEST)).await;
    let events = recv_n(&mut all, 10).await;
    assert_eq!(
        events.iter().map(seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        events.iter().map(number).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    nothing_arrives(&mut all).await;
    let off: Vec<i64> = events.iter().map(offset).collect();
    let t: Vec<i64> = events.iter().map(enqueued).collect();
    assert!(t[4] < t[5]);

    let x = "amqp.annotation.x-opt-offset";
    assert_eq!(
        first_from(&session, &format!("{x} > '{}'", off[3])).await,
        4
    );
    assert_eq!(
        first_from(&session, &format!("{x} >= '{}'", off[3])).await,
        3
    );
    assert_eq!(first_from(&session, &format!("{x} >'{}'", off[0])).await, 1);
    let s = "amqp.annotation.x-opt-sequence-number";
    assert_eq!(first_from(&session, &format!("{s} > '5'")).await, 6);
    assert_eq!(first_from(&session, &format!("{s} >= '5'")).await, 5);
    assert_eq!(first_from(&session, &format!("{s}>=0")).await, 0);
    let e = "amqp.annotation.x-opt-enqueued-time";
    assert_eq!(first_from(&session, &format!("{e} > '{}'", t[4])).await, 5);
    assert_eq!(first_from(&session, &format!("{e} >= '{}'", t[5])).await, 5);
    assert_eq!(
        first_from(&session, &format!("{e} > {}", t[0] - 1)).await,
        0
    );

    // The selector with a symbolic descriptor (Python, amqpnetlite), on an absolute URL
    // address with the consumer group in another case.
    let address = "amqps://localhost/eh1/ConsumerGroups/$Default/Partitions/0";
    let mut o = ReceiverOptions::new(address);
    o.source.filter = Some(vec![(
        SELECTOR_FILTER_KEY,
        Value::described(
            Descriptor::Symbol(Symbol::from("apache.org:selector-filter:string")),
            Value::String(Str::from(format!("{s} > '7'"))),
        ),
    )]);
    let mut rx = session.attach_receiver(o).await.unwrap();
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(got.iter().map(seq).collect::<Vec<_>>(), [8, 9]);
    rx.close().await.unwrap();

    // Latest, spelled out or by leaving the filter off: only what comes after the attach.
    let mut latest = open_consumer(&session, P0, Some(&format!("{x} > '@latest'"))).await;
    let mut unfiltered = open_consumer(&session, P0, None).await;
    // Beyond the end: waits.
    let mut ahead = open_consumer(&session, P0, Some(&format!("{s} > '10'"))).await;
    nothing_arrives(&mut latest).await;
    nothing_arrives(&mut unfiltered).await;
    nothing_arrives(&mut ahead).await;
    send_event(&sender, &numbered(10)).await;
    send_event(&sender, &numbered(11)).await;
    assert_eq!(seq(&recv_n(&mut latest, 1).await[0]), 10);
    assert_eq!(seq(&recv_n(&mut unfiltered, 1).await[0]), 10);
    assert_eq!(seq(&recv_n(&mut ahead, 1).await[0]), 11);
    assert_eq!(seq(&recv_n(&mut all, 2).await[1]), 11);

    // A selector the emulator cannot read is refused at attach.
    let cond = refused_receiver(
        &session,
        consumer(P0, Some("amqp.annotation.x-opt-offset < 3")),
    )
    .await;
    assert!(
        cond.starts_with("com.microsoft:") || cond.starts_with("amqp:"),
        "{cond}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_is_honoured_and_events_are_presettled() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    for i in 0..10 {
        send_event(&sender, &numbered(i)).await;
    }
    let mut o = consumer(P0, Some(EARLIEST));
    o.prefetch = 0; // manual credit
    o.snd_settle_mode = SenderSettleMode::Unsettled; // as the Python client asks
    let mut rx = session.attach_receiver(o).await.unwrap();
    assert_eq!(
        rx.remote_attach().unwrap().snd_settle_mode,
        SenderSettleMode::Settled,
        "the emulator answers that it sends pre-settled"
    );
    nothing_arrives(&mut rx).await;
    rx.add_credit(3).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = recv_within(&mut rx, PROMPT).await.expect("credited event");
        assert!(d.is_settled(), "events go out pre-settled");
        got.push(number(&d.message().unwrap()));
    }
    nothing_arrives(&mut rx).await;
    rx.add_credit(2).unwrap();
    for _ in 0..2 {
        got.push(number(
            &recv_within(&mut rx, PROMPT)
                .await
                .unwrap()
                .message()
                .unwrap(),
        ));
    }
    nothing_arrives(&mut rx).await;
    assert_eq!(got, [0, 1, 2, 3, 4]);
    // Credit granted while the partition is idle is used by later events, and only it.
    rx.add_credit(7).unwrap();
    let rest = recv_n(&mut rx, 5).await;
    assert_eq!(rest.iter().map(number).collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
    for i in 10..15 {
        send_event(&sender, &numbered(i)).await;
    }
    let more = recv_n(&mut rx, 2).await;
    assert_eq!(more.iter().map(number).collect::<Vec<_>>(), [10, 11]);
    nothing_arrives(&mut rx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_waits_for_new_events_and_gets_them_promptly() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let mut rx = open_consumer(&session, P0, Some(EARLIEST)).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    for round in 0..5u32 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let sent = Instant::now();
        send_event(&sender, &numbered(round)).await;
        let m = recv_within(&mut rx, PROMPT)
            .await
            .expect("new event arrives");
        let latency = sent.elapsed();
        assert_eq!(number(&m.message().unwrap()), round);
        // Woken by the append, not by a polling timer.
        assert!(
            latency < Duration::from_millis(300),
            "round {round}: {latency:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_levels_steal_and_refuse() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    send_event(&sender, &numbered(0)).await;
    let epoch = |e| with_epoch(consumer(P0, Some(EARLIEST)), e);

    // A non-epoch reader is kicked by an epoch reader, and then cannot come back.
    let mut plain = open_consumer(&session, P0, Some(EARLIEST)).await;
    recv_n(&mut plain, 1).await;
    let mut e1 = session.attach_receiver(epoch(1)).await.unwrap();
    recv_n(&mut e1, 1).await;
    let end = tokio::time::timeout(PROMPT, plain.recv())
        .await
        .expect("non-epoch reader is detached")
        .expect_err("link ends");
    assert_eq!(condition(&end), "amqp:link:stolen");
    let c = refused_receiver(&session, consumer(P0, Some(EARLIEST))).await;
    assert_eq!(c, "amqp:link:stolen");

    // A higher epoch takes over; the old one learns it was stolen.
    let mut e5 = session.attach_receiver(epoch(5)).await.unwrap();
    recv_n(&mut e5, 1).await;
    let end = tokio::time::timeout(PROMPT, e1.recv())
        .await
        .expect("lower epoch detached")
        .expect_err("link ends");
    assert_eq!(condition(&end), "amqp:link:stolen");
    assert!(
        end.amqp_error().unwrap().description_str().contains('5'),
        "{end}"
    );

    // A lower epoch is refused, and the owner keeps reading.
    assert_eq!(
        refused_receiver(&session, epoch(4)).await,
        "amqp:link:stolen"
    );
    send_event(&sender, &numbered(1)).await;
    assert_eq!(number(&recv_n(&mut e5, 1).await[0]), 1);

    // Epochs are per consumer group, and group names match case-insensitively.
    let mut other_group = open_consumer(
        &session,
        "eh1/ConsumerGroups/cg1/Partitions/0",
        Some(EARLIEST),
    )
    .await;
    recv_n(&mut other_group, 2).await;
    let c = refused_receiver(
        &session,
        consumer("eh1/ConsumerGroups/$DEFAULT/Partitions/0", Some(EARLIEST)),
    )
    .await;
    assert_eq!(c, "amqp:link:stolen");
    // Another partition is unaffected.
    open_consumer(&session, "eh1/ConsumerGroups/$default/Partitions/1", None).await;

    // Once the owner leaves, readers without an owner level may attach again.
    e5.close().await.unwrap();
    let mut back = tokio::time::timeout(PROMPT, async {
        loop {
            match session.attach_receiver(consumer(P0, Some(EARLIEST))).await {
                Ok(mut rx) => {
                    if let Ok(Ok(m)) = tokio::time::timeout(QUIET, rx.recv()).await {
                        return (rx, m);
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("a plain reader attaches after the owner left");
    assert_eq!(seq(&back.1.message().unwrap()), 0);
    recv_n(&mut back.0, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_five_readers_without_owner_level() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let mut readers = Vec::new();
    for i in 0..5 {
        // Mixed spellings of the group are the same group.
        let group = ["$default", "$Default", "$DEFAULT", "$default", "$dEfAuLt"][i];
        readers.push(
            open_consumer(
                &session,
                &format!("eh1/ConsumerGroups/{group}/Partitions/0"),
                None,
            )
            .await,
        );
    }
    let c = refused_receiver(&session, consumer(P0, None)).await;
    assert_eq!(c, "amqp:resource-limit-exceeded");
    // Other partitions and groups have their own five.
    open_consumer(&session, "eh1/ConsumerGroups/cg1/Partitions/0", None).await;
    open_consumer(&session, "eh1/ConsumerGroups/$default/Partitions/1", None).await;
    // A reader leaving frees a place.
    readers.pop().unwrap().close().await.unwrap();
    let mut sixth = None;
    for _ in 0..50 {
        if let Ok(Ok(rx)) =
            tokio::time::timeout(PROMPT, session.attach_receiver(consumer(P0, None))).await
        {
            let mut rx = rx;
            if recv_within_or_end(&mut rx).await {
                sixth = Some(rx);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sixth = sixth.expect("a place is freed when a reader detaches");
    // All of them read.
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    send_event(&sender, &numbered(42)).await;
    for rx in readers.iter_mut().chain(std::iter::once(&mut sixth)) {
        assert_eq!(number(&recv_n(rx, 1).await[0]), 42);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_closed_connection_give_their_places_back() {
    let em = emulator().await;
    let (conn, session) = authorized(&em).await;
    let mut first = Vec::new();
    for _ in 0..5 {
        first.push(open_consumer(&session, P0, None).await);
    }
    // An owner-level reader on another partition, also left behind.
    let p1 = "eh1/ConsumerGroups/$default/Partitions/1";
    let _owner = session
        .attach_receiver(with_epoch(consumer(p1, None), 9))
        .await
        .unwrap();
    conn.close().await.unwrap();

    let (_c2, session2) = authorized(&em).await;
    let deadline = Instant::now() + PROMPT;
    let mut second = Vec::new();
    while second.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "places of the closed connection's readers were not freed ({} reattached)",
            second.len()
        );
        if let Ok(mut rx) = session2.attach_receiver(consumer(P0, None)).await {
            if recv_within_or_end(&mut rx).await {
                second.push(rx);
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The departed owner no longer blocks plain readers of partition 1 either.
    let mut plain = None;
    while plain.is_none() {
        assert!(
            Instant::now() < deadline,
            "the departed owner still holds partition 1"
        );
        if let Ok(mut rx) = session2.attach_receiver(consumer(p1, None)).await {
            if recv_within_or_end(&mut rx).await {
                plain = Some(rx);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_oldest_and_positions_follow() {
    let em = emulator_with(
        eventhubs::emulator::EmulatorOptions::ephemeral().with_retention(
            eventhubs::emulator::Retention {
                max_events: 5,
                max_bytes: usize::MAX,
            },
        ),
    )
    .await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    let mut first_offsets = Vec::new();
    let mut watcher = open_consumer(&session, P0, Some(EARLIEST)).await;
    for i in 0..12 {
        send_event(&sender, &numbered(i)).await;
        first_offsets.push(offset(&recv_n(&mut watcher, 1).await[0]));
    }
    watcher.close().await.unwrap();
    let info = em.partition_info("eh1", 0).unwrap();
    assert_eq!(info.begin_sequence_number, 7);
    assert_eq!(info.last_sequence_number, 11);
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    let reply = mgmt.read("eh1", "com.microsoft:partition", Some("0")).await;
    let eventhubs::amqp::types::message::Body::Value(map) = &reply.body else {
        panic!("{:?}", reply.body);
    };
    assert_eq!(map.map_get("begin_sequence_number"), Some(&Value::Long(7)));

    // Earliest is the first retained; positions inside the dropped range start there too;
    // positions inside the retained range are exact.
    assert_eq!(first_from(&session, EARLIEST).await, 7);
    let s = "amqp.annotation.x-opt-sequence-number";
    assert_eq!(first_from(&session, &format!("{s} >= '2'")).await, 7);
    assert_eq!(first_from(&session, &format!("{s} > '8'")).await, 9);
    let x = "amqp.annotation.x-opt-offset";
    assert_eq!(
        first_from(&session, &format!("{x} > '{}'", first_offsets[1])).await,
        7
    );
    assert_eq!(
        first_from(&session, &format!("{x} >= '{}'", first_offsets[10])).await,
        10
    );
    let mut all = open_consumer(&session, P0, Some(EARLIEST)).await;
    let kept = recv_n(&mut all, 5).await;
    assert_eq!(
        kept.iter().map(number).collect::<Vec<_>>(),
        [7, 8, 9, 10, 11]
    );
    nothing_arrives(&mut all).await;
}

/// True when the link is still attached after a quiet moment (no event, no detach).
async fn recv_within_or_end(rx: &mut Receiver) -> bool {
    tokio::time::timeout(QUIET, rx.recv()).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_metrics_when_desired() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let sender = attach_sender(&session, "eh1/Partitions/3").await;
    for i in 0..4 {
        send_event(&sender, &numbered(i)).await;
    }
    let address = "eh1/ConsumerGroups/$default/Partitions/3";
    let cap = Symbol::from("com.microsoft:enable-receiver-runtime-metric");
    let mut o = consumer(address, Some(EARLIEST));
    o.desired_capabilities = Some(vec![cap.clone()]);
    let mut rx = session.attach_receiver(o).await.unwrap();
    let offered = rx.remote_attach().unwrap().offered_capabilities.clone();
    assert!(offered.unwrap_or_default().contains(&cap));
    let events = recv_n(&mut rx, 4).await;
    let last_offset = offset(&events[3]);
    let last_time = enqueued(&events[3]);
    for m in &events {
        let a = m
            .delivery_annotations
            .as_ref()
            .expect("delivery annotations with runtime metrics");
        assert_eq!(
            a.get("last_enqueued_sequence_number"),
            Some(&Value::Long(3))
        );
        assert_eq!(
            a.get("last_enqueued_offset"),
            Some(&Value::String(Str::from(last_offset.to_string())))
        );
        let Some(Value::Timestamp(t)) = a.get("last_enqueued_time_utc") else {
            panic!("last_enqueued_time_utc must be a timestamp: {a:?}");
        };
        assert_eq!(t.0, last_time);
        let Some(Value::Timestamp(r)) = a.get("runtime_info_retrieval_time_utc") else {
            panic!("runtime_info_retrieval_time_utc must be a timestamp: {a:?}");
        };
        assert!(r.0 >= last_time);
        // The event itself is unchanged.
        assert_eq!(seq(m), i64::from(number(m)));
    }
    // Without the capability: no delivery annotations, no offer.
    let mut plain = open_consumer(&session, address, Some(EARLIEST)).await;
    assert!(!plain
        .remote_attach()
        .unwrap()
        .offered_capabilities
        .clone()
        .unwrap_or_default()
        .contains(&cap));
    for m in recv_n(&mut plain, 4).await {
        assert!(
            m.delivery_annotations.is_none(),
            "{:?}",
            m.delivery_annotations
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sources_are_not_found() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    for address in [
        "nohub/ConsumerGroups/$default/Partitions/0",
        "eh1/ConsumerGroups/nogroup/Partitions/0",
        "eh1/ConsumerGroups/$default/Partitions/4",
        "eh1/ConsumerGroups/$default/Partitions/-1",
        "eh1/ConsumerGroups/$default/Partitions/x",
        "eh1/ConsumerGroups/$default",
        "eh1",
    ] {
        assert_eq!(
            refused_receiver(&session, consumer(address, Some(EARLIEST))).await,
            "amqp:not-found",
            "{address}"
        );
    }
    // And the known ones, in any case, do attach.
    for address in [
        "eh1/ConsumerGroups/CG1/Partitions/3",
        "EH1/consumergroups/$Default/partitions/2",
    ] {
        let mut rx = open_consumer(&session, address, Some(EARLIEST)).await;
        nothing_arrives(&mut rx).await;
    }
}
