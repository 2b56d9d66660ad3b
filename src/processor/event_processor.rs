//! The `EventProcessor`: claims a fair share of a consumer group's partitions through a
//! [`PartitionManager`], reads them with one consumer each, hands events to a
//! [`PartitionProcessor`], and lets it checkpoint.

use super::balancer::{plan, BalanceInput, Strategy};
use super::manager::{Checkpoint, Ownership, PartitionManager};
use crate::client::EventHubClient;
use crate::consumer::{ConsumerOptions, LastEnqueuedEventProperties};
use crate::error::{Error, ErrorKind};
use crate::event::EventData;
use crate::position::EventPosition;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a partition processor is being closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The event processor is stopping; the partition has been released to others.
    Shutdown,
    /// Another processor took the partition over.
    OwnershipLost,
}

/// What a partition processor knows about its partition, and how it checkpoints.
#[derive(Clone)]
pub struct PartitionContext {
    /// Namespace host.
    pub fully_qualified_namespace: String,
    /// Event hub.
    pub event_hub_name: String,
    /// Consumer group.
    pub consumer_group: String,
    /// Partition.
    pub partition_id: String,
    /// This processor's id.
    pub owner_id: String,
    last_enqueued: Arc<Mutex<Option<LastEnqueuedEventProperties>>>,
    manager: Arc<dyn PartitionManager>,
    background: Arc<Background>,
}

/// The partition's background checkpoint: the newest one scheduled, and what became of the
/// writes. Shared by every clone of the partition's context and its writer task.
struct Background {
    state: Mutex<BackgroundState>,
    /// Wakes the writer when a checkpoint is scheduled or the partition closes.
    wake: tokio::sync::Notify,
    /// Wakes a writer waiting out the interval when the partition closes, so that a flush
    /// never waits for the interval (schedules do not wake it there: they only replace
    /// `pending`).
    close: tokio::sync::Notify,
    /// Held across every store write of this partition's checkpoint (background or awaited),
    /// so that an older checkpoint can never land after a newer one.
    write: tokio::sync::Mutex<()>,
    /// Least time between the starts of two background writes; zero writes at once.
    interval: Duration,
}

#[derive(Default)]
struct BackgroundState {
    /// Scheduled and not yet taken by the writer; a newer schedule replaces it.
    pending: Option<Checkpoint>,
    /// The last write, when it failed and nothing newer has been scheduled since: tried once
    /// more when the partition closes.
    failed: Option<Checkpoint>,
    /// Why the last background write failed, until a later write succeeds.
    last_error: Option<Error>,
    /// The partition is closing: the writer writes what is pending and ends, and no more
    /// checkpoints are accepted.
    closing: bool,
    /// Another processor owns the partition now. Checkpoints are not conditional on
    /// ownership in the store, so a write from here could put the new owner's checkpoint
    /// back: nothing more is written, and what was pending is dropped.
    ownership_lost: bool,
    /// When this processor's last successful claim of the partition expires: the ownership
    /// expiration after the claim request was sent, on this process's monotonic clock (the
    /// store wrote the record later, so others see it fresh at least that long, and no
    /// comparison with the store's clock is needed). Past it, another processor may have
    /// claimed it without this one knowing yet: the writer holds the pending checkpoint until
    /// a renewal, and drops it at close. `None` until the first claim is known (tests of the
    /// writer alone).
    owned_until: Option<tokio::time::Instant>,
}

impl Background {
    fn new(interval: Duration) -> Self {
        Background {
            state: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            close: tokio::sync::Notify::new(),
            write: tokio::sync::Mutex::new(()),
            interval,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BackgroundState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a successful claim (or renewal) of the partition, valid until `until`, and
    /// lets a writer that held a checkpoint for want of a valid claim go on.
    fn renewed(&self, until: tokio::time::Instant) {
        self.lock().owned_until = Some(until);
        self.wake.notify_one();
    }

    /// Stops every further background write of this partition at once (a write already in
    /// flight completes) and drops what was pending; the writer ends.
    fn ownership_lost(&self, partition_id: &str) {
        let dropped = {
            let mut s = self.lock();
            s.ownership_lost = true;
            s.closing = true;
            s.failed = None;
            s.pending.take()
        };
        if let Some(cp) = dropped {
            tracing::info!(
                target: "eventhubs::processor",
                partition_id = %partition_id,
                sequence_number = ?cp.sequence_number,
                "ownership lost: the pending background checkpoint is dropped so that it \
                 cannot overwrite the new owner's"
            );
        }
        self.wake.notify_one();
        self.close.notify_one();
    }
}

fn checkpoint_error(e: super::manager::PartitionManagerError) -> Error {
    Error::new(ErrorKind::EventHub, format!("checkpoint: {e}"))
}

/// What the writer does next.
enum Next {
    Write(Checkpoint),
    Wait,
    End,
}

/// The per-partition writer: writes the newest scheduled checkpoint, one write at a time and
/// at most one write start per interval, so checkpoints scheduled while a write is in flight
/// or the interval runs coalesce into one.
async fn write_in_background(bg: Arc<Background>, manager: Arc<dyn PartitionManager>) {
    let mut retried_at_close = false;
    // Start of the last write; the next may start `bg.interval` after it.
    let mut last_start: Option<tokio::time::Instant> = None;
    loop {
        let due = last_start
            .filter(|_| !bg.interval.is_zero())
            .map(|t| t + bg.interval);
        if let Some(due) = due {
            let waiting = {
                let s = bg.lock();
                s.pending.is_some() && !s.closing
            };
            if waiting && tokio::time::Instant::now() < due {
                // A close (stop, ownership lost) cuts the wait short; schedules meanwhile
                // only replace what is pending.
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = bg.close.notified() => {}
                }
                continue;
            }
        }
        let guard = bg.write.lock().await;
        // Taken under the write lock: an awaited checkpoint that got the lock first has
        // already discarded what it supersedes.
        let next = {
            let mut s = bg.lock();
            let expired = s
                .owned_until
                .is_some_and(|until| tokio::time::Instant::now() >= until);
            if s.ownership_lost {
                Next::End
            } else if expired {
                if s.closing {
                    if let Some(cp) = s.pending.take().or_else(|| s.failed.take()) {
                        tracing::info!(
                            target: "eventhubs::processor",
                            partition_id = %cp.partition_id,
                            sequence_number = ?cp.sequence_number,
                            "ownership not renewed within the expiration: the pending background \
                             checkpoint is dropped, as another processor may own the partition"
                        );
                    }
                    Next::End
                } else {
                    // Held, not written, until the next successful renewal wakes us.
                    Next::Wait
                }
            } else if let Some(cp) = s.pending.take() {
                Next::Write(cp)
            } else if s.closing {
                match s.failed.take() {
                    Some(cp) if !retried_at_close => {
                        retried_at_close = true;
                        Next::Write(cp)
                    }
                    _ => Next::End,
                }
            } else {
                Next::Wait
            }
        };
        let cp = match next {
            Next::Write(cp) => cp,
            Next::End => return,
            Next::Wait => {
                drop(guard);
                // A wake-up sent since the state was read is kept as a permit: none is lost.
                bg.wake.notified().await;
                continue;
            }
        };
        last_start = Some(tokio::time::Instant::now());
        let result = manager.update_checkpoint(cp.clone()).await;
        drop(guard);
        let mut s = bg.lock();
        match result {
            Ok(()) => {
                s.failed = None;
                s.last_error = None;
            }
            Err(e) => {
                let e = checkpoint_error(e);
                tracing::warn!(
                    target: "eventhubs::processor",
                    partition_id = %cp.partition_id,
                    sequence_number = ?cp.sequence_number,
                    error = %e,
                    "background checkpoint failed; the next one scheduled replaces it"
                );
                if s.pending.is_none() && !s.ownership_lost {
                    s.failed = Some(cp);
                }
                s.last_error = Some(e);
            }
        }
    }
}

/// Owns a partition's writer task: [`Self::finish`] flushes it; dropping it (an abrupt end of
/// the processor) aborts it, losing what was pending, as a crash would.
struct BackgroundWriter {
    bg: Arc<Background>,
    task: Option<JoinHandle<()>>,
}

impl BackgroundWriter {
    fn spawn(bg: Arc<Background>, manager: Arc<dyn PartitionManager>) -> Self {
        let task = tokio::spawn(write_in_background(bg.clone(), manager));
        BackgroundWriter {
            bg,
            task: Some(task),
        }
    }

    /// Refuses further checkpoints and waits until the pending one has been written (or its
    /// write failed, which is logged and kept as the last error).
    async fn finish(mut self) {
        self.bg.lock().closing = true;
        self.bg.wake.notify_one();
        self.bg.close.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for BackgroundWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for PartitionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionContext")
            .field("event_hub_name", &self.event_hub_name)
            .field("consumer_group", &self.consumer_group)
            .field("partition_id", &self.partition_id)
            .field("owner_id", &self.owner_id)
            .finish_non_exhaustive()
    }
}

fn received_position(event: &EventData) -> Result<(&str, i64), Error> {
    match (event.offset(), event.sequence_number()) {
        (Some(o), Some(s)) => Ok((o, s)),
        _ => Err(Error::invalid_argument(
            "only received events (with offset and sequence number) can be checkpointed",
        )),
    }
}

impl PartitionContext {
    fn checkpoint(&self, offset: String, sequence_number: i64) -> Checkpoint {
        Checkpoint {
            fully_qualified_namespace: self.fully_qualified_namespace.clone(),
            event_hub_name: self.event_hub_name.clone(),
            consumer_group: self.consumer_group.clone(),
            partition_id: self.partition_id.clone(),
            offset: Some(offset),
            sequence_number: Some(sequence_number),
        }
    }

    /// Why a checkpoint of a partition lost to another processor is refused.
    fn lost_error(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::OwnershipLost,
            format!(
                "partition {} is owned by another processor now: its checkpoints can no longer \
                 be {what} here",
                self.partition_id
            ),
        )
    }

    /// Records that every event up to and including this one has been processed; durable in
    /// the store when it returns. A background checkpoint still pending is older, so it is
    /// discarded, and one being written is waited for first.
    ///
    /// Fails with [`ErrorKind::OwnershipLost`] and writes nothing once another processor has
    /// taken the partition, or while this processor's claim has expired without a renewal:
    /// the store does not make checkpoints conditional on ownership, so the write could put
    /// an older position over the new owner's.
    pub async fn update_checkpoint(
        &self,
        offset: impl Into<String>,
        sequence_number: i64,
    ) -> Result<(), Error> {
        let cp = self.checkpoint(offset.into(), sequence_number);
        let _write = self.background.write.lock().await;
        {
            let mut s = self.background.lock();
            // Checked under the write lock, as the background writer does: a loss noticed
            // while this call waited for the lock still stops the write.
            if s.ownership_lost {
                return Err(self.lost_error("written"));
            }
            let expired = s
                .owned_until
                .is_some_and(|until| tokio::time::Instant::now() >= until);
            if expired {
                return Err(Error::new(
                    ErrorKind::OwnershipLost,
                    format!(
                        "partition {}: this processor's claim expired without a renewal, so \
                         another processor may own it; the checkpoint is not written (it could \
                         overwrite the new owner's)",
                        self.partition_id
                    ),
                ));
            }
            s.pending = None;
            s.failed = None;
        }
        self.manager
            .update_checkpoint(cp)
            .await
            .map_err(checkpoint_error)?;
        // Durable now, and newer than any background write that failed before.
        self.background.lock().last_error = None;
        Ok(())
    }

    /// [`Self::update_checkpoint`] from a received event.
    pub async fn update_checkpoint_from_event(&self, event: &EventData) -> Result<(), Error> {
        let (o, s) = received_position(event)?;
        self.update_checkpoint(o.to_owned(), s).await
    }

    /// Schedules a checkpoint after this offset and sequence number and returns at once; the
    /// partition's writer stores it in the background.
    ///
    /// This trades durability for throughput (Kafka's `commitAsync` beside `commitSync`, and
    /// its `auto.commit.interval.ms`): processing does not wait for a store round trip, and
    /// the writer starts at most one write per
    /// [`EventProcessorOptions::background_checkpoint_interval`], of the newest checkpoint
    /// scheduled, so those scheduled while a write is in flight or the interval runs coalesce
    /// into one. A crash loses what was not written yet, so a successor re-processes up to
    /// about an interval's worth of events more than after [`Self::update_checkpoint`].
    /// Checkpoints are written in the order scheduled, never an older after a newer; a failed
    /// write is logged, kept in [`Self::last_background_checkpoint_error`] and superseded by
    /// the next one scheduled. When the processor stops, the pending one is written at once,
    /// before the partition is released. When another processor has taken the partition
    /// (ownership lost), nothing more is written from here and the pending one is dropped: the
    /// store does not make checkpoints conditional on ownership, so a late write would put the
    /// new owner's checkpoint back.
    ///
    /// Fails only when the partition has already closed or was lost.
    pub fn checkpoint_in_background(
        &self,
        offset: impl Into<String>,
        sequence_number: i64,
    ) -> Result<(), Error> {
        let cp = self.checkpoint(offset.into(), sequence_number);
        {
            let mut s = self.background.lock();
            if s.ownership_lost {
                return Err(self.lost_error("scheduled"));
            }
            if s.closing {
                return Err(Error::invalid_argument(format!(
                    "partition {} is closed: its checkpoints can no longer be scheduled",
                    self.partition_id
                )));
            }
            s.pending = Some(cp);
            s.failed = None;
        }
        self.background.wake.notify_one();
        Ok(())
    }

    /// [`Self::checkpoint_in_background`] from a received event.
    pub fn checkpoint_in_background_from_event(&self, event: &EventData) -> Result<(), Error> {
        let (o, s) = received_position(event)?;
        self.checkpoint_in_background(o.to_owned(), s)
    }

    /// Why the last background checkpoint write failed, until a later one succeeds (or an
    /// awaited [`Self::update_checkpoint`] replaces it). `None` when the last write succeeded.
    pub fn last_background_checkpoint_error(&self) -> Option<Error> {
        self.background.lock().last_error.clone()
    }

    /// The partition's last enqueued event, when the processor tracks it.
    pub fn last_enqueued_event_properties(&self) -> Option<LastEnqueuedEventProperties> {
        self.last_enqueued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Your code for one partition. One instance per claimed partition, made by the factory given
/// to [`EventProcessor::new`]; implement the methods with `async fn`.
pub trait PartitionProcessor: Send + 'static {
    /// Called once before the first batch.
    fn initialize(&mut self, _ctx: &PartitionContext) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A batch of events (never empty), in order. Checkpoint through `ctx` when it suits you.
    fn process_events(
        &mut self,
        events: Vec<EventData>,
        ctx: &PartitionContext,
    ) -> impl Future<Output = ()> + Send;

    /// An error while reading the partition (reading continues when it is transient).
    fn process_error(
        &mut self,
        _error: Error,
        _ctx: &PartitionContext,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Called once when the partition is given up.
    fn close(
        &mut self,
        _reason: CloseReason,
        _ctx: &PartitionContext,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Settings of an [`EventProcessor`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EventProcessorOptions {
    /// Where to start partitions that have no checkpoint (default: earliest).
    pub initial_position: EventPosition,
    /// Per-partition overrides of `initial_position`.
    pub initial_positions: HashMap<String, EventPosition>,
    /// Owner level for partition consumers, so a new owner takes the link from the old one
    /// (default 0, as the Go SDK does).
    pub owner_level: Option<i64>,
    /// Most events per `process_events` call.
    pub max_batch_size: usize,
    /// How long to wait for the first event of a batch.
    pub max_wait_time: Duration,
    /// Consumer prefetch (credit window).
    pub prefetch: u32,
    /// Time between balancing cycles (default 10 s; a jitter of ×0.8–1.3 is applied). The
    /// first cycle runs at `start`, and while this instance holds fewer than its fair share and
    /// there is something to take, the next cycle runs at once: a processor alone owns every
    /// partition after its first cycle, not after one interval per partition.
    pub load_balancing_interval: Duration,
    /// Ownership not renewed for this long is free to claim; must exceed the interval
    /// (default 60 s).
    pub ownership_expiration: Duration,
    /// How eagerly to take partitions from other instances (default [`Strategy::Balanced`]:
    /// free partitions up to the fair share at once, stealing one per cycle).
    pub strategy: Strategy,
    /// Ask for last-enqueued-event properties with every delivery.
    pub track_last_enqueued_event_properties: bool,
    /// Least time between two writes of a partition's background checkpoint
    /// ([`PartitionContext::checkpoint_in_background`]), like Kafka's
    /// `auto.commit.interval.ms`: the writer stores the newest one scheduled at most once per
    /// interval, and at once when the processor stops. Zero writes each as soon as the
    /// previous write is done. Default 1 s: a store write per partition per second whatever
    /// the event rate (a blob store otherwise gets as many writes as it can take, which costs
    /// requests and, on a small machine, the CPU of a local store), for at most about a
    /// second of events re-processed after a crash. Awaited checkpoints are not affected.
    pub background_checkpoint_interval: Duration,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`, so it is built from its
/// default and these).
impl EventProcessorOptions {
    /// Sets where a partition without a checkpoint starts.
    pub fn with_initial_position(mut self, value: EventPosition) -> Self {
        self.initial_position = value;
        self
    }

    /// Sets per-partition starting positions, over `initial_position`.
    pub fn with_initial_positions(mut self, value: HashMap<String, EventPosition>) -> Self {
        self.initial_positions = value;
        self
    }

    /// Sets the owner level of the processor's consumers.
    pub fn with_owner_level(mut self, value: i64) -> Self {
        self.owner_level = Some(value);
        self
    }

    /// Sets the most events handed to `process_events` at once.
    pub fn with_max_batch_size(mut self, value: usize) -> Self {
        self.max_batch_size = value;
        self
    }

    /// Sets how long to wait for a batch before calling `process_events` with what there is.
    pub fn with_max_wait_time(mut self, value: Duration) -> Self {
        self.max_wait_time = value;
        self
    }

    /// Sets how many events each consumer may buffer.
    pub fn with_prefetch(mut self, value: u32) -> Self {
        self.prefetch = value;
        self
    }

    /// Sets how often ownership is balanced.
    pub fn with_load_balancing_interval(mut self, value: Duration) -> Self {
        self.load_balancing_interval = value;
        self
    }

    /// Sets how long a claim lasts without renewal.
    pub fn with_ownership_expiration(mut self, value: Duration) -> Self {
        self.ownership_expiration = value;
        self
    }

    /// Sets how eagerly partitions are claimed.
    pub fn with_strategy(mut self, value: Strategy) -> Self {
        self.strategy = value;
        self
    }

    /// Sets whether consumers track the partition's last enqueued event.
    pub fn with_track_last_enqueued_event_properties(mut self, value: bool) -> Self {
        self.track_last_enqueued_event_properties = value;
        self
    }

    /// Sets the least time between two background checkpoint writes of a partition (zero:
    /// as soon as possible).
    pub fn with_background_checkpoint_interval(mut self, value: Duration) -> Self {
        self.background_checkpoint_interval = value;
        self
    }
}

impl Default for EventProcessorOptions {
    fn default() -> Self {
        EventProcessorOptions {
            initial_position: EventPosition::earliest(),
            initial_positions: HashMap::new(),
            owner_level: Some(0),
            max_batch_size: 100,
            max_wait_time: Duration::from_secs(1),
            prefetch: 300,
            load_balancing_interval: Duration::from_secs(10),
            ownership_expiration: Duration::from_secs(60),
            strategy: Strategy::Balanced,
            track_last_enqueued_event_properties: false,
            background_checkpoint_interval: Duration::from_secs(1),
        }
    }
}

static PROCESSOR_SEQ: AtomicU64 = AtomicU64::new(0);

/// Jitter and random picks need no cryptographic quality: a xorshift seeded from the clock.
fn xorshift() -> impl FnMut(usize) -> usize + Send {
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    }
}

struct Running {
    /// Set to why the partition's consumer must stop.
    stop: watch::Sender<Option<CloseReason>>,
    /// The partition's background checkpoint, told at once when ownership is lost (before the
    /// task gets round to closing).
    background: Arc<Background>,
    task: JoinHandle<()>,
}

struct Shared<F> {
    client: EventHubClient,
    consumer_group: String,
    factory: F,
    manager: Arc<dyn PartitionManager>,
    options: EventProcessorOptions,
    owner_id: String,
    namespace: String,
    running: Mutex<HashMap<String, Running>>,
    /// Tasks of partitions lost to another processor that may still be closing: `stop` waits
    /// for them too, so nothing of this processor runs once it returns.
    closing: Mutex<Vec<JoinHandle<()>>>,
    owned: Mutex<Vec<Ownership>>,
    /// Balancing cycles completed (whether they succeeded or not).
    cycles: AtomicU64,
    /// Load-balancing intervals waited out by the background loop.
    intervals: AtomicU64,
    partition_ids: tokio::sync::Mutex<Vec<String>>,
}

/// Balances a consumer group's partitions across processor instances and runs a
/// [`PartitionProcessor`] for each partition this instance owns.
pub struct EventProcessor<F> {
    shared: Arc<Shared<F>>,
    balancer: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl<F> std::fmt::Debug for EventProcessor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProcessor")
            .field("owner_id", &self.shared.owner_id)
            .field("consumer_group", &self.shared.consumer_group)
            .finish_non_exhaustive()
    }
}

impl<F, P> EventProcessor<F>
where
    F: Fn() -> P + Send + Sync + 'static,
    P: PartitionProcessor,
{
    /// A processor for `consumer_group`; `factory` makes one [`PartitionProcessor`] per claimed
    /// partition. Fails when the ownership expiration is not longer than the interval.
    pub fn new(
        client: EventHubClient,
        consumer_group: impl Into<String>,
        factory: F,
        manager: Arc<dyn PartitionManager>,
        options: EventProcessorOptions,
    ) -> Result<Self, Error> {
        if options.ownership_expiration <= options.load_balancing_interval {
            return Err(Error::invalid_argument(format!(
                "ownership expiration ({:?}) must be longer than the load-balancing interval ({:?})",
                options.ownership_expiration, options.load_balancing_interval
            )));
        }
        let owner_id = format!(
            "{}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
            PROCESSOR_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Ok(EventProcessor {
            shared: Arc::new(Shared {
                namespace: client.host().to_owned(),
                client,
                consumer_group: consumer_group.into(),
                factory,
                manager,
                options,
                owner_id,
                running: Mutex::new(HashMap::new()),
                closing: Mutex::new(Vec::new()),
                owned: Mutex::new(Vec::new()),
                cycles: AtomicU64::new(0),
                intervals: AtomicU64::new(0),
                partition_ids: tokio::sync::Mutex::new(Vec::new()),
            }),
            balancer: Mutex::new(None),
        })
    }

    /// This instance's owner id.
    pub fn owner_id(&self) -> &str {
        &self.shared.owner_id
    }

    /// Partitions whose consumer runs here now.
    pub fn owned_partitions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shared.lock_running().keys().cloned().collect();
        v.sort();
        v
    }

    /// How many balancing cycles this instance has completed, failed ones included. Lets tests
    /// and dashboards reason in cycles rather than wall-clock time.
    pub fn balancing_cycles(&self) -> u64 {
        self.shared.cycles.load(Ordering::Acquire)
    }

    /// How many load-balancing intervals the background loop of [`Self::start`] has waited
    /// out: its cycles counted as the interval paces them. The first interval's cycle runs at
    /// `start`; the cycles it runs back to back while short of its fair share belong to the
    /// interval they run in. So "settled within N cycles" reads "before this passes N - 1".
    pub fn balancing_intervals(&self) -> u64 {
        self.shared.intervals.load(Ordering::Acquire)
    }

    /// Runs one balancing cycle now, outside the background loop: claims, renews, starts and
    /// stops partition consumers exactly as a cycle of [`Self::start`] does. For stepping
    /// several processors in lockstep (tests, tools); returns whether this instance is still
    /// short of its fair share with something left to take.
    pub async fn run_balancing_cycle(&self) -> Result<bool, Error> {
        let mut rand = xorshift();
        self.shared.step(&mut rand).await
    }

    /// Starts balancing and processing in the background. The first cycle runs at once.
    pub fn start(&self) {
        let mut slot = self.balancer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return;
        }
        let (tx, rx) = watch::channel(false);
        let shared = self.shared.clone();
        *slot = Some((tx, tokio::spawn(shared.balance_loop(rx))));
    }

    /// Stops gracefully: in-flight batches finish, every partition processor is closed with
    /// [`CloseReason::Shutdown`] (and those of partitions lost earlier have finished closing),
    /// pending background checkpoints are written, and ownership is released so others take
    /// over at once.
    pub async fn stop(&self) {
        let taken = self
            .balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((tx, task)) = taken {
            let _ = tx.send(true);
            let _ = task.await;
        }
        let running: Vec<(String, Running)> = self.shared.lock_running().drain().collect();
        for (_, r) in &running {
            let _ = r.stop.send(Some(CloseReason::Shutdown));
        }
        for (_, r) in running {
            let _ = r.task.await;
        }
        let closing = std::mem::take(&mut *self.shared.lock_closing());
        for task in closing {
            let _ = task.await;
        }
        let owned: Vec<Ownership> = std::mem::take(&mut *self.shared.lock_owned());
        let released: Vec<Ownership> = owned
            .into_iter()
            .map(|mut o| {
                o.owner_id = String::new();
                o
            })
            .collect();
        if !released.is_empty() {
            if let Err(e) = self.shared.manager.claim_ownership(released).await {
                tracing::warn!(target: "eventhubs::processor", error = %e, "releasing ownership failed");
            }
        }
    }
}

impl<F> Drop for EventProcessor<F> {
    /// Dropping without [`EventProcessor::stop`] is an abrupt end, as if the process died: tasks
    /// are aborted, processors are not closed and ownership is not released (others take the
    /// partitions over once it expires).
    fn drop(&mut self) {
        if let Some((_, task)) = self
            .balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        for (_, r) in self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            r.task.abort();
        }
        for task in self
            .shared
            .closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl<F, P> Shared<F>
where
    F: Fn() -> P + Send + Sync + 'static,
    P: PartitionProcessor,
{
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_closing(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.closing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_owned(&self) -> std::sync::MutexGuard<'_, Vec<Ownership>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn balance_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut rand = xorshift();
        // Cycles run back to back while short of the share; bounded so that a store that
        // keeps refusing claims cannot make the loop spin.
        let mut at_once = 0usize;
        loop {
            let short = match self.step(&mut rand).await {
                Ok(short) => short,
                Err(e) => {
                    tracing::warn!(target: "eventhubs::processor", error = %e, "balancing cycle failed");
                    false
                }
            };
            let limit = self.partition_ids.lock().await.len().max(1);
            if short && at_once < limit {
                at_once += 1;
                if *stop.borrow() {
                    return;
                }
                tokio::task::yield_now().await;
                continue;
            }
            at_once = 0;
            let base = self.options.load_balancing_interval;
            let jitter = 0.8 + (rand(1000) as f64) / 2000.0;
            tokio::select! {
                _ = tokio::time::sleep(base.mul_f64(jitter)) => {
                    self.intervals.fetch_add(1, Ordering::AcqRel);
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// One counted cycle: lists the partitions the first time, then balances.
    async fn step(
        self: &Arc<Self>,
        rand: &mut (dyn FnMut(usize) -> usize + Send),
    ) -> Result<bool, Error> {
        let result = async {
            let mut ids = self.partition_ids.lock().await;
            if ids.is_empty() {
                *ids = self.client.get_partition_ids().await?;
            }
            let ids = ids.clone();
            self.cycle(&ids, rand).await
        }
        .await;
        self.cycles.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn cycle(
        self: &Arc<Self>,
        partition_ids: &[String],
        rand: &mut (dyn FnMut(usize) -> usize + Send),
    ) -> Result<bool, Error> {
        let store_err = |e| Error::new(ErrorKind::EventHub, format!("partition manager: {e}"));
        let hub = self.client.event_hub_name().to_owned();
        let records = self
            .manager
            .list_ownership(&self.namespace, &hub, &self.consumer_group)
            .await
            .map_err(store_err)?;
        let decided = plan(
            &BalanceInput {
                ownerships: &records,
                partition_ids,
                owner_id: &self.owner_id,
                now: SystemTime::now(),
                expiration: self.options.ownership_expiration,
                strategy: self.options.strategy,
            },
            rand,
        );
        let short = decided.short_of_share;
        let mut claims = decided.claims;
        for c in &mut claims {
            c.fully_qualified_namespace = self.namespace.clone();
            c.event_hub_name = hub.clone();
            c.consumer_group = self.consumer_group.clone();
        }
        let claimed_at = tokio::time::Instant::now();
        let won = self
            .manager
            .claim_ownership(claims)
            .await
            .map_err(store_err)?;
        let owned: Vec<String> = won.iter().map(|o| o.partition_id.clone()).collect();
        let until = claimed_at + self.options.ownership_expiration;
        *self.lock_owned() = won;
        for (p, r) in self.lock_running().iter() {
            if owned.contains(p) {
                r.background.renewed(until);
            }
        }
        // Partitions we no longer own: close them (someone else claimed them).
        let lost: Vec<(String, Running)> = {
            let mut running = self.lock_running();
            let gone: Vec<String> = running
                .keys()
                .filter(|p| !owned.contains(p))
                .cloned()
                .collect();
            gone.into_iter()
                .filter_map(|p| running.remove(&p).map(|r| (p, r)))
                .collect()
        };
        if !lost.is_empty() {
            let mut closing = self.lock_closing();
            closing.retain(|t| !t.is_finished());
            for (p, r) in lost {
                r.background.ownership_lost(&p);
                let _ = r.stop.send(Some(CloseReason::OwnershipLost));
                closing.push(r.task);
            }
        }
        // Newly owned (or whose consumer ended): start them from their checkpoint.
        let to_start: Vec<String> = {
            let mut running = self.lock_running();
            running.retain(|_, r| !r.task.is_finished());
            owned
                .iter()
                .filter(|p| !running.contains_key(*p))
                .cloned()
                .collect()
        };
        if to_start.is_empty() {
            return Ok(short);
        }
        let checkpoints = self
            .manager
            .list_checkpoints(&self.namespace, &hub, &self.consumer_group)
            .await
            .map_err(store_err)?;
        for p in to_start {
            let position = match checkpoints.iter().find(|c| c.partition_id == p) {
                Some(Checkpoint {
                    offset: Some(o), ..
                }) => EventPosition::offset(o.clone()),
                Some(Checkpoint {
                    sequence_number: Some(s),
                    ..
                }) => EventPosition::sequence_number(*s),
                _ => self
                    .options
                    .initial_positions
                    .get(&p)
                    .cloned()
                    .unwrap_or_else(|| self.options.initial_position.clone()),
            };
            let (tx, rx) = watch::channel(None);
            let background = Arc::new(Background::new(self.options.background_checkpoint_interval));
            background.renewed(until);
            let task = tokio::spawn(self.clone().run_partition(
                p.clone(),
                position,
                background.clone(),
                rx,
            ));
            self.lock_running().insert(
                p,
                Running {
                    stop: tx,
                    background,
                    task,
                },
            );
        }
        Ok(short)
    }

    async fn run_partition(
        self: Arc<Self>,
        partition_id: String,
        position: EventPosition,
        background: Arc<Background>,
        mut stop: watch::Receiver<Option<CloseReason>>,
    ) {
        let ctx = PartitionContext {
            fully_qualified_namespace: self.namespace.clone(),
            event_hub_name: self.client.event_hub_name().to_owned(),
            consumer_group: self.consumer_group.clone(),
            partition_id: partition_id.clone(),
            owner_id: self.owner_id.clone(),
            last_enqueued: Arc::new(Mutex::new(None)),
            manager: self.manager.clone(),
            background,
        };
        let writer = BackgroundWriter::spawn(ctx.background.clone(), self.manager.clone());
        let mut processor = (self.factory)();
        let options = ConsumerOptions {
            owner_level: self.options.owner_level,
            prefetch: Some(self.options.prefetch),
            track_last_enqueued_event_properties: self.options.track_last_enqueued_event_properties,
        };
        let consumer = tokio::select! {
            c = self.client.create_consumer(&self.consumer_group, &partition_id, position, options) => c,
            _ = stop.changed() => return,
        };
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                let lost = e.kind() == ErrorKind::ConsumerDisconnected;
                if lost {
                    ctx.background.ownership_lost(&partition_id);
                }
                processor.process_error(e, &ctx).await;
                if lost {
                    processor.close(CloseReason::OwnershipLost, &ctx).await;
                }
                writer.finish().await;
                return;
            }
        };
        processor.initialize(&ctx).await;
        let reason = loop {
            let batch = tokio::select! {
                biased;
                _ = stop.changed() => break stop.borrow().unwrap_or(CloseReason::Shutdown),
                b = consumer.receive(self.options.max_batch_size, self.options.max_wait_time) => b,
            };
            match batch {
                Ok(events) if events.is_empty() => {}
                Ok(events) => {
                    if let Some(p) = consumer.last_enqueued_event_properties() {
                        *ctx.last_enqueued.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(p.clone());
                    }
                    // Not cancelled by stop: an in-flight batch always finishes.
                    processor.process_events(events, &ctx).await;
                }
                Err(e) if e.kind() == ErrorKind::ConsumerDisconnected => {
                    // A consumer with our owner level or higher took the link: a new owner.
                    ctx.background.ownership_lost(&partition_id);
                    processor.process_error(e, &ctx).await;
                    break CloseReason::OwnershipLost;
                }
                Err(e) => {
                    let transient = e.is_transient();
                    processor.process_error(e, &ctx).await;
                    if !transient {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.changed() => break stop.borrow().unwrap_or(CloseReason::Shutdown),
                        }
                    }
                }
            }
        };
        let _ = consumer.close().await;
        processor.close(reason, &ctx).await;
        // Written before the task ends, so before `stop` releases ownership (after a loss,
        // nothing more is written).
        writer.finish().await;
    }
}

#[cfg(test)]
mod tests {
    //! The background writer alone, over an in-memory store that records when each write
    //! starts, on tokio's paused clock: intervals are simulated time, not wall-clock.

    use super::*;
    use crate::processor::{InMemoryPartitionManager, StoreFuture};

    /// Records (simulated time since creation, sequence number) of each checkpoint write.
    struct Recording {
        inner: InMemoryPartitionManager,
        epoch: tokio::time::Instant,
        writes: Mutex<Vec<(Duration, i64)>>,
        /// Each write takes this long (simulated).
        latency: Duration,
    }

    impl Recording {
        fn new(latency: Duration) -> Arc<Self> {
            Arc::new(Recording {
                inner: InMemoryPartitionManager::new(),
                epoch: tokio::time::Instant::now(),
                writes: Mutex::default(),
                latency,
            })
        }

        fn writes(&self) -> Vec<(Duration, i64)> {
            self.writes.lock().unwrap().clone()
        }
    }

    impl PartitionManager for Recording {
        fn list_ownership<'a>(
            &'a self,
            namespace: &'a str,
            event_hub: &'a str,
            consumer_group: &'a str,
        ) -> StoreFuture<'a, Vec<Ownership>> {
            self.inner
                .list_ownership(namespace, event_hub, consumer_group)
        }

        fn claim_ownership<'a>(
            &'a self,
            claims: Vec<Ownership>,
        ) -> StoreFuture<'a, Vec<Ownership>> {
            self.inner.claim_ownership(claims)
        }

        fn update_checkpoint<'a>(&'a self, checkpoint: Checkpoint) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                self.writes.lock().unwrap().push((
                    self.epoch.elapsed(),
                    checkpoint.sequence_number.unwrap_or(-1),
                ));
                tokio::time::sleep(self.latency).await;
                self.inner.update_checkpoint(checkpoint).await
            })
        }

        fn list_checkpoints<'a>(
            &'a self,
            namespace: &'a str,
            event_hub: &'a str,
            consumer_group: &'a str,
        ) -> StoreFuture<'a, Vec<Checkpoint>> {
            self.inner
                .list_checkpoints(namespace, event_hub, consumer_group)
        }
    }

    fn partition(
        store: &Arc<Recording>,
        interval: Duration,
    ) -> (PartitionContext, BackgroundWriter) {
        let manager: Arc<dyn PartitionManager> = store.clone();
        let background = Arc::new(Background::new(interval));
        let ctx = PartitionContext {
            fully_qualified_namespace: "ns".into(),
            event_hub_name: "eh".into(),
            consumer_group: "$default".into(),
            partition_id: "0".into(),
            owner_id: "me".into(),
            last_enqueued: Arc::default(),
            manager: manager.clone(),
            background: background.clone(),
        };
        (ctx, BackgroundWriter::spawn(background, manager))
    }

    /// Schedules checkpoints 0..n, one every `every` of simulated time.
    async fn schedule(ctx: &PartitionContext, n: i64, every: Duration) {
        for i in 0..n {
            ctx.checkpoint_in_background(i.to_string(), i).unwrap();
            tokio::time::sleep(every).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_newest_checkpoint_is_written_at_most_once_per_interval_and_flushed_at_close() {
        let store = Recording::new(Duration::from_millis(5));
        let (ctx, writer) = partition(&store, Duration::from_secs(1));
        // 500 schedules, 7 ms apart (never at the same instant as a write), over 3.5 s.
        schedule(&ctx, 500, Duration::from_millis(7)).await;
        writer.finish().await;
        let writes = store.writes();
        let ms = |w: &(Duration, i64)| (w.0.as_millis(), w.1);
        assert_eq!(
            writes.iter().map(ms).collect::<Vec<_>>(),
            // The first at once, then one a second of the newest scheduled by then (the 142nd
            // at 994 ms, ...), then the last one at close without waiting for the interval.
            vec![(0, 0), (1000, 142), (2000, 285), (3000, 428), (3500, 499)],
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_interval_writes_as_soon_as_the_previous_write_is_done() {
        let store = Recording::new(Duration::from_millis(25));
        let (ctx, writer) = partition(&store, Duration::ZERO);
        schedule(&ctx, 100, Duration::from_millis(10)).await;
        writer.finish().await;
        let writes = store.writes();
        // Back to back, 25 ms apart: each write takes what was newest when the last ended.
        assert!(writes.len() >= 40, "{writes:?}");
        assert!(
            writes
                .windows(2)
                .all(|w| w[1].0 - w[0].0 == Duration::from_millis(25) || w[1].1 == 99),
            "{writes:?}"
        );
        assert_eq!(writes.last().map(|w| w.1), Some(99));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_write_is_followed_at_once_when_it_took_longer_than_the_interval() {
        let store = Recording::new(Duration::from_millis(1500));
        let (ctx, writer) = partition(&store, Duration::from_secs(1));
        schedule(&ctx, 300, Duration::from_millis(10)).await;
        writer.finish().await;
        let at: Vec<u128> = store.writes().iter().map(|w| w.0.as_millis()).collect();
        assert_eq!(at, vec![0, 1500, 3000], "no extra wait after a long write");
    }

    #[tokio::test(start_paused = true)]
    async fn after_ownership_is_lost_nothing_more_is_written_and_the_pending_one_is_dropped() {
        let store = Recording::new(Duration::from_millis(5));
        let (ctx, writer) = partition(&store, Duration::from_secs(1));
        schedule(&ctx, 50, Duration::from_millis(10)).await;
        // 0 written at once; 49 waits for the interval when another processor takes over.
        ctx.background.ownership_lost(&ctx.partition_id);
        let err = ctx.checkpoint_in_background("50", 50).unwrap_err();
        assert!(
            err.to_string().contains("owned by another processor"),
            "{err}"
        );
        writer.finish().await;
        let seqs: Vec<i64> = store.writes().iter().map(|w| w.1).collect();
        assert_eq!(
            seqs,
            vec![0],
            "the pending 49 is not written over the new owner's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_awaited_checkpoint_is_refused_once_ownership_is_lost() {
        let store = Recording::new(Duration::from_millis(5));
        let (ctx, writer) = partition(&store, Duration::from_secs(1));
        ctx.update_checkpoint("1", 1).await.unwrap();
        ctx.background.ownership_lost(&ctx.partition_id);
        let err = ctx.update_checkpoint("2", 2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OwnershipLost, "{err}");
        assert!(
            err.to_string().contains("owned by another processor"),
            "{err}"
        );
        let err = ctx.checkpoint_in_background("3", 3).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OwnershipLost, "{err}");
        writer.finish().await;
        assert_eq!(
            store.writes().iter().map(|w| w.1).collect::<Vec<_>>(),
            vec![1],
            "nothing after the loss"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_awaited_checkpoint_waiting_for_a_write_in_flight_is_refused_when_ownership_is_lost_meanwhile(
    ) {
        // A slow background write holds the write lock while the loss is noticed.
        let store = Recording::new(Duration::from_secs(2));
        let (ctx, writer) = partition(&store, Duration::ZERO);
        let ctx = Arc::new(ctx);
        ctx.checkpoint_in_background("1", 1).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let awaited = tokio::spawn({
            let ctx = ctx.clone();
            async move { ctx.update_checkpoint("2", 2).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        ctx.background.ownership_lost(&ctx.partition_id);
        let err = awaited.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OwnershipLost, "{err}");
        writer.finish().await;
        assert_eq!(
            store.writes().iter().map(|w| w.1).collect::<Vec<_>>(),
            vec![1],
            "the write in flight completes; the awaited one after the loss is not made"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_awaited_checkpoint_is_refused_while_the_claim_is_expired_and_written_after_a_renewal(
    ) {
        let store = Recording::new(Duration::from_millis(5));
        let (ctx, writer) = partition(&store, Duration::ZERO);
        ctx.background.renewed(tokio::time::Instant::now());
        let err = ctx.update_checkpoint("1", 1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OwnershipLost, "{err}");
        assert!(err.to_string().contains("expired"), "{err}");
        ctx.background
            .renewed(tokio::time::Instant::now() + Duration::from_secs(30));
        ctx.update_checkpoint("2", 2).await.unwrap();
        writer.finish().await;
        assert_eq!(
            store.writes().iter().map(|w| w.1).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_is_held_while_the_claim_is_expired_and_dropped_if_it_stays_so() {
        let store = Recording::new(Duration::from_millis(5));
        let (ctx, writer) = partition(&store, Duration::ZERO);
        let hour = Duration::from_secs(3600);
        // Expired from the start: the claim lasted until now.
        ctx.background.renewed(tokio::time::Instant::now());
        ctx.checkpoint_in_background("1", 1).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(store.writes().is_empty(), "not written on an expired claim");
        // The next cycle renews the claim: the held checkpoint goes out.
        ctx.background.renewed(tokio::time::Instant::now() + hour);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            store.writes().iter().map(|w| w.1).collect::<Vec<_>>(),
            vec![1]
        );
        // Renewals fail from here on; at close the claim is still expired.
        ctx.background.renewed(tokio::time::Instant::now());
        ctx.checkpoint_in_background("2", 2).unwrap();
        writer.finish().await;
        assert_eq!(
            store.writes().iter().map(|w| w.1).collect::<Vec<_>>(),
            vec![1],
            "dropped: another processor may own the partition"
        );
    }
}
