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

/// Declares a composite (a described list) once: its descriptor, and its fields in wire order,
/// each with the rule that reads it back. Produces the struct, [`Encode`](super::Encode) with an
/// exact `encoded_len`, a crate-private `from_fields` over a [`ListReader`] whose descriptor
/// was already matched, and [`Decode`].
///
/// Field rules: `required("wire-name")`, `optional`, `or(default)`, `or_default`, or
/// `with(function)` for a field that needs its own check (`fn(&mut ListReader) -> Result<T, _>`).
///
/// Every field is written, absent ones as null: some peers (the official Python client) read
/// performative fields by position and fail when trailing nulls are left out.
macro_rules! composite_type {
    (
        $(#[$meta:meta])*
        $vis:vis struct $ty:ident($code:expr, $name:expr) {
            $(
                $(#[$field_meta:meta])*
                $field_vis:vis $field:ident: $field_ty:ty => $rule:ident $(($($arg:tt)*))?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $ty {
            $($(#[$field_meta])* $field_vis $field: $field_ty,)*
        }

        impl $ty {
            const CODE: u64 = $code;
            const NAME: &'static str = $name;
            const FIELD_COUNT: usize = <[&str]>::len(&[$(stringify!($field)),*]);

            /// Reads the fields, in order, of a list whose descriptor named this composite.
            #[inline]
            pub(crate) fn from_fields(
                mut list: $crate::amqp::codec::ListReader,
            ) -> Result<Self, $crate::amqp::codec::DecodeError> {
                #[allow(unused_variables, unused_mut)]
                let l = &mut list;
                Ok($ty {
                    $($field: $crate::amqp::codec::composite_type!(@read l, $rule $(($($arg)*))?),)*
                })
            }

            /// The encoded size of the fields alone.
            #[inline]
            fn fields_len(&self) -> usize {
                0usize $(+ $crate::amqp::codec::Encode::encoded_len(&self.$field))*
            }
        }

        impl $crate::amqp::codec::Encode for $ty {
            fn encoded_len(&self) -> usize {
                $crate::amqp::codec::composite_len(Self::CODE, Self::FIELD_COUNT, self.fields_len())
            }
            fn encode<B: ::bytes::BufMut>(&self, buf: &mut B) {
                $crate::amqp::codec::write_composite_header(
                    buf,
                    Self::CODE,
                    Self::FIELD_COUNT,
                    self.fields_len(),
                );
                $($crate::amqp::codec::Encode::encode(&self.$field, buf);)*
            }
        }

        impl $crate::amqp::codec::Decode for $ty {
            fn decode(
                d: &mut $crate::amqp::codec::Decoder,
            ) -> Result<Self, $crate::amqp::codec::DecodeError> {
                Self::from_fields(d.read_composite(Self::CODE, Self::NAME)?)
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $ty:ident($code:expr, $name:expr);
    ) => {
        $(#[$meta])*
        $vis struct $ty;

        impl $crate::amqp::codec::Encode for $ty {
            fn encoded_len(&self) -> usize {
                $crate::amqp::codec::composite_len($code, 0, 0)
            }
            fn encode<B: ::bytes::BufMut>(&self, buf: &mut B) {
                $crate::amqp::codec::write_composite_header(buf, $code, 0, 0);
            }
        }

        impl $crate::amqp::codec::Decode for $ty {
            fn decode(
                d: &mut $crate::amqp::codec::Decoder,
            ) -> Result<Self, $crate::amqp::codec::DecodeError> {
                d.read_composite($code, $name)?;
                Ok($ty)
            }
        }
    };
    (@read $l:ident, required($field:expr)) => { $l.required($field)? };
    (@read $l:ident, optional) => { $l.optional()? };
    (@read $l:ident, or($default:expr)) => { $l.or($default)? };
    (@read $l:ident, or_default) => { $l.or_default()? };
    (@read $l:ident, with($read:path)) => { $read($l)? };
}
pub(crate) use composite_type;

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
