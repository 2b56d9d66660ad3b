//! [`EventPosition`]: where a consumer starts reading a partition.
//!
//! ```
//! use eventhubs::EventPosition;
//!
//! let all = EventPosition::earliest(); // everything still retained
//! let new_only = EventPosition::latest(); // only events enqueued after the link attaches
//! // After sequence number 41 (exclusive, the default), or from it (inclusive).
//! let after = EventPosition::sequence_number(41);
//! let from = EventPosition::sequence_number(41).inclusive(true);
//! assert!(!after.is_inclusive() && from.is_inclusive());
//! // From an offset you stored, or from an enqueued time (milliseconds since the epoch).
//! let resumed = EventPosition::offset("12345");
//! let since = EventPosition::enqueued_time_millis(1_700_000_000_000);
//! assert_eq!(after.selector(), "amqp.annotation.x-opt-sequence-number > '41'");
//! # let _ = (all, new_only, resumed, since);
//! ```

use crate::wire::selector::{Selector, Start, EARLIEST_OFFSET, LATEST_OFFSET};
use std::time::{SystemTime, UNIX_EPOCH};

/// A position in a partition's event stream, inclusive or exclusive of the event it names.
///
/// Sent to the service as the receiver's selector filter ([`Selector`]), e.g.
/// `amqp.annotation.x-opt-sequence-number > '41'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPosition {
    selector: Selector,
}

impl EventPosition {
    fn at(start: Start) -> Self {
        EventPosition {
            selector: Selector {
                start,
                inclusive: false,
            },
        }
    }

    /// The first event still retained (offset `-1`).
    pub fn earliest() -> Self {
        Self::at(Start::Earliest)
    }

    /// Only events enqueued after the consumer attaches.
    pub fn latest() -> Self {
        Self::at(Start::Latest)
    }

    /// After (or, inclusive, at) the event with this offset.
    pub fn offset(offset: impl Into<String>) -> Self {
        let offset = offset.into();
        Self::at(match offset.as_str() {
            EARLIEST_OFFSET => Start::Earliest,
            LATEST_OFFSET => Start::Latest,
            _ => Start::Offset(offset),
        })
    }

    /// After (or, inclusive, at) the event with this sequence number.
    pub fn sequence_number(sequence_number: i64) -> Self {
        Self::at(Start::SequenceNumber(sequence_number))
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
        Self::at(Start::EnqueuedTime(ms))
    }

    /// Includes (true) or excludes (false, the default) the named event.
    pub fn inclusive(mut self, inclusive: bool) -> Self {
        self.selector.inclusive = inclusive;
        self
    }

    /// Whether the named event is included.
    pub fn is_inclusive(&self) -> bool {
        self.selector.inclusive
    }

    /// The selector filter expression for this position.
    pub fn selector(&self) -> String {
        self.selector.expression()
    }

    /// The selector filter for this position.
    pub fn selector_filter(&self) -> &Selector {
        &self.selector
    }
}

impl From<Selector> for EventPosition {
    /// The position a selector names (an offset of `-1` or `@latest` is earliest or latest).
    fn from(selector: Selector) -> Self {
        let position = match selector.start {
            Start::Offset(o) => EventPosition::offset(o),
            start => EventPosition::at(start),
        };
        position.inclusive(selector.inclusive)
    }
}

impl Default for EventPosition {
    /// Latest, as the service and the other SDKs default to.
    fn default() -> Self {
        EventPosition::latest()
    }
}
