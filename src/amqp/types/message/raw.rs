//! A message kept in the encoding it arrived in, for a relay that changes only its message
//! annotations: the emulator stamps sequence number, offset and enqueued time on every event it
//! stores, and re-encoding a whole decoded message for that costs more than everything else the
//! ingest does.
//!
//! [`RawMessage::scan`] checks the whole message as [`Message::decode`] would refuse hostile
//! input (every value well formed, sections in spec order, map keys of the right type, the
//! header and properties decoded as their types), builds nothing but the message annotations,
//! and remembers where they lie. [`RawMessage::encode`] writes the bytes before them, the
//! (possibly changed) annotations, and the bytes after them: two copies of slices of the input
//! and one small section encoded.

use super::*;

/// A message as encoded, with its message annotations decoded (see the module docs).
#[derive(Clone, Debug)]
pub struct RawMessage {
    bytes: Bytes,
    /// End of the sections before the message annotations (header, delivery annotations).
    head_end: usize,
    /// Start of the sections after the message annotations (properties onward).
    tail_start: usize,
    annotations: Option<MessageAnnotations>,
}

/// Checks and consumes an annotations or application-properties section.
fn skip_map_section<K: MapKey>(d: &mut Decoder, kind: SectionKind) -> Result<(), DecodeError> {
    let (code, name) = SectionKind::ALL
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, code, name)| (*code, *name))
        .unwrap_or((0, "section"));
    expect_section(d, code, name)?;
    d.skip_map(K::is_accepted_key_code, K::EXPECTED)
}

/// Where a message's sections lie in the buffer it was walked in.
pub(crate) struct Walk {
    /// End of the sections before the message annotations (header, delivery annotations).
    pub(crate) head_end: usize,
    /// Start of the sections after the message annotations (properties onward).
    pub(crate) tail_start: usize,
}

/// Checks one whole message from the decoder's position to its end as [`RawMessage::scan`]
/// does: `annotations` reads the message-annotations section (its descriptor not yet
/// consumed) and `data` is given each data section's content as a range of the buffer
/// (`None` for a null binary).
pub(crate) fn walk_sections(
    d: &mut Decoder,
    mut annotations: impl FnMut(&mut Decoder) -> Result<(), DecodeError>,
    mut data: impl FnMut(Option<std::ops::Range<usize>>),
) -> Result<Walk, DecodeError> {
    let mut prev: Option<SectionKind> = None;
    let (mut head_end, mut tail_start) = (None, None);
    while !d.is_empty() {
        let at = d.offset();
        // A data section of a binary, the usual body and each event of a batch, is read in
        // place in one step.
        if prev.is_none_or(|p| SectionKind::Data.may_follow(p)) {
            if let Some(range) = d.eat_described_binary(DATA_CODE as u8) {
                if head_end.is_none() {
                    (head_end, tail_start) = (Some(at), Some(at));
                }
                data(Some(range));
                prev = Some(SectionKind::Data);
                continue;
            }
        }
        let kind = next_section(d, prev)?;
        if head_end.is_none() && kind.rank() > SectionKind::MessageAnnotations.rank() {
            (head_end, tail_start) = (Some(at), Some(at));
        }
        match kind {
            SectionKind::Header => {
                Header::decode(d)?;
            }
            SectionKind::DeliveryAnnotations | SectionKind::Footer => {
                skip_map_section::<AnnotationKey>(d, kind)?
            }
            SectionKind::MessageAnnotations => {
                annotations(d)?;
                (head_end, tail_start) = (Some(at), Some(d.offset()));
            }
            SectionKind::Properties => {
                Properties::decode(d)?;
            }
            SectionKind::ApplicationProperties => skip_map_section::<Str>(d, kind)?,
            SectionKind::Data => {
                expect_section(d, DATA_CODE, DATA_NAME)?;
                data(d.binary_range()?);
            }
            SectionKind::Sequence => {
                expect_section(d, AMQP_SEQUENCE_CODE, AMQP_SEQUENCE_NAME)?;
                let found = d.peek_u8()?;
                if !matches!(
                    found,
                    format_code::LIST0 | format_code::LIST8 | format_code::LIST32
                ) {
                    return Err(d.error(DecodeErrorKind::UnexpectedType {
                        expected: "list",
                        found,
                    }));
                }
                d.skip_value()?;
            }
            SectionKind::Value => {
                expect_section(d, AMQP_VALUE_CODE, AMQP_VALUE_NAME)?;
                d.skip_value()?;
            }
        }
        prev = Some(kind);
    }
    let end = d.offset();
    Ok(Walk {
        head_end: head_end.unwrap_or(end),
        tail_start: tail_start.unwrap_or(end),
    })
}

/// Where one event's parts lie in the buffer it was scanned in (a batch it came in), as
/// [`EventLayout::scan`] finds them: for a relay that writes the event again with annotations
/// of its own after the event's, building nothing per event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLayout {
    /// The whole event.
    pub range: std::ops::Range<usize>,
    /// End of the sections before the message annotations.
    pub head_end: usize,
    /// Start of the sections after the message annotations.
    pub tail_start: usize,
    /// Its message-annotations map (constructor onward; empty when it has none).
    pub annotations: std::ops::Range<usize>,
}

impl EventLayout {
    /// Checks the message in `range` of `d`'s buffer as [`RawMessage::scan`] would and finds
    /// its parts. `None` when the event is not of the usual shape this reads in place: its
    /// annotations have a key of a lax type, or some encoding is refused. The caller then
    /// scans it with [`RawMessage::scan`], which accepts the one and names the error of the
    /// other, so this never accepts what that refuses.
    pub fn scan(d: &mut Decoder, range: std::ops::Range<usize>) -> Option<EventLayout> {
        d.set_window(range.clone());
        // An event that is one data section (a batch's usual event) is known at a glance.
        let at = d.offset();
        if d.eat_described_binary(DATA_CODE as u8).is_some() && d.is_empty() {
            return Some(EventLayout {
                range,
                head_end: at,
                tail_start: at,
                annotations: 0..0,
            });
        }
        d.set_window(range.clone());
        let mut annotations = 0..0;
        let walk = walk_sections(
            d,
            |d| {
                expect_section(d, MESSAGE_ANNOTATIONS_CODE, MESSAGE_ANNOTATIONS_NAME)?;
                let map = d.checked_map_range(AnnotationKey::is_own_key_code, "")?;
                annotations = map.unwrap_or(0..0);
                Ok(())
            },
            |_| {},
        )
        .ok()?;
        Some(EventLayout {
            range,
            head_end: walk.head_end,
            tail_start: walk.tail_start,
            annotations,
        })
    }

    /// The entries of its message annotations as they came in `buf` (the buffer it was
    /// scanned in; after the map's size and count, empty when it has none), and their number
    /// of keys and values.
    pub fn own_entries<'a>(&self, buf: &'a [u8]) -> (&'a [u8], usize) {
        let map = buf.get(self.annotations.clone()).unwrap_or_default();
        match map {
            [format_code::MAP8, _, count, rest @ ..] => (rest, usize::from(*count)),
            [format_code::MAP32, _, _, _, _, a, b, c, d, rest @ ..] => {
                (rest, u32::from_be_bytes([*a, *b, *c, *d]) as usize)
            }
            _ => (&[], 0),
        }
    }

    /// The stamped event's size when its message-annotations section is replaced by one of
    /// `section_len` bytes (section prefix included).
    pub fn len_with_section(&self, section_len: usize) -> usize {
        // Saturating: the fields are public, and a hand-made layout must not panic here.
        self.head_end.saturating_sub(self.range.start)
            + section_len
            + self.range.end.saturating_sub(self.tail_start)
    }
}

impl RawMessage {
    /// Checks `bytes` as one whole message and finds its message annotations; refuses what
    /// [`Message::decode`] refuses for structure (see the module docs). The body and the
    /// application properties are checked for well-formedness, not built.
    pub fn scan(bytes: Bytes) -> Result<RawMessage, DecodeError> {
        let mut d = Decoder::new(bytes);
        let mut annotations = None;
        let walk = walk_sections(
            &mut d,
            |d| {
                annotations = Some(MessageAnnotations::decode(d)?);
                Ok(())
            },
            |_| {},
        )?;
        Ok(RawMessage {
            bytes: d.into_buffer(),
            head_end: walk.head_end,
            tail_start: walk.tail_start,
            annotations,
        })
    }

    /// The message annotations as decoded (or as changed since).
    pub fn message_annotations(&self) -> Option<&Annotations> {
        self.annotations.as_deref()
    }

    /// A message annotation by symbol key.
    pub fn message_annotation(&self, key: &str) -> Option<&Value> {
        self.annotations.as_ref()?.get(key)
    }

    /// The message annotations, created empty if absent.
    pub fn message_annotations_mut(&mut self) -> &mut Annotations {
        &mut self.annotations.get_or_insert_with(Default::default).0
    }

    /// Size of the message with `annotations` as its message annotations instead of its own.
    pub fn encoded_len_with(&self, annotations: &Annotations) -> usize {
        self.head_end
            + SECTION_PREFIX_LEN
            + annotations.encoded_len()
            + (self.bytes.len() - self.tail_start)
    }

    /// Writes the message with `annotations` as its message annotations instead of its own
    /// (exactly [`RawMessage::encoded_len_with`] bytes): a relay that stamps many messages
    /// reuses one map for all of them.
    pub fn encode_with<B: BufMut>(&self, annotations: &Annotations, buf: &mut B) {
        buf.put_slice(&self.bytes[..self.head_end]);
        write_section_prefix(buf, MESSAGE_ANNOTATIONS_CODE);
        annotations.encode(buf);
        buf.put_slice(&self.bytes[self.tail_start..]);
    }

    /// Size of the message with an encoded message-annotations section of `section_len`
    /// bytes (section prefix included) in place of its own annotations.
    pub fn encoded_len_with_section(&self, section_len: usize) -> usize {
        self.head_end + section_len + (self.bytes.len() - self.tail_start)
    }

    /// Writes the message with the section `write_section` writes in place of its own message
    /// annotations: for a relay that encodes its annotations itself, faster than through an
    /// [`Annotations`] map (the caller keeps the section to the size it gave
    /// [`RawMessage::encoded_len_with_section`]).
    pub fn encode_with_section<B: BufMut>(&self, buf: &mut B, write_section: impl FnOnce(&mut B)) {
        buf.put_slice(&self.bytes[..self.head_end]);
        write_section(buf);
        buf.put_slice(&self.bytes[self.tail_start..]);
    }

    /// Its own message annotations as they came (their entries' encoding and the number of
    /// keys and values; none when it has none), or `None` when they were changed since.
    fn own_entries(&self) -> Option<(&[u8], usize)> {
        match &self.annotations {
            None => Some((&[], 0)),
            Some(a) => a.raw_entries(),
        }
    }

    /// Size of the message written with [`RawMessage::encode_appending`], or `None` when its
    /// annotations were changed since it was scanned (write it through the map then).
    pub fn encoded_len_appending(&self, extra: &[(AnnotationKey, Value)]) -> Option<usize> {
        let (own, count) = self.own_entries()?;
        let (pairs, count) = appended(own, count, extra);
        let map = if count <= 0xff && pairs < 0xff {
            3 + pairs
        } else {
            9 + pairs
        };
        Some(self.head_end + SECTION_PREFIX_LEN + map + (self.bytes.len() - self.tail_start))
    }

    /// Writes the message with its own message annotations as they came followed by
    /// `extra`, with no map built (exactly [`RawMessage::encoded_len_appending`] bytes; nothing
    /// when that is `None`). No key of `extra` may be among its own: the caller checks
    /// ([`SectionMap::contains_any_key`]).
    pub fn encode_appending<B: BufMut>(&self, extra: &[(AnnotationKey, Value)], buf: &mut B) {
        let Some((own, count)) = self.own_entries() else {
            return;
        };
        let (pairs, count) = appended(own, count, extra);
        buf.put_slice(&self.bytes[..self.head_end]);
        write_section_prefix(buf, MESSAGE_ANNOTATIONS_CODE);
        if count <= 0xff && pairs < 0xff {
            buf.put_slice(&[format_code::MAP8, (pairs + 1) as u8, count as u8]);
        } else {
            buf.put_u8(format_code::MAP32);
            buf.put_u32((pairs + 4) as u32);
            buf.put_u32(count as u32);
        }
        buf.put_slice(own);
        for (k, v) in extra {
            k.encode(buf);
            v.encode(buf);
        }
        buf.put_slice(&self.bytes[self.tail_start..]);
    }

    /// The whole message decoded (the annotations as they are now).
    pub fn decode(&self) -> Result<Message, DecodeError> {
        let mut m = Message::decode(self.bytes.clone())?;
        m.message_annotations = self.annotations.clone();
        Ok(m)
    }
}

/// Bytes and count (keys and values) of a map made of `own` (`count` keys and values) and
/// `extra`.
fn appended(own: &[u8], count: usize, extra: &[(AnnotationKey, Value)]) -> (usize, usize) {
    let extra_len: usize = extra
        .iter()
        .map(|(k, v)| k.encoded_len() + v.encoded_len())
        .sum();
    (own.len() + extra_len, count + 2 * extra.len())
}

impl From<Message> for RawMessage {
    /// Encodes every section but the message annotations, which stay decoded.
    fn from(mut m: Message) -> Self {
        let annotations = m.message_annotations.take();
        let head_end =
            m.header.encoded_len_if_some() + m.delivery_annotations.encoded_len_if_some();
        RawMessage {
            bytes: m.to_bytes(),
            head_end,
            tail_start: head_end,
            annotations,
        }
    }
}

impl Encode for RawMessage {
    fn encoded_len(&self) -> usize {
        self.head_end
            + self.annotations.encoded_len_if_some()
            + (self.bytes.len() - self.tail_start)
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(&self.bytes[..self.head_end]);
        put_section(&self.annotations, buf);
        buf.put_slice(&self.bytes[self.tail_start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::encode_to_vec;
    use bytes::BytesMut;

    fn encoded(m: &Message) -> Bytes {
        Bytes::from(encode_to_vec(m))
    }

    fn rich() -> Message {
        let mut m = Message::with_data(Bytes::from_static(b"body"));
        m.header_mut().durable = true;
        m.delivery_annotations_mut().insert("x-da", 1i64);
        m.message_annotations_mut()
            .insert("x-opt-partition-key", "k");
        m.properties_mut().message_id = Some(MessageId::Ulong(7));
        m.application_properties_mut().insert("i", 5i64);
        m.footer = Some(Footer(Annotations::from(vec![(
            AnnotationKey::from("f"),
            Value::Bool(true),
        )])));
        m
    }

    #[test]
    fn stamping_in_place_is_what_re_encoding_the_decoded_message_gives() {
        let mut plain = Message::with_data(Bytes::from_static(b"plain"));
        plain.application_properties_mut().insert("a", "b");
        let mut before_only = Message::with_data(Bytes::from_static(b"x"));
        before_only.header_mut().durable = true;
        for m in [rich(), plain, before_only, Message::default()] {
            let mut raw = RawMessage::scan(encoded(&m)).expect("scans");
            let mut expected = m.clone();
            raw.message_annotations_mut()
                .insert("x-opt-sequence-number", 42i64);
            expected
                .message_annotations_mut()
                .insert("x-opt-sequence-number", 42i64);
            assert_eq!(Bytes::from(encode_to_vec(&raw)), encoded(&expected));
            assert_eq!(raw.decode().unwrap(), expected);
        }
    }

    #[test]
    fn the_annotations_are_read() {
        let raw = RawMessage::scan(encoded(&rich())).unwrap();
        assert_eq!(
            raw.message_annotation("x-opt-partition-key"),
            Some(&Value::String(Str::from("k")))
        );
    }

    #[test]
    fn malformed_sections_are_refused() {
        let good = encoded(&rich());
        // Every truncation of a valid message fails somewhere or is a valid prefix message;
        // none panics, and a cut inside a section is an error.
        for n in 0..good.len() {
            let cut = good.slice(..n);
            if let Ok(raw) = RawMessage::scan(cut.clone()) {
                assert!(
                    Message::decode(cut).is_ok(),
                    "scan accepted {n} bytes decode refuses"
                );
                drop(raw);
            }
        }
        // Application properties with an integer key.
        let mut bad = BytesMut::new();
        Message::with_data(Bytes::from_static(b"x")).encode(&mut bad);
        let mut m = Vec::new();
        m.extend_from_slice(&[0x00, 0x53, 0x74, 0xc1, 0x04, 0x02, 0x54, 0x01, 0x40]);
        m.extend_from_slice(&bad);
        let err = RawMessage::scan(Bytes::from(m.clone())).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::UnexpectedType { .. }),
            "{err:?}"
        );
        assert!(Message::decode(Bytes::from(m)).is_err());
    }
}
