//! [`EventHubBufferedProducer`]: enqueue events one by one (to a partition, by partition key,
//! or round robin) and let background per-partition queues send them as full batches,
//! pipelined; outcomes come back per batch through a handler.
//!
//! `enqueue` encodes an event into its partition's batch at once and drops it: what waits
//! is bytes, bounded by the per-partition event limit. A [`BatchOutcome`]'s events (and what
//! [`EventHubBufferedProducer::close_now`] hands back) are read back from those bytes, the
//! outcome's only when the handler looks at them.
//!
//! Partition keys are hashed here with the service's own function
//! ([`crate::wire::partition_key`]), so a key's events land in the partition the service
//! would pick, and in order (one send in flight per partition by default).

mod options;
mod outcome;
mod partition;

pub use options::{BufferedProducerOptions, EnqueueOptions, OutcomeHandler};
pub use outcome::{BatchEvents, BatchOutcome};

use crate::client::EventHubClient;
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::producer::ProducerOptions;
use partition::{closed, Limits, Partition, DRAIN, NOW};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

struct Shared {
    ids: Vec<String>,
    partitions: Vec<Arc<Partition>>,
    round_robin: AtomicUsize,
    tasks: Mutex<Vec<JoinHandle<Vec<EventData>>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Without a close the tasks would run on; what they hold is dropped with them.
        for p in &self.partitions {
            p.stop(NOW);
        }
    }
}

/// Sends enqueued events in the background as full batches per partition. Cheap to clone;
/// clones share the queues. Call [`close`](Self::close) (sends everything) or
/// [`close_now`](Self::close_now) (hands back what was not sent) when done: dropping the
/// last clone without either drops the events still queued.
#[derive(Clone)]
pub struct EventHubBufferedProducer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EventHubBufferedProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHubBufferedProducer")
            .field("partitions", &self.shared.ids)
            .finish()
    }
}

impl EventHubClient {
    /// A buffered producer over every partition of the hub; opens one link per partition
    /// before returning.
    pub async fn create_buffered_producer(
        &self,
        options: BufferedProducerOptions,
    ) -> Result<EventHubBufferedProducer, Error> {
        if options.max_buffered_events_per_partition == 0
            || options.max_concurrent_sends_per_partition == 0
            || options.max_concurrent_sends == 0
        {
            return Err(Error::invalid_argument(
                "buffered producer limits (events per partition, concurrent sends) must be at least 1",
            ));
        }
        // An idempotent producer sends one batch at a time anyway; a second batch in flight
        // could take the send gate first and be numbered (and stored) before the first.
        let sends_per_partition = if options.producer.enable_idempotent_partitions {
            1
        } else {
            options.max_concurrent_sends_per_partition
        };
        let ids = self.get_partition_ids().await?;
        let mut partitions = Vec::with_capacity(ids.len());
        for id in &ids {
            let mut o: ProducerOptions = options.producer.clone().with_partition_id(id.clone());
            if let Some(r) = &options.retry {
                o = o.with_retry(r.clone());
            }
            let producer = self.create_producer(o).await?;
            partitions.push(Arc::new(Partition::new(
                id.clone(),
                producer,
                options.max_buffered_events_per_partition,
                sends_per_partition,
            )));
        }
        let limits = Arc::new(Limits {
            max_wait: options.max_wait_time,
            total_sends: Arc::new(Semaphore::new(options.max_concurrent_sends)),
            handler: options.on_outcome.clone(),
        });
        let tasks = partitions
            .iter()
            .map(|p| tokio::spawn(p.clone().run(limits.clone())))
            .collect();
        Ok(EventHubBufferedProducer {
            shared: Arc::new(Shared {
                ids,
                partitions,
                round_robin: AtomicUsize::new(0),
                tasks: Mutex::new(tasks),
            }),
        })
    }
}

impl EventHubBufferedProducer {
    /// The hub's partition ids, in the order keys are hashed over.
    pub fn partition_ids(&self) -> &[String] {
        &self.shared.ids
    }

    /// The partition an event enqueued with `options` goes to (round robin advances).
    fn target(
        &self,
        event: &mut EventData,
        options: &EnqueueOptions,
    ) -> Result<&Arc<Partition>, Error> {
        let parts = &self.shared.partitions;
        if parts.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "the event hub has no partitions",
            ));
        }
        let index = match (&options.partition_id, &options.partition_key) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_argument(
                    "an event takes a partition id or a partition key, not both",
                ))
            }
            (Some(id), None) => self
                .shared
                .ids
                .iter()
                .position(|p| p == id)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("the event hub has no partition {id:?}"),
                    )
                })?,
            (None, Some(key)) => {
                event.set_partition_key(Some(key));
                crate::wire::partition_key::partition_index(key, parts.len() as u32) as usize
            }
            (None, None) => match event.partition_key() {
                Some(key) => {
                    crate::wire::partition_key::partition_index(key, parts.len() as u32) as usize
                }
                None => self.shared.round_robin.fetch_add(1, Ordering::Relaxed) % parts.len(),
            },
        };
        parts
            .get(index)
            .ok_or_else(|| Error::new(ErrorKind::EventHub, "partition index out of range"))
    }

    /// Queues `event`, waiting while its partition holds the maximum of buffered events.
    pub async fn enqueue(&self, event: EventData, options: &EnqueueOptions) -> Result<(), Error> {
        let mut event = event;
        let p = self.target(&mut event, options)?;
        // Room in the queue is the common case: a try needs no future to poll and drop.
        match p.capacity.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(closed()),
            Err(tokio::sync::TryAcquireError::NoPermits) => match p.capacity.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return Err(closed()),
            },
        }
        p.push(event)
    }

    /// Queues `event` if its partition has room; otherwise fails with
    /// [`ErrorKind::QueueFull`] at once.
    pub fn try_enqueue(&self, event: EventData, options: &EnqueueOptions) -> Result<(), Error> {
        let mut event = event;
        let p = self.target(&mut event, options)?;
        match p.capacity.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    format!(
                    "partition {}'s queue of the buffered producer is full; enqueue waits for room",
                    p.id
                ),
                ))
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(closed()),
        }
        p.push(event)
    }

    /// Queues `events` in order, each as [`enqueue`](Self::enqueue) would.
    pub async fn enqueue_many(
        &self,
        events: impl IntoIterator<Item = EventData>,
        options: &EnqueueOptions,
    ) -> Result<(), Error> {
        for e in events {
            self.enqueue(e, options).await?;
        }
        Ok(())
    }

    /// Sends what is queued without waiting for the max wait time, and returns when every
    /// event enqueued before the call is settled (its outcome reported), or handed back by a
    /// [`close_now`](Self::close_now).
    pub async fn flush(&self) -> Result<(), Error> {
        for p in &self.shared.partitions {
            p.flush().await;
        }
        Ok(())
    }

    /// Sends everything queued, waits for the outcomes and closes the links.
    pub async fn close(&self) -> Result<(), Error> {
        self.flush().await?;
        let unsent = self.stop(DRAIN).await;
        if unsent.is_empty() {
            Ok(())
        } else {
            // Only a `close_now` racing this close stops a drain early.
            Err(Error::new(
                ErrorKind::Closed,
                format!("closed early: {} events were not sent", unsent.len()),
            ))
        }
    }

    /// Stops without sending what is queued: batches already in flight settle (and are
    /// reported), and every event not sent is handed back, in order per partition.
    pub async fn close_now(&self) -> Vec<EventData> {
        self.stop(NOW).await
    }

    async fn stop(&self, how: u8) -> Vec<EventData> {
        for p in &self.shared.partitions {
            p.stop(how);
        }
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let mut unsent = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await {
                unsent.extend(v);
            }
        }
        for p in &self.shared.partitions {
            let _ = p.close_producer().await;
        }
        unsent
    }
}
