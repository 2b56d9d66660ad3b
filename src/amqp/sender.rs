//! The sending link handle and its options.

use super::codec::Symbol;
use super::engine::LinkId;
use super::error::Error;
use super::io::driver::{Attached, Command, DriverHandle, LinkStatus, SendResult};
use super::link::{close_link, detach_on_drop};
use super::types::definitions::{Fields, ReceiverSettleMode, SenderSettleMode};
use super::types::error::AmqpError;
use super::types::message::Message;
use super::types::messaging::{DeliveryState, Source, Target};
use super::types::transport::Attach;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{oneshot, watch, Semaphore};

/// Settings for a sending link.
#[derive(Clone, Debug)]
#[non_exhaustive]
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

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl SenderOptions {
    /// Sets `name`: link name; generated when `None`.
    pub fn with_name(mut self, value: String) -> Self {
        self.name = Some(value);
        self
    }

    /// Sets `target`: the target node.
    pub fn with_target(mut self, value: Target) -> Self {
        self.target = value;
        self
    }

    /// Sets `source`: our source; [`SenderOptions::new`] names it after the link, as the official clients do.
    pub fn with_source(mut self, value: Source) -> Self {
        self.source = Some(value);
        self
    }

    /// Sets `snd_settle_mode`: how we settle.
    pub fn with_snd_settle_mode(mut self, value: SenderSettleMode) -> Self {
        self.snd_settle_mode = value;
        self
    }

    /// Sets `rcv_settle_mode`: how the receiver should settle.
    pub fn with_rcv_settle_mode(mut self, value: ReceiverSettleMode) -> Self {
        self.rcv_settle_mode = value;
        self
    }

    /// Sets `properties`: link properties.
    pub fn with_properties(mut self, value: Fields) -> Self {
        self.properties = Some(value);
        self
    }

    /// Sets `desired_capabilities`: capabilities we want.
    pub fn with_desired_capabilities(mut self, value: Vec<Symbol>) -> Self {
        self.desired_capabilities = Some(value);
        self
    }

    /// Sets `max_in_flight`: most unsettled sends at once; further sends wait (bounds memory).
    pub fn with_max_in_flight(mut self, value: usize) -> Self {
        self.max_in_flight = value;
        self
    }
}

impl SenderOptions {
    /// A sender to `address` with defaults (unsettled sends, up to 5000 in flight), its link
    /// name generated and its source named after it.
    pub fn new(address: impl Into<String>) -> Self {
        let address: String = address.into();
        let name = super::session::link_name("sender");
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
        self.start_send_bytes(message.to_bytes(), 0, false).await
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

    /// Sends already-encoded messages pre-settled, in order, as one request to the connection
    /// (no per-message outcome to wait for, so one reply covers the batch): for a sender that
    /// has many deliveries ready at once. The future resolves once all are queued on the
    /// link, after which [`Self::credit`] accounts for them. Sending more than the credit
    /// queues the rest until the peer grants more.
    pub async fn send_settled_batch(
        &self,
        payloads: Vec<Bytes>,
        message_format: u32,
    ) -> Result<PendingSend, Error> {
        if let Some(e) = &self.status.borrow().detached {
            return Err(e.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.handle.send(Command::SendSettledBatch {
            link: self.link,
            payloads,
            format: message_format,
            reply: tx,
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

impl Drop for Sender {
    fn drop(&mut self) {
        detach_on_drop(&self.handle, self.link);
    }
}
