//! The AMQP 1.0 type system: values, their encodings and a zero-copy decoder.
//!
//! Encoding picks the smallest form of every primitive and knows its exact size before it
//! writes ([`Encode::encoded_len`]). Decoding works over [`bytes::Bytes`], so binaries, strings
//! and symbols are slices of the input, and it never trusts a length or count it has not
//! checked against the bytes that are really there.

mod composite;
mod decode;
mod encode;
pub mod format_code;
mod slice_writer;
mod value;

pub(crate) use composite::composite_type;
pub use composite::{composite_len, write_composite_header, ListReader};
pub use decode::{Decode, DecodeError, DecodeErrorKind, Decoder, MAX_DEPTH};
pub use encode::Encode;
pub use slice_writer::{MapStart, SliceWriter};
pub use value::{
    Array, ArrayTypeError, Described, Descriptor, ElementType, Str, Symbol, Timestamp, Uuid, Value,
};

/// Encodes a value into a fresh buffer of exactly its encoded length.
pub fn encode_to_vec<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(value.encoded_len());
    value.encode(&mut buf);
    buf
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error.
pub fn decode_exact<T: Decode>(bytes: bytes::Bytes) -> Result<T, DecodeError> {
    let mut d = Decoder::new(bytes);
    let v = T::decode(&mut d)?;
    d.expect_end()?;
    Ok(v)
}
