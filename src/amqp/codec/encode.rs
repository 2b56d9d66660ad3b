//! Encoding: smallest primitive forms, exact sizes known before writing.

use super::format_code as fc;
use super::slice_writer::SliceWriter;
use super::value::{Array, Descriptor, ElementType, Str, Symbol, Timestamp, Uuid, Value};
use bytes::{BufMut, Bytes};

/// A value that can be written in AMQP encoding.
///
/// `encoded_len` is exact: `encode` writes precisely that many bytes. Callers rely on it to
/// size buffers and batches without encoding twice.
pub trait Encode {
    /// The number of bytes `encode` will write.
    fn encoded_len(&self) -> usize;
    /// Writes the encoding to `buf`.
    fn encode<B: BufMut>(&self, buf: &mut B);
    /// Writes the same encoding into a slice writer. The types a message's head is made of
    /// (scalars, strings, symbols, maps, map sections) write themselves in one pass; the
    /// default sizes the value and encodes it into the room.
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        w.put_encoded(self);
    }
}

/// Chooses a constructor for a value and says how many bytes follow it.
fn layout(v: &Value) -> (u8, usize) {
    match v {
        Value::Null => (fc::NULL, 0),
        Value::Bool(true) => (fc::BOOL_TRUE, 0),
        Value::Bool(false) => (fc::BOOL_FALSE, 0),
        Value::Ubyte(_) => (fc::UBYTE, 1),
        Value::Ushort(_) => (fc::USHORT, 2),
        Value::Uint(0) => (fc::UINT0, 0),
        Value::Uint(n) if *n <= 0xff => (fc::SMALLUINT, 1),
        Value::Uint(_) => (fc::UINT, 4),
        Value::Ulong(0) => (fc::ULONG0, 0),
        Value::Ulong(n) if *n <= 0xff => (fc::SMALLULONG, 1),
        Value::Ulong(_) => (fc::ULONG, 8),
        Value::Byte(_) => (fc::BYTE, 1),
        Value::Short(_) => (fc::SHORT, 2),
        Value::Int(n) if i8::try_from(*n).is_ok() => (fc::SMALLINT, 1),
        Value::Int(_) => (fc::INT, 4),
        Value::Long(n) if i8::try_from(*n).is_ok() => (fc::SMALLLONG, 1),
        Value::Long(_) => (fc::LONG, 8),
        Value::Float(_) => (fc::FLOAT, 4),
        Value::Double(_) => (fc::DOUBLE, 8),
        Value::Decimal32(_) => (fc::DECIMAL32, 4),
        Value::Decimal64(_) => (fc::DECIMAL64, 8),
        Value::Decimal128(_) => (fc::DECIMAL128, 16),
        Value::Char(_) => (fc::CHAR, 4),
        Value::Timestamp(_) => (fc::TIMESTAMP, 8),
        Value::Uuid(_) => (fc::UUID, 16),
        Value::Binary(b) => variable(fc::VBIN8, fc::VBIN32, b.len()),
        Value::String(s) => variable(fc::STR8, fc::STR32, s.len()),
        Value::Symbol(s) => variable(fc::SYM8, fc::SYM32, s.len()),
        Value::List(items) if items.is_empty() => (fc::LIST0, 0),
        Value::List(items) => compound(
            fc::LIST8,
            fc::LIST32,
            items.len(),
            items.iter().map(Encode::encoded_len).sum(),
        ),
        Value::Map(pairs) => compound(
            fc::MAP8,
            fc::MAP32,
            pairs.len() * 2,
            pairs
                .iter()
                .map(|(k, v)| k.encoded_len() + v.encoded_len())
                .sum(),
        ),
        Value::Array(a) => {
            let (ctor_len, _, elems) = array_layout(a);
            compound(fc::ARRAY8, fc::ARRAY32, a.len(), ctor_len + elems)
        }
        Value::Described(d) => (
            fc::DESCRIBED,
            d.descriptor.encoded_len() + d.value.encoded_len(),
        ),
    }
}

#[inline]
fn variable(small: u8, large: u8, len: usize) -> (u8, usize) {
    if len <= 0xff {
        (small, 1 + len)
    } else {
        (large, 4 + len)
    }
}

/// The 8-bit form when both the size (count byte + content) and count fit a byte.
#[inline]
fn compound(small: u8, large: u8, count: usize, content: usize) -> (u8, usize) {
    if count <= 0xff && content < 0xff {
        (small, 2 + content)
    } else {
        (large, 8 + content)
    }
}

/// For an array: constructor length, element code, and total bytes of the bare elements.
fn array_layout(a: &Array) -> (usize, u8, usize) {
    let items = a.items();
    let all = |f: &dyn Fn(&Value) -> bool| items.iter().all(f);
    let code = match a.element_type() {
        ElementType::Null => fc::NULL,
        ElementType::Bool => fc::BOOL,
        ElementType::Ubyte => fc::UBYTE,
        ElementType::Ushort => fc::USHORT,
        // Integer elements always use their full width: compact element constructors are
        // legal, but some brokers (RabbitMQ 3.x) drop the connection on them, and Proton never
        // writes them. The decoder still accepts every form.
        ElementType::Uint => fc::UINT,
        ElementType::Ulong => fc::ULONG,
        ElementType::Byte => fc::BYTE,
        ElementType::Short => fc::SHORT,
        ElementType::Int => fc::INT,
        ElementType::Long => fc::LONG,
        ElementType::Float => fc::FLOAT,
        ElementType::Double => fc::DOUBLE,
        ElementType::Decimal32 => fc::DECIMAL32,
        ElementType::Decimal64 => fc::DECIMAL64,
        ElementType::Decimal128 => fc::DECIMAL128,
        ElementType::Char => fc::CHAR,
        ElementType::Timestamp => fc::TIMESTAMP,
        ElementType::Uuid => fc::UUID,
        ElementType::Binary | ElementType::String | ElementType::Symbol => {
            let small = all(&|v| layout(v).1 <= 0x100);
            match a.element_type() {
                ElementType::Binary => pick(small, fc::VBIN8, fc::VBIN32),
                ElementType::String => pick(small, fc::STR8, fc::STR32),
                _ => pick(small, fc::SYM8, fc::SYM32),
            }
        }
        ElementType::List => pick(all(&|v| layout(v).0 != fc::LIST32), fc::LIST8, fc::LIST32),
        ElementType::Map => pick(all(&|v| layout(v).0 != fc::MAP32), fc::MAP8, fc::MAP32),
        ElementType::Array => pick(
            all(&|v| layout(v).0 != fc::ARRAY32),
            fc::ARRAY8,
            fc::ARRAY32,
        ),
    };
    let ctor_len = 1 + a.descriptor().map_or(0, |d| 1 + d.encoded_len());
    let elems = items.iter().map(|v| bare_len(v, code)).sum();
    (ctor_len, code, elems)
}

fn pick(small_fits: bool, small: u8, large: u8) -> u8 {
    if small_fits {
        small
    } else {
        large
    }
}

/// Bytes after the constructor when `v` is written with constructor `code` (an array element).
fn bare_len(v: &Value, code: u8) -> usize {
    if let Some(w) = fc::fixed_width(code) {
        return w;
    }
    let content = match v {
        Value::Binary(b) => b.len(),
        Value::String(s) => s.len(),
        Value::Symbol(s) => s.len(),
        Value::List(items) => items.iter().map(Encode::encoded_len).sum(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| k.encoded_len() + v.encoded_len())
            .sum(),
        Value::Array(a) => {
            let (ctor, _, elems) = array_layout(a);
            ctor + elems
        }
        _ => 0,
    };
    match code {
        fc::VBIN8 | fc::STR8 | fc::SYM8 => 1 + content,
        fc::VBIN32 | fc::STR32 | fc::SYM32 => 4 + content,
        fc::LIST8 | fc::MAP8 | fc::ARRAY8 => 2 + content,
        _ => 8 + content,
    }
}

/// Writes `v`'s data for constructor `code`; `len` is `bare_len(v, code)`.
fn write_bare<B: BufMut>(v: &Value, code: u8, len: usize, buf: &mut B) {
    match v {
        Value::Null => {}
        Value::Bool(b) => {
            if code == fc::BOOL {
                buf.put_u8(u8::from(*b));
            }
        }
        Value::Ubyte(n) => buf.put_u8(*n),
        Value::Ushort(n) => buf.put_u16(*n),
        Value::Uint(n) => match code {
            fc::SMALLUINT => buf.put_u8(*n as u8),
            fc::UINT => buf.put_u32(*n),
            _ => {}
        },
        Value::Ulong(n) => match code {
            fc::SMALLULONG => buf.put_u8(*n as u8),
            fc::ULONG => buf.put_u64(*n),
            _ => {}
        },
        Value::Byte(n) => buf.put_i8(*n),
        Value::Short(n) => buf.put_i16(*n),
        Value::Int(n) => match code {
            fc::SMALLINT => buf.put_i8(*n as i8),
            _ => buf.put_i32(*n),
        },
        Value::Long(n) => match code {
            fc::SMALLLONG => buf.put_i8(*n as i8),
            _ => buf.put_i64(*n),
        },
        Value::Float(f) => buf.put_u32(f.to_bits()),
        Value::Double(f) => buf.put_u64(f.to_bits()),
        Value::Decimal32(b) => buf.put_slice(b),
        Value::Decimal64(b) => buf.put_slice(b),
        Value::Decimal128(b) => buf.put_slice(b),
        Value::Char(c) => buf.put_u32(u32::from(*c)),
        Value::Timestamp(t) => buf.put_i64(t.0),
        Value::Uuid(u) => buf.put_slice(&u.0),
        Value::Binary(b) => write_variable(b, code, buf),
        Value::String(s) => write_variable(s.as_bytes(), code, buf),
        Value::Symbol(s) => write_variable(s.as_bytes(), code, buf),
        Value::List(items) => {
            write_compound_header(code, len, items.len(), buf);
            for item in items {
                item.encode(buf);
            }
        }
        Value::Map(pairs) => {
            write_compound_header(code, len, pairs.len() * 2, buf);
            for (k, v) in pairs {
                k.encode(buf);
                v.encode(buf);
            }
        }
        Value::Array(a) => {
            let (_, elem_code, _) = array_layout(a);
            write_compound_header(code, len, a.len(), buf);
            if let Some(d) = a.descriptor() {
                buf.put_u8(fc::DESCRIBED);
                d.encode(buf);
            }
            buf.put_u8(elem_code);
            for item in a.items() {
                write_bare(item, elem_code, bare_len(item, elem_code), buf);
            }
        }
        Value::Described(d) => {
            d.descriptor.encode(buf);
            d.value.encode(buf);
        }
    }
}

/// A binary, string or symbol with its constructor: the constructor and an 8-bit length go out
/// as one write, as they do for nearly every AMQP string.
#[inline]
fn put_variable<B: BufMut>(buf: &mut B, small: u8, large: u8, bytes: &[u8]) {
    match u8::try_from(bytes.len()) {
        Ok(n) => buf.put_slice(&[small, n]),
        Err(_) => {
            buf.put_u8(large);
            buf.put_u32(bytes.len() as u32);
        }
    }
    buf.put_slice(bytes);
}

fn write_variable<B: BufMut>(bytes: &[u8], code: u8, buf: &mut B) {
    match code {
        fc::VBIN8 | fc::STR8 | fc::SYM8 => buf.put_u8(bytes.len() as u8),
        _ => buf.put_u32(bytes.len() as u32),
    }
    buf.put_slice(bytes);
}

/// A constructor and its fixed-width big-endian data (at most 15 bytes), as one write.
#[inline]
fn put_tagged<B: BufMut, const N: usize>(buf: &mut B, code: u8, data: [u8; N]) {
    let mut out = [0u8; 16];
    out[0] = code;
    out[1..=N].copy_from_slice(&data);
    buf.put_slice(&out[..=N]);
}

/// Size and count fields of a list, map or array; `len` is everything after the constructor.
fn write_compound_header<B: BufMut>(code: u8, len: usize, count: usize, buf: &mut B) {
    match code {
        fc::LIST0 => {}
        fc::LIST8 | fc::MAP8 | fc::ARRAY8 => {
            buf.put_u8((len - 1) as u8);
            buf.put_u8(count as u8);
        }
        _ => {
            buf.put_u32((len - 4) as u32);
            buf.put_u32(count as u32);
        }
    }
}

impl Encode for Value {
    #[inline]
    fn encoded_len(&self) -> usize {
        // The common scalars size themselves (same forms as `layout`), skipping the general
        // constructor choice.
        match self {
            Value::Uint(n) => n.encoded_len(),
            Value::Ulong(n) => n.encoded_len(),
            Value::Int(n) => n.encoded_len(),
            Value::Long(n) => n.encoded_len(),
            Value::Timestamp(t) => t.encoded_len(),
            Value::Binary(b) => b.encoded_len(),
            Value::String(s) => s.encoded_len(),
            Value::Symbol(s) => s.encoded_len(),
            _ => 1 + layout(self).1,
        }
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Value::Uint(n) => n.encode(buf),
            Value::Ulong(n) => n.encode(buf),
            Value::Int(n) => n.encode(buf),
            Value::Long(n) => n.encode(buf),
            Value::Timestamp(t) => t.encode(buf),
            Value::Binary(b) => b.encode(buf),
            Value::String(s) => s.encode(buf),
            Value::Symbol(s) => s.encode(buf),
            _ => {
                let (code, len) = layout(self);
                buf.put_u8(code);
                write_bare(self, code, len, buf);
            }
        }
    }

    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match self {
            Value::Null => w.put_u8(fc::NULL),
            Value::Bool(b) => b.write_to(w),
            Value::Uint(n) => n.write_to(w),
            Value::Ulong(n) => n.write_to(w),
            Value::Int(n) => n.write_to(w),
            Value::Long(n) => n.write_to(w),
            Value::Double(f) => put_tagged_in(w, fc::DOUBLE, f.to_bits().to_be_bytes()),
            Value::Timestamp(t) => t.write_to(w),
            Value::Binary(b) => b.write_to(w),
            Value::String(s) => s.write_to(w),
            Value::Symbol(s) => s.write_to(w),
            _ => w.put_encoded(self),
        }
    }
}

/// A constructor and its fixed-width big-endian data, into a slice writer.
#[inline]
fn put_tagged_in<const N: usize>(w: &mut SliceWriter<'_>, code: u8, data: [u8; N]) {
    w.put_u8(code);
    w.put_array(data);
}

impl Encode for Descriptor {
    #[inline]
    fn encoded_len(&self) -> usize {
        match self {
            Descriptor::Code(c) => ulong_len(*c),
            Descriptor::Symbol(s) => variable(fc::SYM8, fc::SYM32, s.len()).1 + 1,
        }
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Descriptor::Code(c) => c.encode(buf),
            Descriptor::Symbol(s) => s.encode(buf),
        }
    }
}

#[inline]
fn ulong_len(n: u64) -> usize {
    match n {
        0 => 1,
        1..=0xff => 2,
        _ => 9,
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        (**self).encode(buf)
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        (**self).write_to(w)
    }
}

impl<T: Encode> Encode for Option<T> {
    #[inline]
    fn encoded_len(&self) -> usize {
        self.as_ref().map_or(1, Encode::encoded_len)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Some(v) => v.encode(buf),
            None => buf.put_u8(fc::NULL),
        }
    }
}

impl<T: Encode> Encode for Box<T> {
    #[inline]
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        (**self).encode(buf)
    }
}

impl Encode for bool {
    #[inline]
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(if *self { fc::BOOL_TRUE } else { fc::BOOL_FALSE });
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        w.put_u8(if *self { fc::BOOL_TRUE } else { fc::BOOL_FALSE });
    }
}

impl Encode for u8 {
    #[inline]
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(fc::UBYTE);
        buf.put_u8(*self);
    }
}

impl Encode for u16 {
    #[inline]
    fn encoded_len(&self) -> usize {
        3
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(fc::USHORT);
        buf.put_u16(*self);
    }
}

impl Encode for u32 {
    #[inline]
    fn encoded_len(&self) -> usize {
        match *self {
            0 => 1,
            1..=0xff => 2,
            _ => 5,
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match *self {
            0 => buf.put_u8(fc::UINT0),
            n @ 1..=0xff => {
                buf.put_u8(fc::SMALLUINT);
                buf.put_u8(n as u8);
            }
            n => {
                buf.put_u8(fc::UINT);
                buf.put_u32(n);
            }
        }
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match *self {
            0 => w.put_u8(fc::UINT0),
            n @ 1..=0xff => w.put_array([fc::SMALLUINT, n as u8]),
            n => put_tagged_in(w, fc::UINT, n.to_be_bytes()),
        }
    }
}

impl Encode for u64 {
    #[inline]
    fn encoded_len(&self) -> usize {
        ulong_len(*self)
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match *self {
            0 => buf.put_u8(fc::ULONG0),
            n @ 1..=0xff => buf.put_slice(&[fc::SMALLULONG, n as u8]),
            n => put_tagged(buf, fc::ULONG, n.to_be_bytes()),
        }
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match *self {
            0 => w.put_u8(fc::ULONG0),
            n @ 1..=0xff => w.put_array([fc::SMALLULONG, n as u8]),
            n => put_tagged_in(w, fc::ULONG, n.to_be_bytes()),
        }
    }
}

impl Encode for i8 {
    #[inline]
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(fc::BYTE);
        buf.put_i8(*self);
    }
}

impl Encode for i16 {
    #[inline]
    fn encoded_len(&self) -> usize {
        3
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(fc::SHORT);
        buf.put_i16(*self);
    }
}

impl Encode for i32 {
    #[inline]
    fn encoded_len(&self) -> usize {
        if i8::try_from(*self).is_ok() {
            2
        } else {
            5
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match i8::try_from(*self) {
            Ok(n) => buf.put_slice(&[fc::SMALLINT, n as u8]),
            Err(_) => put_tagged(buf, fc::INT, self.to_be_bytes()),
        }
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match i8::try_from(*self) {
            Ok(n) => w.put_array([fc::SMALLINT, n as u8]),
            Err(_) => put_tagged_in(w, fc::INT, self.to_be_bytes()),
        }
    }
}

impl Encode for i64 {
    #[inline]
    fn encoded_len(&self) -> usize {
        if i8::try_from(*self).is_ok() {
            2
        } else {
            9
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match i8::try_from(*self) {
            Ok(n) => buf.put_slice(&[fc::SMALLLONG, n as u8]),
            Err(_) => put_tagged(buf, fc::LONG, self.to_be_bytes()),
        }
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match i8::try_from(*self) {
            Ok(n) => w.put_array([fc::SMALLLONG, n as u8]),
            Err(_) => put_tagged_in(w, fc::LONG, self.to_be_bytes()),
        }
    }
}

impl Encode for Timestamp {
    #[inline]
    fn encoded_len(&self) -> usize {
        9
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_tagged(buf, fc::TIMESTAMP, self.0.to_be_bytes());
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        put_tagged_in(w, fc::TIMESTAMP, self.0.to_be_bytes());
    }
}

impl Encode for Uuid {
    #[inline]
    fn encoded_len(&self) -> usize {
        17
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u8(fc::UUID);
        buf.put_slice(&self.0);
    }
}

#[inline]
fn variable_len(len: usize) -> usize {
    if len <= 0xff {
        2 + len
    } else {
        5 + len
    }
}

impl Encode for Bytes {
    #[inline]
    fn encoded_len(&self) -> usize {
        variable_len(self.len())
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_variable(buf, fc::VBIN8, fc::VBIN32, self);
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        w.put_variable(fc::VBIN8, fc::VBIN32, self);
    }
}

impl Encode for Str {
    #[inline]
    fn encoded_len(&self) -> usize {
        variable_len(self.len())
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_variable(buf, fc::STR8, fc::STR32, self.as_bytes());
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        w.put_variable(fc::STR8, fc::STR32, self.as_bytes());
    }
}

impl Encode for str {
    #[inline]
    fn encoded_len(&self) -> usize {
        variable_len(self.len())
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_variable(buf, fc::STR8, fc::STR32, self.as_bytes());
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        w.put_variable(fc::STR8, fc::STR32, self.as_bytes());
    }
}

impl Encode for Symbol {
    #[inline]
    fn encoded_len(&self) -> usize {
        variable_len(self.len())
    }
    #[inline]
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_variable(buf, fc::SYM8, fc::SYM32, self.as_bytes());
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        w.put_variable(fc::SYM8, fc::SYM32, self.as_bytes());
    }
}

/// A `multiple` symbol field: written as an array of symbols.
impl Encode for Vec<Symbol> {
    #[inline]
    fn encoded_len(&self) -> usize {
        let small = self.iter().all(|s| s.len() <= 0xff);
        let per = if small { 1 } else { 4 };
        let content = 1 + self.iter().map(|s| per + s.len()).sum::<usize>();
        1 + compound(fc::ARRAY8, fc::ARRAY32, self.len(), content).1
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        let small = self.iter().all(|s| s.len() <= 0xff);
        let per = if small { 1 } else { 4 };
        let content = 1 + self.iter().map(|s| per + s.len()).sum::<usize>();
        let (code, len) = compound(fc::ARRAY8, fc::ARRAY32, self.len(), content);
        buf.put_u8(code);
        write_compound_header(code, len, self.len(), buf);
        let elem = if small { fc::SYM8 } else { fc::SYM32 };
        buf.put_u8(elem);
        for s in self {
            write_variable(s.as_bytes(), elem, buf);
        }
    }
}

/// A map with typed keys and values, in order.
impl<K: Encode, V: Encode> Encode for Vec<(K, V)> {
    #[inline]
    fn encoded_len(&self) -> usize {
        let content = self
            .iter()
            .map(|(k, v)| k.encoded_len() + v.encoded_len())
            .sum();
        1 + compound(fc::MAP8, fc::MAP32, self.len() * 2, content).1
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        // Nearly every map is a map8, at most 257 bytes with its constructor: written into a
        // stack buffer in one pass (no sizing first) and handed to `buf` in one write.
        let mut small = [0u8; 257];
        let mut w = SliceWriter::new(&mut small);
        self.write_to(&mut w);
        if !w.is_full() {
            buf.put_slice(w.written());
            return;
        }
        let content = self
            .iter()
            .map(|(k, v)| k.encoded_len() + v.encoded_len())
            .sum();
        let (code, len) = compound(fc::MAP8, fc::MAP32, self.len() * 2, content);
        buf.put_u8(code);
        write_compound_header(code, len, self.len() * 2, buf);
        for (k, v) in self {
            k.encode(buf);
            v.encode(buf);
        }
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        let start = w.begin_map();
        for (k, v) in self {
            k.write_to(w);
            v.write_to(w);
        }
        w.end_map(start, self.len());
    }
}
