//! One partition's queue and the background task that sends it.
//!
//! `enqueue` encodes each event straight into the batch being filled and drops it there, so
//! a waiting event costs its encoded bytes, not a live `EventData`: keeping every event alive
//! until its batch settled held tens of thousands of boxed messages per partition, and every
//! enqueue then touched cold memory. The outcome handler and `close_now` get the events
//! decoded back from the batch payload. Full batches go at once, a partial one after the max
//! wait time (or on flush and close), pipelined up to the per-partition and total send limits.

use super::outcome::decode;
use super::{BatchEvents, BatchOutcome, OutcomeHandler};
use crate::batch::{EventDataBatch, INITIAL_CAPACITY};
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::producer::EventHubProducer;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub(super) const RUN: u8 = 0;
/// Send everything queued, then stop.
pub(super) const DRAIN: u8 = 1;
/// Stop sending; what is not in flight is handed back.
pub(super) const NOW: u8 = 2;

/// A batch `enqueue` filled, with the sequence of its first event and when that came.
struct Filling {
    batch: EventDataBatch,
    first: u64,
    since: Instant,
}

/// What the task sends next, in enqueue order.
enum Item {
    Batch(Filling),
    /// An event that does not fit even an empty batch: reported as failed in its turn.
    TooBig {
        seq: u64,
        event: EventData,
    },
}

#[derive(Default)]
struct Queue {
    /// Full batches (and events too large for one) waiting for a send slot, oldest first.
    ready: VecDeque<Item>,
    /// The batch the next event goes into; `None` until its first event.
    filling: Option<Filling>,
    /// The sequence (per partition, from 0) the next enqueued event gets.
    next_seq: u64,
    /// The size the last batch reached: the next one reserves as much.
    last_size: usize,
}

/// Batches settled out of order, and the prefix of sequences settled without a gap.
#[derive(Default)]
struct Settled {
    ranges: BTreeMap<u64, u64>,
}

pub(super) struct Partition {
    pub(super) id: String,
    producer: EventHubProducer,
    queue: Mutex<Queue>,
    /// One permit per event the partition may still hold (queued or in flight).
    pub(super) capacity: Semaphore,
    wake: Notify,
    settled: Mutex<Settled>,
    watermark: watch::Sender<u64>,
    flush_to: AtomicU64,
    pub(super) stop: AtomicU8,
    sends: Arc<Semaphore>,
}

pub(super) struct Limits {
    pub(super) max_wait: Duration,
    pub(super) total_sends: Arc<Semaphore>,
    pub(super) handler: Option<OutcomeHandler>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    pub(super) fn new(
        id: String,
        producer: EventHubProducer,
        capacity: usize,
        sends: usize,
    ) -> Partition {
        Partition {
            id,
            producer,
            queue: Mutex::new(Queue::default()),
            capacity: Semaphore::new(capacity),
            wake: Notify::new(),
            settled: Mutex::new(Settled::default()),
            watermark: watch::channel(0).0,
            flush_to: AtomicU64::new(0),
            stop: AtomicU8::new(RUN),
            sends: Arc::new(Semaphore::new(sends)),
        }
    }

    /// Queues an event that already holds its capacity permit: encodes it into the batch
    /// being filled, or, when that is full, starts the next one with it.
    pub(super) fn push(&self, event: EventData) -> Result<(), Error> {
        let wake = {
            let mut q = lock(&self.queue);
            if self.stop.load(Ordering::Acquire) != RUN {
                drop(q);
                self.capacity.add_permits(1);
                return Err(closed());
            }
            let seq = q.next_seq;
            q.next_seq += 1;
            let left = match q.filling.as_mut() {
                Some(f) => f.batch.try_add(event).err(),
                None => Some(event),
            };
            match left {
                // The task only needs to hear of a batch that is full, just started (its
                // max wait runs from now) or must go because the queue is at its limit.
                None => self.capacity.available_permits() == 0,
                Some(event) => {
                    if let Some(full) = q.filling.take() {
                        q.last_size = full.batch.size();
                        q.ready.push_back(Item::Batch(full));
                    }
                    let max =
                        usize::try_from(self.producer.max_message_size()).unwrap_or(usize::MAX);
                    let room = q.last_size.max(INITIAL_CAPACITY);
                    // The producer's own batch: an idempotent one keeps room for each stamp.
                    let mut batch = self.producer.empty_batch_with_capacity(max, None, room);
                    match batch.try_add(event) {
                        Ok(()) => {
                            q.filling = Some(Filling {
                                batch,
                                first: seq,
                                since: Instant::now(),
                            })
                        }
                        Err(event) => q.ready.push_back(Item::TooBig { seq, event }),
                    }
                    true
                }
            }
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Asks the task to stop (`DRAIN` or `NOW`).
    pub(super) fn stop(&self, how: u8) {
        self.stop.fetch_max(how, Ordering::AcqRel);
        self.capacity.close();
        self.wake.notify_one();
        if how == NOW {
            // Handed-back events never settle: release any flush waiting for them.
            self.watermark.send_replace(u64::MAX);
        }
    }

    /// Waits until every event queued before this call is settled.
    pub(super) async fn flush(&self) {
        let target = lock(&self.queue).next_seq;
        self.flush_to.fetch_max(target, Ordering::AcqRel);
        self.wake.notify_one();
        let mut rx = self.watermark.subscribe();
        let _ = rx.wait_for(|&w| w >= target).await;
    }

    fn settle(&self, first: u64, count: u64) {
        let mut s = lock(&self.settled);
        s.ranges.insert(first, first + count);
        let mut mark = *self.watermark.borrow();
        if mark == u64::MAX {
            return;
        }
        while let Some(end) = s.ranges.remove(&mark) {
            mark = end;
        }
        self.watermark.send_replace(mark);
    }

    /// Hands the settled events to the handler, then frees their room.
    fn report(&self, limits: &Limits, first: u64, events: BatchEvents, error: Option<Error>) {
        let count = events.len();
        if let Some(h) = &limits.handler {
            h(BatchOutcome {
                partition_id: self.id.clone(),
                events,
                error,
            });
        }
        self.capacity.add_permits(count);
        self.settle(first, count as u64);
    }

    /// The next batch to send (or event to fail), if one is due; otherwise when the batch
    /// being filled will be.
    fn next(&self, limits: &Limits, stop: u8) -> (Option<Item>, Option<Instant>) {
        let mut q = lock(&self.queue);
        if let Some(item) = q.ready.pop_front() {
            return (Some(item), None);
        }
        let Some(f) = &q.filling else {
            return (None, None);
        };
        let deadline = f.since + limits.max_wait;
        let due = stop == DRAIN
            || self.capacity.available_permits() == 0
            || self.flush_to.load(Ordering::Acquire) > f.first
            || Instant::now() >= deadline;
        if due {
            q.last_size = f.batch.size();
            (q.filling.take().map(Item::Batch), None)
        } else {
            (None, Some(deadline))
        }
    }

    /// The partition's task; returns the events it did not send when stopped with `NOW`.
    pub(super) async fn run(self: Arc<Self>, limits: Arc<Limits>) -> Vec<EventData> {
        let mut inflight = JoinSet::new();
        let mut slot = None;
        loop {
            while inflight.try_join_next().is_some() {}
            let stop = self.stop.load(Ordering::Acquire);
            if stop == NOW {
                break;
            }
            if slot.is_none() {
                tokio::select! {
                    permit = self.sends.clone().acquire_owned() => slot = permit.ok(),
                    _ = self.wake.notified() => continue,
                }
            }
            let (next, deadline) = self.next(&limits, stop);
            match next {
                Some(Item::TooBig { seq, event }) => {
                    let err = Error::new(
                        ErrorKind::EventData,
                        format!(
                            "an event of {} bytes does not fit a batch to partition {} ({} bytes at most)",
                            event.encoded_len(),
                            self.id,
                            self.producer.max_message_size()
                        ),
                    );
                    self.report(
                        &limits,
                        seq,
                        BatchEvents::from_events(vec![event]),
                        Some(err),
                    );
                    continue;
                }
                Some(Item::Batch(f)) => {
                    let Ok(total) = limits.total_sends.clone().acquire_owned().await else {
                        lock(&self.queue).ready.push_front(Item::Batch(f));
                        break;
                    };
                    let count = f.batch.len();
                    let payload = f.batch.into_payload();
                    let me = self.clone();
                    let limits = limits.clone();
                    let slot = slot.take();
                    inflight.spawn(async move {
                        let result = me.producer.send_batch_payload(payload.clone()).await;
                        drop(total);
                        // The partition's send slot is held until the handler has the
                        // outcome: freed earlier, the next batch could be sent, settle and
                        // be reported first, and the handler would see them out of order.
                        me.report(
                            &limits,
                            f.first,
                            BatchEvents::encoded(payload, count),
                            result.err(),
                        );
                        drop(slot);
                    });
                    continue;
                }
                None => {}
            }
            if stop == DRAIN {
                // Nothing queued: a drain makes the batch being filled due at once.
                break;
            }
            match deadline {
                None => self.wake.notified().await,
                Some(deadline) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                }
            }
        }
        // Batches in flight settle (and are reported) before the task ends.
        while inflight.join_next().await.is_some() {}
        let (ready, filling) = {
            let mut q = lock(&self.queue);
            (std::mem::take(&mut q.ready), q.filling.take())
        };
        let mut unsent = Vec::new();
        for item in ready.into_iter().chain(filling.map(Item::Batch)) {
            match item {
                Item::Batch(f) => unsent.extend(decode(f.batch.into_payload())),
                Item::TooBig { event, .. } => unsent.push(event),
            }
        }
        unsent
    }
}

impl Partition {
    pub(super) async fn close_producer(&self) -> Result<(), Error> {
        self.producer.close().await
    }
}

pub(super) fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the buffered producer is closed")
}
