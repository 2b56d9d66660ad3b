//! What the outcome handler receives: [`BatchOutcome`] and its lazily read [`BatchEvents`].

use crate::batch::decode_batch_events;
use crate::error::Error;
use crate::event::EventData;
use bytes::Bytes;
use std::sync::OnceLock;

/// One settled batch: its events, the partition it went to, and the error if it failed
/// (after the retries). Every enqueued event is in exactly one outcome, unless a
/// [`super::EventHubBufferedProducer::close_now`] handed it back instead.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The partition the batch was sent to.
    pub partition_id: String,
    /// The batch's events, in the order they were enqueued (read back from the sent payload
    /// when first looked at; [`BatchEvents::len`] does not read them).
    pub events: BatchEvents,
    /// `None` when the service accepted the batch.
    pub error: Option<Error>,
}

/// The events of one settled batch. The buffered producer keeps a batch encoded while it is
/// in flight, not its events, so they are decoded from the payload the first time they are
/// looked at (through `Deref` to `[EventData]`, iteration or [`into_vec`](Self::into_vec));
/// [`len`](Self::len) and [`is_empty`](Self::is_empty) are free. Decoded bodies are slices
/// of the payload's buffer: copy a body out to keep a few events without keeping the batch.
pub struct BatchEvents {
    /// The batch payload they come from, when not decoded yet.
    payload: Bytes,
    count: usize,
    decoded: OnceLock<Vec<EventData>>,
}

impl BatchEvents {
    /// The `count` events of a batch payload this crate encoded.
    pub(crate) fn encoded(payload: Bytes, count: usize) -> Self {
        BatchEvents {
            payload,
            count,
            decoded: OnceLock::new(),
        }
    }

    /// Events kept as they are (one too large for any batch).
    pub(crate) fn from_events(events: Vec<EventData>) -> Self {
        BatchEvents {
            payload: Bytes::new(),
            count: events.len(),
            decoded: OnceLock::from(events),
        }
    }

    /// How many events the batch holds (without decoding them).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The events, decoded on the first call.
    pub fn as_slice(&self) -> &[EventData] {
        self.decoded.get_or_init(|| decode(self.payload.clone()))
    }

    /// The events, owned.
    pub fn into_vec(self) -> Vec<EventData> {
        match self.decoded.into_inner() {
            Some(events) => events,
            None => decode(self.payload),
        }
    }
}

/// Our own encoding fails to decode only on a codec bug; the events are then lost to the
/// caller, so it is logged loudly rather than hidden.
pub(crate) fn decode(payload: Bytes) -> Vec<EventData> {
    decode_batch_events(payload).unwrap_or_else(|e| {
        tracing::error!("buffered producer: cannot read back the events of a batch it sent: {e}");
        Vec::new()
    })
}

impl std::ops::Deref for BatchEvents {
    type Target = [EventData];

    fn deref(&self) -> &[EventData] {
        self.as_slice()
    }
}

impl IntoIterator for BatchEvents {
    type Item = EventData;
    type IntoIter = std::vec::IntoIter<EventData>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a BatchEvents {
    type Item = &'a EventData;
    type IntoIter = std::slice::Iter<'a, EventData>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl From<BatchEvents> for Vec<EventData> {
    fn from(events: BatchEvents) -> Self {
        events.into_vec()
    }
}

impl std::fmt::Debug for BatchEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decoded.get() {
            Some(events) => f.debug_list().entries(events).finish(),
            None => write!(f, "BatchEvents({} events, not decoded)", self.count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::EventDataBatch;

    fn batch(n: usize) -> EventDataBatch {
        let mut b = EventDataBatch::new(64 * 1024, None);
        for i in 0..n {
            let e = EventData::new(format!("event {i}"))
                .with_property("i", i as i64)
                .with_partition_key("k");
            assert!(b.try_add(e).is_ok());
        }
        b
    }

    #[test]
    fn reads_back_the_events_of_the_payload_in_order() {
        let b = batch(50);
        let events = BatchEvents::encoded(b.into_payload(), 50);
        assert_eq!(events.len(), 50);
        assert!(format!("{events:?}").contains("not decoded"));
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.body_as_str().unwrap(), format!("event {i}"));
            assert_eq!(e.property_i64("i"), Some(i as i64));
            assert_eq!(e.partition_key(), Some("k"));
        }
        let owned: Vec<EventData> = events.into();
        assert_eq!(owned.len(), 50);
        assert_eq!(
            owned[7],
            EventData::new("event 7")
                .with_property("i", 7i64)
                .with_partition_key("k")
        );
    }

    #[test]
    fn owned_iteration_without_a_borrow_first() {
        let events = BatchEvents::encoded(batch(3).into_payload(), 3);
        let bodies: Vec<String> = events
            .into_iter()
            .map(|e| e.body_as_str().unwrap().to_owned())
            .collect();
        assert_eq!(bodies, ["event 0", "event 1", "event 2"]);
    }

    #[test]
    fn a_payload_that_is_not_a_batch_gives_no_events() {
        let events = BatchEvents::encoded(Bytes::from_static(b"\x00\x53"), 2);
        assert_eq!(events.len(), 2);
        assert!(events.as_slice().is_empty());
    }
}
