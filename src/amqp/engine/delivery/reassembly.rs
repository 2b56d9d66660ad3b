//! Incoming transfers: a delivery reassembled from its frames (the `more` flag), under the
//! link's size limit, with aborts and link errors that drop the rest of a delivery.

use crate::amqp::engine::connection::{err, Connection, InPayload};
use crate::amqp::engine::event::{Delivery, Event};
use crate::amqp::engine::link::{Credit, LinkState};
use crate::amqp::engine::session::SessionState;
use crate::amqp::types::definitions::Role as LinkRole;
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::messaging::DeliveryState;
use crate::amqp::types::transport::Transfer;
use bytes::{Bytes, BytesMut};

/// Reassembly limit for links that set no max-message-size: enough for any Event Hubs tier,
/// small enough that a hostile peer cannot make us buffer without bound.
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 * 1024 * 1024;

/// A delivery being reassembled from several transfer frames.
#[derive(Debug)]
struct Partial {
    delivery_id: u32,
    tag: Bytes,
    format: u32,
    settled: bool,
    state: Option<DeliveryState>,
    body: Body,
    size: u64,
    /// Whether `body` is a buffer of ours the parts were copied into (not the input's).
    copied: bool,
    /// Frames taken in so far.
    parts: u32,
}

/// The payload of a delivery so far.
#[derive(Debug)]
enum Body {
    Empty,
    /// One frame's shared slice (a one-frame delivery stays that slice: zero copy).
    Shared(Bytes),
    /// Writable: one part of the input buffer, parts joined in place where they are
    /// contiguous in memory, or a buffer the parts were copied into where they were not.
    Owned(BytesMut),
}

impl Partial {
    /// Appends a frame's payload (copied into `spare` when that can take the delivery).
    fn push(&mut self, payload: InPayload, spare: &mut BytesMut) {
        self.parts = self.parts.saturating_add(1);
        self.body = match (std::mem::replace(&mut self.body, Body::Empty), payload) {
            (Body::Empty, InPayload::Shared(b)) => Body::Shared(b),
            (Body::Empty, InPayload::Owned(b)) => Body::Owned(b),
            (Body::Shared(first), next) => {
                let mut buf = reclaimed(spare, first.len() + next.len())
                    .unwrap_or_else(|| BytesMut::with_capacity(first.len() + next.len()));
                buf.extend_from_slice(&first);
                extend(&mut buf, next, spare);
                self.copied = true;
                Body::Owned(buf)
            }
            (Body::Owned(mut buf), next) => {
                self.copied |= extend(&mut buf, next, spare);
                Body::Owned(buf)
            }
        };
    }

    /// The whole delivery; a buffer it was copied into is remembered in `spare`, to be
    /// written again once the delivery has been dropped.
    fn finish(self, spare: &mut BytesMut) -> Delivery {
        let body = match self.body {
            Body::Owned(mut b) if self.copied && b.capacity() <= SPARE_LIMIT => {
                *spare = b.split_off(b.len());
                Body::Owned(b)
            }
            body => body,
        };
        Partial { body, ..self }.into_delivery()
    }

    fn into_delivery(self) -> Delivery {
        Delivery {
            delivery_id: self.delivery_id,
            tag: self.tag,
            message_format: self.format,
            settled: self.settled,
            state: self.state,
            payload: match self.body {
                Body::Empty => Bytes::new(),
                Body::Shared(b) => b,
                Body::Owned(b) => b.freeze(),
            },
        }
    }
}

/// Largest buffer a link keeps between deliveries for the next one to be copied into.
const SPARE_LIMIT: usize = 8 << 20;

/// `spare`, emptied, when nothing refers to it any more and it can take `len` bytes.
fn reclaimed(spare: &mut BytesMut, len: usize) -> Option<BytesMut> {
    spare.clear();
    // Asked for more than it holds, a free spare goes back to the start of its allocation
    // (its whole capacity); asked for `len` alone, it could stay the tail it is, too short
    // for the delivery, which would then be copied again to grow.
    spare
        .try_reclaim(len.max(spare.capacity() + 1))
        .then(|| std::mem::take(spare))
}

/// Appends `next` to `buf`: without a copy when `next` is the memory right behind `buf`
/// (a continuation frame compacted behind the frame before, see
/// [`crate::amqp::frame::cut_frame_split`]), else copied: into `spare` when that is free
/// and large enough (a buffer an earlier delivery was copied into: its memory is written
/// again rather than allocated anew and zeroed by the kernel), else into `buf` grown at
/// least twofold so that a long delivery is not copied over and over. True when `buf` is
/// now a buffer the parts were copied into.
fn extend(buf: &mut BytesMut, next: InPayload, spare: &mut BytesMut) -> bool {
    let next = match next {
        InPayload::Owned(next) => match buf.try_unsplit(next) {
            Ok(()) => return false,
            Err(next) => InPayload::Owned(next),
        },
        shared => shared,
    };
    let slice: &[u8] = match &next {
        InPayload::Shared(b) => b,
        InPayload::Owned(b) => b,
    };
    let moved = buf.capacity() - buf.len() < slice.len();
    if moved {
        match reclaimed(spare, buf.len() + slice.len()) {
            Some(mut into) => {
                into.extend_from_slice(buf);
                *buf = into;
            }
            None => buf.reserve(slice.len().max(buf.len())),
        }
    }
    buf.extend_from_slice(slice);
    moved
}

/// A receiving link's reassembly state.
#[derive(Debug)]
pub(crate) struct Reassembly {
    partial: Option<Partial>,
    /// The delivery ran past the limit or the link failed: drop its remaining frames.
    discarding: bool,
    /// Largest message we reassemble.
    pub max_message_size: u64,
    /// What is left of the last buffer a delivery was copied into (see [`extend`]).
    spare: BytesMut,
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly {
            partial: None,
            discarding: false,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            spare: BytesMut::new(),
        }
    }
}

impl Reassembly {
    /// Takes in one transfer frame. A delivery's first frame uses one of the link's `credit`.
    /// Returns the whole delivery on its last frame; an error is the peer's breach of a link
    /// rule (the link must be detached with it).
    pub(crate) fn on_transfer(
        &mut self,
        t: Transfer,
        payload: impl Into<InPayload>,
        credit: &mut Credit,
    ) -> Result<Option<Delivery>, AmqpError> {
        let payload = payload.into();
        if t.aborted {
            // An abort on a delivery's first frame still started a delivery on the sender's
            // side.
            if self.partial.is_none() && !self.discarding && t.delivery_id.is_some() {
                credit.count_aborted();
            }
            self.partial = None;
            self.discarding = false;
            return Ok(None);
        }
        match &self.partial {
            Some(p) => {
                if let Some(id) = t.delivery_id.filter(|&id| id != p.delivery_id) {
                    return Err(err(
                        condition::INVALID_FIELD,
                        format!(
                            "transfer for delivery {id} while delivery {} is incomplete",
                            p.delivery_id
                        ),
                    ));
                }
            }
            None => {
                if self.discarding {
                    if !t.more {
                        self.discarding = false;
                    }
                    return Ok(None);
                }
                let Some(delivery_id) = t.delivery_id else {
                    return Err(err(
                        condition::INVALID_FIELD,
                        "first transfer of a delivery has no delivery-id",
                    ));
                };
                if !credit.take() {
                    return Err(err(
                        condition::LINK_TRANSFER_LIMIT_EXCEEDED,
                        "transfer without link credit",
                    ));
                }
                self.partial = Some(Partial {
                    delivery_id,
                    tag: t.delivery_tag.unwrap_or_default(),
                    format: t.message_format.unwrap_or(0),
                    settled: false,
                    state: None,
                    body: Body::Empty,
                    size: 0,
                    copied: false,
                    parts: 0,
                });
            }
        }
        let Some(p) = self.partial.as_mut() else {
            return Ok(None);
        };
        p.size += payload.len() as u64;
        if p.size > self.max_message_size {
            return Err(err(
                condition::LINK_MESSAGE_SIZE_EXCEEDED,
                format!(
                    "message of at least {} bytes exceeds max-message-size {}",
                    p.size, self.max_message_size
                ),
            ));
        }
        // Settled and state may come on any frame; the last word counts.
        if t.settled == Some(true) {
            p.settled = true;
        }
        if t.state.is_some() {
            p.state = t.state;
        }
        p.push(payload, &mut self.spare);
        if t.more {
            return Ok(None);
        }
        Ok(self.partial.take().map(|p| p.finish(&mut self.spare)))
    }

    /// True when the delivery in progress is one frame's payload still lying in the input
    /// buffer: its next frame, compacted behind it, joins it without a copy (see
    /// [`crate::amqp::frame::cut_frame_split`]). A third frame could not join so (the second
    /// frame's header is left between them), so compacting it would only add a copy.
    pub(crate) fn joins_next_in_place(&self) -> bool {
        matches!(&self.partial, Some(p) if p.parts == 1 && !p.copied && matches!(p.body, Body::Owned(_)))
    }

    /// Drops the delivery in progress and whatever frames of it still come.
    pub(crate) fn discard(&mut self) {
        self.partial = None;
        self.discarding = true;
    }
}

impl Connection {
    pub(in crate::amqp::engine) fn on_transfer(
        &mut self,
        local: u16,
        t: Transfer,
        payload: InPayload,
    ) {
        // The next frame is likely this delivery's continuation (a sender finishes a started
        // delivery before others on the session): it is cut to join this one in place when
        // that can work (set below).
        self.continuation_expected = false;
        let more = t.more && !t.aborted;
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        if s.state == SessionState::EndSent {
            return;
        }
        match s.on_incoming_transfer() {
            Err(e) => {
                self.fail_session(local, e);
                return;
            }
            Ok(true) => {
                let f = s.flow();
                self.write(local, f.into(), &[]);
            }
            Ok(false) => {}
        }
        let Some(id) = self.link_by_remote(local, t.handle) else {
            return;
        };
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        if l.state == LinkState::DetachSent {
            return;
        }
        if l.role != LinkRole::Receiver {
            self.fail_link(
                id,
                err(
                    condition::NOT_ALLOWED,
                    "transfer on a link where we are the sender",
                ),
            );
            return;
        }
        let delivery = match l.incoming.on_transfer(t, payload, &mut l.credit) {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.continuation_expected = more && l.incoming.joins_next_in_place();
                return;
            }
            Err(e) => {
                self.fail_link(id, e);
                return;
            }
        };
        if !delivery.settled {
            let max = self.config.limits.max_unsettled;
            if let Some(s) = self.sessions.get_mut(&local) {
                if s.unsettled.incoming_len() >= max {
                    self.limit_exceeded("max_unsettled", max);
                    return;
                }
                s.unsettled.track_incoming(delivery.delivery_id, id);
            }
        }
        self.events
            .push_back(Event::Delivery { link: id, delivery });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(delivery_id: Option<u32>, more: bool) -> Transfer {
        Transfer {
            delivery_id,
            delivery_tag: delivery_id.map(|id| Bytes::copy_from_slice(&id.to_be_bytes())),
            more,
            ..Transfer::default()
        }
    }

    fn credit(link_credit: u32) -> Credit {
        Credit {
            delivery_count: 0,
            link_credit,
            drain: false,
        }
    }

    #[test]
    fn a_single_frame_delivery_is_a_slice_of_its_frame() {
        let mut r = Reassembly::default();
        let mut c = credit(1);
        let body = Bytes::from_static(b"hello");
        let mut t = frame(Some(7), false);
        t.message_format = Some(0x8001_3700);
        t.settled = Some(true);
        let d = r.on_transfer(t, body.clone(), &mut c).unwrap().unwrap();
        assert_eq!(d.delivery_id, 7);
        assert_eq!(d.tag, Bytes::copy_from_slice(&7u32.to_be_bytes()));
        assert_eq!(d.message_format, 0x8001_3700);
        assert!(d.settled);
        assert_eq!(d.payload.as_ptr(), body.as_ptr(), "no copy");
        assert_eq!(
            c,
            Credit {
                delivery_count: 1,
                link_credit: 0,
                drain: false
            }
        );
    }

    #[test]
    fn a_message_split_over_many_frames_comes_whole_on_the_last() {
        let mut r = Reassembly::default();
        let mut c = credit(5);
        let parts: Vec<Bytes> = (0u8..50).map(|i| Bytes::from(vec![i; 100])).collect();
        for (i, part) in parts.iter().enumerate() {
            let first = i == 0;
            let last = i == parts.len() - 1;
            // Continuations may repeat the delivery id or leave it out.
            let id = (first || i % 2 == 0).then_some(3);
            let mut t = frame(id, !last);
            if !first {
                t.delivery_tag = None;
            }
            if i == 10 {
                t.state = Some(DeliveryState::Accepted(
                    crate::amqp::types::messaging::Accepted,
                ));
            }
            if last {
                t.settled = Some(true);
            }
            let got = r.on_transfer(t, part.clone(), &mut c).unwrap();
            assert_eq!(got.is_some(), last, "frame {i}");
            if let Some(d) = got {
                let whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                assert_eq!(d.payload, whole);
                assert_eq!(d.delivery_id, 3);
                assert!(d.settled, "settled on the last frame counts");
                assert!(d.state.is_some(), "a state on a middle frame is kept");
            }
        }
        assert_eq!(c.link_credit, 4, "one delivery, one credit");
        assert_eq!(c.delivery_count, 1);
    }

    #[test]
    fn empty_frames_and_an_empty_message() {
        let mut r = Reassembly::default();
        let mut c = credit(2);
        let d = r.on_transfer(frame(Some(0), false), Bytes::new(), &mut c);
        assert_eq!(d.unwrap().unwrap().payload, Bytes::new());
        assert!(r
            .on_transfer(frame(Some(1), true), Bytes::new(), &mut c)
            .unwrap()
            .is_none());
        assert!(r
            .on_transfer(frame(None, true), Bytes::from_static(b"ab"), &mut c)
            .unwrap()
            .is_none());
        let d = r.on_transfer(frame(None, false), Bytes::from_static(b"c"), &mut c);
        assert_eq!(d.unwrap().unwrap().payload, Bytes::from_static(b"abc"));
    }

    /// A delivery of three separate frames, its parts `[1; 1000]`, `[2; 1000]`, `[3; 1000]`.
    fn three_parts(r: &mut Reassembly, c: &mut Credit, id: u32) -> Bytes {
        r.on_transfer(frame(Some(id), true), Bytes::from(vec![1; 1000]), c)
            .unwrap();
        r.on_transfer(frame(None, true), Bytes::from(vec![2; 1000]), c)
            .unwrap();
        let d = r.on_transfer(frame(None, false), Bytes::from(vec![3; 1000]), c);
        let payload = d.unwrap().unwrap().payload;
        let want: Vec<u8> = [1u8, 2, 3].iter().flat_map(|&b| [b; 1000]).collect();
        assert_eq!(payload, want);
        payload
    }

    /// The buffer a delivery was copied into is written again for the next one, but only
    /// once the first has been dropped: a delivery still held is never overwritten.
    #[test]
    fn a_copied_delivery_buffer_is_reused_once_dropped() {
        let mut r = Reassembly::default();
        let mut c = credit(10);
        let first = three_parts(&mut r, &mut c, 0);
        let at = first.as_ptr();
        // The link kept what is left of that buffer (malloc alone could hand the same memory
        // back, so the pointer below would not prove the reuse by itself).
        assert_eq!(r.spare.as_ptr(), at.wrapping_add(first.len()));
        drop(first);
        let second = three_parts(&mut r, &mut c, 1);
        assert_eq!(
            second.as_ptr(),
            at,
            "the dropped delivery's buffer is reused"
        );
        let third = three_parts(&mut r, &mut c, 2);
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(second[1500], 2, "the held delivery is intact");
    }

    /// A long delivery (sixteen 64 KiB frames with headers between them, as a 1 MiB batch
    /// comes) is copied into the buffer the one before it grew to, from its start: the
    /// buffer is not left at the short tail the last delivery did not use, which would be
    /// outgrown and copied again within the delivery.
    #[test]
    fn a_long_delivery_reuses_the_whole_buffer_of_the_one_before() {
        let mut r = Reassembly::default();
        let mut c = credit(10);
        let mut first = None;
        for id in 0..3u32 {
            let mut input = BytesMut::from(&vec![id as u8; 17 * 65_536][..]);
            let mut got = None;
            for i in 0..17 {
                let mut t = frame((i == 0).then_some(id), i < 16);
                t.delivery_tag = (i == 0).then(|| Bytes::from_static(b"t"));
                let _header = input.split_to(30);
                got = r.on_transfer(t, input.split_to(65_000), &mut c).unwrap();
                // Where the parts are copied to from the second frame on: the start of the
                // first delivery's buffer (a copy back to it at the end would look the same).
                let copied_to = match r.partial.as_ref().map(|p| &p.body) {
                    Some(Body::Owned(b)) if id > 0 && i >= 1 => Some(b.as_ptr() as usize),
                    _ => None,
                };
                if let (Some(at), Some(first)) = (copied_to, first) {
                    assert_eq!(at, first, "delivery {id}, frame {i}");
                }
            }
            let d = got.unwrap();
            assert_eq!(d.payload.len(), 17 * 65_000);
            assert!(d.payload.iter().all(|&b| b == id as u8));
            let at = d.payload.as_ptr() as usize;
            assert_eq!(
                *first.get_or_insert(at),
                at,
                "delivery {id} in the first's buffer"
            );
        }
    }

    /// Only a delivery's second frame is worth compacting behind the first: once two frames
    /// are joined, the next one cannot be (and a copied one never can).
    #[test]
    fn only_the_second_frame_can_join_in_place() {
        let mut r = Reassembly::default();
        let mut c = credit(3);
        assert!(!r.joins_next_in_place(), "no delivery");
        let mut input = BytesMut::from(&[7u8; 300][..]);
        let first = input.split_to(100);
        r.on_transfer(frame(Some(0), true), first, &mut c).unwrap();
        assert!(r.joins_next_in_place(), "one frame in the input buffer");
        r.on_transfer(frame(None, true), input.split_to(100), &mut c)
            .unwrap();
        assert!(!r.joins_next_in_place(), "two frames joined");
        let d = r.on_transfer(frame(None, false), input, &mut c).unwrap();
        assert_eq!(d.unwrap().payload.len(), 300);
        assert!(!r.joins_next_in_place(), "delivered");
        r.on_transfer(frame(Some(1), true), Bytes::from(vec![1; 10]), &mut c)
            .unwrap();
        assert!(
            !r.joins_next_in_place(),
            "a shared frame is copied to be joined"
        );
    }

    #[test]
    fn the_size_limit_counts_every_frame() {
        let mut r = Reassembly {
            max_message_size: 10,
            ..Reassembly::default()
        };
        let mut c = credit(3);
        let d = r.on_transfer(frame(Some(0), false), Bytes::from(vec![0; 10]), &mut c);
        assert!(d.unwrap().is_some(), "exactly the limit is fine");
        r.on_transfer(frame(Some(1), true), Bytes::from(vec![0; 6]), &mut c)
            .unwrap();
        let e = r
            .on_transfer(frame(None, true), Bytes::from(vec![0; 5]), &mut c)
            .unwrap_err();
        assert_eq!(e.condition, condition::LINK_MESSAGE_SIZE_EXCEEDED);
        // The link fails; the rest of that delivery is dropped, the next one is received.
        r.discard();
        assert!(r
            .on_transfer(frame(None, true), Bytes::from(vec![0; 50]), &mut c)
            .unwrap()
            .is_none());
        assert!(r
            .on_transfer(frame(None, false), Bytes::from(vec![0; 50]), &mut c)
            .unwrap()
            .is_none());
        let d = r.on_transfer(frame(Some(2), false), Bytes::from_static(b"ok"), &mut c);
        assert_eq!(d.unwrap().unwrap().delivery_id, 2);
        assert_eq!(c.link_credit, 0);
    }

    #[test]
    fn an_aborted_transfer_drops_the_delivery() {
        let mut r = Reassembly::default();
        let mut c = credit(2);
        r.on_transfer(frame(Some(0), true), Bytes::from_static(b"part"), &mut c)
            .unwrap();
        let mut abort = frame(None, false);
        abort.aborted = true;
        assert!(r
            .on_transfer(abort.clone(), Bytes::new(), &mut c)
            .unwrap()
            .is_none());
        assert_eq!(
            c,
            Credit {
                delivery_count: 1,
                link_credit: 1,
                drain: false
            }
        );
        // An abort on a first frame counts as a delivery the sender started.
        let mut first_abort = frame(Some(1), false);
        first_abort.aborted = true;
        r.on_transfer(first_abort, Bytes::new(), &mut c).unwrap();
        assert_eq!(
            c,
            Credit {
                delivery_count: 2,
                link_credit: 0,
                drain: false
            }
        );
        // An abort also ends discarding.
        r.discard();
        r.on_transfer(abort, Bytes::new(), &mut c).unwrap();
        let e = r
            .on_transfer(frame(Some(2), false), Bytes::new(), &mut c)
            .unwrap_err();
        assert_eq!(
            e.condition,
            condition::LINK_TRANSFER_LIMIT_EXCEEDED,
            "received, not dropped"
        );
    }

    #[test]
    fn a_first_frame_needs_a_delivery_id_and_credit() {
        let mut r = Reassembly::default();
        let mut c = credit(1);
        let e = r
            .on_transfer(frame(None, false), Bytes::new(), &mut c)
            .unwrap_err();
        assert_eq!(e.condition, condition::INVALID_FIELD);
        assert_eq!(c.link_credit, 1, "nothing counted");
        let mut c = credit(0);
        let e = r
            .on_transfer(frame(Some(0), false), Bytes::new(), &mut c)
            .unwrap_err();
        assert_eq!(e.condition, condition::LINK_TRANSFER_LIMIT_EXCEEDED);
        assert_eq!(c.delivery_count, 0);
    }

    #[test]
    fn a_continuation_naming_another_delivery_is_refused() {
        let mut r = Reassembly::default();
        let mut c = credit(2);
        r.on_transfer(frame(Some(4), true), Bytes::from_static(b"a"), &mut c)
            .unwrap();
        let e = r
            .on_transfer(frame(Some(5), false), Bytes::from_static(b"b"), &mut c)
            .unwrap_err();
        assert_eq!(e.condition, condition::INVALID_FIELD);
        assert_eq!(c.link_credit, 1, "the second delivery never started");
    }
}
