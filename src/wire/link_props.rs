//! Link properties and capabilities Event Hubs reads at attach: owner level, runtime metrics,
//! geo-replication, the operation timeout hint and the idempotent-producer state.

use crate::amqp::codec::{Symbol, Value};
use crate::amqp::types::definitions::Fields;
use std::time::Duration;

/// Receiver link property: the owner level (long); the highest one owns the partition.
pub const EPOCH: Symbol = Symbol::from_static("com.microsoft:epoch");
/// Link property: the operation timeout hint in milliseconds.
pub const TIMEOUT: Symbol = Symbol::from_static("com.microsoft:timeout");
/// Receiver capability: put the partition's last-enqueued figures on every delivery
/// ([`crate::wire::annotations::RuntimeMetrics`]).
pub const ENABLE_RECEIVER_RUNTIME_METRIC: Symbol =
    Symbol::from_static("com.microsoft:enable-receiver-runtime-metric");
/// Capability: the client understands geo-replicated (non-integer) offsets.
pub const GEOREPLICATION: Symbol = Symbol::from_static("com.microsoft:georeplication");
/// Sender capability: idempotent publishing.
pub const IDEMPOTENT_PRODUCER: Symbol = Symbol::from_static("com.microsoft:idempotent-producer");
/// Idempotent-producer link property and event annotation: the producer group id (long).
pub const PRODUCER_ID: Symbol = Symbol::from_static("com.microsoft:producer-id");
/// Idempotent-producer link property and event annotation: the owner level (short).
pub const PRODUCER_EPOCH: Symbol = Symbol::from_static("com.microsoft:producer-epoch");
/// Idempotent-producer link property and event annotation: the sequence number (int).
pub const PRODUCER_SEQUENCE_NUMBER: Symbol =
    Symbol::from_static("com.microsoft:producer-sequence-number");

/// The link property entry for an owner level.
pub fn owner_level(level: i64) -> (Symbol, Value) {
    (EPOCH, Value::Long(level))
}

/// The owner level an attach's properties carry, if any (any integer type).
pub fn read_owner_level(properties: Option<&Fields>) -> Option<i64> {
    properties?
        .iter()
        .find(|(k, _)| *k == EPOCH)
        .and_then(|(_, v)| v.as_i64())
}

/// The link property entry for an operation timeout (milliseconds as a uint, saturating).
pub fn timeout(timeout: Duration) -> (Symbol, Value) {
    (
        TIMEOUT,
        Value::Uint(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)),
    )
}

/// True when `capabilities` holds `capability`.
pub fn has_capability(capabilities: Option<&[Symbol]>, capability: &Symbol) -> bool {
    capabilities.is_some_and(|c| c.contains(capability))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_level_round_trips_in_any_integer_type() {
        let props: Fields = vec![("other".into(), Value::Null), owner_level(7)];
        assert_eq!(read_owner_level(Some(&props)), Some(7));
        let props: Fields = vec![(EPOCH, Value::Int(3))];
        assert_eq!(read_owner_level(Some(&props)), Some(3));
        assert_eq!(read_owner_level(Some(&vec![])), None);
        assert_eq!(read_owner_level(None), None);
        assert_eq!(EPOCH.as_str(), "com.microsoft:epoch");
    }

    #[test]
    fn timeout_is_milliseconds_and_saturates() {
        assert_eq!(
            timeout(Duration::from_secs(60)),
            (TIMEOUT, Value::Uint(60_000))
        );
        assert_eq!(
            timeout(Duration::from_secs(u64::MAX)).1,
            Value::Uint(u32::MAX)
        );
    }

    #[test]
    fn capabilities_are_found() {
        let caps = vec![GEOREPLICATION, ENABLE_RECEIVER_RUNTIME_METRIC];
        assert!(has_capability(Some(&caps), &ENABLE_RECEIVER_RUNTIME_METRIC));
        assert!(!has_capability(Some(&caps), &IDEMPOTENT_PRODUCER));
        assert!(!has_capability(None, &GEOREPLICATION));
        for s in [
            PRODUCER_ID,
            PRODUCER_EPOCH,
            PRODUCER_SEQUENCE_NUMBER,
            IDEMPOTENT_PRODUCER,
        ] {
            assert!(s.as_str().starts_with("com.microsoft:producer-") || s == IDEMPOTENT_PRODUCER);
        }
    }
}
