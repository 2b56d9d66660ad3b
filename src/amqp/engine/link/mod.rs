//! Links: attach and detach, the handles that name them, and (in [`credit`]) their flow
//! control.

mod credit;

pub(crate) use credit::Credit;

use super::config::LinkConfig;
use super::connection::{err, Connection};
use super::delivery::{Outgoing, Reassembly};
use super::event::{Event, LinkId, SessionId};
use super::frame_event;
use super::session::SessionState;
use crate::amqp::codec::{Encode, Str, Symbol};
use crate::amqp::frame;
use crate::amqp::types::definitions::{
    Fields, ReceiverSettleMode, Role as LinkRole, Role, SenderSettleMode,
};
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::messaging::{Source, Target};
use crate::amqp::types::transport::{Attach, Detach};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// We sent attach; waiting for the peer's.
    AttachSent,
    /// The peer attached; waiting for the application to accept or refuse.
    AttachReceived,
    /// Both attaches exchanged.
    Attached,
    /// We sent detach; waiting for the peer's.
    DetachSent,
}

/// How we answer a link the peer attached.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LinkAcceptance {
    /// Our source (as a sender: the node messages come from).
    pub source: Option<Source>,
    /// Our target (as a receiver: the node messages go to).
    pub target: Option<Target>,
    /// Sender settle mode (as a sender this is binding; as a receiver, echo the peer's).
    pub snd_settle_mode: Option<SenderSettleMode>,
    /// Receiver settle mode.
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    /// Largest message we accept (as a receiver) — announced in our attach.
    pub max_message_size: Option<u64>,
    /// Link properties.
    pub properties: Option<Fields>,
    /// Capabilities we offer.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Capabilities we want.
    pub desired_capabilities: Option<Vec<Symbol>>,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl LinkAcceptance {
    /// Sets `source`: our source (as a sender: the node messages come from).
    pub fn with_source(mut self, value: Source) -> Self {
        self.source = Some(value);
        self
    }

    /// Sets `target`: our target (as a receiver: the node messages go to).
    pub fn with_target(mut self, value: Target) -> Self {
        self.target = Some(value);
        self
    }

    /// Sets `snd_settle_mode`: sender settle mode (as a sender this is binding; as a receiver, echo the peer's).
    pub fn with_snd_settle_mode(mut self, value: SenderSettleMode) -> Self {
        self.snd_settle_mode = Some(value);
        self
    }

    /// Sets `rcv_settle_mode`: receiver settle mode.
    pub fn with_rcv_settle_mode(mut self, value: ReceiverSettleMode) -> Self {
        self.rcv_settle_mode = Some(value);
        self
    }

    /// Sets `max_message_size`: largest message we accept (as a receiver) — announced in our attach.
    pub fn with_max_message_size(mut self, value: u64) -> Self {
        self.max_message_size = Some(value);
        self
    }

    /// Sets `properties`: link properties.
    pub fn with_properties(mut self, value: Fields) -> Self {
        self.properties = Some(value);
        self
    }

    /// Sets `offered_capabilities`: capabilities we offer.
    pub fn with_offered_capabilities(mut self, value: Vec<Symbol>) -> Self {
        self.offered_capabilities = Some(value);
        self
    }

    /// Sets `desired_capabilities`: capabilities we want.
    pub fn with_desired_capabilities(mut self, value: Vec<Symbol>) -> Self {
        self.desired_capabilities = Some(value);
        self
    }
}

#[derive(Debug)]
pub(crate) struct Link {
    pub id: LinkId,
    pub channel: u16,
    pub name: Str,
    pub role: Role,
    pub state: LinkState,
    pub local_handle: Option<u32>,
    pub remote_handle: Option<u32>,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    pub credit: Credit,
    /// Largest message the peer accepts (when we send), from its attach.
    pub peer_max_message_size: Option<u64>,
    /// Messages queued to send, the head possibly part-way out.
    pub pending: VecDeque<Outgoing>,
    pub next_token: u64,
    /// The delivery being received.
    pub incoming: Reassembly,
    /// The error we detached with, reported when the peer's detach answers ours.
    pub local_error: Option<AmqpError>,
}

impl Link {
    pub(crate) fn new(id: LinkId, channel: u16, name: Str, role: Role, state: LinkState) -> Self {
        Link {
            id,
            channel,
            name,
            role,
            state,
            local_handle: None,
            remote_handle: None,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            credit: Credit::default(),
            peer_max_message_size: None,
            pending: VecDeque::new(),
            next_token: 0,
            incoming: Reassembly::default(),
            local_error: None,
        }
    }

    /// A link the application attaches on `handle`, and the attach that announces it.
    pub(crate) fn from_config(
        id: LinkId,
        channel: u16,
        handle: u32,
        config: LinkConfig,
    ) -> (Link, Attach) {
        let mut link = Link::new(
            id,
            channel,
            Str::from(config.name.as_str()),
            config.role,
            LinkState::AttachSent,
        );
        link.local_handle = Some(handle);
        link.snd_settle_mode = config.snd_settle_mode;
        link.rcv_settle_mode = config.rcv_settle_mode;
        if let Some(max) = config.max_message_size.filter(|&m| m > 0) {
            link.incoming.max_message_size = max;
        }
        let attach = Attach {
            name: link.name.clone(),
            handle,
            role: config.role,
            snd_settle_mode: config.snd_settle_mode,
            rcv_settle_mode: config.rcv_settle_mode,
            source: config.source.map(Box::new),
            target: config.target.map(Box::new),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (config.role == LinkRole::Sender).then_some(0),
            max_message_size: config.max_message_size,
            offered_capabilities: config.offered_capabilities,
            desired_capabilities: config.desired_capabilities,
            properties: config.properties,
        };
        (link, attach)
    }

    /// A link the peer attached, waiting for the application's answer.
    pub(crate) fn from_peer(id: LinkId, channel: u16, attach: &Attach) -> Link {
        let ours = attach.role.opposite();
        let mut link = Link::new(
            id,
            channel,
            attach.name.clone(),
            ours,
            LinkState::AttachReceived,
        );
        link.remote_handle = Some(attach.handle);
        link.snd_settle_mode = attach.snd_settle_mode;
        link.rcv_settle_mode = attach.rcv_settle_mode;
        link.learn_peer(attach);
        link
    }

    /// True when the peer's `attach` answers ours: same name, opposite role, not yet answered.
    pub(crate) fn is_answered_by(&self, attach: &Attach) -> bool {
        self.state == LinkState::AttachSent
            && self.remote_handle.is_none()
            && self.role == attach.role.opposite()
            && self.name == attach.name
    }

    /// Takes in the peer's answer to our attach.
    pub(crate) fn on_answer(&mut self, attach: &Attach) {
        self.remote_handle = Some(attach.handle);
        self.state = LinkState::Attached;
        self.learn_peer(attach);
        if self.role == LinkRole::Receiver {
            // The sender's attach decides how it settles.
            self.snd_settle_mode = attach.snd_settle_mode;
        } else {
            self.rcv_settle_mode = attach.rcv_settle_mode;
        }
    }

    /// What the peer's attach tells us whatever the order: a receiver starts counting where the
    /// sender does, a sender learns the largest message it may send.
    fn learn_peer(&mut self, attach: &Attach) {
        if self.role == LinkRole::Receiver {
            self.credit.delivery_count = attach.initial_delivery_count.unwrap_or(0);
        } else {
            self.peer_max_message_size = attach.max_message_size.filter(|&m| m > 0);
        }
    }

    /// The attach answering the peer's, on our `handle`, with the application's acceptance.
    pub(crate) fn answer(&self, handle: u32, acceptance: LinkAcceptance) -> Attach {
        Attach {
            name: self.name.clone(),
            handle,
            role: self.role,
            snd_settle_mode: acceptance.snd_settle_mode.unwrap_or(self.snd_settle_mode),
            rcv_settle_mode: acceptance.rcv_settle_mode.unwrap_or(self.rcv_settle_mode),
            source: acceptance.source.map(Box::new),
            target: acceptance.target.map(Box::new),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (self.role == LinkRole::Sender)
                .then_some(self.credit.delivery_count),
            max_message_size: acceptance.max_message_size,
            offered_capabilities: acceptance.offered_capabilities,
            desired_capabilities: acceptance.desired_capabilities,
            properties: acceptance.properties,
        }
    }

    /// The link is attached both ways once our answer (made by [`Self::answer`]) is out.
    pub(crate) fn on_answered(&mut self, answer: &Attach) {
        self.local_handle = Some(answer.handle);
        self.state = LinkState::Attached;
        self.snd_settle_mode = answer.snd_settle_mode;
        self.rcv_settle_mode = answer.rcv_settle_mode;
        if let Some(max) = answer.max_message_size.filter(|&m| m > 0) {
            self.incoming.max_message_size = max;
        }
    }

    /// True when the head of the queue can make progress given credit.
    #[inline]
    pub(crate) fn can_send(&self) -> bool {
        match self.pending.front() {
            Some(o) => o.delivery_id.is_some() || self.credit.link_credit > 0,
            None => false,
        }
    }
}

impl Connection {
    fn new_link_id(&mut self) -> LinkId {
        self.next_link_id += 1;
        LinkId(self.next_link_id)
    }

    /// Attaches a link on a session. [`Event::LinkAttached`] follows the peer's answer.
    pub fn attach(&mut self, session: SessionId, config: LinkConfig) -> Result<LinkId, AmqpError> {
        self.check_usable()?;
        let s = self
            .sessions
            .get(&session.0)
            .filter(|s| s.state != SessionState::EndSent)
            .ok_or_else(|| err(condition::ILLEGAL_STATE, "session is not active"))?;
        let handle = s
            .free_handle()
            .ok_or_else(|| err(condition::RESOURCE_LIMIT_EXCEEDED, "no free link handle"))?;
        let id = self.new_link_id();
        let (link, attach) = Link::from_config(id, session.0, handle, config);
        self.check_fits(&attach)?;
        if let Some(s) = self.sessions.get_mut(&session.0) {
            s.local_handles.insert(handle, id);
        }
        self.links.insert(id, link);
        self.write(session.0, attach.into(), &[]);
        Ok(id)
    }

    pub(super) fn on_attach(&mut self, local: u16, attach: Attach) {
        let Some(s) = self.sessions.get(&local) else {
            return;
        };
        if s.state == SessionState::EndSent {
            return;
        }
        if let Err(e) = s.check_remote_handle(attach.handle) {
            self.fail_session(local, e);
            return;
        }
        let answer_to = s.local_handles.values().copied().find(|id| {
            self.links
                .get(id)
                .is_some_and(|l| l.is_answered_by(&attach))
        });
        let id = match answer_to {
            Some(id) => {
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.on_answer(&attach);
                id
            }
            None => {
                let limits = &self.config.limits;
                if self.links.len() >= limits.max_links {
                    self.limit_exceeded("max_links", limits.max_links);
                    return;
                }
                let waiting = self
                    .links
                    .values()
                    .filter(|l| l.state == LinkState::AttachReceived)
                    .count();
                if waiting >= limits.max_pending_attaches {
                    self.limit_exceeded("max_pending_attaches", limits.max_pending_attaches);
                    return;
                }
                let id = self.new_link_id();
                self.links.insert(id, Link::from_peer(id, local, &attach));
                id
            }
        };
        if let Some(s) = self.sessions.get_mut(&local) {
            s.remote_handles.insert(attach.handle, id);
        }
        self.events.push_back(match answer_to {
            Some(_) => Event::LinkAttached {
                link: id,
                remote: Box::new(attach),
            },
            None => Event::LinkAttachRequested {
                link: id,
                session: SessionId(local),
                attach: Box::new(attach),
            },
        });
    }

    /// Accepts a link the peer attached ([`Event::LinkAttachRequested`]).
    pub fn accept_link(
        &mut self,
        link: LinkId,
        acceptance: LinkAcceptance,
    ) -> Result<(), AmqpError> {
        let l = self
            .links
            .get(&link)
            .filter(|l| l.state == LinkState::AttachReceived)
            .ok_or_else(|| {
                err(
                    condition::ILLEGAL_STATE,
                    "link is not waiting for acceptance",
                )
            })?;
        let channel = l.channel;
        let handle = self
            .sessions
            .get(&channel)
            .and_then(|s| s.free_handle())
            .ok_or_else(|| err(condition::RESOURCE_LIMIT_EXCEEDED, "no free link handle"))?;
        let attach = l.answer(handle, acceptance);
        // Refused before any state changes, so the caller can still refuse the link instead.
        self.check_fits(&attach)?;
        let Some(l) = self.links.get_mut(&link) else {
            return Err(err(condition::ILLEGAL_STATE, "link is gone"));
        };
        l.on_answered(&attach);
        if let Some(s) = self.sessions.get_mut(&channel) {
            s.local_handles.insert(handle, link);
        }
        self.write(channel, attach.into(), &[]);
        Ok(())
    }

    /// Fails when `attach` would not fit in one frame of the peer's max-frame-size: unlike a
    /// transfer, an attach cannot be split, and the peer may not be sent a larger frame.
    fn check_fits(&self, attach: &Attach) -> Result<(), AmqpError> {
        let size = frame::frame_len(attach.encoded_len());
        if size > self.remote_max_frame_size as usize {
            return Err(err(
                condition::FRAME_SIZE_TOO_SMALL,
                format!(
                    "attach of {size} bytes exceeds the peer's max-frame-size {}",
                    self.remote_max_frame_size
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a link the peer attached: answers with a null terminus, then detaches with
    /// `error` (the pattern Event Hubs uses for unknown or unauthorized entities).
    pub fn refuse_link(&mut self, link: LinkId, error: AmqpError) -> Result<(), AmqpError> {
        self.accept_link(link, LinkAcceptance::default())?;
        self.detach(link, true, Some(error));
        Ok(())
    }

    /// Detaches a link (`closed` destroys it). [`Event::LinkDetached`] follows the peer's
    /// answer.
    pub fn detach(&mut self, link: LinkId, closed: bool, error: Option<AmqpError>) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.state == LinkState::DetachSent {
            return;
        }
        let Some(handle) = l.local_handle else {
            // Never attached on our side: nothing to say on the wire.
            self.forget_link(link);
            return;
        };
        l.state = LinkState::DetachSent;
        l.pending.clear();
        l.local_error = error.clone();
        let channel = l.channel;
        // Settle first: a detach that overtakes the link's queued dispositions makes the peer
        // treat those deliveries as unsettled (and redeliver them).
        self.flush_dispositions();
        self.write(
            channel,
            Detach {
                handle,
                closed,
                error,
            }
            .into(),
            &[],
        );
    }

    pub(super) fn on_detach(&mut self, local: u16, detach: Detach) {
        let Some(id) = self.link_by_remote(local, detach.handle) else {
            return;
        };
        let Some(l) = self.links.get(&id) else {
            return;
        };
        let by_peer = l.state != LinkState::DetachSent;
        let error = if by_peer {
            detach.error
        } else {
            detach.error.or_else(|| l.local_error.clone())
        };
        if by_peer {
            if let Some(handle) = l.local_handle {
                let closed = detach.closed;
                let channel = l.channel;
                self.write(
                    channel,
                    Detach {
                        handle,
                        closed,
                        error: None,
                    }
                    .into(),
                    &[],
                );
            }
        }
        self.forget_link(id);
        self.events.push_back(Event::LinkDetached {
            link: id,
            error,
            closed: detach.closed,
            by_peer,
        });
    }

    fn forget_link(&mut self, id: LinkId) {
        let Some(l) = self.links.remove(&id) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&l.channel) {
            s.forget_link(&l);
        }
    }

    /// Looks up a link by the peer's handle; an unknown handle ends the session.
    pub(super) fn link_by_remote(&mut self, local: u16, handle: u32) -> Option<LinkId> {
        let s = self.sessions.get(&local)?;
        if s.state == SessionState::EndSent {
            return None;
        }
        match s.remote_handles.get(&handle) {
            Some(id) => Some(*id),
            None => {
                let e = err(
                    condition::SESSION_UNATTACHED_HANDLE,
                    format!("handle {handle} is not attached"),
                );
                self.fail_session(local, e);
                None
            }
        }
    }

    /// Detaches a link because the peer broke a link rule.
    pub(super) fn fail_link(&mut self, id: LinkId, error: AmqpError) {
        frame_event!(loud self.config.frame_trace, conn = %self.config.container_id, %error, link = id.0, "detaching link on error");
        let unanswered = self
            .links
            .get(&id)
            .is_some_and(|l| l.state == LinkState::AttachReceived);
        if unanswered {
            // The application has not answered the peer's attach yet: refuse the link on its
            // behalf (null terminus, then a closing detach), so the peer hears why and
            // LinkDetached follows its answer. Without a free handle, drop it and say so now.
            if self.refuse_link(id, error.clone()).is_err() {
                self.forget_link(id);
                self.events.push_back(Event::LinkDetached {
                    link: id,
                    error: Some(error),
                    closed: true,
                    by_peer: false,
                });
                return;
            }
        } else {
            self.detach(id, true, Some(error.clone()));
        }
        if let Some(l) = self.links.get_mut(&id) {
            l.incoming.discard();
        }
    }

    /// Our role on a link.
    pub fn link_role(&self, link: LinkId) -> Option<LinkRole> {
        self.links.get(&link).map(|l| l.role)
    }

    /// The receiver settle mode agreed for a link.
    pub fn rcv_settle_mode(&self, link: LinkId) -> Option<ReceiverSettleMode> {
        self.links.get(&link).map(|l| l.rcv_settle_mode)
    }

    /// The peer's max-message-size for a sending link, once attached.
    pub fn peer_max_message_size(&self, link: LinkId) -> Option<u64> {
        self.links.get(&link).and_then(|l| l.peer_max_message_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_attach(name: &str, role: Role, handle: u32) -> Attach {
        Attach {
            name: Str::from(name),
            handle,
            role,
            snd_settle_mode: SenderSettleMode::Mixed,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: None,
            target: None,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        }
    }

    fn config(name: &str, role: Role) -> LinkConfig {
        LinkConfig {
            name: name.into(),
            role,
            ..LinkConfig::default()
        }
    }

    #[test]
    fn our_attach_says_what_the_config_asks() {
        let mut c = config("out", Role::Sender);
        c.snd_settle_mode = SenderSettleMode::Settled;
        c.max_message_size = Some(0);
        let (link, attach) = Link::from_config(LinkId(1), 3, 7, c);
        assert_eq!(link.local_handle, Some(7));
        assert_eq!(link.channel, 3);
        assert_eq!(link.state, LinkState::AttachSent);
        assert_eq!(attach.handle, 7);
        assert_eq!(attach.snd_settle_mode, SenderSettleMode::Settled);
        assert_eq!(
            attach.initial_delivery_count,
            Some(0),
            "a sender starts at 0"
        );
        // A zero max-message-size means "no limit": our reassembly limit stays the default.
        assert_eq!(
            link.incoming.max_message_size,
            Reassembly::default().max_message_size
        );

        let mut c = config("in", Role::Receiver);
        c.max_message_size = Some(1024);
        let (link, attach) = Link::from_config(LinkId(2), 0, 0, c);
        assert_eq!(attach.initial_delivery_count, None);
        assert_eq!(link.incoming.max_message_size, 1024);
    }

    #[test]
    fn only_the_opposite_role_with_our_name_answers() {
        let (link, _) = Link::from_config(LinkId(1), 0, 0, config("a", Role::Sender));
        assert!(link.is_answered_by(&peer_attach("a", Role::Receiver, 4)));
        assert!(!link.is_answered_by(&peer_attach("a", Role::Sender, 4)));
        assert!(!link.is_answered_by(&peer_attach("b", Role::Receiver, 4)));
        let mut link = link;
        link.on_answer(&peer_attach("a", Role::Receiver, 4));
        assert_eq!(link.remote_handle, Some(4));
        assert_eq!(link.state, LinkState::Attached);
        assert!(!link.is_answered_by(&peer_attach("a", Role::Receiver, 5)));
    }

    #[test]
    fn a_receiver_counts_from_the_senders_initial_delivery_count() {
        let (mut link, _) = Link::from_config(LinkId(1), 0, 0, config("r", Role::Receiver));
        let mut answer = peer_attach("r", Role::Sender, 0);
        answer.initial_delivery_count = Some(u32::MAX - 3);
        answer.snd_settle_mode = SenderSettleMode::Settled;
        link.on_answer(&answer);
        assert_eq!(link.credit.delivery_count, u32::MAX - 3);
        assert_eq!(link.snd_settle_mode, SenderSettleMode::Settled);
    }

    #[test]
    fn a_sender_learns_the_receivers_limits() {
        let (mut link, _) = Link::from_config(LinkId(1), 0, 0, config("s", Role::Sender));
        let mut answer = peer_attach("s", Role::Receiver, 0);
        answer.max_message_size = Some(0);
        answer.rcv_settle_mode = ReceiverSettleMode::Second;
        link.on_answer(&answer);
        assert_eq!(link.peer_max_message_size, None, "0 means no limit");
        assert_eq!(link.rcv_settle_mode, ReceiverSettleMode::Second);
        answer.max_message_size = Some(4096);
        link.on_answer(&answer);
        assert_eq!(link.peer_max_message_size, Some(4096));
    }

    #[test]
    fn answering_a_peer_echoes_its_settle_modes_unless_told_otherwise() {
        let mut attach = peer_attach("x", Role::Sender, 9);
        attach.snd_settle_mode = SenderSettleMode::Unsettled;
        attach.rcv_settle_mode = ReceiverSettleMode::Second;
        attach.initial_delivery_count = Some(41);
        let mut link = Link::from_peer(LinkId(5), 2, &attach);
        assert_eq!(link.role, Role::Receiver);
        assert_eq!(link.state, LinkState::AttachReceived);
        assert_eq!(link.remote_handle, Some(9));
        assert_eq!(link.credit.delivery_count, 41);

        let answer = link.answer(
            3,
            LinkAcceptance {
                max_message_size: Some(100),
                ..LinkAcceptance::default()
            },
        );
        assert_eq!(answer.snd_settle_mode, SenderSettleMode::Unsettled);
        assert_eq!(answer.rcv_settle_mode, ReceiverSettleMode::Second);
        assert_eq!(answer.initial_delivery_count, None, "receivers send none");
        link.on_answered(&answer);
        assert_eq!(link.local_handle, Some(3));
        assert_eq!(link.state, LinkState::Attached);
        assert_eq!(link.incoming.max_message_size, 100);

        // As the sender we announce where our delivery count starts.
        let peer = peer_attach("y", Role::Receiver, 0);
        let link = Link::from_peer(LinkId(6), 2, &peer);
        let answer = link.answer(
            0,
            LinkAcceptance {
                snd_settle_mode: Some(SenderSettleMode::Settled),
                ..LinkAcceptance::default()
            },
        );
        assert_eq!(answer.initial_delivery_count, Some(0));
        assert_eq!(answer.snd_settle_mode, SenderSettleMode::Settled);
    }

    #[test]
    fn can_send_needs_credit_only_to_start_a_delivery() {
        let (mut link, _) = Link::from_config(LinkId(1), 0, 0, config("s", Role::Sender));
        assert!(!link.can_send(), "nothing queued");
        link.pending
            .push_back(Outgoing::new(0, 0, false, bytes::Bytes::from_static(b"m")));
        assert!(!link.can_send(), "no credit");
        link.credit.link_credit = 1;
        assert!(link.can_send());
        link.credit.link_credit = 0;
        link.pending[0].delivery_id = Some(0);
        assert!(
            link.can_send(),
            "a started delivery finishes without credit"
        );
    }
}
