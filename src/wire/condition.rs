//! The `com.microsoft:*` error conditions Event Hubs and its SDKs use, next to the AMQP ones
//! in [`crate::amqp::types::error::condition`].

use crate::amqp::codec::Symbol;

macro_rules! conditions {
    ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {
        $($(#[$doc])* pub const $name: Symbol = Symbol::from_static($text);)*
    };
}

conditions! {
    /// The service is busy; retry after a back-off.
    SERVER_BUSY = "com.microsoft:server-busy";
    /// The operation timed out on the service side.
    TIMEOUT = "com.microsoft:timeout";
    /// The operation was cancelled.
    OPERATION_CANCELLED = "com.microsoft:operation-cancelled";
    /// The service closed the container (transient).
    CONTAINER_CLOSE = "com.microsoft:container-close";
    /// An argument was invalid.
    ARGUMENT_ERROR = "com.microsoft:argument-error";
    /// An argument was outside its allowed range (e.g. a start position).
    ARGUMENT_OUT_OF_RANGE = "com.microsoft:argument-out-of-range";
    /// The entity is disabled.
    ENTITY_DISABLED = "com.microsoft:entity-disabled";
    /// The entity was updated.
    ENTITY_UPDATED = "com.microsoft:entity-updated";
    /// Authentication failed.
    AUTH_FAILED = "com.microsoft:auth-failed";
    /// A Microsoft-specific precondition failed.
    MS_PRECONDITION_FAILED = "com.microsoft:precondition-failed";
    /// The partition is not owned by this node.
    PARTITION_NOT_OWNED = "com.microsoft:partition-not-owned";
    /// A store lock was lost.
    STORE_LOCK_LOST = "com.microsoft:store-lock-lost";
    /// The publisher has been revoked.
    PUBLISHER_REVOKED = "com.microsoft:publisher-revoked";
    /// A message lock was lost.
    MESSAGE_LOCK_LOST = "com.microsoft:message-lock-lost";
    /// A session lock was lost.
    SESSION_LOCK_LOST = "com.microsoft:session-lock-lost";
    /// A session could not be locked.
    SESSION_CANNOT_BE_LOCKED = "com.microsoft:session-cannot-be-locked";
    /// The message was not found.
    MESSAGE_NOT_FOUND = "com.microsoft:message-not-found";
    /// The session was not found.
    SESSION_NOT_FOUND = "com.microsoft:session-not-found";
    /// The entity already exists.
    ENTITY_ALREADY_EXISTS = "com.microsoft:entity-already-exists";
    /// An idempotent producer's event skipped sequence numbers (a gap after the last one the
    /// service stored).
    OUT_OF_ORDER_SEQUENCE = "com.microsoft:out-of-order-sequence";
    /// Another idempotent producer with a higher owner level (epoch) took the producer id.
    PRODUCER_EPOCH_STOLEN = "com.microsoft:producer-epoch-stolen";
}

/// `info` key under which the service puts its tracking id.
pub const TRACKING_ID_KEY: Symbol = Symbol::from_static("com.microsoft:tracking-id");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec};
    use crate::amqp::types::error::AmqpError;
    use bytes::Bytes;

    #[test]
    fn conditions_travel_in_an_amqp_error() {
        let e = AmqpError::with_description(SERVER_BUSY, "try later")
            .with_info(TRACKING_ID_KEY, "abc-123");
        assert_eq!(e.to_string(), "com.microsoft:server-busy: try later");
        assert_eq!(AmqpError::new(TIMEOUT).to_string(), "com.microsoft:timeout");
        assert_eq!(AmqpError::new(TIMEOUT).description_str(), "");
        let back: AmqpError = decode_exact(Bytes::from(encode_to_vec(&e))).unwrap();
        assert!(back.is(&SERVER_BUSY));
        assert_eq!(
            back.info_get(TRACKING_ID_KEY.as_str())
                .and_then(|v| v.as_str()),
            Some("abc-123")
        );
    }

    #[test]
    fn every_condition_is_in_the_microsoft_namespace() {
        for c in [
            SERVER_BUSY,
            TIMEOUT,
            OPERATION_CANCELLED,
            CONTAINER_CLOSE,
            ARGUMENT_ERROR,
            ARGUMENT_OUT_OF_RANGE,
            ENTITY_DISABLED,
            ENTITY_UPDATED,
            AUTH_FAILED,
            MS_PRECONDITION_FAILED,
            PARTITION_NOT_OWNED,
            STORE_LOCK_LOST,
            PUBLISHER_REVOKED,
            MESSAGE_LOCK_LOST,
            SESSION_LOCK_LOST,
            SESSION_CANNOT_BE_LOCKED,
            MESSAGE_NOT_FOUND,
            SESSION_NOT_FOUND,
            ENTITY_ALREADY_EXISTS,
            OUT_OF_ORDER_SEQUENCE,
            PRODUCER_EPOCH_STOLEN,
            TRACKING_ID_KEY,
        ] {
            assert!(c.as_str().starts_with("com.microsoft:"), "{c:?}");
        }
    }
}
