//! Errors of the low-level AMQP API.

use super::types::error::AmqpError;
use std::fmt;
use std::sync::Arc;

/// Why an AMQP operation failed.
///
/// Cloneable, so one failure (a lost connection) can be handed to every waiting operation.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed or could not be opened.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// TLS could not be set up or the handshake failed.
    #[error("TLS error: {0}")]
    Tls(String),
    /// An HTTP proxy refused the tunnel or answered badly (the message carries its status
    /// line, never the credentials).
    #[error("proxy error: {0}")]
    Proxy(String),
    /// The WebSocket handshake failed, or the peer broke the WebSocket protocol.
    #[error("WebSocket error: {0}")]
    WebSocket(String),
    /// The connection is closed; the error is the reason either side gave.
    #[error("connection closed{}", Reason(.0))]
    ConnectionClosed(Option<AmqpError>),
    /// The session ended.
    #[error("session ended{}", Reason(.0))]
    SessionEnded(Option<AmqpError>),
    /// The link was detached (or refused at attach).
    #[error("link detached{}", Reason(.0))]
    LinkDetached(Option<AmqpError>),
    /// The operation was refused locally (bad state, message too large, ...).
    #[error("{0}")]
    Amqp(AmqpError),
    /// The operation did not complete in time.
    #[error("operation timed out")]
    Timeout,
}

struct Reason<'a>(&'a Option<AmqpError>);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => write!(f, ": {e}"),
            None => Ok(()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl Error {
    /// The AMQP error the peer (or we) gave, when there is one.
    pub fn amqp_error(&self) -> Option<&AmqpError> {
        match self {
            Error::ConnectionClosed(e) | Error::SessionEnded(e) | Error::LinkDetached(e) => {
                e.as_ref()
            }
            Error::Amqp(e) => Some(e),
            _ => None,
        }
    }

    /// The AMQP condition symbol's text, when there is one.
    pub fn condition(&self) -> Option<&str> {
        self.amqp_error().map(|e| e.condition.as_str())
    }
}
