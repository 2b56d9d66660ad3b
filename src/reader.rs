//! [`PartitionsReader`]: every partition of a consumer group (or the ones you name) read at
//! once, without an [`EventProcessor`](crate::processor) and its checkpoint store: for tools,
//! tests and one-off reads that want "everything there is", like `ehub receive -e`.
//!
//! Each partition is read by its own [`EventHubConsumer`] on a task of its own, so a lost
//! link or connection is recovered per partition exactly as a lone consumer recovers (from
//! the last event it handed out, no gap, no duplicate). The events of all partitions come out
//! of one stream, each tagged with its partition; within a partition they keep their order.
//! Memory stays bounded: each consumer's prefetch, plus a queue of a couple of batches per
//! partition that a slow reader of the stream pushes back on.

use crate::cbs::AbortOnDrop;
use crate::client::EventHubClient;
use crate::consumer::{ConsumerOptions, EventHubConsumer};
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::management::PartitionProperties;
use crate::position::EventPosition;
use crate::wire::selector::Start;
use futures_core::Stream;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How long one receive call waits before the partition's task asks again. Long on purpose:
/// a consumer's retries of a lost connection run within one call, so a dead endpoint ends in
/// an error once they are used up rather than in endless empty polls.
const RECEIVE_WAIT: Duration = Duration::from_secs(3600);

/// Options for [`EventHubClient::read_all_partitions`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReadAllOptions {
    /// The partitions to read; `None` (the default) reads every partition of the hub.
    pub partitions: Option<Vec<String>>,
    /// Start positions for some partitions, instead of the position given for all.
    pub start_positions: HashMap<String, EventPosition>,
    /// Options for each partition's consumer (prefetch, owner level, ...).
    pub consumer: ConsumerOptions,
    /// The most events one partition hands over at a time (default 300).
    pub max_batch_size: usize,
    /// End the stream once every partition has delivered the last event it held when
    /// reading started (default false: read on, waiting for new events, until dropped).
    pub stop_at_end: bool,
}

impl Default for ReadAllOptions {
    fn default() -> Self {
        ReadAllOptions {
            partitions: None,
            start_positions: HashMap::new(),
            consumer: ConsumerOptions::default(),
            max_batch_size: 300,
            stop_at_end: false,
        }
    }
}

impl ReadAllOptions {
    /// Reads only these partitions.
    pub fn with_partitions<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.partitions = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Starts `partition` at `position` instead of the position given for all.
    pub fn with_start_position(
        mut self,
        partition: impl Into<String>,
        position: EventPosition,
    ) -> Self {
        self.start_positions.insert(partition.into(), position);
        self
    }

    /// Sets the options of each partition's consumer.
    pub fn with_consumer_options(mut self, options: ConsumerOptions) -> Self {
        self.consumer = options;
        self
    }

    /// Sets the most events one partition hands over at a time (at least 1).
    pub fn with_max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n.max(1);
        self
    }

    /// Ends the stream once every partition is caught up (see [`Self::stop_at_end`]).
    pub fn with_stop_at_end(mut self, stop: bool) -> Self {
        self.stop_at_end = stop;
        self
    }
}

/// An event and the partition it was read from.
#[derive(Clone, Debug)]
pub struct PartitionEvent {
    partition_id: Arc<str>,
    event: EventData,
}

impl PartitionEvent {
    /// The partition the event was read from.
    pub fn partition_id(&self) -> &str {
        &self.partition_id
    }

    /// The event.
    pub fn event(&self) -> &EventData {
        &self.event
    }

    /// The event, taken out.
    pub fn into_event(self) -> EventData {
        self.event
    }
}

/// Events of one partition handed over together, in order.
#[derive(Debug)]
pub struct PartitionBatch {
    /// The partition they were read from.
    pub partition_id: String,
    /// The events, oldest first (never empty).
    pub events: Vec<EventData>,
}

/// A partition's batch as it comes off the queue.
type Tagged = (Arc<str>, Vec<EventData>);

/// What a partition's task tells the reader.
enum Note {
    Events(Arc<str>, Vec<EventData>),
    /// An error; `true` when the partition's task ended with it.
    Failed(Error, bool),
    /// Caught up (with [`ReadAllOptions::stop_at_end`]): the task ended.
    CaughtUp,
}

/// A stream of the events of several partitions (see [`EventHubClient::read_all_partitions`]).
///
/// Read it with [`Self::next`] (or as a [`futures_core::Stream`]), or a partition's batch at a
/// time with [`Self::next_batch`]. Dropping it stops every partition's consumer.
pub struct PartitionsReader {
    partitions: Vec<String>,
    rx: mpsc::Receiver<Note>,
    /// The rest of the batch [`Self::next`] took its last event from.
    buffered: VecDeque<EventData>,
    buffered_from: Arc<str>,
    /// Partitions whose task has not ended yet.
    reading: usize,
    _tasks: Vec<AbortOnDrop>,
}

impl std::fmt::Debug for PartitionsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionsReader")
            .field("partitions", &self.partitions)
            .field("reading", &self.reading)
            .finish()
    }
}

impl EventHubClient {
    /// Reads every partition of `consumer_group` (or those [`ReadAllOptions::partitions`]
    /// names) from `position`, as one stream of events tagged with their partition; in order
    /// within each partition, interleaved across them.
    ///
    /// Every consumer is attached before this returns, so an unknown group or partition fails
    /// here. Each partition recovers from lost links on its own. A permanent failure of one
    /// partition (its retries used up, [`ErrorKind::ConsumerDisconnected`]) comes out of the
    /// stream as an `Err` and ends that partition only; an event that does not decode comes
    /// out as an [`ErrorKind::EventData`] error and its partition reads on. The stream ends
    /// when no partition is left reading: with [`ReadAllOptions::stop_at_end`], once each has
    /// delivered the last event it held at the start (one that held nothing after `position`
    /// counts as caught up at once); otherwise only after failures.
    ///
    /// ```
    /// # #[cfg(feature = "emulator")]
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use eventhubs::{EventData, EventHubClient, EventPosition, ProducerOptions, ReadAllOptions};
    /// use eventhubs::SendOptions;
    ///
    /// let emulator = eventhubs::emulator::Emulator::start(
    ///     eventhubs::emulator::EmulatorOptions::ephemeral(),
    /// )
    /// .await?;
    /// let client = EventHubClient::from_connection_string(&emulator.connection_string(), Some("eh1"))?;
    /// for p in ["0", "3"] {
    ///     let producer = client.create_producer(ProducerOptions::partition(p)).await?;
    ///     let events = (0..2).map(|i| EventData::from(format!("{p}-{i}")));
    ///     producer.send_all(events, SendOptions::default()).await?;
    /// }
    ///
    /// // Everything there is, then the stream ends.
    /// let options = ReadAllOptions::default().with_stop_at_end(true);
    /// let mut reader = client
    ///     .read_all_partitions("$default", EventPosition::earliest(), options)
    ///     .await?;
    /// let mut seen = Vec::new();
    /// while let Some(e) = reader.next().await {
    ///     let e = e?;
    ///     seen.push(format!("{}:{}", e.partition_id(), e.event().body_as_str()?));
    /// }
    /// seen.sort();
    /// assert_eq!(seen, ["0:0-0", "0:0-1", "3:3-0", "3:3-1"]);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "emulator"))]
    /// # fn main() {}
    /// ```
    pub async fn read_all_partitions(
        &self,
        consumer_group: &str,
        position: EventPosition,
        options: ReadAllOptions,
    ) -> Result<PartitionsReader, Error> {
        let partitions = match options.partitions.clone() {
            Some(p) if p.is_empty() => {
                return Err(Error::invalid_argument("no partitions to read"));
            }
            Some(p) => p,
            None => self.get_partition_ids().await?,
        };
        // Consumers attach side by side: one round trip in all, not one per partition.
        let mut attaching = tokio::task::JoinSet::new();
        for (index, id) in partitions.iter().enumerate() {
            let client = self.clone();
            let group = consumer_group.to_owned();
            let id = id.clone();
            let position = options
                .start_positions
                .get(&id)
                .cloned()
                .unwrap_or_else(|| position.clone());
            let consumer_options = options.consumer.clone();
            let stop_at_end = options.stop_at_end;
            attaching.spawn(async move {
                // The end is read before the consumer attaches, so that events sent while
                // reading do not move it.
                let end = if stop_at_end {
                    let p = client.get_partition_properties(&id).await?;
                    Some((!nothing_after(&position, &p)).then_some(p.last_enqueued_sequence_number))
                } else {
                    None
                };
                let consumer = client
                    .create_consumer(&group, &id, position, consumer_options)
                    .await?;
                Ok::<_, Error>((index, consumer, end))
            });
        }
        let mut ready = Vec::with_capacity(partitions.len());
        while let Some(done) = attaching.join_next().await {
            let r = done.map_err(|e| {
                Error::new(ErrorKind::EventHub, format!("attaching a consumer: {e}"))
            })?;
            // An early return drops the set, which aborts the attaches still going.
            ready.push(r?);
        }
        ready.sort_by_key(|(index, _, _)| *index);

        let (tx, rx) = mpsc::channel(2 * partitions.len());
        let max_batch_size = options.max_batch_size.max(1);
        let tasks = ready
            .into_iter()
            .map(|(_, consumer, end)| {
                AbortOnDrop(tokio::spawn(read_partition(
                    consumer,
                    end,
                    max_batch_size,
                    tx.clone(),
                )))
            })
            .collect();
        Ok(PartitionsReader {
            reading: partitions.len(),
            partitions,
            rx,
            buffered: VecDeque::new(),
            buffered_from: Arc::from(""),
            _tasks: tasks,
        })
    }
}

/// Whether partition `p` holds nothing at or after `position` (so there is nothing to catch
/// up on).
fn nothing_after(position: &EventPosition, p: &PartitionProperties) -> bool {
    if p.is_empty {
        return true;
    }
    let inclusive = position.is_inclusive();
    match &position.selector_filter().start {
        Start::Earliest => false,
        Start::Latest => true,
        Start::SequenceNumber(n) => {
            let first = if inclusive { *n } else { n.saturating_add(1) };
            first > p.last_enqueued_sequence_number
        }
        Start::Offset(o) => {
            // Offsets are opaque strings; the service's are decimal, so compare as numbers
            // when both are.
            match (o.parse::<i128>(), p.last_enqueued_offset.parse::<i128>()) {
                (Ok(o), Ok(last)) => o > last || (o == last && !inclusive),
                _ => *o == p.last_enqueued_offset && !inclusive,
            }
        }
        Start::EnqueuedTime(ms) => {
            let last = p
                .last_enqueued_time_utc
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            *ms > last || (*ms == last && !inclusive)
        }
    }
}

/// Reads one partition until caught up (`end`, with `stop_at_end`), a permanent failure, or
/// the reader going away.
async fn read_partition(
    mut consumer: EventHubConsumer,
    end: Option<Option<i64>>,
    max_batch_size: usize,
    tx: mpsc::Sender<Note>,
) {
    let id: Arc<str> = Arc::from(consumer.partition_id());
    if end == Some(None) {
        let _ = tx.send(Note::CaughtUp).await;
        return;
    }
    loop {
        match consumer.receive(max_batch_size, RECEIVE_WAIT).await {
            Ok(events) if events.is_empty() => {}
            Ok(events) => {
                let newest = events.iter().filter_map(EventData::sequence_number).max();
                if tx.send(Note::Events(id.clone(), events)).await.is_err() {
                    return;
                }
                if let (Some(Some(last)), Some(n)) = (end, newest) {
                    if n >= last {
                        let _ = tx.send(Note::CaughtUp).await;
                        let _ = consumer.close().await;
                        return;
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::EventData => {
                if tx.send(Note::Failed(e, false)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Note::Failed(e, true)).await;
                return;
            }
        }
    }
}

impl PartitionsReader {
    /// The partitions being read, in the order they were given (or the hub lists them).
    pub fn partition_ids(&self) -> &[String] {
        &self.partitions
    }

    /// The next event of any partition, waiting as long as it takes; `None` once no
    /// partition is left reading (see [`EventHubClient::read_all_partitions`]).
    pub async fn next(&mut self) -> Option<Result<PartitionEvent, Error>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next events of one partition, as many as it handed over together (what remains
    /// of a batch [`Self::next`] started on comes first); `None` as for [`Self::next`].
    pub async fn next_batch(&mut self) -> Option<Result<PartitionBatch, Error>> {
        if !self.buffered.is_empty() {
            return Some(Ok(PartitionBatch {
                partition_id: self.buffered_from.to_string(),
                events: self.buffered.drain(..).collect(),
            }));
        }
        std::future::poll_fn(|cx| self.poll_note(cx))
            .await
            .map(|r| {
                r.map(|(id, events)| PartitionBatch {
                    partition_id: id.to_string(),
                    events,
                })
            })
    }

    /// The next batch or error, counting partitions as they end.
    fn poll_note(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Tagged, Error>>> {
        loop {
            if self.reading == 0 {
                return Poll::Ready(None);
            }
            let note = match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // Every task gone without saying so: only when they were aborted.
                Poll::Ready(None) => {
                    self.reading = 0;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(n)) => n,
            };
            match note {
                Note::Events(id, events) if !events.is_empty() => {
                    return Poll::Ready(Some(Ok((id, events))))
                }
                Note::Events(..) => {}
                Note::CaughtUp => self.reading -= 1,
                Note::Failed(e, ended) => {
                    if ended {
                        self.reading -= 1;
                    }
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<PartitionEvent, Error>>> {
        if let Some(event) = self.buffered.pop_front() {
            return Poll::Ready(Some(Ok(PartitionEvent {
                partition_id: self.buffered_from.clone(),
                event,
            })));
        }
        match self.poll_note(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok((id, events)))) => {
                self.buffered = events.into();
                self.buffered_from = id;
                // Not empty: `poll_note` skips empty batches.
                match self.buffered.pop_front() {
                    Some(event) => Poll::Ready(Some(Ok(PartitionEvent {
                        partition_id: self.buffered_from.clone(),
                        event,
                    }))),
                    None => Poll::Ready(None),
                }
            }
        }
    }
}

impl Stream for PartitionsReader {
    type Item = Result<PartitionEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn props(first: i64, last: i64, offset: &str, ms: u64) -> PartitionProperties {
        PartitionProperties {
            event_hub_name: "eh1".into(),
            id: "0".into(),
            beginning_sequence_number: first,
            last_enqueued_sequence_number: last,
            last_enqueued_offset: offset.into(),
            last_enqueued_time_utc: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            is_empty: last < 0,
        }
    }

    #[test]
    fn what_counts_as_caught_up_at_the_start() {
        let p = props(0, 9, "900", 5_000);
        let seq = EventPosition::sequence_number;
        assert!(!nothing_after(&EventPosition::earliest(), &p));
        assert!(nothing_after(
            &EventPosition::earliest(),
            &props(-1, -1, "-1", 0)
        ));
        assert!(nothing_after(&EventPosition::latest(), &p));
        assert!(!nothing_after(&seq(9).inclusive(true), &p));
        assert!(nothing_after(&seq(9), &p), "after the last one");
        assert!(!nothing_after(&seq(8), &p));
        assert!(nothing_after(&seq(42).inclusive(true), &p));
        let offset = |o: &str| EventPosition::offset(o);
        assert!(!nothing_after(&offset("900").inclusive(true), &p));
        assert!(nothing_after(&offset("900"), &p));
        assert!(!nothing_after(&offset("100"), &p), "numbers, not strings");
        let time = EventPosition::enqueued_time_millis;
        assert!(!nothing_after(&time(5_000).inclusive(true), &p));
        assert!(nothing_after(&time(5_000), &p));
        assert!(nothing_after(&time(6_000).inclusive(true), &p));
        assert!(!nothing_after(&time(0), &p));
    }
}
