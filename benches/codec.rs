//! Codec throughput: a typical Event Hubs event, alone and inside a complete transfer frame,
//! through our codec and through fe2o3-amqp's types over `serde_amqp` in the same run.
//!
//!     cargo bench --bench codec -- --noplot
//!
//! The event: a 100-byte `data` body, three application properties, and the four message
//! annotations the service stamps on every received event (`x-opt-sequence-number` long,
//! `x-opt-offset` string, `x-opt-enqueued-time` timestamp, `x-opt-partition-key` string).
//!
//! Fairness:
//! - serde_amqp runs fe2o3-amqp's own `Message<Data>` and `Transfer` types (fe2o3-amqp-types
//!   0.18, built on serde_amqp 0.18), holding the same sections and values as ours. The setup
//!   checks that each side decodes the other's encoding to the same values.
//! - Encode writes into a fresh buffer on both sides (ours exactly sized, theirs by
//!   `serde_amqp::to_vec`); decode reads the same input bytes into typed values on both sides
//!   (ours: `Message` whose bytes/strings are slices of the input; theirs: owned values).
//! - Frame decode gives serde_amqp its fastest reader (`SliceReader`); the reader fe2o3-amqp's
//!   frame codec really uses (`IoReader` over the `BytesMut`) is measured as an extra line.
//!
//! After criterion's own report, a summary prints ns/message (criterion's median) and the
//! ratios, read back from criterion's estimates of this run.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use criterion::{BatchSize, Criterion};
use eventhubs::amqp::codec::{Encode, Timestamp};
use eventhubs::amqp::frame::{parse_frame, write_amqp_frame, AmqpFrame};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::transport::{Performative, Transfer};
use fe::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp_types as fe;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const BODY_LEN: usize = 100;
const SEQUENCE_NUMBER: i64 = 1_234_567;
const OFFSET: &str = "98765432";
const ENQUEUED_MS: i64 = 1_700_000_000_000;
const PARTITION_KEY: &str = "device-42";
const DELIVERY_ID: u32 = 4242;
const DELIVERY_TAG: [u8; 8] = [0, 0, 0, 0, 0, 0, 0x10, 0x92];
const MAX_FRAME: u32 = 65_536;

fn body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

// ---- our side --------------------------------------------------------------------------------

fn our_message() -> Message {
    let mut m = Message::with_data(Bytes::from(body()));
    let ma = m.message_annotations_mut();
    ma.insert("x-opt-sequence-number", SEQUENCE_NUMBER);
    ma.insert("x-opt-offset", OFFSET);
    ma.insert("x-opt-enqueued-time", Timestamp(ENQUEUED_MS));
    ma.insert("x-opt-partition-key", PARTITION_KEY);
    let ap = m.application_properties_mut();
    ap.insert("device-id", "sensor-0042");
    ap.insert("temperature", 21.5f64);
    ap.insert("reading", 17i32);
    m
}

fn our_transfer() -> Transfer {
    Transfer {
        handle: 0,
        delivery_id: Some(DELIVERY_ID),
        delivery_tag: Some(Bytes::from_static(&DELIVERY_TAG)),
        message_format: Some(0),
        settled: Some(false),
        ..Transfer::default()
    }
}

/// What `Sender::start_send` does: the message into its own exactly-sized buffer
/// (`Message::to_bytes`: the head written once on the stack, its size sizing the buffer).
fn our_encode_message(m: &Message) -> Bytes {
    m.to_bytes()
}

/// What a send costs up to the socket buffer: the message encoded (as `start_send` does), then
/// the frame header, transfer performative and message bytes written (as the engine does).
fn our_encode_frame(m: &Message) -> BytesMut {
    let payload = our_encode_message(m);
    let transfer = Performative::Transfer(our_transfer());
    let mut out = BytesMut::with_capacity(8 + transfer.encoded_len() + payload.len());
    write_amqp_frame(&mut out, 0, &transfer, &payload);
    out
}

/// What receiving costs from the connection's input buffer: frame cut, performative and
/// message decoded.
fn our_decode_frame(mut input: BytesMut) -> (Transfer, Message) {
    let raw = parse_frame(&mut input, MAX_FRAME)
        .expect("frame")
        .expect("whole frame");
    let frame = AmqpFrame::decode(raw).expect("frame body");
    let Some(Performative::Transfer(t)) = frame.performative else {
        panic!("transfer expected");
    };
    let m = Message::decode(frame.payload).expect("message");
    (t, m)
}

// ---- fe2o3-amqp / serde_amqp side ------------------------------------------------------------

type FeMessage = fe::messaging::Message<fe::messaging::Data>;

fn fe_message() -> FeMessage {
    use fe::messaging::annotations::OwnedKey;
    use fe::messaging::{ApplicationProperties, Data, MessageAnnotations};
    use fe::primitives::{OrderedMap, SimpleValue, Symbol, Timestamp as FeTimestamp, Value};
    let mut ma = OrderedMap::new();
    let key = |s: &str| OwnedKey::Symbol(Symbol::from(s));
    ma.insert(key("x-opt-sequence-number"), Value::Long(SEQUENCE_NUMBER));
    ma.insert(key("x-opt-offset"), Value::String(OFFSET.into()));
    ma.insert(
        key("x-opt-enqueued-time"),
        Value::Timestamp(FeTimestamp::from_milliseconds(ENQUEUED_MS)),
    );
    ma.insert(
        key("x-opt-partition-key"),
        Value::String(PARTITION_KEY.into()),
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
        body: Data(body().into()),
        footer: None,
    }
}

fn fe_transfer() -> fe::performatives::Transfer {
    fe::performatives::Transfer {
        handle: fe::definitions::Handle(0),
        delivery_id: Some(DELIVERY_ID),
        delivery_tag: Some(DELIVERY_TAG.to_vec().into()),
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

fn fe_encode_message(m: &FeMessage) -> Vec<u8> {
    serde_amqp::to_vec(&Serializable(m)).expect("serde_amqp encode")
}

/// fe2o3-amqp's send path: the message serialised into a payload buffer, then the frame
/// header, the serialised transfer and the payload into the output buffer.
fn fe_encode_frame(m: &FeMessage) -> BytesMut {
    let payload = fe_encode_message(m);
    let mut out = BytesMut::new();
    out.put_u32(0); // size, patched below
    out.put_u8(2);
    out.put_u8(0);
    out.put_u16(0);
    let mut ser = serde_amqp::ser::Serializer::new((&mut out).writer());
    fe_transfer().serialize(&mut ser).expect("transfer");
    out.put_slice(&payload);
    let size = out.len() as u32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    out
}

fn fe_decode_message(bytes: &[u8]) -> FeMessage {
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

/// Frame decode with serde_amqp's fastest reader: header by hand, the performative and the
/// message each from a slice.
fn fe_decode_frame_slice(mut input: BytesMut) -> (fe::performatives::Transfer, FeMessage) {
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
    (t, fe_decode_message(&payload))
}

/// Frame decode as fe2o3-amqp's `FrameCodec` does it: the performative through an `IoReader`
/// over the buffer, the rest split off as payload, the message from a slice.
fn fe_decode_frame_ioreader(mut input: BytesMut) -> (fe::performatives::Transfer, FeMessage) {
    let size = input.get_u32() as usize;
    let _doff = input.get_u8();
    let _ftype = input.get_u8();
    let _channel = input.get_u16();
    let mut body = input.split_to(size - 8);
    let performative = {
        let reader = serde_amqp::read::IoReader::new((&mut body).reader());
        let mut de = serde_amqp::de::Deserializer::new(reader);
        fe::performatives::Performative::deserialize(&mut de).expect("performative")
    };
    let fe::performatives::Performative::Transfer(t) = performative else {
        panic!("transfer expected");
    };
    let payload = body.split().freeze();
    (t, fe_decode_message(&payload))
}

/// Reads every annotation and application property of a decoded message.
fn read_all_ours(m: &Message) {
    for (k, v) in m.message_annotations.iter().flat_map(|a| a.iter()) {
        black_box((k, v));
    }
    for (k, v) in m.application_properties.iter().flat_map(|p| p.iter()) {
        black_box((k, v));
    }
}

/// [`read_all_ours`] on fe2o3-amqp's message.
fn read_all_theirs(m: &FeMessage) {
    for (k, v) in m.message_annotations.iter().flat_map(|a| a.0.iter()) {
        black_box((k, v));
    }
    for (k, v) in m.application_properties.iter().flat_map(|p| p.0.iter()) {
        black_box((k, v));
    }
}

// ---- setup checks ----------------------------------------------------------------------------

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    i >= o && i + inner.len() <= o + outer.len()
}

/// Proves the two sides carry the same message, and that our decode copies no body bytes.
fn check_setup(ours: &Message, theirs: &FeMessage) -> (Bytes, BytesMut) {
    let our_bytes = our_encode_message(ours);
    let their_bytes = fe_encode_message(theirs);
    assert_eq!(our_bytes.len(), ours.encoded_len(), "encoded_len is exact");
    let mut sized = BytesMut::with_capacity(ours.encoded_len());
    ours.encode(&mut sized);
    assert_eq!(our_bytes, sized, "to_bytes writes what encode writes");
    // Each side reads the other's encoding back as the same values.
    assert_eq!(
        &Message::decode(Bytes::from(their_bytes.clone())).unwrap(),
        ours
    );
    assert_eq!(&fe_decode_message(&our_bytes), theirs);
    assert_eq!(
        fe_decode_message(&their_bytes),
        fe_decode_message(&our_bytes)
    );

    // Zero copy: the decoded body and strings are slices of the input buffer.
    let decoded = Message::decode(our_bytes.clone()).unwrap();
    let body = decoded.body.single_data().expect("one data section");
    assert_eq!(body.len(), BODY_LEN);
    assert!(inside(&our_bytes, body), "message body was copied");
    let Some(eventhubs::amqp::codec::Value::String(offset)) =
        decoded.message_annotation("x-opt-offset")
    else {
        panic!("offset annotation");
    };
    assert!(inside(&our_bytes, offset.as_bytes()), "string was copied");

    // The same through a whole frame: the body is a slice of the connection's input buffer.
    let frame = our_encode_frame(ours);
    let input = BytesMut::from(&frame[..]);
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    let (t, m) = our_decode_frame(input);
    assert_eq!(t, our_transfer());
    assert_eq!(&m, ours);
    let b = m.body.single_data().unwrap();
    let p = b.as_ptr() as usize;
    assert!(
        range.contains(&p) && p + b.len() <= range.end,
        "frame body was copied"
    );

    // The fe2o3 frame decodes to the same transfer and message on every path.
    let fe_frame = fe_encode_frame(theirs);
    let (ft, fm) = fe_decode_frame_slice(BytesMut::from(&fe_frame[..]));
    assert_eq!((&ft, &fm), (&fe_transfer(), theirs));
    let (ft, fm) = fe_decode_frame_ioreader(BytesMut::from(&fe_frame[..]));
    assert_eq!((&ft, &fm), (&fe_transfer(), theirs));
    // Our decoder reads their frame too, and theirs ours.
    let (t, m) = our_decode_frame(fe_frame.clone());
    assert_eq!((&t, &m), (&our_transfer(), ours));
    let (ft, fm) = fe_decode_frame_slice(BytesMut::from(&frame[..]));
    assert_eq!((&ft, &fm), (&fe_transfer(), theirs));

    println!(
        "event message: ours {} B, serde_amqp {} B; transfer frame: ours {} B, serde_amqp {} B",
        our_bytes.len(),
        their_bytes.len(),
        frame.len(),
        fe_frame.len()
    );
    (our_bytes, frame)
}

// ---- benchmarks ------------------------------------------------------------------------------

const OURS: &str = "eventhubs";
const THEIRS: &str = "serde_amqp";
const THEIRS_IOREADER: &str = "serde_amqp_fe2o3_ioreader";

/// Runs `f` and hides its result from the optimiser by reference, then drops it inside the
/// timed loop. (Criterion's own `black_box` copies the returned value with a volatile read,
/// which for a ~1 KB `Message` costs ~100 ns and would be measured as decoding.)
fn consume<T>(v: T) {
    black_box(&v);
}

fn benches(c: &mut Criterion) {
    let ours = our_message();
    let theirs = fe_message();
    let (msg_bytes, frame_bytes) = check_setup(&ours, &theirs);
    let fresh_input = || BytesMut::from(&frame_bytes[..]);

    let mut g = c.benchmark_group("encode_message");
    g.bench_function(OURS, |b| {
        b.iter(|| consume(our_encode_message(black_box(&ours))))
    });
    g.bench_function(THEIRS, |b| {
        b.iter(|| consume(fe_encode_message(black_box(&theirs))))
    });
    g.finish();

    let mut g = c.benchmark_group("decode_message");
    g.bench_function(OURS, |b| {
        b.iter(|| consume(Message::decode(black_box(msg_bytes.clone())).unwrap()))
    });
    g.bench_function(THEIRS, |b| {
        b.iter(|| consume(fe_decode_message(black_box(&msg_bytes))))
    });
    g.finish();

    // Our decode checks the map sections whole but builds their entries on first read (a
    // reader of bodies builds none). Here each side also reads every annotation and property,
    // so ours builds them all: the cost when every entry is wanted.
    let mut g = c.benchmark_group("decode_read_all");
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let m = Message::decode(black_box(msg_bytes.clone())).unwrap();
            read_all_ours(&m);
            consume(m)
        })
    });
    g.bench_function(THEIRS, |b| {
        b.iter(|| {
            let m = fe_decode_message(black_box(&msg_bytes));
            read_all_theirs(&m);
            consume(m)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("encode_frame");
    g.bench_function(OURS, |b| {
        b.iter(|| consume(our_encode_frame(black_box(&ours))))
    });
    g.bench_function(THEIRS, |b| {
        b.iter(|| consume(fe_encode_frame(black_box(&theirs))))
    });
    g.finish();

    // Each iteration gets its own copy of the frame in a BytesMut, as the connection's input
    // buffer would hold it; making the copy is setup, not measured.
    let mut g = c.benchmark_group("decode_frame");
    g.bench_function(OURS, |b| {
        b.iter_batched(
            fresh_input,
            |i| consume(our_decode_frame(i)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function(THEIRS, |b| {
        b.iter_batched(
            fresh_input,
            |i| consume(fe_decode_frame_slice(i)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function(THEIRS_IOREADER, |b| {
        b.iter_batched(
            fresh_input,
            |i| consume(fe_decode_frame_ioreader(i)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

// ---- summary ---------------------------------------------------------------------------------

/// Criterion's output directory, resolved the way criterion resolves it.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("criterion")
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

/// Criterion's median time per iteration (ns) for a benchmark run since `since`.
fn median_ns(dir: &Path, group: &str, bench: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(group).join(bench).join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let e: Estimates = serde_json::from_str(&text).ok()?;
    Some(e.median.point_estimate)
}

fn summary(dir: &Path, since: SystemTime) {
    let rows = [
        ("encode_message", THEIRS),
        ("decode_message", THEIRS),
        ("decode_read_all", THEIRS),
        ("encode_frame", THEIRS),
        ("decode_frame", THEIRS),
        ("decode_frame", THEIRS_IOREADER),
    ];
    let mut printed = false;
    for (group, theirs) in rows {
        let ours = median_ns(dir, group, OURS, since);
        let other = median_ns(dir, group, theirs, since);
        if let (Some(o), Some(t)) = (ours, other) {
            if !printed {
                println!(
                    "\ncodec summary: criterion medians, ns/message; ratio = other / eventhubs"
                );
                printed = true;
            }
            // CODEC <case> <other> <eventhubs ns> <other ns> <ratio>
            println!(
                "CODEC {group:<15} {theirs:<26} {o:>8.0} {t:>8.0} {:>6.2}",
                t / o
            );
        }
    }
}

fn main() {
    let since = SystemTime::now() - Duration::from_secs(1);
    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    summary(&dir, since);
}
