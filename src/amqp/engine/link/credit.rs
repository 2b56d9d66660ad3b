//! Link flow control: link-credit and delivery-count arithmetic, drain, echo, and the link
//! flow frames that carry them.
//!
//! Delivery counts are serial numbers (they wrap at 2^32), so every comparison is made on
//! wrapping differences, never on the raw values.

use super::{Link, LinkState};
use crate::amqp::engine::connection::Connection;
use crate::amqp::engine::event::{Event, LinkId};
use crate::amqp::engine::session::Session;
use crate::amqp::types::definitions::Role as LinkRole;
use crate::amqp::types::transport::Flow;

/// One end's view of a link's credit (section 2.6.7 of the spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Credit {
    /// Sender: deliveries started. Receiver: deliveries received (as per the spec's counter).
    pub delivery_count: u32,
    /// Deliveries the sender may still start.
    pub link_credit: u32,
    /// The receiver asked the sender to use up or give back its credit.
    pub drain: bool,
}

impl Credit {
    /// A sender applies the receiver's flow. `idle` says the sender has nothing queued: a
    /// drain then gives the credit back at once. Returns true when it did.
    pub(crate) fn on_sender_flow(
        &mut self,
        delivery_count: Option<u32>,
        link_credit: Option<u32>,
        drain: bool,
        idle: bool,
    ) -> bool {
        let granted = link_credit.unwrap_or(0);
        let limit = delivery_count.unwrap_or(0).wrapping_add(granted);
        let credit = limit.wrapping_sub(self.delivery_count);
        // Credit counted from a delivery count ahead of ours is nonsense; treat it as none
        // rather than as four billion.
        self.link_credit = if credit > granted { 0 } else { credit };
        self.drain = drain;
        let drained = drain && idle;
        if drained {
            self.give_back();
        }
        drained
    }

    /// A receiver applies the sender's flow: the sender's delivery count wins, and the credit
    /// left is what our limit leaves above it (never more than we granted).
    pub(crate) fn on_receiver_flow(&mut self, delivery_count: Option<u32>) {
        let theirs = delivery_count.unwrap_or(self.delivery_count);
        let limit = self.delivery_count.wrapping_add(self.link_credit);
        self.link_credit = limit.wrapping_sub(theirs).min(self.link_credit);
        self.delivery_count = theirs;
    }

    /// One delivery started (sender) or arrived (receiver). False, and nothing changes, when
    /// there is no credit for it.
    #[inline]
    pub(crate) fn take(&mut self) -> bool {
        if self.link_credit == 0 {
            return false;
        }
        self.link_credit -= 1;
        self.delivery_count = self.delivery_count.wrapping_add(1);
        true
    }

    /// A receiver counts a delivery the sender aborted on its first frame: the sender counted
    /// it, so must we, credit or not, or our delivery-count falls behind the sender's.
    pub(crate) fn count_aborted(&mut self) {
        self.link_credit = self.link_credit.saturating_sub(1);
        self.delivery_count = self.delivery_count.wrapping_add(1);
    }

    /// A drained sender advances its delivery count past the credit it did not use.
    pub(crate) fn give_back(&mut self) {
        self.delivery_count = self.delivery_count.wrapping_add(self.link_credit);
        self.link_credit = 0;
    }

    /// A receiver grants `credit` more deliveries (ending a drain).
    pub(crate) fn grant(&mut self, credit: u32) {
        self.link_credit = self.link_credit.saturating_add(credit);
        self.drain = false;
    }
}

impl Link {
    /// The flow frame that states this link's credit, or `None` while the link cannot speak
    /// (no handle of ours, or detaching).
    pub(crate) fn flow(&self, session: &Session, echo: bool) -> Option<Flow> {
        let (Some(handle), LinkState::Attached | LinkState::AttachSent) =
            (self.local_handle, self.state)
        else {
            return None;
        };
        Some(Flow {
            handle: Some(handle),
            delivery_count: Some(self.credit.delivery_count),
            link_credit: Some(self.credit.link_credit),
            available: (self.role == LinkRole::Sender).then_some(self.pending.len() as u32),
            drain: self.credit.drain,
            echo,
            ..session.flow()
        })
    }
}

impl Connection {
    /// Link credit currently available to a link (as sender: deliveries it may start).
    pub fn link_credit(&self, link: LinkId) -> Option<u32> {
        self.links.get(&link).map(|l| l.credit.link_credit)
    }

    /// Grants `credit` more deliveries to a receiving link and tells the sender.
    pub fn add_credit(&mut self, link: LinkId, credit: u32) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.role != LinkRole::Receiver || credit == 0 {
            return;
        }
        l.credit.grant(credit);
        self.send_link_flow(link, false);
    }

    /// Sets a receiving link's credit to exactly `credit` (0 stops the sender).
    pub fn set_credit(&mut self, link: LinkId, credit: u32) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.role != LinkRole::Receiver {
            return;
        }
        l.credit.link_credit = credit;
        self.send_link_flow(link, false);
    }

    /// Asks the sender of a receiving link to use up or give back its credit.
    pub fn drain(&mut self, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.role != LinkRole::Receiver {
            return;
        }
        l.credit.drain = true;
        self.send_link_flow(link, false);
    }

    pub(in crate::amqp::engine) fn send_link_flow(&mut self, link: LinkId, echo: bool) {
        let Some(l) = self.links.get(&link) else {
            return;
        };
        let Some(flow) = self.sessions.get(&l.channel).and_then(|s| l.flow(s, echo)) else {
            return;
        };
        let channel = l.channel;
        self.write(channel, flow.into(), &[]);
    }

    /// A drained sender with nothing left to send gives its remaining credit back.
    pub(in crate::amqp::engine) fn maybe_finish_drain(&mut self, id: LinkId) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        if l.credit.drain && l.pending.is_empty() && l.credit.link_credit > 0 {
            l.credit.give_back();
            self.send_link_flow(id, false);
        }
    }

    pub(in crate::amqp::engine) fn on_flow(&mut self, local: u16, flow: Flow) {
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        s.on_flow(&flow);
        match flow.handle {
            Some(handle) => {
                let Some(id) = self.link_by_remote(local, handle) else {
                    return;
                };
                let Some(l) = self.links.get_mut(&id) else {
                    return;
                };
                match l.role {
                    LinkRole::Sender => {
                        // Drained with nothing to send: the credit goes back at once and we
                        // say so (with messages queued, the pump does it when the queue
                        // empties).
                        let drained = l.credit.on_sender_flow(
                            flow.delivery_count,
                            flow.link_credit,
                            flow.drain,
                            l.pending.is_empty(),
                        );
                        let credit = l.credit.link_credit;
                        if !l.pending.is_empty() {
                            if let Some(s) = self.sessions.get_mut(&local) {
                                s.enqueue_sender(id);
                            }
                        }
                        self.events.push_back(Event::Credit { link: id, credit });
                        if flow.echo || drained {
                            self.send_link_flow(id, false);
                        }
                    }
                    LinkRole::Receiver => {
                        l.credit.on_receiver_flow(flow.delivery_count);
                        let credit = l.credit.link_credit;
                        self.events.push_back(Event::ReceiverFlow {
                            link: id,
                            credit,
                            available: flow.available,
                        });
                        if flow.echo {
                            self.send_link_flow(id, false);
                        }
                    }
                }
            }
            None => {
                if flow.echo {
                    if let Some(s) = self.sessions.get(&local) {
                        let f = s.flow();
                        self.write(local, f.into(), &[]);
                    }
                }
            }
        }
        self.pump(local);
    }
}

#[cfg(test)]
mod tests {
    use super::Credit;

    fn credit(delivery_count: u32, link_credit: u32) -> Credit {
        Credit {
            delivery_count,
            link_credit,
            drain: false,
        }
    }

    #[test]
    fn sender_takes_the_credit_the_receiver_grants() {
        let mut c = credit(10, 0);
        assert!(!c.on_sender_flow(Some(10), Some(5), false, true));
        assert_eq!(c, credit(10, 5));
        // The receiver has not yet seen two of our deliveries: its limit is 8 + 5 = 13.
        let mut c = credit(10, 0);
        c.on_sender_flow(Some(8), Some(5), false, true);
        assert_eq!(c.link_credit, 3);
    }

    #[test]
    fn sender_treats_a_count_ahead_of_ours_as_no_credit() {
        let mut c = credit(10, 7);
        c.on_sender_flow(Some(20), Some(5), false, false);
        assert_eq!(c.link_credit, 0);
        // Absent fields count as zero: a limit of 0 from 10 wraps, so no credit either.
        let mut c = credit(10, 7);
        c.on_sender_flow(None, None, false, false);
        assert_eq!(c.link_credit, 0);
    }

    #[test]
    fn sender_credit_across_the_delivery_count_wrap() {
        let mut c = credit(u32::MAX - 1, 0);
        c.on_sender_flow(Some(u32::MAX - 1), Some(4), false, false);
        assert_eq!(c.link_credit, 4);
        for _ in 0..4 {
            assert!(c.take());
        }
        assert_eq!(c, credit(2, 0));
        assert!(!c.take(), "no credit, no delivery");
        assert_eq!(c, credit(2, 0));
        // The receiver, having seen the wrap too, grants from 1 (one in flight).
        c.on_sender_flow(Some(1), Some(10), false, false);
        assert_eq!(c.link_credit, 9);
    }

    #[test]
    fn sender_drain_gives_credit_back_only_when_idle() {
        let mut c = credit(100, 0);
        assert!(c.on_sender_flow(Some(100), Some(50), true, true));
        assert_eq!(
            c,
            Credit {
                delivery_count: 150,
                link_credit: 0,
                drain: true
            }
        );
        let mut c = credit(100, 0);
        assert!(!c.on_sender_flow(Some(100), Some(50), true, false));
        assert_eq!(c.link_credit, 50);
        assert!(c.drain);
        c.give_back();
        assert_eq!(c.delivery_count, 150);
        assert_eq!(c.link_credit, 0);
    }

    #[test]
    fn drain_give_back_wraps() {
        let mut c = credit(u32::MAX - 2, 0);
        c.on_sender_flow(Some(u32::MAX - 2), Some(10), true, true);
        assert_eq!(c.delivery_count, 7);
        assert_eq!(c.link_credit, 0);
    }

    #[test]
    fn receiver_credit_follows_the_senders_count() {
        // We granted 10 from 0; the sender says it sent 4 we have not counted yet (in flight).
        let mut c = credit(0, 10);
        c.on_receiver_flow(Some(4));
        assert_eq!(c, credit(4, 6));
        // After a drain the sender reports its count moved past all the credit.
        let mut c = credit(0, 10);
        c.on_receiver_flow(Some(10));
        assert_eq!(c, credit(10, 0));
        // A missing count leaves ours.
        let mut c = credit(3, 5);
        c.on_receiver_flow(None);
        assert_eq!(c, credit(3, 5));
    }

    #[test]
    fn receiver_never_gains_credit_from_the_sender() {
        // A sender claiming a count behind ours would widen the credit; it is capped.
        let mut c = credit(10, 5);
        c.on_receiver_flow(Some(8));
        assert_eq!(c, credit(8, 5));
        // A count beyond our limit wraps the difference: still capped at what we granted,
        // never four billion.
        let mut c = credit(10, 5);
        c.on_receiver_flow(Some(100));
        assert_eq!(c, credit(100, 5));
    }

    #[test]
    fn receiver_flow_across_the_wrap() {
        let mut c = credit(u32::MAX - 1, 6);
        c.on_receiver_flow(Some(2));
        assert_eq!(c, credit(2, 2));
    }

    #[test]
    fn grant_saturates_and_ends_a_drain() {
        let mut c = Credit {
            delivery_count: 0,
            link_credit: u32::MAX - 1,
            drain: true,
        };
        c.grant(10);
        assert_eq!(c.link_credit, u32::MAX);
        assert!(!c.drain);
    }

    #[test]
    fn an_aborted_first_frame_counts_even_without_credit() {
        let mut c = credit(u32::MAX, 0);
        c.count_aborted();
        assert_eq!(c, credit(0, 0));
        let mut c = credit(5, 3);
        c.count_aborted();
        assert_eq!(c, credit(6, 2));
    }
}
