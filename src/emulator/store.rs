//! Partition logs: events in memory with a retention bound, optionally mirrored to an
//! append-only file that survives restarts (a torn tail from a crash is cut, never served).

use crate::amqp::codec::Symbol;
use crate::amqp::codec::{Str, Timestamp, Value};
use crate::amqp::types::message::{AnnotationKey, Annotations, EventLayout, RawMessage};
use bytes::BufMut;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::amqp::types::error::AmqpError;
/// Service annotation keys stamped on every stored event.
use crate::wire::annotations as annotation;
use crate::wire::idempotent::{self, PublishingState, Stamp};
use events::Events;
use producers::Producers;
use section::{DigitCount, OffsetText, SectionTemplate, ServiceSection};

mod events;
pub(crate) mod producers;
mod section;

/// An event as stored: the encoded message with the service's annotations.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// Per-partition sequence number, from 0.
    pub sequence_number: i64,
    /// Byte position in the partition (decimal text on the wire).
    pub offset: i64,
    /// When it was stored.
    pub enqueued_time: Timestamp,
    /// The encoded message.
    pub message: Bytes,
}

/// How much a partition keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Most events kept.
    pub max_events: usize,
    /// Most bytes kept.
    pub max_bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_events: 10_000_000,
            max_bytes: 1 << 30,
        }
    }
}

/// What a partition's metadata looks like now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// First retained sequence number (-1 when empty).
    pub begin_sequence_number: i64,
    /// Last sequence number (-1 when empty).
    pub last_sequence_number: i64,
    /// Offset of the last event (-1 when empty).
    pub last_offset: i64,
    /// Time of the last event.
    pub last_enqueued_time: Timestamp,
    /// True when no event is retained.
    pub is_empty: bool,
}

/// When a partition file is flushed to the device (`fsync`), which decides what an
/// acknowledged event survives.
///
/// Every mode writes each batch to the file before it is acknowledged, so a crash of the
/// emulator process never loses an acknowledged event. They differ on an OS crash or power
/// loss, where only what reached the device survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fsync {
    /// Never sync; the OS writes back when it likes. An OS crash can lose acknowledged
    /// events from its last write-back (typically up to ~30 s). The default: fastest.
    #[default]
    Never,
    /// Sync at most once per period, from the writer (and a flusher for the quiet tail): an
    /// OS crash loses at most about one period of acknowledged events.
    Interval(Duration),
    /// Sync every batch before acknowledging it: an OS crash loses no acknowledged event.
    Always,
}

impl Fsync {
    /// The period `--fsync interval` uses.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
}

/// What a partition writes its records to: the file, or in tests a file that fails on cue.
pub(crate) trait LogSink: Send {
    /// Appends all of `bytes` at the end, or fails having written any prefix of them.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Cuts the file back to `len` bytes, so the next append lands there.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
    /// Flushes what was written to the device.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl LogSink for File {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len)).map(drop)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// The file side of a persistent partition.
struct Disk {
    sink: Box<dyn LogSink>,
    path: PathBuf,
    /// Length of the file up to the last whole record: where a failed append is cut back to.
    len: u64,
    fsync: Fsync,
    /// When the file was last synced, and whether anything was written since.
    synced_at: Option<Instant>,
    dirty: bool,
    /// Set when a failed append could not be cut back: writing after the partial record
    /// would hide acknowledged events from recovery, so every later append is refused.
    poisoned: bool,
    /// The records of the batch being written, kept between batches so that its memory is
    /// written again rather than allocated (and zeroed by the kernel) for every batch.
    records: BytesMut,
}

impl Disk {
    /// Writes one batch of records; on failure the file is as it was before the call.
    fn append(&mut self, records: &[u8], now: Instant) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(format!(
                "partition file {} is unusable after a failed write could not be undone; \
                 nothing stored (restart the emulator)",
                self.path.display()
            )));
        }
        let result = self.sink.append(records).and_then(|()| {
            self.dirty = true;
            if self.sync_due(now) {
                self.sync(now)
            } else {
                Ok(())
            }
        });
        let Err(e) = result else {
            self.len += records.len() as u64;
            return Ok(());
        };
        if let Err(cut) = self.sink.truncate(self.len) {
            self.poisoned = true;
            tracing::error!(
                path = %self.path.display(),
                error = %e,
                truncate_error = %cut,
                "partition file left with a partial record; refusing further appends"
            );
        } else {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "append to partition file failed; batch refused, file cut back"
            );
        }
        Err(std::io::Error::new(
            e.kind(),
            format!(
                "writing partition file {}: {e}; nothing stored",
                self.path.display()
            ),
        ))
    }

    fn sync_due(&self, now: Instant) -> bool {
        match self.fsync {
            Fsync::Never => false,
            Fsync::Always => true,
            Fsync::Interval(period) => self
                .synced_at
                .is_none_or(|at| now.saturating_duration_since(at) >= period),
        }
    }

    fn sync(&mut self, now: Instant) -> std::io::Result<()> {
        self.sink.sync()?;
        self.synced_at = Some(now);
        self.dirty = false;
        Ok(())
    }
}

impl Drop for Disk {
    /// A clean shutdown leaves nothing unsynced when the operator asked for syncing.
    fn drop(&mut self) {
        if self.dirty && !self.poisoned && self.fsync != Fsync::Never {
            if let Err(e) = self.sink.sync() {
                tracing::warn!(path = %self.path.display(), error = %e, "final sync failed");
            }
        }
    }
}

struct Log {
    events: Events,
    next_sequence: i64,
    next_offset: i64,
    disk: Option<Disk>,
    producers: Producers,
    /// Per producer id with a link attached, its current epoch, watched by those links so
    /// that a takeover by a higher epoch detaches the older ones at once.
    owners: HashMap<i64, watch::Sender<i16>>,
}

/// Why an idempotent delivery was not stored.
#[derive(Debug)]
pub(crate) enum IdempotentError {
    /// The producer rules refused it (the condition to reject it with).
    Refused(AmqpError),
    /// Storing failed.
    Io(std::io::Error),
}

/// One partition.
pub struct Partition {
    log: Mutex<Log>,
    retention: Retention,
    /// The next sequence number, published so readers can wait for new events.
    tail: watch::Sender<i64>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").finish_non_exhaustive()
    }
}

/// Where a reader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The first retained event.
    Earliest,
    /// Only events stored after the reader attached.
    Latest,
    /// By offset.
    Offset(i64, bool),
    /// By sequence number.
    Sequence(i64, bool),
    /// By enqueued time (ms).
    EnqueuedTime(i64, bool),
}

// The service's annotation keys, built once (a key made from a `&str` would allocate).
const SEQUENCE_NUMBER_KEY: AnnotationKey =
    AnnotationKey::Symbol(Symbol::from_static(annotation::SEQUENCE_NUMBER));
const OFFSET_KEY: AnnotationKey = AnnotationKey::Symbol(Symbol::from_static(annotation::OFFSET));
const ENQUEUED_TIME_KEY: AnnotationKey =
    AnnotationKey::Symbol(Symbol::from_static(annotation::ENQUEUED_TIME));
const PARTITION_KEY_KEY: AnnotationKey =
    AnnotationKey::Symbol(Symbol::from_static(annotation::PARTITION_KEY));

/// An event the store stamps: scanned into a [`RawMessage`], or read in place in the
/// buffer it came in ([`EventLayout`], whose bytes are `within`).
trait Stampable {
    /// The scanned message, whose annotations may go through the map; `None` for an event
    /// that is always written with the service's section after its own entries.
    fn as_raw(&self) -> Option<&RawMessage>;
    /// Its own annotations' entries as they came, and their number of keys and values.
    fn own_entries<'a>(&'a self, within: &'a [u8]) -> (&'a [u8], usize);
    /// Its size with a message-annotations section of `section_len` bytes in place of its own.
    fn len_with_section(&self, within: &[u8], section_len: usize) -> usize;
    /// Writes it with the section `write_section` writes in place of its own annotations.
    fn write_with_section(
        &self,
        within: &[u8],
        buf: &mut BytesMut,
        write_section: impl FnOnce(&mut BytesMut),
    );
}

impl Stampable for RawMessage {
    fn as_raw(&self) -> Option<&RawMessage> {
        Some(self)
    }

    fn own_entries<'a>(&'a self, _: &'a [u8]) -> (&'a [u8], usize) {
        self.message_annotations()
            .and_then(|a| a.raw_entries())
            .unwrap_or((&[], 0))
    }

    fn len_with_section(&self, _: &[u8], section_len: usize) -> usize {
        self.encoded_len_with_section(section_len)
    }

    fn write_with_section(
        &self,
        _: &[u8],
        buf: &mut BytesMut,
        write_section: impl FnOnce(&mut BytesMut),
    ) {
        self.encode_with_section(buf, write_section);
    }
}

impl Stampable for EventLayout {
    fn as_raw(&self) -> Option<&RawMessage> {
        None
    }

    fn own_entries<'a>(&'a self, within: &'a [u8]) -> (&'a [u8], usize) {
        EventLayout::own_entries(self, within)
    }

    fn len_with_section(&self, _: &[u8], section_len: usize) -> usize {
        EventLayout::len_with_section(self, section_len)
    }

    fn write_with_section(
        &self,
        within: &[u8],
        buf: &mut BytesMut,
        write_section: impl FnOnce(&mut BytesMut),
    ) {
        let part = |r: std::ops::Range<usize>| within.get(r).unwrap_or_default();
        buf.put_slice(part(self.range.start..self.head_end));
        write_section(buf);
        buf.put_slice(part(self.tail_start..self.range.end));
    }
}

/// True when a scanned event's own annotations (if any) hold no key of `service_keys` and
/// are as they came: it is written with the service's section after its own entries.
fn goes_direct(m: &RawMessage, service_keys: &[&str]) -> bool {
    m.message_annotations().is_none_or(|a| {
        a.is_empty() || (a.raw_entries().is_some() && !a.contains_any_key(service_keys))
    })
}

/// Frames on disk: `len:u32 crc:u32 bytes`.
const RECORD_HEADER: usize = 8;

impl Partition {
    /// An in-memory partition.
    pub fn in_memory(retention: Retention) -> Self {
        Self::with_log(
            Log {
                events: Events::default(),
                next_sequence: 0,
                next_offset: 0,
                disk: None,
                producers: Producers::default(),
                owners: HashMap::new(),
            },
            retention,
        )
    }

    fn with_log(log: Log, retention: Retention) -> Self {
        let (tail, _) = watch::channel(log.next_sequence);
        Partition {
            log: Mutex::new(log),
            retention,
            tail,
        }
    }

    /// A partition backed by `path`: replays the file, cutting a torn or corrupt tail.
    pub fn open(path: &Path, retention: Retention, fsync: Fsync) -> std::io::Result<Self> {
        Self::open_with(path, retention, fsync, |f| Box::new(f))
    }

    /// [`Partition::open`], writing through `sink` (tests wrap the file to make it fail).
    pub(crate) fn open_with(
        path: &Path,
        retention: Retention,
        fsync: Fsync,
        sink: impl FnOnce(File) -> Box<dyn LogSink>,
    ) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let data = Bytes::from(data);
        let mut log = Log {
            events: Events::default(),
            next_sequence: 0,
            next_offset: 0,
            disk: None,
            producers: Producers::default(),
            owners: HashMap::new(),
        };
        let mut pos = 0usize;
        // Records are gathered into runs that were (or could have been) one stored batch:
        // consecutive events of one enqueued time, each starting where the one before ended.
        let mut run: Vec<StoredEvent> = Vec::new();
        while let Some(event) = read_record(&data, pos) {
            if let Ok(Some(stamp)) = RawMessage::scan(event.message.clone())
                .map_err(|e| e.to_string())
                .and_then(|m| idempotent::read_stamp_in(m.message_annotations()))
            {
                log.producers.recover(stamp);
            }
            pos += RECORD_HEADER + event.message.len();
            let follows = run.last().is_none_or(|last| {
                last.enqueued_time == event.enqueued_time
                    && last.sequence_number + 1 == event.sequence_number
                    && last.offset + last.message.len() as i64 == event.offset
            });
            if !follows {
                Self::restore(&mut log, &mut run);
            }
            log.next_sequence = event.sequence_number + 1;
            log.next_offset = event.offset + event.message.len() as i64;
            run.push(event);
        }
        Self::restore(&mut log, &mut run);
        if pos < data.len() {
            tracing::warn!(
                path = %path.display(),
                kept = pos,
                cut = data.len() - pos,
                "partition log has a torn or corrupt tail; cutting it"
            );
            file.truncate(pos as u64)?;
        }
        log.disk = Some(Disk {
            sink: sink(file),
            path: path.to_path_buf(),
            len: pos as u64,
            fsync,
            synced_at: None,
            dirty: false,
            poisoned: false,
            records: BytesMut::new(),
        });
        let p = Self::with_log(log, retention);
        p.trim(&mut p.lock());
        Ok(p)
    }

    /// Stores a run of events read back from the file (see [`Partition::open_with`]) as one
    /// batch, copying them out of the file's buffer.
    fn restore(log: &mut Log, run: &mut Vec<StoredEvent>) {
        let Some(first) = run.first() else {
            return;
        };
        let (seq, offset, time) = (first.sequence_number, first.offset, first.enqueued_time);
        let total = run.iter().map(|e| e.message.len()).sum();
        // A run is at most what the file held, far below the 4 GiB a batch may take.
        if let Some(mut batch) = log.events.begin(total, run.len()) {
            for e in run.iter() {
                log.events.start_event(&mut batch);
                log.events.buf().extend_from_slice(&e.message);
            }
            log.events.commit(batch, seq, offset, time);
        }
        run.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-written in a way readers
        // could misread (appends are all-or-nothing below), so recover the guard.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores messages in order, stamping sequence number, offset, enqueued time and (when
    /// given) the partition key. Returns the stored events. On error nothing is stored: the
    /// file is as it was, and the sequence numbers are given to the next batch instead.
    /// Messages arrive as [`RawMessage`]s (as the ingest node scans them, or converted from
    /// decoded [`Message`](crate::amqp::types::message::Message)s): only their annotations
    /// are rewritten, the rest is stored as sent.
    pub fn append<M: Into<RawMessage>>(
        &self,
        messages: Vec<M>,
        partition_key: Option<&Str>,
    ) -> std::io::Result<Vec<StoredEvent>> {
        self.append_at(messages, partition_key, Instant::now())
    }

    /// [`Partition::append`] at monotonic time `clock` (which paces `Fsync::Interval`).
    pub(crate) fn append_at<M: Into<RawMessage>>(
        &self,
        messages: Vec<M>,
        partition_key: Option<&Str>,
        clock: Instant,
    ) -> std::io::Result<Vec<StoredEvent>> {
        let messages: Vec<RawMessage> = messages.into_iter().map(Into::into).collect();
        let mut log = self.lock();
        let (n, seq) = Self::append_locked(&mut log, &messages, &[], partition_key, clock)?;
        let stored = log.events.read(seq - n as i64, n);
        self.trim(&mut log);
        drop(log);
        self.tail.send_replace(seq);
        Ok(stored)
    }

    /// [`Partition::append`] for the ingest node, which needs nothing back.
    pub(crate) fn store(
        &self,
        messages: Vec<RawMessage>,
        partition_key: Option<&Str>,
    ) -> std::io::Result<()> {
        self.store_stamped(&messages, &[], partition_key)
    }

    /// [`Partition::store`] for events read in place in `within` (a delivery's payload, see
    /// [`EventLayout::scan`]); none of their own annotations may hold a key the service
    /// writes (the ingest node checks). No event is sliced out of the payload or scanned
    /// again: each is written stamped straight from it.
    pub(crate) fn store_in_place(
        &self,
        events: &[EventLayout],
        within: &[u8],
        partition_key: Option<&Str>,
    ) -> std::io::Result<()> {
        self.store_stamped(events, within, partition_key)
    }

    /// Stamps and stores `events` (whose bytes are `within` for events read in place), trims
    /// to the retention and wakes the readers.
    fn store_stamped<E: Stampable>(
        &self,
        events: &[E],
        within: &[u8],
        partition_key: Option<&Str>,
    ) -> std::io::Result<()> {
        let mut log = self.lock();
        let (_, seq) =
            Self::append_locked(&mut log, events, within, partition_key, Instant::now())?;
        self.trim(&mut log);
        drop(log);
        self.tail.send_replace(seq);
        Ok(())
    }

    /// The state an idempotent producer's attach gets on this partition (see
    /// [`producers`] for the rules), and a watch of its producer id's epoch: once that
    /// rises above the attached epoch, a higher epoch has taken the id over.
    pub(crate) fn attach_producer(
        &self,
        requested: Option<PublishingState>,
    ) -> Result<(PublishingState, watch::Receiver<i16>), AmqpError> {
        let clock_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let mut log = self.lock();
        let state = log.producers.attach(requested, clock_id)?;
        // Ids whose links are all gone need no watch: the table keeps their epoch.
        log.owners.retain(|_, tx| tx.receiver_count() > 0);
        let owner = log
            .owners
            .entry(state.producer_id)
            .or_insert_with(|| watch::channel(state.owner_level).0);
        owner.send_if_modified(|epoch| {
            let higher = state.owner_level > *epoch;
            if higher {
                *epoch = state.owner_level;
            }
            higher
        });
        Ok((state, owner.subscribe()))
    }

    /// Stores the messages of one idempotent delivery (`stamps[i]` is `messages[i]`'s
    /// stamp), dropping leading ones that are resends of stored events. Checking and storing
    /// happen under one lock, so two deliveries cannot both pass as new. Returns how many
    /// were stored.
    pub(crate) fn append_idempotent(
        &self,
        messages: &[RawMessage],
        stamps: &[Stamp],
        partition_key: Option<&Str>,
    ) -> Result<usize, IdempotentError> {
        self.append_idempotent_from(messages, &[], stamps, partition_key)
    }

    /// [`Partition::append_idempotent`] for events read in place in the delivery `within`
    /// ([`Partition::store_in_place`]).
    pub(crate) fn append_idempotent_in_place(
        &self,
        events: &[EventLayout],
        within: &[u8],
        stamps: &[Stamp],
        partition_key: Option<&Str>,
    ) -> Result<usize, IdempotentError> {
        self.append_idempotent_from(events, within, stamps, partition_key)
    }

    fn append_idempotent_from<E: Stampable>(
        &self,
        messages: &[E],
        within: &[u8],
        stamps: &[Stamp],
        partition_key: Option<&Str>,
    ) -> Result<usize, IdempotentError> {
        let mut log = self.lock();
        let resent = log
            .producers
            .check(stamps)
            .map_err(IdempotentError::Refused)?;
        let fresh = messages.get(resent..).unwrap_or_default();
        let (Some(last), false) = (stamps.last().copied(), fresh.is_empty()) else {
            return Ok(0);
        };
        let n = fresh.len();
        let (_, seq) = Self::append_locked(&mut log, fresh, within, partition_key, Instant::now())
            .map_err(IdempotentError::Io)?;
        log.producers.commit(last);
        self.trim(&mut log);
        drop(log);
        self.tail.send_replace(seq);
        Ok(n)
    }

    /// Stamps and stores `messages` on the locked log; returns how many were stored and the
    /// next sequence number. On error nothing is stored.
    fn append_locked<E: Stampable>(
        log: &mut Log,
        messages: &[E],
        within: &[u8],
        partition_key: Option<&Str>,
        clock: Instant,
    ) -> std::io::Result<(usize, i64)> {
        let now = Timestamp::now();
        // One map, reused for every event, holds an event's own annotations plus the
        // service's; the offsets' text shares one buffer. Nothing is allocated per event.
        let mut stamps = Annotations::default();
        let stamp = |stamps: &mut Annotations, m: &RawMessage, seq: i64, offset: &Str| {
            stamps.entries_mut().clear();
            let own = m.message_annotations().filter(|a| !a.is_empty());
            if let Some(own) = own {
                stamps.entries_mut().extend(own.iter().cloned());
            }
            let service = [
                (SEQUENCE_NUMBER_KEY, Value::Long(seq)),
                (OFFSET_KEY, Value::String(offset.clone())),
                (ENQUEUED_TIME_KEY, Value::Timestamp(now)),
            ];
            let key = partition_key.map(|k| (PARTITION_KEY_KEY, Value::String(k.clone())));
            for (k, v) in service.into_iter().chain(key) {
                // An event with no annotations of its own (the usual case) cannot hold these
                // keys already: no search for them.
                if own.is_some() {
                    stamps.insert(k, v);
                } else {
                    stamps.entries_mut().push((k, v));
                }
            }
        };
        // An event whose own annotations (if any) hold no key the service writes (the usual
        // case, and an idempotent producer's events) gets the service's section written
        // directly after its own entries as they came ([`ServiceSection`]); one that does goes
        // through the map, which keeps its keys and replaces the service's.
        let section = ServiceSection {
            now,
            key: partition_key.map(|k| k.as_str().as_bytes()),
            own: (&[], 0),
        };
        let service_keys: &[&str] = match partition_key {
            Some(_) => &[
                annotation::SEQUENCE_NUMBER,
                annotation::OFFSET,
                annotation::ENQUEUED_TIME,
                annotation::PARTITION_KEY,
            ],
            None => &[
                annotation::SEQUENCE_NUMBER,
                annotation::OFFSET,
                annotation::ENQUEUED_TIME,
            ],
        };
        // Which events go direct, decided once per event for both passes (an event read in
        // place always does: the ingest node reads it in place only then).
        let direct: Vec<bool> = messages
            .iter()
            .map(|m| m.as_raw().is_none_or(|m| goes_direct(m, service_keys)))
            .collect();
        let mut digits = BytesMut::new();
        let mut offset_str = |offset: i64| {
            use std::io::Write as _;
            let _ = write!((&mut digits).writer(), "{offset}");
            Str::from_utf8(digits.split().freeze()).unwrap_or_default()
        };
        let (mut seq, mut offset) = (log.next_sequence, log.next_offset);
        let mut digit_count = DigitCount::new(offset);
        let mut total = 0usize;
        for (m, &direct) in messages.iter().zip(&direct) {
            let n = match m.as_raw() {
                Some(m) if !direct => {
                    stamp(&mut stamps, m, seq, &offset_str(offset));
                    m.encoded_len_with(&stamps)
                }
                _ => {
                    let section = section.with_own(m.own_entries(within));
                    m.len_with_section(within, section.len(digit_count.of(offset)))
                }
            };
            total = total.saturating_add(n);
            seq += 1;
            offset += n as i64;
        }
        // The whole batch goes into one buffer (cut from a reused segment, see [`Events`]),
        // indexed by where each event starts: nothing is allocated per event.
        let Some(mut batch) = log.events.begin(total, messages.len()) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a batch of {total} bytes is more than a partition stores at once"),
            ));
        };
        let mut records = log.disk.as_mut().map(|d| {
            d.records.clear();
            &mut d.records
        });
        seq = log.next_sequence;
        let mut offset = OffsetText::new(log.next_offset);
        let mut template = SectionTemplate::default();
        for (m, &direct) in messages.iter().zip(&direct) {
            log.events.start_event(&mut batch);
            let buf = log.events.buf();
            let start = buf.len();
            match m.as_raw() {
                Some(m) if !direct => {
                    stamp(&mut stamps, m, seq, &offset_str(offset.value()));
                    m.encode_with(&stamps, buf);
                }
                _ => {
                    let text = offset.text();
                    match m.own_entries(within) {
                        ([], 0) => m.write_with_section(within, buf, |b| {
                            template.write(&section, b, seq, &text)
                        }),
                        own => {
                            let section = section.with_own(own);
                            m.write_with_section(within, buf, |b| section.write(b, seq, &text));
                        }
                    }
                }
            }
            let message = buf.get(start..).unwrap_or_default();
            if let Some(records) = records.as_mut() {
                records.extend_from_slice(&(message.len() as u32).to_be_bytes());
                records.extend_from_slice(&crc32(message).to_be_bytes());
                records.extend_from_slice(message);
            }
            seq += 1;
            offset.advance(message.len());
        }
        // Durable before visible: an event is acknowledged only after it is in the file.
        if let Some(d) = log.disk.as_mut() {
            let records = std::mem::take(&mut d.records);
            let written = d.append(&records, clock);
            d.records = records;
            if let Err(e) = written {
                log.events.abandon(batch);
                return Err(e);
            }
        }
        let n = messages.len();
        log.events
            .commit(batch, log.next_sequence, log.next_offset, now);
        log.next_sequence = seq;
        log.next_offset = offset.value();
        Ok((n, seq))
    }

    /// Syncs the file if `Fsync::Interval` has unsynced writes older than its period, so
    /// that a batch followed by silence is not left unsynced until the next one.
    pub(crate) fn sync_if_due(&self, clock: Instant) -> std::io::Result<()> {
        let mut log = self.lock();
        match log.disk.as_mut() {
            Some(d) if d.dirty && !d.poisoned && d.sync_due(clock) => d.sync(clock),
            _ => Ok(()),
        }
    }

    fn trim(&self, log: &mut Log) {
        while log.events.len() > self.retention.max_events
            || (log.events.bytes() > self.retention.max_bytes && log.events.len() > 1)
        {
            if log.events.pop_front().is_none() {
                break;
            }
        }
    }

    /// The sequence number a reader starting at `start` reads first.
    pub fn resolve(&self, start: Start) -> i64 {
        let log = self.lock();
        let first = log.events.first_sequence().unwrap_or(log.next_sequence);
        let find = |pred: &dyn Fn(i64, Timestamp) -> bool| {
            log.events.first_where(pred).unwrap_or(log.next_sequence)
        };
        match start {
            Start::Earliest => first,
            Start::Latest => log.next_sequence,
            Start::Sequence(n, inclusive) => {
                let n = if inclusive { n } else { n.saturating_add(1) };
                n.max(first)
            }
            Start::Offset(o, inclusive) => {
                if o < 0 {
                    first
                } else {
                    find(&|offset, _| if inclusive { offset >= o } else { offset > o })
                }
            }
            Start::EnqueuedTime(t, inclusive) => find(&|_, time| {
                if inclusive {
                    time.0 >= t
                } else {
                    time.0 > t
                }
            }),
        }
    }

    /// Up to `max` events from sequence number `from` (later ones if those expired).
    pub fn read(&self, from: i64, max: usize) -> Vec<StoredEvent> {
        self.lock().events.read(from, max)
    }

    /// A receiver that changes whenever events are appended (its value: the next sequence).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.tail.subscribe()
    }

    /// Current metadata.
    pub fn info(&self) -> PartitionInfo {
        let log = self.lock();
        match (log.events.front(), log.events.back()) {
            (Some(f), Some(l)) => PartitionInfo {
                begin_sequence_number: f.sequence_number,
                last_sequence_number: l.sequence_number,
                last_offset: l.offset,
                last_enqueued_time: l.enqueued_time,
                is_empty: false,
            },
            _ => PartitionInfo {
                begin_sequence_number: -1,
                last_sequence_number: log.next_sequence - 1,
                last_offset: -1,
                last_enqueued_time: Timestamp(0),
                is_empty: true,
            },
        }
    }

    /// Bytes of event data retained in memory.
    pub fn retained_bytes(&self) -> usize {
        self.lock().events.bytes()
    }
}

/// One record at `pos`, or `None` at the end or at a torn/corrupt record.
fn read_record(data: &Bytes, pos: usize) -> Option<StoredEvent> {
    let header = data.get(pos..pos + RECORD_HEADER)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let start = pos + RECORD_HEADER;
    let body = data.get(start..start.checked_add(len)?)?;
    if crc32(body) != crc {
        return None;
    }
    let message = data.slice(start..start + len);
    let m = RawMessage::scan(message.clone()).ok()?;
    let seq = m
        .message_annotation(annotation::SEQUENCE_NUMBER)?
        .as_i64()?;
    let offset = m
        .message_annotation(annotation::OFFSET)?
        .as_str()?
        .parse()
        .ok()?;
    let time = match m.message_annotation(annotation::ENQUEUED_TIME)? {
        Value::Timestamp(t) => *t,
        _ => return None,
    };
    Some(StoredEvent {
        sequence_number: seq,
        offset,
        enqueued_time: time,
        message,
    })
}

/// CRC-32 (IEEE), bitwise: records are small and this is not the hot path of the emulator.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The CRC-32 (IEEE) of every byte value, so that a record costs a table look-up per byte
/// rather than eight shifts (every stored event's record is checksummed).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Where a hub's partition file lives.
pub(crate) fn partition_path(dir: &Path, hub: &str, partition: u32) -> PathBuf {
    dir.join(hub).join(format!("{partition}.log"))
}

#[cfg(test)]
mod failing_disk_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::types::message::Message;

    fn msg(body: &'static [u8]) -> Message {
        Message::with_data(Bytes::from_static(body))
    }

    /// A batch read in place is stored byte for byte as the general path stores it (scanned
    /// events), for events of every section and with or without annotations of their own,
    /// with and without a partition key; the service's timestamp is the one difference, so
    /// it is compared with the enqueued time cut out.
    #[test]
    fn events_read_in_place_are_stored_as_scanned_ones_are() {
        use crate::amqp::codec::Decoder;
        use crate::amqp::types::message::{Header, Properties};
        use crate::wire::batch;
        let mut events = vec![msg(b"plain"), msg(b"")];
        let mut rich = msg(b"rich");
        rich.header = Some(Header {
            durable: true,
            ..Default::default()
        });
        rich.message_annotations_mut().insert("x-opt-own", 7i64);
        rich.properties = Some(Properties {
            message_id: Some(crate::amqp::types::message::MessageId::Ulong(41)),
            ..Default::default()
        });
        rich.application_properties_mut().insert("app", "v");
        events.push(rich);
        let encoded: Vec<Bytes> = events.iter().map(|m| m.to_bytes()).collect();
        let mut envelope = Message::default();
        for key in [None, Some("k")] {
            if let Some(k) = key {
                envelope
                    .message_annotations_mut()
                    .insert(annotation::PARTITION_KEY, k);
            }
            let payload = batch::build(&envelope, &encoded);
            let mut d = Decoder::new(payload.clone());
            let (mut ranges, mut layouts) = (Vec::new(), Vec::new());
            let found = batch::read_in_place(&mut d, &mut ranges, &mut layouts)
                .expect("the usual shape")
                .map(Str::from);
            assert_eq!(found.as_ref().map(Str::as_str), key);
            assert_eq!(layouts.len(), events.len());
            let (a, b) = (
                Partition::in_memory(Retention::default()),
                Partition::in_memory(Retention::default()),
            );
            a.store_in_place(&layouts, &payload, found.as_ref())
                .unwrap();
            let mut decoded = Message::decode(payload.clone()).unwrap();
            b.store(batch::split_raw(&mut decoded).unwrap(), found.as_ref())
                .unwrap();
            let untimed = |e: &StoredEvent| {
                let mut m = Message::decode(e.message.clone()).unwrap();
                assert!(m
                    .message_annotations_mut()
                    .entries_mut()
                    .iter()
                    .any(|(k, _)| k.as_str() == Some(annotation::ENQUEUED_TIME)));
                m.message_annotations_mut()
                    .insert(annotation::ENQUEUED_TIME, Value::Null);
                (e.sequence_number, e.offset, m.to_bytes(), e.message.len())
            };
            let (a, b) = (a.read(0, 10), b.read(0, 10));
            assert_eq!(a.len(), events.len());
            assert_eq!(
                a.iter().map(untimed).collect::<Vec<_>>(),
                b.iter().map(untimed).collect::<Vec<_>>()
            );
            // The event's own annotation stays, before the service's.
            let own = Message::decode(a[2].message.clone()).unwrap();
            let keys: Vec<_> = own
                .message_annotations
                .as_ref()
                .unwrap()
                .entries()
                .iter()
                .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                .collect();
            assert_eq!(keys[0], "x-opt-own");
            assert_eq!(keys.len(), if key.is_some() { 5 } else { 4 });
        }
    }

    /// An idempotent batch read in place is checked and stored as the scanned one is: the
    /// same events kept (a resent prefix dropped), byte for byte but the enqueued time, the
    /// same producer state after it, and the same refusal of a gap.
    #[test]
    fn idempotent_events_read_in_place_are_stored_as_scanned_ones_are() {
        use crate::amqp::codec::Decoder;
        use crate::wire::{batch, idempotent};
        let (a, b) = (
            Partition::in_memory(Retention::default()),
            Partition::in_memory(Retention::default()),
        );
        let (state, _epochs) = a.attach_producer(None).unwrap();
        let _b_epochs = b.attach_producer(Some(state)).unwrap();
        let stamped = |first: i32, n: i32| -> Vec<Bytes> {
            (first..first + n)
                .map(|sequence| {
                    let mut m = msg(b"event");
                    idempotent::stamp(
                        &mut m,
                        Stamp {
                            producer_id: state.producer_id,
                            owner_level: state.owner_level,
                            sequence,
                        },
                    );
                    m.to_bytes()
                })
                .collect()
        };
        let untimed = |e: &StoredEvent| {
            let mut m = Message::decode(e.message.clone()).unwrap();
            m.message_annotations_mut()
                .insert(annotation::ENQUEUED_TIME, Value::Null);
            (e.sequence_number, e.offset, m.to_bytes())
        };
        // A first batch, the same again with two more (the first three are resent), a gap.
        for (first, n, stored) in [(0, 3, Some(3)), (0, 5, Some(2)), (7, 1, None)] {
            let payload = batch::build(&Message::default(), &stamped(first, n));
            let mut d = Decoder::new(payload.clone());
            let (mut ranges, mut layouts) = (Vec::new(), Vec::new());
            batch::read_in_place(&mut d, &mut ranges, &mut layouts).expect("the usual shape");
            let stamps: Vec<Stamp> = layouts
                .iter()
                .map(|e| idempotent::read_stamp_at(&mut d, e.annotations.clone()).unwrap())
                .collect();
            let in_place = a.append_idempotent_in_place(&layouts, &payload, &stamps, None);
            let mut decoded = Message::decode(payload.clone()).unwrap();
            let scanned =
                b.append_idempotent(&batch::split_raw(&mut decoded).unwrap(), &stamps, None);
            match stored {
                Some(n) => {
                    assert_eq!(in_place.ok(), Some(n));
                    assert_eq!(scanned.ok(), Some(n));
                }
                None => {
                    let (Err(IdempotentError::Refused(x)), Err(IdempotentError::Refused(y))) =
                        (in_place, scanned)
                    else {
                        panic!("a gap is refused on both paths");
                    };
                    assert_eq!(x.condition, y.condition);
                }
            }
        }
        let (a, b) = (a.read(0, 100), b.read(0, 100));
        assert_eq!(a.len(), 5);
        assert_eq!(
            a.iter().map(untimed).collect::<Vec<_>>(),
            b.iter().map(untimed).collect::<Vec<_>>()
        );
    }

    /// A batch this does not read in place (an event that is not a message, a body of
    /// another kind) is left to the general path, which names the error.
    #[test]
    fn unusual_batches_are_left_to_the_general_path() {
        use crate::amqp::codec::Decoder;
        use crate::wire::batch;
        let (mut ranges, mut layouts) = (Vec::new(), Vec::new());
        let broken = batch::build(&Message::default(), &[Bytes::from_static(b"\x00\x53")]);
        assert!(
            batch::read_in_place(&mut Decoder::new(broken.clone()), &mut ranges, &mut layouts)
                .is_none()
        );
        let mut m = Message::decode(broken).unwrap();
        assert!(batch::split_raw(&mut m).is_err());
        let not_data = Message::with_value(Value::Long(1)).to_bytes();
        assert!(
            batch::read_in_place(&mut Decoder::new(not_data), &mut ranges, &mut layouts).is_none()
        );
    }

    /// An event that already carries service annotations (say, one read and sent again)
    /// gets the service's values in their place, once each; its own others stay.
    #[test]
    fn stamps_replace_the_events_own_service_annotations() {
        let p = Partition::in_memory(Retention::default());
        let mut resent = msg(b"again");
        resent
            .message_annotations_mut()
            .insert(annotation::SEQUENCE_NUMBER, Value::Long(999));
        resent
            .message_annotations_mut()
            .insert("custom", Value::Int(1));
        let key = Str::from("k");
        let stored = p.append(vec![msg(b"first"), resent], Some(&key)).unwrap();
        let back = Message::decode(stored[1].message.clone()).unwrap();
        let a = back.message_annotations.unwrap();
        let count = |k: &str| a.0.iter().filter(|(x, _)| x.as_str() == Some(k)).count();
        assert_eq!(a.get(annotation::SEQUENCE_NUMBER), Some(&Value::Long(1)));
        assert_eq!(a.get("custom"), Some(&Value::Int(1)));
        assert_eq!(a.get(annotation::PARTITION_KEY), Some(&Value::String(key)));
        for k in [
            annotation::SEQUENCE_NUMBER,
            annotation::OFFSET,
            annotation::ENQUEUED_TIME,
            annotation::PARTITION_KEY,
        ] {
            assert_eq!(count(k), 1, "{k}");
        }
        assert_eq!(
            a.get(annotation::OFFSET),
            Some(&Value::String(Str::from(stored[1].offset.to_string())))
        );
    }

    /// Events as they come off the wire: own annotations without a service key are kept as
    /// they came and the service's written after them; with one, the service's replaces it.
    #[test]
    fn scanned_events_keep_their_own_annotations_and_get_the_service_ones_once() {
        use crate::amqp::codec::encode_to_vec;
        let scanned = |own: &[(&str, Value)]| {
            let mut m = msg(b"body");
            for (k, v) in own {
                m.message_annotations_mut().insert(*k, v.clone());
            }
            RawMessage::scan(Bytes::from(encode_to_vec(&m))).unwrap()
        };
        let key = Str::from("k");
        for partition_key in [None, Some(&key)] {
            let p = Partition::in_memory(Retention::default());
            let events = vec![
                scanned(&[("custom", Value::Int(1))]),
                scanned(&[
                    ("custom", Value::Int(2)),
                    (annotation::OFFSET, Value::Long(5)),
                ]),
                scanned(&[(annotation::PARTITION_KEY, Value::String(Str::from("own")))]),
                scanned(&[]),
            ];
            let stored = p.append(events, partition_key).unwrap();
            for (i, e) in stored.iter().enumerate() {
                let back = Message::decode(e.message.clone()).unwrap();
                let a = back.message_annotations.unwrap();
                let count = |k: &str| a.iter().filter(|(x, _)| x.as_str() == Some(k)).count();
                for k in [
                    annotation::SEQUENCE_NUMBER,
                    annotation::OFFSET,
                    annotation::ENQUEUED_TIME,
                ] {
                    assert_eq!(count(k), 1, "event {i} {k}");
                }
                assert_eq!(
                    a.get(annotation::SEQUENCE_NUMBER),
                    Some(&Value::Long(i as i64))
                );
                assert_eq!(
                    a.get(annotation::OFFSET),
                    Some(&Value::String(Str::from(e.offset.to_string())))
                );
                let custom = [Some(Value::Int(1)), Some(Value::Int(2)), None, None];
                assert_eq!(a.get("custom").cloned(), custom[i], "event {i}");
                let want_key = match (partition_key, i) {
                    (Some(k), _) => Some(k.as_str()),
                    (None, 2) => Some("own"),
                    (None, _) => None,
                };
                assert_eq!(a.get_str(annotation::PARTITION_KEY), want_key, "event {i}");
                assert!(count(annotation::PARTITION_KEY) <= 1);
                if let Some(next) = stored.get(i + 1) {
                    assert_eq!(next.offset, e.offset + e.message.len() as i64);
                }
            }
        }
    }

    /// The section written straight from the values is the one the map gives: same
    /// annotations, exact size, for short and long keys (str32, map32) and large offsets.
    /// Offsets are byte positions: each stored event's offset is the sum of the sizes
    /// before it, whichever way its annotations were written.
    #[test]
    fn offsets_count_the_stored_bytes_on_both_paths() {
        let p = Partition::in_memory(Retention::default());
        let mut own = msg(b"own");
        own.message_annotations_mut()
            .insert("custom", Value::Int(1));
        let key = Str::from("key");
        let stored = p
            .append(vec![msg(b"a"), own, msg(b"b"), msg(b"c")], Some(&key))
            .unwrap();
        let mut at = 0i64;
        for e in &stored {
            assert_eq!(e.offset, at);
            let back = Message::decode(e.message.clone()).unwrap();
            let a = back.message_annotations.unwrap();
            assert_eq!(
                a.get(annotation::OFFSET),
                Some(&Value::String(Str::from(at.to_string())))
            );
            assert_eq!(
                a.get(annotation::SEQUENCE_NUMBER),
                Some(&Value::Long(e.sequence_number))
            );
            assert_eq!(
                a.get(annotation::PARTITION_KEY),
                Some(&Value::String(key.clone()))
            );
            at += e.message.len() as i64;
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn positions_resolve() {
        let p = Partition::in_memory(Retention::default());
        let stored = p
            .append(vec![msg(b"a"), msg(b"b"), msg(b"c")], None)
            .unwrap();
        assert_eq!(stored[2].sequence_number, 2);
        assert_eq!(p.resolve(Start::Earliest), 0);
        assert_eq!(p.resolve(Start::Latest), 3);
        assert_eq!(p.resolve(Start::Sequence(1, false)), 2);
        assert_eq!(p.resolve(Start::Sequence(1, true)), 1);
        assert_eq!(p.resolve(Start::Offset(-1, false)), 0);
        assert_eq!(p.resolve(Start::Offset(stored[1].offset, false)), 2);
        assert_eq!(p.resolve(Start::Offset(stored[1].offset, true)), 1);
        assert_eq!(p.resolve(Start::EnqueuedTime(0, false)), 0);
        assert_eq!(p.read(1, 10).len(), 2);
        let info = p.info();
        assert_eq!(info.last_sequence_number, 2);
        assert!(!info.is_empty);
    }

    #[test]
    fn retention_drops_the_oldest() {
        let p = Partition::in_memory(Retention {
            max_events: 2,
            max_bytes: usize::MAX,
        });
        p.append(vec![msg(b"a"), msg(b"b"), msg(b"c")], None)
            .unwrap();
        assert_eq!(p.info().begin_sequence_number, 1);
        assert_eq!(p.resolve(Start::Earliest), 1);
        assert_eq!(p.read(0, 10)[0].sequence_number, 1);
    }

    /// Events read back from the file are the events stored: same numbers, times and bytes,
    /// whether the file's runs of records came from one batch or several.
    #[test]
    fn reopened_events_are_the_stored_ones() {
        let dir = std::env::temp_dir().join(format!("ehub-store-runs-{}", std::process::id()));
        let path = partition_path(&dir, "eh1", 0);
        let _ = std::fs::remove_file(&path);
        let mut stored = Vec::new();
        {
            let p = Partition::open(&path, Retention::default(), Fsync::Never).unwrap();
            for (i, batch) in [&[b"a" as &[u8], b"bb", b""][..], &[b"ccc"], &[b"d", b"e"]]
                .iter()
                .enumerate()
            {
                let key = Str::from(format!("k{i}"));
                let msgs = batch
                    .iter()
                    .map(|b| Message::with_data(Bytes::copy_from_slice(b)));
                stored.extend(p.append(msgs.collect(), Some(&key)).unwrap());
            }
        }
        let p = Partition::open(&path, Retention::default(), Fsync::Never).unwrap();
        let back = p.read(0, 100);
        assert_eq!(back.len(), stored.len());
        for (a, b) in stored.iter().zip(&back) {
            assert_eq!(
                (a.sequence_number, a.offset, a.enqueued_time, &a.message),
                (b.sequence_number, b.offset, b.enqueued_time, &b.message)
            );
        }
        let total: usize = stored.iter().map(|e| e.message.len()).sum();
        assert_eq!(p.retained_bytes(), total);
        assert_eq!(p.resolve(Start::Offset(stored[4].offset, true)), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_survives_reopen_and_a_torn_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("ehub-store-{}", std::process::id()));
        let path = partition_path(&dir, "eh1", 0);
        let _ = std::fs::remove_file(&path);
        {
            let p = Partition::open(&path, Retention::default(), Fsync::Never).unwrap();
            p.append(vec![msg(b"one"), msg(b"two")], None).unwrap();
        }
        // Simulate a crash mid-write: half a record at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(f);
        let p = Partition::open(&path, Retention::default(), Fsync::Never).unwrap();
        assert_eq!(p.info().last_sequence_number, 1);
        let next = p.append(vec![msg(b"three")], None).unwrap();
        assert_eq!(next[0].sequence_number, 2);
        drop(p);
        let p = Partition::open(&path, Retention::default(), Fsync::Never).unwrap();
        let all = p.read(0, 10);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].offset, next[0].offset);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
