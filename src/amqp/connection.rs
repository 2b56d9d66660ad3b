//! The connection handle: one per AMQP connection, whichever side opened it.

use super::engine::SessionConfig;
use super::error::Error;
use super::io::driver::{Command, DriverHandle};
use super::session::Session;
use super::types::error::AmqpError;
use super::types::transport::Open;
use std::sync::Arc;

/// An open AMQP connection. Cheap to clone; the connection lives while any clone, session or
/// link does.
#[derive(Clone, Debug)]
pub struct Connection {
    handle: DriverHandle,
    remote: Arc<Open>,
}

impl Connection {
    pub(crate) fn from_parts(handle: DriverHandle, remote: Open) -> Self {
        Connection {
            handle,
            remote: Arc::new(remote),
        }
    }

    /// The peer's `open`.
    pub fn remote_open(&self) -> &Open {
        &self.remote
    }

    /// Begins a session with default windows.
    pub async fn open_session(&self) -> Result<Session, Error> {
        self.open_session_with(SessionConfig::default()).await
    }

    /// Begins a session with the given windows.
    pub async fn open_session_with(&self, config: SessionConfig) -> Result<Session, Error> {
        let id = self
            .handle
            .call(|reply| Command::BeginSession { config, reply })
            .await?;
        Ok(Session::new(self.handle.clone(), id))
    }

    /// Closes the connection and waits for the peer's close.
    pub async fn close(&self) -> Result<(), Error> {
        self.handle
            .call(|reply| Command::Close { error: None, reply })
            .await
    }

    /// Closes the connection with an error.
    pub async fn close_with_error(&self, error: AmqpError) -> Result<(), Error> {
        let r = self
            .handle
            .call(|reply| Command::Close {
                error: Some(error),
                reply,
            })
            .await;
        match r {
            Err(Error::ConnectionClosed(_)) => Ok(()),
            other => other,
        }
    }

    /// True once the connection has ended, for whatever reason.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The most output bytes this connection has held queued for its socket at once: a peer
    /// that does not read keeps it near [`ConnectionLimits::max_queued_output`], because the
    /// driver stops reading (and so answering) above it.
    ///
    /// [`ConnectionLimits::max_queued_output`]: crate::amqp::engine::ConnectionLimits::max_queued_output
    pub fn queued_output_peak(&self) -> usize {
        self.handle.queued_output_peak()
    }
}
