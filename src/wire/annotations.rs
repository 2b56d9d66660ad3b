//! Annotation keys: the system properties the service stamps on every stored event (message
//! annotations) and the runtime metrics it adds per delivery when a receiver asks for them
//! (delivery annotations).

use crate::amqp::codec::{Str, Timestamp, Value};
use crate::amqp::types::message::Annotations;

/// Message annotation: the partition key the sender chose (string).
pub const PARTITION_KEY: &str = "x-opt-partition-key";
/// Message annotation: the per-partition sequence number (long, set by the service).
pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
/// Message annotation: the opaque offset (string, set by the service).
pub const OFFSET: &str = "x-opt-offset";
/// Message annotation: when the service enqueued the event (timestamp).
pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
/// Message annotation: the publisher endpoint an event was sent to (legacy).
pub const PUBLISHER: &str = "x-opt-publisher";

/// Delivery annotation: sequence number of the partition's last enqueued event (long).
pub const LAST_ENQUEUED_SEQUENCE_NUMBER: &str = "last_enqueued_sequence_number";
/// Delivery annotation: offset of the partition's last enqueued event (string).
pub const LAST_ENQUEUED_OFFSET: &str = "last_enqueued_offset";
/// Delivery annotation: when the partition's last event was enqueued (timestamp).
pub const LAST_ENQUEUED_TIME_UTC: &str = "last_enqueued_time_utc";
/// Delivery annotation: when the service read the figures above (timestamp).
pub const RUNTIME_INFO_RETRIEVAL_TIME_UTC: &str = "runtime_info_retrieval_time_utc";

/// The runtime metrics a delivery carries for a receiver that asked for them with
/// [`crate::wire::link_props::ENABLE_RECEIVER_RUNTIME_METRIC`]; each is absent when the
/// service left it out or sent it with another type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeMetrics {
    /// Sequence number of the partition's last enqueued event.
    pub last_enqueued_sequence_number: Option<i64>,
    /// Offset of the partition's last enqueued event.
    pub last_enqueued_offset: Option<String>,
    /// When the partition's last event was enqueued.
    pub last_enqueued_time: Option<Timestamp>,
    /// When the service read these figures.
    pub retrieval_time: Option<Timestamp>,
}

impl RuntimeMetrics {
    /// Reads the metrics from a delivery's annotations.
    pub fn from_annotations(a: &Annotations) -> RuntimeMetrics {
        let time = |k: &str| match a.get(k) {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        };
        RuntimeMetrics {
            last_enqueued_sequence_number: a
                .get(LAST_ENQUEUED_SEQUENCE_NUMBER)
                .and_then(Value::as_i64),
            last_enqueued_offset: a
                .get(LAST_ENQUEUED_OFFSET)
                .and_then(Value::as_str)
                .map(str::to_owned),
            last_enqueued_time: time(LAST_ENQUEUED_TIME_UTC),
            retrieval_time: time(RUNTIME_INFO_RETRIEVAL_TIME_UTC),
        }
    }

    /// Writes the metrics that are present into a delivery's annotations.
    pub fn write_to(&self, a: &mut Annotations) {
        if let Some(n) = self.last_enqueued_sequence_number {
            a.insert(LAST_ENQUEUED_SEQUENCE_NUMBER, Value::Long(n));
        }
        if let Some(o) = &self.last_enqueued_offset {
            a.insert(LAST_ENQUEUED_OFFSET, Value::String(Str::from(o.as_str())));
        }
        if let Some(t) = self.last_enqueued_time {
            a.insert(LAST_ENQUEUED_TIME_UTC, Value::Timestamp(t));
        }
        if let Some(t) = self.retrieval_time {
            a.insert(RUNTIME_INFO_RETRIEVAL_TIME_UTC, Value::Timestamp(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec};
    use bytes::Bytes;

    #[test]
    fn runtime_metrics_round_trip_through_the_wire() {
        let m = RuntimeMetrics {
            last_enqueued_sequence_number: Some(41),
            last_enqueued_offset: Some("8192".into()),
            last_enqueued_time: Some(Timestamp(1_700_000_000_000)),
            retrieval_time: Some(Timestamp(1_700_000_000_123)),
        };
        let mut a = Annotations::new();
        m.write_to(&mut a);
        assert_eq!(a.len(), 4);
        assert_eq!(a.get(LAST_ENQUEUED_SEQUENCE_NUMBER), Some(&Value::Long(41)));
        let back: Annotations = decode_exact(Bytes::from(encode_to_vec(&a))).unwrap();
        assert_eq!(RuntimeMetrics::from_annotations(&back), m);
    }

    #[test]
    fn missing_or_mistyped_metrics_are_absent() {
        let mut a = Annotations::new();
        a.insert(LAST_ENQUEUED_TIME_UTC, Value::Long(5));
        a.insert(LAST_ENQUEUED_OFFSET, Value::Long(5));
        assert_eq!(
            RuntimeMetrics::from_annotations(&a),
            RuntimeMetrics::default()
        );
        let mut empty = Annotations::new();
        RuntimeMetrics::default().write_to(&mut empty);
        assert!(empty.is_empty());
    }
}
