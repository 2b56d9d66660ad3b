//! The events a partition retains, indexed per stored batch rather than per event.
//!
//! A batch's stamped events lie back to back in one buffer (a [`Chunk`]), so an event is
//! found from its chunk's first sequence number and base offset plus a 4-byte start: no
//! 56-byte record, no reference count and no deque slot per event. The buffers are cut from
//! fixed-size segments that are written again once retention (and every reader) has let go
//! of all their events. A busy partition would otherwise allocate about a megabyte per batch
//! and free one as old batches expire: fresh pages the kernel must zero, which profiles
//! showed as the largest single cost of ingest.

use super::StoredEvent;
use crate::amqp::codec::Timestamp;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::ops::Range;

/// Size of a segment the chunks are cut from (a batch larger than this gets one of its own).
const SEGMENT: usize = 4 << 20;

/// One stored batch.
#[derive(Debug)]
struct Chunk {
    /// The events' encodings, back to back.
    data: Bytes,
    first_sequence: i64,
    /// The offset of `data[0]`: an event's offset is this plus its start.
    base_offset: i64,
    enqueued_time: Timestamp,
    /// Where each event starts in `data` (the next one's start, or the end, ends it).
    starts: Vec<u32>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn range(&self, i: usize) -> Range<usize> {
        let start = self.starts.get(i).map_or(self.data.len(), |&s| s as usize);
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.data.len(), |&s| s as usize);
        start..end
    }

    fn offset(&self, i: usize) -> i64 {
        self.base_offset + self.range(i).start as i64
    }

    fn event(&self, i: usize) -> StoredEvent {
        StoredEvent {
            sequence_number: self.first_sequence + i as i64,
            offset: self.offset(i),
            enqueued_time: self.enqueued_time,
            message: self.data.slice(self.range(i)),
        }
    }
}

/// A batch being written into the current segment (see [`Events::begin`]).
#[derive(Debug)]
pub(super) struct Batch {
    starts: Vec<u32>,
}

/// The retained events of one partition, oldest first.
#[derive(Debug, Default)]
pub(super) struct Events {
    chunks: VecDeque<Chunk>,
    /// How many of the front chunk's events retention has already dropped.
    skip: usize,
    len: usize,
    bytes: usize,
    segments: Segments,
}

impl Events {
    /// Retained events.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Retained bytes.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Starts a batch of `count` events of `total` bytes in all: write each event's bytes to
    /// [`Events::buf`], calling [`Events::end_event`] after each, then [`Events::commit`] it,
    /// or [`Events::abandon`] it to store nothing. `None` when the batch cannot be indexed
    /// (over 4 GiB).
    pub(super) fn begin(&mut self, total: usize, count: usize) -> Option<Batch> {
        u32::try_from(total).ok()?;
        self.segments.room(total);
        Some(Batch {
            starts: Vec::with_capacity(count),
        })
    }

    /// Where the batch's bytes are written.
    pub(super) fn buf(&mut self) -> &mut BytesMut {
        &mut self.segments.active
    }

    /// Marks the start of the batch's next event (call before writing it).
    pub(super) fn start_event(&mut self, batch: &mut Batch) {
        batch
            .starts
            .push(u32::try_from(self.segments.active.len()).unwrap_or(u32::MAX));
    }

    /// Drops what the batch wrote.
    pub(super) fn abandon(&mut self, batch: Batch) {
        drop(batch);
        self.segments.active.clear();
    }

    /// Stores the batch written since [`Events::begin`]: its first event has sequence
    /// number `first_sequence` and offset `base_offset`.
    pub(super) fn commit(
        &mut self,
        batch: Batch,
        first_sequence: i64,
        base_offset: i64,
        enqueued_time: Timestamp,
    ) {
        let data = self.segments.active.split().freeze();
        if batch.starts.is_empty() {
            return;
        }
        self.len += batch.starts.len();
        self.bytes += data.len();
        self.chunks.push_back(Chunk {
            data,
            first_sequence,
            base_offset,
            enqueued_time,
            starts: batch.starts,
        });
    }

    /// Sequence number of the first retained event.
    pub(super) fn first_sequence(&self) -> Option<i64> {
        self.chunks
            .front()
            .map(|c| c.first_sequence + self.skip as i64)
    }

    /// The oldest retained event.
    pub(super) fn front(&self) -> Option<StoredEvent> {
        self.chunks.front().map(|c| c.event(self.skip))
    }

    /// The newest event.
    pub(super) fn back(&self) -> Option<StoredEvent> {
        self.chunks.back().map(|c| c.event(c.len() - 1))
    }

    /// Drops the oldest event; returns its size.
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        let chunk = self.chunks.front()?;
        let n = chunk.range(self.skip).len();
        self.skip += 1;
        if self.skip >= chunk.len() {
            self.chunks.pop_front();
            self.skip = 0;
        }
        self.len -= 1;
        self.bytes -= n;
        Some(n)
    }

    /// Up to `max` events from sequence number `from` (or the first retained, if later).
    pub(super) fn read(&self, from: i64, max: usize) -> Vec<StoredEvent> {
        let mut out = Vec::new();
        let Some(first) = self.first_sequence() else {
            return out;
        };
        let from = from.max(first);
        let at = self
            .chunks
            .partition_point(|c| c.first_sequence + c.len() as i64 <= from);
        for c in self.chunks.range(at..) {
            let begin = usize::try_from(from - c.first_sequence).unwrap_or(0);
            for i in begin..c.len() {
                if out.len() >= max {
                    return out;
                }
                out.push(c.event(i));
            }
        }
        out
    }

    /// The sequence number of the first retained event for which `pred(offset, enqueued
    /// time)` holds, where `pred` is false then true along the partition; `None` if none.
    pub(super) fn first_where(&self, pred: impl Fn(i64, Timestamp) -> bool) -> Option<i64> {
        let last_holds = |c: &Chunk| pred(c.offset(c.len() - 1), c.enqueued_time);
        let at = self.chunks.partition_point(|c| !last_holds(c));
        let c = self.chunks.get(at)?;
        // The first index of the chunk's retained events where `pred` holds (the last does).
        let (mut lo, mut hi) = (if at == 0 { self.skip } else { 0 }, c.len() - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(c.offset(mid), c.enqueued_time) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(c.first_sequence + lo as i64)
    }
}

/// The buffer batches are written to, and the segments it was cut from that may be written
/// again.
#[derive(Debug, Default)]
struct Segments {
    /// Empty between batches; what is left of the current segment.
    active: BytesMut,
    /// What was left of earlier segments, oldest first, kept to be reused once none of their
    /// events is referenced any more.
    retired: VecDeque<BytesMut>,
    /// Whether `active` is part of a segment (it is not before the first batch).
    started: bool,
}

impl Segments {
    /// Makes `active` able to take `total` more bytes without allocating.
    fn room(&mut self, total: usize) {
        if self.active.capacity() >= total {
            return;
        }
        let want = total.max(SEGMENT);
        // Every segment no event of which is referenced any more can be written again; the
        // first is reused, the rest given back (so a shrinking partition does not keep them).
        let mut reused = None;
        self.retired.retain_mut(|s| {
            if !s.try_reclaim(want) {
                return true;
            }
            if reused.is_none() {
                reused = Some(std::mem::take(s));
            }
            false
        });
        let next = reused.unwrap_or_else(|| BytesMut::with_capacity(want));
        let old = std::mem::replace(&mut self.active, next);
        if std::mem::replace(&mut self.started, true) {
            self.retired.push_back(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(events: &mut Events, seq: i64, offset: i64, bodies: &[&[u8]]) {
        let total = bodies.iter().map(|b| b.len()).sum();
        let mut batch = events.begin(total, bodies.len()).unwrap();
        for b in bodies {
            events.start_event(&mut batch);
            events.buf().extend_from_slice(b);
        }
        events.commit(batch, seq, offset, Timestamp(seq));
    }

    #[test]
    fn events_are_found_by_sequence_offset_and_time_across_chunks() {
        let mut e = Events::default();
        store(&mut e, 0, 0, &[b"ab", b"", b"cde"]);
        store(&mut e, 3, 5, &[b"f"]);
        store(&mut e, 4, 6, &[b"gh", b"ij"]);
        assert_eq!((e.len(), e.bytes()), (6, 10));
        let all = e.read(0, 100);
        let seqs: Vec<i64> = all.iter().map(|e| e.sequence_number).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
        let offsets: Vec<i64> = all.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [0, 2, 2, 5, 6, 8]);
        assert_eq!(&all[2].message[..], b"cde");
        assert_eq!(&all[5].message[..], b"ij");
        assert_eq!(all[4].enqueued_time, Timestamp(4));
        let seqs = |v: Vec<StoredEvent>| v.iter().map(|e| e.sequence_number).collect::<Vec<_>>();
        assert_eq!(seqs(e.read(2, 2)), [2, 3]);
        assert_eq!(seqs(e.read(5, 9)), [5]);
        assert!(e.read(6, 9).is_empty());
        assert_eq!(e.first_where(|o, _| o >= 2), Some(1));
        assert_eq!(e.first_where(|o, _| o > 2), Some(3));
        assert_eq!(e.first_where(|o, _| o > 5), Some(4));
        assert_eq!(e.first_where(|_, t| t.0 >= 4), Some(4));
        assert_eq!(e.first_where(|o, _| o > 8), None);
        assert_eq!(e.back().unwrap().sequence_number, 5);
    }

    #[test]
    fn dropping_the_oldest_walks_into_and_out_of_chunks() {
        let mut e = Events::default();
        store(&mut e, 0, 0, &[b"ab", b"c"]);
        store(&mut e, 2, 3, &[b"def"]);
        assert_eq!(e.pop_front(), Some(2));
        assert_eq!(e.first_sequence(), Some(1));
        assert_eq!(e.front().unwrap().offset, 2);
        assert_eq!(e.read(0, 10).len(), 2);
        // The front chunk's dropped event is not found any more.
        assert_eq!(e.first_where(|o, _| o >= 0), Some(1));
        assert_eq!(e.pop_front(), Some(1));
        assert_eq!(e.first_sequence(), Some(2));
        assert_eq!((e.len(), e.bytes()), (1, 3));
        assert_eq!(e.pop_front(), Some(3));
        assert_eq!(e.pop_front(), None);
        assert!(e.front().is_none() && e.first_sequence().is_none());
    }

    #[test]
    fn an_abandoned_batch_leaves_nothing() {
        let mut e = Events::default();
        store(&mut e, 0, 0, &[b"kept"]);
        let mut batch = e.begin(4, 1).unwrap();
        e.start_event(&mut batch);
        e.buf().extend_from_slice(b"lost");
        e.abandon(batch);
        store(&mut e, 1, 4, &[b"next"]);
        let all = e.read(0, 10);
        assert_eq!(all.len(), 2);
        assert_eq!(&all[1].message[..], b"next");
    }

    /// A segment is written again once nothing refers to its events, and not before.
    #[test]
    fn segments_are_reused_only_when_released() {
        let mut e = Events::default();
        let big = vec![7u8; SEGMENT - 16];
        store(&mut e, 0, 0, &[&big]);
        let first = e.read(0, 1).remove(0).message;
        let first_ptr = first.as_ptr();
        // The second batch does not fit: a new segment.
        store(&mut e, 1, big.len() as i64, &[&big]);
        // The first segment's event is dropped, but a reader still holds it.
        e.pop_front();
        store(&mut e, 2, 2 * big.len() as i64, &[&big]);
        assert_ne!(e.back().unwrap().message.as_ptr(), first_ptr);
        assert!(
            first.iter().all(|&b| b == 7),
            "a held event is never overwritten"
        );
        drop(first);
        e.pop_front();
        store(&mut e, 3, 3 * big.len() as i64, &[&[9u8; 64]]);
        // Both earlier segments are free now: the oldest is written again, the other given
        // back.
        assert_eq!(e.back().unwrap().message.as_ptr(), first_ptr);
        assert_eq!(e.segments.retired.len(), 1);
    }

    #[test]
    fn a_batch_over_4_gib_is_refused() {
        let mut e = Events::default();
        assert!(e.begin(1 << 32, 1).is_none());
    }
}
