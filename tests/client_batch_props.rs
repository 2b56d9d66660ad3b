//! Property test: the size an `EventDataBatch` reports is exactly the length of the transfer
//! payload it produces, the payload decodes to the events added, and `BatchSizeCalculator`
//! agrees with the batch at every step.

use bytes::Bytes;
use eventhubs::amqp::codec::{Timestamp, Value};
use eventhubs::amqp::types::message::{Body, Message};
use eventhubs::{BatchSizeCalculator, EventData, EventDataBatch};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::Long),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(Value::Double),
        ".{0,40}".prop_map(|s: String| Value::from(s)),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|v| Value::Binary(Bytes::from(v))),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp(t))),
    ]
}

fn event() -> impl Strategy<Value = EventData> {
    (
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 200..300),
            proptest::collection::vec(any::<u8>(), 0..3000),
        ],
        proptest::collection::vec(("[a-z]{1,12}", value()), 0..4),
        proptest::option::of("[a-zA-Z0-9]{0,20}"),
        proptest::option::of(".{0,30}"),
    )
        .prop_map(|(body, props, key, id)| {
            let mut e = EventData::new(body);
            for (k, v) in props {
                e.set_property(k, v);
            }
            if let Some(k) = key {
                e.set_partition_key(Some(&k));
            }
            if let Some(id) = id {
                e.set_message_id(id);
            }
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn batch_size_is_the_payload_size(
        events in proptest::collection::vec(event(), 0..40),
        key in proptest::option::of("[a-z0-9]{0,300}"),
        max_size in 0usize..30_000,
    ) {
        let mut batch = EventDataBatch::new(max_size, key.as_deref());
        let mut calc = BatchSizeCalculator::new(max_size, key.as_deref());
        prop_assert_eq!(batch.size(), calc.size());
        let mut added = Vec::new();
        for e in events {
            let fits = calc.try_add(&e);
            match batch.try_add(e.clone()) {
                Ok(()) => {
                    prop_assert!(fits);
                    let mut e = e;
                    if let Some(k) = &key {
                        e.set_partition_key(Some(k));
                    }
                    added.push(e);
                }
                Err(back) => {
                    prop_assert!(!fits);
                    prop_assert_eq!(back.body(), e.body());
                }
            }
            prop_assert_eq!(batch.size(), calc.size());
            prop_assert!(batch.is_empty() || batch.size() <= max_size);
        }
        prop_assert_eq!(batch.len(), added.len());
        let size = batch.size();
        let payload = batch.into_payload();
        prop_assert_eq!(payload.len(), size);
        let envelope = Message::decode(payload).unwrap();
        prop_assert_eq!(
            envelope.message_annotation("x-opt-partition-key").and_then(|v| v.as_str()),
            key.as_deref()
        );
        let sections = match envelope.body {
            Body::Data(s) => s.into_vec(),
            Body::Empty => Vec::new(),
            other => panic!("unexpected body {other:?}"),
        };
        prop_assert_eq!(sections.len(), added.len());
        for (s, e) in sections.into_iter().zip(&added) {
            let m = Message::decode(s).unwrap();
            prop_assert_eq!(&m, e.raw_message());
        }
    }
}
