//! What the engine tells its caller.

use crate::amqp::types::error::AmqpError;
use crate::amqp::types::messaging::DeliveryState;
use crate::amqp::types::transport::{Attach, Begin, Open};
use bytes::Bytes;

/// A session, named by its local channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u16);

/// A link, unique for the life of the connection (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// A whole message received on a link.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Session-scoped delivery id (use it to settle).
    pub delivery_id: u32,
    /// The sender's delivery tag.
    pub tag: Bytes,
    /// Message format (0 for a standard message; Event Hubs batches use 0x80013700).
    pub message_format: u32,
    /// True when the sender settled it already (no disposition is owed).
    pub settled: bool,
    /// The sender's delivery state, if it sent one.
    pub state: Option<DeliveryState>,
    /// The encoded message: a slice of the frame for single-frame deliveries.
    pub payload: Bytes,
}

/// Something that happened on the connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The peer's `open` arrived: the connection is usable.
    Opened {
        /// The peer's open.
        remote: Box<Open>,
    },
    /// The connection is finished. `error` is the peer's close error, or ours when we closed it
    /// because of a protocol violation or silence.
    Closed {
        /// Why.
        error: Option<AmqpError>,
        /// True when the peer closed it.
        by_peer: bool,
    },
    /// A session is mapped both ways (answer to our begin, or a peer-initiated one we accepted).
    SessionBegun {
        /// The session.
        session: SessionId,
        /// The peer's begin.
        remote: Box<Begin>,
    },
    /// A session ended (its links are gone too).
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Why, when it was an error.
        error: Option<AmqpError>,
        /// True when the peer ended it.
        by_peer: bool,
    },
    /// The peer attached a link we did not ask for: call [`super::Connection::accept_link`] or
    /// [`super::Connection::refuse_link`].
    LinkAttachRequested {
        /// The new link.
        link: LinkId,
        /// The session it is on.
        session: SessionId,
        /// The peer's attach.
        attach: Box<Attach>,
    },
    /// The peer answered our attach. When its terminus is null a detach with the reason follows.
    LinkAttached {
        /// The link.
        link: LinkId,
        /// The peer's attach.
        remote: Box<Attach>,
    },
    /// The link is detached (and forgotten).
    LinkDetached {
        /// The link.
        link: LinkId,
        /// Why, when it was an error.
        error: Option<AmqpError>,
        /// Whether it was closed (rather than only detached).
        closed: bool,
        /// True when the peer detached it.
        by_peer: bool,
    },
    /// A sending link's credit changed.
    Credit {
        /// The link.
        link: LinkId,
        /// Deliveries the link may start now.
        credit: u32,
    },
    /// A whole message arrived on a receiving link.
    Delivery {
        /// The link.
        link: LinkId,
        /// The delivery.
        delivery: Delivery,
    },
    /// The peer settled or updated the state of one of our deliveries.
    Outcome {
        /// The link it was sent on.
        link: LinkId,
        /// The number [`super::Connection::send`] returned for it.
        delivery: u64,
        /// The peer's outcome or state.
        state: Option<DeliveryState>,
        /// True when the delivery is settled (no further outcome will come).
        settled: bool,
    },
    /// A receiving link's sender reported its state (after a drain, or with `available`).
    ReceiverFlow {
        /// The link.
        link: LinkId,
        /// Credit the receiver still has granted.
        credit: u32,
        /// Messages the sender says it could send.
        available: Option<u32>,
    },
}
