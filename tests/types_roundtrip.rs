//! Property tests for the typed AMQP layer: messages with arbitrary sections round-trip with
//! exact sizes, and arbitrary or mutated input never panics the decoders.

use bytes::Bytes;
use eventhubs::amqp::codec::{
    decode_exact, encode_to_vec, Array, Descriptor, Encode, Str, Symbol, Timestamp, Uuid, Value,
};
use eventhubs::amqp::types::error::AmqpError;
use eventhubs::amqp::types::message::{
    AnnotationKey, Annotations, ApplicationProperties, Body, DeliveryAnnotations, Footer, Header,
    Message, MessageAnnotations, MessageId, Properties, PropertyMap,
};
use eventhubs::amqp::types::messaging::{
    Accepted, DeliveryState, Modified, Received, Rejected, Released, Source, Target,
    TerminusDurability, TerminusExpiryPolicy,
};
use eventhubs::amqp::types::sasl::SaslFrameBody;
use eventhubs::wire::batch::{data_section_len, write_data_section_header};
use eventhubs::wire::selector::with_filter;
use proptest::prelude::*;

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_str() -> impl Strategy<Value = Str> {
    prop_oneof![
        "[a-z0-9:._-]{0,12}".prop_map(Str::from),
        any::<String>().prop_map(Str::from),
        // Long enough to need the 32-bit form.
        "[a-z]{256,300}".prop_map(Str::from),
    ]
}

fn arb_symbol() -> impl Strategy<Value = Symbol> {
    "[a-z][a-z0-9:._-]{0,20}".prop_map(Symbol::from)
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u8>().prop_map(Value::Ubyte),
        any::<u16>().prop_map(Value::Ushort),
        any::<u32>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Ulong),
        any::<i8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::Short),
        any::<i32>().prop_map(Value::Int),
        any::<i64>().prop_map(Value::Long),
        any::<f32>().prop_map(Value::Float),
        any::<f64>().prop_map(Value::Double),
        any::<[u8; 4]>().prop_map(Value::Decimal32),
        any::<char>().prop_map(Value::Char),
        any::<i64>().prop_map(|t| Value::Timestamp(Timestamp(t))),
        any::<[u8; 16]>().prop_map(|u| Value::Uuid(Uuid(u))),
        arb_bytes(300).prop_map(Value::Binary),
        arb_str().prop_map(Value::String),
        arb_symbol().prop_map(Value::Symbol),
        prop::collection::vec(arb_symbol(), 0..4).prop_map(|s| Value::Array(Array::symbols(s))),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (any::<u64>(), inner.clone())
                .prop_map(|(c, v)| Value::described(Descriptor::Code(c), v)),
            (arb_symbol(), inner).prop_map(|(s, v)| Value::described(Descriptor::Symbol(s), v)),
        ]
    })
}

fn arb_annotations() -> impl Strategy<Value = Annotations> {
    let key = prop_oneof![
        arb_symbol().prop_map(AnnotationKey::Symbol),
        any::<u64>().prop_map(AnnotationKey::Ulong),
    ];
    prop::collection::vec((key, arb_value()), 0..5).prop_map(Annotations::from)
}

fn arb_header() -> impl Strategy<Value = Header> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<Option<u32>>(),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(
            |(durable, priority, ttl, first_acquirer, delivery_count)| Header {
                durable,
                priority,
                ttl,
                first_acquirer,
                delivery_count,
            },
        )
}

fn arb_message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<u64>().prop_map(MessageId::Ulong),
        any::<[u8; 16]>().prop_map(|u| MessageId::Uuid(Uuid(u))),
        arb_bytes(40).prop_map(MessageId::Binary),
        arb_str().prop_map(MessageId::String),
    ]
}

fn arb_properties() -> impl Strategy<Value = Properties> {
    let ids = (
        prop::option::of(arb_message_id()),
        prop::option::of(arb_bytes(20)),
        prop::option::of(arb_str()),
        prop::option::of(arb_str()),
        prop::option::of(arb_str()),
        prop::option::of(arb_message_id()),
        prop::option::of(arb_symbol()),
    );
    let rest = (
        prop::option::of(arb_symbol()),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
        prop::option::of(arb_str()),
        any::<Option<u32>>(),
        prop::option::of(arb_str()),
    );
    (ids, rest).prop_map(|((a, b, c, d, e, f, g), (h, i, j, k, l, m))| Properties {
        message_id: a,
        user_id: b,
        to: c,
        subject: d,
        reply_to: e,
        correlation_id: f,
        content_type: g,
        content_encoding: h,
        absolute_expiry_time: i.map(Timestamp),
        creation_time: j.map(Timestamp),
        group_id: k,
        group_sequence: l,
        reply_to_group_id: m,
    })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        // Empty vectors are the same as no body on the wire, so bodies here are non-empty.
        prop::collection::vec(arb_bytes(400), 1..4).prop_map(|v| Body::Data(v.into())),
        prop::collection::vec(prop::collection::vec(arb_value(), 0..4), 1..3)
            .prop_map(Body::Sequence),
        arb_value().prop_map(Body::Value),
        Just(Body::Empty),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        prop::option::of(arb_header()),
        prop::option::of(arb_annotations().prop_map(DeliveryAnnotations)),
        prop::option::of(arb_annotations().prop_map(MessageAnnotations)),
        prop::option::of(arb_properties()),
        prop::option::of(
            prop::collection::vec((arb_str(), arb_scalar()), 0..5)
                .prop_map(|p| ApplicationProperties(PropertyMap::from(p))),
        ),
        arb_body(),
        prop::option::of(arb_annotations().prop_map(Footer)),
    )
        .prop_map(
            |(
                header,
                delivery_annotations,
                message_annotations,
                properties,
                application_properties,
                body,
                footer,
            )| Message {
                header,
                delivery_annotations,
                message_annotations,
                properties,
                application_properties,
                body,
                footer,
            },
        )
}

fn arb_delivery_state() -> impl Strategy<Value = DeliveryState> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(n, o)| DeliveryState::Received(Received {
            section_number: n,
            section_offset: o
        })),
        Just(DeliveryState::Accepted(Accepted)),
        prop::option::of((arb_symbol(), prop::option::of(arb_str()))).prop_map(|e| {
            DeliveryState::Rejected(Rejected {
                error: e.map(|(condition, description)| AmqpError {
                    condition,
                    description,
                    info: None,
                }),
            })
        }),
        Just(DeliveryState::Released(Released)),
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::of(prop::collection::vec((arb_symbol(), arb_value()), 0..3))
        )
            .prop_map(|(f, u, a)| DeliveryState::Modified(Modified {
                delivery_failed: f,
                undeliverable_here: u,
                message_annotations: a,
            })),
    ]
}

fn arb_source() -> impl Strategy<Value = Source> {
    (
        prop::option::of(arb_str()),
        0u8..3,
        0u8..4,
        any::<u32>(),
        any::<bool>(),
        prop::option::of(arb_str()),
        prop::option::of(arb_delivery_state().prop_filter("an outcome", |s| s.is_terminal())),
        prop::option::of(prop::collection::vec(arb_symbol(), 0..3)),
    )
        .prop_map(
            |(address, durable, policy, timeout, dynamic, selector, outcome, caps)| {
                let mut s = Source {
                    address,
                    durable: [
                        TerminusDurability::None,
                        TerminusDurability::Configuration,
                        TerminusDurability::UnsettledState,
                    ][durable as usize],
                    expiry_policy: [
                        TerminusExpiryPolicy::LinkDetach,
                        TerminusExpiryPolicy::SessionEnd,
                        TerminusExpiryPolicy::ConnectionClose,
                        TerminusExpiryPolicy::Never,
                    ][policy as usize],
                    timeout,
                    dynamic,
                    default_outcome: outcome,
                    capabilities: caps.clone(),
                    outcomes: caps,
                    ..Source::default()
                };
                if let Some(expr) = selector {
                    s = with_filter(s, expr);
                }
                s
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn message_roundtrips_with_exact_size(m in arb_message()) {
        let bytes = encode_to_vec(&m);
        prop_assert_eq!(bytes.len(), m.encoded_len());
        let back = Message::decode(Bytes::from(bytes)).unwrap();
        prop_assert_eq!(back, m);
    }

    /// What the emulator stores (annotations rewritten in the scanned encoding) is exactly
    /// what re-encoding the decoded message with the same annotations gives.
    #[test]
    fn annotating_a_scanned_message_equals_re_encoding_it(
        m in arb_message(),
        seq in any::<i64>(),
        key in "[a-z]{0,12}",
    ) {
        let bytes = Bytes::from(encode_to_vec(&m));
        let mut raw = eventhubs::amqp::types::message::RawMessage::scan(bytes.clone()).unwrap();
        prop_assert_eq!(
            raw.message_annotations(),
            m.message_annotations.as_deref()
        );
        prop_assert_eq!(encode_to_vec(&raw), bytes.to_vec());
        let mut expected = m.clone();
        for target in [raw.message_annotations_mut(), expected.message_annotations_mut()] {
            target.insert("x-opt-sequence-number", Value::Long(seq));
            target.insert("x-opt-partition-key", Value::String(key.as_str().into()));
        }
        prop_assert_eq!(raw.encoded_len(), expected.encoded_len());
        prop_assert_eq!(encode_to_vec(&raw), encode_to_vec(&expected));
        let converted = eventhubs::amqp::types::message::RawMessage::from(expected.clone());
        prop_assert_eq!(encode_to_vec(&converted), encode_to_vec(&expected));
    }

    #[test]
    fn batch_envelope_size_is_predicted_exactly(
        envelope in arb_message().prop_map(|m| Message { body: Body::Empty, ..m }),
        events in prop::collection::vec(arb_message(), 0..5),
    ) {
        // Account first, write second: the sizes must agree byte for byte.
        let predicted = envelope.encoded_len()
            + events.iter().map(|e| data_section_len(e.encoded_len())).sum::<usize>();
        let mut wire = Vec::new();
        envelope.encode_before_body(&mut wire);
        for e in &events {
            write_data_section_header(&mut wire, e.encoded_len());
            e.encode(&mut wire);
        }
        envelope.encode_after_body(&mut wire);
        prop_assert_eq!(wire.len(), predicted);
        let decoded = Message::decode(Bytes::from(wire)).unwrap();
        let sections = match decoded.body {
            Body::Data(s) => s.into_vec(),
            Body::Empty => Vec::new(),
            other => panic!("unexpected body {other:?}"),
        };
        prop_assert_eq!(sections.len(), events.len());
        for (s, e) in sections.into_iter().zip(&events) {
            prop_assert_eq!(&Message::decode(s).unwrap(), e);
        }
    }

    #[test]
    fn delivery_state_roundtrips(s in arb_delivery_state()) {
        let bytes = encode_to_vec(&s);
        prop_assert_eq!(bytes.len(), s.encoded_len());
        prop_assert_eq!(decode_exact::<DeliveryState>(Bytes::from(bytes)).unwrap(), s);
    }

    #[test]
    fn source_and_target_roundtrip(s in arb_source()) {
        let bytes = encode_to_vec(&s);
        prop_assert_eq!(bytes.len(), s.encoded_len());
        prop_assert_eq!(decode_exact::<Source>(Bytes::from(bytes)).unwrap(), s.clone());
        let t = Target {
            address: s.address,
            durable: s.durable,
            expiry_policy: s.expiry_policy,
            timeout: s.timeout,
            dynamic: s.dynamic,
            dynamic_node_properties: None,
            capabilities: s.capabilities,
        };
        let bytes = encode_to_vec(&t);
        prop_assert_eq!(bytes.len(), t.encoded_len());
        prop_assert_eq!(decode_exact::<Target>(Bytes::from(bytes)).unwrap(), t);
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let b = Bytes::from(raw);
        let _ = Message::decode(b.clone());
        let _ = decode_exact::<DeliveryState>(b.clone());
        let _ = decode_exact::<Source>(b.clone());
        let _ = decode_exact::<Target>(b.clone());
        let _ = decode_exact::<SaslFrameBody>(b.clone());
        let _ = decode_exact::<AmqpError>(b);
    }

    #[test]
    fn mutated_messages_never_panic(
        m in arb_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode_to_vec(&m);
        if bytes.is_empty() {
            return Ok(());
        }
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = Message::decode(Bytes::from(bytes.clone()));
        bytes.truncate(cut.index(bytes.len()));
        let _ = Message::decode(Bytes::from(bytes));
    }
}
