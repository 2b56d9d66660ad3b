//! The dynamic AMQP 1.0 value and the small wrapper types it is made of.

use bytes::Bytes;
use std::fmt;

/// A UTF-8 string backed by shared bytes, so decoded strings are slices of the frame (no copy).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Str(Bytes);

impl Str {
    /// A string from a `'static` literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Str(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes after checking that they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        // ASCII (nearly every AMQP string and symbol) is checked a word at a time.
        if !is_ascii(&bytes) {
            std::str::from_utf8(&bytes)?;
        }
        Ok(Str(bytes))
    }

    /// The text. The bytes were validated when the value was made, so this never fails.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The UTF-8 bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// True when every byte is ASCII. The short strings of AMQP (keys, symbols, ids: mostly under
/// 32 bytes) are checked eight bytes per step with no alignment prologue, which for them costs
/// about half of what `<[u8]>::is_ascii` does.
#[inline]
pub(crate) fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        acc |= u64::from_ne_bytes(a);
    }
    let tail = words.remainder().iter().fold(0u8, |t, &x| t | x);
    acc & HIGH == 0 && tail & 0x80 == 0
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(Bytes::from(s.into_bytes()))
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AMQP symbol: a short name such as `amqp:accepted:list`, backed by shared bytes.
///
/// The spec restricts symbols to ASCII; we accept any UTF-8 so that a sloppy peer's symbol is
/// still readable rather than a hard failure.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(Str);

impl Symbol {
    /// A symbol from a `'static` literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Symbol(Str::from_static(s))
    }

    /// Wraps bytes after checking that they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        Str::from_utf8(bytes).map(Symbol)
    }

    /// The symbol's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The symbol's bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty symbol.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Str> for Symbol {
    fn from(s: Str) -> Self {
        Symbol(s)
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Self {
        Symbol(Str::from(s))
    }
}

impl From<String> for Symbol {
    fn from(s: String) -> Self {
        Symbol(Str::from(s))
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.0 == **other
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{}", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AMQP timestamp: milliseconds since the Unix epoch, UTC (may be negative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The timestamp for a `SystemTime` (saturating outside the representable range).
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(std::time::SystemTime::now())
    }
}

/// A UUID as its 16 bytes in RFC 4122 order.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The descriptor of a described type: a numeric code (`domain << 32 | id`) or a symbolic name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Descriptor {
    /// Numeric descriptor, e.g. `0x10` for `open`.
    Code(u64),
    /// Symbolic descriptor, e.g. `amqp:open:list`.
    Symbol(Symbol),
}

impl Descriptor {
    /// True when this descriptor names the given composite in either form.
    pub fn matches(&self, code: u64, name: &str) -> bool {
        match self {
            Descriptor::Code(c) => *c == code,
            Descriptor::Symbol(s) => s.as_str() == name,
        }
    }
}

/// A described value: a descriptor and the value it describes.
#[derive(Clone, Debug, PartialEq)]
pub struct Described {
    /// What the value is.
    pub descriptor: Descriptor,
    /// The value itself.
    pub value: Value,
}

/// The element type of an AMQP array: every element shares one constructor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ElementType {
    Null,
    Bool,
    Ubyte,
    Ushort,
    Uint,
    Ulong,
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
    Decimal32,
    Decimal64,
    Decimal128,
    Char,
    Timestamp,
    Uuid,
    Binary,
    String,
    Symbol,
    List,
    Map,
    Array,
}

impl ElementType {
    /// The element type a value would have inside an array, or `None` for a described value
    /// (its descriptor belongs to the array, not to the element).
    pub fn of(value: &Value) -> Option<ElementType> {
        Some(match value {
            Value::Null => ElementType::Null,
            Value::Bool(_) => ElementType::Bool,
            Value::Ubyte(_) => ElementType::Ubyte,
            Value::Ushort(_) => ElementType::Ushort,
            Value::Uint(_) => ElementType::Uint,
            Value::Ulong(_) => ElementType::Ulong,
            Value::Byte(_) => ElementType::Byte,
            Value::Short(_) => ElementType::Short,
            Value::Int(_) => ElementType::Int,
            Value::Long(_) => ElementType::Long,
            Value::Float(_) => ElementType::Float,
            Value::Double(_) => ElementType::Double,
            Value::Decimal32(_) => ElementType::Decimal32,
            Value::Decimal64(_) => ElementType::Decimal64,
            Value::Decimal128(_) => ElementType::Decimal128,
            Value::Char(_) => ElementType::Char,
            Value::Timestamp(_) => ElementType::Timestamp,
            Value::Uuid(_) => ElementType::Uuid,
            Value::Binary(_) => ElementType::Binary,
            Value::String(_) => ElementType::String,
            Value::Symbol(_) => ElementType::Symbol,
            Value::List(_) => ElementType::List,
            Value::Map(_) => ElementType::Map,
            Value::Array(_) => ElementType::Array,
            Value::Described(_) => return None,
        })
    }
}

/// Why an array could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("array element {index} is not of the array's element type {expected:?}")]
pub struct ArrayTypeError {
    /// Index of the first offending element.
    pub index: usize,
    /// The array's declared element type.
    pub expected: ElementType,
}

/// An AMQP array: elements of one type, optionally all described by one descriptor.
///
/// Elements are stored without their descriptor; the descriptor is the array's.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    descriptor: Option<Descriptor>,
    element: ElementType,
    items: Vec<Value>,
}

impl Array {
    /// An array whose elements all have type `element`; fails naming the first that does not.
    pub fn new(element: ElementType, items: Vec<Value>) -> Result<Self, ArrayTypeError> {
        Self::described(None, element, items)
    }

    /// An array of described elements sharing `descriptor` (or plain when `None`).
    pub fn described(
        descriptor: Option<Descriptor>,
        element: ElementType,
        items: Vec<Value>,
    ) -> Result<Self, ArrayTypeError> {
        if let Some(index) = items
            .iter()
            .position(|v| ElementType::of(v) != Some(element))
        {
            return Err(ArrayTypeError {
                index,
                expected: element,
            });
        }
        Ok(Array {
            descriptor,
            element,
            items,
        })
    }

    /// An array of symbols (the usual form of capability fields).
    pub fn symbols(items: impl IntoIterator<Item = Symbol>) -> Self {
        Array {
            descriptor: None,
            element: ElementType::Symbol,
            items: items.into_iter().map(Value::Symbol).collect(),
        }
    }

    /// The shared descriptor of the elements, if they are described.
    pub fn descriptor(&self) -> Option<&Descriptor> {
        self.descriptor.as_ref()
    }

    /// The elements' type.
    pub fn element_type(&self) -> ElementType {
        self.element
    }

    /// The elements (without their shared descriptor).
    pub fn items(&self) -> &[Value] {
        &self.items
    }

    /// Takes the elements out.
    pub fn into_items(self) -> Vec<Value> {
        self.items
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Any AMQP 1.0 value.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Value {
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    /// IEEE 754 decimal32, kept as its raw big-endian bits.
    Decimal32([u8; 4]),
    /// IEEE 754 decimal64, kept as its raw big-endian bits.
    Decimal64([u8; 8]),
    /// IEEE 754 decimal128, kept as its raw big-endian bits.
    Decimal128([u8; 16]),
    Char(char),
    Timestamp(Timestamp),
    Uuid(Uuid),
    Binary(Bytes),
    String(Str),
    Symbol(Symbol),
    List(Vec<Value>),
    /// A map as its ordered key/value pairs (AMQP maps are ordered on the wire).
    Map(Vec<(Value, Value)>),
    Array(Array),
    Described(Box<Described>),
}

impl PartialEq for Value {
    /// Structural equality; floats compare by bit pattern so that NaN round-trips compare equal.
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Ubyte(a), Ubyte(b)) => a == b,
            (Ushort(a), Ushort(b)) => a == b,
            (Uint(a), Uint(b)) => a == b,
            (Ulong(a), Ulong(b)) => a == b,
            (Byte(a), Byte(b)) => a == b,
            (Short(a), Short(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Long(a), Long(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Decimal32(a), Decimal32(b)) => a == b,
            (Decimal64(a), Decimal64(b)) => a == b,
            (Decimal128(a), Decimal128(b)) => a == b,
            (Char(a), Char(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Uuid(a), Uuid(b)) => a == b,
            (Binary(a), Binary(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Symbol(a), Symbol(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Described(a), Described(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// A described value.
    pub fn described(descriptor: Descriptor, value: Value) -> Value {
        Value::Described(Box::new(Described { descriptor, value }))
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a string or symbol value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s.as_str()),
            Value::Symbol(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// Any integer value widened to `i64`, when it fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Ubyte(v) => Some(v.into()),
            Value::Ushort(v) => Some(v.into()),
            Value::Uint(v) => Some(v.into()),
            Value::Ulong(v) => i64::try_from(v).ok(),
            Value::Byte(v) => Some(v.into()),
            Value::Short(v) => Some(v.into()),
            Value::Int(v) => Some(v.into()),
            Value::Long(v) => Some(v),
            _ => None,
        }
    }

    /// Looks a key up in a map value by string or symbol text.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v.into())
            }
        })*
    };
}

value_from! {
    bool => Bool, u8 => Ubyte, u16 => Ushort, u32 => Uint, u64 => Ulong,
    i8 => Byte, i16 => Short, i32 => Int, i64 => Long, f32 => Float, f64 => Double,
    char => Char, Timestamp => Timestamp, Uuid => Uuid, Bytes => Binary, Str => String,
    Symbol => Symbol, Array => Array, &str => String, String => String,
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod ascii_tests {
    use super::*;

    #[test]
    fn is_ascii_finds_a_high_byte_anywhere() {
        for len in 0..40 {
            let plain = vec![b'a'; len];
            assert!(is_ascii(&plain));
            for at in 0..len {
                let mut b = plain.clone();
                b[at] = 0x80;
                assert!(!is_ascii(&b), "len {len} at {at}");
                b[at] = 0xff;
                assert!(!is_ascii(&b), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn from_utf8_still_checks_non_ascii() {
        assert!(Str::from_utf8(Bytes::from_static("grüße".as_bytes())).is_ok());
        assert!(Str::from_utf8(Bytes::from_static(&[b'a', 0xc3])).is_err());
    }
}
