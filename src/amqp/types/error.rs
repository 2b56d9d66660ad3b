//! The AMQP `error` composite and the well-known error conditions.

use super::definitions::Fields;
use crate::amqp::codec::{composite_type, Str, Symbol, Value};
use std::fmt;

/// Numeric descriptor of `amqp:error:list`.
pub const ERROR_CODE: u64 = 0x1d;
/// Symbolic descriptor of the error composite.
pub const ERROR_NAME: &str = "amqp:error:list";

composite_type! {
    /// An AMQP error as carried by `detach`, `end`, `close` and `rejected`.
    ///
    /// The condition and description are kept verbatim so that the client's own error type can
    /// report exactly what the peer said.
    #[derive(Clone, Debug, PartialEq)]
    pub struct AmqpError(ERROR_CODE, ERROR_NAME) {
        /// The error condition, e.g. [`condition::NOT_FOUND`].
        pub condition: Symbol => required("condition"),
        /// Human-readable text from the peer.
        pub description: Option<Str> => optional,
        /// Extra details (redirect targets, tracking ids, ...).
        pub info: Option<Fields> => optional,
    }
}

impl AmqpError {
    /// An error with only a condition.
    pub fn new(condition: Symbol) -> Self {
        AmqpError {
            condition,
            description: None,
            info: None,
        }
    }

    /// An error with a condition and a description.
    pub fn with_description(condition: Symbol, description: impl Into<Str>) -> Self {
        AmqpError {
            condition,
            description: Some(description.into()),
            info: None,
        }
    }

    /// Adds (or replaces) one `info` entry.
    pub fn with_info(mut self, key: impl Into<Symbol>, value: impl Into<Value>) -> Self {
        let key = key.into();
        let value = value.into();
        let info = self.info.get_or_insert_with(Vec::new);
        match info.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => info.push((key, value)),
        }
        self
    }

    /// Looks up an `info` entry by its key.
    pub fn info_get(&self, key: &str) -> Option<&Value> {
        self.info
            .as_ref()?
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// The description, or the empty string.
    pub fn description_str(&self) -> &str {
        self.description.as_ref().map_or("", Str::as_str)
    }

    /// True when the condition equals `condition`.
    pub fn is(&self, condition: &Symbol) -> bool {
        self.condition == *condition
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.condition.as_str())?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AmqpError {}

/// Well-known error conditions of AMQP 1.0 (sections 2.8.15-2.8.18, 4.5.x).
pub mod condition {
    use crate::amqp::codec::Symbol;

    macro_rules! conditions {
        ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {
            $($(#[$doc])* pub const $name: Symbol = Symbol::from_static($text);)*
        };
    }

    conditions! {
        /// An internal error occurred; the operator may need to intervene.
        INTERNAL_ERROR = "amqp:internal-error";
        /// A peer tried to use a node that does not exist.
        NOT_FOUND = "amqp:not-found";
        /// The peer is not authorized for the operation.
        UNAUTHORIZED_ACCESS = "amqp:unauthorized-access";
        /// Data could not be decoded.
        DECODE_ERROR = "amqp:decode-error";
        /// A resource limit (links, sessions, credit, ...) was exceeded.
        RESOURCE_LIMIT_EXCEEDED = "amqp:resource-limit-exceeded";
        /// The operation is not allowed.
        NOT_ALLOWED = "amqp:not-allowed";
        /// A field held an invalid value.
        INVALID_FIELD = "amqp:invalid-field";
        /// The operation is not implemented.
        NOT_IMPLEMENTED = "amqp:not-implemented";
        /// The resource is locked by another party.
        RESOURCE_LOCKED = "amqp:resource-locked";
        /// A precondition of the operation failed.
        PRECONDITION_FAILED = "amqp:precondition-failed";
        /// The resource has been deleted.
        RESOURCE_DELETED = "amqp:resource-deleted";
        /// The peer sent a frame that is not allowed in the current state.
        ILLEGAL_STATE = "amqp:illegal-state";
        /// The peer cannot send a frame because the smallest encoding exceeds the frame size.
        FRAME_SIZE_TOO_SMALL = "amqp:frame-size-too-small";

        /// An operator intervened to close the connection.
        CONNECTION_FORCED = "amqp:connection:forced";
        /// A frame was malformed at the transport level.
        CONNECTION_FRAMING_ERROR = "amqp:connection:framing-error";
        /// The container is no longer available here; `info` says where to go.
        CONNECTION_REDIRECT = "amqp:connection:redirect";

        /// The peer sent more transfers than the session window allowed.
        SESSION_WINDOW_VIOLATION = "amqp:session:window-violation";
        /// Input was received for a link that was detached with an error.
        SESSION_ERRANT_LINK = "amqp:session:errant-link";
        /// An attach used a handle that is already in use.
        SESSION_HANDLE_IN_USE = "amqp:session:handle-in-use";
        /// A frame (other than attach) referred to a handle that is not attached.
        SESSION_UNATTACHED_HANDLE = "amqp:session:unattached-handle";

        /// An operator intervened to detach the link.
        LINK_DETACH_FORCED = "amqp:link:detach-forced";
        /// The peer sent more messages than the link credit allowed.
        LINK_TRANSFER_LIMIT_EXCEEDED = "amqp:link:transfer-limit-exceeded";
        /// A message exceeded the link's max-message-size.
        LINK_MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded";
        /// The address is no longer serviced here; `info` says where to go.
        LINK_REDIRECT = "amqp:link:redirect";
        /// The link was taken over by another link (an Event Hubs epoch receiver).
        LINK_STOLEN = "amqp:link:stolen";

        /// The transaction id is not known.
        TRANSACTION_UNKNOWN_ID = "amqp:transaction:unknown-id";
        /// The transaction was rolled back.
        TRANSACTION_ROLLBACK = "amqp:transaction:rollback";
        /// The transaction timed out.
        TRANSACTION_TIMEOUT = "amqp:transaction:timeout";
    }
}

/// Helpers shared by the unit tests of the `types` modules.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::amqp::codec::{
        decode_exact, encode_to_vec, Decode, Decoder, Descriptor, Encode, Symbol, Value,
    };
    use bytes::{BufMut, Bytes};
    use std::fmt::Debug;

    /// Encodes, checks the length is exact, decodes back, and checks that every strict prefix
    /// fails to decode without panicking. Returns the encoding.
    pub(crate) fn roundtrip<T: Encode + Decode + PartialEq + Debug>(v: &T) -> Vec<u8> {
        let bytes = encode_to_vec(v);
        assert_eq!(bytes.len(), v.encoded_len(), "encoded_len of {v:?}");
        let back: T = decode_exact(Bytes::from(bytes.clone())).expect("decodes");
        assert_eq!(&back, v);
        for cut in 0..bytes.len() {
            let r = decode_exact::<T>(Bytes::copy_from_slice(&bytes[..cut]));
            assert!(r.is_err(), "prefix of {cut} bytes decoded: {r:?}");
        }
        bytes
    }

    /// Splits an encoded described list into its descriptor and items.
    pub(crate) fn split(bytes: &[u8]) -> (Descriptor, Vec<Value>) {
        let mut d = Decoder::new(Bytes::copy_from_slice(bytes));
        match d.read_value().expect("a value") {
            Value::Described(b) => match b.value {
                Value::List(items) => (b.descriptor, items),
                other => panic!("not a list: {other:?}"),
            },
            other => panic!("not described: {other:?}"),
        }
    }

    /// Encodes a described list, in list32 form when `wide`.
    pub(crate) fn described_list(descriptor: &Descriptor, items: &[Value], wide: bool) -> Vec<u8> {
        let mut out = vec![0x00];
        descriptor.encode(&mut out);
        let body: Vec<u8> = items.iter().flat_map(encode_to_vec).collect();
        if wide {
            out.put_u8(0xd0);
            out.put_u32(body.len() as u32 + 4);
            out.put_u32(items.len() as u32);
        } else if items.is_empty() {
            out.put_u8(0x45);
        } else {
            out.put_u8(0xc0);
            out.put_u8(body.len() as u8 + 1);
            out.put_u8(items.len() as u8);
        }
        out.extend_from_slice(&body);
        out
    }

    /// Checks the alternative encodings a peer may legally send decode to the same value:
    /// the symbolic descriptor, list32, and trailing null fields left out.
    pub(crate) fn alternatives<T: Encode + Decode + PartialEq + Debug>(v: &T, name: &'static str) {
        let (descriptor, items) = split(&encode_to_vec(v));
        let symbolic = Descriptor::Symbol(Symbol::from_static(name));
        for (desc, wide) in [(&descriptor, true), (&symbolic, false), (&symbolic, true)] {
            let bytes = described_list(desc, &items, wide);
            let back: T = decode_exact(Bytes::from(bytes)).expect("alternative form decodes");
            assert_eq!(&back, v, "descriptor {desc:?}, wide {wide}");
        }
        let mut short = items.clone();
        while short.last().is_some_and(Value::is_null) {
            short.pop();
            let bytes = described_list(&descriptor, &short, false);
            let back: T = decode_exact(Bytes::from(bytes)).expect("shorter list decodes");
            assert_eq!(&back, v, "with {} fields", short.len());
        }
    }

    /// Decodes `bytes` as `T`, expecting an error.
    pub(crate) fn decode_err<T: Decode + Debug>(
        bytes: Vec<u8>,
    ) -> crate::amqp::codec::DecodeErrorKind {
        decode_exact::<T>(Bytes::from(bytes))
            .expect_err("must not decode")
            .kind
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec, DecodeErrorKind, Descriptor};
    use bytes::Bytes;

    #[test]
    fn full_error_roundtrips() {
        let e = AmqpError::with_description(condition::LINK_STOLEN, "new receiver with epoch 2")
            .with_info("tracking-id", "abc-123")
            .with_info("port", 5671u32);
        roundtrip(&e);
        alternatives(&e, ERROR_NAME);
        assert_eq!(e.info_get("port"), Some(&Value::Uint(5671)));
        assert!(e.is(&condition::LINK_STOLEN));
    }

    #[test]
    fn bare_error_is_full_arity_and_shortens() {
        let e = AmqpError::new(condition::NOT_FOUND);
        let bytes = roundtrip(&e);
        // Full arity: the list has three fields, the last two null.
        assert_eq!(&bytes[..5], &[0x00, 0x53, 0x1d, 0xc0, 0x13]);
        assert_eq!(bytes[5], 3);
        assert_eq!(&bytes[bytes.len() - 2..], &[0x40, 0x40]);
        alternatives(&e, ERROR_NAME);
    }

    #[test]
    fn missing_condition_is_named() {
        let bytes = described_list(&Descriptor::Code(ERROR_CODE), &[], false);
        assert_eq!(
            decode_err::<AmqpError>(bytes),
            DecodeErrorKind::MissingField {
                composite: ERROR_NAME,
                field: "condition"
            }
        );
        let bytes = described_list(
            &Descriptor::Code(ERROR_CODE),
            &[Value::Null, Value::from("x")],
            false,
        );
        assert!(matches!(
            decode_err::<AmqpError>(bytes),
            DecodeErrorKind::MissingField {
                field: "condition",
                ..
            }
        ));
    }

    #[test]
    fn wrong_descriptor_and_types_are_errors() {
        let mut bytes = encode_to_vec(&AmqpError::new(condition::DECODE_ERROR));
        bytes[2] = 0x18;
        assert!(matches!(
            decode_err::<AmqpError>(bytes),
            DecodeErrorKind::UnexpectedDescriptor { .. }
        ));
        let bytes = described_list(
            &Descriptor::Code(ERROR_CODE),
            &[Value::from("a string, not a symbol")],
            false,
        );
        assert!(matches!(
            decode_err::<AmqpError>(bytes),
            DecodeErrorKind::UnexpectedType { .. }
        ));
    }

    #[test]
    fn display_shows_condition_and_description() {
        let e = AmqpError::with_description(condition::RESOURCE_LIMIT_EXCEEDED, "try later");
        assert_eq!(e.to_string(), "amqp:resource-limit-exceeded: try later");
        assert_eq!(
            AmqpError::new(condition::NOT_IMPLEMENTED).to_string(),
            "amqp:not-implemented"
        );
        assert_eq!(
            AmqpError::new(condition::NOT_IMPLEMENTED).description_str(),
            ""
        );
    }

    #[test]
    fn with_info_replaces_existing_key() {
        let e = AmqpError::new(condition::LINK_REDIRECT)
            .with_info("hostname", "a")
            .with_info("hostname", "b");
        assert_eq!(e.info.as_ref().map(Vec::len), Some(1));
        assert_eq!(e.info_get("hostname").and_then(Value::as_str), Some("b"));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let bytes = encode_to_vec(
            &AmqpError::with_description(condition::INTERNAL_ERROR, "boom").with_info("k", 1u8),
        );
        for i in 0..bytes.len() {
            for b in [0x00, 0x40, 0xff, 0xd0, 0xb1] {
                let mut m = bytes.clone();
                m[i] = b;
                let _ = decode_exact::<AmqpError>(Bytes::from(m));
            }
        }
    }
}
