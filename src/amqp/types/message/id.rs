//! Message ids and correlation ids: the four types AMQP allows.

use super::*;

/// A message id or correlation id: one of the four types AMQP allows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageId {
    /// A ulong id.
    Ulong(u64),
    /// A UUID id (what the Python client sends).
    Uuid(Uuid),
    /// A binary id.
    Binary(Bytes),
    /// A string id.
    String(Str),
}

impl From<u64> for MessageId {
    fn from(v: u64) -> Self {
        MessageId::Ulong(v)
    }
}
impl From<Uuid> for MessageId {
    fn from(v: Uuid) -> Self {
        MessageId::Uuid(v)
    }
}
impl From<Bytes> for MessageId {
    fn from(v: Bytes) -> Self {
        MessageId::Binary(v)
    }
}
impl From<Str> for MessageId {
    fn from(v: Str) -> Self {
        MessageId::String(v)
    }
}
impl From<&str> for MessageId {
    fn from(v: &str) -> Self {
        MessageId::String(v.into())
    }
}
impl From<String> for MessageId {
    fn from(v: String) -> Self {
        MessageId::String(v.into())
    }
}

impl From<MessageId> for Value {
    fn from(id: MessageId) -> Self {
        match id {
            MessageId::Ulong(v) => Value::Ulong(v),
            MessageId::Uuid(v) => Value::Uuid(v),
            MessageId::Binary(v) => Value::Binary(v),
            MessageId::String(v) => Value::String(v),
        }
    }
}

impl Encode for MessageId {
    fn encoded_len(&self) -> usize {
        match self {
            MessageId::Ulong(v) => v.encoded_len(),
            MessageId::Uuid(v) => v.encoded_len(),
            MessageId::Binary(v) => v.encoded_len(),
            MessageId::String(v) => v.encoded_len(),
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            MessageId::Ulong(v) => v.encode(buf),
            MessageId::Uuid(v) => v.encode(buf),
            MessageId::Binary(v) => v.encode(buf),
            MessageId::String(v) => v.encode(buf),
        }
    }
}

impl Decode for MessageId {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let at = d.offset();
        let found = d.peek_u8()?;
        match d.read_value()? {
            Value::Ulong(v) => Ok(MessageId::Ulong(v)),
            Value::Uuid(v) => Ok(MessageId::Uuid(v)),
            Value::Binary(v) => Ok(MessageId::Binary(v)),
            Value::String(v) => Ok(MessageId::String(v)),
            _ => Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedType {
                    expected: "message id (ulong, uuid, binary or string)",
                    found,
                },
            }),
        }
    }
}
