//! The client's error type: one [`Error`] with an [`ErrorKind`] to match on (connection,
//! authentication, not found, send, receive, ...), keeping the peer's AMQP condition and
//! description for the details.

use crate::amqp::types::error::{condition, AmqpError};
use crate::wire::condition as eventhubs_condition;
use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`Error`] is.
///
/// The kinds follow the exception classes of the original Python client (`EventHubError`,
/// `ConnectError`, `AuthenticationError`, ...), plus [`ErrorKind::NotFound`]. New kinds may be
/// added, so a `match` needs a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Any other Event Hubs failure (the root kind).
    EventHub,
    /// The connection could not be established.
    Connect,
    /// Authentication or authorization failed (a kind of connect error).
    Authentication,
    /// The connection or link was lost and could not be recovered in time.
    ConnectionLost,
    /// An event (or a set of events) is unusable: too large, or malformed when received.
    EventData,
    /// The service refused to take events that were sent.
    EventDataSend,
    /// The operation did not complete within its timeout.
    OperationTimeout,
    /// The consumer was disconnected because another consumer took its place (higher owner
    /// level, `amqp:link:stolen`).
    ConsumerDisconnected,
    /// A bad argument: connection string, option, or parameter.
    InvalidArgument,
    /// The hub, partition or consumer group does not exist (`amqp:not-found`, status 404).
    NotFound,
    /// A buffered producer's queue for the partition is full (a non-waiting enqueue).
    QueueFull,
    /// The object was closed and takes no more work.
    Closed,
    /// An idempotent producer's sequence numbers do not follow the last ones the service
    /// stored (`com.microsoft:out-of-order-sequence`); permanent.
    OutOfOrderSequence,
    /// Another idempotent producer with a higher owner level took this producer id
    /// (`com.microsoft:producer-epoch-stolen`); permanent.
    ProducerEpochStolen,
    /// An event processor no longer owns the partition (another processor claimed it, or its
    /// own claim expired without renewal), so it refuses to checkpoint it: the store does not
    /// make checkpoints conditional on ownership, and a late write could overwrite the new
    /// owner's.
    OwnershipLost,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::EventHub => "event hub error",
            ErrorKind::Connect => "connect error",
            ErrorKind::Authentication => "authentication error",
            ErrorKind::ConnectionLost => "connection lost",
            ErrorKind::EventData => "event data error",
            ErrorKind::EventDataSend => "event data send error",
            ErrorKind::OperationTimeout => "operation timed out",
            ErrorKind::ConsumerDisconnected => "consumer disconnected",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotFound => "not found",
            ErrorKind::QueueFull => "queue full",
            ErrorKind::Closed => "closed",
            ErrorKind::OutOfOrderSequence => "out-of-order sequence",
            ErrorKind::ProducerEpochStolen => "producer epoch stolen",
            ErrorKind::OwnershipLost => "partition ownership lost",
        }
    }
}

/// The error source kept inside an [`Error`] (shared, so errors stay cloneable).
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An Event Hubs client error.
///
/// Cloneable so that one failure (a lost connection) can be handed to every waiting call.
#[derive(Clone, thiserror::Error)]
#[error("{}", Display(self))]
pub struct Error {
    kind: ErrorKind,
    message: String,
    condition: Option<String>,
    description: Option<String>,
    /// Whether this particular failure is worth retrying (set at construction).
    transient: bool,
    #[source]
    source: Option<Source>,
}

struct Display<'a>(&'a Error);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}: {}", e.kind.label(), e.message)?;
        if let Some(c) = &e.condition {
            write!(f, " [{c}")?;
            match &e.description {
                Some(d) if !d.is_empty() && !e.message.contains(d.as_str()) => write!(f, ": {d}]")?,
                _ => write!(f, "]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("condition", &self.condition)
            .field("description", &self.description)
            .field("transient", &self.transient)
            .finish()
    }
}

/// True for AMQP conditions that are worth retrying (protocol reference, table 2.11):
/// busy/timeout/cancelled/container-close, resource limits, forced detaches and closes,
/// internal errors. Ownership loss, authorization, not-found, size and argument errors are
/// permanent.
pub fn is_transient_condition(c: &str) -> bool {
    [
        eventhubs_condition::SERVER_BUSY,
        eventhubs_condition::TIMEOUT,
        eventhubs_condition::OPERATION_CANCELLED,
        eventhubs_condition::CONTAINER_CLOSE,
        condition::RESOURCE_LIMIT_EXCEEDED,
        condition::LINK_DETACH_FORCED,
        condition::LINK_TRANSFER_LIMIT_EXCEEDED,
        condition::CONNECTION_FORCED,
        condition::INTERNAL_ERROR,
        eventhubs_condition::PARTITION_NOT_OWNED,
        eventhubs_condition::STORE_LOCK_LOST,
    ]
    .iter()
    .any(|t| t.as_str() == c)
}

impl Error {
    /// A new error of `kind` with a message and no AMQP condition.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let transient = matches!(
            kind,
            ErrorKind::ConnectionLost | ErrorKind::OperationTimeout
        );
        Error {
            kind,
            message: message.into(),
            condition: None,
            description: None,
            transient,
            source: None,
        }
    }

    /// An invalid-argument error.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An error of `kind` carrying the peer's AMQP error; transience follows the condition,
    /// and `unauthorized-access`/`auth-failed` become [`ErrorKind::Authentication`], and
    /// `link:stolen` [`ErrorKind::ConsumerDisconnected`], and `not-found`
    /// [`ErrorKind::NotFound`], and the two idempotent-producer conditions their own kinds.
    pub fn from_amqp_error(kind: ErrorKind, message: impl Into<String>, e: &AmqpError) -> Self {
        let c = e.condition.as_str();
        let kind = if c == condition::UNAUTHORIZED_ACCESS.as_str()
            || c == eventhubs_condition::AUTH_FAILED.as_str()
        {
            ErrorKind::Authentication
        } else if c == condition::LINK_STOLEN.as_str() {
            ErrorKind::ConsumerDisconnected
        } else if c == condition::NOT_FOUND.as_str() {
            ErrorKind::NotFound
        } else if c == eventhubs_condition::OUT_OF_ORDER_SEQUENCE.as_str() {
            ErrorKind::OutOfOrderSequence
        } else if c == eventhubs_condition::PRODUCER_EPOCH_STOLEN.as_str() {
            ErrorKind::ProducerEpochStolen
        } else {
            kind
        };
        Error {
            kind,
            message: message.into(),
            condition: Some(c.to_owned()),
            description: e.description.as_ref().map(|d| d.as_str().to_owned()),
            transient: is_transient_condition(c),
            source: None,
        }
    }

    /// Wraps a low-level AMQP error that happened while doing `what`, classifying it:
    /// I/O failures and conditionless closes are a lost connection (transient), timeouts
    /// are [`ErrorKind::OperationTimeout`], and peer conditions keep their meaning.
    pub fn from_amqp(kind: ErrorKind, what: impl fmt::Display, e: crate::amqp::Error) -> Self {
        use crate::amqp::Error as A;
        let mut err = match &e {
            A::Io(_) => {
                let k = if kind == ErrorKind::Connect {
                    kind
                } else {
                    ErrorKind::ConnectionLost
                };
                let mut x = Error::new(k, format!("{what}: {e}"));
                x.transient = true;
                x
            }
            A::Tls(_) | A::Proxy(_) => Error::new(ErrorKind::Connect, format!("{what}: {e}")),
            A::WebSocket(_) => {
                let mut x = Error::new(kind, format!("{what}: {e}"));
                x.transient = true;
                x
            }
            A::Timeout => Error::new(ErrorKind::OperationTimeout, format!("{what}: {e}")),
            A::ConnectionClosed(c) | A::SessionEnded(c) | A::LinkDetached(c) => match c {
                Some(amqp) => Error::from_amqp_error(kind, format!("{what}: {e}"), amqp),
                None => {
                    let mut x = Error::new(ErrorKind::ConnectionLost, format!("{what}: {e}"));
                    x.transient = true;
                    x
                }
            },
            A::Amqp(amqp) => Error::from_amqp_error(kind, format!("{what}: {e}"), amqp),
        };
        err.source = Some(Arc::new(e));
        err
    }

    /// For a link that was working when the service detached it: an authorization failure
    /// then means the token lapsed (e.g. a refresh failed), which re-authorizing and
    /// re-attaching can fix, so it becomes a transient lost-link error keeping the condition.
    /// A key that is really revoked fails again at the new put-token, permanently.
    pub(crate) fn lapsed_authorization(mut self) -> Self {
        if self.kind == ErrorKind::Authentication {
            self.kind = ErrorKind::ConnectionLost;
            self.transient = true;
        }
        self
    }

    /// The same error (kind, condition, transience, source), its message preceded by
    /// `context`: what the caller was doing.
    pub(crate) fn in_context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Overrides whether the error is transient.
    pub(crate) fn with_transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// Attaches a source error.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Sets the AMQP condition and description directly (e.g. from a management status).
    pub(crate) fn with_condition(
        mut self,
        condition: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.condition = Some(condition.into());
        self.description = Some(description.into());
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for connect errors, including authentication errors (which are connect errors).
    pub fn is_connect_error(&self) -> bool {
        matches!(self.kind, ErrorKind::Connect | ErrorKind::Authentication)
    }

    /// Our description of what failed.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The AMQP condition the peer gave (e.g. `amqp:not-found`), if any.
    pub fn condition(&self) -> Option<&str> {
        self.condition.as_deref()
    }

    /// The peer's description of the condition, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// True when retrying the operation may succeed (protocol reference table 2.11): lost
    /// connections, timeouts, and transient service conditions. Authentication, argument,
    /// size, not-found and ownership (`link:stolen`) errors are not transient.
    pub fn is_transient(&self) -> bool {
        self.transient
            && !matches!(
                self.kind,
                ErrorKind::Authentication
                    | ErrorKind::InvalidArgument
                    | ErrorKind::EventData
                    | ErrorKind::ConsumerDisconnected
                    | ErrorKind::NotFound
            )
    }
}

impl From<crate::auth::ConnectionStringError> for Error {
    fn from(e: crate::auth::ConnectionStringError) -> Self {
        Error::invalid_argument(e.to_string()).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::Error as A;

    #[test]
    fn classification_follows_the_conditions() {
        let e = |c: crate::amqp::codec::Symbol| {
            Error::from_amqp(
                ErrorKind::EventHub,
                "op",
                A::LinkDetached(Some(AmqpError::with_description(c, "why"))),
            )
        };
        assert!(e(eventhubs_condition::SERVER_BUSY).is_transient());
        assert!(e(condition::LINK_DETACH_FORCED).is_transient());
        assert!(e(condition::CONNECTION_FORCED).is_transient());
        assert!(!e(condition::NOT_FOUND).is_transient());
        assert_eq!(e(condition::NOT_FOUND).kind(), ErrorKind::NotFound);
        assert!(!e(condition::LINK_MESSAGE_SIZE_EXCEEDED).is_transient());
        let stolen = e(condition::LINK_STOLEN);
        assert_eq!(stolen.kind(), ErrorKind::ConsumerDisconnected);
        assert!(!stolen.is_transient());
        for (c, kind) in [
            (
                eventhubs_condition::OUT_OF_ORDER_SEQUENCE,
                ErrorKind::OutOfOrderSequence,
            ),
            (
                eventhubs_condition::PRODUCER_EPOCH_STOLEN,
                ErrorKind::ProducerEpochStolen,
            ),
        ] {
            assert_eq!(e(c.clone()).kind(), kind);
            assert!(!e(c).is_transient());
        }
        let auth = e(condition::UNAUTHORIZED_ACCESS);
        assert_eq!(auth.kind(), ErrorKind::Authentication);
        assert!(auth.is_connect_error());
        assert!(!auth.is_transient());
        assert_eq!(auth.condition(), Some("amqp:unauthorized-access"));
        assert_eq!(auth.description(), Some("why"));
        assert!(auth.to_string().contains("amqp:unauthorized-access"));
        let lost = Error::from_amqp(ErrorKind::EventHub, "op", A::ConnectionClosed(None));
        assert_eq!(lost.kind(), ErrorKind::ConnectionLost);
        assert!(lost.is_transient());
        let io = Error::from_amqp(
            ErrorKind::Connect,
            "connect",
            A::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(io.kind(), ErrorKind::Connect);
        assert!(io.is_transient());
        assert!(std::error::Error::source(&io).is_some());
        let t = Error::from_amqp(ErrorKind::EventHub, "op", A::Timeout);
        assert_eq!(t.kind(), ErrorKind::OperationTimeout);
        assert!(t.is_transient());
        assert!(!Error::invalid_argument("x").is_transient());
    }
}
