//! The blocking mirror of [`crate::EventHubBufferedProducer`].

use super::{EventHubClient, Runtime};
use crate::buffered_producer::{BufferedProducerOptions, EnqueueOptions};
use crate::error::Error;
use crate::event::EventData;
use std::sync::Arc;

/// Blocking [`crate::EventHubBufferedProducer`]: the same queues and background sends, run on
/// the client's runtime thread; only `enqueue` (when a queue is full), `flush` and the closes
/// block.
#[derive(Clone, Debug)]
pub struct EventHubBufferedProducer {
    rt: Arc<Runtime>,
    inner: crate::EventHubBufferedProducer,
}

impl EventHubClient {
    /// See [`crate::EventHubClient::create_buffered_producer`].
    pub fn create_buffered_producer(
        &self,
        options: BufferedProducerOptions,
    ) -> Result<EventHubBufferedProducer, Error> {
        let inner = self
            .rt
            .block_on(self.inner.create_buffered_producer(options))?;
        Ok(EventHubBufferedProducer {
            rt: self.rt.clone(),
            inner,
        })
    }
}

impl EventHubBufferedProducer {
    /// See [`crate::EventHubBufferedProducer::partition_ids`].
    pub fn partition_ids(&self) -> &[String] {
        self.inner.partition_ids()
    }

    /// See [`crate::EventHubBufferedProducer::enqueue`].
    pub fn enqueue(&self, event: EventData, options: &EnqueueOptions) -> Result<(), Error> {
        self.rt.block_on(self.inner.enqueue(event, options))
    }

    /// See [`crate::EventHubBufferedProducer::try_enqueue`].
    pub fn try_enqueue(&self, event: EventData, options: &EnqueueOptions) -> Result<(), Error> {
        self.inner.try_enqueue(event, options)
    }

    /// See [`crate::EventHubBufferedProducer::enqueue_many`].
    pub fn enqueue_many(
        &self,
        events: impl IntoIterator<Item = EventData>,
        options: &EnqueueOptions,
    ) -> Result<(), Error> {
        events
            .into_iter()
            .try_for_each(|e| self.enqueue(e, options))
    }

    /// See [`crate::EventHubBufferedProducer::flush`].
    pub fn flush(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner.flush())
    }

    /// See [`crate::EventHubBufferedProducer::close`].
    pub fn close(&self) -> Result<(), Error> {
        self.rt.block_on(self.inner.close())
    }

    /// See [`crate::EventHubBufferedProducer::close_now`].
    pub fn close_now(&self) -> Vec<EventData> {
        self.rt.block_on(self.inner.close_now())
    }
}
