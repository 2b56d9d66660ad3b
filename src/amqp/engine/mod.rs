//! The sans-IO AMQP 1.0 engine: connection, sessions, links and deliveries as state machines.
//!
//! No sockets, no tasks, no clock reads. The caller feeds received bytes and the current time
//! and pulls bytes to write, events, and the next deadline:
//!
//! * [`Connection::handle_bytes`] — bytes that arrived from the peer (or, read straight into
//!   [`Connection::input_buffer`], [`Connection::handle_input`]);
//! * [`Connection::poll_transmit`] — bytes to write to the peer (or, with large transfer
//!   payloads as chunks of their own, [`Connection::poll_transmit_chunk`]);
//! * [`Connection::poll_event`] — what happened (a link attached, a delivery arrived, ...);
//! * [`Connection::poll_timeout`] / [`Connection::handle_timeout`] — idle-timeout handling;
//! * commands such as [`Connection::begin_session`], [`Connection::attach`],
//!   [`Connection::send`], [`Connection::add_credit`], [`Connection::settle`],
//!   [`Connection::detach`], [`Connection::end_session`], [`Connection::close`].
//!
//! One engine serves both roles: a client connects ([`Connection::client`]) and a server
//! accepts ([`Connection::server`]).

mod config;
mod connection;
mod delivery;
mod event;
mod link;
mod sasl;
mod session;

pub use config::{
    ConnectionConfig, ConnectionLimits, FrameTrace, LinkConfig, SaslAuthenticator,
    SaslClientMechanism, SaslDecision, SessionConfig,
};
pub use connection::{Connection, ConnectionState, Role as EndpointRole};
pub use event::{Delivery, Event, LinkId, SessionId};
pub use link::LinkAcceptance;

/// What this crate's own tests and fuzz targets look at inside an engine. Not part of the
/// supported API: it may change in any release.
#[doc(hidden)]
pub mod testing {
    use super::{Connection, ConnectionState};

    /// Where the connection is in its life.
    pub fn state(c: &Connection) -> ConnectionState {
        c.state()
    }

    /// The largest frame the connection may send: the peer's announced limit.
    pub fn remote_max_frame_size(c: &Connection) -> u32 {
        c.remote_max_frame_size()
    }

    /// Bytes received but not yet processed (at most one partial frame).
    pub fn buffered_input(c: &Connection) -> usize {
        c.buffered_input()
    }
}

/// The tracing target under which every frame in and out is logged.
pub const FRAME_TRACE_TARGET: &str = "eventhubs::amqp::frames";

/// Emits a frame event under [`FRAME_TRACE_TARGET`] at the level a [`FrameTrace`] asks for.
/// `loud` events (frames) go at DEBUG or INFO, `quiet` ones (heartbeats, drops) one level
/// lower. Tracing call sites need a constant level, hence one arm per level.
macro_rules! frame_event {
    (loud $trace:expr, $($arg:tt)+) => {
        match $trace {
            $crate::amqp::engine::FrameTrace::Off => {}
            $crate::amqp::engine::FrameTrace::Debug => {
                tracing::debug!(target: $crate::amqp::engine::FRAME_TRACE_TARGET, $($arg)+)
            }
            $crate::amqp::engine::FrameTrace::Info => {
                tracing::info!(target: $crate::amqp::engine::FRAME_TRACE_TARGET, $($arg)+)
            }
        }
    };
    (quiet $trace:expr, $($arg:tt)+) => {
        match $trace {
            $crate::amqp::engine::FrameTrace::Off => {}
            $crate::amqp::engine::FrameTrace::Debug => {
                tracing::trace!(target: $crate::amqp::engine::FRAME_TRACE_TARGET, $($arg)+)
            }
            $crate::amqp::engine::FrameTrace::Info => {
                tracing::debug!(target: $crate::amqp::engine::FRAME_TRACE_TARGET, $($arg)+)
            }
        }
    };
}
pub(crate) use frame_event;
