//! Idempotent producers of one partition: per producer id the owner level (epoch) and the
//! last sequence number stored, which decide whether a delivery is new, a resend to drop, or
//! refused.
//!
//! This is our reading of the service, not a verified fact: the service documents the
//! capability and the error conditions but not these rules. A resend of numbers already
//! stored is accepted and not stored again; a gap is `com.microsoft:out-of-order-sequence`; a
//! lower epoch is `com.microsoft:producer-epoch-stolen`; a higher epoch takes the id over and
//! its requested sequence number becomes the last one. When a higher epoch attaches, every
//! link of a lower epoch of that id is detached at once with
//! `com.microsoft:producer-epoch-stolen` (the ingest node watches the id's epoch), instead of
//! only having its next delivery refused, as a receiver of a lower owner level is detached
//! with `amqp:link:stolen`; an idle old producer so learns of it too.
//!
//! Nothing here is written to disk on its own: a persistent partition rebuilds the table
//! from the stamps on its stored events ([`Producers::recover`]), so the state is exactly as
//! durable as the events it describes. An id assigned, or an epoch raised, by an attach that
//! was followed by no event is forgotten on restart; fresh ids are taken from the clock and
//! above every id seen, so a forgotten one is not handed out again.
//!
//! The table is bounded ([`MAX_PRODUCERS`] per partition): every attach may create an entry,
//! so without a bound a peer attaching over and over would grow it forever. When it is full,
//! the quarter used least recently is forgotten, as on a restart: the next delivery of one is
//! refused as coming from a producer that has not attached, and an attach that names its id
//! again starts it afresh from the state the attach asks for.

use crate::amqp::types::error::{condition, AmqpError};
use crate::wire::condition::{OUT_OF_ORDER_SEQUENCE, PRODUCER_EPOCH_STOLEN};
use crate::wire::idempotent::{distance, next_sequence, PublishingState, Stamp};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug)]
struct Entry {
    epoch: i16,
    last: i32,
    /// When this producer last attached or stored, on the table's own counter.
    used: u64,
}

/// How many producers one partition remembers; the least recently used are forgotten beyond.
pub(crate) const MAX_PRODUCERS: usize = 4096;

/// The producer table of one partition.
#[derive(Debug, Default)]
pub(crate) struct Producers {
    entries: HashMap<i64, Entry>,
    highest_id: i64,
    /// Counts attaches and stores, to order entries by use.
    clock: u64,
}

/// Half the sequence space: a first number this far behind the expected one is a resend,
/// further is a gap (ahead, wrapped).
const BEHIND_WINDOW: u32 = 1 << 30;

fn refuse(cond: crate::amqp::codec::Symbol, text: String) -> AmqpError {
    AmqpError::with_description(cond, text)
}

impl Producers {
    /// Takes the stamp of a stored event into the table (replaying a partition file).
    pub(crate) fn recover(&mut self, s: Stamp) {
        self.highest_id = self.highest_id.max(s.producer_id);
        let used = self.tick();
        let e = self.entry(s.producer_id, s.owner_level, s.sequence);
        if s.owner_level >= e.epoch {
            *e = Entry {
                epoch: s.owner_level,
                last: s.sequence,
                used,
            };
        }
    }

    /// How many producers the table holds now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The entry of `id`, made with `epoch` and `last` if there is none, after forgetting the
    /// least recently used producers when the table is full.
    fn entry(&mut self, id: i64, epoch: i16, last: i32) -> &mut Entry {
        if !self.entries.contains_key(&id) && self.entries.len() >= MAX_PRODUCERS {
            // Forget the least recently used quarter at once, so the scan is paid once per
            // MAX_PRODUCERS / 4 new producers (a replayed file may hold many).
            let mut by_use: Vec<(u64, i64)> =
                self.entries.iter().map(|(k, e)| (e.used, *k)).collect();
            let cut = by_use.len() / 4;
            if cut > 0 {
                by_use.select_nth_unstable(cut - 1);
            }
            for (_, k) in by_use.iter().take(cut.max(1)) {
                self.entries.remove(k);
            }
        }
        let used = self.clock;
        let e = self
            .entries
            .entry(id)
            .or_insert(Entry { epoch, last, used });
        e.used = used;
        e
    }

    /// The state an attach gets: a fresh id for `None` (with `clock_id`, e.g. the time in
    /// microseconds, as its lower bound), or the requested id under the epoch rules.
    pub(crate) fn attach(
        &mut self,
        requested: Option<PublishingState>,
        clock_id: i64,
    ) -> Result<PublishingState, AmqpError> {
        let Some(r) = requested else {
            let id = clock_id.max(self.highest_id.saturating_add(1));
            self.highest_id = id;
            self.tick();
            *self.entry(id, 0, -1) = Entry {
                epoch: 0,
                last: -1,
                used: self.clock,
            };
            return Ok(PublishingState {
                producer_id: id,
                owner_level: 0,
                last_sequence: -1,
            });
        };
        if r.last_sequence < -1 {
            return Err(refuse(
                condition::INVALID_FIELD,
                format!("producer sequence number {} is negative", r.last_sequence),
            ));
        }
        self.highest_id = self.highest_id.max(r.producer_id);
        let used = self.tick();
        let e = self.entry(r.producer_id, r.owner_level, r.last_sequence);
        if r.owner_level < e.epoch {
            return Err(refuse(
                PRODUCER_EPOCH_STOLEN,
                format!(
                    "producer {} is owned by epoch {}; epoch {} cannot attach",
                    r.producer_id, e.epoch, r.owner_level
                ),
            ));
        }
        if r.owner_level > e.epoch {
            *e = Entry {
                epoch: r.owner_level,
                last: r.last_sequence,
                used,
            };
        }
        Ok(PublishingState {
            producer_id: r.producer_id,
            owner_level: e.epoch,
            last_sequence: e.last,
        })
    }

    /// How many of a delivery's leading events are resends already stored (to drop), or why
    /// the delivery is refused. `stamps` are the delivery's events in order.
    pub(crate) fn check(&self, stamps: &[Stamp]) -> Result<usize, AmqpError> {
        let Some(first) = stamps.first() else {
            return Ok(0);
        };
        for pair in stamps.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if (b.producer_id, b.owner_level) != (a.producer_id, a.owner_level) {
                return Err(refuse(
                    condition::INVALID_FIELD,
                    "the events of one delivery carry different producer ids or epochs".into(),
                ));
            }
            if b.sequence != next_sequence(a.sequence) {
                return Err(refuse(
                    OUT_OF_ORDER_SEQUENCE,
                    format!(
                        "sequence number {} follows {} within one delivery",
                        b.sequence, a.sequence
                    ),
                ));
            }
        }
        let Some(e) = self.entries.get(&first.producer_id) else {
            return Err(refuse(
                condition::INVALID_FIELD,
                format!(
                    "producer {} has not attached to this partition",
                    first.producer_id
                ),
            ));
        };
        if first.owner_level < e.epoch {
            return Err(refuse(
                PRODUCER_EPOCH_STOLEN,
                format!(
                    "producer {} is now owned by epoch {}; events of epoch {} are refused",
                    first.producer_id, e.epoch, first.owner_level
                ),
            ));
        }
        if first.owner_level > e.epoch {
            return Err(refuse(
                condition::INVALID_FIELD,
                format!(
                    "epoch {} of producer {} was never attached (the current one is {})",
                    first.owner_level, first.producer_id, e.epoch
                ),
            ));
        }
        let expected = next_sequence(e.last);
        let ahead = distance(expected, first.sequence);
        if ahead == 0 {
            return Ok(0);
        }
        let behind = distance(first.sequence, expected);
        if e.last >= 0 && behind <= BEHIND_WINDOW {
            return Ok(stamps.len().min(behind as usize));
        }
        Err(refuse(
            OUT_OF_ORDER_SEQUENCE,
            format!(
                "producer {} sent sequence number {} but the next one is {expected}",
                first.producer_id, first.sequence
            ),
        ))
    }

    /// Records that `last` is now the last stored sequence number of `s`'s producer.
    pub(crate) fn commit(&mut self, s: Stamp) {
        let used = self.tick();
        if let Some(e) = self.entries.get_mut(&s.producer_id) {
            if e.epoch == s.owner_level {
                e.last = s.sequence;
                e.used = used;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: i64, epoch: i16, seqs: std::ops::Range<i32>) -> Vec<Stamp> {
        seqs.map(|sequence| Stamp {
            producer_id: id,
            owner_level: epoch,
            sequence,
        })
        .collect()
    }

    #[test]
    fn resends_gaps_and_epochs() {
        let mut p = Producers::default();
        let s = p.attach(None, 100).unwrap();
        assert_eq!(
            (s.producer_id, s.owner_level, s.last_sequence),
            (100, 0, -1)
        );
        assert_eq!(p.attach(None, 100).unwrap().producer_id, 101);
        assert_eq!(p.check(&st(100, 0, 0..5)), Ok(0));
        p.commit(st(100, 0, 4..5)[0]);
        assert_eq!(p.check(&st(100, 0, 0..5)), Ok(5), "a whole resend");
        assert_eq!(p.check(&st(100, 0, 3..8)), Ok(2), "an overlap");
        assert!(p
            .check(&st(100, 0, 6..8))
            .unwrap_err()
            .is(&OUT_OF_ORDER_SEQUENCE));
        assert!(p
            .check(&st(100, 0, 1..3).into_iter().rev().collect::<Vec<_>>())
            .unwrap_err()
            .is(&OUT_OF_ORDER_SEQUENCE));
        // A higher epoch takes over with its own sequence; the lower one is refused.
        let taken = PublishingState {
            producer_id: 100,
            owner_level: 2,
            last_sequence: 50,
        };
        assert_eq!(p.attach(Some(taken), 0).unwrap(), taken);
        assert!(p
            .check(&st(100, 0, 5..6))
            .unwrap_err()
            .is(&PRODUCER_EPOCH_STOLEN));
        let old = PublishingState {
            owner_level: 1,
            ..taken
        };
        assert!(p
            .attach(Some(old), 0)
            .unwrap_err()
            .is(&PRODUCER_EPOCH_STOLEN));
        // Same epoch again: the stored state wins over the requested sequence.
        let again = PublishingState {
            last_sequence: 3,
            ..taken
        };
        assert_eq!(p.attach(Some(again), 0).unwrap().last_sequence, 50);
    }

    #[test]
    fn sequences_wrap_across_a_delivery_and_recovery_keeps_the_top_epoch() {
        let mut p = Producers::default();
        p.attach(
            Some(PublishingState {
                producer_id: 7,
                owner_level: 0,
                last_sequence: i32::MAX - 1,
            }),
            0,
        )
        .unwrap();
        let mut wrap = st(7, 0, i32::MAX..i32::MAX);
        wrap.push(Stamp {
            producer_id: 7,
            owner_level: 0,
            sequence: i32::MAX,
        });
        wrap.extend(st(7, 0, 0..2));
        assert_eq!(p.check(&wrap), Ok(0));
        let mut r = Producers::default();
        for s in st(9, 1, 0..3).into_iter().chain(st(9, 0, 10..11)) {
            r.recover(s);
        }
        assert_eq!(r.check(&st(9, 1, 3..4)), Ok(0));
        assert_eq!(r.attach(None, 0).unwrap().producer_id, 10);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_least_recently_used_producers() {
        let mut p = Producers::default();
        let busy = p.attach(None, 1).unwrap().producer_id;
        let idle = p.attach(None, 1).unwrap().producer_id;
        for i in 0..3 * MAX_PRODUCERS as i32 {
            let fresh = p.attach(None, 1).unwrap().producer_id;
            assert!(fresh > idle, "fresh ids are never handed out twice");
            // The busy producer keeps storing, so it is never the least recently used.
            let next = st(busy, 0, i..i + 1);
            assert_eq!(p.check(&next), Ok(0), "event {i} of the busy producer");
            p.commit(next[0]);
            assert!(p.len() <= MAX_PRODUCERS);
        }
        assert!(
            p.len() > MAX_PRODUCERS / 2,
            "only the least used quarter goes at a time"
        );
        // The idle one was forgotten: its delivery is refused, a fresh attach naming it works.
        assert!(p
            .check(&st(idle, 0, 0..1))
            .unwrap_err()
            .is(&condition::INVALID_FIELD));
        let again = PublishingState {
            producer_id: idle,
            owner_level: 0,
            last_sequence: 41,
        };
        assert_eq!(p.attach(Some(again), 0).unwrap(), again);
        assert_eq!(p.check(&st(idle, 0, 42..43)), Ok(0));
    }
}
