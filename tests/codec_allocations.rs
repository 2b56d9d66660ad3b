//! Heap allocations of the codec on the event message of `benches/codec.rs`, counted by a
//! global allocator: encoding into a buffer sized by `encoded_len` makes none, decoding a
//! message makes at most two (the entry lists of its two map sections), and a whole transfer
//! frame cut from the connection's input buffer and decoded costs no more than its message.
//!
//! This binary holds a single test so that no other test allocates while a window is open.
//!
//! `cargo test --release --test codec_allocations -- --nocapture` prints the figures.

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::{Encode, Timestamp, Value};
use eventhubs::amqp::frame::{parse_frame, write_amqp_frame, AmqpFrame};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::transport::{Performative, Transfer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counts allocations (fresh, zeroed and reallocations) while `COUNTING` is on; frees are
/// not counted.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn note() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; counting
// touches only atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made while `f` runs (what `f` returns is dropped outside the window).
fn count<T>(f: impl FnOnce() -> T) -> (T, u64) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (out, ALLOCATIONS.load(Ordering::Relaxed))
}

/// The event of `benches/codec.rs`: a 100-byte body, the four service annotations and three
/// application properties.
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

#[test]
fn codec_allocations_per_message() {
    let message = event();
    let len = message.encoded_len();

    // Encode: into buffers that already hold `encoded_len` bytes of room.
    let mut vec = Vec::with_capacity(len);
    let ((), encode_vec) = count(|| message.encode(&mut vec));
    let mut bytes_mut = BytesMut::with_capacity(len);
    let ((), encode_bytes_mut) = count(|| message.encode(&mut bytes_mut));
    assert_eq!(vec.len(), len);
    assert_eq!(&bytes_mut[..], &vec[..]);

    // Frame encode: header, transfer and message bytes into a buffer with room for them.
    let perf = transfer();
    let frame_size = 8 + perf.encoded_len() + len;
    let mut frame = BytesMut::with_capacity(frame_size);
    let ((), encode_frame) = count(|| write_amqp_frame(&mut frame, 0, &perf, &vec));
    assert_eq!(frame.len(), frame_size);

    // Decode: from shared bytes, as a transfer's payload arrives.
    let shared = Bytes::from(vec.clone());
    drop(shared.clone()); // makes the buffer shared, as a payload cut from the input is
    let (decoded, decode) = count(|| Message::decode(shared.clone()).expect("message"));
    // The system properties a consumer reads, read in place.
    let ((offset, sequence_number), read_in_place) = count(|| {
        let a = decoded.message_annotations.as_ref().expect("annotations");
        (
            a.get_str("x-opt-offset").map(String::from),
            a.get_scalar("x-opt-sequence-number"),
        )
    });
    let offset_allocation = 1; // the String made of it above, to compare
    assert_eq!(offset.as_deref(), Some("98765432"));
    assert_eq!(sequence_number, Some(Value::Long(1_234_567)));
    // Every entry read: the two maps are built, one allocation each.
    let (_, read_all) = count(|| {
        assert_eq!(decoded, message);
        let Some(Value::String(offset)) = decoded.message_annotation("x-opt-offset") else {
            panic!("offset annotation");
        };
        assert_eq!(&**offset, "98765432");
    });
    drop(decoded);

    // Frame decode: cut from an input buffer that already shares its storage (as the
    // connection's does after its first frame), transfer and message decoded.
    let mut input = BytesMut::with_capacity(2 * frame.len());
    input.extend_from_slice(&frame);
    input.extend_from_slice(&frame);
    drop(
        parse_frame(&mut input, 65_536)
            .expect("frame")
            .expect("whole"),
    );
    let ((t, m), decode_frame) = count(|| {
        let raw = parse_frame(&mut input, 65_536)
            .expect("frame")
            .expect("whole");
        let f = AmqpFrame::decode(raw).expect("frame body");
        let m = Message::decode(f.payload).expect("message");
        (f.performative, m)
    });
    assert_eq!(t, Some(perf));
    assert_eq!(m, message);

    println!(
        "allocations per event message: encode {encode_vec} (Vec) / {encode_bytes_mut} \
         (BytesMut), frame encode {encode_frame}, decode {decode}, frame decode \
         {decode_frame}, system properties read in place {}, every entry read {read_all}",
        read_in_place - offset_allocation
    );
    assert_eq!(encode_vec, 0, "encoding into a Vec allocated");
    assert_eq!(encode_bytes_mut, 0, "encoding into a BytesMut allocated");
    assert_eq!(encode_frame, 0, "encoding a frame allocated");
    assert_eq!(
        decode, 0,
        "decoding a message allocated (its maps are built when read)"
    );
    assert_eq!(
        read_in_place, offset_allocation,
        "reading system properties in place allocated"
    );
    assert!(
        read_all <= 2,
        "building the two maps made {read_all} allocations"
    );
    assert!(
        decode_frame <= decode,
        "a frame cost {decode_frame} allocations, its message {decode}"
    );
}
