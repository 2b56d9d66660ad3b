//! Helpers shared by the codec tests: hex, typed JSON ⇄ `Value`, NaN-tolerant comparison,
//! an arbitrary-`Value` proptest strategy, and a client for the Proton oracle.
//!
//! Typed JSON is the format of `../shared/peers/proton-oracle.py`: an object with one key
//! naming the AMQP type, e.g. `{"uint":1}`, `{"list":[...]}`, `{"map":[[K,V],...]}`,
//! `{"array":{"type":"int","descriptor":D,"items":[...]}}`, `{"described":[D,V]}`.
#![allow(dead_code)]

pub mod oracle;
pub mod strategy;

use bytes::Bytes;
use eventhubs::amqp::codec::{Array, Descriptor, ElementType, Str, Symbol, Timestamp, Uuid, Value};
use serde_json::{json, Value as Json};

/// Parses hex, ignoring whitespace.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).expect("ascii");
            u8::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s:?}"))
        })
        .collect()
}

/// Lower-case hex without separators.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The typed-JSON name of an array element type.
pub fn element_name(e: ElementType) -> &'static str {
    match e {
        ElementType::Null => "null",
        ElementType::Bool => "boolean",
        ElementType::Ubyte => "ubyte",
        ElementType::Ushort => "ushort",
        ElementType::Uint => "uint",
        ElementType::Ulong => "ulong",
        ElementType::Byte => "byte",
        ElementType::Short => "short",
        ElementType::Int => "int",
        ElementType::Long => "long",
        ElementType::Float => "float",
        ElementType::Double => "double",
        ElementType::Decimal32 => "decimal32",
        ElementType::Decimal64 => "decimal64",
        ElementType::Decimal128 => "decimal128",
        ElementType::Char => "char",
        ElementType::Timestamp => "timestamp",
        ElementType::Uuid => "uuid",
        ElementType::Binary => "binary",
        ElementType::String => "string",
        ElementType::Symbol => "symbol",
        ElementType::List => "list",
        ElementType::Map => "map",
        ElementType::Array => "array",
    }
}

/// Every array element type, in declaration order.
pub const ALL_ELEMENT_TYPES: [ElementType; 24] = [
    ElementType::Null,
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
    ElementType::List,
    ElementType::Map,
    ElementType::Array,
];

fn element_by_name(name: &str) -> Result<ElementType, String> {
    ALL_ELEMENT_TYPES
        .iter()
        .copied()
        .find(|e| element_name(*e) == name)
        .ok_or_else(|| format!("unknown array element type {name:?}"))
}

fn int<T: TryFrom<i128>>(p: &Json, what: &str) -> Result<T, String> {
    let n: i128 = if let Some(u) = p.as_u64() {
        u.into()
    } else if let Some(i) = p.as_i64() {
        i.into()
    } else {
        return Err(format!("{what}: not an integer: {p}"));
    };
    T::try_from(n).map_err(|_| format!("{what}: {n} out of range"))
}

fn float(p: &Json, what: &str) -> Result<f64, String> {
    match p {
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| format!("{what}: bad number {other:?}")),
        },
        _ => p
            .as_f64()
            .ok_or_else(|| format!("{what}: not a number: {p}")),
    }
}

fn text<'a>(p: &'a Json, what: &str) -> Result<&'a str, String> {
    p.as_str()
        .ok_or_else(|| format!("{what}: not a string: {p}"))
}

fn fixed_hex<const N: usize>(p: &Json, what: &str) -> Result<[u8; N], String> {
    let b = unhex(text(p, what)?);
    b.try_into().map_err(|_| format!("{what}: need {N} bytes"))
}

fn parse_uuid(s: &str) -> Result<Uuid, String> {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 {
        return Err(format!("bad uuid {s:?}"));
    }
    Ok(Uuid(unhex(&digits).try_into().map_err(|_| "uuid")?))
}

/// Builds a descriptor from typed JSON (`{"ulong":N}` or `{"symbol":S}`).
pub fn descriptor_from_json(j: &Json) -> Result<Descriptor, String> {
    match json_to_value(j)? {
        Value::Ulong(c) => Ok(Descriptor::Code(c)),
        Value::Symbol(s) => Ok(Descriptor::Symbol(s)),
        other => Err(format!("descriptor must be ulong or symbol, got {other:?}")),
    }
}

/// Converts typed JSON (full form, or the oracle's input shorthand) into a `Value`.
pub fn json_to_value(j: &Json) -> Result<Value, String> {
    let (t, p) = match j {
        Json::Null => return Ok(Value::Null),
        Json::Bool(b) => return Ok(Value::Bool(*b)),
        Json::Number(n) if n.is_f64() => return Ok(Value::Double(float(j, "double")?)),
        Json::Number(_) => return Ok(Value::Long(int(j, "long")?)),
        Json::String(s) => return Ok(Value::String(Str::from(s.as_str()))),
        Json::Array(items) => {
            return Ok(Value::List(
                items.iter().map(json_to_value).collect::<Result<_, _>>()?,
            ))
        }
        Json::Object(o) if o.len() == 1 => o.iter().next().expect("one entry"),
        Json::Object(_) => return Err(format!("not a typed value: {j}")),
    };
    Ok(match t.as_str() {
        "null" => Value::Null,
        "boolean" => Value::Bool(p.as_bool().ok_or("boolean payload")?),
        "ubyte" => Value::Ubyte(int(p, t)?),
        "ushort" => Value::Ushort(int(p, t)?),
        "uint" => Value::Uint(int(p, t)?),
        "ulong" => Value::Ulong(int(p, t)?),
        "byte" => Value::Byte(int(p, t)?),
        "short" => Value::Short(int(p, t)?),
        "int" => Value::Int(int(p, t)?),
        "long" => Value::Long(int(p, t)?),
        "float" => Value::Float(float(p, t)? as f32),
        "double" => Value::Double(float(p, t)?),
        "decimal32" => Value::Decimal32(int::<u32>(p, t)?.to_be_bytes()),
        "decimal64" => Value::Decimal64(int::<u64>(p, t)?.to_be_bytes()),
        "decimal128" => Value::Decimal128(fixed_hex(p, t)?),
        "char" => {
            let s = text(p, t)?;
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Value::Char(c),
                _ => return Err(format!("char must be one code point: {s:?}")),
            }
        }
        "timestamp" => Value::Timestamp(Timestamp(int(p, t)?)),
        "uuid" => Value::Uuid(parse_uuid(text(p, t)?)?),
        "binary" => Value::Binary(Bytes::from(unhex(text(p, t)?))),
        "string" => Value::String(Str::from(text(p, t)?)),
        "symbol" => Value::Symbol(Symbol::from(text(p, t)?)),
        "list" => Value::List(
            p.as_array()
                .ok_or("list payload")?
                .iter()
                .map(json_to_value)
                .collect::<Result<_, _>>()?,
        ),
        "map" => {
            let mut pairs = Vec::new();
            for kv in p.as_array().ok_or("map payload")? {
                match kv.as_array().map(Vec::as_slice) {
                    Some([k, v]) => pairs.push((json_to_value(k)?, json_to_value(v)?)),
                    _ => return Err(format!("map entry must be [k, v]: {kv}")),
                }
            }
            Value::Map(pairs)
        }
        "described" => match p.as_array().map(Vec::as_slice) {
            Some([d, v]) => Value::described(descriptor_from_json(d)?, json_to_value(v)?),
            _ => return Err(format!("described must be [descriptor, value]: {p}")),
        },
        "array" => {
            let element = element_by_name(text(&p["type"], "array type")?)?;
            let descriptor = match p.get("descriptor") {
                Some(d) => Some(descriptor_from_json(d)?),
                None => None,
            };
            let items = p["items"]
                .as_array()
                .ok_or("array items")?
                .iter()
                .map(json_to_value)
                .collect::<Result<Vec<_>, _>>()?;
            Value::Array(Array::described(descriptor, element, items).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unknown type {other:?}")),
    })
}

fn descriptor_json(d: &Descriptor) -> Json {
    match d {
        Descriptor::Code(c) => json!({ "ulong": c }),
        Descriptor::Symbol(s) => json!({ "symbol": s.as_str() }),
    }
}

fn float_json(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

/// Converts a `Value` into full typed JSON (the oracle's input and output format).
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => json!({ "null": null }),
        Value::Bool(b) => json!({ "boolean": b }),
        Value::Ubyte(n) => json!({ "ubyte": n }),
        Value::Ushort(n) => json!({ "ushort": n }),
        Value::Uint(n) => json!({ "uint": n }),
        Value::Ulong(n) => json!({ "ulong": n }),
        Value::Byte(n) => json!({ "byte": n }),
        Value::Short(n) => json!({ "short": n }),
        Value::Int(n) => json!({ "int": n }),
        Value::Long(n) => json!({ "long": n }),
        Value::Float(x) => json!({ "float": float_json(f64::from(*x)) }),
        Value::Double(x) => json!({ "double": float_json(*x) }),
        Value::Decimal32(b) => json!({ "decimal32": u32::from_be_bytes(*b) }),
        Value::Decimal64(b) => json!({ "decimal64": u64::from_be_bytes(*b) }),
        Value::Decimal128(b) => json!({ "decimal128": hex(b) }),
        Value::Char(c) => json!({ "char": c.to_string() }),
        Value::Timestamp(t) => json!({ "timestamp": t.0 }),
        Value::Uuid(u) => json!({ "uuid": u.to_string() }),
        Value::Binary(b) => json!({ "binary": hex(b) }),
        Value::String(s) => json!({ "string": s.as_str() }),
        Value::Symbol(s) => json!({ "symbol": s.as_str() }),
        Value::List(items) => {
            json!({ "list": items.iter().map(value_to_json).collect::<Vec<_>>() })
        }
        Value::Map(pairs) => json!({
            "map": pairs.iter().map(|(k, v)| json!([value_to_json(k), value_to_json(v)])).collect::<Vec<_>>()
        }),
        Value::Array(a) => {
            let mut o = serde_json::Map::new();
            if let Some(d) = a.descriptor() {
                o.insert("descriptor".into(), descriptor_json(d));
            }
            o.insert("type".into(), json!(element_name(a.element_type())));
            o.insert(
                "items".into(),
                Json::Array(a.items().iter().map(value_to_json).collect()),
            );
            json!({ "array": o })
        }
        Value::Described(d) => {
            json!({ "described": [descriptor_json(&d.descriptor), value_to_json(&d.value)] })
        }
    }
}

/// Equality that treats any two NaNs of the same width as equal (Proton's typed JSON does not
/// carry NaN payloads); everything else is compared exactly, floats by bit pattern.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::Double(x), Value::Double(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.descriptor() == y.descriptor()
                && x.element_type() == y.element_type()
                && x.len() == y.len()
                && x.items().iter().zip(y.items()).all(|(p, q)| same(p, q))
        }
        (Value::Described(x), Value::Described(y)) => {
            x.descriptor == y.descriptor && same(&x.value, &y.value)
        }
        _ => a == b,
    }
}

/// True when the value contains a list, map, array or described value.
pub fn is_compound(v: &Value) -> bool {
    matches!(
        v,
        Value::List(_) | Value::Map(_) | Value::Array(_) | Value::Described(_)
    )
}

/// Number of values in the tree (array elements included).
pub fn node_count(v: &Value) -> usize {
    1 + match v {
        Value::List(items) => items.iter().map(node_count).sum(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
        Value::Array(a) => a.items().iter().map(node_count).sum(),
        Value::Described(d) => node_count(&d.value),
        _ => 0,
    }
}

/// Calls `f` on every binary, string and symbol payload in the tree (descriptors included).
pub fn for_each_payload(v: &Value, f: &mut dyn FnMut(&Bytes)) {
    match v {
        Value::Binary(b) => f(b),
        Value::String(s) => f(s.as_bytes()),
        Value::Symbol(s) => f(s.as_bytes()),
        Value::List(items) => items.iter().for_each(|x| for_each_payload(x, f)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, x)| {
            for_each_payload(k, f);
            for_each_payload(x, f);
        }),
        Value::Array(a) => {
            if let Some(Descriptor::Symbol(s)) = a.descriptor() {
                f(s.as_bytes());
            }
            a.items().iter().for_each(|x| for_each_payload(x, f))
        }
        Value::Described(d) => {
            if let Descriptor::Symbol(s) = &d.descriptor {
                f(s.as_bytes());
            }
            for_each_payload(&d.value, f)
        }
        _ => {}
    }
}

/// The Event Hubs-shaped composites the brief names, built in Rust (the same shapes as the
/// `transfer`, `attach` and message vectors in `testdata/proton/vectors.json`).
pub mod shapes {
    use super::*;

    fn sym(s: &str) -> Value {
        Value::Symbol(Symbol::from(s))
    }

    fn described(code: u64, v: Value) -> Value {
        Value::described(Descriptor::Code(code), v)
    }

    /// A first-frame `transfer` performative.
    pub fn transfer() -> Value {
        described(
            0x14,
            Value::List(vec![
                Value::Uint(0),
                Value::Uint(7),
                Value::Binary(Bytes::from_static(&[0, 0, 0, 7])),
                Value::Uint(0),
                Value::Bool(false),
                Value::Bool(false),
                Value::Null,
                Value::Null,
                Value::Bool(false),
                Value::Bool(false),
                Value::Bool(true),
            ]),
        )
    }

    /// A receiver `attach` whose source carries the Event Hubs offset selector filter.
    pub fn attach() -> Value {
        let filter = Value::Map(vec![(
            sym("apache.org:selector-filter:string"),
            described(
                0x0000_468C_0000_0004,
                Value::from("amqp.annotation.x-opt-offset > '-1'"),
            ),
        )]);
        let source = described(
            0x28,
            Value::List(vec![
                Value::from("myhub/ConsumerGroups/$default/Partitions/0"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                filter,
            ]),
        );
        let target = described(0x29, Value::List(vec![Value::from("receiver-link-1")]));
        described(
            0x12,
            Value::List(vec![
                Value::from("receiver-link-1"),
                Value::Uint(1),
                Value::Bool(true),
                Value::Null,
                Value::Ubyte(0),
                source,
                target,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Ulong(1_048_576),
                Value::Null,
                Value::Array(Array::symbols([Symbol::from(
                    "com.microsoft:enable-receiver-runtime-metric",
                )])),
                Value::Map(vec![(sym("com.microsoft:epoch"), Value::Long(0))]),
            ]),
        )
    }

    /// The sections of an event as Event Hubs delivers it: message annotations, application
    /// properties and one 100-byte data section.
    pub fn event_message() -> Vec<Value> {
        let body: Vec<u8> = (0..100u8).collect();
        vec![
            described(
                0x72,
                Value::Map(vec![
                    (sym("x-opt-sequence-number"), Value::Long(4_294_967_296)),
                    (sym("x-opt-offset"), Value::from("8589934592")),
                    (
                        sym("x-opt-enqueued-time"),
                        Value::Timestamp(Timestamp(1_700_000_000_123)),
                    ),
                    (sym("x-opt-partition-key"), Value::from("device-42")),
                ]),
            ),
            described(
                0x74,
                Value::Map(vec![
                    (Value::from("temperature"), Value::Double(21.5)),
                    (Value::from("unit"), Value::from("celsius")),
                    (Value::from("count"), Value::Int(3)),
                ]),
            ),
            described(0x75, Value::Binary(Bytes::from(body))),
        ]
    }
}
