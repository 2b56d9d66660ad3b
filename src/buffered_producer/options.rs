//! The options of [`super::EventHubBufferedProducer`] and of one enqueue.

use crate::producer::ProducerOptions;
use crate::retry::RetryOptions;
use std::sync::Arc;
use std::time::Duration;

use super::BatchOutcome;

/// What receives each settled batch: called once per batch, from the producer's background
/// task, so it should return quickly (hand heavy work to a channel).
pub type OutcomeHandler = Arc<dyn Fn(BatchOutcome) + Send + Sync>;

/// Options for [`crate::EventHubClient::create_buffered_producer`].
#[derive(Clone)]
#[non_exhaustive]
pub struct BufferedProducerOptions {
    /// How long a partial batch waits for more events before it is sent (1 s).
    pub max_wait_time: Duration,
    /// Events held per partition, queued or in flight, before `enqueue` waits (1500).
    pub max_buffered_events_per_partition: usize,
    /// Batches in flight at once to one partition (1, which keeps a key's events in order
    /// across retries). Idempotent producer options make it 1 whatever it is set to.
    pub max_concurrent_sends_per_partition: usize,
    /// Batches in flight at once over all partitions (64).
    pub max_concurrent_sends: usize,
    /// Retry policy of each batch send; defaults to the client's.
    pub retry: Option<RetryOptions>,
    /// The options of the per-partition producers the buffered producer opens (the place
    /// for producer features such as idempotent publishing, which then numbers every batch
    /// of every partition); its partition id is ignored.
    pub producer: ProducerOptions,
    /// Receives every settled batch (sent or failed); `None` drops the outcomes. Counting a
    /// batch's events is free; looking at them decodes them from the sent payload.
    pub on_outcome: Option<OutcomeHandler>,
}

impl Default for BufferedProducerOptions {
    fn default() -> Self {
        BufferedProducerOptions {
            max_wait_time: Duration::from_secs(1),
            max_buffered_events_per_partition: 1500,
            max_concurrent_sends_per_partition: 1,
            max_concurrent_sends: 64,
            retry: None,
            producer: ProducerOptions::default(),
            on_outcome: None,
        }
    }
}

impl std::fmt::Debug for BufferedProducerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedProducerOptions")
            .field("max_wait_time", &self.max_wait_time)
            .field(
                "max_buffered_events_per_partition",
                &self.max_buffered_events_per_partition,
            )
            .field(
                "max_concurrent_sends_per_partition",
                &self.max_concurrent_sends_per_partition,
            )
            .field("max_concurrent_sends", &self.max_concurrent_sends)
            .field("retry", &self.retry)
            .field("producer", &self.producer)
            .field("on_outcome", &self.on_outcome.is_some())
            .finish()
    }
}

/// Builder-style setters (the struct is `#[non_exhaustive]`).
impl BufferedProducerOptions {
    /// Sets how long a partial batch waits before it is sent.
    pub fn with_max_wait_time(mut self, value: Duration) -> Self {
        self.max_wait_time = value;
        self
    }

    /// Sets how many events one partition holds before `enqueue` waits (at least 1).
    pub fn with_max_buffered_events_per_partition(mut self, value: usize) -> Self {
        self.max_buffered_events_per_partition = value;
        self
    }

    /// Sets how many batches may be in flight to one partition (at least 1).
    pub fn with_max_concurrent_sends_per_partition(mut self, value: usize) -> Self {
        self.max_concurrent_sends_per_partition = value;
        self
    }

    /// Sets how many batches may be in flight in total (at least 1).
    pub fn with_max_concurrent_sends(mut self, value: usize) -> Self {
        self.max_concurrent_sends = value;
        self
    }

    /// Sets the retry policy of the batch sends.
    pub fn with_retry(mut self, value: RetryOptions) -> Self {
        self.retry = Some(value);
        self
    }

    /// Sets the options of the underlying per-partition producers.
    pub fn with_producer_options(mut self, value: ProducerOptions) -> Self {
        self.producer = value;
        self
    }

    /// Sets the handler of settled batches.
    pub fn with_on_outcome(
        mut self,
        handler: impl Fn(BatchOutcome) + Send + Sync + 'static,
    ) -> Self {
        self.on_outcome = Some(Arc::new(handler));
        self
    }
}

/// Where one enqueued event goes: a partition, a partition key, or (neither) round robin.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// Send to this partition.
    pub partition_id: Option<String>,
    /// Hash this key to a partition with the service's function, so every event of the key
    /// lands in one partition, in order.
    pub partition_key: Option<String>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`).
impl EnqueueOptions {
    /// Sets the partition.
    pub fn with_partition_id(mut self, value: impl Into<String>) -> Self {
        self.partition_id = Some(value.into());
        self
    }

    /// Sets the partition key.
    pub fn with_partition_key(mut self, value: impl Into<String>) -> Self {
        self.partition_key = Some(value.into());
        self
    }
}
