//! [`EventPosition`]: where a consumer starts reading a partition.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Earliest,
    Latest,
    Offset(String),
    SequenceNumber(i64),
    EnqueuedTime(i64),
}

/// A position in a partition's event stream, inclusive or exclusive of the event it names.
///
/// Sent to the service as the receiver's selector filter, e.g.
/// `amqp.annotation.x-opt-sequence-number > '41'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPosition {
    kind: Kind,
    inclusive: bool,
}

impl EventPosition {
    /// The first event still retained (offset `-1`).
    pub fn earliest() -> Self {
        EventPosition {
            kind: Kind::Earliest,
            inclusive: false,
        }
    }

    /// Only events enqueued after the consumer attaches.
    pub fn latest() -> Self {
        EventPosition {
            kind: Kind::Latest,
            inclusive: false,
        }
    }

    /// After (or, inclusive, at) the event with this offset.
    pub fn offset(offset: impl Into<String>) -> Self {
        let offset = offset.into();
        let kind = match offset.as_str() {
            "-1" => Kind::Earliest,
            "@latest" => Kind::Latest,
            _ => Kind::Offset(offset),
        };
        EventPosition {
            kind,
            inclusive: false,
        }
    }

    /// After (or, inclusive, at) the event with this sequence number.
    pub fn sequence_number(sequence_number: i64) -> Self {
        EventPosition {
            kind: Kind::SequenceNumber(sequence_number),
            inclusive: false,
        }
    }

    /// Events enqueued after (or, inclusive, at) this time.
    pub fn enqueued_time(time: SystemTime) -> Self {
        let ms = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self::enqueued_time_millis(ms)
    }

    /// Events enqueued after (or, inclusive, at) this many ms since the Unix epoch.
    pub fn enqueued_time_millis(ms: i64) -> Self {
        EventPosition {
            kind: Kind::EnqueuedTime(ms),
            inclusive: false,
        }
    }

    /// Includes (true) or excludes (false, the default) the named event.
    pub fn inclusive(mut self, inclusive: bool) -> Self {
        self.inclusive = inclusive;
        self
    }

    /// Whether the named event is included.
    pub fn is_inclusive(&self) -> bool {
        self.inclusive
    }

    /// The selector filter expression for this position.
    pub fn selector(&self) -> String {
        let op = if self.inclusive { ">=" } else { ">" };
        match &self.kind {
            Kind::Earliest => format!("amqp.annotation.x-opt-offset {op} '-1'"),
            Kind::Latest => format!("amqp.annotation.x-opt-offset {op} '@latest'"),
            Kind::Offset(o) => {
                format!(
                    "amqp.annotation.x-opt-offset {op} '{}'",
                    o.replace('\'', "''")
                )
            }
            Kind::SequenceNumber(n) => format!("amqp.annotation.x-opt-sequence-number {op} '{n}'"),
            Kind::EnqueuedTime(ms) => format!("amqp.annotation.x-opt-enqueued-time {op} '{ms}'"),
        }
    }
}

impl Default for EventPosition {
    /// Latest, as the service and the other SDKs default to.
    fn default() -> Self {
        EventPosition::latest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn selectors() {
        assert_eq!(
            EventPosition::earliest().selector(),
            "amqp.annotation.x-opt-offset > '-1'"
        );
        assert_eq!(
            EventPosition::latest().selector(),
            "amqp.annotation.x-opt-offset > '@latest'"
        );
        assert_eq!(EventPosition::offset("-1"), EventPosition::earliest());
        assert_eq!(
            EventPosition::offset("4096").inclusive(true).selector(),
            "amqp.annotation.x-opt-offset >= '4096'"
        );
        assert_eq!(
            EventPosition::sequence_number(41).selector(),
            "amqp.annotation.x-opt-sequence-number > '41'"
        );
        assert_eq!(
            EventPosition::enqueued_time(UNIX_EPOCH + Duration::from_millis(1234))
                .inclusive(true)
                .selector(),
            "amqp.annotation.x-opt-enqueued-time >= '1234'"
        );
    }
}
