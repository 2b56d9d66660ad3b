//! One partition's queue and the background task that turns it into batches: full batches
//! go at once, a partial one after the max wait time (or on flush and close), pipelined up to
//! the per-partition and total send limits.

use super::BatchOutcome;
use super::OutcomeHandler;
use crate::batch::EventDataBatch;
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::producer::{EventHubProducer, SendPayload};
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

#[derive(Default)]
struct Queue {
    events: VecDeque<EventData>,
    /// The sequence (per partition, from 0) the next enqueued event gets.
    next_seq: u64,
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

    /// Queues an event that already holds its capacity permit.
    pub(super) fn push(&self, event: EventData) -> Result<(), Error> {
        {
            let mut q = lock(&self.queue);
            if self.stop.load(Ordering::Acquire) != RUN {
                drop(q);
                self.capacity.add_permits(1);
                return Err(closed());
            }
            q.events.push_back(event);
            q.next_seq += 1;
        }
        self.wake.notify_one();
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

    fn report(&self, limits: &Limits, first: u64, events: Vec<EventData>, error: Option<Error>) {
        let n = events.len();
        if let Some(h) = &limits.handler {
            h(BatchOutcome {
                partition_id: self.id.clone(),
                events,
                error,
            });
        }
        self.capacity.add_permits(n);
        self.settle(first, n as u64);
    }

    /// The partition's task; returns the events it did not send when stopped with `NOW`.
    pub(super) async fn run(self: Arc<Self>, limits: Arc<Limits>) -> Vec<EventData> {
        let mut inflight = JoinSet::new();
        let mut building: Vec<EventData> = Vec::new();
        let mut batch: Option<EventDataBatch> = None;
        let mut first_seq = 0u64;
        let mut since = Instant::now();
        let mut slot = None;
        let unsent = loop {
            while inflight.try_join_next().is_some() {}
            let stop = self.stop.load(Ordering::Acquire);
            if stop == NOW {
                break building;
            }
            // Hold a per-partition send slot while building, so that a busy partition keeps
            // filling its batch instead of queueing small ones.
            if slot.is_none() {
                tokio::select! {
                    permit = self.sends.clone().acquire_owned() => slot = permit.ok(),
                    _ = self.wake.notified() => continue,
                }
            }
            let mut full = false;
            let mut too_big = None;
            {
                let mut q = lock(&self.queue);
                let max = usize::try_from(self.producer.max_message_size()).unwrap_or(usize::MAX);
                while let Some(e) = q.events.pop_front() {
                    let seq = q.next_seq - q.events.len() as u64 - 1;
                    // The producer's own batch: an idempotent one keeps room for each event's stamp.
                    let b = batch.get_or_insert_with(|| self.producer.empty_batch(max, None));
                    if b.try_add_ref(&e) {
                        if building.is_empty() {
                            first_seq = seq;
                            since = Instant::now();
                        }
                        building.push(e);
                    } else if building.is_empty() {
                        too_big = Some((seq, e));
                        break;
                    } else {
                        q.events.push_front(e);
                        full = true;
                        break;
                    }
                }
            }
            if let Some((seq, e)) = too_big {
                let err = Error::new(
                    ErrorKind::EventData,
                    format!(
                        "an event of {} bytes does not fit a batch to partition {} ({} bytes at most)",
                        e.encoded_len(),
                        self.id,
                        self.producer.max_message_size()
                    ),
                );
                self.report(&limits, seq, vec![e], Some(err));
                batch = None;
                continue;
            }
            let deadline = since + limits.max_wait;
            let due = !building.is_empty()
                && (full
                    || self.capacity.available_permits() == 0
                    || Instant::now() >= deadline
                    || self.flush_to.load(Ordering::Acquire) > first_seq
                    || stop == DRAIN);
            if due {
                let Ok(total) = limits.total_sends.clone().acquire_owned().await else {
                    break building;
                };
                let events = std::mem::take(&mut building);
                let Some(b) = batch.take() else { continue };
                let me = self.clone();
                let limits = limits.clone();
                let permits = (slot.take(), total);
                let first = first_seq;
                inflight.spawn(async move {
                    let result = me.producer.send(SendPayload::Batch(b)).await;
                    drop(permits);
                    me.report(&limits, first, events, result.err());
                });
                continue;
            }
            if stop == DRAIN && building.is_empty() && lock(&self.queue).events.is_empty() {
                break Vec::new();
            }
            if building.is_empty() {
                self.wake.notified().await;
            } else {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
        };
        // Batches in flight settle (and are reported) before the task ends.
        while inflight.join_next().await.is_some() {}
        let mut unsent = unsent;
        unsent.extend(lock(&self.queue).events.drain(..));
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
