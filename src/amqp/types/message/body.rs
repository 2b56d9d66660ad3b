//! The body of a message: `data`, `amqp-sequence` or `amqp-value` sections.

use super::*;

/// Encoded size of a `data` section holding `n` bytes: `00 53 75` + vbin8/vbin32 + the bytes.
pub fn data_section_len(n: usize) -> usize {
    SECTION_PREFIX_LEN + if n <= 0xff { 2 + n } else { 5 + n }
}

/// Writes the header of a `data` section whose `n` content bytes follow. `n` must fit in a
/// u32 (frames are far smaller).
pub fn write_data_section_header<B: BufMut>(buf: &mut B, n: usize) {
    write_section_prefix(buf, DATA_CODE);
    if n <= 0xff {
        buf.put_u8(0xa0);
        buf.put_u8(n as u8);
    } else {
        buf.put_u8(0xb0);
        buf.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// The body of a message: one kind of body section.
///
/// On the wire an empty `Data` and `Sequence(vec![])` are the same as `Empty` (no sections), so
/// they decode as `Empty`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Body {
    /// One or more `data` sections (Event Hubs events use exactly one).
    Data(DataSections),
    /// One or more `amqp-sequence` sections.
    Sequence(Vec<Vec<Value>>),
    /// One `amqp-value` section.
    Value(Value),
    /// No body section.
    #[default]
    Empty,
}

impl Body {
    /// The bytes of the only `data` section, when the body is exactly one.
    pub fn single_data(&self) -> Option<&Bytes> {
        match self {
            Body::Data(v) if v.len() == 1 => v.first(),
            _ => None,
        }
    }

    /// True when no body section is written.
    pub fn is_empty(&self) -> bool {
        match self {
            Body::Data(v) => v.is_empty(),
            Body::Sequence(v) => v.is_empty(),
            Body::Value(_) => false,
            Body::Empty => true,
        }
    }
}

fn sequence_section_len(items: &[Value]) -> usize {
    let content = items.iter().map(Encode::encoded_len).sum();
    composite_len(AMQP_SEQUENCE_CODE, items.len(), content)
}

impl Encode for Body {
    fn encoded_len(&self) -> usize {
        match self {
            Body::Data(sections) => sections.iter().map(|b| data_section_len(b.len())).sum(),
            Body::Sequence(sections) => sections.iter().map(|s| sequence_section_len(s)).sum(),
            Body::Value(v) => SECTION_PREFIX_LEN + v.encoded_len(),
            Body::Empty => 0,
        }
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Body::Data(sections) => {
                for b in sections {
                    write_data_section_header(buf, b.len());
                    buf.put_slice(b);
                }
            }
            Body::Sequence(sections) => {
                for items in sections {
                    let content = items.iter().map(Encode::encoded_len).sum();
                    write_composite_header(buf, AMQP_SEQUENCE_CODE, items.len(), content);
                    for item in items {
                        item.encode(buf);
                    }
                }
            }
            Body::Value(v) => {
                write_section_prefix(buf, AMQP_VALUE_CODE);
                v.encode(buf);
            }
            Body::Empty => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// message
