//! The nine AMQP transport performatives and their union, [`Performative`].

use super::definitions::{
    DeliveryNumber, Fields, Handle, Milliseconds, ReceiverSettleMode, Role, SenderSettleMode,
    SequenceNo,
};
use super::error::AmqpError;
use super::messaging::{DeliveryState, Source, Target};
use crate::amqp::codec::{
    Decode, DecodeError, DecodeErrorKind, Decoder, Descriptor, Encode, ListReader, Str, Symbol,
    Value,
};
use crate::encode_composite;
use bytes::{BufMut, Bytes};

/// `open`: the first frame of a connection, with its limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Open {
    /// The sender's container id.
    pub container_id: Str,
    /// The virtual host the connection is for.
    pub hostname: Option<Str>,
    /// Largest frame the sender accepts.
    pub max_frame_size: u32,
    /// Highest channel number the sender accepts.
    pub channel_max: u16,
    /// Longest silence the sender tolerates, in milliseconds.
    pub idle_time_out: Option<Milliseconds>,
    /// Locales the sender may write in.
    pub outgoing_locales: Option<Vec<Symbol>>,
    /// Locales the sender wants to read.
    pub incoming_locales: Option<Vec<Symbol>>,
    /// Extensions the sender supports.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Extensions the sender can use if the peer supports them.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Connection properties.
    pub properties: Option<Fields>,
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

encode_composite!(Open, 0x10, |s| [
    s.container_id,
    s.hostname,
    s.max_frame_size,
    s.channel_max,
    s.idle_time_out,
    s.outgoing_locales,
    s.incoming_locales,
    s.offered_capabilities,
    s.desired_capabilities,
    s.properties,
]);

impl Open {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Open {
            container_id: f.required("container-id")?,
            hostname: f.optional()?,
            max_frame_size: f.or(u32::MAX)?,
            channel_max: f.or(u16::MAX)?,
            idle_time_out: f.optional()?,
            outgoing_locales: f.optional()?,
            incoming_locales: f.optional()?,
            offered_capabilities: f.optional()?,
            desired_capabilities: f.optional()?,
            properties: f.optional()?,
        })
    }
}

/// `begin`: opens a session on a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Begin {
    /// The initiator's channel, when this begin answers one.
    pub remote_channel: Option<u16>,
    /// Transfer id of the sender's next transfer frame.
    pub next_outgoing_id: SequenceNo,
    /// Transfer frames the sender can take in.
    pub incoming_window: u32,
    /// Transfer frames the sender may send.
    pub outgoing_window: u32,
    /// Highest link handle the sender accepts.
    pub handle_max: Handle,
    /// Extensions the sender supports.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Extensions the sender can use.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Session properties.
    pub properties: Option<Fields>,
}

encode_composite!(Begin, 0x11, |s| [
    s.remote_channel,
    s.next_outgoing_id,
    s.incoming_window,
    s.outgoing_window,
    s.handle_max,
    s.offered_capabilities,
    s.desired_capabilities,
    s.properties,
]);

impl Begin {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Begin {
            remote_channel: f.optional()?,
            next_outgoing_id: f.required("next-outgoing-id")?,
            incoming_window: f.required("incoming-window")?,
            outgoing_window: f.required("outgoing-window")?,
            handle_max: f.or(u32::MAX)?,
            offered_capabilities: f.optional()?,
            desired_capabilities: f.optional()?,
            properties: f.optional()?,
        })
    }
}

/// `attach`: attaches a link end to a session.
#[derive(Clone, Debug, PartialEq)]
pub struct Attach {
    /// Link name, unique per direction between two containers.
    pub name: Str,
    /// The sender's handle for the link.
    pub handle: Handle,
    /// Role of the frame's sender on the link.
    pub role: Role,
    /// Sender settlement mode.
    pub snd_settle_mode: SenderSettleMode,
    /// Receiver settlement mode.
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Where messages come from.
    pub source: Option<Box<Source>>,
    /// Where messages go.
    pub target: Option<Box<Target>>,
    /// Unsettled delivery state (delivery-tag → state), kept raw.
    pub unsettled: Option<Value>,
    /// True when `unsettled` is incomplete.
    pub incomplete_unsettled: bool,
    /// The sender's delivery count when the link attaches (senders only).
    pub initial_delivery_count: Option<SequenceNo>,
    /// Largest message the frame's sender accepts; `None` or 0 means no limit.
    pub max_message_size: Option<u64>,
    /// Extensions the sender supports.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Extensions the sender can use.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Link properties.
    pub properties: Option<Fields>,
}

encode_composite!(Attach, 0x12, |s| [
    s.name,
    s.handle,
    s.role,
    s.snd_settle_mode,
    s.rcv_settle_mode,
    s.source,
    s.target,
    s.unsettled,
    s.incomplete_unsettled,
    s.initial_delivery_count,
    s.max_message_size,
    s.offered_capabilities,
    s.desired_capabilities,
    s.properties,
]);

impl Attach {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Attach {
            name: f.required("name")?,
            handle: f.required("handle")?,
            role: f.required("role")?,
            snd_settle_mode: f.or_default()?,
            rcv_settle_mode: f.or_default()?,
            source: f.optional()?,
            target: f.optional()?,
            unsettled: f.optional()?,
            incomplete_unsettled: f.or(false)?,
            initial_delivery_count: f.optional()?,
            max_message_size: f.optional()?,
            offered_capabilities: f.optional()?,
            desired_capabilities: f.optional()?,
            properties: f.optional()?,
        })
    }
}

/// `flow`: session windows and, with a handle, link credit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flow {
    /// The next transfer id the sender expects (absent before the peer's begin was seen).
    pub next_incoming_id: Option<SequenceNo>,
    /// Transfer frames the sender can take in.
    pub incoming_window: u32,
    /// Transfer id of the sender's next transfer frame.
    pub next_outgoing_id: SequenceNo,
    /// Transfer frames the sender may send.
    pub outgoing_window: u32,
    /// The link this flow is about; `None` for a session-only flow.
    pub handle: Option<Handle>,
    /// The link's delivery count as the sender of this frame knows it.
    pub delivery_count: Option<SequenceNo>,
    /// Link credit.
    pub link_credit: Option<u32>,
    /// Messages the link's sender could send.
    pub available: Option<u32>,
    /// Asks the sender to use up its credit.
    pub drain: bool,
    /// Asks the peer to answer with its own flow.
    pub echo: bool,
    /// Link state properties.
    pub properties: Option<Fields>,
}

encode_composite!(Flow, 0x13, |s| [
    s.next_incoming_id,
    s.incoming_window,
    s.next_outgoing_id,
    s.outgoing_window,
    s.handle,
    s.delivery_count,
    s.link_credit,
    s.available,
    s.drain,
    s.echo,
    s.properties,
]);

impl Flow {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Flow {
            next_incoming_id: f.optional()?,
            incoming_window: f.required("incoming-window")?,
            next_outgoing_id: f.required("next-outgoing-id")?,
            outgoing_window: f.required("outgoing-window")?,
            handle: f.optional()?,
            delivery_count: f.optional()?,
            link_credit: f.optional()?,
            available: f.optional()?,
            drain: f.or(false)?,
            echo: f.or(false)?,
            properties: f.optional()?,
        })
    }
}

/// `transfer`: one frame of a delivery; the message bytes follow the performative.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transfer {
    /// The link.
    pub handle: Handle,
    /// Session-scoped delivery id (first frame of a delivery).
    pub delivery_id: Option<DeliveryNumber>,
    /// Link-scoped delivery tag, at most 32 bytes (first frame).
    pub delivery_tag: Option<Bytes>,
    /// Message format; 0 is a standard AMQP message (first frame).
    pub message_format: Option<u32>,
    /// Whether the sender has settled the delivery.
    pub settled: Option<bool>,
    /// More frames of this delivery follow.
    pub more: bool,
    /// Per-delivery receiver settle mode.
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    /// The sender's view of the delivery state.
    pub state: Option<DeliveryState>,
    /// Resumes a delivery from an earlier link.
    pub resume: bool,
    /// Discards the delivery.
    pub aborted: bool,
    /// The peer may delay its answer.
    pub batchable: bool,
}

encode_composite!(Transfer, 0x14, |s| [
    s.handle,
    s.delivery_id,
    s.delivery_tag,
    s.message_format,
    s.settled,
    s.more,
    s.rcv_settle_mode,
    s.state,
    s.resume,
    s.aborted,
    s.batchable,
]);

impl Transfer {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Transfer {
            handle: f.required("handle")?,
            delivery_id: f.optional()?,
            delivery_tag: f.optional()?,
            message_format: f.optional()?,
            settled: f.optional()?,
            more: f.or(false)?,
            rcv_settle_mode: f.optional()?,
            state: f.optional()?,
            resume: f.or(false)?,
            aborted: f.or(false)?,
            batchable: f.or(false)?,
        })
    }
}

/// `disposition`: outcome and settlement of a range of deliveries.
#[derive(Clone, Debug, PartialEq)]
pub struct Disposition {
    /// Role of the frame's sender.
    pub role: Role,
    /// First delivery id of the range.
    pub first: DeliveryNumber,
    /// Last delivery id of the range, inclusive; `None` means `first`.
    pub last: Option<DeliveryNumber>,
    /// Whether the deliveries are settled.
    pub settled: bool,
    /// The outcome or state of the deliveries.
    pub state: Option<DeliveryState>,
    /// The peer may delay its answer.
    pub batchable: bool,
}

encode_composite!(Disposition, 0x15, |s| [
    s.role,
    s.first,
    s.last,
    s.settled,
    s.state,
    s.batchable,
]);

impl Disposition {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Disposition {
            role: f.required("role")?,
            first: f.required("first")?,
            last: f.optional()?,
            settled: f.or(false)?,
            state: f.optional()?,
            batchable: f.or(false)?,
        })
    }
}

/// `detach`: detaches (and with `closed`, destroys) a link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detach {
    /// The link.
    pub handle: Handle,
    /// True to close the link rather than only detach it.
    pub closed: bool,
    /// Why, when it is an error.
    pub error: Option<AmqpError>,
}

encode_composite!(Detach, 0x16, |s| [s.handle, s.closed, s.error]);

impl Detach {
    fn from_fields(mut f: ListReader) -> Result<Self, DecodeError> {
        Ok(Detach {
            handle: f.required("handle")?,
            closed: f.or(false)?,
            error: f.optional()?,
        })
    }
}

/// `end`: ends a session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct End {
    /// Why, when it is an error.
    pub error: Option<AmqpError>,
}

encode_composite!(End, 0x17, |s| [s.error]);

/// `close`: closes the connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Close {
    /// Why, when it is an error.
    pub error: Option<AmqpError>,
}

encode_composite!(Close, 0x18, |s| [s.error]);

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
    (0x10, "amqp:open:list"),
    (0x11, "amqp:begin:list"),
    (0x12, "amqp:attach:list"),
    (0x13, "amqp:flow:list"),
    (0x14, "amqp:transfer:list"),
    (0x15, "amqp:disposition:list"),
    (0x16, "amqp:detach:list"),
    (0x17, "amqp:end:list"),
    (0x18, "amqp:close:list"),
];

impl Decode for Performative {
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        let at = d.offset();
        let descriptor = d.read_descriptor()?;
        let Some(&(code, name)) = NAMES.iter().find(|(c, n)| descriptor.matches(*c, n)) else {
            return Err(DecodeError {
                offset: at,
                kind: DecodeErrorKind::UnexpectedDescriptor {
                    expected: "a transport performative",
                    found: describe(&descriptor),
                },
            });
        };
        let f = d.read_list(name)?;
        Ok(match code {
            0x10 => Performative::Open(Open::from_fields(f)?),
            0x11 => Performative::Begin(Begin::from_fields(f)?),
            0x12 => Performative::Attach(Attach::from_fields(f)?),
            0x13 => Performative::Flow(Flow::from_fields(f)?),
            0x14 => Performative::Transfer(Transfer::from_fields(f)?),
            0x15 => Performative::Disposition(Disposition::from_fields(f)?),
            0x16 => Performative::Detach(Detach::from_fields(f)?),
            0x17 => Performative::End(End {
                error: error_field(f)?,
            }),
            _ => Performative::Close(Close {
                error: error_field(f)?,
            }),
        })
    }
}

fn error_field(mut f: ListReader) -> Result<Option<AmqpError>, DecodeError> {
    f.optional()
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
