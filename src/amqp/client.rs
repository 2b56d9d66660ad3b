//! The low-level AMQP client: connections, sessions, senders and receivers over tokio.

use super::codec::{DecodeError, Encode, Symbol};
use super::engine::{
    Connection as Engine, ConnectionConfig, Delivery, FrameTrace, LinkConfig, LinkId,
    SaslClientMechanism, SessionConfig, SessionId,
};
use super::error::Error;
use super::io::driver::{
    self, Attached, Command, DriverHandle, DriverSetup, LinkMsg, LinkStatus, SendResult,
};
use super::io::BoxedTransport;
use super::types::definitions::{Fields, ReceiverSettleMode, Role, SenderSettleMode};
use super::types::error::AmqpError;
use super::types::message::Message;
use super::types::messaging::{DeliveryState, Modified, Rejected, Released, Source, Target};
use super::types::transport::{Attach, Open};
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// How to reach and open a connection.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Host name or address.
    pub host: String,
    /// TCP port (5672 plain, 5671 TLS).
    pub port: u16,
    /// TLS settings; `None` for plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<super::io::tls::TlsClientOptions>,
    /// SASL mechanism; `None` skips the SASL layer.
    pub sasl: Option<SaslClientMechanism>,
    /// Our container id.
    pub container_id: String,
    /// Virtual host for `open` (defaults to `host`).
    pub hostname: Option<String>,
    /// Largest frame we accept.
    pub max_frame_size: u32,
    /// Highest channel we accept.
    pub channel_max: u16,
    /// Silence we tolerate from the peer before giving up.
    pub idle_timeout: Option<Duration>,
    /// Connection properties for `open`.
    pub properties: Option<Fields>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Limit for TCP connect, TLS handshake and the open exchange together.
    pub connect_timeout: Duration,
    /// How this connection's frames are traced.
    pub frame_trace: FrameTrace,
}

static CONTAINER_SEQ: AtomicU64 = AtomicU64::new(0);

/// A container id unique within this process and unlikely to collide across processes.
pub(crate) fn fresh_container_id(prefix: &str) -> String {
    let n = CONTAINER_SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}-{:x}-{n}",
        std::process::id(),
        t & 0xffff_ffff
    )
}

impl ConnectOptions {
    /// Plain TCP to `host:port`, no SASL, with our defaults.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            #[cfg(feature = "tls")]
            tls: None,
            sasl: None,
            container_id: fresh_container_id("eventhubs"),
            hostname: None,
            max_frame_size: 65536,
            channel_max: 255,
            idle_timeout: Some(Duration::from_secs(60)),
            properties: None,
            desired_capabilities: None,
            connect_timeout: Duration::from_secs(30),
            frame_trace: FrameTrace::Debug,
        }
    }

    /// Uses SASL ANONYMOUS.
    pub fn sasl_anonymous(mut self) -> Self {
        self.sasl = Some(SaslClientMechanism::Anonymous);
        self
    }

    /// Uses SASL PLAIN.
    pub fn sasl_plain(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl = Some(SaslClientMechanism::Plain {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Uses TLS with the given settings.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::io::tls::TlsClientOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    fn engine_config(&self) -> ConnectionConfig {
        ConnectionConfig {
            container_id: self.container_id.clone(),
            hostname: Some(self.hostname.clone().unwrap_or_else(|| self.host.clone())),
            max_frame_size: self.max_frame_size,
            channel_max: self.channel_max,
            idle_timeout: self.idle_timeout,
            properties: self.properties.clone(),
            offered_capabilities: None,
            desired_capabilities: self.desired_capabilities.clone(),
            sasl: self.sasl.clone(),
            sasl_server: None,
            allow_no_sasl: true,
            frame_trace: self.frame_trace,
            limits: Default::default(),
        }
    }
}

/// An open AMQP connection. Cheap to clone; the connection lives while any clone, session or
/// link does.
#[derive(Clone, Debug)]
pub struct Connection {
    handle: DriverHandle,
    remote: Arc<Open>,
}

impl Connection {
    /// Connects, runs TLS and SASL as configured, and exchanges `open`.
    pub async fn connect(options: ConnectOptions) -> Result<Connection, Error> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let work = async {
            let tcp = TcpStream::connect((options.host.as_str(), options.port)).await?;
            tcp.set_nodelay(true)?;
            #[cfg(feature = "tls")]
            let io: BoxedTransport = match &options.tls {
                Some(tls) => super::io::tls::connect(tcp, &options.host, tls).await?,
                None => Box::new(tcp),
            };
            #[cfg(not(feature = "tls"))]
            let io: BoxedTransport = Box::new(tcp);
            Self::connect_over(io, options.engine_config()).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Opens a connection over an already-established transport (e.g. an in-memory pipe).
    pub async fn connect_over(
        io: BoxedTransport,
        config: ConnectionConfig,
    ) -> Result<Connection, Error> {
        let engine = Engine::client(config, Instant::now());
        let (opened_tx, opened_rx) = oneshot::channel();
        let handle = driver::spawn(
            engine,
            io,
            DriverSetup {
                opened: opened_tx,
                incoming: None,
            },
        );
        let remote = opened_rx
            .await
            .unwrap_or(Err(Error::ConnectionClosed(None)))?;
        Ok(Connection {
            handle,
            remote: Arc::new(remote),
        })
    }

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
        Ok(Session {
            handle: self.handle.clone(),
            id,
        })
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
}

/// A session: a pair of channels carrying links.
#[derive(Clone, Debug)]
pub struct Session {
    handle: DriverHandle,
    id: SessionId,
}

static LINK_SEQ: AtomicU64 = AtomicU64::new(0);

fn link_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        fresh_container_id(&LINK_SEQ.fetch_add(1, Ordering::Relaxed).to_string())
    )
}

/// Settings for a sending link.
#[derive(Clone, Debug)]
pub struct SenderOptions {
    /// Link name; generated when `None`.
    pub name: Option<String>,
    /// The target node.
    pub target: Target,
    /// Our source; [`SenderOptions::new`] names it after the link, as the official clients do
    /// (some servers echo it back and fail on a null one).
    pub source: Option<Source>,
    /// How we settle.
    pub snd_settle_mode: SenderSettleMode,
    /// How the receiver should settle.
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Link properties.
    pub properties: Option<Fields>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
    /// Most unsettled sends at once; further sends wait (bounds memory).
    pub max_in_flight: usize,
}

impl SenderOptions {
    /// A sender to `address` with defaults (unsettled sends, up to 5000 in flight), its link
    /// name generated and its source named after it.
    pub fn new(address: impl Into<String>) -> Self {
        let address: String = address.into();
        let name = link_name("sender");
        SenderOptions {
            source: Some(Source::new(name.as_str())),
            name: Some(name),
            target: Target::new(address.as_str()),
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            properties: None,
            desired_capabilities: None,
            max_in_flight: 5000,
        }
    }
}

/// Settings for a receiving link.
#[derive(Clone, Debug)]
pub struct ReceiverOptions {
    /// Link name; generated when `None`.
    pub name: Option<String>,
    /// The source node (with filters, if any).
    pub source: Source,
    /// Our target; [`ReceiverOptions::new`] names it after the link, as the official clients
    /// do (some servers echo it back and fail on a null one).
    pub target: Option<Target>,
    /// Credit kept granted: how many messages may be buffered ahead of `recv`. 0 means manual
    /// credit ([`Receiver::add_credit`]).
    pub prefetch: u32,
    /// How the sender should settle.
    pub snd_settle_mode: SenderSettleMode,
    /// How we settle.
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Largest message we accept.
    pub max_message_size: Option<u64>,
    /// Link properties.
    pub properties: Option<Fields>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
}

impl ReceiverOptions {
    /// A receiver from `address` with a prefetch of 300 messages, its link name generated and
    /// its target named after it.
    pub fn new(address: impl Into<String>) -> Self {
        let address: String = address.into();
        let name = link_name("receiver");
        ReceiverOptions {
            target: Some(Target::new(name.as_str())),
            name: Some(name),
            source: Source::new(address.as_str()),
            prefetch: 300,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            max_message_size: None,
            properties: None,
            desired_capabilities: None,
        }
    }
}

impl Session {
    /// Attaches a sending link and waits for the peer's attach.
    pub async fn attach_sender(&self, options: SenderOptions) -> Result<Sender, Error> {
        let config = LinkConfig {
            name: options.name.clone().unwrap_or_else(|| link_name("sender")),
            role: Role::Sender,
            source: options.source.clone(),
            target: Some(options.target.clone()),
            snd_settle_mode: options.snd_settle_mode,
            rcv_settle_mode: options.rcv_settle_mode,
            max_message_size: None,
            properties: options.properties.clone(),
            offered_capabilities: None,
            desired_capabilities: options.desired_capabilities.clone(),
        };
        let session = self.id;
        let attached = self
            .handle
            .call(|reply| Command::Attach {
                session,
                config,
                credit: 0,
                reply,
            })
            .await?;
        Ok(Sender::new(
            self.handle.clone(),
            attached,
            options.max_in_flight,
        ))
    }

    /// Attaches a receiving link, grants its prefetch credit, and waits for the peer's attach.
    pub async fn attach_receiver(&self, options: ReceiverOptions) -> Result<Receiver, Error> {
        let config = LinkConfig {
            name: options
                .name
                .clone()
                .unwrap_or_else(|| link_name("receiver")),
            role: Role::Receiver,
            source: Some(options.source.clone()),
            target: options.target.clone(),
            snd_settle_mode: options.snd_settle_mode,
            rcv_settle_mode: options.rcv_settle_mode,
            max_message_size: options.max_message_size,
            properties: options.properties.clone(),
            offered_capabilities: None,
            desired_capabilities: options.desired_capabilities.clone(),
        };
        let session = self.id;
        let credit = options.prefetch;
        let attached = self
            .handle
            .call(|reply| Command::Attach {
                session,
                config,
                credit,
                reply,
            })
            .await?;
        Receiver::new(self.handle.clone(), attached, options.prefetch)
    }

    /// Ends the session and waits for the peer's end.
    pub async fn end(&self) -> Result<(), Error> {
        let session = self.id;
        self.handle
            .call(|reply| Command::EndSession {
                session,
                error: None,
                reply,
            })
            .await
    }
}

/// A sending link.
#[derive(Debug)]
pub struct Sender {
    handle: DriverHandle,
    link: LinkId,
    remote: Option<Box<Attach>>,
    status: watch::Receiver<LinkStatus>,
    permits: Arc<Semaphore>,
}

/// A send in flight: resolves to the peer's outcome. Dropping it does not cancel the send.
#[derive(Debug)]
pub struct PendingSend {
    rx: oneshot::Receiver<SendResult>,
}

impl Future for PendingSend {
    type Output = Result<Option<DeliveryState>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::ConnectionClosed(None))))
    }
}

impl Sender {
    pub(crate) fn new(handle: DriverHandle, attached: Attached, max_in_flight: usize) -> Self {
        Sender {
            handle,
            link: attached.link,
            remote: attached.remote,
            status: attached.status,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// The peer's attach (absent for links the peer attached to us).
    pub fn remote_attach(&self) -> Option<&Attach> {
        self.remote.as_deref()
    }

    /// The largest message the peer accepts, if it said.
    pub fn max_message_size(&self) -> Option<u64> {
        self.remote
            .as_ref()
            .and_then(|a| a.max_message_size)
            .filter(|&m| m > 0)
    }

    /// Deliveries the link may start now without waiting for credit.
    pub fn credit(&self) -> u32 {
        self.status.borrow().credit
    }

    /// True once the link is gone (detached by either side, or its connection lost).
    pub fn is_detached(&self) -> bool {
        self.status.borrow().detached.is_some()
    }

    /// Waits until the peer grants credit (returns it), or fails when the link is gone.
    pub async fn wait_for_credit(&mut self) -> Result<u32, Error> {
        loop {
            {
                let s = self.status.borrow_and_update();
                if let Some(e) = &s.detached {
                    return Err(e.clone());
                }
                if s.credit > 0 {
                    return Ok(s.credit);
                }
            }
            if self.status.changed().await.is_err() {
                return Err(Error::ConnectionClosed(None));
            }
        }
    }

    /// Resolves once the link is gone (detached by either side, or the connection lost), with
    /// the reason.
    pub async fn detached(&self) -> Error {
        let mut status = self.status.clone();
        loop {
            if let Some(e) = status.borrow_and_update().detached.clone() {
                return e;
            }
            if status.changed().await.is_err() {
                return Error::ConnectionClosed(None);
            }
        }
    }

    /// Sends a message and waits for the peer's outcome.
    pub async fn send(&self, message: &Message) -> Result<Option<DeliveryState>, Error> {
        self.start_send(message).await?.await
    }

    /// Queues a message and returns at once with a future for its outcome — the pipelined
    /// form: many sends are on the wire before the first outcome returns. Waits only when
    /// `max_in_flight` sends are already unsettled.
    pub async fn start_send(&self, message: &Message) -> Result<PendingSend, Error> {
        let mut buf = BytesMut::with_capacity(message.encoded_len());
        message.encode(&mut buf);
        self.start_send_bytes(buf.freeze(), 0, false).await
    }

    /// Sends an already-encoded message (e.g. an Event Hubs batch with its message format);
    /// `settled` sends it pre-settled (the future resolves at once with `None`).
    pub async fn start_send_bytes(
        &self,
        payload: Bytes,
        message_format: u32,
        settled: bool,
    ) -> Result<PendingSend, Error> {
        if let Some(e) = &self.status.borrow().detached {
            return Err(e.clone());
        }
        let permit = if settled {
            None
        } else {
            Some(
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::ConnectionClosed(None))?,
            )
        };
        let (tx, rx) = oneshot::channel();
        self.handle.send(Command::Send {
            link: self.link,
            payload,
            format: message_format,
            settled,
            reply: tx,
            permit,
        })?;
        Ok(PendingSend { rx })
    }

    /// Detaches the link (closing it) and waits for the peer's detach.
    pub async fn close(self) -> Result<(), Error> {
        close_link(&self.handle, self.link, None).await
    }

    /// Detaches the link (closing it) with an error, e.g. `amqp:link:stolen`.
    pub async fn close_with_error(self, error: AmqpError) -> Result<(), Error> {
        close_link(&self.handle, self.link, Some(error)).await
    }
}

/// Detaches a link whose handle was dropped without `close`, so the peer frees it (an
/// Event Hubs reader slot, say) now rather than when the connection ends.
fn detach_on_drop(handle: &DriverHandle, link: LinkId) {
    let (reply, _) = oneshot::channel();
    let _ = handle.send(Command::Detach {
        link,
        closed: true,
        error: None,
        reply,
    });
}

impl Drop for Sender {
    fn drop(&mut self) {
        detach_on_drop(&self.handle, self.link);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        detach_on_drop(&self.handle, self.link);
    }
}

async fn close_link(
    handle: &DriverHandle,
    link: LinkId,
    error: Option<AmqpError>,
) -> Result<(), Error> {
    let r = handle
        .call(|reply| Command::Detach {
            link,
            closed: true,
            error,
            reply,
        })
        .await;
    match r {
        Err(Error::ConnectionClosed(_)) => Ok(()),
        other => other,
    }
}

/// A message received on a link.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// The delivery: id, tag, settled flag and the encoded message.
    pub delivery: Delivery,
}

impl ReceivedMessage {
    /// The encoded message bytes (a slice of the frame for single-frame deliveries).
    pub fn payload(&self) -> &Bytes {
        &self.delivery.payload
    }

    /// Decodes the message (zero-copy: bodies are slices of the payload).
    pub fn message(&self) -> Result<Message, DecodeError> {
        Message::decode(self.delivery.payload.clone())
    }

    /// True when the sender settled it already.
    pub fn is_settled(&self) -> bool {
        self.delivery.settled
    }
}

/// A receiving link.
#[derive(Debug)]
pub struct Receiver {
    handle: DriverHandle,
    link: LinkId,
    remote: Option<Box<Attach>>,
    rx: mpsc::UnboundedReceiver<LinkMsg>,
    prefetch: u32,
    consumed: u32,
    detached: Option<Error>,
}

impl Receiver {
    pub(crate) fn new(
        handle: DriverHandle,
        attached: Attached,
        prefetch: u32,
    ) -> Result<Self, Error> {
        let rx = attached.deliveries.ok_or_else(|| {
            Error::Amqp(AmqpError::with_description(
                super::types::error::condition::INTERNAL_ERROR,
                "receiver link without a delivery channel",
            ))
        })?;
        Ok(Receiver {
            handle,
            link: attached.link,
            remote: attached.remote,
            rx,
            prefetch,
            consumed: 0,
            detached: None,
        })
    }

    /// The peer's attach (absent for links the peer attached to us).
    pub fn remote_attach(&self) -> Option<&Attach> {
        self.remote.as_deref()
    }

    /// The next message; fails once the link or connection is gone.
    pub async fn recv(&mut self) -> Result<ReceivedMessage, Error> {
        if let Some(e) = &self.detached {
            return Err(e.clone());
        }
        let msg = self.rx.recv().await;
        self.take(msg).unwrap_or_else(|| {
            Err(self
                .detached
                .clone()
                .unwrap_or(Error::ConnectionClosed(None)))
        })
    }

    /// The next message if one is buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<ReceivedMessage> {
        let msg = self.rx.try_recv().ok()?;
        self.take(Some(msg)).and_then(Result::ok)
    }

    /// Turns what the driver sent into a message or the link's end (remembered).
    fn take(&mut self, msg: Option<LinkMsg>) -> Option<Result<ReceivedMessage, Error>> {
        match msg {
            Some(LinkMsg::Delivery(delivery)) => {
                self.consumed_one();
                Some(Ok(ReceivedMessage { delivery }))
            }
            Some(LinkMsg::Detached(e)) => {
                self.detached = Some(e.clone());
                Some(Err(e))
            }
            None => {
                self.detached = Some(Error::ConnectionClosed(None));
                None
            }
        }
    }

    /// Tops the credit back up once half the prefetch window has been consumed, so the
    /// buffer never holds more than `prefetch` messages.
    fn consumed_one(&mut self) {
        if self.prefetch == 0 {
            return;
        }
        self.consumed += 1;
        if self.consumed >= (self.prefetch / 2).max(1) {
            let credit = std::mem::take(&mut self.consumed);
            let _ = self.handle.send(Command::AddCredit {
                link: self.link,
                credit,
            });
        }
    }

    /// Grants more credit (manual credit mode, `prefetch == 0`).
    pub fn add_credit(&self, credit: u32) -> Result<(), Error> {
        self.handle.send(Command::AddCredit {
            link: self.link,
            credit,
        })
    }

    /// Asks the sender to use up or return the granted credit.
    pub fn drain(&self) -> Result<(), Error> {
        self.handle.send(Command::Drain { link: self.link })
    }

    /// Settles a message with `state` (no-op for pre-settled messages).
    pub fn settle(&self, message: &ReceivedMessage, state: DeliveryState) -> Result<(), Error> {
        if message.delivery.settled {
            return Ok(());
        }
        self.handle.send(Command::Settle {
            link: self.link,
            delivery_id: message.delivery.delivery_id,
            state: Some(state),
        })
    }

    /// Accepts a message.
    pub fn accept(&self, message: &ReceivedMessage) -> Result<(), Error> {
        self.settle(
            message,
            DeliveryState::Accepted(super::types::messaging::Accepted),
        )
    }

    /// Rejects a message with an error.
    pub fn reject(&self, message: &ReceivedMessage, error: Option<AmqpError>) -> Result<(), Error> {
        self.settle(message, DeliveryState::Rejected(Rejected { error }))
    }

    /// Releases a message back to the sender for redelivery.
    pub fn release(&self, message: &ReceivedMessage) -> Result<(), Error> {
        self.settle(message, DeliveryState::Released(Released))
    }

    /// Settles a message as modified.
    pub fn modify(&self, message: &ReceivedMessage, modified: Modified) -> Result<(), Error> {
        self.settle(message, DeliveryState::Modified(modified))
    }

    /// Detaches the link (closing it) and waits for the peer's detach.
    pub async fn close(self) -> Result<(), Error> {
        close_link(&self.handle, self.link, None).await
    }

    /// Detaches the link (closing it) with an error.
    pub async fn close_with_error(self, error: AmqpError) -> Result<(), Error> {
        close_link(&self.handle, self.link, Some(error)).await
    }
}
