//! Hostile input: every rejection says what is wrong and where (byte offset, format code), and
//! huge declared sizes or counts in a few bytes are refused before anything is allocated.
//!
//! Offset conventions checked here: a bad constructor or field is reported at its first byte;
//! a size or count that does not fit at that size or count field; a premature end at the
//! position where the missing bytes should start; an invalid string at its length prefix.

mod common;
mod support;

use bytes::Bytes;
use common::unhex;
use eventhubs::amqp::codec::{
    decode_exact, DecodeError, DecodeErrorKind as K, Decoder, Symbol, Value, MAX_DEPTH,
};

fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    decode_exact::<Value>(Bytes::copy_from_slice(input))
}

/// Asserts that `input` (hex) is rejected with `kind` at `offset`, and that the message names
/// the offset.
#[track_caller]
fn rejects(input: &str, offset: usize, kind: K) {
    let err = decode(&unhex(input)).expect_err(input);
    assert_eq!((err.offset, &err.kind), (offset, &kind), "{input}: {err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("offset {offset}")), "{msg}");
}

#[test]
fn truncated_input() {
    rejects(
        "",
        0,
        K::UnexpectedEnd {
            needed: 1,
            remaining: 0,
        },
    );
    rejects(
        "70 00 00",
        1,
        K::UnexpectedEnd {
            needed: 4,
            remaining: 2,
        },
    );
    rejects(
        "98 00",
        1,
        K::UnexpectedEnd {
            needed: 16,
            remaining: 1,
        },
    );
    rejects(
        "a1 05 61 62",
        2,
        K::UnexpectedEnd {
            needed: 5,
            remaining: 2,
        },
    );
    rejects(
        "c0",
        1,
        K::UnexpectedEnd {
            needed: 1,
            remaining: 0,
        },
    );
    rejects(
        "00 53",
        2,
        K::UnexpectedEnd {
            needed: 1,
            remaining: 0,
        },
    );
    // a list whose size claims more than is there
    rejects(
        "c0 05 01 40",
        2,
        K::UnexpectedEnd {
            needed: 5,
            remaining: 2,
        },
    );
}

#[test]
fn unknown_format_codes_are_named_at_their_offset() {
    rejects("01", 0, K::InvalidFormatCode(0x01));
    rejects("ff", 0, K::InvalidFormatCode(0xff));
    rejects("c0 04 02 40 ff 40", 4, K::InvalidFormatCode(0xff));
    rejects("c1 05 02 a3 01 61 57", 6, K::InvalidFormatCode(0x57));
    let err = decode(&unhex("c0 04 02 40 ff 40")).unwrap_err();
    assert!(err.to_string().contains("0xff"), "{err}");
}

#[test]
fn huge_declared_lengths_fail_fast_without_allocating() {
    // 4 GiB binary / string / symbol in five bytes
    rejects(
        "b0 ff ff ff ff",
        5,
        K::UnexpectedEnd {
            needed: 0xffff_ffff,
            remaining: 0,
        },
    );
    rejects(
        "b1 ff ff ff ff 61",
        5,
        K::UnexpectedEnd {
            needed: 0xffff_ffff,
            remaining: 1,
        },
    );
    rejects(
        "b3 7f ff ff ff",
        5,
        K::UnexpectedEnd {
            needed: 0x7fff_ffff,
            remaining: 0,
        },
    );
    // compounds whose size field claims 4 GiB
    rejects(
        "d0 ff ff ff ff 00 00 00 01",
        5,
        K::UnexpectedEnd {
            needed: 0xffff_ffff,
            remaining: 4,
        },
    );
    rejects(
        "d1 ff ff ff fe 00 00 00 02",
        5,
        K::UnexpectedEnd {
            needed: 0xffff_fffe,
            remaining: 4,
        },
    );
    rejects(
        "f0 ff ff ff ff 00 00 00 01 50",
        5,
        K::UnexpectedEnd {
            needed: 0xffff_ffff,
            remaining: 5,
        },
    );
}

#[test]
fn huge_declared_counts_fail_fast_without_allocating() {
    // four billion elements declared in an honest-looking size: rejected at the count field
    rejects(
        "d0 00 00 00 04 ff ff ff ff",
        5,
        K::CountExceedsSize {
            count: 0xffff_ffff,
            size: 0,
        },
    );
    rejects("c0 01 05", 2, K::CountExceedsSize { count: 5, size: 0 });
    rejects(
        "d1 00 00 00 05 ff ff ff fe 40",
        5,
        K::CountExceedsSize {
            count: 0xffff_fffe,
            size: 1,
        },
    );
    // (for arrays `size` is the bytes after the count field, constructor included)
    rejects(
        "f0 00 00 00 05 ff ff ff ff 50",
        5,
        K::CountExceedsSize {
            count: 0xffff_ffff,
            size: 1,
        },
    );
    // zero-width element constructors must not make a count "free"
    rejects(
        "f0 00 00 00 05 ff ff ff ff 40",
        5,
        K::CountExceedsSize {
            count: 0xffff_ffff,
            size: 1,
        },
    );
    rejects(
        "e0 02 ff 41",
        2,
        K::CountExceedsSize {
            count: 255,
            size: 1,
        },
    );
    rejects(
        "e0 05 ff 00 53 01 45",
        2,
        K::CountExceedsSize {
            count: 255,
            size: 4,
        },
    );
    // ... nor can a count that fits the size but not the elements after the constructor
    rejects(
        "e0 03 02 40 40",
        2,
        K::CountExceedsSize { count: 2, size: 1 },
    );
}

#[test]
fn compound_framing_errors() {
    rejects("d0 00 00 00 02 00 00", 1, K::SizeTooSmall(2));
    rejects("c0 00", 1, K::SizeTooSmall(0));
    rejects("e0 00", 1, K::SizeTooSmall(0));
    rejects("c1 02 01 40", 2, K::OddMapCount(1));
    rejects("d1 00 00 00 07 00 00 00 03 40 40 40", 5, K::OddMapCount(3));
    // elements that end before the declared size: the leftover bytes are named
    rejects("c0 03 01 40 40", 4, K::TrailingBytes(1));
    rejects("e0 04 01 50 07 08", 5, K::TrailingBytes(1));
    // elements that need more than the declared size
    rejects(
        "c0 02 01 a1 01 61",
        4,
        K::UnexpectedEnd {
            needed: 1,
            remaining: 0,
        },
    );
    // and after a complete top-level value
    rejects("40 40", 1, K::TrailingBytes(1));
}

#[test]
fn invalid_scalars() {
    rejects("56 02", 1, K::InvalidBool(2));
    rejects("e0 04 02 56 01 07", 5, K::InvalidBool(7));
    rejects("73 00 00 d8 00", 1, K::InvalidChar(0xd800));
    rejects("73 00 11 00 00", 1, K::InvalidChar(0x11_0000));
    rejects("a1 02 c3 28", 1, K::InvalidUtf8);
    rejects("a3 01 ff", 1, K::InvalidUtf8);
    rejects("c0 05 02 40 a1 01 80", 5, K::InvalidUtf8);
    rejects("e0 06 02 a1 01 61 01 ff", 6, K::InvalidUtf8);
}

#[test]
fn invalid_descriptors_and_array_constructors() {
    rejects("00 a1 01 61 40", 1, K::InvalidDescriptor);
    rejects("00 40 40", 1, K::InvalidDescriptor);
    rejects("00 45 40", 1, K::InvalidDescriptor);
    rejects("e0 05 01 00 a1 01 61 50 01", 4, K::InvalidDescriptor);
    rejects("e0 02 01 01", 3, K::InvalidArrayElement(0x01));
    rejects("e0 05 01 00 53 01 00", 6, K::InvalidArrayElement(0x00));
}

fn nested_lists(depth: usize) -> Vec<u8> {
    // depth list8s, the innermost empty: c0 01 00 inside c0 04 01 c0 01 00 ...
    let mut v = vec![0x45];
    for _ in 0..depth {
        let mut outer = vec![0xc0, (v.len() + 1) as u8, 1];
        outer.extend_from_slice(&v);
        v = outer;
    }
    v
}

fn nested_lists32(depth: usize) -> Vec<u8> {
    let mut v = vec![0x45];
    for _ in 0..depth {
        let mut outer = vec![0xd0];
        outer.extend_from_slice(&((v.len() + 4) as u32).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.extend_from_slice(&v);
        v = outer;
    }
    v
}

#[test]
fn nesting_deeper_than_max_depth_is_refused() {
    let depth = MAX_DEPTH as usize;
    // exactly MAX_DEPTH nested lists (around a list0) decode
    assert!(decode(&nested_lists(depth)).is_ok());
    assert!(decode(&nested_lists32(depth)).is_ok());
    // one more does not; the error is inside the list that is one too deep
    let err = decode(&nested_lists(depth + 1)).unwrap_err();
    assert_eq!(err.kind, K::TooDeep);
    let deepest_list = 3 * depth;
    assert!(
        (deepest_list..=deepest_list + 3).contains(&err.offset),
        "offset {} for the list at {deepest_list}",
        err.offset
    );
    assert_eq!(
        decode(&nested_lists32(depth + 1)).unwrap_err().kind,
        K::TooDeep
    );
    assert!(err.to_string().contains("nested deeper than 32"), "{err}");

    // a chain of described-value constructors: 00 00 00 ... never reaches a value
    let err = decode(&vec![0u8; 10_000]).unwrap_err();
    assert_eq!(err.kind, K::TooDeep);
    assert!(err.offset <= depth + 1, "{err}");

    // maps nested in maps, arrays nested in arrays
    let mut m = vec![0x40];
    for _ in 0..40 {
        let mut outer = vec![0xd1];
        outer.extend_from_slice(&((m.len() + 5) as u32).to_be_bytes());
        outer.extend_from_slice(&2u32.to_be_bytes());
        outer.push(0x40);
        outer.extend_from_slice(&m);
        m = outer;
    }
    assert_eq!(decode(&m).unwrap_err().kind, K::TooDeep);

    let mut a = vec![0xf0, 0, 0, 0, 5, 0, 0, 0, 0, 0x50]; // empty ubyte array
    for _ in 0..40 {
        // an array holding one array: drop the inner constructor byte
        let inner = a[1..].to_vec();
        let mut outer = vec![0xf0];
        outer.extend_from_slice(&((inner.len() + 5) as u32).to_be_bytes());
        outer.extend_from_slice(&1u32.to_be_bytes());
        outer.push(0xf0);
        outer.extend_from_slice(&inner);
        a = outer;
    }
    assert_eq!(decode(&a).unwrap_err().kind, K::TooDeep);
}

#[test]
fn typed_decoding_names_the_expected_type() {
    let mut d = Decoder::new(Bytes::from(unhex("a1 01 61")));
    let err = <u32 as eventhubs::amqp::codec::Decode>::decode(&mut d).unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (
            0,
            K::UnexpectedType {
                expected: "uint",
                found: 0xa1
            }
        )
    );

    // a `multiple` symbol field: a single symbol or an array of them
    let one: Vec<Symbol> = decode_exact(Bytes::from(unhex("a3 01 61"))).unwrap();
    assert_eq!(one, vec![Symbol::from("a")]);
    let many: Vec<Symbol> = decode_exact(Bytes::from(unhex("e0 05 02 a3 00 01 62"))).unwrap();
    assert_eq!(many, vec![Symbol::from(""), Symbol::from("b")]);
    let err = decode_exact::<Vec<Symbol>>(Bytes::from(unhex("e0 03 01 54 01"))).unwrap_err();
    assert_eq!(
        err.kind,
        K::UnexpectedType {
            expected: "symbol or array of symbols",
            found: 0xe0
        }
    );

    // typed maps check framing like `Value` maps do
    let err = decode_exact::<Vec<(Symbol, Value)>>(Bytes::from(unhex("c1 01 03"))).unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (2, K::CountExceedsSize { count: 3, size: 0 })
    );
    let err =
        decode_exact::<Vec<(Symbol, Value)>>(Bytes::from(unhex("c1 04 03 40 40 40"))).unwrap_err();
    assert_eq!((err.offset, err.kind), (2, K::OddMapCount(3)));
    let err = decode_exact::<Vec<(Symbol, Value)>>(Bytes::from(unhex("45"))).unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (
            0,
            K::UnexpectedType {
                expected: "map",
                found: 0x45
            }
        )
    );
}

#[test]
fn composite_reader_errors() {
    // not described at all
    let mut d = Decoder::new(Bytes::from(unhex("45")));
    let err = d.read_composite(0x24, "accepted").unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (
            0,
            K::UnexpectedType {
                expected: "described type",
                found: 0x45
            }
        )
    );
    // the wrong composite
    let mut d = Decoder::new(Bytes::from(unhex("00 53 25 45")));
    let err = d.read_composite(0x24, "accepted").unwrap_err();
    assert_eq!(err.offset, 0);
    assert!(
        matches!(
            err.kind,
            K::UnexpectedDescriptor {
                expected: "accepted",
                ..
            }
        ),
        "{err}"
    );
    // a described non-list
    let mut d = Decoder::new(Bytes::from(unhex("00 53 24 40")));
    let err = d.read_composite(0x24, "accepted").unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (
            3,
            K::UnexpectedType {
                expected: "list",
                found: 0x40
            }
        )
    );
    // symbolic descriptors are accepted; a null mandatory field is reported with its name
    let mut d = Decoder::new(Bytes::from(unhex(
        "00 a3 0f 616d71703a6572726f723a6c697374 c0 03 02 40 40",
    )));
    let mut fields = d.read_composite(0x1d, "amqp:error:list").unwrap();
    let err = fields.required::<Symbol>("condition").unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (
            21,
            K::MissingField {
                composite: "amqp:error:list",
                field: "condition"
            }
        )
    );
    // a list claiming more fields than it has bytes
    let mut d = Decoder::new(Bytes::from(unhex("00 53 1d c0 01 0e")));
    let err = d.read_composite(0x1d, "error").unwrap_err();
    assert_eq!(
        (err.offset, err.kind),
        (5, K::CountExceedsSize { count: 14, size: 0 })
    );
}
