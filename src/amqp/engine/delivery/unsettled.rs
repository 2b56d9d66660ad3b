//! Unsettled deliveries both ways, the dispositions we owe (coalesced into ranges), and the
//! settlement the peer's dispositions bring.

use crate::amqp::engine::connection::Connection;
use crate::amqp::engine::event::{Event, LinkId};
use crate::amqp::types::definitions::Role as LinkRole;
use crate::amqp::types::messaging::DeliveryState;
use crate::amqp::types::transport::Disposition;
use std::collections::{HashMap, VecDeque};

/// A disposition we owe the peer, coalesced into ranges when written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PendingDisposition {
    pub first: u32,
    pub last: u32,
    pub settled: bool,
    pub state: Option<DeliveryState>,
    /// Role of the frame: true when we are the receiver of these deliveries.
    pub as_receiver: bool,
}

impl PendingDisposition {
    fn one(id: u32, settled: bool, state: Option<DeliveryState>, as_receiver: bool) -> Self {
        PendingDisposition {
            first: id,
            last: id,
            settled,
            state,
            as_receiver,
        }
    }

    /// The disposition frame saying it.
    pub(crate) fn into_frame(self) -> Disposition {
        Disposition {
            role: if self.as_receiver {
                LinkRole::Receiver
            } else {
                LinkRole::Sender
            },
            first: self.first,
            last: (self.last != self.first).then_some(self.last),
            settled: self.settled,
            state: self.state,
            batchable: false,
        }
    }
}

/// A session's deliveries that are not settled yet, both ways.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    /// Our unsettled deliveries: delivery id → (link, token).
    outgoing: HashMap<u32, (LinkId, u64)>,
    /// Deliveries we received and have not settled: delivery id → link.
    incoming: HashMap<u32, LinkId>,
    /// Dispositions to write, in order.
    dispositions: Vec<PendingDisposition>,
}

impl Unsettled {
    /// One of ours went out unsettled: its outcome is awaited.
    #[inline]
    pub(crate) fn track_outgoing(&mut self, delivery_id: u32, link: LinkId, token: u64) {
        self.outgoing.insert(delivery_id, (link, token));
    }

    /// One of the peer's arrived unsettled: the application owes it an outcome.
    #[inline]
    pub(crate) fn track_incoming(&mut self, delivery_id: u32, link: LinkId) {
        self.incoming.insert(delivery_id, link);
    }

    /// The peer's deliveries still waiting for our outcome.
    pub(crate) fn incoming_len(&self) -> usize {
        self.incoming.len()
    }

    /// Our deliveries still waiting for the peer's outcome.
    #[cfg(test)]
    pub(crate) fn outgoing_len(&self) -> usize {
        self.outgoing.len()
    }

    /// True when dispositions wait to be written.
    pub(crate) fn has_dispositions(&self) -> bool {
        !self.dispositions.is_empty()
    }

    /// The dispositions to write, oldest first.
    pub(crate) fn take_dispositions(&mut self) -> Vec<PendingDisposition> {
        std::mem::take(&mut self.dispositions)
    }

    /// The application's outcome for a delivery it received on `link`. Ignored (false) when
    /// that delivery is not unsettled on that link.
    pub(crate) fn settle_received(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
        settled: bool,
    ) -> bool {
        if self.incoming.get(&delivery_id) != Some(&link) {
            return false;
        }
        if settled {
            self.incoming.remove(&delivery_id);
        }
        self.queue(PendingDisposition::one(delivery_id, settled, state, true));
        true
    }

    /// Applies the peer's disposition: outcomes of ours become [`Event::Outcome`]s (and, when
    /// the peer waits for us to settle, our settling disposition); settlements of the peer's
    /// own deliveries clear them.
    pub(crate) fn on_peer_disposition(&mut self, d: Disposition, events: &mut VecDeque<Event>) {
        let last = d.last.unwrap_or(d.first);
        match d.role {
            // The peer received these: they are ours.
            LinkRole::Receiver => {
                let terminal = d.state.as_ref().is_some_and(DeliveryState::is_terminal);
                for id in ids_in_range(&self.outgoing, d.first, last) {
                    let Some(&(link, token)) = self.outgoing.get(&id) else {
                        continue;
                    };
                    let mut settled = d.settled;
                    if !settled && terminal {
                        // Receiver-settle-mode second: the receiver waits for us to settle.
                        settled = true;
                        self.queue(PendingDisposition::one(id, true, d.state.clone(), false));
                    }
                    if settled {
                        self.outgoing.remove(&id);
                    }
                    events.push_back(Event::Outcome {
                        link,
                        delivery: token,
                        state: d.state.clone(),
                        settled,
                    });
                }
            }
            // The peer sent these and settled them.
            LinkRole::Sender => {
                if d.settled {
                    for id in ids_in_range(&self.incoming, d.first, last) {
                        self.incoming.remove(&id);
                    }
                }
            }
        }
    }

    /// Queues a disposition, merging it into the previous one when the ids are consecutive and
    /// the outcome is the same (so a run of accepts becomes one frame).
    pub(crate) fn queue(&mut self, d: PendingDisposition) {
        if let Some(last) = self.dispositions.last_mut() {
            if last.as_receiver == d.as_receiver
                && last.settled == d.settled
                && last.state == d.state
                && last.last.wrapping_add(1) == d.first
            {
                last.last = d.last;
                return;
            }
        }
        self.dispositions.push(d);
    }

    /// Forgets a link's deliveries both ways (the link is gone).
    pub(crate) fn forget_link(&mut self, id: LinkId) {
        self.outgoing.retain(|_, (link, _)| *link != id);
        self.incoming.retain(|_, link| *link != id);
    }

    /// Forgets every delivery (the session failed). Owed dispositions stay: they go out before
    /// the session's end.
    pub(crate) fn clear(&mut self) {
        self.outgoing.clear();
        self.incoming.clear();
    }
}

/// Ids in `first..=last` (serial arithmetic) that are keys of `map`, without walking a huge
/// range a peer may name.
pub(crate) fn ids_in_range<V>(map: &HashMap<u32, V>, first: u32, last: u32) -> Vec<u32> {
    let span = u64::from(last.wrapping_sub(first)) + 1;
    if span <= map.len() as u64 {
        (0..span as u32)
            .map(|i| first.wrapping_add(i))
            .filter(|id| map.contains_key(id))
            .collect()
    } else {
        let mut ids: Vec<u32> = map
            .keys()
            .copied()
            .filter(|id| id.wrapping_sub(first) < span as u32 || span > u64::from(u32::MAX))
            .collect();
        ids.sort_by_key(|id| id.wrapping_sub(first));
        ids
    }
}

impl Connection {
    /// Settles a received delivery with an outcome (e.g. accepted). Dispositions for
    /// consecutive deliveries with the same outcome go out as one frame.
    pub fn settle(&mut self, link: LinkId, delivery_id: u32, state: Option<DeliveryState>) {
        self.disposition(link, delivery_id, state, true);
    }

    /// Sends a disposition for a received delivery (`settled = false` only reports a state).
    pub fn disposition(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&l.channel) else {
            return;
        };
        s.unsettled
            .settle_received(link, delivery_id, state, settled);
    }

    /// Writes every owed disposition, session by session in channel order.
    pub(in crate::amqp::engine) fn flush_dispositions(&mut self) {
        let mut channels: Vec<u16> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.unsettled.has_dispositions())
            .map(|(c, _)| *c)
            .collect();
        channels.sort_unstable();
        for c in channels {
            let Some(s) = self.sessions.get_mut(&c) else {
                continue;
            };
            for d in s.unsettled.take_dispositions() {
                self.write(c, d.into_frame().into(), &[]);
            }
        }
    }

    pub(in crate::amqp::engine) fn on_disposition(&mut self, local: u16, d: Disposition) {
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        s.unsettled.on_peer_disposition(d, &mut self.events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::types::messaging::{Accepted, Rejected};

    fn accepted() -> Option<DeliveryState> {
        Some(DeliveryState::Accepted(Accepted))
    }

    fn peer(
        first: u32,
        last: Option<u32>,
        settled: bool,
        state: Option<DeliveryState>,
    ) -> Disposition {
        Disposition {
            role: LinkRole::Receiver,
            first,
            last,
            settled,
            state,
            batchable: false,
        }
    }

    #[test]
    fn consecutive_equal_outcomes_become_one_range() {
        let mut u = Unsettled::default();
        for id in 0..5 {
            u.track_incoming(id, LinkId(1));
        }
        for id in 0..3 {
            assert!(u.settle_received(LinkId(1), id, accepted(), true));
        }
        // A different outcome, a gap, and a state-only report each start a new range.
        u.settle_received(LinkId(1), 3, None, true);
        u.settle_received(LinkId(1), 4, accepted(), false);
        let frames: Vec<Disposition> = u
            .take_dispositions()
            .into_iter()
            .map(PendingDisposition::into_frame)
            .collect();
        assert_eq!(frames.len(), 3);
        assert_eq!((frames[0].first, frames[0].last), (0, Some(2)));
        assert_eq!(frames[0].role, LinkRole::Receiver);
        assert!(frames[0].settled);
        assert_eq!((frames[1].first, frames[1].last), (3, None));
        assert_eq!(
            (frames[2].first, frames[2].last, frames[2].settled),
            (4, None, false)
        );
        assert!(!u.has_dispositions());
        // 4 was only reported, not settled: it can still be settled.
        assert!(u.settle_received(LinkId(1), 4, accepted(), true));
        assert!(
            !u.settle_received(LinkId(1), 4, accepted(), true),
            "settled once"
        );
    }

    #[test]
    fn ranges_merge_across_the_delivery_id_wrap() {
        let mut u = Unsettled::default();
        u.track_incoming(u32::MAX, LinkId(1));
        u.track_incoming(0, LinkId(1));
        u.settle_received(LinkId(1), u32::MAX, accepted(), true);
        u.settle_received(LinkId(1), 0, accepted(), true);
        let d = u.take_dispositions();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].first, d[0].last), (u32::MAX, 0));
    }

    #[test]
    fn only_the_link_that_received_a_delivery_settles_it() {
        let mut u = Unsettled::default();
        u.track_incoming(7, LinkId(1));
        assert!(!u.settle_received(LinkId(2), 7, accepted(), true));
        assert!(!u.settle_received(LinkId(1), 8, accepted(), true));
        assert!(!u.has_dispositions());
    }

    #[test]
    fn a_settled_range_from_the_peer_reports_each_outcome() {
        let mut u = Unsettled::default();
        for id in 10..14 {
            u.track_outgoing(id, LinkId(1), u64::from(id) * 100);
        }
        let mut events = VecDeque::new();
        u.on_peer_disposition(peer(11, Some(12), true, accepted()), &mut events);
        let tokens: Vec<u64> = events
            .iter()
            .map(|e| match e {
                Event::Outcome {
                    delivery, settled, ..
                } => {
                    assert!(settled);
                    *delivery
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tokens, [1100, 1200]);
        assert_eq!(u.outgoing_len(), 2);
        assert!(!u.has_dispositions(), "the peer settled: nothing owed");
    }

    #[test]
    fn a_terminal_unsettled_outcome_is_settled_back() {
        // Receiver-settle-mode second: the peer waits for our settlement.
        let mut u = Unsettled::default();
        u.track_outgoing(3, LinkId(1), 30);
        u.track_outgoing(4, LinkId(1), 40);
        let mut events = VecDeque::new();
        let rejected = Some(DeliveryState::Rejected(Rejected { error: None }));
        u.on_peer_disposition(peer(3, Some(4), false, rejected.clone()), &mut events);
        assert_eq!(events.len(), 2);
        assert_eq!(u.outgoing_len(), 0);
        let d = u.take_dispositions();
        assert_eq!(d.len(), 1, "the two settlements coalesce");
        assert_eq!((d[0].first, d[0].last, d[0].as_receiver), (3, 4, false));
        assert_eq!(d[0].state, rejected);
        assert_eq!(d[0].clone().into_frame().role, LinkRole::Sender);
    }

    #[test]
    fn a_non_terminal_state_leaves_the_delivery_unsettled() {
        let mut u = Unsettled::default();
        u.track_outgoing(3, LinkId(1), 30);
        let mut events = VecDeque::new();
        u.on_peer_disposition(peer(3, None, false, None), &mut events);
        assert!(matches!(
            events.pop_front(),
            Some(Event::Outcome {
                settled: false,
                delivery: 30,
                ..
            })
        ));
        assert_eq!(u.outgoing_len(), 1);
        assert!(!u.has_dispositions());
    }

    #[test]
    fn the_peer_settling_its_own_deliveries_clears_them() {
        let mut u = Unsettled::default();
        u.track_incoming(1, LinkId(1));
        u.track_incoming(2, LinkId(1));
        let mut events = VecDeque::new();
        let mut d = peer(0, Some(u32::MAX), false, None);
        d.role = LinkRole::Sender;
        u.on_peer_disposition(d.clone(), &mut events);
        assert!(
            u.settle_received(LinkId(1), 1, None, false),
            "not settled yet"
        );
        d.settled = true;
        u.on_peer_disposition(d, &mut events);
        assert!(events.is_empty());
        assert!(!u.settle_received(LinkId(1), 2, accepted(), true));
    }

    #[test]
    fn a_huge_range_walks_only_the_known_ids() {
        let mut map = HashMap::new();
        for id in [5u32, u32::MAX, 1, 9] {
            map.insert(id, ());
        }
        assert_eq!(ids_in_range(&map, u32::MAX, 5), [u32::MAX, 1, 5]);
        assert_eq!(ids_in_range(&map, 0, u32::MAX), [1, 5, 9, u32::MAX]);
        assert_eq!(ids_in_range(&map, 5, 5), [5]);
        assert!(ids_in_range(&map, 6, 8).is_empty());
        // Everything when the range covers all ids (first - 1 wraps to the last).
        assert_eq!(ids_in_range(&map, 9, 8), [9, u32::MAX, 1, 5]);
    }

    #[test]
    fn forgetting_a_link_drops_its_deliveries_both_ways() {
        let mut u = Unsettled::default();
        u.track_outgoing(1, LinkId(1), 0);
        u.track_outgoing(2, LinkId(2), 0);
        u.track_incoming(3, LinkId(1));
        u.forget_link(LinkId(1));
        assert_eq!(u.outgoing_len(), 1);
        assert!(!u.settle_received(LinkId(1), 3, None, true));
    }
}
