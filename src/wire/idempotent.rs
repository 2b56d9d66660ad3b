//! Idempotent publishing state on the wire: the three link properties a sender attaches with
//! (and the service answers with), and the same three keys stamped on every event as message
//! annotations. Keys are in [`crate::wire::link_props`].
//!
//! Sequence numbers live in `0..=i32::MAX` and wrap from `i32::MAX` to 0; `-1` as the last
//! sequence number means "nothing published yet" (the first event then gets 0).

use crate::amqp::codec::{Decode, Decoder, Symbol, Value};
use crate::amqp::types::definitions::Fields;
use crate::amqp::types::message::{AnnotationKey, Annotations, Message};
use crate::wire::link_props::{PRODUCER_EPOCH, PRODUCER_ID, PRODUCER_SEQUENCE_NUMBER};

/// A producer's state on one partition: its id (producer group), owner level (epoch) and the
/// sequence number of the last event the service accepted from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublishingState {
    /// The producer (group) id the service assigned or was given.
    pub producer_id: i64,
    /// The owner level (epoch); a higher one takes the producer id over.
    pub owner_level: i16,
    /// The last sequence number published (`-1` for none yet).
    pub last_sequence: i32,
}

/// What one event is stamped with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The producer id.
    pub producer_id: i64,
    /// The owner level (epoch).
    pub owner_level: i16,
    /// This event's sequence number.
    pub sequence: i32,
}

/// Sequence numbers span `0..=i32::MAX`: 2^31 values.
const SPAN: i64 = 1 << 31;

/// The sequence number after `seq`: wraps from `i32::MAX` (and from "none", `-1`) to 0.
pub fn next_sequence(seq: i32) -> i32 {
    if seq < 0 || seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// Steps forward from `from` to `to` in the wrapping sequence space (both in `0..=i32::MAX`).
pub fn distance(from: i32, to: i32) -> u32 {
    u32::try_from((i64::from(to) - i64::from(from)).rem_euclid(SPAN)).unwrap_or(u32::MAX)
}

/// The sender's link properties: the requested state, or the three keys with null values,
/// which ask the service to assign a state (all three or none, never some).
pub fn link_properties(requested: Option<&PublishingState>) -> Fields {
    match requested {
        Some(s) => vec![
            (PRODUCER_ID, Value::Long(s.producer_id)),
            (PRODUCER_EPOCH, Value::Short(s.owner_level)),
            (PRODUCER_SEQUENCE_NUMBER, Value::Int(s.last_sequence)),
        ],
        None => vec![
            (PRODUCER_ID, Value::Null),
            (PRODUCER_EPOCH, Value::Null),
            (PRODUCER_SEQUENCE_NUMBER, Value::Null),
        ],
    }
}

fn field<'a>(props: &'a Fields, key: &Symbol) -> Option<&'a Value> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .filter(|v| !matches!(v, Value::Null))
}

/// The state in an attach's properties: `Ok(None)` when none of the three keys has a value,
/// an error naming the problem when only some do or one is out of its type's range.
pub fn read_link_properties(props: Option<&Fields>) -> Result<Option<PublishingState>, String> {
    let Some(props) = props else {
        return Ok(None);
    };
    let id = field(props, &PRODUCER_ID);
    let epoch = field(props, &PRODUCER_EPOCH);
    let seq = field(props, &PRODUCER_SEQUENCE_NUMBER);
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => Ok(Some(PublishingState {
            producer_id: integer(id, &PRODUCER_ID)?,
            owner_level: integer(epoch, &PRODUCER_EPOCH)?,
            last_sequence: integer(seq, &PRODUCER_SEQUENCE_NUMBER)?,
        })),
        _ => Err(format!(
            "idempotent producer state needs all of {}, {} and {}, or none of them",
            PRODUCER_ID.as_str(),
            PRODUCER_EPOCH.as_str(),
            PRODUCER_SEQUENCE_NUMBER.as_str()
        )),
    }
}

fn integer<T: TryFrom<i64>>(v: &Value, key: &Symbol) -> Result<T, String> {
    v.as_i64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{} has an unusable value {v:?}", key.as_str()))
}

/// Stamps `message` with the three idempotent-producer annotations.
pub fn stamp(message: &mut Message, stamp: Stamp) {
    let a = message.message_annotations_mut();
    for (k, v) in stamp_entries(stamp) {
        a.insert(k, v);
    }
}

/// The stamp as the three annotation entries [`stamp`] sets, for a writer that appends them
/// to an event's own annotations as they came.
pub fn stamp_entries(stamp: Stamp) -> [(AnnotationKey, Value); 3] {
    [
        (PRODUCER_ID.into(), Value::Long(stamp.producer_id)),
        (PRODUCER_EPOCH.into(), Value::Short(stamp.owner_level)),
        (PRODUCER_SEQUENCE_NUMBER.into(), Value::Int(stamp.sequence)),
    ]
}

/// The three annotation keys of a stamp.
pub fn stamp_keys() -> [Symbol; 3] {
    [PRODUCER_ID, PRODUCER_EPOCH, PRODUCER_SEQUENCE_NUMBER]
}

/// The stamp on `message`: `Ok(None)` when it carries none of the three annotations.
pub fn read_stamp(message: &Message) -> Result<Option<Stamp>, String> {
    read_stamp_in(message.message_annotations.as_deref())
}

/// The stamp in a message's annotations ([`read_stamp`] for a message not decoded whole).
pub fn read_stamp_in(annotations: Option<&Annotations>) -> Result<Option<Stamp>, String> {
    // Read in place when the values are numbers, as they should be; anything else is read
    // from the built map, for its error.
    let get = |k: &Symbol| {
        let a = annotations?;
        a.get_scalar(k.as_str())
            .or_else(|| a.get(k.as_str()).cloned())
            .filter(|v| !matches!(v, Value::Null))
    };
    match (
        get(&PRODUCER_ID),
        get(&PRODUCER_EPOCH),
        get(&PRODUCER_SEQUENCE_NUMBER),
    ) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => Ok(Some(Stamp {
            producer_id: integer(&id, &PRODUCER_ID)?,
            owner_level: integer(&epoch, &PRODUCER_EPOCH)?,
            sequence: integer::<i32>(&seq, &PRODUCER_SEQUENCE_NUMBER).and_then(|s| {
                if s < 0 {
                    Err(format!("{} is negative", PRODUCER_SEQUENCE_NUMBER.as_str()))
                } else {
                    Ok(s)
                }
            })?,
        })),
        _ => Err("an event carries only some of the idempotent-producer annotations".into()),
    }
}

/// The stamp of an event whose message-annotations map (constructor onward) lies at `map` in
/// `d`'s buffer, read in place: for a batch read without decoding its events. `None` unless
/// all three annotations are there as integers in range; [`read_stamp_in`] then reads the
/// event decoded, and names what is wrong.
pub fn read_stamp_at(d: &mut Decoder, map: std::ops::Range<usize>) -> Option<Stamp> {
    d.set_window(map.clone());
    let [id, epoch, seq] = d.map_value_positions([
        PRODUCER_ID.as_str(),
        PRODUCER_EPOCH.as_str(),
        PRODUCER_SEQUENCE_NUMBER.as_str(),
    ])?;
    let mut value = |at: Option<usize>| {
        d.set_window(at?..map.end);
        Value::decode(d).ok()?.as_i64()
    };
    let producer_id = value(id)?;
    let owner_level = i16::try_from(value(epoch)?).ok()?;
    let sequence = i32::try_from(value(seq)?).ok().filter(|&s| s >= 0)?;
    Some(Stamp {
        producer_id,
        owner_level,
        sequence,
    })
}

/// The most bytes [`stamp`] can add to an encoded message (widest values, a new annotations
/// section, and a data section header that may grow from its short to its long form): what
/// a batch for an idempotent producer keeps free per event.
pub fn max_stamp_len() -> usize {
    use crate::amqp::codec::Encode;
    let mut m = Message::with_data(bytes::Bytes::new());
    let before = m.encoded_len();
    stamp(
        &mut m,
        Stamp {
            producer_id: i64::MAX,
            owner_level: i16::MAX,
            sequence: i32::MAX,
        },
    );
    m.encoded_len() - before + 16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read in place, a stamp is what the decoded annotations give, and anything unusual
    /// (missing, null, out of range, not a number) is left to [`read_stamp_in`].
    #[test]
    fn stamps_read_in_place_are_the_decoded_ones_or_none() {
        use crate::amqp::codec::Encode;
        let stamp_of = |entries: &[(&Symbol, Value)]| {
            let mut a = Annotations::default();
            a.insert("x-opt-other", Value::Long(1));
            for (k, v) in entries {
                a.insert(k.as_str(), v.clone());
            }
            let mut buf = bytes::BytesMut::new();
            a.encode(&mut buf);
            let bytes = buf.freeze();
            let len = bytes.len();
            let decoded = Annotations::decode(&mut Decoder::new(bytes.clone())).unwrap();
            let general = read_stamp_in(Some(&decoded));
            (read_stamp_at(&mut Decoder::new(bytes), 0..len), general)
        };
        let (id, epoch, seq) = (&PRODUCER_ID, &PRODUCER_EPOCH, &PRODUCER_SEQUENCE_NUMBER);
        let (got, general) = stamp_of(&[
            (id, Value::Long(5)),
            (epoch, Value::Short(2)),
            (seq, Value::Int(77)),
        ]);
        assert_eq!(got, Some(general.unwrap().unwrap()));
        for unusual in [
            vec![(id, Value::Long(5)), (epoch, Value::Short(2))],
            vec![
                (id, Value::Long(5)),
                (epoch, Value::Short(2)),
                (seq, Value::Null),
            ],
            vec![
                (id, Value::Long(5)),
                (epoch, Value::Long(1 << 20)),
                (seq, Value::Int(1)),
            ],
            vec![
                (id, Value::Long(5)),
                (epoch, Value::Short(2)),
                (seq, Value::Int(-1)),
            ],
            vec![
                (id, Value::from("5")),
                (epoch, Value::Short(2)),
                (seq, Value::Int(1)),
            ],
        ] {
            let (got, general) = stamp_of(&unusual);
            assert_eq!(got, None, "{unusual:?}");
            assert!(!matches!(general, Ok(Some(_))), "{unusual:?}");
        }
    }
    use bytes::Bytes;

    #[test]
    fn sequences_wrap_to_zero() {
        assert_eq!(next_sequence(-1), 0);
        assert_eq!(next_sequence(0), 1);
        assert_eq!(next_sequence(i32::MAX), 0);
        assert_eq!(distance(i32::MAX, 0), 1);
        assert_eq!(distance(5, 5), 0);
        assert_eq!(distance(6, 5), (1u32 << 31) - 1);
    }

    #[test]
    fn link_state_is_all_three_or_none() {
        let s = PublishingState {
            producer_id: 42,
            owner_level: 3,
            last_sequence: 9,
        };
        assert_eq!(
            read_link_properties(Some(&link_properties(Some(&s)))),
            Ok(Some(s))
        );
        assert_eq!(read_link_properties(Some(&link_properties(None))), Ok(None));
        assert_eq!(read_link_properties(None), Ok(None));
        let partial: Fields = vec![(PRODUCER_ID, Value::Long(1))];
        assert!(read_link_properties(Some(&partial)).is_err());
        let wide: Fields = vec![
            (PRODUCER_ID, Value::Long(1)),
            (PRODUCER_EPOCH, Value::Long(1 << 20)),
            (PRODUCER_SEQUENCE_NUMBER, Value::Int(0)),
        ];
        assert!(read_link_properties(Some(&wide)).is_err());
    }

    #[test]
    fn stamps_round_trip_and_fit_the_reserve() {
        use crate::amqp::codec::Encode;
        let mut m = Message::with_data(Bytes::from_static(b"x"));
        assert_eq!(read_stamp(&m), Ok(None));
        let before = m.encoded_len();
        let st = Stamp {
            producer_id: i64::MAX,
            owner_level: -1,
            sequence: 7,
        };
        stamp(&mut m, st);
        assert!(m.encoded_len() - before <= max_stamp_len());
        let back = Message::decode(Bytes::from(crate::amqp::codec::encode_to_vec(&m))).unwrap();
        assert_eq!(read_stamp(&back), Ok(Some(st)));
        m.message_annotations_mut()
            .insert(PRODUCER_SEQUENCE_NUMBER, Value::Int(-3));
        assert!(read_stamp(&m).is_err());
    }
}
