//! The serde_amqp side of `examples/codec_ops.rs`: the same event message and transfer frame
//! as `benches/codec.rs` builds them with fe2o3-amqp's types, one operation repeated `N` times
//! with no timing of its own, so `scripts/codec_instructions.sh` can count serde_amqp's
//! instructions per message next to ours.
//!
//!     cargo run --release --example codec_ops_serde -- OP N
//!
//! OP: `encode` (message into a fresh `Vec`, as `serde_amqp::to_vec` does), `decode` (message
//! from a slice), `decode-frame` (frame header by hand, transfer and message each from a slice:
//! serde_amqp's fastest reader, as the bench's `serde_amqp` line).

use bytes::{Buf, BufMut, BytesMut};
use fe::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp_types as fe;
use serde::Serialize;
use std::hint::black_box;
use std::process::ExitCode;

type FeMessage = fe::messaging::Message<fe::messaging::Data>;

fn event() -> FeMessage {
    use fe::messaging::annotations::OwnedKey;
    use fe::messaging::{ApplicationProperties, Data, MessageAnnotations};
    use fe::primitives::{OrderedMap, SimpleValue, Symbol, Timestamp, Value};
    let body: Vec<u8> = (0..100).map(|i| (i * 7 % 251) as u8).collect();
    let key = |s: &str| OwnedKey::Symbol(Symbol::from(s));
    let mut ma = OrderedMap::new();
    ma.insert(key("x-opt-sequence-number"), Value::Long(1_234_567));
    ma.insert(key("x-opt-offset"), Value::String("98765432".into()));
    ma.insert(
        key("x-opt-enqueued-time"),
        Value::Timestamp(Timestamp::from_milliseconds(1_700_000_000_000)),
    );
    ma.insert(
        key("x-opt-partition-key"),
        Value::String("device-42".into()),
    );
    let mut ap = OrderedMap::new();
    ap.insert("device-id".to_string(), SimpleValue::from("sensor-0042"));
    ap.insert("temperature".to_string(), SimpleValue::from(21.5f64));
    ap.insert("reading".to_string(), SimpleValue::Int(17));
    fe::messaging::Message {
        header: None,
        delivery_annotations: None,
        message_annotations: Some(MessageAnnotations(ma)),
        properties: None,
        application_properties: Some(ApplicationProperties(ap)),
        body: Data(body.into()),
        footer: None,
    }
}

fn transfer() -> fe::performatives::Transfer {
    fe::performatives::Transfer {
        handle: fe::definitions::Handle(0),
        delivery_id: Some(4242),
        delivery_tag: Some(vec![0, 0, 0, 0, 0, 0, 0x10, 0x92].into()),
        message_format: Some(0),
        settled: Some(false),
        more: false,
        rcv_settle_mode: None,
        state: None,
        resume: false,
        aborted: false,
        batchable: false,
    }
}

fn decode_message(bytes: &[u8]) -> FeMessage {
    serde_amqp::from_slice::<Deserializable<FeMessage>>(bytes)
        .expect("serde_amqp decode")
        .0
}

/// Length of the described list at the start of `b` (`00 53 xx` + list constructor).
fn described_list_len(b: &[u8]) -> usize {
    match b[3] {
        0x45 => 4,
        0xc0 => 5 + usize::from(b[4]),
        0xd0 => 8 + u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize,
        c => panic!("list constructor {c:#x}"),
    }
}

fn decode_frame(input: &mut BytesMut) -> (fe::performatives::Transfer, FeMessage) {
    let size = input.get_u32() as usize;
    let doff = input.get_u8();
    let _ftype = input.get_u8();
    let _channel = input.get_u16();
    let mut body = input.split_to(size - 8);
    body.advance(usize::from(doff) * 4 - 8);
    let perf_len = described_list_len(&body);
    let performative: fe::performatives::Performative =
        serde_amqp::from_slice(&body[..perf_len]).expect("performative");
    let fe::performatives::Performative::Transfer(t) = performative else {
        panic!("transfer expected");
    };
    let payload = body.split_off(perf_len).freeze();
    (t, decode_message(&payload))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<usize>())) else {
        eprintln!("usage: codec_ops_serde encode|decode|decode-frame N");
        return ExitCode::from(2);
    };
    let message = event();
    let payload = serde_amqp::to_vec(&Serializable(&message)).expect("encode");
    let mut frame = BytesMut::new();
    frame.put_u32(0);
    frame.put_u8(2);
    frame.put_u8(0);
    frame.put_u16(0);
    let mut ser = serde_amqp::ser::Serializer::new((&mut frame).writer());
    transfer().serialize(&mut ser).expect("transfer");
    frame.put_slice(&payload);
    let size = frame.len() as u32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    let mut input = BytesMut::new();
    match op.as_str() {
        "encode" => (0..n).for_each(|_| {
            let v = serde_amqp::to_vec(&Serializable(black_box(&message))).expect("encode");
            black_box(&v);
        }),
        "decode" => (0..n).for_each(|_| {
            let m = decode_message(black_box(&payload));
            black_box(&m);
        }),
        "decode-frame" => (0..n).for_each(|_| {
            if input.is_empty() {
                input.reserve(frame.len() * 64);
                for _ in 0..64 {
                    input.extend_from_slice(&frame);
                }
            }
            let r = decode_frame(&mut input);
            black_box(&r);
        }),
        other => {
            eprintln!("unknown op {other}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
