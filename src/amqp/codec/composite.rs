//! Helpers for described lists (performatives, sections, terminus, outcomes).

use super::decode::{Decode, DecodeError, DecodeErrorKind, Decoder};
use super::format_code as fc;
use bytes::BufMut;

/// Encoded size of a described list with a numeric descriptor, `count` fields totalling
/// `fields_len` bytes.
pub fn composite_len(code: u64, count: usize, fields_len: usize) -> usize {
    1 + super::Encode::encoded_len(&code) + list_len(count, fields_len)
}

fn list_len(count: usize, fields_len: usize) -> usize {
    if count == 0 {
        1
    } else if count <= 0xff && fields_len < 0xff {
        3 + fields_len
    } else {
        9 + fields_len
    }
}

/// Writes `0x00 <code> <list header>`; the caller then writes the `count` fields.
pub fn write_composite_header<B: BufMut>(buf: &mut B, code: u64, count: usize, fields_len: usize) {
    buf.put_u8(fc::DESCRIBED);
    super::Encode::encode(&code, buf);
    if count == 0 {
        buf.put_u8(fc::LIST0);
    } else if count <= 0xff && fields_len < 0xff {
        buf.put_u8(fc::LIST8);
        buf.put_u8((fields_len + 1) as u8);
        buf.put_u8(count as u8);
    } else {
        buf.put_u8(fc::LIST32);
        buf.put_u32((fields_len + 4) as u32);
        buf.put_u32(count as u32);
    }
}

/// Implements [`Encode`](super::Encode) for a composite by listing its fields in order.
///
/// Every field is written, absent ones as null: some peers (the official Python client) read
/// performative fields by position and fail when trailing nulls are left out.
#[macro_export]
#[doc(hidden)]
macro_rules! encode_composite {
    ($ty:ty, $code:expr, |$s:ident| [$($field:expr),* $(,)?]) => {
        impl $crate::amqp::codec::Encode for $ty {
            fn encoded_len(&self) -> usize {
                let $s = self;
                let count = 0usize $(+ { let _ = stringify!($field); 1 })*;
                let fields = 0usize $(+ $crate::amqp::codec::Encode::encoded_len(&$field))*;
                $crate::amqp::codec::composite_len($code, count, fields)
            }
            fn encode<B: ::bytes::BufMut>(&self, buf: &mut B) {
                let $s = self;
                let count = 0usize $(+ { let _ = stringify!($field); 1 })*;
                let fields = 0usize $(+ $crate::amqp::codec::Encode::encoded_len(&$field))*;
                $crate::amqp::codec::write_composite_header(buf, $code, count, fields);
                $($crate::amqp::codec::Encode::encode(&$field, buf);)*
            }
        }
    };
}

/// Reads the fields of a list one by one, applying the AMQP rules for absent fields: a field
/// past the end of the list or encoded as null is absent.
#[derive(Debug)]
pub struct ListReader {
    body: Decoder,
    left: usize,
    name: &'static str,
}

impl ListReader {
    pub(crate) fn new(body: Decoder, count: usize, name: &'static str) -> Self {
        ListReader {
            body,
            left: count,
            name,
        }
    }

    /// Fields not read yet.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// The next field, `None` when absent or null.
    pub fn optional<T: Decode>(&mut self) -> Result<Option<T>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        Option::<T>::decode(&mut self.body)
    }

    /// The next field, or `default` when absent or null.
    pub fn or<T: Decode>(&mut self, default: T) -> Result<T, DecodeError> {
        Ok(self.optional()?.unwrap_or(default))
    }

    /// The next field, or its type's default when absent or null.
    pub fn or_default<T: Decode + Default>(&mut self) -> Result<T, DecodeError> {
        Ok(self.optional()?.unwrap_or_default())
    }

    /// A mandatory field; absent or null is an error naming it.
    pub fn required<T: Decode>(&mut self, field: &'static str) -> Result<T, DecodeError> {
        let at = self.body.offset();
        self.optional()?.ok_or(DecodeError {
            offset: at,
            kind: DecodeErrorKind::MissingField {
                composite: self.name,
                field,
            },
        })
    }

    /// An error about a field's value, at the current position.
    pub fn invalid(&self, field: &'static str) -> DecodeError {
        self.body.error(DecodeErrorKind::InvalidField {
            composite: self.name,
            field,
        })
    }

    /// Direct access to the underlying decoder for fields with custom decoding. The caller must
    /// consume exactly one field and then call [`ListReader::consumed_one`].
    pub fn decoder(&mut self) -> &mut Decoder {
        &mut self.body
    }

    /// Marks one field as consumed after reading it through [`ListReader::decoder`].
    pub fn consumed_one(&mut self) {
        self.left = self.left.saturating_sub(1);
    }

    /// True when another field is present in the list (it may still be null).
    pub fn has_more(&self) -> bool {
        self.left > 0
    }
}
