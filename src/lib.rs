//! `eventhubs`: an Azure Event Hubs client with its own AMQP 1.0 stack.
//!
//! The layers, bottom-up: [`amqp::codec`] (the AMQP type system), frames and performatives,
//! a sans-IO engine, the IO driver, then the Event Hubs client, processor and emulator.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amqp;
pub mod auth;
pub mod batch;
pub mod blocking;
mod cbs;
pub mod client;
pub mod consumer;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
pub mod event;
pub mod management;
pub mod position;
pub mod processor;
pub mod producer;
pub mod retry;

pub use batch::{BatchOptions, BatchSizeCalculator, EventDataBatch};
pub use client::{ClientOptions, EventHubClient, EventHubClientBuilder, NETWORK_TRACE_TARGET};
pub use consumer::{ConsumerOptions, EventHubConsumer, EventStream, LastEnqueuedEventProperties};
pub use error::{Error, ErrorKind};
pub use event::EventData;
pub use management::{EventHubProperties, PartitionProperties};
pub use position::EventPosition;
pub use producer::{EventHubProducer, ProducerOptions, SendOptions, SendPayload};
pub use retry::{RetryMode, RetryOptions};
