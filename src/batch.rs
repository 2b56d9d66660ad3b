//! [`EventDataBatch`]: events packed into one AMQP transfer, and [`BatchSizeCalculator`] for
//! planning batches without a connection.
//!
//! A batch is one AMQP message of format [`BATCH_MESSAGE_FORMAT`] whose body is one `data`
//! section per event, each holding the event encoded as a complete AMQP message. The envelope
//! carries only the partition key (message annotation), when there is one. Events are encoded
//! straight into the transfer buffer as they are added, and the size a batch reports is
//! exactly the length of the payload it sends.
//!
//! Filling batches by hand (for many events, [`crate::EventHubProducer::send_all`] does this
//! for you); a batch from `create_batch` is sized to the link, here one of 1 KiB:
//!
//! ```
//! use eventhubs::{EventData, EventDataBatch};
//!
//! let mut batches = vec![EventDataBatch::new(1024, None)];
//! for i in 0..100 {
//!     let event = EventData::from(format!("event {i}"));
//!     // try_add gives the event back when the batch is full: start the next one with it.
//!     if let Err(event) = batches.last_mut().unwrap().try_add(event) {
//!         let mut next = EventDataBatch::new(1024, None);
//!         next.try_add(event).expect("a small event fits an empty batch");
//!         batches.push(next);
//!     }
//! }
//! assert!(batches.len() > 1 && batches.iter().all(|b| b.size() <= 1024));
//! assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 100);
//! ```

use crate::amqp::codec::Encode;
use crate::amqp::types::message::Message;
use crate::error::{Error, ErrorKind};
use crate::event::{EventData, PARTITION_KEY_ANNOTATION};
use crate::wire::batch::{data_section_len, write_data_section_header};
use bytes::{Bytes, BytesMut};

pub use crate::wire::batch::BATCH_MESSAGE_FORMAT;

/// The link limit assumed when the service does not announce one (1 MiB, standard tier).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// Options for a new batch.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct BatchOptions {
    /// Largest batch in bytes; defaults to (and may not exceed) the link's max-message-size.
    pub max_size: Option<usize>,
    /// Partition key for every event in the batch (set on the envelope and on each event).
    pub partition_key: Option<String>,
}

impl BatchOptions {
    /// Options with a size limit.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// Options with a partition key.
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }
}

/// The batch envelope: an otherwise empty message with the partition key annotation.
pub(crate) fn envelope(partition_key: Option<&str>) -> Message {
    let mut m = Message::default();
    if let Some(k) = partition_key {
        m.message_annotations_mut()
            .insert(PARTITION_KEY_ANNOTATION, k);
    }
    m
}

/// Puts the batch's partition key on an event that does not carry it already.
fn stamp(event: &mut EventData, partition_key: Option<&str>) {
    if let Some(k) = partition_key {
        if event.partition_key() != Some(k) {
            event.set_partition_key(Some(k));
        }
    }
}

/// Resolves the size limit: the link's unless a smaller one is asked for.
pub(crate) fn resolve_max_size(requested: Option<usize>, link_max: u64) -> Result<usize, Error> {
    let link_max = usize::try_from(link_max).unwrap_or(usize::MAX);
    match requested {
        Some(r) if r > link_max => Err(Error::invalid_argument(format!(
            "requested batch size {r} bytes exceeds the link's max-message-size of {link_max} bytes"
        ))),
        Some(r) => Ok(r),
        None => Ok(link_max),
    }
}

/// Bytes a new batch reserves: small batches stay small, a full one grows a few times.
pub(crate) const INITIAL_CAPACITY: usize = 64 * 1024;

/// A batch of events bound for one transfer.
#[derive(Clone, Debug)]
pub struct EventDataBatch {
    /// The envelope's sections followed by one data section per event: the transfer payload.
    buf: BytesMut,
    count: usize,
    max_size: usize,
    partition_key: Option<String>,
    partition_id: Option<String>,
    /// Bytes kept free per event for what the producer adds at send time (an idempotent
    /// producer's stamp), so a full batch still fits the link once stamped.
    reserve_per_event: usize,
}

impl EventDataBatch {
    /// A batch limited to `max_size` bytes, made without a connection (see also
    /// `EventHubProducer::create_batch`, which takes the limit from the link).
    pub fn new(max_size: usize, partition_key: Option<&str>) -> Self {
        Self::with_capacity(max_size, partition_key, INITIAL_CAPACITY)
    }

    /// [`EventDataBatch::new`] with room for `capacity` bytes (at most `max_size`) before the
    /// buffer grows: the buffered producer sizes a batch like the one before it, so that a
    /// busy partition's batches are not copied as they grow to the link's limit.
    pub(crate) fn with_capacity(
        max_size: usize,
        partition_key: Option<&str>,
        capacity: usize,
    ) -> Self {
        let env = envelope(partition_key);
        let mut buf = BytesMut::with_capacity(capacity.min(max_size));
        env.encode_before_body(&mut buf);
        EventDataBatch {
            buf,
            count: 0,
            max_size,
            partition_key: partition_key.map(str::to_owned),
            partition_id: None,
            reserve_per_event: 0,
        }
    }

    pub(crate) fn with_reserve_per_event(mut self, bytes: usize) -> Self {
        self.reserve_per_event = bytes;
        self
    }

    pub(crate) fn with_partition_id(mut self, partition_id: Option<String>) -> Self {
        self.partition_id = partition_id;
        self
    }

    /// Adds `event` if it fits; otherwise gives it back unchanged in size terms (with the
    /// batch's partition key stamped on it, if the batch has one).
    pub fn try_add(&mut self, mut event: EventData) -> Result<(), EventData> {
        stamp(&mut event, self.partition_key.as_deref());
        if self.append(&event) {
            Ok(())
        } else {
            Err(event)
        }
    }

    /// Writes `event` (already stamped) as the next data section if it fits with the room
    /// kept per event (an idempotent producer's stamps); says whether it did.
    fn append(&mut self, event: &EventData) -> bool {
        let n = event.encoded_len();
        let reserved = self.reserve_per_event.saturating_mul(self.count + 1);
        let grown = self
            .buf
            .len()
            .saturating_add(data_section_len(n))
            .saturating_add(reserved);
        if grown > self.max_size {
            return false;
        }
        self.buf.reserve(data_section_len(n));
        write_data_section_header(&mut self.buf, n);
        event.raw_message().encode(&mut self.buf);
        self.count += 1;
        true
    }

    /// Adds `event`, or fails with an [`ErrorKind::EventData`] error naming the sizes.
    pub fn add(&mut self, event: EventData) -> Result<(), Error> {
        let n = event.encoded_len();
        self.try_add(event).map_err(|_| {
            Error::new(
                ErrorKind::EventData,
                format!(
                    "event of {} bytes in a batch does not fit: batch has {} of {} bytes used",
                    data_section_len(n),
                    self.size(),
                    self.max_size
                ),
            )
        })
    }

    /// Size in bytes of the transfer payload the batch produces now.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// The size limit.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no event was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The partition key bound to the batch.
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }

    /// The partition id of the producer the batch was made for, if any.
    pub fn partition_id(&self) -> Option<&str> {
        self.partition_id.as_deref()
    }

    /// The encoded transfer payload (envelope and data sections) — what is sent with message
    /// format [`BATCH_MESSAGE_FORMAT`].
    pub fn into_payload(self) -> Bytes {
        self.buf.freeze()
    }

    /// The encoded transfer payload so far, without consuming the batch.
    pub fn payload(&self) -> &[u8] {
        &self.buf
    }
}

/// The events of a batch payload as an [`EventDataBatch`] encoded them, decoded back as events
/// to send (the buffered producer reports and hands back events this way instead of keeping
/// them alive until their batch settles). Bodies are slices of `payload` (no copy).
pub(crate) fn decode_batch_events(payload: Bytes) -> Result<Vec<EventData>, Error> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::EventData,
            format!("re-reading the events of a batch: {e}"),
        )
    };
    let batch = Message::decode(payload).map_err(|e| unreadable(&e))?;
    let crate::amqp::types::message::Body::Data(sections) = &batch.body else {
        return Err(unreadable(&"its body is not data sections"));
    };
    sections
        .iter()
        .map(|data| {
            Message::decode(data.clone())
                .map(EventData::from_outgoing_message)
                .map_err(|e| unreadable(&e))
        })
        .collect()
}

/// Batch size accounting without the batch: plan how events split into transfers before
/// (or without) connecting. Its arithmetic is the batch's own.
#[derive(Clone, Debug)]
pub struct BatchSizeCalculator {
    size: usize,
    count: usize,
    max_size: usize,
    partition_key: Option<String>,
}

impl BatchSizeCalculator {
    /// A calculator for batches of at most `max_size` bytes with an optional partition key.
    pub fn new(max_size: usize, partition_key: Option<&str>) -> Self {
        BatchSizeCalculator {
            size: envelope(partition_key).encoded_len(),
            count: 0,
            max_size,
            partition_key: partition_key.map(str::to_owned),
        }
    }

    /// Bytes `event` adds to a batch (its data section, with the batch's key stamped).
    pub fn event_size(&self, event: &EventData) -> usize {
        let n = match self.partition_key.as_deref() {
            Some(k) if event.partition_key() != Some(k) => {
                let mut e = event.clone();
                stamp(&mut e, Some(k));
                e.encoded_len()
            }
            _ => event.encoded_len(),
        };
        data_section_len(n)
    }

    /// Accounts for `event` if it fits; false when it would not.
    pub fn try_add(&mut self, event: &EventData) -> bool {
        let grown = self.size.saturating_add(self.event_size(event));
        if grown > self.max_size {
            return false;
        }
        self.size = grown;
        self.count += 1;
        true
    }

    /// The size a batch with the events accounted so far would have.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Events accounted so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing was accounted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.max_size.saturating_sub(self.size)
    }

    /// Starts over (a new batch).
    pub fn reset(&mut self) {
        self.size = envelope(self.partition_key.as_deref()).encoded_len();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::types::message::Body;

    #[test]
    fn full_batch_gives_the_event_back() {
        let mut b = EventDataBatch::new(200, None);
        assert_eq!(b.size(), 0);
        let mut added = 0;
        loop {
            match b.try_add(EventData::from(vec![1u8; 40])) {
                Ok(()) => added += 1,
                Err(e) => {
                    assert_eq!(e.body().len(), 40);
                    break;
                }
            }
        }
        assert_eq!(b.len(), added);
        assert!(b.size() <= 200);
        let size = b.size();
        let payload = b.into_payload();
        assert_eq!(payload.len(), size);
        let m = Message::decode(payload).unwrap();
        let Body::Data(sections) = m.body else {
            panic!()
        };
        assert_eq!(sections.len(), added);
    }

    #[test]
    fn larger_than_link_is_an_error_naming_both() {
        let e = resolve_max_size(Some(2_000_000), 1_048_576).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("2000000") && e.to_string().contains("1048576"));
        assert_eq!(resolve_max_size(Some(1000), 1_048_576).unwrap(), 1000);
        assert_eq!(resolve_max_size(None, 1_048_576).unwrap(), 1_048_576);
    }

    #[test]
    fn keyed_batch_stamps_events_and_envelope() {
        let mut b = EventDataBatch::new(10_000, Some("k1"));
        let mut calc = BatchSizeCalculator::new(10_000, Some("k1"));
        assert_eq!(calc.size(), b.size());
        for i in 0..5 {
            let e = EventData::from(format!("e{i}"));
            assert!(calc.try_add(&e));
            b.try_add(e).unwrap();
            assert_eq!(calc.size(), b.size());
        }
        let m = Message::decode(b.into_payload()).unwrap();
        assert_eq!(
            m.message_annotation(PARTITION_KEY_ANNOTATION)
                .and_then(|v| v.as_str()),
            Some("k1")
        );
        let Body::Data(sections) = m.body else {
            panic!()
        };
        for s in sections {
            let e = EventData::from_message(Message::decode(s).unwrap());
            assert_eq!(e.partition_key(), Some("k1"));
        }
    }
}
