//! [`EventHubProducer`]: sends events, lists of events and batches to a partition or to the
//! hub (the service picks the partition, round-robin or by partition key).
//!
//! Sends are pipelined: the producer can be cloned and used from many tasks at once, and each
//! send holds only its own transfer while it waits for the service's outcome. Transient
//! failures are retried with backoff; a lost link or connection is re-opened and the sends
//! that were not acknowledged are sent again (at-least-once).

use crate::amqp::codec::Encode;
use crate::amqp::types::messaging::DeliveryState;
use crate::amqp::SenderOptions;
use crate::batch::{
    resolve_max_size, BatchOptions, EventDataBatch, BATCH_MESSAGE_FORMAT, DEFAULT_MAX_MESSAGE_SIZE,
};
use crate::client::{EventHubClient, LinkHandle};
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::idempotent::{
    self as publishing, PartitionPublishingOptions, PartitionPublishingProperties,
};
use crate::retry::RetryOptions;
use crate::wire::address::partition_path;
use crate::wire::idempotent::{self, PublishingState};
use crate::wire::link_props;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Options for [`EventHubClient::create_producer`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// Send to this partition; `None` lets the service choose (round-robin or by key).
    pub partition_id: Option<String>,
    /// Per-attempt send timeout; defaults to the client's operation timeout.
    pub send_timeout: Option<Duration>,
    /// Retry policy; defaults to the client's.
    pub retry: Option<RetryOptions>,
    /// Publish exactly once: number every event so the service drops resends (see
    /// [`crate::idempotent`]). Needs a partition id; sends then go one at a time.
    pub enable_idempotent_partitions: bool,
    /// Starting idempotent-publishing state per partition id (by default the service
    /// assigns a fresh producer id).
    pub partition_options: HashMap<String, PartitionPublishingOptions>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl ProducerOptions {
    /// Sets the partition to send to (by default the service picks one).
    pub fn with_partition_id(mut self, value: impl Into<String>) -> Self {
        self.partition_id = Some(value.into());
        self
    }

    /// Sets the timeout of each send (by default the client's operation timeout).
    pub fn with_send_timeout(mut self, value: Duration) -> Self {
        self.send_timeout = Some(value);
        self
    }

    /// Sets the retry policy of this producer (by default the client's).
    pub fn with_retry(mut self, value: RetryOptions) -> Self {
        self.retry = Some(value);
        self
    }

    /// Turns exactly-once (idempotent) publishing on or off.
    pub fn with_enable_idempotent_partitions(mut self, value: bool) -> Self {
        self.enable_idempotent_partitions = value;
        self
    }

    /// Sets the starting idempotent-publishing state for `partition_id`.
    pub fn with_partition_options(
        mut self,
        partition_id: impl Into<String>,
        value: PartitionPublishingOptions,
    ) -> Self {
        self.partition_options.insert(partition_id.into(), value);
        self
    }
}

impl ProducerOptions {
    /// Options for a producer to `partition_id`.
    pub fn partition(partition_id: impl Into<String>) -> Self {
        ProducerOptions {
            partition_id: Some(partition_id.into()),
            ..Default::default()
        }
    }
}

/// Options for one send.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SendOptions {
    /// Partition key for the events (producers to the hub only).
    pub partition_key: Option<String>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl SendOptions {
    /// Sets the partition key: events with one key land in one partition, in order.
    pub fn with_partition_key(mut self, value: impl Into<String>) -> Self {
        self.partition_key = Some(value.into());
        self
    }
}

/// What [`EventHubProducer::send`] takes: one event, a list that must fit one message, or a
/// batch.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SendPayload {
    /// One event, sent as a plain message.
    Event(EventData),
    /// Several events in one batch message; they must fit together.
    Events(Vec<EventData>),
    /// A prepared batch.
    Batch(EventDataBatch),
}

impl From<EventData> for SendPayload {
    fn from(e: EventData) -> Self {
        SendPayload::Event(e)
    }
}

impl From<Vec<EventData>> for SendPayload {
    fn from(v: Vec<EventData>) -> Self {
        SendPayload::Events(v)
    }
}

impl From<EventDataBatch> for SendPayload {
    fn from(b: EventDataBatch) -> Self {
        SendPayload::Batch(b)
    }
}

/// How many of [`EventHubProducer::send_all`]'s batches may wait for the service's outcome
/// at once: enough to keep a link busy across a round trip, few enough that a resend after a
/// failure repeats little.
pub const SEND_ALL_IN_FLIGHT: usize = 8;

fn send_timed_out(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::OperationTimeout,
        format!("send_all: the service did not answer a batch within {timeout:?}"),
    )
}

fn attach_timed_out(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::OperationTimeout,
        format!("send_all: attaching the link did not complete within {timeout:?}"),
    )
}

struct ProducerInner {
    client: EventHubClient,
    path: String,
    partition_id: Option<String>,
    retry: RetryOptions,
    timeout: Duration,
    /// The current link; a plain mutex held only to clone or swap the `Arc`.
    link: std::sync::Mutex<Option<Arc<LinkHandle<crate::amqp::Sender>>>>,
    /// Serialises (re)attaching so that one lost link is replaced once.
    attach: tokio::sync::Mutex<()>,
    max_message_size: AtomicU64,
    /// Set for an idempotent producer.
    idempotent: Option<Idempotent>,
}

/// An idempotent producer's publishing state.
struct Idempotent {
    /// Held for a whole send: numbers are given out and committed one send at a time.
    gate: tokio::sync::Mutex<()>,
    /// The state as the service last confirmed it, advanced by each accepted send.
    state: std::sync::Mutex<Option<PublishingState>>,
    /// The state to ask for at the first attach.
    requested: Option<PublishingState>,
    /// Set when a send failed: whether its events were stored is unknown, so the state is
    /// read again from a fresh attach before numbering the next send.
    stale: AtomicBool,
    /// Set once a higher epoch took the producer id over: permanent, so every later send
    /// fails with it at once instead of attaching only to be refused.
    stolen: std::sync::Mutex<Option<Error>>,
}

impl Idempotent {
    fn state(&self) -> Option<PublishingState> {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: PublishingState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    fn stolen(&self) -> Option<Error> {
        self.stolen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Passes `e` on, remembering it if it says the epoch was stolen.
    fn note(&self, e: Error) -> Error {
        if e.kind() == ErrorKind::ProducerEpochStolen {
            *self.stolen.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
        }
        e
    }
}

/// Sends events to one event hub (or one of its partitions). Cheap to clone; clones share the
/// link and may send concurrently.
#[derive(Clone)]
pub struct EventHubProducer {
    inner: Arc<ProducerInner>,
}

impl std::fmt::Debug for EventHubProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubProducer")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl EventHubClient {
    /// A producer to a partition or to the hub; attaches its link before returning, so an
    /// unknown hub or partition fails here.
    pub async fn create_producer(
        &self,
        options: ProducerOptions,
    ) -> Result<EventHubProducer, Error> {
        let path = match &options.partition_id {
            Some(p) => partition_path(self.event_hub_name(), p),
            None => self.event_hub_name().to_owned(),
        };
        let idempotent = match (&options.partition_id, options.enable_idempotent_partitions) {
            (_, false) => None,
            (None, true) => {
                return Err(Error::invalid_argument(
                    "an idempotent producer must send to a partition: set a partition id",
                ))
            }
            (Some(p), true) => Some(Idempotent {
                gate: tokio::sync::Mutex::new(()),
                state: std::sync::Mutex::new(None),
                requested: options
                    .partition_options
                    .get(p)
                    .map(PartitionPublishingOptions::requested)
                    .transpose()?
                    .flatten(),
                stale: AtomicBool::new(false),
                stolen: std::sync::Mutex::new(None),
            }),
        };
        let producer = EventHubProducer {
            inner: Arc::new(ProducerInner {
                client: self.clone(),
                path,
                partition_id: options.partition_id,
                retry: options
                    .retry
                    .unwrap_or_else(|| self.options().retry.clone()),
                timeout: options
                    .send_timeout
                    .unwrap_or(self.options().operation_timeout),
                link: std::sync::Mutex::new(None),
                attach: tokio::sync::Mutex::new(()),
                max_message_size: AtomicU64::new(DEFAULT_MAX_MESSAGE_SIZE),
                idempotent,
            }),
        };
        let p = &producer;
        p.inner
            .retry
            .run("creating a producer", p.inner.timeout, |_| async move {
                p.link().await.map(|_| ())
            })
            .await?;
        Ok(producer)
    }
}

impl EventHubProducer {
    /// The partition this producer sends to, if any.
    pub fn partition_id(&self) -> Option<&str> {
        self.inner.partition_id.as_deref()
    }

    /// The largest message the service accepts on this link (its `max-message-size`).
    pub fn max_message_size(&self) -> u64 {
        self.inner.max_message_size.load(Ordering::Relaxed)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<LinkHandle<crate::amqp::Sender>>>> {
        self.inner.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current link if it is still usable.
    fn current(&self) -> Option<Arc<LinkHandle<crate::amqp::Sender>>> {
        self.slot()
            .as_ref()
            .filter(|l| {
                l.link().remote_attach().is_some()
                    && !l.conn.connection.is_closed()
                    && !l.link().is_detached()
            })
            .cloned()
    }

    /// The current link, attaching a new one if there is none or it is broken.
    async fn link(&self) -> Result<Arc<LinkHandle<crate::amqp::Sender>>, Error> {
        if let Some(l) = self.current() {
            return Ok(l);
        }
        let _attaching = self.inner.attach.lock().await;
        if let Some(l) = self.current() {
            return Ok(l);
        }
        // The old link closes once its in-flight sends let go of it.
        drop(self.slot().take());
        let mut o = SenderOptions::new(self.inner.path.as_str());
        let mut props = vec![link_props::timeout(self.inner.timeout)];
        if let Some(idem) = &self.inner.idempotent {
            o.desired_capabilities = Some(vec![link_props::IDEMPOTENT_PRODUCER]);
            let requested = idem.state().or(idem.requested);
            props.extend(idempotent::link_properties(requested.as_ref()));
        }
        o.properties = Some(props);
        let l = Arc::new(self.inner.client.open_sender(&self.inner.path, o).await?);
        if let Some(idem) = &self.inner.idempotent {
            let remote = l.link().remote_attach().and_then(|a| a.properties.as_ref());
            match idempotent::read_link_properties(remote) {
                Ok(Some(state)) => idem.set(state),
                Ok(None) => {
                    return Err(Error::new(
                        ErrorKind::EventHub,
                        format!(
                            "{} did not confirm idempotent publishing: its attach carries no producer state",
                            self.inner.path
                        ),
                    ))
                }
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::EventHub,
                        format!("{}: unusable producer state in the attach: {e}", self.inner.path),
                    ))
                }
            }
        }
        if let Some(m) = l.link().max_message_size() {
            self.inner.max_message_size.store(m, Ordering::Relaxed);
        }
        *self.slot() = Some(l.clone());
        Ok(l)
    }

    /// Drops `link` if it is still the current one, so the next send attaches afresh.
    async fn link_failed(&self, link: &Arc<LinkHandle<crate::amqp::Sender>>) {
        {
            let mut slot = self.slot();
            if slot.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                slot.take();
            }
        }
        self.inner.client.connection_failed(&link.conn).await;
    }

    /// A batch sized to this link (or to a smaller `max_size`; a larger one is an error).
    pub async fn create_batch(&self, options: BatchOptions) -> Result<EventDataBatch, Error> {
        let key = options.partition_key.as_deref();
        self.ready_for_batches(key).await?;
        let max = resolve_max_size(options.max_size, self.max_message_size())?;
        Ok(self.empty_batch(max, key))
    }

    /// Refuses a partition key on a producer bound to a partition, and attaches the link so
    /// that its max-message-size is known.
    async fn ready_for_batches(&self, key: Option<&str>) -> Result<(), Error> {
        if key.is_some() && self.inner.partition_id.is_some() {
            return Err(Error::invalid_argument(
                "a partition key cannot be used with a producer bound to a partition",
            ));
        }
        let p = self;
        self.inner
            .retry
            .run("creating a batch", self.inner.timeout, |_| async move {
                p.link().await.map(|_| ())
            })
            .await
    }

    /// An empty batch of at most `max` bytes for this producer: an idempotent one keeps room
    /// on each event for the stamp its send adds.
    pub(crate) fn empty_batch(&self, max: usize, key: Option<&str>) -> EventDataBatch {
        self.empty_batch_with_capacity(max, key, crate::batch::INITIAL_CAPACITY)
    }

    /// [`Self::empty_batch`] with room for `capacity` bytes before its buffer grows.
    pub(crate) fn empty_batch_with_capacity(
        &self,
        max: usize,
        key: Option<&str>,
        capacity: usize,
    ) -> EventDataBatch {
        let reserve = if self.inner.idempotent.is_some() {
            idempotent::max_stamp_len()
        } else {
            0
        };
        EventDataBatch::with_capacity(max, key, capacity)
            .with_partition_id(self.inner.partition_id.clone())
            .with_reserve_per_event(reserve)
    }

    /// Sends one event, a list of events (which must fit one message) or a batch, and waits
    /// until the service accepts it.
    pub async fn send(&self, payload: impl Into<SendPayload>) -> Result<(), Error> {
        self.send_with_options(payload, SendOptions::default())
            .await
    }

    /// [`EventHubProducer::send`] with a partition key for the events.
    pub async fn send_with_options(
        &self,
        payload: impl Into<SendPayload>,
        options: SendOptions,
    ) -> Result<(), Error> {
        let key = options.partition_key.as_deref();
        if key.is_some() && self.inner.partition_id.is_some() {
            return Err(Error::invalid_argument(
                "a partition key cannot be used with a producer bound to a partition",
            ));
        }
        // The link's max-message-size was learned when the producer attached.
        let max = usize::try_from(self.max_message_size()).unwrap_or(usize::MAX);
        if let Some(idem) = &self.inner.idempotent {
            let payload = payload.into();
            return self
                .send_idempotent(idem, |state| publishing::stamp_payload(payload, state, max))
                .await;
        }
        let (bytes, format) = match payload.into() {
            SendPayload::Event(mut e) => {
                if let Some(k) = key {
                    e.set_partition_key(Some(k));
                }
                let n = e.encoded_len();
                if n > max {
                    return Err(Error::new(
                        ErrorKind::EventData,
                        format!(
                            "event of {n} bytes exceeds the link's max-message-size of {max} bytes"
                        ),
                    ));
                }
                let mut buf = BytesMut::with_capacity(n);
                e.raw_message().encode(&mut buf);
                (buf.freeze(), 0)
            }
            SendPayload::Events(events) => {
                if events.is_empty() {
                    return Ok(());
                }
                let total = events.len();
                let mut batch = EventDataBatch::new(max, key);
                for (i, e) in events.into_iter().enumerate() {
                    let n = e.encoded_len();
                    if batch.try_add(e).is_err() {
                        return Err(Error::new(
                            ErrorKind::EventData,
                            format!(
                                "{total} events do not fit one message: event {i} ({n} bytes) does not fit after {} bytes; the link's max-message-size is {max} bytes",
                                batch.size()
                            ),
                        ));
                    }
                }
                (batch.into_payload(), BATCH_MESSAGE_FORMAT)
            }
            SendPayload::Batch(batch) => {
                if key.is_some() && batch.partition_key() != key {
                    return Err(Error::invalid_argument(
                        "the batch's partition key differs from the send's; set the key when creating the batch",
                    ));
                }
                if batch.is_empty() {
                    return Ok(());
                }
                if batch.size() > max {
                    return Err(Error::new(
                        ErrorKind::EventData,
                        format!(
                            "batch of {} bytes exceeds the link's max-message-size of {max} bytes",
                            batch.size()
                        ),
                    ));
                }
                (batch.into_payload(), BATCH_MESSAGE_FORMAT)
            }
        };
        self.send_payload(bytes, format).await
    }

    /// An idempotent send: numbers the events after the last accepted one, sends them (a
    /// retry resends the same numbers, so the service drops what it already stored) and
    /// commits the numbers once the service accepts.
    async fn send_idempotent(
        &self,
        idem: &Idempotent,
        stamp: impl FnOnce(PublishingState) -> Result<Option<publishing::Stamped>, Error>,
    ) -> Result<(), Error> {
        let _one_at_a_time = idem.gate.lock().await;
        let state = self.idempotent_state(idem).await?;
        let Some(stamped) = stamp(state)? else {
            return Ok(());
        };
        match self.send_payload(stamped.payload, stamped.format).await {
            Ok(()) => {
                let mut s = idem.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = s.as_mut() {
                    s.last_sequence = stamped.last_sequence;
                }
                Ok(())
            }
            Err(e) => {
                idem.stale.store(true, Ordering::Release);
                Err(idem.note(e))
            }
        }
    }

    /// The publishing state to number the next send from (the caller holds the gate): read
    /// again from a fresh attach after a failed send, whose outcome is unknown.
    async fn idempotent_state(&self, idem: &Idempotent) -> Result<PublishingState, Error> {
        if let Some(e) = idem.stolen() {
            return Err(e);
        }
        if idem.stale.load(Ordering::Acquire) || idem.state().is_none() {
            drop(self.slot().take());
            let p = self;
            self.inner
                .retry
                .run(
                    "re-reading the idempotent state",
                    self.inner.timeout,
                    |_| async move { p.link().await.map(|_| ()) },
                )
                .await
                .map_err(|e| idem.note(e))?;
            idem.stale.store(false, Ordering::Release);
        }
        idem.state().ok_or_else(|| {
            Error::new(
                ErrorKind::EventHub,
                "no idempotent producer state after attaching",
            )
        })
    }

    /// Sends the encoded payload of a non-empty batch of this producer (the buffered producer
    /// keeps a clone of it to read the events back from), numbered first when the producer
    /// is idempotent.
    pub(crate) async fn send_batch_payload(&self, payload: Bytes) -> Result<(), Error> {
        let max = usize::try_from(self.max_message_size()).unwrap_or(usize::MAX);
        if let Some(idem) = &self.inner.idempotent {
            return self
                .send_idempotent(idem, |state| {
                    publishing::stamp_batch_payload(payload, state, max)
                })
                .await;
        }
        if payload.len() > max {
            return Err(Error::new(
                ErrorKind::EventData,
                format!(
                    "batch of {} bytes exceeds the link's max-message-size of {max} bytes",
                    payload.len()
                ),
            ));
        }
        self.send_payload(payload, BATCH_MESSAGE_FORMAT).await
    }

    /// The idempotent-publishing state of `partition_id` (this producer's partition): the
    /// producer id, owner level and last sequence number the service accepted. For a producer
    /// without idempotence, all empty and disabled.
    pub async fn get_partition_publishing_properties(
        &self,
        partition_id: &str,
    ) -> Result<PartitionPublishingProperties, Error> {
        let Some(idem) = &self.inner.idempotent else {
            return Ok(PartitionPublishingProperties::default());
        };
        if self.inner.partition_id.as_deref() != Some(partition_id) {
            return Err(Error::invalid_argument(format!(
                "this producer publishes to partition {:?}, not {partition_id:?}",
                self.inner.partition_id.as_deref().unwrap_or_default()
            )));
        }
        // A send in progress may commit numbers; its end is the consistent point.
        let _settled = idem.gate.lock().await;
        Ok(idem.state().into())
    }

    /// Sends an encoded transfer payload with retries until accepted.
    async fn send_payload(&self, payload: Bytes, format: u32) -> Result<(), Error> {
        let p = self;
        let payload = &payload;
        self.inner
            .retry
            .run("send", self.inner.timeout, |_| async move {
                let link = p.link().await?;
                let outcome = match link
                    .link()
                    .start_send_bytes(payload.clone(), format, false)
                    .await
                {
                    Ok(pending) => pending.await,
                    Err(e) => Err(e),
                };
                p.judge(&link, outcome).await
            })
            .await
    }

    /// Turns the service's outcome of one transfer on `link` into a result; a lost link is
    /// dropped so that the next send attaches afresh.
    async fn judge(
        &self,
        link: &Arc<LinkHandle<crate::amqp::Sender>>,
        outcome: Result<Option<DeliveryState>, crate::amqp::Error>,
    ) -> Result<(), Error> {
        // Only failures need the text: a per-send string would be a per-batch allocation.
        let what = || format!("sending to {}", self.inner.path);
        match outcome {
            Ok(None) | Ok(Some(DeliveryState::Accepted(_))) => Ok(()),
            Ok(Some(DeliveryState::Rejected(r))) => Err(match &r.error {
                Some(e) => {
                    let mut err = Error::from_amqp_error(
                        ErrorKind::EventDataSend,
                        format!("{}: rejected", what()),
                        e,
                    );
                    if err.kind() == ErrorKind::Authentication {
                        err = err.with_transient(false);
                    }
                    err
                }
                None => Error::new(ErrorKind::EventDataSend, format!("{}: rejected", what())),
            }),
            Ok(Some(other)) => Err(Error::new(
                ErrorKind::EventDataSend,
                format!("{}: the service answered {}", what(), other.name()),
            )
            .with_transient(true)),
            Err(e) => {
                let err = Error::from_amqp(ErrorKind::EventDataSend, what(), e);
                if err.kind() == ErrorKind::Authentication {
                    let audience = self.inner.client.audience(&self.inner.path);
                    link.conn.cbs.invalidate(&audience);
                }
                self.link_failed(link).await;
                Err(err.lapsed_authorization())
            }
        }
    }

    /// Sends any number of events without a `try_add` loop: they are packed, in order, into
    /// as few batches as fit the link's max-message-size, and the batches are sent pipelined
    /// (up to [`SEND_ALL_IN_FLIGHT`] waiting for the service at once) and stored in order.
    /// Returns how many batches it took.
    ///
    /// Order is kept through failures: a failed batch is resent only together with every
    /// batch after it, in order, on one link. A lost connection leaves no later batch stored
    /// before an earlier one, so this resends from the first unacknowledged batch (later ones
    /// may then be stored twice, as any at-least-once retry; an idempotent producer stores
    /// them once). Should the service refuse a batch yet store one sent after it (a producer
    /// without idempotence, throttled mid-window), a resend would reorder them: `send_all`
    /// then stops with an error that names the stored batches instead of retrying.
    ///
    /// On an error the batches before the failed one are stored and the rest are not known to
    /// be (the error says which batch failed). An event too large for a message on its own is
    /// refused before anything is sent.
    pub async fn send_all(
        &self,
        events: impl IntoIterator<Item = EventData>,
        options: SendOptions,
    ) -> Result<usize, Error> {
        let key = options.partition_key.as_deref();
        self.ready_for_batches(key).await?;
        let max = usize::try_from(self.max_message_size()).unwrap_or(usize::MAX);
        let mut batches = vec![self.empty_batch(max, key)];
        for (i, e) in events.into_iter().enumerate() {
            let n = e.encoded_len();
            let Some(current) = batches.last_mut() else {
                break;
            };
            if let Err(e) = current.try_add(e) {
                let mut next = self.empty_batch(max, key);
                if next.try_add(e).is_err() {
                    return Err(Error::new(
                        ErrorKind::EventData,
                        format!(
                            "event {i} ({n} bytes) does not fit a message on its own; the link's max-message-size is {max} bytes; nothing was sent"
                        ),
                    ));
                }
                batches.push(next);
            }
        }
        batches.retain(|b| !b.is_empty());
        let count = batches.len();
        if count == 0 {
            return Ok(0);
        }
        let failed = |(stored, e): (usize, Error)| {
            e.in_context(format_args!(
                "send_all: batch {} of {count} failed ({stored} stored before it)",
                stored + 1
            ))
        };
        let Some(idem) = &self.inner.idempotent else {
            let payloads: Vec<Bytes> = batches.into_iter().map(|b| b.into_payload()).collect();
            self.send_in_order(&payloads, BATCH_MESSAGE_FORMAT)
                .await
                .map_err(failed)?;
            return Ok(count);
        };
        // Numbers are given out for the whole run at once and committed at its end.
        let _one_at_a_time = idem.gate.lock().await;
        let mut state = self.idempotent_state(idem).await?;
        let mut payloads = Vec::with_capacity(count);
        let mut format = BATCH_MESSAGE_FORMAT;
        for batch in batches {
            if let Some(stamped) = publishing::stamp_payload(SendPayload::Batch(batch), state, max)?
            {
                state.last_sequence = stamped.last_sequence;
                format = stamped.format;
                payloads.push(stamped.payload);
            }
        }
        match self.send_in_order(&payloads, format).await {
            Ok(()) => {
                let mut s = idem.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = s.as_mut() {
                    s.last_sequence = state.last_sequence;
                }
                Ok(count)
            }
            Err(e) => {
                idem.stale.store(true, Ordering::Release);
                Err(idem.note(failed(e)))
            }
        }
    }

    /// Sends `payloads` pipelined and in order, retrying transient failures from the first
    /// batch not yet accepted; the retry budget restarts whenever a batch is accepted. On
    /// failure, how many batches were stored (a prefix) and why the next one was not.
    async fn send_in_order(&self, payloads: &[Bytes], format: u32) -> Result<(), (usize, Error)> {
        let mut done = 0;
        let mut retries = 0u32;
        loop {
            let before = done;
            let e = match self.send_window(payloads, format, &mut done).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if done > before {
                retries = 0;
            }
            let retry = &self.inner.retry;
            if !e.is_transient() || retries >= retry.max_retries {
                return Err((done, e));
            }
            retries += 1;
            let d = retry.delay_for(retries, Some(&e));
            retry.announce("send_all", retries, d, &e);
            tokio::time::sleep(d).await;
        }
    }

    /// One pass over one link: keeps up to [`SEND_ALL_IN_FLIGHT`] of `payloads[*done..]` in
    /// flight, advancing `done` past each accepted batch, until all are accepted or one is
    /// not. Then waits for the batches still in flight, because one of them stored after a
    /// failed one means a resend would reorder them: that is a permanent error.
    async fn send_window(
        &self,
        payloads: &[Bytes],
        format: u32,
        done: &mut usize,
    ) -> Result<(), Error> {
        let timeout = self.inner.timeout;
        let link = match tokio::time::timeout(timeout, self.link()).await {
            Ok(l) => l?,
            Err(_) => return Err(attach_timed_out(timeout)),
        };
        let mut in_flight = std::collections::VecDeque::with_capacity(SEND_ALL_IN_FLIGHT);
        let mut next = *done;
        let failure = 'send: loop {
            while in_flight.len() < SEND_ALL_IN_FLIGHT && next < payloads.len() {
                let started = link
                    .link()
                    .start_send_bytes(payloads[next].clone(), format, false)
                    .await;
                match started {
                    Ok(pending) => in_flight.push_back((next, pending)),
                    Err(e) => break 'send self.judge(&link, Err(e)).await.err(),
                }
                next += 1;
            }
            let Some((i, pending)) = in_flight.pop_front() else {
                break None;
            };
            let outcome = match tokio::time::timeout(timeout, pending).await {
                Ok(outcome) => self.judge(&link, outcome).await,
                Err(_) => Err(send_timed_out(timeout)),
            };
            match outcome {
                Ok(()) => *done = i + 1,
                Err(e) => break Some(e),
            }
        };
        let Some(failure) = failure else {
            return Ok(());
        };
        // The rest settle at once on a lost link; give the others one timeout in all.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stored_later = Vec::new();
        for (i, pending) in in_flight {
            if let Ok(Ok(None | Some(DeliveryState::Accepted(_)))) =
                tokio::time::timeout_at(deadline, pending).await
            {
                stored_later.push(i + 1);
            }
        }
        if stored_later.is_empty() {
            return Err(failure);
        }
        Err(failure
            .in_context(format_args!(
                "batch(es) {stored_later:?}, sent after this one, were stored, so resending it would reorder them: not retried"
            ))
            .with_transient(false))
    }

    /// Detaches the producer's link.
    pub async fn close(&self) -> Result<(), Error> {
        let l = self.slot().take();
        if let Some(l) = l {
            // Sends still in flight keep the link; the last one closes it.
            if let Ok(l) = Arc::try_unwrap(l) {
                l.close().await;
            }
        }
        Ok(())
    }
}
