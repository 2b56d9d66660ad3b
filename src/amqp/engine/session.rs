//! Session state: channels, transfer windows, handles and unsettled deliveries.

use super::config::SessionConfig;
use super::event::LinkId;
use crate::amqp::types::messaging::DeliveryState;
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
    /// Our unsettled deliveries: delivery id → (link, token).
    pub outgoing_unsettled: HashMap<u32, (LinkId, u64)>,
    /// Deliveries we received and have not settled: delivery id → link.
    pub incoming_unsettled: HashMap<u32, LinkId>,
    /// Sending links with queued messages, in round-robin order.
    pub send_queue: VecDeque<LinkId>,
    pub dispositions: Vec<PendingDisposition>,
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
            outgoing_unsettled: HashMap::new(),
            incoming_unsettled: HashMap::new(),
            send_queue: VecDeque::new(),
            dispositions: Vec::new(),
            end_reported: false,
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

    /// Queues a disposition, merging it into the previous one when the ids are consecutive and
    /// the outcome is the same (so a run of accepts becomes one frame).
    pub(crate) fn queue_disposition(&mut self, d: PendingDisposition) {
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
}
