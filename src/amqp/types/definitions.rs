//! Small shared definitions: roles, settle modes, restricted-type aliases.

use crate::amqp::codec::{Decode, DecodeError, DecodeErrorKind, Decoder, Encode, Symbol, Value};
use bytes::BufMut;

/// `fields`: a map from symbols to values (connection/session/link properties, filter sets).
pub type Fields = Vec<(Symbol, Value)>;
/// Link handle.
pub type Handle = u32;
/// Transfer number / delivery number / sequence number (RFC 1982 serial arithmetic).
pub type SequenceNo = u32;
/// Delivery id (a session-scoped sequence number).
pub type DeliveryNumber = u32;
/// Milliseconds.
pub type Milliseconds = u32;

/// Which end of a link a frame's sender is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// The sending end (encoded `false`).
    #[default]
    Sender,
    /// The receiving end (encoded `true`).
    Receiver,
}

impl Role {
    /// The role at the other end of the link.
    pub fn opposite(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }
}

impl Encode for Role {
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        (*self == Role::Receiver).encode(buf)
    }
}

impl Decode for Role {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        Ok(if bool::decode(d)? {
            Role::Receiver
        } else {
            Role::Sender
        })
    }
}

/// When the sender settles deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SenderSettleMode {
    /// Always unsettled: the sender waits for the receiver's outcome.
    Unsettled,
    /// Always pre-settled (at most once).
    Settled,
    /// Either, per delivery (the default).
    #[default]
    Mixed,
}

/// When the receiver settles deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReceiverSettleMode {
    /// Settle as soon as the outcome is known (the default).
    #[default]
    First,
    /// Settle only after the sender has settled.
    Second,
}

macro_rules! ubyte_enum {
    ($ty:ty, $name:literal, { $($variant:path = $n:literal),* $(,)? }) => {
        impl Encode for $ty {
            fn encoded_len(&self) -> usize {
                2
            }
            fn encode<B: BufMut>(&self, buf: &mut B) {
                let n: u8 = match self { $($variant => $n),* };
                n.encode(buf)
            }
        }
        impl Decode for $ty {
            fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
                let at = d.offset();
                match u8::decode(d)? {
                    $($n => Ok($variant),)*
                    _ => Err(DecodeError {
                        offset: at,
                        kind: DecodeErrorKind::InvalidField { composite: "attach", field: $name },
                    }),
                }
            }
        }
    };
}

ubyte_enum!(SenderSettleMode, "snd-settle-mode", {
    SenderSettleMode::Unsettled = 0, SenderSettleMode::Settled = 1, SenderSettleMode::Mixed = 2,
});
ubyte_enum!(ReceiverSettleMode, "rcv-settle-mode", {
    ReceiverSettleMode::First = 0, ReceiverSettleMode::Second = 1,
});
