//! Exactly-once publishing (the idempotent producer): the options that seed a partition's
//! publishing state, the state a producer reports, and the stamping of a send's events.
//!
//! A producer with [`crate::ProducerOptions::enable_idempotent_partitions`] numbers every event
//! it sends to its partition; the service stores a number once, so a resend after a lost
//! acknowledgement is dropped instead of duplicated. Sends of such a producer go one at a
//! time (a later send must not overtake an earlier one that is being resent).

use crate::amqp::types::message::{Message, RawMessage};
use crate::batch::{envelope, BATCH_MESSAGE_FORMAT};
use crate::error::{Error, ErrorKind};
use crate::producer::SendPayload;
use crate::wire::idempotent::{
    next_sequence, stamp, stamp_entries, stamp_keys, PublishingState, Stamp,
};
use bytes::Bytes;

/// The starting state of an idempotent producer on one partition, e.g. what
/// [`crate::EventHubProducer::get_partition_publishing_properties`] reported before a
/// restart. All three values or none (none lets the service assign a fresh producer id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionPublishingOptions {
    /// The producer (group) id to publish as.
    pub producer_group_id: Option<i64>,
    /// The owner level (epoch); a higher one than the service knows takes the id over.
    pub owner_level: Option<i16>,
    /// The sequence number of the last event published under this id: the next event gets
    /// the following number (our reading of the service's `producer-sequence-number`).
    pub starting_sequence_number: Option<i32>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl PartitionPublishingOptions {
    /// Sets the producer (group) id.
    pub fn with_producer_group_id(mut self, value: i64) -> Self {
        self.producer_group_id = Some(value);
        self
    }

    /// Sets the owner level (epoch).
    pub fn with_owner_level(mut self, value: i16) -> Self {
        self.owner_level = Some(value);
        self
    }

    /// Sets the last sequence number published under the id.
    pub fn with_starting_sequence_number(mut self, value: i32) -> Self {
        self.starting_sequence_number = Some(value);
        self
    }

    /// The state to request at attach: `None` for none set, an error for only some.
    pub(crate) fn requested(&self) -> Result<Option<PublishingState>, Error> {
        match (
            self.producer_group_id,
            self.owner_level,
            self.starting_sequence_number,
        ) {
            (None, None, None) => Ok(None),
            (Some(producer_id), Some(owner_level), Some(last_sequence)) if last_sequence >= -1 => {
                Ok(Some(PublishingState {
                    producer_id,
                    owner_level,
                    last_sequence,
                }))
            }
            (Some(_), Some(_), Some(s)) => Err(Error::invalid_argument(format!(
                "starting sequence number {s} is negative"
            ))),
            _ => Err(Error::invalid_argument(
                "partition publishing options need a producer group id, an owner level and a \
                 starting sequence number together, or none of them",
            )),
        }
    }
}

/// An idempotent producer's state on its partition, as the service last confirmed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionPublishingProperties {
    /// Whether the producer publishes idempotently.
    pub is_idempotent_publishing_enabled: bool,
    /// The producer (group) id.
    pub producer_group_id: Option<i64>,
    /// The owner level (epoch).
    pub owner_level: Option<i16>,
    /// The sequence number of the last event the service accepted (`-1`: none yet).
    pub last_published_sequence_number: Option<i32>,
}

impl From<Option<PublishingState>> for PartitionPublishingProperties {
    fn from(s: Option<PublishingState>) -> Self {
        PartitionPublishingProperties {
            is_idempotent_publishing_enabled: true,
            producer_group_id: s.map(|s| s.producer_id),
            owner_level: s.map(|s| s.owner_level),
            last_published_sequence_number: s.map(|s| s.last_sequence),
        }
    }
}

/// A send's events, stamped and encoded: the transfer payload, its message format and the
/// last sequence number used.
pub(crate) struct Stamped {
    pub payload: Bytes,
    pub format: u32,
    pub last_sequence: i32,
}

/// Numbers the events of `payload` from the one after `state.last_sequence` and encodes them
/// (one event as a plain message, several as a batch with every inner event stamped, as the
/// official .NET client does). `None` for no events.
pub(crate) fn stamp_payload(
    payload: SendPayload,
    state: PublishingState,
    max: usize,
) -> Result<Option<Stamped>, Error> {
    let (events, env) = match payload {
        SendPayload::Event(e) => (vec![e.into_message()], None),
        SendPayload::Events(v) => (
            v.into_iter().map(|e| e.into_message()).collect(),
            Some(envelope(None)),
        ),
        SendPayload::Batch(b) => {
            if b.is_empty() {
                return Ok(None);
            }
            return stamp_batch_payload(b.into_payload(), state, max);
        }
    };
    stamp_messages(events, env, state, max)
}

/// [`stamp_payload`] for the encoded payload of a batch.
pub(crate) fn stamp_batch_payload(
    payload: Bytes,
    state: PublishingState,
    max: usize,
) -> Result<Option<Stamped>, Error> {
    let reread = |e: &dyn std::fmt::Display| {
        Error::new(ErrorKind::EventData, format!("re-reading the batch: {e}"))
    };
    let mut env = Message::decode(payload).map_err(|e| reread(&e))?;
    let events = crate::wire::batch::split_raw(&mut env).map_err(|e| reread(&e))?;
    if events.is_empty() {
        return Ok(None);
    }
    // Each event as it was encoded with the stamp appended to its own annotations, straight
    // into the new batch; one whose annotations already carry a stamp key goes through the
    // map, which replaces them.
    let keys = stamp_keys();
    let keys = keys.each_ref().map(|k| k.as_str());
    let mut seq = state.last_sequence;
    let mut parts = Vec::with_capacity(events.len());
    for raw in events {
        seq = next_sequence(seq);
        let st = Stamp {
            producer_id: state.producer_id,
            owner_level: state.owner_level,
            sequence: seq,
        };
        let carries_stamp = raw
            .message_annotations()
            .is_some_and(|a| a.contains_any_key(&keys));
        match raw.encoded_len_appending(&stamp_entries(st)) {
            Some(len) if !carries_stamp => parts.push(Part::Appended(raw, st, len)),
            _ => {
                let mut m = raw.decode().map_err(|e| reread(&e))?;
                stamp(&mut m, st);
                parts.push(Part::Encoded(m.to_bytes()));
            }
        }
    }
    let size = crate::wire::batch::built_len(&env, &parts, Part::len);
    if size > max {
        return Err(too_big(size, max));
    }
    let payload = crate::wire::batch::build_with(&env, &parts, Part::len, |p, buf| match p {
        Part::Appended(raw, st, _) => raw.encode_appending(&stamp_entries(*st), buf),
        Part::Encoded(b) => buf.extend_from_slice(b),
    });
    Ok(Some(Stamped {
        payload,
        format: BATCH_MESSAGE_FORMAT,
        last_sequence: seq,
    }))
}

/// One event of a re-stamped batch: written with the stamp appended (its size known), or
/// encoded whole.
enum Part {
    Appended(RawMessage, Stamp, usize),
    Encoded(Bytes),
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Appended(_, _, len) => *len,
            Part::Encoded(b) => b.len(),
        }
    }
}

fn too_big(size: usize, max: usize) -> Error {
    Error::new(
        ErrorKind::EventData,
        format!(
            "{size} bytes with the idempotent-producer stamps exceed the link's max-message-size of {max} bytes"
        ),
    )
}

/// Numbers and encodes `events`: one plain message without an envelope, a batch with one.
fn stamp_messages(
    events: Vec<Message>,
    env: Option<Message>,
    state: PublishingState,
    max: usize,
) -> Result<Option<Stamped>, Error> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut seq = state.last_sequence;
    let mut encoded = Vec::with_capacity(events.len());
    for mut m in events {
        seq = next_sequence(seq);
        stamp(
            &mut m,
            Stamp {
                producer_id: state.producer_id,
                owner_level: state.owner_level,
                sequence: seq,
            },
        );
        encoded.push(m.to_bytes());
    }
    let (payload, format) = match env {
        None => (encoded.swap_remove(0), 0),
        Some(env) => (
            crate::wire::batch::build(&env, &encoded),
            BATCH_MESSAGE_FORMAT,
        ),
    };
    if payload.len() > max {
        return Err(too_big(payload.len(), max));
    }
    Ok(Some(Stamped {
        payload,
        format,
        last_sequence: seq,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::Value;
    use crate::wire::idempotent::read_stamp;

    /// A batch is stamped event by event as the map would stamp it: own annotations kept,
    /// an old stamp replaced, numbers consecutive, the envelope's key kept.
    #[test]
    fn a_batch_is_stamped_in_place_as_the_map_stamps_it() {
        let plain = Message::with_data(Bytes::from_static(b"plain"));
        let mut own = Message::with_data(Bytes::from_static(b"own"));
        own.message_annotations_mut()
            .insert("custom", Value::Int(1));
        own.application_properties_mut().insert("p", "v");
        let mut old = Message::with_data(Bytes::from_static(b"stamped before"));
        stamp(
            &mut old,
            Stamp {
                producer_id: 1,
                owner_level: 1,
                sequence: 99,
            },
        );
        let events = [plain, own, old];
        let encoded: Vec<Bytes> = events
            .iter()
            .map(|m| Bytes::from(crate::amqp::codec::encode_to_vec(m)))
            .collect();
        let env = envelope(Some("key"));
        let payload = crate::wire::batch::build(&env, &encoded);
        let state = PublishingState {
            producer_id: 42,
            owner_level: 3,
            last_sequence: i32::MAX,
        };
        let got = stamp_batch_payload(payload, state, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(got.format, BATCH_MESSAGE_FORMAT);
        assert_eq!(got.last_sequence, 2, "wrapped from i32::MAX: 0, 1, 2");
        let batch = Message::decode(got.payload).unwrap();
        assert_eq!(
            batch.message_annotation(crate::wire::annotations::PARTITION_KEY),
            Some(&Value::from("key"))
        );
        let out = crate::wire::batch::split(&batch).unwrap();
        assert_eq!(out.len(), 3);
        for (i, (mut want, got)) in events.into_iter().zip(out).enumerate() {
            let st = Stamp {
                producer_id: 42,
                owner_level: 3,
                sequence: i as i32,
            };
            stamp(&mut want, st);
            assert_eq!(read_stamp(&got), Ok(Some(st)), "event {i}");
            assert_eq!(got, want, "event {i}");
        }
        // Too big for the link: refused, naming the sizes.
        let payload = crate::wire::batch::build(&env, &encoded);
        let err = stamp_batch_payload(payload, state, 100).err().unwrap();
        assert!(err.to_string().contains("max-message-size of 100"), "{err}");
    }
}
