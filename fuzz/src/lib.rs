//! The checks behind the fuzz targets, shared with the corpus replay test.
//!
//! Each public `fuzz_*` function takes the raw fuzz input. It must never panic on any input;
//! a panic means the code under test broke one of its promises (no panic on peer input,
//! exact `encoded_len`, decode/encode round trips, bounded buffering, well-formed output).
//!
//! The cargo-fuzz targets in `fuzz_targets/` call these functions, and
//! `tests/fuzz_corpus_replay.rs` in the main crate includes this file (`#[path]`) and replays
//! the checked-in corpus through them, so the corpus doubles as a regression suite that runs
//! on the stable toolchain. This file therefore depends on nothing but `eventhubs` and `bytes`.
#![forbid(unsafe_code)]
#![allow(dead_code)]

pub mod engine;
pub mod seeds;

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::Str;
use eventhubs::amqp::codec::{decode_exact, Decode, DecodeError, Decoder, Encode, Value};
use eventhubs::amqp::frame::{
    parse_frame, write_amqp_frame, write_empty_frame, write_sasl_frame, AmqpFrame, FrameError,
    RawFrame, FRAME_HEADER_SIZE, FRAME_TYPE_AMQP, FRAME_TYPE_SASL, MIN_MAX_FRAME_SIZE,
};
use eventhubs::amqp::types::error::AmqpError;
use eventhubs::amqp::types::message::{
    check_lazy_map, AnnotationKey, EventLayout, Message, RawMessage,
};
use eventhubs::amqp::types::messaging::{DeliveryState, Source, Target};
use eventhubs::amqp::types::sasl::SaslFrameBody;
use eventhubs::amqp::types::transport::Performative;
use std::fmt::Debug;

/// The largest chunk a [`Chunker`] hands out.
pub const MAX_CHUNK: usize = 4096;

/// Cuts a byte stream into chunks (and makes other small choices) from one seed byte, so that
/// the same stream is seen in different read patterns without spending fuzz input on them.
///
/// The two low bits of the seed pick the largest chunk (1, 8, 64 or [`MAX_CHUNK`] bytes); the
/// whole byte seeds a xorshift generator for the sizes.
#[derive(Clone, Debug)]
pub struct Chunker {
    state: u32,
    max: usize,
}

impl Chunker {
    /// A chunker for `seed`.
    pub fn new(seed: u8) -> Self {
        let max = match seed & 3 {
            0 => 1,
            1 => 8,
            2 => 64,
            _ => MAX_CHUNK,
        };
        Chunker {
            state: (u32::from(seed) + 1).wrapping_mul(0x9e37_79b9) | 1,
            max,
        }
    }

    /// A chunker that hands out the whole stream at once.
    pub fn whole() -> Self {
        Chunker {
            state: 1,
            max: usize::MAX,
        }
    }

    /// The next pseudo-random number.
    pub fn rand(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }

    /// The size of the next chunk, at least 1.
    pub fn next_len(&mut self) -> usize {
        if self.max == usize::MAX {
            return usize::MAX;
        }
        1 + self.rand() as usize % self.max
    }
}

/// Encodes `v`, checking that [`Encode::encoded_len`] is exactly what `encode` writes.
pub fn encode_exact<T: Encode + Debug + ?Sized>(v: &T) -> Vec<u8> {
    let len = v.encoded_len();
    let mut buf = Vec::with_capacity(len);
    v.encode(&mut buf);
    assert_eq!(
        buf.len(),
        len,
        "encoded_len() is {len} but encode() wrote {} bytes for {v:?}",
        buf.len()
    );
    buf
}

/// Encodes a typed value, decodes it back and checks it is equal, and that encoding is stable.
pub fn roundtrip_typed<T: Encode + Decode + PartialEq + Debug>(v: &T) -> Vec<u8> {
    let bytes = encode_exact(v);
    let back: T = decode_exact(Bytes::from(bytes.clone()))
        .unwrap_or_else(|e| panic!("re-encoding of {v:?} does not decode: {e}\n{bytes:02x?}"));
    assert_eq!(
        &back, v,
        "round trip changed the value; encoding {bytes:02x?}"
    );
    assert_eq!(
        encode_exact(&back),
        bytes,
        "re-encoding is not stable for {v:?}"
    );
    bytes
}

/// Checks that a decode error points inside the input.
fn check_error(e: &DecodeError, input_len: usize) {
    assert!(
        e.offset <= input_len,
        "decode error offset {} is past the input ({input_len} bytes): {e}",
        e.offset
    );
}

/// True when `part` lies inside `whole` in memory (zero-copy slices).
fn within(part: &[u8], whole: &[u8]) -> bool {
    if part.is_empty() {
        return true;
    }
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

/// Checks that the variable-width leaves of a decoded value are slices of the input.
fn check_zero_copy(v: &Value, input: &[u8]) {
    match v {
        Value::Binary(b) => assert!(within(b, input), "decoded binary is a copy"),
        Value::String(s) => assert!(within(s.as_bytes(), input), "decoded string is a copy"),
        Value::Symbol(s) => assert!(within(s.as_bytes(), input), "decoded symbol is a copy"),
        Value::List(items) => items.iter().for_each(|i| check_zero_copy(i, input)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            check_zero_copy(k, input);
            check_zero_copy(v, input);
        }),
        Value::Array(a) => a.items().iter().for_each(|i| check_zero_copy(i, input)),
        Value::Described(d) => check_zero_copy(&d.value, input),
        _ => {}
    }
}

/// Round trip of a dynamically decoded value.
fn roundtrip_value(v: &Value) {
    let bytes = encode_exact(v);
    let mut d = Decoder::new(Bytes::from(bytes.clone()));
    let back = d
        .read_value()
        .unwrap_or_else(|e| panic!("re-encoding of {v:?} does not decode: {e}\n{bytes:02x?}"));
    assert!(d.is_empty(), "re-encoding of {v:?} has trailing bytes");
    assert_eq!(
        &back, v,
        "round trip changed the value; encoding {bytes:02x?}"
    );
    assert_eq!(encode_exact(&back), bytes, "re-encoding is not stable");
}

/// Tries a typed decoder at the decoder's position and round-trips what it accepts.
fn try_typed<T: Encode + Decode + PartialEq + Debug>(d: &Decoder, input_len: usize) {
    let mut d = d.clone();
    match T::decode(&mut d) {
        Ok(v) => {
            roundtrip_typed(&v);
        }
        Err(e) => check_error(&e, input_len),
    }
}

/// Target `decode_value`: every value that decodes re-encodes to exactly `encoded_len` bytes
/// that decode to an equal value; the typed composites (performatives, SASL bodies, delivery
/// states, termini, errors) are tried at each value boundary and round-tripped the same way.
pub fn fuzz_decode_value(data: &[u8]) {
    let input = Bytes::copy_from_slice(data);
    let mut d = Decoder::new(input.clone());
    while !d.is_empty() {
        try_typed::<Performative>(&d, data.len());
        try_typed::<SaslFrameBody>(&d, data.len());
        try_typed::<DeliveryState>(&d, data.len());
        try_typed::<Source>(&d, data.len());
        try_typed::<Target>(&d, data.len());
        try_typed::<AmqpError>(&d, data.len());
        // A message section's map is checked when decoded and built when read: the check
        // must refuse what the full reader refuses, and what it keeps must build the same.
        let rest = d.clone().take_rest();
        if let Err(e) = check_lazy_map::<AnnotationKey>(rest.clone()) {
            panic!("annotations map: {e}");
        }
        if let Err(e) = check_lazy_map::<Str>(rest) {
            panic!("application properties map: {e}");
        }
        let before = d.remaining();
        match d.read_value() {
            Ok(v) => {
                assert!(d.remaining() < before, "a value consumed no input");
                check_zero_copy(&v, &input);
                roundtrip_value(&v);
            }
            Err(e) => {
                check_error(&e, data.len());
                return;
            }
        }
    }
}

/// Target `decode_message`: a message that decodes re-encodes exactly and round-trips.
pub fn fuzz_decode_message(data: &[u8]) {
    let input = Bytes::copy_from_slice(data);
    check_read_in_place(&input);
    match Message::decode(input.clone()) {
        Ok(m) => {
            if let eventhubs::amqp::types::message::Body::Data(sections) = &m.body {
                for s in sections {
                    assert!(within(s, &input), "decoded data section is a copy");
                }
            }
            roundtrip_message(&m);
            // What decodes also scans, and the scan reads the same annotations and keeps
            // every other section as it was.
            let raw = RawMessage::scan(input.clone())
                .unwrap_or_else(|e| panic!("decodes but does not scan: {e}"));
            assert_eq!(raw.message_annotations(), m.message_annotations.as_deref());
            assert_eq!(raw.decode().as_ref(), Ok(&m), "scan changed the message");
            let rewritten = encode_exact(&raw);
            assert_eq!(
                Message::decode(Bytes::from(rewritten)).as_ref(),
                Ok(&m),
                "re-encoding the scan changed the message"
            );
        }
        Err(e) => {
            check_error(&e, data.len());
            // A scan never panics either; what it accepts must at least be re-encodable.
            if let Ok(raw) = RawMessage::scan(input.clone()) {
                let _ = encode_exact(&raw);
            }
        }
    }
}

/// Reading an event in place ([`EventLayout::scan`]) accepts only what the scan accepts, and
/// finds the same parts: the event written around an empty section is what the scan writes
/// around one, and its own annotation entries are the scan's as they came.
pub fn check_read_in_place(input: &Bytes) {
    let mut d = Decoder::new(input.clone());
    let Some(layout) = EventLayout::scan(&mut d, 0..input.len()) else {
        return;
    };
    let raw = RawMessage::scan(input.clone())
        .unwrap_or_else(|e| panic!("read in place but does not scan: {e}"));
    let mut in_place = Vec::new();
    in_place.extend_from_slice(&input[layout.range.start..layout.head_end]);
    in_place.extend_from_slice(&input[layout.tail_start..layout.range.end]);
    let mut scanned = BytesMut::new();
    raw.encode_with_section(&mut scanned, |_| {});
    assert_eq!(in_place, &scanned[..], "in place and scanned parts differ");
    assert_eq!(layout.len_with_section(0), scanned.len());
    if !layout.annotations.is_empty() {
        let own = raw.message_annotations().and_then(|a| a.raw_entries());
        assert_eq!(Some(layout.own_entries(input)), own, "own entries differ");
    }
}

/// Encodes a message, decodes it back and checks it is equal, and that encoding is stable.
pub fn roundtrip_message(m: &Message) -> Vec<u8> {
    let bytes = encode_exact(m);
    let back = Message::decode(Bytes::from(bytes.clone()))
        .unwrap_or_else(|e| panic!("re-encoding of {m:?} does not decode: {e}\n{bytes:02x?}"));
    assert_eq!(
        &back, m,
        "message round trip changed it; encoding {bytes:02x?}"
    );
    assert_eq!(
        encode_exact(&back),
        bytes,
        "message re-encoding is not stable"
    );
    bytes
}

/// The max-frame-size the `parse_frame` target uses for a control byte: small, sometimes
/// below the 512-byte floor (which `parse_frame` must then apply).
pub fn small_max_frame_size(control: u8) -> u32 {
    u32::from(control) * 16
}

/// What one pass of framing over a stream produced.
#[derive(Debug, PartialEq)]
pub struct Framed {
    /// The frames cut, in order.
    pub frames: Vec<RawFrame>,
    /// The error that stopped framing, if any.
    pub error: Option<FrameError>,
}

/// Frames `stream` as it arrives in `chunker`'s chunks, checking the buffer bounds after
/// every read and every frame cut.
pub fn frame_stream(stream: &[u8], max_frame_size: u32, chunker: &mut Chunker) -> Framed {
    let limit = max_frame_size.max(MIN_MAX_FRAME_SIZE) as usize;
    let mut buf = BytesMut::new();
    let mut pos = 0;
    let mut frames = Vec::new();
    let mut last_read = 0;
    loop {
        loop {
            match parse_frame(&mut buf, max_frame_size) {
                Ok(Some(raw)) => {
                    assert!(
                        raw.body.len() + FRAME_HEADER_SIZE <= limit,
                        "a frame of {} bytes passed a limit of {limit}",
                        raw.body.len() + FRAME_HEADER_SIZE
                    );
                    frames.push(raw);
                }
                Ok(None) => break,
                Err(e) => {
                    return Framed {
                        frames,
                        error: Some(e),
                    }
                }
            }
        }
        // Nothing whole is left: less than a header, or less than the (checked) frame size.
        assert!(
            buf.len() < limit,
            "{} bytes buffered with no whole frame under a limit of {limit}",
            buf.len()
        );
        assert!(
            buf.capacity() <= 4 * (limit + last_read.min(MAX_CHUNK)) + 65536,
            "buffer capacity {} grew past the frame limit {limit} and one read of {last_read}",
            buf.capacity()
        );
        if pos == stream.len() {
            return Framed {
                frames,
                error: None,
            };
        }
        let n = chunker.next_len().min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        last_read = n;
        assert!(
            buf.len() <= limit + n,
            "buffer grew past one frame and one read"
        );
    }
}

/// Decodes a raw frame's body and round-trips whatever decodes.
pub fn check_raw_frame(raw: &RawFrame) {
    match raw.frame_type {
        FRAME_TYPE_AMQP => {
            let Ok(frame) = AmqpFrame::decode(raw.clone()) else {
                return;
            };
            assert!(within(&frame.payload, &raw.body), "frame payload is a copy");
            let mut out = BytesMut::new();
            match &frame.performative {
                Some(p) => {
                    roundtrip_typed(p);
                    write_amqp_frame(&mut out, frame.channel, p, &frame.payload);
                }
                None => write_empty_frame(&mut out),
            }
            let raw2 = parse_frame(&mut out, u32::MAX)
                .expect("re-written frame parses")
                .expect("re-written frame is whole");
            assert!(out.is_empty(), "re-written frame has trailing bytes");
            let mut back = AmqpFrame::decode(raw2).expect("re-written frame decodes");
            if frame.performative.is_none() {
                // A heartbeat is always written on channel 0.
                back.channel = frame.channel;
            }
            assert_eq!(back, frame, "frame round trip changed it");
            if let Some(Performative::Transfer(_)) = frame.performative {
                if let Ok(m) = Message::decode(frame.payload.clone()) {
                    roundtrip_message(&m);
                }
            }
        }
        FRAME_TYPE_SASL => {
            let Ok(body) = SaslFrameBody::decode(&mut Decoder::new(raw.body.clone())) else {
                return;
            };
            roundtrip_typed(&body);
            let mut out = BytesMut::new();
            write_sasl_frame(&mut out, &body);
            let raw2 = parse_frame(&mut out, u32::MAX)
                .expect("re-written SASL frame parses")
                .expect("re-written SASL frame is whole");
            let back = SaslFrameBody::decode(&mut Decoder::new(raw2.body))
                .expect("re-written SASL frame decodes");
            assert_eq!(back, body, "SASL frame round trip changed it");
        }
        other => panic!("parse_frame let through frame type {other}"),
    }
}

/// Target `parse_frame`: input is `[max-frame-size control][chunk seed][stream...]`.
///
/// The stream is framed once whole and once in the seed's chunks: both must cut the same
/// frames and stop at the same error (framing does not depend on how bytes arrive), the
/// buffer must stay within one frame plus one read, and every frame body that decodes must
/// round-trip.
pub fn fuzz_parse_frame(data: &[u8]) {
    let [control, seed, stream @ ..] = data else {
        return;
    };
    let max = small_max_frame_size(*control);
    let chunked = frame_stream(stream, max, &mut Chunker::new(*seed));
    let whole = frame_stream(stream, max, &mut Chunker::whole());
    assert_eq!(chunked, whole, "framing depends on how the bytes arrived");
    for raw in &chunked.frames {
        check_raw_frame(raw);
    }
}

/// WebSocket framing and the server's upgrade handshake, as a peer's bytes reach them:
/// `[mode][bytes]`, mode bit 0 reads as a client (else as a server), bit 1 runs the server
/// handshake first, the other six bits pick a second read pattern. Beyond "no panic": never
/// more payload out than bytes in, and the outcome (bytes, messages, refusal) is the same
/// whatever the read pattern.
pub fn fuzz_websocket_frames(data: &[u8]) {
    use eventhubs::amqp::io::ws::{read_peer_bytes, read_peer_bytes_in};
    let [mode, bytes @ ..] = data else {
        return;
    };
    let (server, handshake) = (mode & 1 == 0, mode & 2 != 0);
    let s = read_peer_bytes(bytes, server, handshake);
    assert!(
        s.binary_bytes <= bytes.len(),
        "more payload bytes than input: {s:?}"
    );
    // The same bytes in another read pattern, into smaller reads: the same stream.
    let mut chunker = Chunker::new(mode >> 2);
    let reads: Vec<usize> = (0..16).map(|_| chunker.next_len().min(1 << 20)).collect();
    let out = 1 + chunker.rand() as usize % 9000;
    let again = read_peer_bytes_in(bytes, server, handshake, &reads, out);
    assert_eq!(
        s, again,
        "read pattern {reads:?} into {out} bytes changed the outcome"
    );
}

/// A proxy's answer to `CONNECT`, parsed as the tunnel parses it (after every line feed):
/// once an answer is complete every longer input gives the same answer, the status line is
/// printable and within the bound, and nothing past the bound is ever accepted.
pub fn fuzz_proxy_reply(data: &[u8]) {
    use eventhubs::amqp::io::proxy::{parse_connect_reply, MAX_CONNECT_REPLY};
    let mut first = None;
    for end in 1..=data.len() {
        if data[end - 1] != b'\n' && end < MAX_CONNECT_REPLY && end != data.len() {
            continue;
        }
        let r = parse_connect_reply(&data[..end]);
        if let Ok(Some(reply)) = &r {
            assert!((100..=999).contains(&reply.status), "{reply:?}");
            assert!(reply.status_line.len() < MAX_CONNECT_REPLY);
            assert!(reply.status_line.bytes().all(|c| (0x20..0x7f).contains(&c)));
            match &first {
                None => first = Some(reply.clone()),
                Some(f) => assert_eq!(f, reply, "a longer input changed the answer"),
            }
        }
        if first.is_none() && end >= MAX_CONNECT_REPLY {
            assert!(r.is_err(), "an answer past the bound was still pending");
        }
        if r.is_err() || end >= MAX_CONNECT_REPLY {
            break;
        }
    }
}
