//! `eventhubs`: an Azure Event Hubs client with its own AMQP 1.0 stack.
//!
//! # Architecture
//!
//! The layers, bottom-up:
//!
//! - [`amqp::codec`]: the AMQP type system, encode and bounded decode over `bytes::Bytes`.
//! - [`amqp::frame`] and [`amqp::types`]: protocol headers, frames, performatives, messages.
//! - the sans-IO engine (`amqp::engine`): connection, session, link and delivery state
//!   machines; bytes in, bytes and events out, time passed in as a value.
//! - [`amqp::io`]: one tokio task per connection runs the engine over TCP or TLS; the handles
//!   (`amqp::Connection`, `Session`, `Sender`, `Receiver`) talk to it through channels.
//! - [`wire`]: every Event Hubs word on the wire (addresses, CBS, management maps, annotation
//!   keys, link properties, conditions), shared by the client and the emulator.
//! - the client ([`EventHubClient`], [`EventHubProducer`], [`EventHubConsumer`],
//!   [`PartitionsReader`] for every partition at once, [`blocking`]),
//!   the [`processor`], and the `emulator` (feature `emulator`).
//!
//! A send: the producer encodes the events straight into one batch payload
//! ([`EventDataBatch`]), makes sure a CBS token is on the connection for the entity, and hands
//! the payload to its AMQP sender; the driver lets the engine frame it as transfers within the
//! link credit and session window, writes them, and completes the send when the service's
//! disposition (accepted or rejected) comes back.
//!
//! A receive: the consumer attaches a receiver with a selector filter from its
//! [`EventPosition`] and grants `prefetch` credit; the driver reads frames, the engine
//! reassembles deliveries, the consumer decodes each into [`EventData`], settles it, tops the
//! credit up, and remembers the last sequence number so a lost link re-attaches after it.
//!
//!
//! Sending a batch and reading it back, here against the in-process emulator (any Event Hubs
//! connection string works the same way; [`blocking`] has the same API for sync code):
//!
//! ```
//! # #[cfg(feature = "emulator")]
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use eventhubs::{ConsumerOptions, EventData, EventHubClient, EventPosition, ProducerOptions};
//! use std::time::Duration;
//!
//! let emulator = eventhubs::emulator::Emulator::start(
//!     eventhubs::emulator::EmulatorOptions::ephemeral(), // a free port on 127.0.0.1
//! )
//! .await?;
//! let client = EventHubClient::from_connection_string(&emulator.connection_string(), Some("eh1"))?;
//!
//! let producer = client.create_producer(ProducerOptions::partition("0")).await?;
//! let mut batch = producer.create_batch(Default::default()).await?;
//! for i in 0..3 {
//!     let event = EventData::from(format!("event {i}")).with_property("index", i as i64);
//!     if let Err(event) = batch.try_add(event) {
//!         panic!("a small event always fits an empty batch: {event:?}");
//!     }
//! }
//! producer.send(batch).await?;
//!
//! let mut consumer = client
//!     .create_consumer("$default", "0", EventPosition::earliest(), ConsumerOptions::default())
//!     .await?;
//! // receive waits for the first event, then returns what is already buffered with it: the
//! // three may come in more than one call.
//! let mut events = Vec::new();
//! while events.len() < 3 {
//!     let got = consumer.receive(10, Duration::from_secs(5)).await?;
//!     assert!(!got.is_empty(), "no event within 5 s");
//!     events.extend(got);
//! }
//! assert_eq!(events.len(), 3);
//! assert_eq!(events[2].body_as_str()?, "event 2");
//! client.close().await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "emulator"))]
//! # fn main() {}
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod amqp;
pub mod auth;
pub mod batch;
pub mod blocking;
pub mod buffered_producer;
mod cbs;
pub mod client;
pub mod consumer;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
pub mod event;
pub mod idempotent;
pub mod management;
pub mod position;
pub mod processor;
pub mod producer;
pub mod reader;
pub mod retry;
pub mod wire;

/// An AMQP value, as application properties hold them: what [`EventData::property`] returns
/// and what [`EventData::with_property`] takes (the typed getters such as
/// [`EventData::property_i64`] cover the common cases without it).
pub use amqp::codec::Value as AmqpValue;
pub use amqp::io::proxy::ProxyOptions;
pub use batch::{BatchOptions, BatchSizeCalculator, EventDataBatch};
pub use buffered_producer::{
    BatchEvents, BatchOutcome, BufferedProducerOptions, EnqueueOptions, EventHubBufferedProducer,
};
pub use client::{
    ClientOptions, EventHubClient, EventHubClientBuilder, TransportType, NETWORK_TRACE_TARGET,
};
pub use consumer::{ConsumerOptions, EventHubConsumer, EventStream, LastEnqueuedEventProperties};
pub use error::{Error, ErrorKind};
pub use event::EventData;
pub use idempotent::{PartitionPublishingOptions, PartitionPublishingProperties};
pub use management::{EventHubProperties, PartitionProperties};
pub use position::EventPosition;
pub use producer::{EventHubProducer, ProducerOptions, SendOptions, SendPayload};
pub use reader::{PartitionBatch, PartitionEvent, PartitionsReader, ReadAllOptions};
pub use retry::{RetryMode, RetryNotice, RetryObserver, RetryOptions};
