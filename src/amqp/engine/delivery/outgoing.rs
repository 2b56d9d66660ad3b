//! Outgoing deliveries: the send queue of a link, and messages cut into transfer frames
//! that fit the peer's max-frame-size, sent while link credit and the session window last.

use crate::amqp::codec::Encode;
use crate::amqp::engine::connection::{err, Connection};
use crate::amqp::engine::event::LinkId;
use crate::amqp::engine::link::LinkState;
use crate::amqp::frame;
use crate::amqp::types::definitions::{Role as LinkRole, SenderSettleMode};
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::transport::Transfer;
use bytes::Bytes;

/// A message waiting for credit or window, or part-way out.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub token: u64,
    pub tag: Bytes,
    pub format: u32,
    pub settled: bool,
    pub payload: Bytes,
    /// Bytes of `payload` already sent.
    pub sent: usize,
    /// `Some(id)` once the first frame went out.
    pub delivery_id: Option<u32>,
}

impl Outgoing {
    /// A message to send, its delivery tag made from `token` (unique on the link).
    pub(crate) fn new(token: u64, format: u32, settled: bool, payload: Bytes) -> Self {
        Outgoing {
            token,
            tag: Bytes::copy_from_slice(&token.to_be_bytes()),
            format,
            settled,
            payload,
            sent: 0,
            delivery_id: None,
        }
    }

    /// The next transfer frame of this delivery on `handle` and its slice of the payload, as
    /// much as fits a frame of `max_frame` bytes (at least one byte, so it always ends). The
    /// first frame carries the tag and format; `more` says whether frames follow.
    #[inline]
    pub(crate) fn next_frame(&mut self, handle: u32, max_frame: usize) -> (Transfer, Bytes) {
        let first = self.sent == 0;
        let mut transfer = Transfer {
            handle,
            delivery_id: self.delivery_id,
            delivery_tag: first.then(|| self.tag.clone()),
            message_format: first.then_some(self.format),
            settled: Some(self.settled),
            more: true,
            ..Transfer::default()
        };
        let room = max_frame
            .saturating_sub(frame::FRAME_HEADER_SIZE + transfer.encoded_len())
            .max(1);
        let left = self.payload.len() - self.sent;
        let n = left.min(room);
        transfer.more = n < left;
        let chunk = self.payload.slice(self.sent..self.sent + n);
        self.sent += n;
        (transfer, chunk)
    }
}

impl Connection {
    /// Queues an encoded message on a sending link and sends as much as credit and the session
    /// window allow. Returns a number that [`Event::Outcome`](crate::amqp::engine::Event::Outcome)
    /// will carry for it.
    ///
    /// `settled` sends it pre-settled (no outcome will come). Fails when the link cannot send
    /// or the message is larger than the peer accepts.
    pub fn send(
        &mut self,
        link: LinkId,
        payload: Bytes,
        message_format: u32,
        settled: bool,
    ) -> Result<u64, AmqpError> {
        let l = self
            .links
            .get_mut(&link)
            .ok_or_else(|| err(condition::ILLEGAL_STATE, "link is not attached"))?;
        if l.role != LinkRole::Sender
            || !matches!(l.state, LinkState::Attached | LinkState::AttachSent)
        {
            return Err(err(condition::ILLEGAL_STATE, "link cannot send"));
        }
        if let Some(max) = l.peer_max_message_size {
            if payload.len() as u64 > max {
                return Err(err(
                    condition::LINK_MESSAGE_SIZE_EXCEEDED,
                    format!(
                        "message of {} bytes exceeds the link's max-message-size {max}",
                        payload.len()
                    ),
                ));
            }
        }
        let settled = match l.snd_settle_mode {
            SenderSettleMode::Settled => true,
            SenderSettleMode::Unsettled => false,
            SenderSettleMode::Mixed => settled,
        };
        let token = l.next_token;
        l.next_token += 1;
        l.pending
            .push_back(Outgoing::new(token, message_format, settled, payload));
        let channel = l.channel;
        if let Some(s) = self.sessions.get_mut(&channel) {
            s.enqueue_sender(link);
        }
        self.pump(channel);
        Ok(token)
    }

    /// Messages queued on a sending link that have not fully gone out.
    pub fn queued(&self, link: LinkId) -> usize {
        self.links.get(&link).map_or(0, |l| l.pending.len())
    }

    /// Sends queued transfers on a session while credit and the peer's window last.
    pub(in crate::amqp::engine) fn pump(&mut self, channel: u16) {
        let max_frame = self.remote_max_frame_size as usize;
        loop {
            let Some(s) = self.sessions.get_mut(&channel) else {
                return;
            };
            if !s.can_transmit() {
                return;
            }
            let Some(id) = s.send_queue.pop_front() else {
                return;
            };
            let Some(l) = self.links.get_mut(&id) else {
                continue;
            };
            if l.state != LinkState::Attached || !l.can_send() {
                // Waits for credit; the next flow puts it back in the queue.
                continue;
            }
            let Some(handle) = l.local_handle else {
                continue;
            };
            let Some(out) = l.pending.front_mut() else {
                continue;
            };
            if out.delivery_id.is_none() {
                // can_send saw credit for it.
                l.credit.take();
                let delivery_id = s.new_delivery_id();
                out.delivery_id = Some(delivery_id);
                if !out.settled {
                    s.unsettled.track_outgoing(delivery_id, l.id, out.token);
                }
            }
            let (transfer, chunk) = out.next_frame(handle, max_frame);
            let done = !transfer.more;
            if done {
                l.pending.pop_front();
            }
            let more_work = !l.pending.is_empty();
            s.on_outgoing_transfer();
            if !done {
                // Finish a started delivery before others on this session interleave.
                s.send_queue.push_front(id);
            } else if more_work {
                s.send_queue.push_back(id);
            }
            self.write_transfer(channel, transfer.into(), chunk);
            if done {
                self.maybe_finish_drain(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_message_is_one_frame_with_tag_and_format() {
        let mut o = Outgoing::new(0x0102, 0x8001_3700, false, Bytes::from_static(b"hi"));
        o.delivery_id = Some(9);
        let (t, chunk) = o.next_frame(4, 65536);
        assert_eq!(t.handle, 4);
        assert_eq!(t.delivery_id, Some(9));
        assert_eq!(
            t.delivery_tag.as_deref(),
            Some(&0x0102u64.to_be_bytes()[..])
        );
        assert_eq!(t.message_format, Some(0x8001_3700));
        assert_eq!(t.settled, Some(false));
        assert!(!t.more);
        assert_eq!(chunk, Bytes::from_static(b"hi"));
    }

    #[test]
    fn a_large_message_is_cut_into_frames_that_fit() {
        let payload = Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut o = Outgoing::new(1, 0, true, payload.clone());
        o.delivery_id = Some(0);
        let max_frame = 512;
        let mut whole = Vec::new();
        let mut frames = 0;
        loop {
            let (t, chunk) = o.next_frame(0, max_frame);
            frames += 1;
            assert!(
                frame::FRAME_HEADER_SIZE + t.encoded_len() + chunk.len() <= max_frame,
                "frame {frames} fits"
            );
            assert_eq!(
                t.delivery_tag.is_some(),
                frames == 1,
                "tag on the first frame only"
            );
            assert_eq!(t.message_format.is_some(), frames == 1);
            assert!(!chunk.is_empty());
            whole.extend_from_slice(&chunk);
            if !t.more {
                break;
            }
        }
        assert!(frames > 9, "{frames} frames");
        assert_eq!(whole, payload);
        assert_eq!(o.sent, payload.len());
    }

    #[test]
    fn an_empty_message_is_one_frame_and_a_tiny_frame_still_progresses() {
        let mut o = Outgoing::new(0, 0, false, Bytes::new());
        let (t, chunk) = o.next_frame(0, 512);
        assert!(!t.more);
        assert!(chunk.is_empty());
        // A frame size below the transfer's own size still moves one byte at a time.
        let mut o = Outgoing::new(0, 0, false, Bytes::from_static(b"ab"));
        let (t, chunk) = o.next_frame(0, 1);
        assert!(t.more);
        assert_eq!(chunk.len(), 1);
        let (t, chunk) = o.next_frame(0, 1);
        assert!(!t.more);
        assert_eq!(chunk, Bytes::from_static(b"b"));
    }
}
