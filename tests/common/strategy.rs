//! A proptest strategy for arbitrary AMQP values: every primitive (NaN floats, strings and
//! binaries crossing the 255-byte boundary), lists, maps, described values and arrays of every
//! element type, with and without a shared descriptor, nested to a bounded depth.

use bytes::Bytes;
use eventhubs::amqp::codec::{Array, Descriptor, ElementType, Str, Symbol, Timestamp, Uuid, Value};
use proptest::collection::vec;
use proptest::prelude::*;

/// Lengths biased towards the 8-bit/32-bit boundary (255/256 bytes).
fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..40, 2 => 250usize..262, 1 => 0usize..700]
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        // mixed-width UTF-8, up to ~4x the char count in bytes
        vec(any::<char>(), 0..80).prop_map(String::from_iter),
        len_strategy().prop_map(|n| "s".repeat(n)),
        (len_strategy(), any::<char>()).prop_map(|(n, c)| {
            let mut s = "x".repeat(n);
            s.push(c);
            s
        }),
    ]
    .boxed()
}

fn ascii() -> BoxedStrategy<String> {
    prop_oneof!["[ -~]{0,40}", len_strategy().prop_map(|n| "a".repeat(n)),].boxed()
}

fn binary() -> BoxedStrategy<Bytes> {
    prop_oneof![
        vec(any::<u8>(), 0..40),
        len_strategy().prop_flat_map(|n| vec(any::<u8>(), n..=n)),
    ]
    .prop_map(Bytes::from)
    .boxed()
}

fn f32s() -> BoxedStrategy<f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits), // includes NaNs with payloads
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(-0.0f32),
        any::<f32>(),
    ]
    .boxed()
}

fn f64s() -> BoxedStrategy<f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(f64::NEG_INFINITY),
        Just(-0.0f64),
        any::<f64>(),
    ]
    .boxed()
}

/// A descriptor: small and large numeric codes, symbolic names.
pub fn descriptor() -> BoxedStrategy<Descriptor> {
    prop_oneof![
        (0u64..0x80).prop_map(Descriptor::Code),
        Just(Descriptor::Code(0)),
        any::<u64>().prop_map(Descriptor::Code),
        Just(Descriptor::Code(0x0000_468C_0000_0004)),
        ascii().prop_map(|s| Descriptor::Symbol(Symbol::from(s))),
    ]
    .boxed()
}

/// One value of a primitive element type (never `Null`: non-empty arrays of nulls are not
/// decodable, see `codec_primitives::array_of_nulls_*`).
fn primitive_of(e: ElementType) -> BoxedStrategy<Value> {
    match e {
        ElementType::Null => Just(Value::Null).boxed(),
        ElementType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ElementType::Ubyte => any::<u8>().prop_map(Value::Ubyte).boxed(),
        ElementType::Ushort => any::<u16>().prop_map(Value::Ushort).boxed(),
        ElementType::Uint => prop_oneof![Just(0u32), 0u32..=256, any::<u32>()]
            .prop_map(Value::Uint)
            .boxed(),
        ElementType::Ulong => prop_oneof![Just(0u64), 0u64..=256, any::<u64>()]
            .prop_map(Value::Ulong)
            .boxed(),
        ElementType::Byte => any::<i8>().prop_map(Value::Byte).boxed(),
        ElementType::Short => any::<i16>().prop_map(Value::Short).boxed(),
        ElementType::Int => prop_oneof![-129i32..=128, any::<i32>()]
            .prop_map(Value::Int)
            .boxed(),
        ElementType::Long => prop_oneof![-129i64..=128, any::<i64>()]
            .prop_map(Value::Long)
            .boxed(),
        ElementType::Float => f32s().prop_map(Value::Float).boxed(),
        ElementType::Double => f64s().prop_map(Value::Double).boxed(),
        ElementType::Decimal32 => any::<[u8; 4]>().prop_map(Value::Decimal32).boxed(),
        ElementType::Decimal64 => any::<[u8; 8]>().prop_map(Value::Decimal64).boxed(),
        ElementType::Decimal128 => any::<[u8; 16]>().prop_map(Value::Decimal128).boxed(),
        ElementType::Char => any::<char>().prop_map(Value::Char).boxed(),
        ElementType::Timestamp => any::<i64>()
            .prop_map(|t| Value::Timestamp(Timestamp(t)))
            .boxed(),
        ElementType::Uuid => any::<[u8; 16]>().prop_map(|u| Value::Uuid(Uuid(u))).boxed(),
        ElementType::Binary => binary().prop_map(Value::Binary).boxed(),
        ElementType::String => text().prop_map(|s| Value::String(Str::from(s))).boxed(),
        ElementType::Symbol => ascii().prop_map(|s| Value::Symbol(Symbol::from(s))).boxed(),
        ElementType::List | ElementType::Map | ElementType::Array => {
            unreachable!("compound element types are built from the recursive strategy")
        }
    }
}

/// Primitive element types that may appear in non-empty arrays.
const PRIMITIVE_ELEMENTS: [ElementType; 20] = [
    ElementType::Bool,
    ElementType::Ubyte,
    ElementType::Ushort,
    ElementType::Uint,
    ElementType::Ulong,
    ElementType::Byte,
    ElementType::Short,
    ElementType::Int,
    ElementType::Long,
    ElementType::Float,
    ElementType::Double,
    ElementType::Decimal32,
    ElementType::Decimal64,
    ElementType::Decimal128,
    ElementType::Char,
    ElementType::Timestamp,
    ElementType::Uuid,
    ElementType::Binary,
    ElementType::String,
    ElementType::Symbol,
];

/// A leaf (primitive) value of any type.
pub fn primitive() -> BoxedStrategy<Value> {
    let mut s: Vec<BoxedStrategy<Value>> = PRIMITIVE_ELEMENTS
        .iter()
        .map(|e| primitive_of(*e))
        .collect();
    s.push(Just(Value::Null).boxed());
    proptest::strategy::Union::new(s).boxed()
}

fn build_array(d: Option<Descriptor>, e: ElementType, items: Vec<Value>) -> Value {
    Value::Array(Array::described(d, e, items).expect("strategy builds well-typed arrays"))
}

/// An array of primitives, of any primitive element type, optionally described; sometimes
/// long enough to need array32.
fn primitive_array() -> BoxedStrategy<Value> {
    let typed = proptest::sample::select(PRIMITIVE_ELEMENTS.to_vec());
    let counts = prop_oneof![3 => 0usize..6, 1 => 60usize..300];
    let typed_arrays = (proptest::option::weighted(0.3, descriptor()), typed, counts)
        .prop_flat_map(|(d, e, n)| {
            vec(primitive_of(e), n..=n).prop_map(move |items| build_array(d.clone(), e, items))
        });
    // arrays of nulls only when empty (see `primitive_of`)
    let nulls =
        proptest::option::of(descriptor()).prop_map(|d| build_array(d, ElementType::Null, vec![]));
    prop_oneof![12 => typed_arrays, 1 => nulls].boxed()
}

/// Arrays whose elements are lists, maps or arrays built from `inner`.
fn compound_array(inner: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let d = proptest::option::weighted(0.3, descriptor());
    let lists = (d.clone(), vec(vec(inner.clone(), 0..4), 0..4)).prop_map(|(d, ls)| {
        build_array(
            d,
            ElementType::List,
            ls.into_iter().map(Value::List).collect(),
        )
    });
    let maps = (d.clone(), vec(vec((inner.clone(), inner), 0..3), 0..4)).prop_map(|(d, ms)| {
        build_array(
            d,
            ElementType::Map,
            ms.into_iter().map(Value::Map).collect(),
        )
    });
    let arrays = (d, vec(primitive_array(), 0..4))
        .prop_map(|(d, arrs)| build_array(d, ElementType::Array, arrs));
    prop_oneof![lists, maps, arrays].boxed()
}

/// Any value: primitives, and lists, maps, described values and arrays nested up to four
/// levels deep.
pub fn value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![4 => primitive(), 1 => primitive_array()];
    leaf.prop_recursive(4, 96, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::List),
            // occasionally wide enough to need list32 / map32
            vec(primitive(), 250..300).prop_map(Value::List),
            vec((inner.clone(), inner.clone()), 0..6).prop_map(Value::Map),
            (descriptor(), inner.clone()).prop_map(|(d, v)| Value::described(d, v)),
            compound_array(inner),
        ]
    })
    .boxed()
}
