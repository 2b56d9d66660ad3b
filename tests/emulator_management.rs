//! The emulator's `$management` node over real sockets: the exact READ reply maps, reply
//! routing with and without reply-to, correlation ids of every AMQP type, bodiless requests
//! and binary operation/type values.

mod emulator_support;
mod support;

use bytes::Bytes;
use emulator_support::*;
use eventhubs::amqp::codec::{ElementType, Str, Timestamp, Uuid, Value};
use eventhubs::amqp::types::message::{ApplicationProperties, Message, MessageId, PropertyMap};
use std::collections::BTreeSet;
use std::time::Duration;
use support::emulator;

/// The reply body as a map with string keys (every key must be an AMQP string).
fn reply_map(reply: &Message) -> Vec<(String, Value)> {
    let eventhubs::amqp::types::message::Body::Value(Value::Map(pairs)) = &reply.body else {
        panic!("reply body must be an amqp-value map, got {:?}", reply.body);
    };
    pairs
        .iter()
        .map(|(k, v)| match k {
            Value::String(s) => (s.as_str().to_owned(), v.clone()),
            other => panic!("reply map keys must be strings, got {other:?}"),
        })
        .collect()
}

fn get<'a>(map: &'a [(String, Value)], key: &str) -> &'a Value {
    &map.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("reply map lacks {key}"))
        .1
}

fn keys(map: &[(String, Value)]) -> BTreeSet<&str> {
    map.iter().map(|(k, _)| k.as_str()).collect()
}

fn string(v: &Value) -> &str {
    match v {
        Value::String(s) => s.as_str(),
        other => panic!("expected an AMQP string, got {other:?}"),
    }
}

fn long(v: &Value) -> i64 {
    match v {
        Value::Long(n) => *n,
        other => panic!("expected an AMQP long, got {other:?}"),
    }
}

fn timestamp(v: &Value) -> i64 {
    match v {
        Value::Timestamp(Timestamp(t)) => *t,
        other => panic!("expected an AMQP timestamp, got {other:?}"),
    }
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventhub_read_returns_the_exact_map() {
    let before = now_ms();
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let mut mgmt = Rpc::attach(&session, "$management", Some("mgmt-reply")).await;
    let reply = mgmt.read("eh1", "com.microsoft:eventhub", None).await;
    assert_eq!(status(&reply), (200, "OK".to_owned()));
    let map = reply_map(&reply);
    assert_eq!(
        keys(&map),
        BTreeSet::from([
            "name",
            "type",
            "created_at",
            "partition_count",
            "partition_ids",
            "georeplication_factor"
        ])
    );
    assert_eq!(string(get(&map, "name")), "eh1");
    assert_eq!(string(get(&map, "type")), "com.microsoft:eventhub");
    let created = timestamp(get(&map, "created_at"));
    assert!(
        created >= before - 1 && created <= now_ms(),
        "created_at {created} is the emulator's start (ms since the epoch)"
    );
    assert_eq!(get(&map, "partition_count"), &Value::Int(4));
    assert_eq!(get(&map, "georeplication_factor"), &Value::Int(1));
    let Value::Array(ids) = get(&map, "partition_ids") else {
        panic!("partition_ids must be an array");
    };
    assert_eq!(ids.element_type(), ElementType::String);
    let ids: Vec<&str> = ids.items().iter().map(string).collect();
    assert_eq!(ids, ["0", "1", "2", "3"]);

    // The hub name matches case-insensitively; unknown hubs and types are refused.
    let upper = mgmt.read("EH1", "com.microsoft:eventhub", None).await;
    assert_eq!(status(&upper).0, 200);
    assert_eq!(
        status(&mgmt.read("nohub", "com.microsoft:eventhub", None).await).0,
        404
    );
    assert_eq!(
        status(&mgmt.read("eh1", "com.microsoft:queue", None).await).0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_read_returns_the_exact_map_empty_and_filled() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    let partition_keys = BTreeSet::from([
        "name",
        "partition",
        "type",
        "begin_sequence_number",
        "last_enqueued_sequence_number",
        "last_enqueued_offset",
        "last_enqueued_time_utc",
        "is_partition_empty",
        "last_enqueued_sequence_number_epoch",
    ]);

    let empty = mgmt.read("eh1", "com.microsoft:partition", Some("2")).await;
    assert_eq!(status(&empty).0, 200);
    let map = reply_map(&empty);
    assert_eq!(keys(&map), partition_keys);
    assert_eq!(string(get(&map, "name")), "eh1");
    assert_eq!(string(get(&map, "partition")), "2");
    assert_eq!(string(get(&map, "type")), "com.microsoft:partition");
    assert_eq!(long(get(&map, "begin_sequence_number")), -1);
    assert_eq!(long(get(&map, "last_enqueued_sequence_number")), -1);
    assert_eq!(string(get(&map, "last_enqueued_offset")), "-1");
    timestamp(get(&map, "last_enqueued_time_utc"));
    assert_eq!(get(&map, "is_partition_empty"), &Value::Bool(true));
    long(get(&map, "last_enqueued_sequence_number_epoch"));

    let sender = attach_sender(&session, "eh1/Partitions/2").await;
    for i in 0..3u8 {
        send_event(&sender, &event(vec![i; 10])).await;
    }
    let mut rx = open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/2",
        Some(EARLIEST),
    )
    .await;
    let events = recv_n(&mut rx, 3).await;

    let filled = mgmt.read("eh1", "com.microsoft:partition", Some("2")).await;
    let map = reply_map(&filled);
    assert_eq!(keys(&map), partition_keys);
    assert_eq!(long(get(&map, "begin_sequence_number")), 0);
    assert_eq!(long(get(&map, "last_enqueued_sequence_number")), 2);
    assert_eq!(
        string(get(&map, "last_enqueued_offset")),
        offset(&events[2]).to_string()
    );
    assert_eq!(
        timestamp(get(&map, "last_enqueued_time_utc")),
        enqueued(&events[2])
    );
    assert_eq!(get(&map, "is_partition_empty"), &Value::Bool(false));
    let info = em.partition_info("eh1", 2).unwrap();
    assert_eq!(info.last_sequence_number, 2);
    assert_eq!(info.last_offset, offset(&events[2]));

    assert_eq!(
        status(&mgmt.read("eh1", "com.microsoft:partition", Some("4")).await).0,
        404
    );
    assert_eq!(
        status(&mgmt.read("eh1", "com.microsoft:partition", Some("x")).await).0,
        404
    );
    assert_eq!(
        status(&mgmt.read("eh1", "com.microsoft:partition", None).await).0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_scoped_and_absolute_management_addresses() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    for node in [
        "eh1/$management",
        "amqps://localhost/eh1/$management",
        "amqps://localhost:5671/$management",
    ] {
        let mut mgmt = Rpc::attach(&session, node, Some(&format!("{node}-reply"))).await;
        let reply = mgmt.read("eh1", "com.microsoft:eventhub", None).await;
        assert_eq!(status(&reply).0, 200, "via {node}");
        assert_eq!(string(get(&reply_map(&reply), "name")), "eh1");
    }
}

/// A READ request as the Python client sends it: operation and type as binary, no body, no
/// reply-to, and the given message id.
fn python_style_read(id: Option<MessageId>) -> Message {
    let mut props = PropertyMap::new();
    props.insert("operation", Value::Binary(Bytes::from_static(b"READ")));
    props.insert("name", Value::String(Str::from("eh1")));
    props.insert(
        "type",
        Value::Binary(Bytes::from_static(b"com.microsoft:eventhub")),
    );
    let mut m = Message {
        application_properties: Some(ApplicationProperties(props)),
        ..Message::default()
    };
    if let Some(id) = id {
        m.properties_mut().message_id = Some(id);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_keeps_the_message_id_type_and_binary_requests_work() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    let ids = [
        MessageId::String(Str::from("a-string-id")),
        MessageId::Uuid(Uuid([7; 16])),
        MessageId::Ulong(u64::MAX - 3),
        MessageId::Binary(Bytes::from_static(&[0, 1, 2, 0xff])),
    ];
    for id in ids {
        let reply = mgmt.exchange(&python_style_read(Some(id.clone()))).await;
        assert_eq!(status(&reply).0, 200, "id {id:?}");
        assert_eq!(
            reply
                .properties
                .as_ref()
                .and_then(|p| p.correlation_id.clone()),
            Some(id),
            "correlation-id has the message-id's value and AMQP type"
        );
        assert_eq!(string(get(&reply_map(&reply), "name")), "eh1");
    }
    // No message id at all: still answered.
    let reply = mgmt.exchange(&python_style_read(None)).await;
    assert_eq!(status(&reply).0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_to_reply_to_else_to_the_nodes_receiver_on_this_connection() {
    let em = emulator().await;
    let (_c, session) = authorized(&em).await;
    let mut mgmt = Rpc::attach(&session, "$management", Some("reply-a")).await;
    let mut b = reply_receiver(&session, "$management", Some("reply-b")).await;
    // A CBS pair on the same connection must not receive management replies, nor vice versa.
    let mut cbs = Rpc::attach(&session, "$cbs", Some("cbs-reply")).await;
    // Another connection's management receiver must not either.
    let (_c2, session2) = authorized(&em).await;
    let mut elsewhere = reply_receiver(&session2, "$management", Some("reply-a")).await;

    let quiet = Duration::from_millis(150);
    let mut to_b = python_style_read(Some(MessageId::Ulong(2)));
    to_b.properties_mut().reply_to = Some(Str::from("reply-b"));
    mgmt.sender.send(&to_b).await.unwrap();
    let got = recv_within(&mut b, PROMPT).await.expect("reply on reply-b");
    let got = got.message().unwrap();
    assert_eq!(
        got.properties.as_ref().unwrap().correlation_id,
        Some(MessageId::Ulong(2))
    );
    assert!(recv_within(&mut mgmt.receiver, quiet).await.is_none());

    let mut to_a = python_style_read(Some(MessageId::Ulong(1)));
    to_a.properties_mut().reply_to = Some(Str::from("reply-a"));
    let reply = mgmt.exchange(&to_a).await;
    assert_eq!(
        reply.properties.as_ref().unwrap().correlation_id,
        Some(MessageId::Ulong(1))
    );
    assert!(recv_within(&mut b, quiet).await.is_none());

    // Without reply-to: exactly one of this connection's $management receivers answers.
    mgmt.sender
        .send(&python_style_read(Some(MessageId::Ulong(3))))
        .await
        .unwrap();
    let on_a = recv_within(&mut mgmt.receiver, quiet * 3).await;
    let on_b = recv_within(&mut b, quiet).await;
    assert!(
        on_a.is_some() != on_b.is_some(),
        "one reply, on one link: a={} b={}",
        on_a.is_some(),
        on_b.is_some()
    );
    assert!(recv_within(&mut cbs.receiver, quiet).await.is_none());
    assert!(recv_within(&mut elsewhere, quiet).await.is_none());

    // And the CBS reply comes back on the CBS link only.
    assert_eq!(cbs.put_token("sb://localhost/eh1").await.0, 202);
    assert!(recv_within(&mut mgmt.receiver, quiet).await.is_none());
    assert!(recv_within(&mut b, quiet).await.is_none());
}
