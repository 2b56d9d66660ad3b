//! The synchronous mirror of the client: [`EventHubClient`], [`EventHubProducer`],
//! [`EventHubConsumer`] and [`PartitionsReader`] with blocking methods, for code without an
//! async runtime.
//!
//! Each blocking client owns a small single-threaded tokio runtime on a background thread that
//! drives its connection (I/O, heartbeats, token refresh); calls block the calling thread
//! until their result is ready. Do not call these from inside an async runtime.
//!
//! ```
//! # #[cfg(feature = "emulator")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use eventhubs::blocking::EventHubClient;
//! use eventhubs::{ConsumerOptions, EventData, EventPosition, ProducerOptions, SendOptions};
//!
//! # let rt = tokio::runtime::Runtime::new()?;
//! # let emulator = rt.block_on(eventhubs::emulator::Emulator::start(
//! #     eventhubs::emulator::EmulatorOptions::ephemeral(),
//! # ))?;
//! # let connection_string = emulator.connection_string();
//! // The emulator here; any Event Hubs connection string works the same way.
//! let client = EventHubClient::from_connection_string(&connection_string, Some("eh1"))?;
//! let producer = client.create_producer(ProducerOptions::partition("0"))?;
//! let events = (0..5).map(|i| EventData::from(format!("event {i}")));
//! producer.send_all(events, SendOptions::default())?;
//!
//! let mut consumer = client.create_consumer(
//!     "$default",
//!     "0",
//!     EventPosition::earliest(),
//!     ConsumerOptions::default(),
//! )?;
//! for i in 0..5 {
//!     let event = consumer.next_event()?; // blocks until an event is there
//!     assert_eq!(event.body_as_str()?, format!("event {i}"));
//! }
//! println!("read up to offset {:?}", consumer.last_offset());
//! consumer.close()?;
//! client.close()?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "emulator"))]
//! # fn main() {}
//! ```

mod buffered;

pub use buffered::EventHubBufferedProducer;

use crate::batch::{BatchOptions, EventDataBatch};
use crate::consumer::{ConsumerOptions, LastEnqueuedEventProperties};
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::management::{EventHubProperties, PartitionProperties};
use crate::position::EventPosition;
use crate::producer::{ProducerOptions, SendOptions, SendPayload};
use crate::reader::{PartitionBatch, PartitionEvent, ReadAllOptions};
use crate::EventHubClientBuilder;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The background runtime: a current-thread runtime driven by its own thread.
#[derive(Debug)]
struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runtime {
    fn new() -> Result<Arc<Runtime>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::EventHub, format!("starting the runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("eventhubs-blocking".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::EventHub,
                    format!("starting the runtime thread: {e}"),
                )
            })?;
        Ok(Arc::new(Runtime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }))
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.handle.block_on(f)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Blocking [`crate::EventHubClient`].
#[derive(Clone, Debug)]
pub struct EventHubClient {
    rt: Arc<Runtime>,
    inner: crate::EventHubClient,
}

impl EventHubClient {
    /// A client from a connection string (see [`crate::EventHubClient::from_connection_string`]).
    pub fn from_connection_string(conn: &str, hub: Option<&str>) -> Result<Self, Error> {
        Self::from_builder(EventHubClientBuilder::from_connection_string(conn, hub)?)
    }

    /// A client from a namespace host, hub name and credential.
    pub fn new(
        host: &str,
        hub: &str,
        credential: impl crate::auth::TokenCredential + 'static,
    ) -> Result<Self, Error> {
        Self::from_builder(EventHubClientBuilder::new(host, hub, credential))
    }

    /// A builder for a client with options, from a connection string; finish it with
    /// [`Self::from_builder`].
    pub fn builder_from_connection_string(
        conn: &str,
        hub: Option<&str>,
    ) -> Result<EventHubClientBuilder, Error> {
        EventHubClientBuilder::from_connection_string(conn, hub)
    }

    /// A client from a configured builder.
    pub fn from_builder(builder: EventHubClientBuilder) -> Result<Self, Error> {
        Ok(EventHubClient {
            rt: Runtime::new()?,
            inner: builder.build()?,
        })
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &crate::EventHubClient {
        &self.inner
    }

    /// The event hub name.
    pub fn event_hub_name(&self) -> &str {
        self.inner.event_hub_name()
    }

    /// See [`crate::EventHubClient::get_properties`].
    pub fn get_properties(&self) -> Result<EventHubProperties, Error> {
        self.rt.block_on(self.inner.get_properties())
    }

    /// See [`crate::EventHubClient::get_partition_ids`].
    pub fn get_partition_ids(&self) -> Result<Vec<String>, Error> {
        self.rt.block_on(self.inner.get_partition_ids())
    }

    /// See [`crate::EventHubClient::get_partition_properties`].
    pub fn get_partition_properties(
        &self,
        partition_id: &str,
    ) -> Result<PartitionProperties, Error> {
        self.rt
            .block_on(self.inner.get_partition_properties(partition_id))
    }

    /// See [`crate::EventHubClient::create_producer`].
    pub fn create_producer(&self, options: ProducerOptions) -> Result<EventHubProducer, Error> {
        let inner = self.rt.block_on(self.inner.create_producer(options))?;
        Ok(EventHubProducer {
            rt: self.rt.clone(),
            inner: Some(inner),
        })
    }

    /// See [`crate::EventHubClient::create_consumer`].
    pub fn create_consumer(
        &self,
        consumer_group: &str,
        partition_id: &str,
        position: EventPosition,
        options: ConsumerOptions,
    ) -> Result<EventHubConsumer, Error> {
        let inner = self.rt.block_on(self.inner.create_consumer(
            consumer_group,
            partition_id,
            position,
            options,
        ))?;
        Ok(EventHubConsumer {
            rt: self.rt.clone(),
            inner: Some(inner),
        })
    }

    /// See [`crate::EventHubClient::read_all_partitions`]: reads every partition of the hub
    /// (or those `options` names) in one consumer group, each from `position`.
    pub fn read_all_partitions(
        &self,
        consumer_group: &str,
        position: EventPosition,
        options: ReadAllOptions,
    ) -> Result<PartitionsReader, Error> {
        let inner = self.rt.block_on(self.inner.read_all_partitions(
            consumer_group,
            position,
            options,
        ))?;
        Ok(PartitionsReader {
            rt: self.rt.clone(),
            inner: Some(inner),
        })
    }

    /// See [`crate::EventHubClient::close`].
    pub fn close(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner.close())
    }
}

/// Blocking [`crate::EventHubProducer`].
#[derive(Clone, Debug)]
pub struct EventHubProducer {
    rt: Arc<Runtime>,
    // An Option so that Drop can release it inside the runtime (the last clone's link then
    // closes in the background).
    inner: Option<crate::EventHubProducer>,
}

impl Drop for EventHubProducer {
    fn drop(&mut self) {
        let _guard = self.rt.handle.enter();
        drop(self.inner.take());
    }
}

impl EventHubProducer {
    fn inner(&self) -> Result<&crate::EventHubProducer, Error> {
        self.inner
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::EventHub, "producer is dropped"))
    }

    /// See [`crate::EventHubProducer::send_all`]: as few batches as fit, sent one after another in order.
    pub fn send_all(
        &self,
        events: impl IntoIterator<Item = EventData>,
        options: SendOptions,
    ) -> Result<usize, Error> {
        self.rt.block_on(self.inner()?.send_all(events, options))
    }

    /// See [`crate::EventHubProducer::send`].
    pub fn send(&self, payload: impl Into<SendPayload>) -> Result<(), Error> {
        self.rt.block_on(self.inner()?.send(payload))
    }

    /// See [`crate::EventHubProducer::send_with_options`].
    pub fn send_with_options(
        &self,
        payload: impl Into<SendPayload>,
        options: SendOptions,
    ) -> Result<(), Error> {
        self.rt
            .block_on(self.inner()?.send_with_options(payload, options))
    }

    /// See [`crate::EventHubProducer::create_batch`].
    pub fn create_batch(&self, options: BatchOptions) -> Result<EventDataBatch, Error> {
        self.rt.block_on(self.inner()?.create_batch(options))
    }

    /// See [`crate::EventHubProducer::max_message_size`].
    pub fn max_message_size(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, crate::EventHubProducer::max_message_size)
    }

    /// See [`crate::EventHubProducer::get_partition_publishing_properties`].
    pub fn get_partition_publishing_properties(
        &self,
        partition_id: &str,
    ) -> Result<crate::PartitionPublishingProperties, Error> {
        self.rt.block_on(
            self.inner()?
                .get_partition_publishing_properties(partition_id),
        )
    }

    /// See [`crate::EventHubProducer::close`].
    pub fn close(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner()?.close())
    }
}

/// Blocking [`crate::EventHubConsumer`].
#[derive(Debug)]
pub struct EventHubConsumer {
    rt: Arc<Runtime>,
    // An Option so that Drop can close the link inside the runtime.
    inner: Option<crate::EventHubConsumer>,
}

impl Drop for EventHubConsumer {
    fn drop(&mut self) {
        if let Some(c) = self.inner.take() {
            // Dropping inside the runtime lets the consumer close its link in the background.
            let _guard = self.rt.handle.enter();
            drop(c);
        }
    }
}

impl EventHubConsumer {
    fn inner(&mut self) -> Result<&mut crate::EventHubConsumer, Error> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::EventHub, "consumer is closed"))
    }

    /// See [`crate::EventHubConsumer::receive`].
    pub fn receive(
        &mut self,
        max_batch_size: usize,
        timeout: Duration,
    ) -> Result<Vec<EventData>, Error> {
        let rt = self.rt.clone();
        let c = self.inner()?;
        rt.block_on(c.receive(max_batch_size, timeout))
    }

    /// An iterator over events: each item waits for the next event; it ends after a
    /// permanent error has been yielded.
    pub fn iter(&mut self) -> impl Iterator<Item = Result<EventData, Error>> + '_ {
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let rt = self.rt.clone();
            let r = match self.inner() {
                Ok(c) => rt.block_on(c.next_event()),
                Err(e) => Err(e),
            };
            done = r.is_err();
            Some(r)
        })
    }

    /// See [`crate::EventHubConsumer::last_enqueued_event_properties`].
    pub fn last_enqueued_event_properties(&self) -> Option<&LastEnqueuedEventProperties> {
        self.inner.as_ref()?.last_enqueued_event_properties()
    }

    /// See [`crate::EventHubConsumer::next_event`]: blocks until an event arrives (or a
    /// permanent error).
    pub fn next_event(&mut self) -> Result<EventData, Error> {
        let rt = self.rt.clone();
        let c = self.inner()?;
        rt.block_on(c.next_event())
    }

    /// See [`crate::EventHubConsumer::partition_id`] (empty once closed).
    pub fn partition_id(&self) -> &str {
        self.inner.as_ref().map_or("", |c| c.partition_id())
    }

    /// See [`crate::EventHubConsumer::consumer_group`] (empty once closed).
    pub fn consumer_group(&self) -> &str {
        self.inner.as_ref().map_or("", |c| c.consumer_group())
    }

    /// See [`crate::EventHubConsumer::last_offset`].
    pub fn last_offset(&self) -> Option<&str> {
        self.inner.as_ref()?.last_offset()
    }

    /// See [`crate::EventHubConsumer::last_sequence_number`].
    pub fn last_sequence_number(&self) -> Option<i64> {
        self.inner.as_ref()?.last_sequence_number()
    }

    /// Detaches the link.
    pub fn close(mut self) -> Result<(), Error> {
        match self.inner.take() {
            Some(c) => self.rt.block_on(c.close()),
            None => Ok(()),
        }
    }
}

/// Blocking [`crate::PartitionsReader`]: events of every partition read, tagged with their
/// partition. An [`Iterator`] too.
#[derive(Debug)]
pub struct PartitionsReader {
    rt: Arc<Runtime>,
    // An Option so that Drop can stop the reading tasks inside the runtime.
    inner: Option<crate::PartitionsReader>,
}

impl Drop for PartitionsReader {
    fn drop(&mut self) {
        if let Some(r) = self.inner.take() {
            // The per-partition consumers close their links from inside the runtime.
            let _guard = self.rt.handle.enter();
            drop(r);
        }
    }
}

impl PartitionsReader {
    /// See [`crate::PartitionsReader::partition_ids`].
    pub fn partition_ids(&self) -> &[String] {
        self.inner.as_ref().map_or(&[], |r| r.partition_ids())
    }

    /// See [`crate::PartitionsReader::next_batch`]: blocks until one partition hands over
    /// events.
    pub fn next_batch(&mut self) -> Option<Result<PartitionBatch, Error>> {
        let rt = self.rt.clone();
        rt.block_on(self.inner.as_mut()?.next_batch())
    }
}

impl Iterator for PartitionsReader {
    type Item = Result<PartitionEvent, Error>;

    /// See [`crate::PartitionsReader::next`]: blocks until an event of any partition is
    /// there; `None` once no partition is left reading.
    fn next(&mut self) -> Option<Self::Item> {
        let rt = self.rt.clone();
        rt.block_on(self.inner.as_mut()?.next())
    }
}
