//! Link state: credit, delivery counting, outgoing queue and incoming reassembly.

use super::event::LinkId;
use crate::amqp::codec::{Str, Symbol};
use crate::amqp::types::definitions::{Fields, ReceiverSettleMode, Role, SenderSettleMode};
use crate::amqp::types::error::AmqpError;
use crate::amqp::types::messaging::{DeliveryState, Source, Target};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// Reassembly limit for links that set no max-message-size: enough for any Event Hubs tier,
/// small enough that a hostile peer cannot make us buffer without bound.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// We sent attach; waiting for the peer's.
    AttachSent,
    /// The peer attached; waiting for the application to accept or refuse.
    AttachReceived,
    /// Both attaches exchanged.
    Attached,
    /// We sent detach; waiting for the peer's.
    DetachSent,
}

/// How we answer a link the peer attached.
#[derive(Clone, Debug, Default)]
pub struct LinkAcceptance {
    /// Our source (as a sender: the node messages come from).
    pub source: Option<Source>,
    /// Our target (as a receiver: the node messages go to).
    pub target: Option<Target>,
    /// Sender settle mode (as a sender this is binding; as a receiver, echo the peer's).
    pub snd_settle_mode: Option<SenderSettleMode>,
    /// Receiver settle mode.
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    /// Largest message we accept (as a receiver) — announced in our attach.
    pub max_message_size: Option<u64>,
    /// Link properties.
    pub properties: Option<Fields>,
    /// Capabilities we offer.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
}

/// A message waiting for credit or window, or part-way out.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub token: u64,
    pub tag: Bytes,
    pub format: u32,
    pub settled: bool,
    pub payload: Bytes,
    /// Bytes of `payload` already sent; `Some(id)` once the first frame went out.
    pub sent: usize,
    pub delivery_id: Option<u32>,
}

/// A delivery being reassembled from several transfer frames.
#[derive(Debug)]
pub(crate) struct Partial {
    pub delivery_id: u32,
    pub tag: Bytes,
    pub format: u32,
    pub settled: bool,
    pub state: Option<DeliveryState>,
    pub first: Bytes,
    pub rest: Option<BytesMut>,
    pub size: u64,
}

#[derive(Debug)]
pub(crate) struct Link {
    pub id: LinkId,
    pub channel: u16,
    pub name: Str,
    pub role: Role,
    pub state: LinkState,
    pub local_handle: Option<u32>,
    pub remote_handle: Option<u32>,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Sender: deliveries started. Receiver: deliveries received (as per the spec's counter).
    pub delivery_count: u32,
    pub link_credit: u32,
    pub drain: bool,
    /// Largest message the peer accepts (when we send), from its attach.
    pub peer_max_message_size: Option<u64>,
    /// Largest message we reassemble (when we receive).
    pub max_message_size: u64,
    pub pending: VecDeque<Outgoing>,
    pub next_token: u64,
    pub partial: Option<Partial>,
    /// Deliveries that ran past the limit or were refused: drop their remaining frames.
    pub discarding: bool,
    /// The error we detached with, reported when the peer's detach answers ours.
    pub local_error: Option<AmqpError>,
}

impl Link {
    pub(crate) fn new(id: LinkId, channel: u16, name: Str, role: Role, state: LinkState) -> Self {
        Link {
            id,
            channel,
            name,
            role,
            state,
            local_handle: None,
            remote_handle: None,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            delivery_count: 0,
            link_credit: 0,
            drain: false,
            peer_max_message_size: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            pending: VecDeque::new(),
            next_token: 0,
            partial: None,
            discarding: false,
            local_error: None,
        }
    }

    /// True when the head of the queue can make progress given credit.
    pub(crate) fn can_send(&self) -> bool {
        match self.pending.front() {
            Some(o) => o.delivery_id.is_some() || self.link_credit > 0,
            None => false,
        }
    }
}
