//! The receiving link handle, its options, and the messages it yields.

use super::codec::{DecodeError, Symbol};
use super::engine::{Delivery, LinkId};
use super::error::Error;
use super::io::driver::{Attached, Command, DriverHandle, LinkMsg};
use super::link::{close_link, detach_on_drop};
use super::types::definitions::{Fields, ReceiverSettleMode, SenderSettleMode};
use super::types::error::AmqpError;
use super::types::message::Message;
use super::types::messaging::{DeliveryState, Modified, Rejected, Released, Source, Target};
use super::types::transport::Attach;
use bytes::Bytes;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Settings for a receiving link.
#[derive(Clone, Debug)]
#[non_exhaustive]
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

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl ReceiverOptions {
    /// Sets `name`: link name; generated when `None`.
    pub fn with_name(mut self, value: String) -> Self {
        self.name = Some(value);
        self
    }

    /// Sets `source`: the source node (with filters, if any).
    pub fn with_source(mut self, value: Source) -> Self {
        self.source = value;
        self
    }

    /// Sets `target`: our target; [`ReceiverOptions::new`] names it after the link, as the official clients.
    pub fn with_target(mut self, value: Target) -> Self {
        self.target = Some(value);
        self
    }

    /// Sets `prefetch`: credit kept granted: how many messages may be buffered ahead of `recv`. 0 means manual.
    pub fn with_prefetch(mut self, value: u32) -> Self {
        self.prefetch = value;
        self
    }

    /// Sets `snd_settle_mode`: how the sender should settle.
    pub fn with_snd_settle_mode(mut self, value: SenderSettleMode) -> Self {
        self.snd_settle_mode = value;
        self
    }

    /// Sets `rcv_settle_mode`: how we settle.
    pub fn with_rcv_settle_mode(mut self, value: ReceiverSettleMode) -> Self {
        self.rcv_settle_mode = value;
        self
    }

    /// Sets `max_message_size`: largest message we accept.
    pub fn with_max_message_size(mut self, value: u64) -> Self {
        self.max_message_size = Some(value);
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
}

impl ReceiverOptions {
    /// A receiver from `address` with a prefetch of 300 messages, its link name generated and
    /// its target named after it.
    pub fn new(address: impl Into<String>) -> Self {
        let address: String = address.into();
        let name = super::session::link_name("receiver");
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
    /// The rest of a batch of deliveries the driver handed over at once (never more than the
    /// credit granted, so bounded by the prefetch).
    buffered: VecDeque<Delivery>,
    prefetch: u32,
    consumed: u32,
    /// Credit was granted since the last [`Self::flush_credit`].
    credit_granted: bool,
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
            buffered: VecDeque::new(),
            prefetch,
            consumed: 0,
            credit_granted: false,
            detached: None,
        })
    }

    /// The peer's attach (absent for links the peer attached to us).
    pub fn remote_attach(&self) -> Option<&Attach> {
        self.remote.as_deref()
    }

    /// The next message; fails once the link or connection is gone.
    pub async fn recv(&mut self) -> Result<ReceivedMessage, Error> {
        if let Some(m) = self.take_buffered() {
            return Ok(m);
        }
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
        if let Some(m) = self.take_buffered() {
            return Some(m);
        }
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
            Some(LinkMsg::Deliveries(v)) => {
                // Only asked for once the buffer is empty, so this keeps the order.
                self.buffered = VecDeque::from(v);
                self.take_buffered().map(Ok)
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

    /// The next delivery of the batch in hand, if any.
    fn take_buffered(&mut self) -> Option<ReceivedMessage> {
        let delivery = self.buffered.pop_front()?;
        self.consumed_one();
        Some(ReceivedMessage { delivery })
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
            self.credit_granted = true;
        }
    }

    /// Lets the connection's driver send the credit granted since the last call before the
    /// caller goes on with other work (say, processing the messages it just took).
    ///
    /// On tokio's multi-thread runtime a task woken from a worker waits in that worker's
    /// LIFO slot, where no other worker can take it, until the waking task next waits: the
    /// driver would send the credit only after the caller's processing, and the sender would
    /// idle meanwhile. Yielding once runs the driver first. Nothing happens when no credit
    /// was granted.
    pub async fn flush_credit(&mut self) {
        if std::mem::take(&mut self.credit_granted) {
            tokio::task::yield_now().await;
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

impl Drop for Receiver {
    fn drop(&mut self) {
        detach_on_drop(&self.handle, self.link);
    }
}
