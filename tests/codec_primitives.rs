//! Exact bytes for every AMQP 1.0 primitive and compound encoding: the encoder picks the
//! smallest form, `encoded_len` is exact, and the decoder accepts every legal (also
//! non-minimal) form.

mod common;
mod support;

use bytes::Bytes;
use common::{hex, unhex};
use eventhubs::amqp::codec::{
    decode_exact, encode_to_vec, Array, DecodeErrorKind, Descriptor, ElementType, Encode, Str,
    Symbol, Timestamp, Uuid, Value,
};

fn sym(s: &str) -> Value {
    Value::Symbol(Symbol::from(s))
}

fn arr(e: ElementType, items: Vec<Value>) -> Value {
    Value::Array(Array::new(e, items).expect("well-typed array"))
}

fn darr(d: Descriptor, e: ElementType, items: Vec<Value>) -> Value {
    Value::Array(Array::described(Some(d), e, items).expect("well-typed array"))
}

/// Asserts that `v` encodes to exactly `expected` (hex), that `encoded_len` agrees, and that
/// the bytes decode back to `v`.
#[track_caller]
fn canon(v: Value, expected: &str) {
    let want = unhex(expected);
    let got = encode_to_vec(&v);
    assert_eq!(hex(&got), hex(&want), "encoding of {v:?}");
    assert_eq!(v.encoded_len(), want.len(), "encoded_len of {v:?}");
    let back: Value = decode_exact(Bytes::from(want)).expect("decodes");
    assert_eq!(back, v, "decoding {expected}");
}

/// Asserts that the (possibly non-minimal) encoding `input` decodes to `v`.
#[track_caller]
fn accepts(input: &str, v: Value) {
    let back: Value = decode_exact(Bytes::from(unhex(input)))
        .unwrap_or_else(|e| panic!("{input} should decode to {v:?}: {e}"));
    assert_eq!(back, v, "decoding {input}");
}

fn rep(byte: &str, n: usize) -> String {
    byte.repeat(n)
}

#[test]
fn null_and_booleans() {
    canon(Value::Null, "40");
    canon(Value::Bool(true), "41");
    canon(Value::Bool(false), "42");
    accepts("56 01", Value::Bool(true));
    accepts("56 00", Value::Bool(false));
}

#[test]
fn unsigned_integers() {
    canon(Value::Ubyte(0), "50 00");
    canon(Value::Ubyte(255), "50 ff");
    canon(Value::Ushort(0), "60 00 00");
    canon(Value::Ushort(0x1234), "60 12 34");
    canon(Value::Ushort(u16::MAX), "60 ff ff");

    canon(Value::Uint(0), "43");
    canon(Value::Uint(1), "52 01");
    canon(Value::Uint(255), "52 ff");
    canon(Value::Uint(256), "70 00 00 01 00");
    canon(Value::Uint(u32::MAX), "70 ff ff ff ff");

    canon(Value::Ulong(0), "44");
    canon(Value::Ulong(1), "53 01");
    canon(Value::Ulong(255), "53 ff");
    canon(Value::Ulong(256), "80 00 00 00 00 00 00 01 00");
    canon(Value::Ulong(u64::MAX), "80 ff ff ff ff ff ff ff ff");

    // every wider legal form of a small value decodes to the same value
    accepts("70 00 00 00 00", Value::Uint(0));
    accepts("70 00 00 00 05", Value::Uint(5));
    accepts("52 00", Value::Uint(0));
    accepts("80 00 00 00 00 00 00 00 00", Value::Ulong(0));
    accepts("80 00 00 00 00 00 00 00 05", Value::Ulong(5));
    accepts("53 00", Value::Ulong(0));
}

#[test]
fn signed_integers() {
    canon(Value::Byte(0), "51 00");
    canon(Value::Byte(-1), "51 ff");
    canon(Value::Byte(i8::MIN), "51 80");
    canon(Value::Byte(i8::MAX), "51 7f");
    canon(Value::Short(-1), "61 ff ff");
    canon(Value::Short(i16::MIN), "61 80 00");
    canon(Value::Short(i16::MAX), "61 7f ff");

    canon(Value::Int(0), "54 00");
    canon(Value::Int(-1), "54 ff");
    canon(Value::Int(-128), "54 80");
    canon(Value::Int(127), "54 7f");
    canon(Value::Int(128), "71 00 00 00 80");
    canon(Value::Int(-129), "71 ff ff ff 7f");
    canon(Value::Int(i32::MIN), "71 80 00 00 00");
    canon(Value::Int(i32::MAX), "71 7f ff ff ff");

    canon(Value::Long(0), "55 00");
    canon(Value::Long(-128), "55 80");
    canon(Value::Long(127), "55 7f");
    canon(Value::Long(128), "81 00 00 00 00 00 00 00 80");
    canon(Value::Long(-129), "81 ff ff ff ff ff ff ff 7f");
    canon(Value::Long(i64::MIN), "81 80 00 00 00 00 00 00 00");
    canon(Value::Long(i64::MAX), "81 7f ff ff ff ff ff ff ff");

    accepts("71 00 00 00 05", Value::Int(5));
    accepts("71 ff ff ff ff", Value::Int(-1));
    accepts("81 00 00 00 00 00 00 00 05", Value::Long(5));
    accepts("81 ff ff ff ff ff ff ff ff", Value::Long(-1));
}

#[test]
fn floating_point() {
    canon(Value::Float(1.5), "72 3f c0 00 00");
    canon(Value::Float(-0.0), "72 80 00 00 00");
    canon(Value::Float(f32::INFINITY), "72 7f 80 00 00");
    canon(Value::Float(f32::MIN_POSITIVE), "72 00 80 00 00");
    canon(Value::Float(f32::from_bits(0x7fc0_0001)), "72 7f c0 00 01"); // NaN payload kept
    canon(Value::Double(1.5), "82 3f f8 00 00 00 00 00 00");
    canon(
        Value::Double(f64::NEG_INFINITY),
        "82 ff f0 00 00 00 00 00 00",
    );
    canon(Value::Double(f64::MAX), "82 7f ef ff ff ff ff ff ff");
    canon(
        Value::Double(f64::from_bits(0x7ff8_0000_0000_0001)),
        "82 7f f8 00 00 00 00 00 01",
    );
}

#[test]
fn decimals_are_raw_bits() {
    canon(Value::Decimal32([0x22, 0x50, 0x00, 0x01]), "74 22 50 00 01");
    canon(Value::Decimal64([0xff; 8]), "84 ff ff ff ff ff ff ff ff");
    let d128: [u8; 16] = std::array::from_fn(|i| i as u8);
    canon(
        Value::Decimal128(d128),
        "94 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f",
    );
}

#[test]
fn char_timestamp_uuid() {
    canon(Value::Char('a'), "73 00 00 00 61");
    canon(Value::Char('é'), "73 00 00 00 e9");
    canon(Value::Char('\u{1F600}'), "73 00 01 f6 00");
    canon(Value::Char(char::MAX), "73 00 10 ff ff");
    canon(Value::Timestamp(Timestamp(0)), "83 00 00 00 00 00 00 00 00");
    canon(
        Value::Timestamp(Timestamp(-1)),
        "83 ff ff ff ff ff ff ff ff",
    );
    canon(
        Value::Timestamp(Timestamp(1_700_000_000_000)),
        "83 00 00 01 8b cf e5 68 00",
    );
    let u = Uuid([
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ]);
    assert_eq!(u.to_string(), "12345678-9abc-def0-0123-456789abcdef");
    canon(
        Value::Uuid(u),
        "98 12 34 56 78 9a bc de f0 01 23 45 67 89 ab cd ef",
    );
}

#[test]
fn binary_string_symbol_boundaries() {
    canon(Value::Binary(Bytes::new()), "a0 00");
    canon(Value::Binary(Bytes::from_static(&[1, 2])), "a0 02 01 02");
    canon(
        Value::Binary(Bytes::from(vec![0xab; 255])),
        &format!("a0 ff {}", rep("ab", 255)),
    );
    canon(
        Value::Binary(Bytes::from(vec![0xab; 256])),
        &format!("b0 00 00 01 00 {}", rep("ab", 256)),
    );

    canon(Value::from(""), "a1 00");
    canon(Value::from("héllo"), "a1 06 68 c3 a9 6c 6c 6f");
    canon(
        Value::from("x".repeat(255)),
        &format!("a1 ff {}", rep("78", 255)),
    );
    canon(
        Value::from("x".repeat(256)),
        &format!("b1 00 00 01 00 {}", rep("78", 256)),
    );
    // the boundary counts bytes, not chars: 128 two-byte chars are 256 bytes
    canon(
        Value::from("é".repeat(128)),
        &format!("b1 00 00 01 00 {}", rep("c3a9", 128)),
    );

    canon(sym(""), "a3 00");
    canon(
        sym("amqp:accepted:list"),
        "a3 12 616d71703a61636365707465643a6c697374",
    );
    canon(sym(&"s".repeat(255)), &format!("a3 ff {}", rep("73", 255)));
    canon(
        sym(&"s".repeat(256)),
        &format!("b3 00 00 01 00 {}", rep("73", 256)),
    );

    accepts(
        "b0 00 00 00 02 01 02",
        Value::Binary(Bytes::from_static(&[1, 2])),
    );
    accepts("b0 00 00 00 00", Value::Binary(Bytes::new()));
    accepts("b1 00 00 00 02 68 69", Value::from("hi"));
    accepts("b3 00 00 00 02 68 69", sym("hi"));
}

#[test]
fn lists() {
    canon(Value::List(vec![]), "45");
    canon(Value::List(vec![Value::Uint(1)]), "c0 03 01 52 01");
    canon(
        Value::List(vec![Value::Null, Value::Bool(true), Value::from("a")]),
        "c0 06 03 40 41 a1 01 61",
    );
    // 254 bytes of content is the largest list8 (size byte 255) ...
    canon(
        Value::List(vec![Value::Null; 254]),
        &format!("c0 ff fe {}", rep("40", 254)),
    );
    // ... 255 bytes needs list32
    canon(
        Value::List(vec![Value::Null; 255]),
        &format!("d0 00 00 01 03 00 00 00 ff {}", rep("40", 255)),
    );
    canon(
        Value::List(vec![Value::from("y".repeat(252))]),
        &format!("c0 ff 01 a1 fc {}", rep("79", 252)),
    );
    canon(
        Value::List(vec![Value::from("y".repeat(253))]),
        &format!("d0 00 00 01 03 00 00 00 01 a1 fd {}", rep("79", 253)),
    );
    // more than 255 items needs list32 whatever the size
    canon(
        Value::List(vec![Value::Null; 256]),
        &format!("d0 00 00 01 04 00 00 01 00 {}", rep("40", 256)),
    );

    accepts("c0 01 00", Value::List(vec![]));
    accepts("d0 00 00 00 04 00 00 00 00", Value::List(vec![]));
    accepts(
        "d0 00 00 00 06 00 00 00 01 52 01",
        Value::List(vec![Value::Uint(1)]),
    );
    accepts(
        "d0 00 00 00 0a 00 00 00 02 70 00 00 00 01 40",
        Value::List(vec![Value::Uint(1), Value::Null]),
    );
}

#[test]
fn maps() {
    canon(Value::Map(vec![]), "c1 01 00");
    canon(
        Value::Map(vec![(sym("a"), Value::Uint(1))]),
        "c1 06 02 a3 01 61 52 01",
    );
    let big: Vec<(Value, Value)> = (0..128u32)
        .map(|i| (Value::Uint(i + 1), Value::Null))
        .collect();
    // 128 pairs = 256 elements: map32 even though the content is small
    let mut want = String::from("d1 00 00 01 84 00 00 01 00");
    for i in 0..128u32 {
        want.push_str(&format!(" 52 {:02x} 40", i + 1));
    }
    canon(Value::Map(big), &want);

    accepts("d1 00 00 00 04 00 00 00 00", Value::Map(vec![]));
    accepts(
        "d1 00 00 00 0c 00 00 00 02 b3 00 00 00 01 61 52 01",
        Value::Map(vec![(sym("a"), Value::Uint(1))]),
    );
}

#[test]
fn arrays_of_every_primitive_element_type() {
    canon(
        arr(ElementType::Bool, vec![true.into(), false.into()]),
        "e0 04 02 56 01 00",
    );
    canon(
        arr(ElementType::Ubyte, vec![1u8.into(), 255u8.into()]),
        "e0 04 02 50 01 ff",
    );
    canon(
        arr(ElementType::Ushort, vec![1u16.into()]),
        "e0 04 01 60 00 01",
    );
    canon(
        arr(ElementType::Uint, vec![0u32.into(), 7u32.into()]),
        "e0 0a 02 70 00 00 00 00 00 00 00 07",
    );
    canon(
        arr(ElementType::Uint, vec![1u32.into(), 256u32.into()]),
        "e0 0a 02 70 00 00 00 01 00 00 01 00",
    );
    canon(
        arr(ElementType::Ulong, vec![0u64.into()]),
        "e0 0a 01 80 00 00 00 00 00 00 00 00",
    );
    canon(
        arr(ElementType::Ulong, vec![256u64.into()]),
        "e0 0a 01 80 00 00 00 00 00 00 01 00",
    );
    canon(
        arr(ElementType::Byte, vec![(-1i8).into()]),
        "e0 03 01 51 ff",
    );
    canon(
        arr(ElementType::Short, vec![(-2i16).into()]),
        "e0 04 01 61 ff fe",
    );
    canon(
        arr(ElementType::Int, vec![1i32.into(), (-2i32).into()]),
        "e0 0a 02 71 00 00 00 01 ff ff ff fe",
    );
    canon(
        arr(ElementType::Int, vec![1i32.into(), 1000i32.into()]),
        "e0 0a 02 71 00 00 00 01 00 00 03 e8",
    );
    canon(
        arr(ElementType::Long, vec![5i64.into()]),
        "e0 0a 01 81 00 00 00 00 00 00 00 05",
    );
    canon(
        arr(ElementType::Long, vec![(-129i64).into()]),
        "e0 0a 01 81 ff ff ff ff ff ff ff 7f",
    );
    canon(
        arr(ElementType::Float, vec![1.5f32.into()]),
        "e0 06 01 72 3f c0 00 00",
    );
    canon(
        arr(ElementType::Double, vec![1.5f64.into()]),
        "e0 0a 01 82 3f f8 00 00 00 00 00 00",
    );
    canon(
        arr(ElementType::Decimal32, vec![Value::Decimal32([1, 2, 3, 4])]),
        "e0 06 01 74 01 02 03 04",
    );
    canon(
        arr(ElementType::Decimal64, vec![Value::Decimal64([9; 8])]),
        "e0 0a 01 84 09 09 09 09 09 09 09 09",
    );
    canon(
        arr(ElementType::Decimal128, vec![Value::Decimal128([7; 16])]),
        &format!("e0 12 01 94 {}", rep("07", 16)),
    );
    canon(
        arr(ElementType::Char, vec!['a'.into()]),
        "e0 06 01 73 00 00 00 61",
    );
    canon(
        arr(ElementType::Timestamp, vec![Value::Timestamp(Timestamp(1))]),
        "e0 0a 01 83 00 00 00 00 00 00 00 01",
    );
    canon(
        arr(ElementType::Uuid, vec![Value::Uuid(Uuid([0x11; 16]))]),
        &format!("e0 12 01 98 {}", rep("11", 16)),
    );
    canon(
        arr(
            ElementType::Binary,
            vec![Value::Binary(Bytes::from_static(&[1]))],
        ),
        "e0 04 01 a0 01 01",
    );
    canon(
        arr(ElementType::String, vec![Value::from("a"), Value::from("")]),
        "e0 05 02 a1 01 61 00",
    );
    canon(
        Value::Array(Array::symbols([Symbol::from("a"), Symbol::from("bc")])),
        "e0 07 02 a3 01 61 02 62 63",
    );
    // one long element widens every element to the 32-bit form
    canon(
        arr(ElementType::Symbol, vec![sym("a"), sym(&"b".repeat(256))]),
        &format!(
            "f0 00 00 01 0e 00 00 00 02 b3 00 00 00 01 61 00 00 01 00 {}",
            rep("62", 256)
        ),
    );
    // empty arrays keep their element constructor
    canon(arr(ElementType::Ulong, vec![]), "e0 02 00 80");
    canon(arr(ElementType::String, vec![]), "e0 02 00 a1");
    canon(arr(ElementType::Null, vec![]), "e0 02 00 40");
    // array32 by count
    canon(
        arr(
            ElementType::Ubyte,
            (0..300).map(|i| Value::Ubyte(i as u8)).collect(),
        ),
        &format!(
            "f0 00 00 01 31 00 00 01 2c 50 {}",
            (0..300)
                .map(|i| format!("{:02x}", i as u8))
                .collect::<String>()
        ),
    );
}

#[test]
fn arrays_of_compounds_and_described_elements() {
    // array of lists: every element is a bare list8 (no list0 element constructor)
    canon(
        arr(
            ElementType::List,
            vec![Value::List(vec![]), Value::List(vec![Value::Uint(1)])],
        ),
        "e0 08 02 c0 01 00 03 01 52 01",
    );
    canon(
        arr(
            ElementType::Map,
            vec![Value::Map(vec![(sym("k"), Value::Null)])],
        ),
        "e0 08 01 c1 05 02 a3 01 6b 40",
    );
    // nested arrays: each inner array carries its own element constructor
    canon(
        arr(
            ElementType::Array,
            vec![
                arr(ElementType::Int, vec![1i32.into()]),
                arr(ElementType::Symbol, vec![sym("a")]),
            ],
        ),
        "e0 0e 02 e0 06 01 71 00 00 00 01 04 01 a3 01 61",
    );
    // described elements: the descriptor is written once, in the constructor
    canon(
        darr(
            Descriptor::Code(0x24),
            ElementType::List,
            vec![Value::List(vec![]), Value::List(vec![])],
        ),
        "e0 09 02 00 53 24 c0 01 00 01 00",
    );
    canon(
        darr(
            Descriptor::Symbol(Symbol::from("x:y")),
            ElementType::Uint,
            vec![5u32.into()],
        ),
        "e0 0c 01 00 a3 03 78 3a 79 70 00 00 00 05",
    );
    canon(
        darr(
            Descriptor::Code(0x0000_468C_0000_0004),
            ElementType::String,
            vec![],
        ),
        "e0 0c 00 00 80 00 00 46 8c 00 00 00 04 a1",
    );
}

#[test]
fn decoder_accepts_every_legal_array_form() {
    // Proton's style: array32, 4-byte ints even for small values
    accepts(
        "f0 00 00 00 0d 00 00 00 02 71 00 00 00 01 ff ff ff fe",
        arr(ElementType::Int, vec![1i32.into(), (-2i32).into()]),
    );
    accepts(
        "e0 06 01 70 00 00 00 07",
        arr(ElementType::Uint, vec![7u32.into()]),
    );
    accepts(
        "e0 0a 01 80 00 00 00 00 00 00 00 07",
        arr(ElementType::Ulong, vec![7u64.into()]),
    );
    accepts(
        "e0 07 01 b3 00 00 00 01 61",
        arr(ElementType::Symbol, vec![sym("a")]),
    );
    accepts(
        "e0 07 01 b0 00 00 00 01 61",
        arr(
            ElementType::Binary,
            vec![Value::Binary(Bytes::from_static(b"a"))],
        ),
    );
    accepts(
        "e0 0c 01 d0 00 00 00 06 00 00 00 01 52 01",
        arr(ElementType::List, vec![Value::List(vec![Value::Uint(1)])]),
    );
    accepts(
        "e0 0a 01 d1 00 00 00 04 00 00 00 00",
        arr(ElementType::Map, vec![Value::Map(vec![])]),
    );
    accepts(
        "f0 00 00 00 12 00 00 00 01 00 a3 01 78 f0 00 00 00 05 00 00 00 00 54",
        darr(
            Descriptor::Symbol(Symbol::from("x")),
            ElementType::Array,
            vec![arr(ElementType::Int, vec![])],
        ),
    );
    // a described value with a symbolic descriptor
    accepts(
        "00 a3 12 616d71703a61636365707465643a6c697374 45",
        Value::described(
            Descriptor::Symbol(Symbol::from("amqp:accepted:list")),
            Value::List(vec![]),
        ),
    );
    // ... and with a non-minimal numeric one
    accepts(
        "00 80 00 00 00 00 00 00 00 24 45",
        Value::described(Descriptor::Code(0x24), Value::List(vec![])),
    );
    accepts(
        "00 44 40",
        Value::described(Descriptor::Code(0), Value::Null),
    );
}

#[test]
fn described_values() {
    canon(
        Value::described(Descriptor::Code(0x24), Value::List(vec![])),
        "00 53 24 45",
    );
    canon(
        Value::described(
            Descriptor::Symbol(Symbol::from("amqp:accepted:list")),
            Value::List(vec![]),
        ),
        "00 a3 12 616d71703a61636365707465643a6c697374 45",
    );
    canon(
        Value::described(
            Descriptor::Code(0x0000_468C_0000_0004),
            Value::from("amqp.annotation.x-opt-offset > '-1'"),
        ),
        &format!(
            "00 80 00 00 46 8c 00 00 00 04 a1 23 {}",
            hex(b"amqp.annotation.x-opt-offset > '-1'")
        ),
    );
    // a described described value (legal, if odd)
    canon(
        Value::described(
            Descriptor::Code(1),
            Value::described(Descriptor::Code(0), Value::Bool(true)),
        ),
        "00 53 01 00 44 41",
    );
}

/// Known limitation, pinned so that a change is deliberate: the encoder writes non-empty arrays
/// of nulls with the zero-width `0x40` element constructor (as Proton does), but the decoder
/// bounds every array count by the bytes left, so it rejects them. Nobody sends these in
/// practice; see the report on the codec issue.
#[test]
fn array_of_nulls_is_encoded_but_not_decodable() {
    let v = arr(ElementType::Null, vec![Value::Null, Value::Null]);
    assert_eq!(hex(&encode_to_vec(&v)), "e0020240");
    let err = decode_exact::<Value>(Bytes::from(encode_to_vec(&v))).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::CountExceedsSize { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn typed_encoders_match_value_encoding() {
    #[track_caller]
    fn same<T: Encode>(t: T, v: Value) {
        let a = encode_to_vec(&t);
        assert_eq!(hex(&a), hex(&encode_to_vec(&v)), "{v:?}");
        assert_eq!(t.encoded_len(), a.len(), "{v:?}");
    }
    same(true, Value::Bool(true));
    same(false, Value::Bool(false));
    for n in [0u32, 1, 255, 256, u32::MAX] {
        same(n, Value::Uint(n));
    }
    for n in [0u64, 1, 255, 256, u64::MAX] {
        same(n, Value::Ulong(n));
        same(Descriptor::Code(n), Value::Ulong(n));
    }
    for n in [0i32, -128, 127, 128, -129, i32::MIN] {
        same(n, Value::Int(n));
    }
    for n in [0i64, -128, 127, 128, -129, i64::MAX] {
        same(n, Value::Long(n));
    }
    same(7u8, Value::Ubyte(7));
    same(7u16, Value::Ushort(7));
    same(-7i8, Value::Byte(-7));
    same(-7i16, Value::Short(-7));
    same(Timestamp(5), Value::Timestamp(Timestamp(5)));
    same(Uuid([3; 16]), Value::Uuid(Uuid([3; 16])));
    for n in [0usize, 255, 256] {
        let s = "z".repeat(n);
        same(Str::from(s.as_str()), Value::from(s.as_str()));
        same(Symbol::from(s.as_str()), sym(&s));
        same(Descriptor::Symbol(Symbol::from(s.as_str())), sym(&s));
        same(
            Bytes::from(s.clone().into_bytes()),
            Value::Binary(Bytes::from(s.into_bytes())),
        );
    }
    same(None::<u32>, Value::Null);
    same(Some(5u32), Value::Uint(5));
    let syms = vec![Symbol::from("a"), Symbol::from("bc")];
    same(syms.clone(), Value::Array(Array::symbols(syms)));
    same(Vec::<Symbol>::new(), Value::Array(Array::symbols([])));
    let long = vec![Symbol::from("a"), Symbol::from("q".repeat(300))];
    same(long.clone(), Value::Array(Array::symbols(long)));
    let fields = vec![(Symbol::from("k"), Value::Int(1))];
    same(fields, Value::Map(vec![(sym("k"), Value::Int(1))]));
    let wide: Vec<(Symbol, Value)> = (0..200)
        .map(|i| (Symbol::from(format!("k{i}")), Value::Null))
        .collect();
    let wide_v = Value::Map(
        wide.iter()
            .map(|(k, v)| (Value::Symbol(k.clone()), v.clone()))
            .collect(),
    );
    same(wide, wide_v);
}
