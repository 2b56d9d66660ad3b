//! Zero-copy decoding that never trusts a size it has not checked.

use super::composite::ListReader;
use super::format_code as fc;
use super::value::{
    is_ascii, Array, Described, Descriptor, ElementType, Str, Symbol, Timestamp, Uuid, Value,
};
use bytes::Bytes;
use std::fmt;

/// How deeply compound and described values may nest before decoding gives up.
pub const MAX_DEPTH: u32 = 32;

/// What was wrong with the input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd {
        /// Bytes the value still needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A constructor byte that AMQP does not define.
    InvalidFormatCode(u8),
    /// A string or symbol that is not UTF-8.
    InvalidUtf8,
    /// A char that is not a Unicode scalar value.
    InvalidChar(u32),
    /// A boolean byte other than 0 or 1.
    InvalidBool(u8),
    /// Compounds or descriptors nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A compound's element count cannot fit in its declared size.
    CountExceedsSize {
        /// Declared element count.
        count: usize,
        /// Bytes available for the elements.
        size: usize,
    },
    /// A compound's declared size is too small for its own count field.
    SizeTooSmall(usize),
    /// A map with an odd number of elements.
    OddMapCount(usize),
    /// A compound's elements did not use exactly its declared size.
    TrailingBytes(usize),
    /// A value of a different type than the field or context requires.
    UnexpectedType {
        /// What was expected.
        expected: &'static str,
        /// The format code found.
        found: u8,
    },
    /// A descriptor that is neither a ulong nor a symbol.
    InvalidDescriptor,
    /// A described type other than the one expected here.
    UnexpectedDescriptor {
        /// The composite that was expected.
        expected: &'static str,
        /// What was found, printed.
        found: String,
    },
    /// A mandatory field of a composite was absent or null.
    MissingField {
        /// The composite.
        composite: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field value outside what the type allows.
    InvalidField {
        /// The composite.
        composite: &'static str,
        /// The field.
        field: &'static str,
    },
    /// An array whose element constructor cannot carry elements.
    InvalidArrayElement(u8),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        match self {
            UnexpectedEnd { needed, remaining } => {
                write!(f, "input ended: needed {needed} bytes, {remaining} left")
            }
            InvalidFormatCode(c) => write!(f, "invalid format code 0x{c:02x}"),
            InvalidUtf8 => f.write_str("string or symbol is not valid UTF-8"),
            InvalidChar(c) => write!(f, "char 0x{c:x} is not a Unicode scalar value"),
            InvalidBool(b) => write!(f, "boolean byte 0x{b:02x} is neither 0 nor 1"),
            TooDeep => write!(f, "values nested deeper than {MAX_DEPTH}"),
            CountExceedsSize { count, size } => {
                write!(f, "count {count} cannot fit in {size} bytes")
            }
            SizeTooSmall(s) => write!(f, "compound size {s} is smaller than its count field"),
            OddMapCount(c) => write!(f, "map has an odd element count {c}"),
            TrailingBytes(n) => write!(f, "{n} bytes left over inside a compound"),
            UnexpectedType { expected, found } => {
                write!(f, "expected {expected}, found format code 0x{found:02x}")
            }
            InvalidDescriptor => f.write_str("descriptor is neither a ulong nor a symbol"),
            UnexpectedDescriptor { expected, found } => {
                write!(
                    f,
                    "expected described type {expected}, found descriptor {found}"
                )
            }
            MissingField { composite, field } => {
                write!(f, "mandatory field {field} of {composite} is missing")
            }
            InvalidField { composite, field } => {
                write!(f, "field {field} of {composite} has an invalid value")
            }
            InvalidArrayElement(c) => {
                write!(f, "array element constructor 0x{c:02x} is not allowed")
            }
        }
    }
}

/// A decoding failure: what went wrong and at which byte offset of the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AMQP decode error at offset {offset}: {kind}")]
pub struct DecodeError {
    /// Offset from the start of the decoded buffer.
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// A cursor over shared bytes that decodes AMQP values.
#[derive(Clone, Debug)]
pub struct Decoder {
    buf: Bytes,
    pos: usize,
    /// Where the bytes this decoder may read end: `buf.len()`, or the end of the compound
    /// being read in place (maps and lists are bounded this way rather than by a sub-decoder,
    /// which would cost a reference-count round trip on the shared buffer).
    end: usize,
    base: usize,
    depth: u32,
}

impl Decoder {
    /// A decoder over `buf`, reporting offsets from its start.
    pub fn new(buf: Bytes) -> Self {
        Decoder {
            end: buf.len(),
            buf,
            pos: 0,
            base: 0,
            depth: 0,
        }
    }

    /// A decoder over `buf` that reports offsets as `base + position`.
    pub fn with_base(buf: Bytes, base: usize) -> Self {
        Decoder {
            end: buf.len(),
            buf,
            pos: 0,
            base,
            depth: 0,
        }
    }

    /// Bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// True when everything has been consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Offset of the next byte, from the start of the original input.
    #[inline]
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The unconsumed bytes, shared (no copy); consumes them.
    pub fn take_rest(&mut self) -> Bytes {
        let rest = self.buf.slice(self.pos..self.end);
        self.pos = self.end;
        rest
    }

    /// Fails unless the input has been consumed entirely.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(DecodeErrorKind::TrailingBytes(n))),
        }
    }

    /// An error at the current offset.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.offset(),
            kind,
        }
    }

    #[inline]
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.remaining() < n {
            Err(self.unexpected_end(n))
        } else {
            Ok(())
        }
    }

    #[cold]
    #[inline(never)]
    fn unexpected_end(&self, n: usize) -> DecodeError {
        self.error(DecodeErrorKind::UnexpectedEnd {
            needed: n,
            remaining: self.remaining(),
        })
    }

    /// Takes `n` bytes as a shared slice.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.need(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    /// The next byte, without consuming it.
    #[inline]
    pub fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf[self.pos])
    }

    /// Consumes one byte.
    #[inline]
    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn read_u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    fn read_u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    fn read_u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Consumes a null if one is next; says whether it did.
    #[inline]
    pub fn skip_null(&mut self) -> Result<bool, DecodeError> {
        if self.peek_u8()? == fc::NULL {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(DecodeErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A decoder over the next `n` bytes (consumed here) that inherits offset and depth.
    pub fn sub(&mut self, n: usize) -> Result<Decoder, DecodeError> {
        let base = self.offset();
        let buf = self.take(n)?;
        Ok(Decoder {
            end: buf.len(),
            buf,
            pos: 0,
            base,
            depth: self.depth,
        })
    }

    /// Decodes any value.
    pub fn read_value(&mut self) -> Result<Value, DecodeError> {
        let code = self.read_u8()?;
        if code == fc::DESCRIBED {
            self.enter()?;
            let descriptor = self.read_descriptor_value();
            let value = descriptor.and_then(|d| Ok((d, self.read_value()?)));
            self.leave();
            let (descriptor, value) = value?;
            return Ok(Value::Described(Box::new(Described { descriptor, value })));
        }
        self.read_bare(code)
    }

    /// Checks and consumes one value without building it: the same checks as
    /// [`Decoder::read_value`] (format codes, sizes and counts, UTF-8, chars, booleans,
    /// descriptors, nesting depth) and no allocation. For a relay that passes a value's bytes
    /// on and needs to know only that they are well formed.
    pub fn skip_value(&mut self) -> Result<(), DecodeError> {
        let code = self.read_u8()?;
        if code == fc::DESCRIBED {
            self.enter()?;
            let result = self.skip_descriptor().and_then(|()| self.skip_value());
            self.leave();
            return result;
        }
        self.skip_bare(code)
    }

    /// Checks and consumes a map (or a null) as [`Decoder::skip_value`] does, and requires
    /// every key's constructor to pass `key_ok` (`expected` names the key type in the error).
    pub fn skip_map(
        &mut self,
        key_ok: impl Fn(u8) -> bool,
        expected: &'static str,
    ) -> Result<(), DecodeError> {
        if self.skip_null()? {
            return Ok(());
        }
        let code = self.read_u8()?;
        if !matches!(code, fc::MAP8 | fc::MAP32) {
            self.pos -= 1;
            return Err(self.error(DecodeErrorKind::UnexpectedType {
                expected: "map",
                found: code,
            }));
        }
        let (count, size) = self.map_header(code)?;
        self.in_compound(size, |body| {
            (0..count / 2).try_for_each(|_| {
                let found = body.peek_u8()?;
                if !key_ok(found) {
                    return Err(body.error(DecodeErrorKind::UnexpectedType { expected, found }));
                }
                body.skip_element()?;
                body.skip_element()
            })
        })
    }

    /// In a map checked before (as by [`Decoder::skip_map`]), finds the first entry whose key
    /// is a string or symbol equal to `name` and leaves the decoder at its value; `false`
    /// when there is none (or the input is not such a map).
    pub fn seek_map_key(&mut self, name: &str) -> bool {
        self.seek_map_key_of(&[name]).is_some()
    }

    /// Where the values of the first entries keyed `names[0]`, `names[1]`, … lie in the
    /// buffer (the value's constructor onward), found in one pass over the map at the
    /// cursor, which is consumed as [`Decoder::seek_map_key_of`] reads it. `None` when no map
    /// is there or it is malformed.
    pub fn map_value_positions<const N: usize>(
        &mut self,
        names: [&str; N],
    ) -> Option<[Option<usize>; N]> {
        let code @ (fc::MAP8 | fc::MAP32) = self.read_u8().ok()? else {
            return None;
        };
        let (count, size) = self.map_header(code).ok()?;
        self.end = self.pos + size;
        let mut found = [None; N];
        for _ in 0..count / 2 {
            match self.text_range() {
                Some(key) => {
                    let key = self.buf.get(key)?;
                    let at = self.pos;
                    if let Some(slot) = names
                        .iter()
                        .position(|n| n.as_bytes() == key)
                        .and_then(|i| found.get_mut(i))
                    {
                        slot.get_or_insert(at);
                    }
                }
                None => self.skip_element().ok()?,
            }
            self.skip_element().ok()?;
        }
        Some(found)
    }

    /// [`Decoder::seek_map_key`] for the first entry whose key is any of `names`; which one
    /// it is.
    pub fn seek_map_key_of(&mut self, names: &[&str]) -> Option<usize> {
        let code @ (fc::MAP8 | fc::MAP32) = self.read_u8().ok()? else {
            return None;
        };
        let (count, size) = self.map_header(code).ok()?;
        self.end = self.pos + size;
        for _ in 0..count / 2 {
            if let Some(key) = self.text_range() {
                let key = self.buf.get(key)?;
                if let Some(i) = names.iter().position(|n| n.as_bytes() == key) {
                    return Some(i);
                }
            } else {
                self.skip_element().ok()?;
            }
            self.skip_element().ok()?;
        }
        None
    }

    /// When the next value is a string or symbol: consumes it and returns where its bytes lie
    /// in the buffer the decoder was made over; otherwise consumes nothing.
    pub fn text_range(&mut self) -> Option<std::ops::Range<usize>> {
        let code = self.peek_u8().ok()?;
        if !matches!(code, fc::STR8 | fc::STR32 | fc::SYM8 | fc::SYM32) {
            return None;
        }
        let at = self.pos;
        self.pos += 1;
        match self.variable_range(code) {
            Ok(range) => Some(range),
            Err(_) => {
                self.pos = at;
                None
            }
        }
    }

    /// Checks and consumes a binary as [`Bytes::decode`] reads one, without taking a slice of
    /// it.
    pub fn skip_binary(&mut self) -> Result<(), DecodeError> {
        match self.peek_u8()? {
            code @ (fc::VBIN8 | fc::VBIN32) => {
                self.pos += 1;
                self.variable_range(code).map(drop)
            }
            _ => Bytes::decode(self).map(drop),
        }
    }

    /// The buffer the decoder was made over, whole.
    pub fn into_buffer(self) -> Bytes {
        self.buf
    }

    /// True when the next value is of a fixed-width type (a number, timestamp, uuid, boolean,
    /// null...), which holds no shared bytes.
    pub fn at_fixed_width(&self) -> bool {
        self.peek_u8().is_ok_and(|c| fc::fixed_width(c).is_some())
    }

    /// [`Decoder::skip_value`] for an element of a compound: the values message sections are
    /// made of (fixed-width numbers, short ASCII strings and symbols, short binaries) are
    /// stepped over in place, anything else (or anything in doubt) goes the full way, which
    /// also names the error.
    #[inline]
    fn skip_element(&mut self) -> Result<(), DecodeError> {
        match self.simple_len() {
            Some(len) => {
                self.pos += len;
                Ok(())
            }
            None => self.skip_value(),
        }
    }

    /// The encoded length of the value at the position when it is a simple one known good
    /// (see [`Decoder::skip_element`]), else `None`.
    #[inline(always)]
    fn simple_len(&self) -> Option<usize> {
        let rest = self.buf.get(self.pos..self.end)?;
        let (&code, after) = rest.split_first()?;
        let len = match code {
            fc::SYM8 | fc::STR8 => {
                let (&n, after) = after.split_first()?;
                if !is_ascii(after.get(..usize::from(n))?) {
                    return None;
                }
                2 + usize::from(n)
            }
            fc::VBIN8 => 2 + usize::from(*after.first()?),
            // Booleans and chars have invalid contents; they go the full way.
            fc::BOOL | fc::CHAR => return None,
            other => 1 + fc::fixed_width(other)?,
        };
        (len <= rest.len()).then_some(len)
    }

    /// Confines the decoder to `range` of its buffer (cut to the buffer) and moves to its
    /// start: a relay that walks many messages packed in one buffer reads each in place, with
    /// no slice (and no reference-count round trip) per message. Offsets stay those of the
    /// whole buffer.
    pub fn set_window(&mut self, range: std::ops::Range<usize>) {
        self.end = range.end.min(self.buf.len());
        self.pos = range.start.min(self.end);
        self.depth = 0;
    }

    /// The bytes of `range` of the decoder's buffer (empty when out of it), for a reader
    /// that found the range with [`Decoder::binary_range`] or [`Decoder::checked_map_range`].
    pub fn bytes_at(&self, range: std::ops::Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or_default()
    }

    /// Checks and consumes a binary as [`Decoder::skip_binary`] does and returns where its
    /// content lies in the buffer; `None` for a binary of another encoding (a null), which is
    /// consumed as [`Bytes::decode`] reads it.
    pub fn binary_range(&mut self) -> Result<Option<std::ops::Range<usize>>, DecodeError> {
        match self.peek_u8()? {
            code @ (fc::VBIN8 | fc::VBIN32) => {
                self.pos += 1;
                self.variable_range(code).map(Some)
            }
            _ => Bytes::decode(self).map(|_| None),
        }
    }

    /// [`Decoder::take_checked_map`] returning where the map lies in the buffer (constructor
    /// onward) instead of a slice of it.
    pub fn checked_map_range(
        &mut self,
        key_ok: impl Fn(u8) -> bool,
        expected: &'static str,
    ) -> Result<Option<std::ops::Range<usize>>, DecodeError> {
        let start = self.pos;
        if self.skip_null()? {
            return Ok(None);
        }
        match self.skip_map(key_ok, expected) {
            Ok(()) => Ok(Some(start..self.pos)),
            Err(e) => {
                self.pos = start;
                Err(e)
            }
        }
    }

    /// [`Decoder::skip_map`], returning what it consumed (map constructor onward) as a slice
    /// of the input, `None` for a null; on an error nothing is consumed.
    pub fn take_checked_map(
        &mut self,
        key_ok: impl Fn(u8) -> bool,
        expected: &'static str,
    ) -> Result<Option<Bytes>, DecodeError> {
        let start = self.pos;
        if self.skip_null()? {
            return Ok(None);
        }
        match self.skip_map(key_ok, expected) {
            Ok(()) => Ok(Some(self.buf.slice(start..self.pos))),
            Err(e) => {
                self.pos = start;
                Err(e)
            }
        }
    }

    /// Consumes a descriptor (a ulong or a symbol) whose `0x00` was already consumed.
    fn skip_descriptor(&mut self) -> Result<(), DecodeError> {
        let at = self.offset();
        match self.peek_u8()? {
            fc::SMALLULONG | fc::ULONG | fc::ULONG0 | fc::SYM8 | fc::SYM32 => self.skip_value(),
            _ => {
                // Anything else is refused as `read_value` refuses it: a malformed value with
                // its own error, a well-formed one as an invalid descriptor.
                self.skip_value()?;
                Err(DecodeError {
                    offset: at,
                    kind: DecodeErrorKind::InvalidDescriptor,
                })
            }
        }
    }

    /// [`Decoder::skip_value`] after the constructor `code` was consumed.
    fn skip_bare(&mut self, code: u8) -> Result<(), DecodeError> {
        match code {
            fc::BOOL => match self.read_u8()? {
                0 | 1 => Ok(()),
                b => {
                    self.pos -= 1;
                    Err(self.error(DecodeErrorKind::InvalidBool(b)))
                }
            },
            fc::CHAR => {
                let c = self.read_u32()?;
                if char::from_u32(c).is_some() {
                    Ok(())
                } else {
                    self.pos -= 4;
                    Err(self.error(DecodeErrorKind::InvalidChar(c)))
                }
            }
            fc::VBIN8 | fc::VBIN32 => self.variable_range(code).map(drop),
            fc::STR8 | fc::STR32 | fc::SYM8 | fc::SYM32 => {
                let at = self.offset();
                let range = self.variable_range(code)?;
                let text = self.buf.get(range).unwrap_or_default();
                if is_ascii(text) || std::str::from_utf8(text).is_ok() {
                    Ok(())
                } else {
                    Err(DecodeError {
                        offset: at,
                        kind: DecodeErrorKind::InvalidUtf8,
                    })
                }
            }
            fc::LIST8 | fc::LIST32 => {
                let (count, _, size) = self.compound_header(code)?;
                self.in_compound(size, |body| {
                    (0..count).try_for_each(|_| body.skip_element())
                })
            }
            fc::MAP8 | fc::MAP32 => {
                let (count, size) = self.map_header(code)?;
                self.in_compound(size, |body| {
                    (0..count).try_for_each(|_| body.skip_element())
                })
            }
            fc::ARRAY8 | fc::ARRAY32 => {
                let (count, count_at, size) = self.compound_header(code)?;
                self.in_compound(size, |body| body.skip_array_body(count, count_at))
            }
            other => match fc::fixed_width(other) {
                Some(width) => {
                    self.need(width)?;
                    self.pos += width;
                    Ok(())
                }
                None => {
                    self.pos -= 1;
                    Err(self.error(DecodeErrorKind::InvalidFormatCode(other)))
                }
            },
        }
    }

    /// [`Decoder::skip_value`] for an array's elements (as `read_array_body` reads them).
    fn skip_array_body(&mut self, count: usize, count_at: usize) -> Result<(), DecodeError> {
        let mut code = self.read_u8()?;
        if code == fc::DESCRIBED {
            self.skip_descriptor()?;
            code = self.read_u8()?;
        }
        if element_type(code).is_none() {
            self.pos -= 1;
            return Err(self.error(DecodeErrorKind::InvalidArrayElement(code)));
        }
        check_count(count, self.remaining(), count_at)?;
        (0..count).try_for_each(|_| self.skip_bare(code))
    }

    /// Reads the descriptor of a described value whose `0x00` was already consumed.
    fn read_descriptor_value(&mut self) -> Result<Descriptor, DecodeError> {
        // Fast path: the one-byte numeric codes of every performative, section and outcome.
        if let Some(&[fc::SMALLULONG, code, ..]) = self.buf.get(self.pos..self.end) {
            self.pos += 2;
            return Ok(Descriptor::Code(code.into()));
        }
        let at = self.offset();
        match self.read_value()? {
            Value::Ulong(c) => Ok(Descriptor::Code(c)),
            Value::Symbol(s) => Ok(Descriptor::Symbol(s)),
            _ => Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::InvalidDescriptor,
            }),
        }
    }

    /// The numeric descriptor of the described value that comes next, without consuming
    /// anything; `None` when the next value is not described by a ulong (or is incomplete).
    ///
    /// A cheap way to choose how to decode a value (a message section, a delivery state)
    /// before reading it; the full read still checks everything.
    #[inline]
    pub fn peek_descriptor_code(&self) -> Option<u64> {
        match *self.buf.get(self.pos..self.end)? {
            [fc::DESCRIBED, fc::SMALLULONG, code, ..] => Some(code.into()),
            [fc::DESCRIBED, fc::ULONG0, ..] => Some(0),
            [fc::DESCRIBED, fc::ULONG, a, b, c, d, e, f, g, h, ..] => {
                Some(u64::from_be_bytes([a, b, c, d, e, f, g, h]))
            }
            _ => None,
        }
    }

    /// Reads `0x00 <descriptor>` and returns the descriptor; the described value follows.
    pub fn read_descriptor(&mut self) -> Result<Descriptor, DecodeError> {
        let code = self.peek_u8()?;
        if code != fc::DESCRIBED {
            return Err(self.error(DecodeErrorKind::UnexpectedType {
                expected: "described type",
                found: code,
            }));
        }
        self.pos += 1;
        self.read_descriptor_value()
    }

    /// Consumes `0x00 0x53 <code>` (a described value's small numeric descriptor) if that is
    /// what comes next, and says whether it did; nothing is consumed otherwise.
    ///
    /// The form every section and performative is sent in, recognised without building a
    /// [`Descriptor`]; any other form goes through [`Decoder::read_descriptor`].
    #[inline]
    pub fn eat_small_descriptor(&mut self, code: u64) -> bool {
        match self.buf.get(self.pos..self.end) {
            Some(&[fc::DESCRIBED, fc::SMALLULONG, c, ..]) if u64::from(c) == code => {
                self.pos += 3;
                true
            }
            _ => false,
        }
    }

    /// Consumes a value described by the small ulong `code` whose value is a binary (vbin8 or
    /// vbin32) lying whole in the input, and returns where its content lies in the buffer, as
    /// [`Decoder::eat_small_descriptor`] and [`Decoder::binary_range`] would in turn. `None`,
    /// consuming nothing, for anything else: the caller reads it the general way, which names
    /// the error if there is one. For runs of data sections, read once per event.
    #[inline]
    pub fn eat_described_binary(&mut self, code: u8) -> Option<std::ops::Range<usize>> {
        let rest = self.buf.get(self.pos..self.end)?;
        let (header, len) = match *rest {
            [fc::DESCRIBED, fc::SMALLULONG, c, fc::VBIN8, n, ..] if c == code => {
                (5, usize::from(n))
            }
            [fc::DESCRIBED, fc::SMALLULONG, c, fc::VBIN32, a, b, c2, d, ..] if c == code => {
                (8, u32::from_be_bytes([a, b, c2, d]) as usize)
            }
            _ => return None,
        };
        if rest.len() - header < len {
            return None;
        }
        let start = self.pos + header;
        self.pos = start + len;
        Some(start..self.pos)
    }

    /// Reads a described list with the given descriptor and returns a reader over its fields.
    pub fn read_composite(
        &mut self,
        code: u64,
        name: &'static str,
    ) -> Result<ListReader, DecodeError> {
        if self.eat_small_descriptor(code) {
            return self.read_list(name);
        }
        let at = self.offset();
        let d = self.read_descriptor()?;
        if !d.matches(code, name) {
            return Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedDescriptor {
                    expected: name,
                    found: format!("{d:?}"),
                },
            });
        }
        self.read_list(name)
    }

    /// Reads a list header (any list encoding) and returns a reader over its elements.
    pub fn read_list(&mut self, name: &'static str) -> Result<ListReader, DecodeError> {
        let code = self.read_u8()?;
        let (count, body) = match code {
            fc::LIST0 => (0, Decoder::with_base(Bytes::new(), self.offset())),
            fc::LIST8 | fc::LIST32 => {
                let (count, _, body) = self.compound_body(code)?;
                (count, body)
            }
            other => {
                self.pos -= 1;
                return Err(self.error(DecodeErrorKind::UnexpectedType {
                    expected: "list",
                    found: other,
                }));
            }
        };
        let mut body = body;
        body.depth = self.depth + 1;
        if body.depth > MAX_DEPTH {
            return Err(self.error(DecodeErrorKind::TooDeep));
        }
        Ok(ListReader::new(body, count, name))
    }

    /// Reads the size and count of a compound and returns the count, the count field's offset
    /// and a decoder over the elements. Every element takes at least one byte, so a count larger
    /// than the bytes really there is refused (at the count field) before anything is allocated.
    fn compound_body(&mut self, code: u8) -> Result<(usize, usize, Decoder), DecodeError> {
        let (count, count_at, size) = self.compound_header(code)?;
        let body = self.sub(size)?;
        Ok((count, count_at, body))
    }

    /// Reads the size and count of a compound and returns the count, the count field's offset
    /// and the size of the elements, checked against the bytes there (as [`Self::compound_body`]).
    #[inline]
    fn compound_header(&mut self, code: u8) -> Result<(usize, usize, usize), DecodeError> {
        let wide = matches!(code, fc::LIST32 | fc::MAP32 | fc::ARRAY32);
        let size_at = self.offset();
        let size = if wide {
            self.read_u32()? as usize
        } else {
            self.read_u8()? as usize
        };
        let width = if wide { 4 } else { 1 };
        if size < width {
            return Err(DecodeError {
                offset: size_at,
                kind: DecodeErrorKind::SizeTooSmall(size),
            });
        }
        self.need(size)?;
        let count_at = self.offset();
        let count = if wide {
            self.read_u32()? as usize
        } else {
            self.read_u8()? as usize
        };
        let elements = size - width;
        self.need(elements)?;
        check_count(count, elements, count_at)?;
        Ok((count, count_at, elements))
    }

    /// [`Self::compound_header`] for a map: its element count (keys and values) and size,
    /// refusing an odd count.
    #[inline]
    fn map_header(&mut self, code: u8) -> Result<(usize, usize), DecodeError> {
        let (count, count_at, size) = self.compound_header(code)?;
        if count % 2 != 0 {
            return Err(DecodeError {
                offset: count_at,
                kind: DecodeErrorKind::OddMapCount(count),
            });
        }
        Ok((count, size))
    }

    /// Runs `f` over the next `size` bytes in place (the caller has checked they are there),
    /// one nesting level deeper, and requires it to consume them exactly.
    #[inline]
    fn in_compound<T>(
        &mut self,
        size: usize,
        f: impl FnOnce(&mut Decoder) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.enter()?;
        let outer_end = self.end;
        self.end = self.pos + size;
        let out = f(self).and_then(|v| self.expect_end().map(|()| v));
        self.leave();
        self.end = outer_end;
        out
    }

    fn read_bare(&mut self, code: u8) -> Result<Value, DecodeError> {
        Ok(match code {
            fc::NULL => Value::Null,
            fc::BOOL_TRUE => Value::Bool(true),
            fc::BOOL_FALSE => Value::Bool(false),
            fc::BOOL => match self.read_u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    self.pos -= 1;
                    return Err(self.error(DecodeErrorKind::InvalidBool(b)));
                }
            },
            fc::UBYTE => Value::Ubyte(self.read_u8()?),
            fc::USHORT => Value::Ushort(self.read_u16()?),
            fc::UINT0 => Value::Uint(0),
            fc::SMALLUINT => Value::Uint(self.read_u8()?.into()),
            fc::UINT => Value::Uint(self.read_u32()?),
            fc::ULONG0 => Value::Ulong(0),
            fc::SMALLULONG => Value::Ulong(self.read_u8()?.into()),
            fc::ULONG => Value::Ulong(self.read_u64()?),
            fc::BYTE => Value::Byte(self.read_u8()? as i8),
            fc::SHORT => Value::Short(self.read_u16()? as i16),
            fc::SMALLINT => Value::Int((self.read_u8()? as i8).into()),
            fc::INT => Value::Int(self.read_u32()? as i32),
            fc::SMALLLONG => Value::Long((self.read_u8()? as i8).into()),
            fc::LONG => Value::Long(self.read_u64()? as i64),
            fc::FLOAT => Value::Float(f32::from_bits(self.read_u32()?)),
            fc::DOUBLE => Value::Double(f64::from_bits(self.read_u64()?)),
            fc::DECIMAL32 => Value::Decimal32(self.array()?),
            fc::DECIMAL64 => Value::Decimal64(self.array()?),
            fc::DECIMAL128 => Value::Decimal128(self.array()?),
            fc::CHAR => {
                let c = self.read_u32()?;
                match char::from_u32(c) {
                    Some(ch) => Value::Char(ch),
                    None => {
                        self.pos -= 4;
                        return Err(self.error(DecodeErrorKind::InvalidChar(c)));
                    }
                }
            }
            fc::TIMESTAMP => Value::Timestamp(Timestamp(self.read_u64()? as i64)),
            fc::UUID => Value::Uuid(Uuid(self.array()?)),
            fc::VBIN8 | fc::VBIN32 => Value::Binary(self.variable(code)?),
            fc::STR8 | fc::STR32 => Value::String(self.utf8(code)?),
            fc::SYM8 | fc::SYM32 => Value::Symbol(Symbol::from(self.utf8(code)?)),
            fc::LIST0 => Value::List(Vec::new()),
            fc::LIST8 | fc::LIST32 => {
                let (count, _, size) = self.compound_header(code)?;
                Value::List(self.in_compound(size, |body| {
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(body.read_value()?);
                    }
                    Ok(items)
                })?)
            }
            fc::MAP8 | fc::MAP32 => {
                let (count, size) = self.map_header(code)?;
                Value::Map(self.in_compound(size, |body| {
                    let mut pairs = Vec::with_capacity(count / 2);
                    for _ in 0..count / 2 {
                        let k = body.read_value()?;
                        let v = body.read_value()?;
                        pairs.push((k, v));
                    }
                    Ok(pairs)
                })?)
            }
            fc::ARRAY8 | fc::ARRAY32 => {
                let (count, count_at, size) = self.compound_header(code)?;
                Value::Array(self.in_compound(size, |body| body.read_array_body(count, count_at))?)
            }
            other => {
                self.pos -= 1;
                return Err(self.error(DecodeErrorKind::InvalidFormatCode(other)));
            }
        })
    }

    fn read_array_body(&mut self, count: usize, count_at: usize) -> Result<Array, DecodeError> {
        let mut descriptor = None;
        let mut code = self.read_u8()?;
        if code == fc::DESCRIBED {
            descriptor = Some(self.read_descriptor_value()?);
            code = self.read_u8()?;
        }
        let element = match element_type(code) {
            Some(e) => e,
            None => {
                self.pos -= 1;
                return Err(self.error(DecodeErrorKind::InvalidArrayElement(code)));
            }
        };
        // Zero-width elements cost no input, so the count is bounded by the bytes left for
        // every element type: a tiny frame must not be able to ask for a huge allocation.
        check_count(count, self.remaining(), count_at)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.read_bare(code)?);
        }
        Array::described(descriptor, element, items)
            .map_err(|_| self.error(DecodeErrorKind::InvalidArrayElement(code)))
    }

    /// The content of a binary, string or symbol whose constructor was consumed: the length
    /// field and the bounds checked once against what is left, then one shared slice.
    #[inline]
    fn variable(&mut self, code: u8) -> Result<Bytes, DecodeError> {
        let range = self.variable_range(code)?;
        Ok(self.buf.slice(range))
    }

    /// Consumes a binary, string or symbol of constructor `code` and returns where its bytes
    /// lie in the buffer (checking skips them with no reference-count round trip).
    #[inline]
    fn variable_range(&mut self, code: u8) -> Result<std::ops::Range<usize>, DecodeError> {
        let rest = self.buf.get(self.pos..self.end).unwrap_or_default();
        let (width, len) = match (code, rest) {
            (fc::VBIN8 | fc::STR8 | fc::SYM8, &[n, ..]) => (1, usize::from(n)),
            (fc::VBIN32 | fc::STR32 | fc::SYM32, &[a, b, c, d, ..]) => {
                (4, u32::from_be_bytes([a, b, c, d]) as usize)
            }
            (fc::VBIN8 | fc::STR8 | fc::SYM8, _) => return Err(self.unexpected_end(1)),
            _ => return Err(self.unexpected_end(4)),
        };
        if rest.len() - width < len {
            self.pos += width;
            return Err(self.unexpected_end(len));
        }
        let start = self.pos + width;
        self.pos = start + len;
        Ok(start..self.pos)
    }

    #[inline]
    fn utf8(&mut self, code: u8) -> Result<Str, DecodeError> {
        let at = self.offset();
        let bytes = self.variable(code)?;
        Str::from_utf8(bytes).map_err(|_| DecodeError {
            offset: at,
            kind: DecodeErrorKind::InvalidUtf8,
        })
    }
}

/// Refuses a compound count larger than the bytes left for its elements, naming the count field.
fn check_count(count: usize, size: usize, count_at: usize) -> Result<(), DecodeError> {
    if count > size {
        Err(DecodeError {
            offset: count_at,
            kind: DecodeErrorKind::CountExceedsSize { count, size },
        })
    } else {
        Ok(())
    }
}

fn element_type(code: u8) -> Option<ElementType> {
    Some(match code {
        fc::NULL => ElementType::Null,
        fc::BOOL | fc::BOOL_TRUE | fc::BOOL_FALSE => ElementType::Bool,
        fc::UBYTE => ElementType::Ubyte,
        fc::USHORT => ElementType::Ushort,
        fc::UINT0 | fc::SMALLUINT | fc::UINT => ElementType::Uint,
        fc::ULONG0 | fc::SMALLULONG | fc::ULONG => ElementType::Ulong,
        fc::BYTE => ElementType::Byte,
        fc::SHORT => ElementType::Short,
        fc::SMALLINT | fc::INT => ElementType::Int,
        fc::SMALLLONG | fc::LONG => ElementType::Long,
        fc::FLOAT => ElementType::Float,
        fc::DOUBLE => ElementType::Double,
        fc::DECIMAL32 => ElementType::Decimal32,
        fc::DECIMAL64 => ElementType::Decimal64,
        fc::DECIMAL128 => ElementType::Decimal128,
        fc::CHAR => ElementType::Char,
        fc::TIMESTAMP => ElementType::Timestamp,
        fc::UUID => ElementType::Uuid,
        fc::VBIN8 | fc::VBIN32 => ElementType::Binary,
        fc::STR8 | fc::STR32 => ElementType::String,
        fc::SYM8 | fc::SYM32 => ElementType::Symbol,
        fc::LIST0 | fc::LIST8 | fc::LIST32 => ElementType::List,
        fc::MAP8 | fc::MAP32 => ElementType::Map,
        fc::ARRAY8 | fc::ARRAY32 => ElementType::Array,
        _ => return None,
    })
}

/// A value that can be read from AMQP encoding.
pub trait Decode: Sized {
    /// Reads one value of this type.
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError>;
}

impl Decode for Value {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        d.read_value()
    }
}

impl<T: Decode> Decode for Option<T> {
    /// Null reads as `None`.
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        if d.skip_null()? {
            Ok(None)
        } else {
            T::decode(d).map(Some)
        }
    }
}

impl<T: Decode> Decode for Box<T> {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        T::decode(d).map(Box::new)
    }
}

/// Reads a value and converts it, reporting the expected type on mismatch.
fn typed<T>(
    d: &mut Decoder,
    expected: &'static str,
    f: impl FnOnce(Value) -> Option<T>,
) -> Result<T, DecodeError> {
    let at = d.offset();
    let found = d.peek_u8()?;
    let v = d.read_value()?;
    f(v).ok_or(DecodeError {
        offset: at,
        kind: DecodeErrorKind::UnexpectedType { expected, found },
    })
}

macro_rules! decode_primitive {
    ($($t:ty => $name:literal, $variant:ident);* $(;)?) => {
        $(impl Decode for $t {
            fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
                typed(d, $name, |v| match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                })
            }
        })*
    };
}

decode_primitive! {
    i8 => "byte", Byte;
    i16 => "short", Short;
    f32 => "float", Float;
    f64 => "double", Double;
    char => "char", Char;
    Uuid => "uuid", Uuid;
}

/// Decodes a performative field type: its usual constructors are read directly (exactly as
/// `read_bare` reads them); anything else takes the general path (and its error).
macro_rules! decode_fixed {
    ($($t:ty => $name:literal, $variant:ident, |$d:ident| { $($code:pat => $read:expr),* $(,)? });* $(;)?) => {
        $(impl Decode for $t {
            #[inline]
            fn decode($d: &mut Decoder) -> Result<Self, DecodeError> {
                match $d.peek_u8()? {
                    $($code => {
                        $d.pos += 1;
                        $read
                    })*
                    _ => typed($d, $name, |v| match v {
                        Value::$variant(x) => Some(x),
                        _ => None,
                    }),
                }
            }
        })*
    };
}

decode_fixed! {
    bool => "boolean", Bool, |d| {
        fc::BOOL_TRUE => Ok(true),
        fc::BOOL_FALSE => Ok(false),
    };
    u8 => "ubyte", Ubyte, |d| { fc::UBYTE => d.read_u8() };
    u16 => "ushort", Ushort, |d| { fc::USHORT => d.read_u16() };
    u32 => "uint", Uint, |d| {
        fc::UINT0 => Ok(0),
        fc::SMALLUINT => d.read_u8().map(u32::from),
        fc::UINT => d.read_u32(),
    };
    u64 => "ulong", Ulong, |d| {
        fc::ULONG0 => Ok(0),
        fc::SMALLULONG => d.read_u8().map(u64::from),
        fc::ULONG => d.read_u64(),
    };
    i32 => "int", Int, |d| {
        fc::SMALLINT => d.read_u8().map(|b| i32::from(b as i8)),
        fc::INT => d.read_u32().map(|n| n as i32),
    };
    i64 => "long", Long, |d| {
        fc::SMALLLONG => d.read_u8().map(|b| i64::from(b as i8)),
        fc::LONG => d.read_u64().map(|n| n as i64),
    };
    Timestamp => "timestamp", Timestamp, |d| {
        fc::TIMESTAMP => d.read_u64().map(|n| Timestamp(n as i64)),
    };
}

/// Decodes a variable-width type: its own constructors are read directly; anything else takes
/// the general path (and its error).
macro_rules! decode_variable {
    ($($t:ty => $name:literal, $variant:ident, [$small:path, $large:path], |$d:ident, $code:ident| $read:expr);* $(;)?) => {
        $(impl Decode for $t {
            #[inline]
            fn decode($d: &mut Decoder) -> Result<Self, DecodeError> {
                match $d.peek_u8()? {
                    $code @ ($small | $large) => {
                        $d.pos += 1;
                        $read
                    }
                    _ => typed($d, $name, |v| match v {
                        Value::$variant(x) => Some(x),
                        _ => None,
                    }),
                }
            }
        })*
    };
}

decode_variable! {
    Bytes => "binary", Binary, [fc::VBIN8, fc::VBIN32], |d, code| d.variable(code);
    Str => "string", String, [fc::STR8, fc::STR32], |d, code| d.utf8(code);
    Symbol => "symbol", Symbol, [fc::SYM8, fc::SYM32], |d, code| d.utf8(code).map(Symbol::from);
}

/// A `multiple` symbol field: one symbol or an array of symbols.
impl Decode for Vec<Symbol> {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        typed(d, "symbol or array of symbols", |v| match v {
            Value::Symbol(s) => Some(vec![s]),
            Value::Array(a) if a.element_type() == ElementType::Symbol => a
                .into_items()
                .into_iter()
                .map(|v| match v {
                    Value::Symbol(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }
}

/// A map with typed keys and values, in wire order.
impl<K: Decode, V: Decode> Decode for Vec<(K, V)> {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        d.read_map_with(K::decode, V::decode)
    }
}

impl Decoder {
    /// Reads a map (not null) into pairs in wire order, each key read by `key` and each value
    /// by `value`: for key types read their own way, straight into the entries with no second
    /// pass. The count is checked against the map's size before anything is allocated.
    #[inline]
    pub fn read_map_with<K, V>(
        &mut self,
        mut key: impl FnMut(&mut Decoder) -> Result<K, DecodeError>,
        mut value: impl FnMut(&mut Decoder) -> Result<V, DecodeError>,
    ) -> Result<Vec<(K, V)>, DecodeError> {
        let code = self.read_u8()?;
        if !matches!(code, fc::MAP8 | fc::MAP32) {
            self.pos -= 1;
            return Err(self.error(DecodeErrorKind::UnexpectedType {
                expected: "map",
                found: code,
            }));
        }
        let (count, size) = self.map_header(code)?;
        self.in_compound(size, |body| {
            let mut pairs = Vec::with_capacity(count / 2);
            for _ in 0..count / 2 {
                let k = key(body)?;
                let v = value(body)?;
                pairs.push((k, v));
            }
            Ok(pairs)
        })
    }
}
