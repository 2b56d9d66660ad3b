//! Valid inputs that seed each target's corpus: real values, performatives, frames, messages,
//! and the byte streams of real client ↔ server exchanges.
//!
//! `cargo test --test fuzz_corpus_replay -- --ignored write_seeds` writes them into
//! `fuzz/corpus/<target>/seed-*`; the replay test also runs them from memory.

use super::encode_exact;
use super::engine::{capture_exchange, peer_header, Options, CONTROL_LEN};
use bytes::{BufMut, Bytes, BytesMut};
use eventhubs::amqp::codec::{
    Array, Descriptor, ElementType, Encode, Str, Symbol, Timestamp, Uuid, Value,
};
use eventhubs::amqp::frame::{
    write_amqp_frame, write_empty_frame, write_sasl_frame, FrameReader, StreamItem,
};
use eventhubs::amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::message::{Body, Message, MessageId};
use eventhubs::amqp::types::messaging::{
    Accepted, DeliveryState, Modified, Received, Rejected, Released, Source, Target,
};
use eventhubs::amqp::types::sasl::{
    SaslChallenge, SaslCode, SaslFrameBody, SaslInit, SaslMechanisms, SaslOutcome, SaslResponse,
};
use eventhubs::amqp::types::transport::{
    Attach, Begin, Close, Detach, Disposition, End, Flow, Open, Performative, Transfer,
};
use eventhubs::wire::selector::with_filter;

fn sym(s: &str) -> Symbol {
    Symbol::from(s)
}

/// A spread of values: every primitive in its small and large forms, compounds, arrays,
/// described values.
pub fn values() -> Vec<Value> {
    let long_text = "x".repeat(300);
    let items: Vec<Value> = (0..100u32).map(Value::Uint).collect();
    vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Ubyte(7),
        Value::Ushort(0x1234),
        Value::Uint(0),
        Value::Uint(200),
        Value::Uint(70000),
        Value::Ulong(0),
        Value::Ulong(9),
        Value::Ulong(1 << 40),
        Value::Byte(-3),
        Value::Short(-300),
        Value::Int(-5),
        Value::Int(1 << 20),
        Value::Long(-7),
        Value::Long(-(1 << 40)),
        Value::Float(1.5),
        Value::Float(f32::NAN),
        Value::Double(-2.25),
        Value::Decimal32([1, 2, 3, 4]),
        Value::Decimal64([1, 2, 3, 4, 5, 6, 7, 8]),
        Value::Decimal128([9; 16]),
        Value::Char('é'),
        Value::Timestamp(Timestamp(1_700_000_000_000)),
        Value::Uuid(Uuid([0xab; 16])),
        Value::Binary(Bytes::from_static(b"\x00\x01binary")),
        Value::Binary(Bytes::from(vec![0x5a; 300])),
        Value::from("hello"),
        Value::from(long_text.as_str()),
        Value::Symbol(sym("amqp:accepted:list")),
        Value::Symbol(Symbol::from(long_text.clone())),
        Value::List(vec![]),
        Value::List(vec![Value::Uint(1), Value::from("two"), Value::Null]),
        Value::List(items.clone()),
        Value::Map(vec![
            (Value::Symbol(sym("x-opt-offset")), Value::from("100")),
            (Value::Symbol(sym("x-opt-sequence-number")), Value::Long(5)),
        ]),
        Value::Map(vec![(Value::from(long_text.as_str()), Value::Bool(true))]),
        Value::Array(Array::symbols([sym("ANONYMOUS"), sym("PLAIN")])),
        Value::Array(Array::new(ElementType::Uint, items).expect("uints")),
        Value::Array(
            Array::new(
                ElementType::Long,
                vec![Value::Long(1), Value::Long(1 << 40)],
            )
            .expect("longs"),
        ),
        Value::Array(
            Array::new(
                ElementType::Bool,
                vec![Value::Bool(true), Value::Bool(false)],
            )
            .expect("bools"),
        ),
        Value::Array(
            Array::new(
                ElementType::List,
                vec![Value::List(vec![Value::Uint(1)]), Value::List(vec![])],
            )
            .expect("lists"),
        ),
        Value::Array(
            Array::new(
                ElementType::Map,
                vec![Value::Map(vec![(Value::Uint(1), Value::Null)])],
            )
            .expect("maps"),
        ),
        Value::Array(
            Array::new(
                ElementType::Array,
                vec![Value::Array(Array::symbols([sym("a"), sym("b")]))],
            )
            .expect("arrays"),
        ),
        Value::Array(
            Array::described(
                Some(Descriptor::Code(0x24)),
                ElementType::List,
                vec![Value::List(vec![]), Value::List(vec![])],
            )
            .expect("described lists"),
        ),
        Value::Array(
            Array::new(
                ElementType::Binary,
                vec![Value::Binary(Bytes::from(vec![1; 300]))],
            )
            .expect("bins"),
        ),
        Value::described(Descriptor::Code(0x77), Value::from("amqp-value")),
        Value::described(
            Descriptor::Symbol(sym("com.microsoft:datetime-offset")),
            Value::Long(637_000_000_000_000_000),
        ),
        Value::described(
            Descriptor::Code(0x0000_468c_0000_0004),
            Value::from("amqp.annotation.x-opt-offset > '-1'"),
        ),
    ]
}

/// Encodings that are valid but not what our encoder would choose.
pub fn non_canonical() -> Vec<Vec<u8>> {
    vec![
        vec![0x70, 0, 0, 0, 1],                               // uint in 4 bytes
        vec![0x80, 0, 0, 0, 0, 0, 0, 0, 2],                   // ulong in 8 bytes
        vec![0x71, 0, 0, 0, 3],                               // int in 4 bytes
        vec![0x56, 0x01],                                     // boolean with a byte
        vec![0xb1, 0, 0, 0, 2, b'h', b'i'],                   // str32
        vec![0xb3, 0, 0, 0, 1, b's'],                         // sym32
        vec![0xb0, 0, 0, 0, 1, 0xff],                         // vbin32
        vec![0xd0, 0, 0, 0, 6, 0, 0, 0, 2, 0x43, 0x44],       // list32
        vec![0xc0, 0x01, 0x00],                               // list8 of nothing
        vec![0xd1, 0, 0, 0, 6, 0, 0, 0, 2, 0x43, 0x44],       // map32
        vec![0xf0, 0, 0, 0, 7, 0, 0, 0, 2, 0x52, 0x01, 0x02], // array32 of smalluint
        vec![0xe0, 0x02, 0x00, 0x40],                         // empty array of null
        vec![0xe0, 0x05, 0x02, 0x41, 0x56, 0x01, 0x00],       // bad: mixed bool forms
        vec![0x00, 0xa3, 0x03, b'f', b'o', b'o', 0x40],       // symbol-described null
        vec![0x00, 0x00, 0x53, 0x01, 0x53, 0x02, 0x40],       // described descriptor (refused)
    ]
}

fn fields() -> Vec<(Symbol, Value)> {
    vec![
        (sym("product"), Value::from("eventhubs")),
        (sym("com.microsoft:timeout"), Value::Uint(60000)),
    ]
}

fn error() -> AmqpError {
    AmqpError::with_description(condition::NOT_FOUND, "no such entity")
        .with_info("com.microsoft:tracking-id", "abc-123")
}

/// One of each performative, with most fields set.
pub fn performatives() -> Vec<Performative> {
    vec![
        Open {
            container_id: "client-1".into(),
            hostname: Some("ns.servicebus.windows.net".into()),
            max_frame_size: 65536,
            channel_max: 4999,
            idle_time_out: Some(120_000),
            outgoing_locales: Some(vec![sym("en-US")]),
            incoming_locales: None,
            offered_capabilities: Some(vec![sym("ANONYMOUS-RELAY")]),
            desired_capabilities: Some(vec![sym("com.microsoft:session-filter")]),
            properties: Some(fields()),
        }
        .into(),
        Open::default().into(),
        Begin {
            remote_channel: Some(0),
            next_outgoing_id: 1,
            incoming_window: 5000,
            outgoing_window: 5000,
            handle_max: 255,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: Some(fields()),
        }
        .into(),
        Attach {
            name: "receiver-link".into(),
            handle: 1,
            role: Role::Receiver,
            snd_settle_mode: SenderSettleMode::Unsettled,
            rcv_settle_mode: ReceiverSettleMode::Second,
            source: Some(Box::new(with_filter(
                Source::new("hub/ConsumerGroups/$default/Partitions/0"),
                "amqp.annotation.x-opt-offset > '-1'",
            ))),
            target: Some(Box::new(Target::new("client-target"))),
            unsettled: Some(Value::Map(vec![(
                Value::Binary(Bytes::from_static(b"tag")),
                Value::Null,
            )])),
            incomplete_unsettled: true,
            initial_delivery_count: Some(3),
            max_message_size: Some(1 << 20),
            offered_capabilities: None,
            desired_capabilities: Some(vec![sym("com.microsoft:enable-receiver-runtime-metric")]),
            properties: Some(vec![(sym("com.microsoft:epoch"), Value::Long(7))]),
        }
        .into(),
        Flow {
            next_incoming_id: Some(10),
            incoming_window: 100,
            next_outgoing_id: 20,
            outgoing_window: 200,
            handle: Some(1),
            delivery_count: Some(5),
            link_credit: Some(300),
            available: Some(0),
            drain: true,
            echo: true,
            properties: Some(fields()),
        }
        .into(),
        Transfer {
            handle: 1,
            delivery_id: Some(42),
            delivery_tag: Some(Bytes::from_static(b"\x00\x00\x00\x01")),
            message_format: Some(0x8001_3700),
            settled: Some(false),
            more: true,
            rcv_settle_mode: Some(ReceiverSettleMode::First),
            state: Some(DeliveryState::Received(Received {
                section_number: 1,
                section_offset: 20,
            })),
            resume: false,
            aborted: false,
            batchable: true,
        }
        .into(),
        Disposition {
            role: Role::Receiver,
            first: 0,
            last: Some(9),
            settled: true,
            state: Some(DeliveryState::Accepted(Accepted)),
            batchable: false,
        }
        .into(),
        Disposition {
            role: Role::Receiver,
            first: 3,
            last: None,
            settled: false,
            state: Some(DeliveryState::Rejected(Rejected {
                error: Some(error()),
            })),
            batchable: true,
        }
        .into(),
        Disposition {
            role: Role::Sender,
            first: 1,
            last: Some(2),
            settled: true,
            state: Some(DeliveryState::Modified(Modified {
                delivery_failed: true,
                undeliverable_here: true,
                message_annotations: Some(fields()),
            })),
            batchable: false,
        }
        .into(),
        Disposition {
            role: Role::Receiver,
            first: 5,
            last: None,
            settled: true,
            state: Some(DeliveryState::Released(Released)),
            batchable: false,
        }
        .into(),
        Detach {
            handle: 1,
            closed: true,
            error: Some(error()),
        }
        .into(),
        End { error: None }.into(),
        End {
            error: Some(error()),
        }
        .into(),
        Close {
            error: Some(AmqpError::new(condition::DECODE_ERROR)),
        }
        .into(),
    ]
}

/// One of each SASL frame body.
pub fn sasl_bodies() -> Vec<SaslFrameBody> {
    vec![
        SaslMechanisms {
            mechanisms: vec![sym("MSSBCBS"), sym("ANONYMOUS"), sym("PLAIN")],
        }
        .into(),
        SaslInit::anonymous().into(),
        SaslInit::plain("user", "pass")
            .with_hostname("ns.servicebus.windows.net")
            .into(),
        SaslChallenge {
            challenge: Bytes::from_static(b"challenge"),
        }
        .into(),
        SaslResponse {
            response: Bytes::from_static(b"response"),
        }
        .into(),
        SaslOutcome::new(SaslCode::Ok).into(),
        SaslOutcome {
            code: SaslCode::Auth,
            additional_data: Some(Bytes::from_static(b"nope")),
        }
        .into(),
    ]
}

/// Seeds of the `decode_value` target.
pub fn decode_value() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = values().iter().map(encode_exact).collect();
    out.extend(non_canonical());
    out.extend(performatives().iter().map(encode_exact));
    out.extend(sasl_bodies().iter().map(encode_exact));
    out.push(encode_exact(&error()));
    // Several values back to back.
    let mut many = Vec::new();
    for v in values().iter().take(12) {
        many.extend(encode_exact(v));
    }
    out.push(many);
    out
}

/// A message with every section.
pub fn full_message() -> Message {
    let mut m = Message::with_data(Bytes::from_static(b"event body"));
    m.header_mut().durable = true;
    m.header_mut().ttl = Some(60_000);
    m.header_mut().delivery_count = 2;
    m.delivery_annotations_mut()
        .insert(sym("x-opt-runtime-metric"), Value::Long(1));
    let ma = m.message_annotations_mut();
    ma.insert(sym("x-opt-sequence-number"), Value::Long(17));
    ma.insert(sym("x-opt-offset"), Value::from("4096"));
    ma.insert(
        sym("x-opt-enqueued-time"),
        Value::Timestamp(Timestamp(1_700_000_000_000)),
    );
    ma.insert(sym("x-opt-partition-key"), Value::from("pk"));
    ma.insert(0x1234_u64, Value::Null);
    let p = m.properties_mut();
    p.message_id = Some(MessageId::Uuid(Uuid([7; 16])));
    p.user_id = Some(Bytes::from_static(b"user"));
    p.to = Some("hub".into());
    p.subject = Some("subject".into());
    p.reply_to = Some("reply".into());
    p.correlation_id = Some(MessageId::Ulong(9));
    p.content_type = Some(sym("application/json"));
    p.content_encoding = Some(sym("utf-8"));
    p.absolute_expiry_time = Some(Timestamp(1));
    p.creation_time = Some(Timestamp(2));
    p.group_id = Some(Str::from("group"));
    p.group_sequence = Some(3);
    p.reply_to_group_id = Some("rgroup".into());
    let ap = m.application_properties_mut();
    ap.insert("str", "value");
    ap.insert("int", Value::Int(-1));
    ap.insert("bin", Value::Binary(Bytes::from_static(b"\x01")));
    m.footer = Some(Default::default());
    if let Some(f) = m.footer.as_mut() {
        f.0.insert(sym("x-hash"), Value::Binary(Bytes::from_static(b"#")));
    }
    m
}

/// Messages of every body kind.
pub fn messages() -> Vec<Message> {
    let mut management =
        Message::with_value(Value::Map(vec![(Value::from("name"), Value::from("hub"))]));
    management
        .application_properties_mut()
        .insert("operation", "READ");
    management.properties_mut().message_id = Some("req-1".into());
    management.properties_mut().reply_to = Some("$management-reply".into());
    vec![
        full_message(),
        Message::with_data(Bytes::from(vec![0x61; 700])),
        Message {
            body: Body::Data(vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")].into()),
            ..Message::default()
        },
        Message {
            body: Body::Sequence(vec![vec![Value::Uint(1), Value::from("x")], vec![]]),
            ..Message::default()
        },
        management,
        Message::default(),
    ]
}

/// Seeds of the `decode_message` target.
pub fn decode_message() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = messages().iter().map(encode_exact).collect();
    // Symbolic section descriptors, a null delivery-annotations map, an amqp-value of null.
    let mut symbolic = Vec::new();
    for (name, body) in [
        ("amqp:header:list", vec![0x45]),
        ("amqp:delivery-annotations:map", vec![0x40]),
        ("amqp:properties:list", vec![0xc0, 0x02, 0x01, 0x40]),
        ("amqp:data:binary", vec![0xa0, 0x01, b'z']),
        ("amqp:footer:map", vec![0xc1, 0x01, 0x00]),
    ] {
        symbolic.push(0x00);
        encode_into(&mut symbolic, &Value::Symbol(sym(name)));
        symbolic.extend(body);
    }
    out.push(symbolic);
    out.push(vec![0x00, 0x53, 0x77, 0x40]);
    out
}

fn encode_into(buf: &mut Vec<u8>, v: &impl Encode) {
    v.encode(buf);
}

/// A stream of frames: every performative, SASL bodies, a heartbeat, an extended header.
pub fn frame_stream() -> Vec<u8> {
    let mut buf = BytesMut::new();
    for b in sasl_bodies() {
        write_sasl_frame(&mut buf, &b);
    }
    for (i, p) in performatives().iter().enumerate() {
        let payload = match p {
            Performative::Transfer(_) => encode_exact(&full_message()),
            _ => Vec::new(),
        };
        write_amqp_frame(&mut buf, i as u16, p, &payload);
    }
    write_empty_frame(&mut buf);
    // An empty frame with a 4-byte extended header (doff = 3).
    buf.put_slice(&[0, 0, 0, 12, 3, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    buf.to_vec()
}

/// Option sets the engine seeds are captured with.
pub const ENGINE_OPTIONS: [u8; 12] = [
    0x00, 0x01, 0x03, 0x04, 0x05, 0x0c, 0x10, 0x20, 0x40, 0x80, 0x25, 0x45,
];

/// Seeds of the engine targets: `(client seeds, server seeds)`. Each is the byte stream the
/// other side wrote in a real exchange, after the protocol header the harness supplies.
pub fn engine() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut client = Vec::new();
    let mut server = Vec::new();
    for (i, &o) in ENGINE_OPTIONS.iter().enumerate() {
        let opts = Options(o);
        let (c2s, s2c) = capture_exchange(opts);
        let header = peer_header(opts).to_bytes();
        assert_eq!(c2s[..8], header, "client opened with another header");
        assert_eq!(s2c[..8], header, "server answered with another header");
        // Byte-at-a-time replays the exchange faithfully; the others vary the read pattern.
        for seed in [0u8, [1, 2, 3][i % 3] + 4 * i as u8] {
            let mut c = vec![o, seed];
            c.extend_from_slice(&s2c[8..]);
            client.push(c);
            let mut s = vec![o, seed];
            s.extend_from_slice(&c2s[8..]);
            server.push(s);
        }
    }
    debug_assert!(client.iter().all(|s| s.len() > CONTROL_LEN));
    (client, server)
}

/// Seeds of the `parse_frame` target: `[max-frame-size control][chunk seed][stream]`.
pub fn parse_frame() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let stream = frame_stream();
    for (control, seed) in [(0u8, 0u8), (32, 1), (255, 2), (64, 3)] {
        let mut s = vec![control, seed];
        s.extend_from_slice(&stream);
        out.push(s);
    }
    for &o in &[0x00u8, 0x01, 0x05] {
        let (c2s, s2c) = capture_exchange(Options(o));
        for (control, stream) in [(255u8, c2s), (32, s2c)] {
            // Skip protocol headers: the stream starts at the first frame.
            let body = strip_headers(&stream);
            let mut s = vec![control, o.wrapping_mul(7) | 1];
            s.extend_from_slice(&body);
            out.push(s);
        }
    }
    out
}

/// Removes the 8-byte protocol headers from an engine's output, leaving only frames (and any
/// bytes that do not frame, as they are).
pub fn strip_headers(stream: &[u8]) -> Vec<u8> {
    let mut reader = FrameReader::new(u32::MAX);
    reader.push(stream);
    let mut out = Vec::new();
    while let Ok(Some((item, wire))) = reader.next_with_bytes() {
        if let StreamItem::Frame(_) = item {
            out.extend_from_slice(&wire);
        }
    }
    out.extend_from_slice(reader.buffered());
    out
}

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let (client, server) = engine();
    vec![
        ("decode_value", decode_value()),
        ("parse_frame", parse_frame()),
        ("decode_message", decode_message()),
        ("engine_client", client),
        ("engine_server", server),
        ("websocket_frames", websocket_frames()),
        ("proxy_reply", proxy_reply()),
    ]
}

/// A masked (client-to-server) or unmasked WebSocket frame.
fn ws_frame(opcode: u8, fin: bool, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    let key = [0x11, 0x22, 0x33, 0x44];
    if masked {
        out.extend(key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// WebSocket seeds: binary messages (whole, fragmented, around pings), a close, a text
/// message, large payloads, an oversized header; both roles, with and without the upgrade request.
pub fn websocket_frames() -> Vec<Vec<u8>> {
    let amqp = frame_stream();
    let mut streams = Vec::new();
    for masked in [true, false] {
        let mut s = ws_frame(2, true, b"AMQP\x00\x01\x00\x00", masked);
        s.extend(ws_frame(2, true, &amqp, masked));
        streams.push(s);
        let mut s = ws_frame(2, false, &amqp[..amqp.len() / 2], masked);
        s.extend(ws_frame(9, true, b"ping", masked));
        s.extend(ws_frame(0, true, &amqp[amqp.len() / 2..], masked));
        s.extend(ws_frame(8, true, &[0x03, 0xe8], masked));
        streams.push(s);
        streams.push(ws_frame(1, true, b"text is refused", masked));
        // Payloads large enough to be read straight into the reader's buffer, one of them
        // cut by a ping.
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = ws_frame(2, true, &big, masked);
        s.extend(ws_frame(2, false, &big[..9_000], masked));
        s.extend(ws_frame(9, true, &[0xab; 125], masked));
        s.extend(ws_frame(0, true, &big[9_000..], masked));
        streams.push(s);
        let mut huge = vec![0x82, if masked { 0xff } else { 0x7f }];
        huge.extend((1u64 << 40).to_be_bytes());
        streams.push(huge);
    }
    let upgrade = b"GET /$servicebus/websocket/ HTTP/1.1\r\nHost: localhost\r\n\
        Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: AMQPWSB10\r\n\r\n";
    let mut out = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        let masked = i < streams.len() / 2;
        out.push([vec![if masked { 0 } else { 1 }], s.clone()].concat());
        if masked {
            out.push([vec![2], upgrade.to_vec(), s.clone()].concat());
        }
    }
    out.push([vec![2], upgrade.to_vec()].concat());
    out
}

/// Proxy answers: success, the refusals (407, 403, 502), HTTP/1.0, junk, a truncated one.
pub fn proxy_reply() -> Vec<Vec<u8>> {
    [
        &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nProxy-Agent: test\r\n\r\n\x16\x03\x01",
        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 403 Forbidden\r\n\r\n",
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html>",
        b"HTTP/1.0 401 Unauthorized\r\nServer: tinyproxy/1.11.1\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 Connection est",
        b"HTTP/1.1 2000 x\r\n\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Runs one target by name.
pub fn run_target(target: &str, data: &[u8]) {
    match target {
        "decode_value" => super::fuzz_decode_value(data),
        "parse_frame" => super::fuzz_parse_frame(data),
        "decode_message" => super::fuzz_decode_message(data),
        "engine_client" => super::engine::fuzz_engine_client(data),
        "engine_server" => super::engine::fuzz_engine_server(data),
        "websocket_frames" => super::fuzz_websocket_frames(data),
        "proxy_reply" => super::fuzz_proxy_reply(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// The names of all targets.
pub const TARGETS: [&str; 7] = [
    "decode_value",
    "parse_frame",
    "decode_message",
    "engine_client",
    "engine_server",
    "websocket_frames",
    "proxy_reply",
];
