//! The batch message: format [`BATCH_MESSAGE_FORMAT`], an envelope whose body is one `data`
//! section per event, each holding the event encoded as a complete AMQP message.
//!
//! The layout is the envelope's sections before the body ([`Message::encode_before_body`]),
//! one data section per event, then the envelope's footer ([`Message::encode_after_body`]), so
//! a writer can encode events straight into the transfer buffer and know every byte's size
//! before it writes it.

use crate::amqp::codec::{DecodeError, Decoder};
use crate::amqp::types::message::{
    expect_section, walk_sections, AnnotationKey, Body, EventLayout, MapKey, Message, RawMessage,
    MESSAGE_ANNOTATIONS_CODE, MESSAGE_ANNOTATIONS_NAME,
};
use crate::wire::annotations::PARTITION_KEY;
use bytes::{Bytes, BytesMut};

/// AMQP message format of an Event Hubs batch (Microsoft vendor code `0x800137`, version 0).
pub const BATCH_MESSAGE_FORMAT: u32 = 0x8001_3700;

/// The size and header of one event's `data` section: the per-event cost that batch size
/// accounting charges (5 or 8 bytes of overhead), written by the message encoder itself.
pub use crate::amqp::types::message::{data_section_len, write_data_section_header};

/// The whole batch payload: `envelope` around `events` (each already an encoded message).
pub fn build(envelope: &Message, events: &[Bytes]) -> Bytes {
    build_with(envelope, events, Bytes::len, |e, buf| {
        buf.extend_from_slice(e)
    })
}

/// The size of the batch payload [`build_with`] writes.
pub fn built_len<T>(envelope: &Message, events: &[T], len: impl Fn(&T) -> usize) -> usize {
    envelope.before_body_len()
        + events
            .iter()
            .map(|e| data_section_len(len(e)))
            .sum::<usize>()
        + envelope.after_body_len()
}

/// [`build`] for events that write themselves: `len` is the exact size `write` writes.
pub fn build_with<T>(
    envelope: &Message,
    events: &[T],
    len: impl Fn(&T) -> usize,
    write: impl Fn(&T, &mut BytesMut),
) -> Bytes {
    let mut buf = BytesMut::with_capacity(built_len(envelope, events, &len));
    envelope.encode_before_body(&mut buf);
    for e in events {
        write_data_section_header(&mut buf, len(e));
        write(e, &mut buf);
    }
    envelope.encode_after_body(&mut buf);
    buf.freeze()
}

/// Why a batch message could not be split into its events.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// The body is not made of data sections.
    #[error("batch body must be data sections")]
    NotData,
    /// One event did not decode.
    #[error("batch event {index}: {error}")]
    Event {
        /// Position of the event in the batch, from 0.
        index: usize,
        /// What the decoder said.
        error: DecodeError,
    },
}

/// The events of a batch message (decoded zero-copy from its data sections), in order.
pub fn split(batch: &Message) -> Result<Vec<Message>, SplitError> {
    let Body::Data(sections) = &batch.body else {
        return Err(SplitError::NotData);
    };
    each_event(sections.iter().cloned(), Message::decode)
}

/// The events of a batch message as [`RawMessage`]s: each checked and its annotations read,
/// the rest left encoded (for a relay that only rewrites annotations), in order. The body is
/// taken out of `batch` (each event keeps its data section, with no second reference made).
pub fn split_raw(batch: &mut Message) -> Result<Vec<RawMessage>, SplitError> {
    let Body::Data(sections) = std::mem::take(&mut batch.body) else {
        return Err(SplitError::NotData);
    };
    each_event(sections.into_iter(), RawMessage::scan)
}

/// Reads a batch payload in place: fills `events` with where each event's parts lie in it
/// ([`EventLayout::scan`]) and returns the envelope's partition key, building nothing per
/// event (for a relay that writes each event again with annotations of its own). `None` when
/// the batch is not of the usual shape this reads (a lax or malformed encoding, a body that
/// is not data sections, no events): the caller reads it with [`split_raw`], which accepts
/// or names the error. `events` is cleared first and its capacity kept for the next batch.
pub fn read_in_place<'a>(
    d: &'a mut Decoder,
    ranges: &mut Vec<std::ops::Range<usize>>,
    events: &mut Vec<EventLayout>,
) -> Option<Option<&'a str>> {
    ranges.clear();
    events.clear();
    let mut envelope_map = None;
    let mut null_section = false;
    walk_sections(
        d,
        |d| {
            expect_section(d, MESSAGE_ANNOTATIONS_CODE, MESSAGE_ANNOTATIONS_NAME)?;
            envelope_map = d.checked_map_range(AnnotationKey::is_own_key_code, "")?;
            Ok(())
        },
        |data| match data {
            Some(r) => ranges.push(r),
            None => null_section = true,
        },
    )
    .ok()?;
    if null_section || ranges.is_empty() {
        return None;
    }
    for r in ranges.iter() {
        events.push(EventLayout::scan(d, r.clone())?);
    }
    match envelope_map {
        None => Some(None),
        Some(map) => {
            d.set_window(map);
            if !d.seek_map_key(PARTITION_KEY) {
                return Some(None);
            }
            let key = d.text_range()?;
            let d: &'a Decoder = d;
            std::str::from_utf8(d.bytes_at(key)).ok().map(Some)
        }
    }
}

/// `read` applied to each data section, naming the event that fails.
fn each_event<T>(
    sections: impl ExactSizeIterator<Item = Bytes>,
    read: impl Fn(Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, SplitError> {
    sections
        .enumerate()
        .map(|(index, data)| read(data).map_err(|error| SplitError::Event { index, error }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{encode_to_vec, Encode, Value};
    use crate::amqp::types::message::{Footer, Header, MessageAnnotations};
    use crate::wire::annotations::PARTITION_KEY;

    fn event(i: usize) -> Message {
        let mut m = Message::with_data(Bytes::from(vec![i as u8; i * 40]));
        m.application_properties_mut().insert("i", i as i64);
        m
    }

    #[test]
    fn data_section_helpers_match_the_encoder() {
        for n in [0usize, 1, 255, 256, 70_000] {
            let body = Bytes::from(vec![0xabu8; n]);
            let m = Message::with_data(body.clone());
            let mut manual = Vec::new();
            write_data_section_header(&mut manual, n);
            assert_eq!(manual.len() + n, data_section_len(n));
            manual.extend_from_slice(&body);
            assert_eq!(encode_to_vec(&m), manual);
            let overhead = if n < 256 { 5 } else { 8 };
            assert_eq!(data_section_len(n), n + overhead);
        }
        let mut hdr = Vec::new();
        write_data_section_header(&mut hdr, 3);
        assert_eq!(hdr, [0x00, 0x53, 0x75, 0xa0, 3]);
    }

    #[test]
    fn nested_message_in_data_section() {
        let mut inner = event(3);
        inner.header_mut().durable = true;
        let inner_len = inner.encoded_len();
        let mut envelope = Vec::new();
        let mut ma = MessageAnnotations::default();
        ma.insert(PARTITION_KEY, "pk");
        ma.encode(&mut envelope);
        for _ in 0..2 {
            write_data_section_header(&mut envelope, inner_len);
            inner.encode(&mut envelope);
        }
        let expected_len = ma.encoded_len() + 2 * data_section_len(inner_len);
        assert_eq!(envelope.len(), expected_len);
        let outer = Message::decode(Bytes::from(envelope)).unwrap();
        let Body::Data(sections) = &outer.body else {
            panic!("data body expected");
        };
        assert_eq!(sections.len(), 2);
        for s in sections {
            assert_eq!(Message::decode(s.clone()).unwrap(), inner);
        }
    }

    #[test]
    fn build_then_split_gives_the_events_back() {
        let mut envelope = Message::default();
        envelope
            .message_annotations_mut()
            .insert(PARTITION_KEY, "k1");
        *envelope.header_mut() = Header::default();
        envelope.footer = Some(Footer::default());
        let events: Vec<Message> = (0..8).map(event).collect();
        let encoded: Vec<Bytes> = events.iter().map(|e| encode_to_vec(e).into()).collect();
        let payload = build(&envelope, &encoded);
        let expected = envelope.before_body_len()
            + encoded
                .iter()
                .map(|e| data_section_len(e.len()))
                .sum::<usize>()
            + envelope.after_body_len();
        assert_eq!(payload.len(), expected);
        let batch = Message::decode(payload).unwrap();
        assert_eq!(
            batch.message_annotation(PARTITION_KEY),
            Some(&Value::from("k1"))
        );
        assert!(batch.header.is_some() && batch.footer.is_some());
        assert_eq!(split(&batch).unwrap(), events);
        // An envelope with no sections and no events is an empty payload.
        assert!(build(&Message::default(), &[]).is_empty());
    }

    #[test]
    fn split_names_what_is_wrong() {
        let not_data = Message::with_value("x");
        assert_eq!(split(&not_data), Err(SplitError::NotData));
        assert_eq!(
            SplitError::NotData.to_string(),
            "batch body must be data sections"
        );
        let good: Bytes = encode_to_vec(&event(1)).into();
        let bad = Bytes::from_static(&[0x00, 0x53, 0x70, 0x45, 0x99]);
        let batch = Message {
            body: Body::Data(vec![good, bad].into()),
            ..Default::default()
        };
        let e = split(&batch).unwrap_err();
        assert!(matches!(e, SplitError::Event { index: 1, .. }), "{e:?}");
        assert!(e.to_string().starts_with("batch event 1: "), "{e}");
    }
}
