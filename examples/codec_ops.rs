//! One codec operation repeated `N` times on the event message of `benches/codec.rs`, with no
//! timing of its own: `scripts/codec_instructions.sh` counts its instructions with callgrind
//! (a figure that does not move with the machine's load). It uses only the public codec API,
//! so the same file builds against an older revision for a side-by-side count.
//!
//!     cargo run --release --example codec_ops -- OP N
//!
//! OP: `encode` (message into a buffer sized by `encoded_len`), `decode` (message from shared
//! bytes), `encode-frame` (transfer frame into a buffer with room), `decode-frame` (frame cut
//! from an input buffer, transfer and message decoded). Every result is dropped in the loop.

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::{Encode, Timestamp};
use eventhubs::amqp::frame::{parse_frame, write_amqp_frame, AmqpFrame};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::transport::{Performative, Transfer};
use std::hint::black_box;
use std::process::ExitCode;

fn event() -> Message {
    let body: Vec<u8> = (0..100).map(|i| (i * 7 % 251) as u8).collect();
    let mut m = Message::with_data(Bytes::from(body));
    let ma = m.message_annotations_mut();
    ma.insert("x-opt-sequence-number", 1_234_567i64);
    ma.insert("x-opt-offset", "98765432");
    ma.insert("x-opt-enqueued-time", Timestamp(1_700_000_000_000));
    ma.insert("x-opt-partition-key", "device-42");
    let ap = m.application_properties_mut();
    ap.insert("device-id", "sensor-0042");
    ap.insert("temperature", 21.5f64);
    ap.insert("reading", 17i32);
    m
}

fn transfer() -> Performative {
    Performative::Transfer(Transfer {
        handle: 0,
        delivery_id: Some(4242),
        delivery_tag: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0x10, 0x92])),
        message_format: Some(0),
        settled: Some(false),
        ..Transfer::default()
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(op), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<usize>())) else {
        eprintln!("usage: codec_ops encode|decode|encode-frame|decode-frame N");
        return ExitCode::from(2);
    };
    let message = event();
    let perf = transfer();
    let len = message.encoded_len();
    let mut encoded = Vec::with_capacity(len);
    message.encode(&mut encoded);
    let payload = Bytes::from(encoded);
    let mut frame = BytesMut::new();
    write_amqp_frame(&mut frame, 0, &perf, &payload);
    // Encoding reuses one buffer (cleared, capacity kept), as a batch or an output buffer is.
    let mut out = BytesMut::with_capacity(frame.len());
    // Decoding reads frames from one input buffer, refilled when empty, as a connection does.
    let mut input = BytesMut::new();
    let refill = |input: &mut BytesMut| {
        if input.is_empty() {
            input.reserve(frame.len() * 64);
            for _ in 0..64 {
                input.extend_from_slice(&frame);
            }
        }
    };
    match op.as_str() {
        "encode" => (0..n).for_each(|_| {
            out.clear();
            black_box(&message).encode(&mut out);
            black_box(&out);
        }),
        "decode" => (0..n).for_each(|_| {
            let m = Message::decode(black_box(&payload).clone()).expect("message");
            black_box(&m);
        }),
        "decode-read-all" => (0..n).for_each(|_| {
            let m = Message::decode(black_box(&payload).clone()).expect("message");
            for e in m.message_annotations.iter().flat_map(|a| a.iter()) {
                black_box(e);
            }
            for e in m.application_properties.iter().flat_map(|p| p.iter()) {
                black_box(e);
            }
            black_box(&m);
        }),
        "encode-frame" => (0..n).for_each(|_| {
            out.clear();
            write_amqp_frame(&mut out, 0, black_box(&perf), black_box(&payload));
            black_box(&out);
        }),
        "decode-frame" => (0..n).for_each(|_| {
            refill(&mut input);
            let raw = parse_frame(&mut input, 65_536)
                .expect("frame")
                .expect("whole frame");
            let f = AmqpFrame::decode(raw).expect("frame body");
            let m = Message::decode(f.payload).expect("message");
            black_box((&f.performative, &m));
        }),
        other => {
            eprintln!("unknown op {other}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
