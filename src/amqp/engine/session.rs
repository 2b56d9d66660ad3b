//! Sessions: begin and end, the transfer windows both ways, transfer-id accounting, and the
//! handle maps that name a session's links.

use super::config::SessionConfig;
use super::connection::{err, Connection};
use super::delivery::Unsettled;
use super::event::{Event, LinkId, SessionId};
use super::frame_event;
use super::link::Link;
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::transport::{Begin, End, Flow};
use std::collections::{BTreeMap, HashMap, VecDeque};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionState {
    /// We sent begin; waiting for the peer's.
    BeginSent,
    /// Begins exchanged.
    Mapped,
    /// We sent end; waiting for the peer's.
    EndSent,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub remote_channel: Option<u16>,
    pub state: SessionState,
    pub config: SessionConfig,
    pub next_outgoing_id: u32,
    pub initial_outgoing_id: u32,
    /// The peer's view of our next transfer id is what counts for its window.
    pub next_incoming_id: u32,
    /// Transfer frames we still accept before the peer must wait for our flow.
    pub incoming_window: u32,
    /// Transfer frames the peer still accepts from us.
    pub remote_incoming_window: u32,
    pub remote_outgoing_window: u32,
    pub remote_handle_max: u32,
    pub next_delivery_id: u32,
    /// Our handles: handle → link. Ordered so the lowest free handle is cheap to find.
    pub local_handles: BTreeMap<u32, LinkId>,
    /// The peer's handles: handle → link.
    pub remote_handles: HashMap<u32, LinkId>,
    /// Deliveries not yet settled both ways, and the dispositions we owe.
    pub unsettled: Unsettled,
    /// Sending links with queued messages, in round-robin order.
    pub send_queue: VecDeque<LinkId>,
    /// SessionEnded was reported already (we ended it on a protocol error and wait for the
    /// peer's end).
    pub end_reported: bool,
}

impl Session {
    pub(crate) fn new(config: SessionConfig, state: SessionState) -> Self {
        Session {
            remote_channel: None,
            state,
            incoming_window: config.incoming_window,
            config,
            next_outgoing_id: 0,
            initial_outgoing_id: 0,
            next_incoming_id: 0,
            remote_incoming_window: 0,
            remote_outgoing_window: 0,
            remote_handle_max: u32::MAX,
            next_delivery_id: 0,
            local_handles: BTreeMap::new(),
            remote_handles: HashMap::new(),
            unsettled: Unsettled::default(),
            send_queue: VecDeque::new(),
            end_reported: false,
        }
    }

    /// Our begin, answering the peer's on `remote_channel` when it began the session.
    pub(crate) fn begin(&self, remote_channel: Option<u16>) -> Begin {
        Begin {
            remote_channel,
            next_outgoing_id: self.next_outgoing_id,
            incoming_window: self.config.incoming_window,
            outgoing_window: self.config.outgoing_window,
            handle_max: self.config.handle_max,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    /// Takes in the peer's begin on its `channel`. False when we ended the session before the
    /// answer came: the channel is mapped (so the peer's end finds it) but nothing is reported.
    pub(crate) fn on_remote_begin(&mut self, channel: u16, begin: &Begin) -> bool {
        self.remote_channel = Some(channel);
        let ending = self.state == SessionState::EndSent;
        if !ending {
            self.state = SessionState::Mapped;
        }
        self.next_incoming_id = begin.next_outgoing_id;
        self.remote_incoming_window = begin.incoming_window;
        self.remote_outgoing_window = begin.outgoing_window;
        self.remote_handle_max = begin.handle_max;
        !ending
    }

    /// The session part of a flow frame: our windows and transfer ids.
    pub(crate) fn flow(&self) -> Flow {
        Flow {
            next_incoming_id: self.remote_channel.map(|_| self.next_incoming_id),
            incoming_window: self.incoming_window,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: self.config.outgoing_window,
            ..Flow::default()
        }
    }

    /// Takes in the session part of the peer's flow: how many more transfers it accepts.
    pub(crate) fn on_flow(&mut self, flow: &Flow) {
        let base = flow.next_incoming_id.unwrap_or(self.initial_outgoing_id);
        let window = base
            .wrapping_add(flow.incoming_window)
            .wrapping_sub(self.next_outgoing_id);
        // A peer that claims to have seen transfers we never sent yields a huge wrapped value;
        // cap it at what it announced.
        self.remote_incoming_window = window.min(flow.incoming_window);
        self.remote_outgoing_window = flow.outgoing_window;
    }

    /// Counts a transfer frame from the peer against our incoming window. Fails when the
    /// peer overran the window; `Ok(true)` when the window was half used and is reopened, so a
    /// flow saying so must go out.
    #[inline]
    pub(crate) fn on_incoming_transfer(&mut self) -> Result<bool, AmqpError> {
        if self.incoming_window == 0 {
            return Err(err(
                condition::SESSION_WINDOW_VIOLATION,
                "transfer beyond the session's incoming window",
            ));
        }
        self.incoming_window -= 1;
        self.next_incoming_id = self.next_incoming_id.wrapping_add(1);
        let reopen = self.incoming_window <= self.config.incoming_window / 2;
        if reopen {
            self.incoming_window = self.config.incoming_window;
        }
        Ok(reopen)
    }

    /// True while we may send a transfer frame: mapped, and the peer's window is open.
    #[inline]
    pub(crate) fn can_transmit(&self) -> bool {
        self.state == SessionState::Mapped && self.remote_incoming_window > 0
    }

    /// Counts a transfer frame we send: one transfer id, one slot of the peer's window.
    #[inline]
    pub(crate) fn on_outgoing_transfer(&mut self) {
        self.next_outgoing_id = self.next_outgoing_id.wrapping_add(1);
        self.remote_incoming_window = self.remote_incoming_window.saturating_sub(1);
    }

    /// The delivery id for the next delivery we start on this session.
    #[inline]
    pub(crate) fn new_delivery_id(&mut self) -> u32 {
        let id = self.next_delivery_id;
        self.next_delivery_id = self.next_delivery_id.wrapping_add(1);
        id
    }

    /// Puts a sending link with work in the round-robin, once.
    pub(crate) fn enqueue_sender(&mut self, link: LinkId) {
        if !self.send_queue.contains(&link) {
            self.send_queue.push_back(link);
        }
    }

    /// The lowest handle not in use, if any is left under both handle limits.
    pub(crate) fn free_handle(&self) -> Option<u32> {
        let max = self.config.handle_max.min(self.remote_handle_max);
        let mut candidate = 0u32;
        for &h in self.local_handles.keys() {
            if h != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        (candidate <= max).then_some(candidate)
    }

    /// Fails (a session error) when the peer attaches on a handle it may not use.
    pub(crate) fn check_remote_handle(&self, handle: u32) -> Result<(), AmqpError> {
        if handle > self.config.handle_max {
            return Err(err(
                condition::INVALID_FIELD,
                format!(
                    "handle {handle} is above handle-max {}",
                    self.config.handle_max
                ),
            ));
        }
        if self.remote_handles.contains_key(&handle) {
            return Err(err(
                condition::SESSION_HANDLE_IN_USE,
                format!("handle {handle} is already attached"),
            ));
        }
        Ok(())
    }

    /// Drops every trace of a link that is gone: its handles, deliveries and queue place.
    pub(crate) fn forget_link(&mut self, link: &Link) {
        if let Some(h) = link.local_handle {
            self.local_handles.remove(&h);
        }
        if let Some(h) = link.remote_handle {
            self.remote_handles.remove(&h);
        }
        self.unsettled.forget_link(link.id);
        self.send_queue.retain(|l| *l != link.id);
    }

    /// Forgets all links at once (the session failed; only the peer's end is awaited).
    fn forget_links(&mut self) {
        self.remote_handles.clear();
        self.local_handles.clear();
        self.unsettled.clear();
        self.send_queue.clear();
    }
}

impl Connection {
    /// The lowest channel free under `max`.
    fn free_channel(&self, max: u16) -> Option<u16> {
        (0..=max).find(|c| !self.sessions.contains_key(c))
    }

    /// Begins a session. Fails when no channel is free under both channel limits.
    pub fn begin_session(&mut self, config: SessionConfig) -> Result<SessionId, AmqpError> {
        self.check_usable()?;
        let max = if self.remote_open.is_some() {
            self.config.channel_max.min(self.remote_channel_max)
        } else {
            self.config.channel_max
        };
        let channel = self
            .free_channel(max)
            .ok_or_else(|| err(condition::RESOURCE_LIMIT_EXCEEDED, "no free channel"))?;
        let session = Session::new(config, SessionState::BeginSent);
        let begin = session.begin(None);
        self.sessions.insert(channel, session);
        self.write(channel, begin.into(), &[]);
        Ok(SessionId(channel))
    }

    pub(super) fn on_begin(&mut self, channel: u16, begin: Begin) {
        if self.remote_channels.contains_key(&channel) {
            self.fail(err(
                condition::NOT_ALLOWED,
                format!("begin on channel {channel} which already has a session"),
            ));
            return;
        }
        if channel > self.config.channel_max {
            self.fail(err(
                condition::NOT_ALLOWED,
                format!(
                    "channel {channel} is above our channel-max {}",
                    self.config.channel_max
                ),
            ));
            return;
        }
        let local = match begin.remote_channel {
            Some(ours) => match self.sessions.get(&ours) {
                // EndSent too: the application may end a session before the answer arrives.
                Some(s)
                    if s.remote_channel.is_none()
                        && matches!(s.state, SessionState::BeginSent | SessionState::EndSent) =>
                {
                    ours
                }
                _ => {
                    self.fail(err(
                        condition::NOT_ALLOWED,
                        format!("begin answers channel {ours}, where we began no session"),
                    ));
                    return;
                }
            },
            None => {
                // Peer-initiated: answer on our lowest free channel that the peer accepts.
                if self.sessions.len() >= self.config.limits.max_sessions {
                    self.limit_exceeded("max_sessions", self.config.limits.max_sessions);
                    return;
                }
                let max = self.config.channel_max.min(self.remote_channel_max);
                let Some(ours) = self.free_channel(max) else {
                    self.fail(err(condition::RESOURCE_LIMIT_EXCEEDED, "no free channel"));
                    return;
                };
                let s = Session::new(SessionConfig::default(), SessionState::BeginSent);
                let answer = s.begin(Some(channel));
                self.sessions.insert(ours, s);
                self.write(ours, answer.into(), &[]);
                ours
            }
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        let report = s.on_remote_begin(channel, &begin);
        self.remote_channels.insert(channel, local);
        if report {
            self.events.push_back(Event::SessionBegun {
                session: SessionId(local),
                remote: Box::new(begin),
            });
        }
    }

    /// Ends a session, optionally with an error; [`Event::SessionEnded`] follows the peer's end.
    pub fn end_session(&mut self, session: SessionId, error: Option<AmqpError>) {
        let Some(s) = self.sessions.get_mut(&session.0) else {
            return;
        };
        if s.state == SessionState::EndSent {
            return;
        }
        s.state = SessionState::EndSent;
        // Settle first: the end must not overtake the session's queued dispositions.
        self.flush_dispositions();
        self.write(session.0, End { error }.into(), &[]);
    }

    pub(super) fn on_end(&mut self, local: u16, end: End) {
        let by_peer = self
            .sessions
            .get(&local)
            .is_some_and(|s| s.state != SessionState::EndSent);
        if by_peer {
            self.write(local, End { error: None }.into(), &[]);
        }
        self.drop_session(local, end.error, by_peer);
    }

    fn drop_session(&mut self, local: u16, error: Option<AmqpError>, by_peer: bool) {
        let Some(s) = self.sessions.remove(&local) else {
            return;
        };
        if let Some(rc) = s.remote_channel {
            self.remote_channels.remove(&rc);
        }
        let mut gone: Vec<LinkId> = self
            .links
            .values()
            .filter(|l| l.channel == local)
            .map(|l| l.id)
            .collect();
        gone.sort();
        for id in gone {
            self.links.remove(&id);
            self.events.push_back(Event::LinkDetached {
                link: id,
                error: error.clone(),
                closed: false,
                by_peer,
            });
        }
        if s.end_reported {
            return;
        }
        self.events.push_back(Event::SessionEnded {
            session: SessionId(local),
            error,
            by_peer,
        });
    }

    /// Ends a session because the peer broke a session rule.
    pub(super) fn fail_session(&mut self, local: u16, error: AmqpError) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, %error, channel = local, "ending session on error");
        if self
            .sessions
            .get(&local)
            .is_some_and(|s| s.state != SessionState::EndSent)
        {
            self.write(
                local,
                End {
                    error: Some(error.clone()),
                }
                .into(),
                &[],
            );
            if let Some(s) = self.sessions.get_mut(&local) {
                s.state = SessionState::EndSent;
            }
        }
        // Keep the session until the peer's end arrives (so its channel stays mapped), but
        // report now and forget its links.
        let gone: Vec<LinkId> = self
            .links
            .values()
            .filter(|l| l.channel == local)
            .map(|l| l.id)
            .collect();
        for id in gone {
            self.links.remove(&id);
            self.events.push_back(Event::LinkDetached {
                link: id,
                error: Some(error.clone()),
                closed: false,
                by_peer: false,
            });
        }
        if let Some(s) = self.sessions.get_mut(&local) {
            s.end_reported = true;
            s.forget_links();
        }
        self.events.push_back(Event::SessionEnded {
            session: SessionId(local),
            error: Some(error),
            by_peer: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::Str;
    use crate::amqp::engine::link::LinkState;
    use crate::amqp::types::definitions::Role;

    fn begin(next_outgoing_id: u32, incoming_window: u32) -> Begin {
        Begin {
            remote_channel: None,
            next_outgoing_id,
            incoming_window,
            outgoing_window: 9,
            handle_max: 7,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    fn mapped(incoming_window: u32) -> Session {
        let config = SessionConfig {
            incoming_window,
            ..SessionConfig::default()
        };
        let mut s = Session::new(config, SessionState::BeginSent);
        assert!(s.on_remote_begin(4, &begin(100, 3)));
        s
    }

    #[test]
    fn the_peers_begin_sets_both_windows_and_the_transfer_ids() {
        let s = mapped(10);
        assert_eq!(s.state, SessionState::Mapped);
        assert_eq!(s.remote_channel, Some(4));
        assert_eq!(s.next_incoming_id, 100);
        assert_eq!(s.remote_incoming_window, 3);
        assert_eq!(s.remote_outgoing_window, 9);
        assert_eq!(s.remote_handle_max, 7);
        let f = s.flow();
        assert_eq!(f.next_incoming_id, Some(100));
        assert_eq!(f.incoming_window, 10);
        assert_eq!(f.next_outgoing_id, 0);
        assert_eq!(f.handle, None);
    }

    #[test]
    fn an_answer_after_our_end_maps_the_channel_but_is_not_reported() {
        let mut s = Session::new(SessionConfig::default(), SessionState::EndSent);
        assert!(!s.on_remote_begin(1, &begin(0, 0)));
        assert_eq!(s.state, SessionState::EndSent);
        assert_eq!(s.remote_channel, Some(1));
    }

    #[test]
    fn before_the_peers_begin_a_flow_has_no_next_incoming_id() {
        let s = Session::new(SessionConfig::default(), SessionState::BeginSent);
        assert_eq!(s.flow().next_incoming_id, None);
    }

    #[test]
    fn incoming_window_reopens_at_half_and_counts_transfer_ids() {
        let mut s = mapped(4);
        assert_eq!(s.on_incoming_transfer(), Ok(false));
        assert_eq!(s.incoming_window, 3);
        // Down to 2 (half of 4): reopened to 4, and the flow must say so.
        assert_eq!(s.on_incoming_transfer(), Ok(true));
        assert_eq!(s.incoming_window, 4);
        assert_eq!(s.next_incoming_id, 102);
        assert_eq!(s.flow().incoming_window, 4);
        assert_eq!(s.flow().next_incoming_id, Some(102));
    }

    #[test]
    fn next_incoming_id_wraps() {
        let mut s = mapped(1000);
        s.next_incoming_id = u32::MAX;
        s.on_incoming_transfer().unwrap();
        assert_eq!(s.next_incoming_id, 0);
    }

    #[test]
    fn a_transfer_beyond_the_window_is_a_session_error() {
        let mut s = mapped(0);
        let e = s.on_incoming_transfer().unwrap_err();
        assert_eq!(e.condition, condition::SESSION_WINDOW_VIOLATION);
        assert_eq!(s.next_incoming_id, 100, "the frame is not counted");
        // A window of one reopens at once, so it never runs out.
        let mut s = mapped(1);
        for _ in 0..5 {
            assert_eq!(s.on_incoming_transfer(), Ok(true));
        }
    }

    #[test]
    fn outgoing_window_closes_as_we_send_and_the_peers_flow_reopens_it() {
        let mut s = mapped(10);
        for i in 0..3 {
            assert!(s.can_transmit(), "frame {i}");
            s.on_outgoing_transfer();
        }
        assert!(!s.can_transmit());
        assert_eq!(s.next_outgoing_id, 3);
        // The peer has seen 2 of our 3 transfers and takes 5 from there: 4 more fit.
        s.on_flow(&Flow {
            next_incoming_id: Some(2),
            incoming_window: 5,
            outgoing_window: 1,
            ..Flow::default()
        });
        assert_eq!(s.remote_incoming_window, 4);
        assert_eq!(s.remote_outgoing_window, 1);
        assert!(s.can_transmit());
    }

    #[test]
    fn a_flow_claiming_unsent_transfers_is_capped_at_its_window() {
        let mut s = mapped(10);
        s.on_flow(&Flow {
            next_incoming_id: Some(50),
            incoming_window: 5,
            ..Flow::default()
        });
        assert_eq!(s.remote_incoming_window, 5);
        // Before the peer saw our begin, its flow counts from our initial transfer id.
        let mut s = mapped(10);
        s.on_outgoing_transfer();
        s.on_flow(&Flow {
            next_incoming_id: None,
            incoming_window: 5,
            ..Flow::default()
        });
        assert_eq!(s.remote_incoming_window, 4);
    }

    #[test]
    fn outgoing_window_across_the_transfer_id_wrap() {
        let mut s = mapped(10);
        s.next_outgoing_id = u32::MAX;
        s.on_outgoing_transfer();
        s.on_outgoing_transfer();
        assert_eq!(s.next_outgoing_id, 1);
        s.on_flow(&Flow {
            next_incoming_id: Some(u32::MAX),
            incoming_window: 10,
            ..Flow::default()
        });
        assert_eq!(s.remote_incoming_window, 8);
    }

    #[test]
    fn not_mapped_means_no_transfers() {
        let mut s = mapped(10);
        s.state = SessionState::EndSent;
        assert!(!s.can_transmit());
    }

    #[test]
    fn delivery_ids_count_up_and_wrap() {
        let mut s = mapped(10);
        s.next_delivery_id = u32::MAX;
        assert_eq!(s.new_delivery_id(), u32::MAX);
        assert_eq!(s.new_delivery_id(), 0);
    }

    #[test]
    fn handles_are_the_lowest_free_under_both_limits() {
        let mut s = mapped(10);
        assert_eq!(s.free_handle(), Some(0));
        s.local_handles.insert(0, LinkId(1));
        s.local_handles.insert(2, LinkId(2));
        assert_eq!(s.free_handle(), Some(1));
        s.local_handles.insert(1, LinkId(3));
        assert_eq!(s.free_handle(), Some(3));
        for h in 3..=7 {
            s.local_handles.insert(h, LinkId(10 + u64::from(h)));
        }
        assert_eq!(s.free_handle(), None, "the peer's handle-max is 7");
    }

    #[test]
    fn the_peers_handles_are_checked() {
        let mut s = mapped(10);
        assert!(s.check_remote_handle(1023).is_ok());
        let e = s.check_remote_handle(1024).unwrap_err();
        assert_eq!(e.condition, condition::INVALID_FIELD);
        s.remote_handles.insert(5, LinkId(1));
        let e = s.check_remote_handle(5).unwrap_err();
        assert_eq!(e.condition, condition::SESSION_HANDLE_IN_USE);
    }

    #[test]
    fn a_forgotten_link_leaves_no_trace() {
        let mut s = mapped(10);
        let mut link = Link::new(
            LinkId(1),
            0,
            Str::from("l"),
            Role::Sender,
            LinkState::Attached,
        );
        link.local_handle = Some(0);
        link.remote_handle = Some(3);
        s.local_handles.insert(0, LinkId(1));
        s.remote_handles.insert(3, LinkId(1));
        s.enqueue_sender(LinkId(1));
        s.enqueue_sender(LinkId(1));
        s.enqueue_sender(LinkId(2));
        assert_eq!(s.send_queue.len(), 2, "a link is queued once");
        s.unsettled.track_outgoing(0, LinkId(1), 0);
        s.unsettled.track_outgoing(1, LinkId(2), 0);
        s.forget_link(&link);
        assert!(s.local_handles.is_empty());
        assert!(s.remote_handles.is_empty());
        assert_eq!(s.send_queue, [LinkId(2)]);
        assert_eq!(s.unsettled.outgoing_len(), 1);
    }
}
