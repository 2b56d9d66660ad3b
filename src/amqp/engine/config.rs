//! Settings for connections, sessions and links.

use crate::amqp::codec::Symbol;
use crate::amqp::types::definitions::{Fields, ReceiverSettleMode, Role, SenderSettleMode};
use crate::amqp::types::messaging::{Source, Target};
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How a client authenticates in the SASL layer.
#[derive(Clone, PartialEq, Eq)]
pub enum SaslClientMechanism {
    /// `ANONYMOUS` (Event Hubs: authorization then happens through CBS).
    Anonymous,
    /// `PLAIN` with a user name and password.
    Plain {
        /// Authentication identity.
        username: String,
        /// Password; never printed.
        password: String,
    },
    /// `EXTERNAL`: identity from the transport (a TLS client certificate).
    External,
}

impl SaslClientMechanism {
    /// The mechanism's SASL name.
    pub fn name(&self) -> &'static str {
        match self {
            SaslClientMechanism::Anonymous => "ANONYMOUS",
            SaslClientMechanism::Plain { .. } => "PLAIN",
            SaslClientMechanism::External => "EXTERNAL",
        }
    }

    /// The initial response sent with `sasl-init`.
    pub(crate) fn initial_response(&self) -> Bytes {
        match self {
            SaslClientMechanism::Anonymous | SaslClientMechanism::External => Bytes::new(),
            SaslClientMechanism::Plain { username, password } => {
                let mut v = Vec::with_capacity(username.len() + password.len() + 2);
                v.push(0);
                v.extend_from_slice(username.as_bytes());
                v.push(0);
                v.extend_from_slice(password.as_bytes());
                Bytes::from(v)
            }
        }
    }
}

impl fmt::Debug for SaslClientMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslClientMechanism::Plain { username, .. } => f
                .debug_struct("Plain")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            other => f.write_str(other.name()),
        }
    }
}

/// A server's answer to a client's SASL credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslDecision {
    /// Authenticated.
    Accept,
    /// Bad credentials (sasl-code `auth`).
    Reject,
}

/// Decides SASL authentication on the server side.
pub trait SaslAuthenticator: Send + Sync {
    /// Mechanisms to offer, e.g. `["ANONYMOUS", "PLAIN"]`.
    fn mechanisms(&self) -> Vec<Symbol>;
    /// Judges the client's `sasl-init`.
    fn authenticate(
        &self,
        mechanism: &str,
        initial_response: &[u8],
        hostname: Option<&str>,
    ) -> SaslDecision;
}

/// How the engine reports the frames it reads and writes, under
/// [`FRAME_TRACE_TARGET`](super::FRAME_TRACE_TARGET).
///
/// Per connection, so that one client of many can be made to log its traffic at a level an
/// ordinary subscriber shows, while the others stay quiet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameTrace {
    /// No frame events at all.
    Off,
    /// Frame events at `DEBUG` (heartbeats at `TRACE`): there for a subscriber that asks
    /// for the target, invisible otherwise.
    #[default]
    Debug,
    /// Frame events at `INFO` (heartbeats at `DEBUG`): what a client's network tracing
    /// option turns on.
    Info,
}

/// Settings of one connection end.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Our container id.
    pub container_id: String,
    /// The virtual host we are connecting to (clients) — Event Hubs wants the namespace host.
    pub hostname: Option<String>,
    /// The largest frame we accept (announced in `open`).
    pub max_frame_size: u32,
    /// The highest channel number we accept.
    pub channel_max: u16,
    /// How long we tolerate silence from the peer; `None` disables the check.
    pub idle_timeout: Option<Duration>,
    /// Connection properties sent in `open`.
    pub properties: Option<Fields>,
    /// Capabilities we offer.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Client: the SASL mechanism to use; `None` skips the SASL layer.
    pub sasl: Option<SaslClientMechanism>,
    /// Server: the SASL authenticator; `None` serves plain AMQP without SASL.
    pub sasl_server: Option<Arc<dyn SaslAuthenticator>>,
    /// Server: also accept clients that skip SASL when an authenticator is set.
    pub allow_no_sasl: bool,
    /// How frames in and out are traced.
    pub frame_trace: FrameTrace,
    /// What one peer may make this end hold.
    pub limits: ConnectionLimits,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl ConnectionConfig {
    /// Sets `container_id`: our container id.
    pub fn with_container_id(mut self, value: String) -> Self {
        self.container_id = value;
        self
    }

    /// Sets `hostname`: the virtual host we are connecting to (clients) — Event Hubs wants the namespace host.
    pub fn with_hostname(mut self, value: String) -> Self {
        self.hostname = Some(value);
        self
    }

    /// Sets `max_frame_size`: the largest frame we accept (announced in `open`).
    pub fn with_max_frame_size(mut self, value: u32) -> Self {
        self.max_frame_size = value;
        self
    }

    /// Sets `channel_max`: the highest channel number we accept.
    pub fn with_channel_max(mut self, value: u16) -> Self {
        self.channel_max = value;
        self
    }

    /// Sets `idle_timeout`: how long we tolerate silence from the peer; `None` disables the check.
    pub fn with_idle_timeout(mut self, value: Duration) -> Self {
        self.idle_timeout = Some(value);
        self
    }

    /// Sets `properties`: connection properties sent in `open`.
    pub fn with_properties(mut self, value: Fields) -> Self {
        self.properties = Some(value);
        self
    }

    /// Sets `offered_capabilities`: capabilities we offer.
    pub fn with_offered_capabilities(mut self, value: Vec<Symbol>) -> Self {
        self.offered_capabilities = Some(value);
        self
    }

    /// Sets `desired_capabilities`: capabilities we want.
    pub fn with_desired_capabilities(mut self, value: Vec<Symbol>) -> Self {
        self.desired_capabilities = Some(value);
        self
    }

    /// Sets `sasl`: client: the SASL mechanism to use; `None` skips the SASL layer.
    pub fn with_sasl(mut self, value: SaslClientMechanism) -> Self {
        self.sasl = Some(value);
        self
    }

    /// Sets `sasl_server`: server: the SASL authenticator; `None` serves plain AMQP without SASL.
    pub fn with_sasl_server(mut self, value: Arc<dyn SaslAuthenticator>) -> Self {
        self.sasl_server = Some(value);
        self
    }

    /// Sets `allow_no_sasl`: server: also accept clients that skip SASL when an authenticator is set.
    pub fn with_allow_no_sasl(mut self, value: bool) -> Self {
        self.allow_no_sasl = value;
        self
    }

    /// Sets `frame_trace`: how frames in and out are traced.
    pub fn with_frame_trace(mut self, value: FrameTrace) -> Self {
        self.frame_trace = value;
        self
    }

    /// Sets `limits`: what one peer may make this end hold.
    pub fn with_limits(mut self, value: ConnectionLimits) -> Self {
        self.limits = value;
        self
    }
}

/// Bounds on what one peer can make a connection end hold in memory. Exceeding one closes the
/// connection (or ends the session, or detaches the link) with `amqp:resource-limit-exceeded`.
///
/// The defaults sit far above what a healthy peer needs, so that only a hostile or broken one
/// ever meets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Output bytes queued for the socket above which the driver stops reading from the peer.
    pub max_queued_output: usize,
    /// How long the queued output may stay above `max_queued_output` before the connection
    /// is closed.
    pub output_stall_timeout: Duration,
    /// Sessions the peer may have begun at once.
    pub max_sessions: usize,
    /// Links (on all sessions) the connection may hold at once, pending ones included.
    pub max_links: usize,
    /// Links the peer attached that still wait for the application's decision.
    pub max_pending_attaches: usize,
    /// Unsettled deliveries from the peer one session may hold at once (ours are bounded by
    /// the application's own in-flight limits).
    pub max_unsettled: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_queued_output: 16 * 1024 * 1024,
            output_stall_timeout: Duration::from_secs(30),
            max_sessions: 1024,
            max_links: 4096,
            max_pending_attaches: 256,
            max_unsettled: 1_000_000,
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("container_id", &self.container_id)
            .field("hostname", &self.hostname)
            .field("max_frame_size", &self.max_frame_size)
            .field("channel_max", &self.channel_max)
            .field("idle_timeout", &self.idle_timeout)
            .field("sasl", &self.sasl)
            .field("sasl_server", &self.sasl_server.is_some())
            .field("frame_trace", &self.frame_trace)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            container_id: String::from("eventhubs"),
            hostname: None,
            max_frame_size: 65536,
            channel_max: 255,
            idle_timeout: Some(Duration::from_secs(60)),
            properties: None,
            offered_capabilities: None,
            desired_capabilities: None,
            sasl: None,
            sasl_server: None,
            allow_no_sasl: true,
            frame_trace: FrameTrace::Debug,
            limits: ConnectionLimits::default(),
        }
    }
}

/// Settings of one session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Transfer frames we can take before the peer must wait for a flow.
    pub incoming_window: u32,
    /// Transfer frames we announce we may send.
    pub outgoing_window: u32,
    /// Highest link handle we accept.
    pub handle_max: u32,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl SessionConfig {
    /// Sets `incoming_window`: transfer frames we can take before the peer must wait for a flow.
    pub fn with_incoming_window(mut self, value: u32) -> Self {
        self.incoming_window = value;
        self
    }

    /// Sets `outgoing_window`: transfer frames we announce we may send.
    pub fn with_outgoing_window(mut self, value: u32) -> Self {
        self.outgoing_window = value;
        self
    }

    /// Sets `handle_max`: highest link handle we accept.
    pub fn with_handle_max(mut self, value: u32) -> Self {
        self.handle_max = value;
        self
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            incoming_window: 5000,
            outgoing_window: 5000,
            handle_max: 1023,
        }
    }
}

/// Settings of a link we attach.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Link name (unique per direction between the two containers).
    pub name: String,
    /// Our role on the link.
    pub role: Role,
    /// Where messages come from (a receiver names the node here).
    pub source: Option<Source>,
    /// Where messages go (a sender names the node here).
    pub target: Option<Target>,
    /// Sender settle mode we ask for.
    pub snd_settle_mode: SenderSettleMode,
    /// Receiver settle mode we ask for.
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Largest message we accept (receivers); `None` means no limit of ours beyond memory
    /// sanity (see [`crate::amqp::engine::Connection`]).
    pub max_message_size: Option<u64>,
    /// Link properties.
    pub properties: Option<Fields>,
    /// Capabilities we offer.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl LinkConfig {
    /// Sets `name`: link name (unique per direction between the two containers).
    pub fn with_name(mut self, value: String) -> Self {
        self.name = value;
        self
    }

    /// Sets `role`: our role on the link.
    pub fn with_role(mut self, value: Role) -> Self {
        self.role = value;
        self
    }

    /// Sets `source`: where messages come from (a receiver names the node here).
    pub fn with_source(mut self, value: Source) -> Self {
        self.source = Some(value);
        self
    }

    /// Sets `target`: where messages go (a sender names the node here).
    pub fn with_target(mut self, value: Target) -> Self {
        self.target = Some(value);
        self
    }

    /// Sets `snd_settle_mode`: sender settle mode we ask for.
    pub fn with_snd_settle_mode(mut self, value: SenderSettleMode) -> Self {
        self.snd_settle_mode = value;
        self
    }

    /// Sets `rcv_settle_mode`: receiver settle mode we ask for.
    pub fn with_rcv_settle_mode(mut self, value: ReceiverSettleMode) -> Self {
        self.rcv_settle_mode = value;
        self
    }

    /// Sets `max_message_size`: largest message we accept (receivers); `None` means no limit of ours beyond memory.
    pub fn with_max_message_size(mut self, value: u64) -> Self {
        self.max_message_size = Some(value);
        self
    }
}
