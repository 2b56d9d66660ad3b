use super::*;
use crate::amqp::codec::{decode_exact, encode_to_vec};
use crate::amqp::types::error::test_support::*;

fn full_message() -> Message {
    let mut m = Message::with_data(Bytes::from_static(b"hello event"));
    *m.header_mut() = Header {
        durable: true,
        priority: 9,
        ttl: Some(60_000),
        first_acquirer: true,
        delivery_count: 2,
    };
    m.delivery_annotations_mut().insert("x-hop-count", 41i64);
    let ma = m.message_annotations_mut();
    ma.insert("x-sequence", 42i64);
    ma.insert("x-position", "4096");
    ma.insert("x-time", Timestamp(1_700_000_000_000));
    ma.insert(7u64, true);
    *m.properties_mut() = Properties {
        message_id: Some(MessageId::Uuid(Uuid([7; 16]))),
        user_id: Some(Bytes::from_static(b"me")),
        to: Some("eh1".into()),
        subject: Some("s".into()),
        reply_to: Some("$cbs".into()),
        correlation_id: Some(MessageId::Ulong(99)),
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        absolute_expiry_time: Some(Timestamp(1)),
        creation_time: Some(Timestamp(-1)),
        group_id: Some("g".into()),
        group_sequence: Some(3),
        reply_to_group_id: Some("rg".into()),
    };
    m.application_properties_mut().insert("count", 3i32);
    m.application_properties_mut().insert("name", "x");
    m.footer = Some(Footer(Annotations::from(vec![(
        "hash".into(),
        Value::Uint(1),
    )])));
    m
}

fn assert_message_roundtrip(m: &Message) -> Vec<u8> {
    let bytes = encode_to_vec(m);
    assert_eq!(bytes.len(), m.encoded_len());
    assert_eq!(&Message::decode(Bytes::from(bytes.clone())).unwrap(), m);
    // A prefix either fails or is a message with fewer sections; never a panic.
    for cut in 0..bytes.len() {
        let _ = Message::decode(Bytes::copy_from_slice(&bytes[..cut]));
    }
    bytes
}

#[test]
fn full_message_roundtrips() {
    assert_message_roundtrip(&full_message());
    assert_message_roundtrip(&Message::default());
    assert_eq!(encode_to_vec(&Message::default()), Vec::<u8>::new());
}

#[test]
fn every_body_kind_roundtrips() {
    for body in [
        Body::Data(vec![Bytes::from_static(b"a"), Bytes::from(vec![9u8; 300])].into()),
        Body::Data(vec![Bytes::new()].into()),
        Body::Sequence(vec![
            vec![Value::Int(1)],
            vec![],
            vec![Value::from("x"); 100],
        ]),
        Body::Value(Value::Null),
        Body::Value(Value::Map(vec![(
            Value::from("operation"),
            Value::from("READ"),
        )])),
        Body::Empty,
    ] {
        let m = Message {
            body,
            ..full_message()
        };
        assert_message_roundtrip(&m);
    }
}

#[test]
fn sections_roundtrip_alone_in_every_form() {
    let m = full_message();
    let header = m.header.unwrap();
    roundtrip(&header);
    alternatives(&header, HEADER_NAME);
    roundtrip(&Header::default());
    let props = m.properties.clone().unwrap();
    roundtrip(&props);
    alternatives(&props, PROPERTIES_NAME);
    roundtrip(&Properties::default());
    alternatives(&Properties::default(), PROPERTIES_NAME);
    roundtrip(&Properties {
        message_id: Some("id-1".into()),
        correlation_id: Some(MessageId::Binary(Bytes::from_static(b"\x01"))),
        ..Properties::default()
    });
    roundtrip(m.message_annotations.as_ref().unwrap());
    roundtrip(m.delivery_annotations.as_ref().unwrap());
    roundtrip(m.application_properties.as_ref().unwrap());
    roundtrip(m.footer.as_ref().unwrap());
    roundtrip(&MessageAnnotations::default());
}

#[test]
fn empty_header_list_means_defaults() {
    let bytes = described_list(&Descriptor::Code(HEADER_CODE), &[], false);
    let h: Header = decode_exact(Bytes::from(bytes)).unwrap();
    assert_eq!(h, Header::default());
    assert_eq!(h.priority, 4);
    let bytes = described_list(
        &Descriptor::Code(HEADER_CODE),
        &[Value::Bool(true), Value::Null],
        true,
    );
    let h: Header = decode_exact(Bytes::from(bytes)).unwrap();
    assert!(h.durable);
    assert_eq!(h.priority, 4);
}

#[test]
fn data_section_helpers_match_the_encoder() {
    for n in [0usize, 1, 255, 256, 70_000] {
        let body = Bytes::from(vec![0xabu8; n]);
        let m = Message::with_data(body.clone());
        let mut manual = Vec::new();
        write_data_section_header(&mut manual, n);
        assert_eq!(manual.len() + n, data_section_len(n));
        manual.extend_from_slice(&body);
        assert_eq!(encode_to_vec(&m), manual);
        let overhead = if n < 256 { 5 } else { 8 };
        assert_eq!(data_section_len(n), n + overhead);
    }
    let mut hdr = Vec::new();
    write_data_section_header(&mut hdr, 3);
    assert_eq!(hdr, [0x00, 0x53, 0x75, 0xa0, 3]);
}

#[test]
fn nested_message_in_data_section() {
    // Data sections may hold fully encoded messages of their own.
    let inner = full_message();
    let inner_len = inner.encoded_len();
    let mut envelope = Vec::new();
    let mut ma = MessageAnnotations::default();
    ma.insert("x-key", "pk");
    ma.encode(&mut envelope);
    for _ in 0..2 {
        write_data_section_header(&mut envelope, inner_len);
        inner.encode(&mut envelope);
    }
    let expected_len = ma.encoded_len() + 2 * data_section_len(inner_len);
    assert_eq!(envelope.len(), expected_len);
    let outer = Message::decode(Bytes::from(envelope)).unwrap();
    let Body::Data(sections) = &outer.body else {
        panic!("data body expected");
    };
    assert_eq!(sections.len(), 2);
    for s in sections {
        assert_eq!(Message::decode(s.clone()).unwrap(), inner);
    }
}

#[test]
fn decode_is_zero_copy() {
    let bytes = Bytes::from(encode_to_vec(&full_message()));
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let m = Message::decode(bytes.clone()).unwrap();
    let data = m.body.single_data().unwrap();
    assert_eq!(&data[..], b"hello event");
    let inside = |b: &[u8]| {
        let p = b.as_ptr() as usize;
        range.contains(&p) && p + b.len() <= range.end
    };
    assert!(inside(data));
    let props = m.properties.as_ref().unwrap();
    assert!(inside(props.to.as_ref().unwrap().as_bytes()));
    assert!(inside(props.user_id.as_ref().unwrap()));
    let Some(Value::String(offset)) = m.message_annotation("x-position") else {
        panic!("offset annotation");
    };
    assert!(inside(offset.as_bytes()));
}

#[test]
fn sections_out_of_order_are_rejected() {
    let header = encode_to_vec(&Header::default());
    let props = encode_to_vec(&Properties::default());
    let data = encode_to_vec(&Body::Data(vec![Bytes::from_static(b"x")].into()));
    let value = encode_to_vec(&Body::Value(Value::Null));
    let seq = encode_to_vec(&Body::Sequence(vec![vec![]]));
    let footer = encode_to_vec(&Footer::default());
    let cat = |parts: &[&[u8]]| Bytes::from(parts.concat());
    let bad: [&[&[u8]]; 7] = [
        &[&props, &header],
        &[&header, &header],
        &[&data, &props],
        &[&data, &value],
        &[&value, &value],
        &[&seq, &data],
        &[&footer, &data],
    ];
    for parts in bad {
        let err = Message::decode(cat(parts)).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::UnexpectedDescriptor { .. }),
            "{err}"
        );
        assert_eq!(err.offset, parts[0].len());
    }
    let good: [&[&[u8]]; 4] = [
        &[&header, &props, &data, &data, &footer],
        &[&seq, &seq],
        &[&value, &footer],
        &[&footer],
    ];
    for parts in good {
        Message::decode(cat(parts)).unwrap();
    }
}

#[test]
fn unknown_section_and_non_described_input_are_rejected() {
    let bytes = described_list(&Descriptor::Code(0x10), &[], false);
    assert!(matches!(
        Message::decode(Bytes::from(bytes)).unwrap_err().kind,
        DecodeErrorKind::UnexpectedDescriptor { .. }
    ));
    assert!(matches!(
        Message::decode(Bytes::from_static(&[0xa1, 0x01, b'x']))
            .unwrap_err()
            .kind,
        DecodeErrorKind::UnexpectedType { .. }
    ));
    // A data section whose value is not binary.
    assert!(matches!(
        Message::decode(Bytes::from_static(&[0x00, 0x53, 0x75, 0xa1, 0x01, b'x']))
            .unwrap_err()
            .kind,
        DecodeErrorKind::UnexpectedType { .. }
    ));
    // An amqp-sequence section whose value is not a list.
    assert!(matches!(
        Message::decode(Bytes::from_static(&[0x00, 0x53, 0x76, 0x40]))
            .unwrap_err()
            .kind,
        DecodeErrorKind::UnexpectedType { .. }
    ));
}

#[test]
fn symbolic_section_descriptors_are_accepted() {
    let mut bytes = vec![0x00];
    Symbol::from_static(DATA_NAME).encode(&mut bytes);
    Bytes::from_static(b"payload").encode(&mut bytes);
    bytes.push(0x00);
    Symbol::from_static(FOOTER_NAME).encode(&mut bytes);
    Vec::<(Symbol, Value)>::new().encode(&mut bytes);
    let m = Message::decode(Bytes::from(bytes)).unwrap();
    assert_eq!(m.body.single_data().map(|b| &b[..]), Some(&b"payload"[..]));
    assert_eq!(m.footer, Some(Footer::default()));
    let mut bytes = vec![0x00];
    Symbol::from_static(AMQP_VALUE_NAME).encode(&mut bytes);
    Value::from("v").encode(&mut bytes);
    let m = Message::decode(Bytes::from(bytes)).unwrap();
    assert_eq!(m.body, Body::Value(Value::from("v")));
}

#[test]
fn annotation_keys_and_lookup() {
    let mut a = Annotations::new();
    assert_eq!(a.insert("k", 1i32), None);
    assert_eq!(a.insert("k", 2i32), Some(Value::Int(1)));
    a.insert(5u64, "five");
    assert_eq!(a.len(), 2);
    assert_eq!(a.get("k"), Some(&Value::Int(2)));
    assert_eq!(a.get_code(5), Some(&Value::from("five")));
    assert_eq!(a.remove("k"), Some(Value::Int(2)));
    assert!(a.get("k").is_none());
    // A string key is not an annotation key.
    let mut bytes = vec![0x00, 0x53, 0x72];
    vec![(Value::from("k"), Value::Null)].encode(&mut bytes);
    assert!(matches!(
        decode_err::<MessageAnnotations>(bytes),
        DecodeErrorKind::UnexpectedType { .. }
    ));
}

#[test]
fn lax_peer_forms_are_tolerated() {
    // Null in place of an annotations map, and symbol keys in application properties.
    let m: MessageAnnotations =
        decode_exact(Bytes::from_static(&[0x00, 0x53, 0x72, 0x40])).unwrap();
    assert!(m.is_empty());
    let mut bytes = vec![0x00, 0x53, 0x74];
    vec![(Symbol::from("sym"), Value::Int(1))].encode(&mut bytes);
    let p: ApplicationProperties = decode_exact(Bytes::from(bytes)).unwrap();
    assert_eq!(p.get("sym"), Some(&Value::Int(1)));
}

#[test]
fn bad_message_id_type_is_rejected() {
    let items = [Value::Int(5)];
    let bytes = described_list(&Descriptor::Code(PROPERTIES_CODE), &items, false);
    assert!(matches!(
        decode_err::<Properties>(bytes),
        DecodeErrorKind::UnexpectedType { .. }
    ));
}

#[test]
fn hostile_bytes_do_not_panic() {
    let bytes = encode_to_vec(&full_message());
    for i in 0..bytes.len() {
        for b in [0x00, 0x40, 0xff, 0xd0, 0xf0, 0xb0, 0x75] {
            let mut m = bytes.clone();
            m[i] = b;
            let _ = Message::decode(Bytes::from(m));
        }
    }
}
