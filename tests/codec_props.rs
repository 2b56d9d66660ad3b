//! Property tests over arbitrary values and arbitrary bytes.

mod common;
mod support;

use bytes::Bytes;
use common::{for_each_payload, node_count, strategy};
use eventhubs::amqp::codec::{
    decode_exact, encode_to_vec, Decode, DecodeErrorKind, Decoder, Encode, SliceWriter, Str,
    Symbol, Value,
};
use eventhubs::amqp::types::message::{
    check_lazy_map, AnnotationKey, Annotations, Body, DataSections, Header, Message, Properties,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Decodes `input` and checks the invariants every outcome must keep: errors point inside the
/// input, and a decoded value has no more nodes than there were input bytes (so the memory
/// it holds is O(input)).
fn decode_checked(input: &[u8]) -> Result<Value, DecodeErrorKind> {
    match decode_exact::<Value>(Bytes::copy_from_slice(input)) {
        Ok(v) => {
            assert!(
                node_count(&v) <= input.len(),
                "{} nodes from {} bytes",
                node_count(&v),
                input.len()
            );
            Ok(v)
        }
        Err(e) => {
            assert!(
                e.offset <= input.len(),
                "offset {} past {} bytes",
                e.offset,
                input.len()
            );
            Err(e.kind)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    /// `encoded_len` is exact and decoding gives back the value (floats bit for bit, NaN
    /// payloads included).
    #[test]
    fn roundtrip(v in strategy::value()) {
        let bytes = encode_to_vec(&v);
        prop_assert_eq!(v.encoded_len(), bytes.len());
        let back: Value = decode_exact(Bytes::from(bytes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, v);
    }

    /// Encoding into a buffer that already holds data appends exactly `encoded_len` bytes.
    #[test]
    fn encode_appends(prefix in vec(any::<u8>(), 0..16), v in strategy::value()) {
        let mut buf = prefix.clone();
        v.encode(&mut buf);
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
        prop_assert_eq!(buf.len() - prefix.len(), v.encoded_len());
    }

    /// Values written back to back are read back in order, each ending where the next starts.
    #[test]
    fn sequences_decode_in_order(vs in vec(strategy::value(), 1..6)) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for v in &vs {
            v.encode(&mut buf);
            ends.push(buf.len());
        }
        let mut d = Decoder::new(Bytes::from(buf));
        for (v, end) in vs.iter().zip(ends) {
            let got = d.read_value().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, v);
            prop_assert_eq!(d.offset(), end);
        }
        prop_assert!(d.is_empty());
    }

    /// Decoded binaries, strings and symbols are slices of the input buffer, not copies.
    #[test]
    fn decoding_is_zero_copy(v in strategy::value()) {
        let input = Bytes::from(encode_to_vec(&v));
        let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
        let back: Value = decode_exact(input.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut outside = 0usize;
        let mut seen = 0usize;
        for_each_payload(&back, &mut |b: &Bytes| {
            if b.is_empty() {
                return;
            }
            seen += 1;
            let start = b.as_ptr() as usize;
            if !(range.contains(&start) && range.contains(&(start + b.len() - 1))) {
                outside += 1;
            }
        });
        prop_assert_eq!(outside, 0, "{} of {} payloads were copied", outside, seen);
    }

    /// Skipping a value checks what reading it checks: on valid encodings, mutated ones and
    /// random compounds both agree on success, on the error, and on the bytes consumed.
    #[test]
    fn skipping_accepts_exactly_what_reading_accepts(
        v in strategy::value(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        mutate in any::<bool>(),
    ) {
        let mut input = encode_to_vec(&v);
        if mutate {
            let i = at.index(input.len());
            input[i] = byte;
        }
        let input = Bytes::from(input);
        let mut read = Decoder::new(input.clone());
        let mut skip = Decoder::new(input);
        let (r, s) = (read.read_value().map(drop), skip.skip_value());
        prop_assert_eq!(&r, &s);
        if r.is_ok() {
            prop_assert_eq!(read.offset(), skip.offset());
        }
    }

    /// The same agreement on bytes that start like a compound or a described value.
    #[test]
    fn skipping_random_compounds_agrees_with_reading(
        code in prop::sample::select(vec![0x00u8, 0xc0, 0xc1, 0xd0, 0xd1, 0xe0, 0xf0]),
        rest in vec(any::<u8>(), 0..256),
    ) {
        let mut input = vec![code];
        input.extend(rest);
        let input = Bytes::from(input);
        let mut read = Decoder::new(input.clone());
        let mut skip = Decoder::new(input);
        prop_assert_eq!(read.read_value().map(drop), skip.skip_value());
    }

    /// A message section's map is checked when decoded and built only when read: on maps
    /// with keys of every kind (the right ones, a lax peer's, wrong ones), mutated or not, the
    /// check refuses whatever the full reader refuses and builds the same entries.
    #[test]
    fn lazy_section_maps_build_what_reading_reads(
        entries in vec((section_map_key(), strategy::value()), 0..6),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        mutate in any::<bool>(),
    ) {
        let mut input = encode_to_vec(&Value::Map(entries));
        if mutate {
            let i = at.index(input.len());
            input[i] = byte;
        }
        let input = Bytes::from(input);
        let annotations = check_lazy_map::<AnnotationKey>(input.clone());
        prop_assert_eq!(annotations.as_ref().err(), None);
        prop_assert_eq!(check_lazy_map::<Str>(input.clone()).err(), None);
        // Lookups in place answer as lookups in the built entries.
        if let Ok(Some(entries)) = annotations {
            let lazy = Annotations::decode(&mut Decoder::new(input)).unwrap();
            let names: Vec<String> = entries
                .iter()
                .filter_map(|(k, _)| k.as_str().map(String::from))
                .chain(["missing".to_string()])
                .collect();
            let built = Annotations::from(entries);
            for name in &names {
                prop_assert_eq!(lazy.get_str(name), built.get_str(name));
                prop_assert_eq!(lazy.get_scalar(name), built.get_scalar(name));
            }
        }
    }

    /// Writing into a slice gives the bytes `encode` gives, and a slice one byte short of
    /// `encoded_len` leaves the writer full (never a panic, never a short encoding).
    #[test]
    fn slice_writer_writes_what_encode_writes(v in strategy::value(), short in 1usize..4) {
        let bytes = encode_to_vec(&v);
        let mut room = vec![0u8; bytes.len() + 3];
        let mut w = SliceWriter::new(&mut room);
        v.write_to(&mut w);
        prop_assert!(!w.is_full());
        prop_assert_eq!(w.written(), &bytes[..]);
        let mut small = vec![0u8; bytes.len().saturating_sub(short)];
        let mut w = SliceWriter::new(&mut small);
        v.write_to(&mut w);
        prop_assert!(w.is_full());
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn random_bytes_never_panic(input in vec(any::<u8>(), 0..512)) {
        let _ = decode_checked(&input);
    }

    /// Bytes that start like a compound (so the decoder gets past the first byte) never panic.
    #[test]
    fn random_compounds_never_panic(
        code in prop::sample::select(vec![0x00u8, 0xc0, 0xc1, 0xd0, 0xd1, 0xe0, 0xf0]),
        rest in vec(any::<u8>(), 0..256),
    ) {
        let mut input = vec![code];
        input.extend(rest);
        let _ = decode_checked(&input);
    }

    /// Valid encodings with one byte changed, or cut short, are rejected or decoded, never
    /// a panic, and never a value bigger than the input.
    #[test]
    fn mutated_encodings_never_panic(
        v in strategy::value(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let good = encode_to_vec(&v);
        let mut bad = good.clone();
        let i = at.index(bad.len());
        bad[i] = byte;
        let _ = decode_checked(&bad);
        let short = &good[..cut.index(good.len())];
        prop_assert!(decode_checked(short).is_err(), "a strict prefix decoded");
    }

    /// A compound that declares more elements than it has bytes is refused with
    /// `CountExceedsSize`, however large the count, before any allocation.
    #[test]
    fn declared_counts_are_checked_before_allocating(
        code in prop::sample::select(vec![0xd0u8, 0xd1, 0xf0]),
        body in vec(any::<u8>(), 1..64),
        extra in 1u32..=u32::MAX - 64,
    ) {
        let count = (body.len() as u32).saturating_add(extra);
        let mut input = vec![code];
        input.extend_from_slice(&(4 + body.len() as u32).to_be_bytes());
        input.extend_from_slice(&count.to_be_bytes());
        input.extend_from_slice(&body);
        let err = decode_exact::<Value>(Bytes::from(input)).unwrap_err();
        prop_assert_eq!(err.offset, 5);
        let is_count_error = matches!(err.kind, DecodeErrorKind::CountExceedsSize { .. });
        prop_assert!(is_count_error, "{}", err);
    }
}

proptest! {
    // Messages and maps of up to a dozen entries, some of long strings: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A typed map written in one pass (its header patched, or widened to a map32, after its
    /// entries) is byte for byte the map `Value::Map` sizes first and then writes.
    #[test]
    fn typed_maps_in_one_pass_match_sized_maps(
        entries in vec(("[a-z-]{0,40}", long_or_any_value()), 0..12),
    ) {
        let typed: Vec<(Str, Value)> =
            entries.iter().map(|(k, v)| (Str::from(k.as_str()), v.clone())).collect();
        let untyped = Value::Map(
            entries.into_iter().map(|(k, v)| (Value::String(Str::from(k)), v)).collect(),
        );
        let expected = encode_to_vec(&untyped);
        prop_assert_eq!(typed.encoded_len(), expected.len());
        prop_assert_eq!(encode_to_vec(&typed), expected.clone());
        let mut room = vec![0u8; expected.len()];
        let mut w = SliceWriter::new(&mut room);
        typed.write_to(&mut w);
        prop_assert!(!w.is_full());
        prop_assert_eq!(w.written(), &expected[..]);
    }

    /// `Message::to_bytes` and `encode` (head written once on the stack) give the bytes the
    /// sized path gives (each section sized, then written), for messages with every section,
    /// heads too large for the stack room, and bodies of several data sections.
    #[test]
    fn one_pass_message_encoding_matches_the_sized_path(
        annotations in vec(("[a-z-]{1,30}", long_or_any_value()), 0..10),
        properties in vec(("[a-z-]{0,30}", long_or_any_value()), 0..10),
        bodies in vec(vec(any::<u8>(), 0..300), 0..3),
        header in any::<bool>(),
        with_properties in any::<bool>(),
        footer in any::<bool>(),
    ) {
        let mut m = Message {
            body: if bodies.is_empty() {
                Body::Empty
            } else {
                let mut sections = DataSections::new();
                for b in bodies {
                    sections.push(Bytes::from(b));
                }
                Body::Data(sections)
            },
            ..Message::default()
        };
        for (k, v) in annotations {
            m.message_annotations_mut().insert(k.as_str(), v);
        }
        for (k, v) in properties {
            m.application_properties_mut().insert(k.as_str(), v);
        }
        if header {
            m.header = Some(Header { durable: true, ttl: Some(60_000), ..Header::default() });
        }
        if with_properties {
            m.properties = Some(Properties {
                subject: Some(Str::from("subject")),
                ..Properties::default()
            });
        }
        if footer {
            m.footer = Some(Annotations::from(vec![(AnnotationKey::from("x-hash"), Value::Uint(7))]).into());
        }
        let mut sized = Vec::new();
        m.encode_before_body(&mut sized);
        m.body.encode(&mut sized);
        m.encode_after_body(&mut sized);
        prop_assert_eq!(sized.len(), m.encoded_len());
        prop_assert_eq!(&m.to_bytes()[..], &sized[..]);
        prop_assert_eq!(encode_to_vec(&m), sized.clone());
        let back = Message::decode(Bytes::from(sized)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, m);
    }
}

/// Keys of a section map: strings, symbols and ulongs (the right key types of one section or
/// the other), or any primitive.
fn section_map_key() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => "[a-z-]{0,12}".prop_map(|s| Value::String(Str::from(s))),
        3 => "[a-z-]{0,12}".prop_map(|s| Value::Symbol(Symbol::from(s.as_str()))),
        2 => any::<u64>().prop_map(Value::Ulong),
        1 => strategy::primitive(),
    ]
    .boxed()
}

/// Map values: any value, or a long string (so that maps cross the map8 limit).
fn long_or_any_value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => strategy::value(),
        1 => "[a-z]{100,300}".prop_map(|s| Value::String(Str::from(s))),
    ]
    .boxed()
}
