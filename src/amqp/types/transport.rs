//! The nine AMQP transport performatives and their union, [`Performative`].

use super::definitions::{
    DeliveryNumber, Fields, Handle, Milliseconds, ReceiverSettleMode, Role, SenderSettleMode,
    SequenceNo,
};
use super::error::AmqpError;
use super::messaging::{DeliveryState, Source, Target};
use crate::amqp::codec::{
    composite_type, Decode, DecodeError, DecodeErrorKind, Decoder, Descriptor, Encode, Str, Symbol,
    Value,
};
use bytes::{BufMut, Bytes};

composite_type! {
    /// `open`: the first frame of a connection, with its limits.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Open(0x10, "amqp:open:list") {
        /// The sender's container id.
        pub container_id: Str => required("container-id"),
        /// The virtual host the connection is for.
        pub hostname: Option<Str> => optional,
        /// Largest frame the sender accepts.
        pub max_frame_size: u32 => or(u32::MAX),
        /// Highest channel number the sender accepts.
        pub channel_max: u16 => or(u16::MAX),
        /// Longest silence the sender tolerates, in milliseconds.
        pub idle_time_out: Option<Milliseconds> => optional,
        /// Locales the sender may write in.
        pub outgoing_locales: Option<Vec<Symbol>> => optional,
        /// Locales the sender wants to read.
        pub incoming_locales: Option<Vec<Symbol>> => optional,
        /// Extensions the sender supports.
        pub offered_capabilities: Option<Vec<Symbol>> => optional,
        /// Extensions the sender can use if the peer supports them.
        pub desired_capabilities: Option<Vec<Symbol>> => optional,
        /// Connection properties.
        pub properties: Option<Fields> => optional,
    }
}

impl Default for Open {
    fn default() -> Self {
        Open {
            container_id: Str::default(),
            hostname: None,
            max_frame_size: u32::MAX,
            channel_max: u16::MAX,
            idle_time_out: None,
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }
}

composite_type! {
    /// `begin`: opens a session on a channel.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Begin(0x11, "amqp:begin:list") {
        /// The initiator's channel, when this begin answers one.
        pub remote_channel: Option<u16> => optional,
        /// Transfer id of the sender's next transfer frame.
        pub next_outgoing_id: SequenceNo => required("next-outgoing-id"),
        /// Transfer frames the sender can take in.
        pub incoming_window: u32 => required("incoming-window"),
        /// Transfer frames the sender may send.
        pub outgoing_window: u32 => required("outgoing-window"),
        /// Highest link handle the sender accepts.
        pub handle_max: Handle => or(u32::MAX),
        /// Extensions the sender supports.
        pub offered_capabilities: Option<Vec<Symbol>> => optional,
        /// Extensions the sender can use.
        pub desired_capabilities: Option<Vec<Symbol>> => optional,
        /// Session properties.
        pub properties: Option<Fields> => optional,
    }
}

composite_type! {
    /// `attach`: attaches a link end to a session.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Attach(0x12, "amqp:attach:list") {
        /// Link name, unique per direction between two containers.
        pub name: Str => required("name"),
        /// The sender's handle for the link.
        pub handle: Handle => required("handle"),
        /// Role of the frame's sender on the link.
        pub role: Role => required("role"),
        /// Sender settlement mode.
        pub snd_settle_mode: SenderSettleMode => or_default,
        /// Receiver settlement mode.
        pub rcv_settle_mode: ReceiverSettleMode => or_default,
        /// Where messages come from.
        pub source: Option<Box<Source>> => optional,
        /// Where messages go.
        pub target: Option<Box<Target>> => optional,
        /// Unsettled delivery state (delivery-tag → state), kept raw.
        pub unsettled: Option<Value> => optional,
        /// True when `unsettled` is incomplete.
        pub incomplete_unsettled: bool => or(false),
        /// The sender's delivery count when the link attaches (senders only).
        pub initial_delivery_count: Option<SequenceNo> => optional,
        /// Largest message the frame's sender accepts; `None` or 0 means no limit.
        pub max_message_size: Option<u64> => optional,
        /// Extensions the sender supports.
        pub offered_capabilities: Option<Vec<Symbol>> => optional,
        /// Extensions the sender can use.
        pub desired_capabilities: Option<Vec<Symbol>> => optional,
        /// Link properties.
        pub properties: Option<Fields> => optional,
    }
}

composite_type! {
    /// `flow`: session windows and, with a handle, link credit.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Flow(0x13, "amqp:flow:list") {
        /// The next transfer id the sender expects (absent before the peer's begin was seen).
        pub next_incoming_id: Option<SequenceNo> => optional,
        /// Transfer frames the sender can take in.
        pub incoming_window: u32 => required("incoming-window"),
        /// Transfer id of the sender's next transfer frame.
        pub next_outgoing_id: SequenceNo => required("next-outgoing-id"),
        /// Transfer frames the sender may send.
        pub outgoing_window: u32 => required("outgoing-window"),
        /// The link this flow is about; `None` for a session-only flow.
        pub handle: Option<Handle> => optional,
        /// The link's delivery count as the sender of this frame knows it.
        pub delivery_count: Option<SequenceNo> => optional,
        /// Link credit.
        pub link_credit: Option<u32> => optional,
        /// Messages the link's sender could send.
        pub available: Option<u32> => optional,
        /// Asks the sender to use up its credit.
        pub drain: bool => or(false),
        /// Asks the peer to answer with its own flow.
        pub echo: bool => or(false),
        /// Link state properties.
        pub properties: Option<Fields> => optional,
    }
}

composite_type! {
    /// `transfer`: one frame of a delivery; the message bytes follow the performative.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Transfer(0x14, "amqp:transfer:list") {
        /// The link.
        pub handle: Handle => required("handle"),
        /// Session-scoped delivery id (first frame of a delivery).
        pub delivery_id: Option<DeliveryNumber> => optional,
        /// Link-scoped delivery tag, at most 32 bytes (first frame).
        pub delivery_tag: Option<Bytes> => optional,
        /// Message format; 0 is a standard AMQP message (first frame).
        pub message_format: Option<u32> => optional,
        /// Whether the sender has settled the delivery.
        pub settled: Option<bool> => optional,
        /// More frames of this delivery follow.
        pub more: bool => or(false),
        /// Per-delivery receiver settle mode.
        pub rcv_settle_mode: Option<ReceiverSettleMode> => optional,
        /// The sender's view of the delivery state.
        pub state: Option<DeliveryState> => optional,
        /// Resumes a delivery from an earlier link.
        pub resume: bool => or(false),
        /// Discards the delivery.
        pub aborted: bool => or(false),
        /// The peer may delay its answer.
        pub batchable: bool => or(false),
    }
}

composite_type! {
    /// `disposition`: outcome and settlement of a range of deliveries.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Disposition(0x15, "amqp:disposition:list") {
        /// Role of the frame's sender.
        pub role: Role => required("role"),
        /// First delivery id of the range.
        pub first: DeliveryNumber => required("first"),
        /// Last delivery id of the range, inclusive; `None` means `first`.
        pub last: Option<DeliveryNumber> => optional,
        /// Whether the deliveries are settled.
        pub settled: bool => or(false),
        /// The outcome or state of the deliveries.
        pub state: Option<DeliveryState> => optional,
        /// The peer may delay its answer.
        pub batchable: bool => or(false),
    }
}

composite_type! {
    /// `detach`: detaches (and with `closed`, destroys) a link.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Detach(0x16, "amqp:detach:list") {
        /// The link.
        pub handle: Handle => required("handle"),
        /// True to close the link rather than only detach it.
        pub closed: bool => or(false),
        /// Why, when it is an error.
        pub error: Option<AmqpError> => optional,
    }
}

composite_type! {
    /// `end`: ends a session.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct End(0x17, "amqp:end:list") {
        /// Why, when it is an error.
        pub error: Option<AmqpError> => optional,
    }
}

composite_type! {
    /// `close`: closes the connection.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Close(0x18, "amqp:close:list") {
        /// Why, when it is an error.
        pub error: Option<AmqpError> => optional,
    }
}

/// Any transport performative.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Performative {
    Open(Open),
    Begin(Begin),
    Attach(Attach),
    Flow(Flow),
    Transfer(Transfer),
    Disposition(Disposition),
    Detach(Detach),
    End(End),
    Close(Close),
}

impl Performative {
    /// The performative's name as in the spec, for tracing.
    pub fn name(&self) -> &'static str {
        match self {
            Performative::Open(_) => "open",
            Performative::Begin(_) => "begin",
            Performative::Attach(_) => "attach",
            Performative::Flow(_) => "flow",
            Performative::Transfer(_) => "transfer",
            Performative::Disposition(_) => "disposition",
            Performative::Detach(_) => "detach",
            Performative::End(_) => "end",
            Performative::Close(_) => "close",
        }
    }
}

const NAMES: [(u64, &str); 9] = [
    (Open::CODE, Open::NAME),
    (Begin::CODE, Begin::NAME),
    (Attach::CODE, Attach::NAME),
    (Flow::CODE, Flow::NAME),
    (Transfer::CODE, Transfer::NAME),
    (Disposition::CODE, Disposition::NAME),
    (Detach::CODE, Detach::NAME),
    (End::CODE, End::NAME),
    (Close::CODE, Close::NAME),
];

impl Decode for Performative {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        // Performatives are sent with small numeric descriptors (0x10..=0x18), which index the
        // table directly; any other form is read and looked up by name.
        let known = d
            .peek_descriptor_code()
            .and_then(|c| c.checked_sub(Open::CODE))
            .and_then(|i| NAMES.get(usize::try_from(i).ok()?))
            .filter(|&&(code, _)| d.eat_small_descriptor(code));
        let (code, name) = match known {
            Some(&entry) => entry,
            None => {
                let at = d.offset();
                let descriptor = d.read_descriptor()?;
                match NAMES.iter().find(|(c, n)| descriptor.matches(*c, n)) {
                    Some(&entry) => entry,
                    None => {
                        return Err(DecodeError {
                            offset: at,
                            kind: DecodeErrorKind::UnexpectedDescriptor {
                                expected: "a transport performative",
                                found: describe(&descriptor),
                            },
                        })
                    }
                }
            }
        };
        let f = d.read_list(name)?;
        Ok(match code {
            Open::CODE => Performative::Open(Open::from_fields(f)?),
            Begin::CODE => Performative::Begin(Begin::from_fields(f)?),
            Attach::CODE => Performative::Attach(Attach::from_fields(f)?),
            Flow::CODE => Performative::Flow(Flow::from_fields(f)?),
            Transfer::CODE => Performative::Transfer(Transfer::from_fields(f)?),
            Disposition::CODE => Performative::Disposition(Disposition::from_fields(f)?),
            Detach::CODE => Performative::Detach(Detach::from_fields(f)?),
            End::CODE => Performative::End(End::from_fields(f)?),
            _ => Performative::Close(Close::from_fields(f)?),
        })
    }
}

fn describe(d: &Descriptor) -> String {
    match d {
        Descriptor::Code(c) => format!("0x{c:016x}"),
        Descriptor::Symbol(s) => s.as_str().to_owned(),
    }
}

impl Encode for Performative {
    fn encoded_len(&self) -> usize {
        match self {
            Performative::Open(p) => p.encoded_len(),
            Performative::Begin(p) => p.encoded_len(),
            Performative::Attach(p) => p.encoded_len(),
            Performative::Flow(p) => p.encoded_len(),
            Performative::Transfer(p) => p.encoded_len(),
            Performative::Disposition(p) => p.encoded_len(),
            Performative::Detach(p) => p.encoded_len(),
            Performative::End(p) => p.encoded_len(),
            Performative::Close(p) => p.encoded_len(),
        }
    }

    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            Performative::Open(p) => p.encode(buf),
            Performative::Begin(p) => p.encode(buf),
            Performative::Attach(p) => p.encode(buf),
            Performative::Flow(p) => p.encode(buf),
            Performative::Transfer(p) => p.encode(buf),
            Performative::Disposition(p) => p.encode(buf),
            Performative::Detach(p) => p.encode(buf),
            Performative::End(p) => p.encode(buf),
            Performative::Close(p) => p.encode(buf),
        }
    }
}

macro_rules! into_performative {
    ($($t:ident),*) => {
        $(impl From<$t> for Performative {
            fn from(p: $t) -> Self {
                Performative::$t(p)
            }
        })*
    };
}

into_performative!(
    Open,
    Begin,
    Attach,
    Flow,
    Transfer,
    Disposition,
    Detach,
    End,
    Close
);
