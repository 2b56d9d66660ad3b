//! The ingest node: a hub or partition address that clients send events to. A sender that
//! desires `com.microsoft:idempotent-producer` on a partition gets its producer state in the
//! attach reply, and its deliveries are checked against it; a higher epoch attaching for its
//! producer id detaches it (see [`crate::emulator::store::producers`]).

use crate::amqp::codec::{Decoder, Str};
use crate::amqp::engine::LinkAcceptance;
use crate::amqp::types::definitions::ReceiverSettleMode;
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::message::{Annotations, EventLayout, RawMessage};
use crate::amqp::IncomingLink;
use crate::amqp::ReceivedMessage;
use crate::emulator::hub::Hub;
use crate::emulator::routing::{err, unauthorized, Conn};
use crate::emulator::store::IdempotentError;
use crate::wire::address::partition_path;
use crate::wire::annotations::PARTITION_KEY;
use crate::wire::batch::{self, BATCH_MESSAGE_FORMAT};
use crate::wire::condition::{ARGUMENT_ERROR, PRODUCER_EPOCH_STOLEN};
use crate::wire::idempotent::{
    link_properties, read_link_properties, read_stamp_at, read_stamp_in, PublishingState, Stamp,
};
use crate::wire::link_props::{has_capability, IDEMPOTENT_PRODUCER};
use std::sync::Arc;
use tokio::sync::watch;

/// Largest message accepted on a sending link.
pub(crate) const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

pub(crate) async fn ingest(
    conn: Arc<Conn>,
    link: IncomingLink,
    hub_name: String,
    partition: Option<String>,
) {
    let Some(hub) = conn.hub(&hub_name) else {
        link.refuse(err(
            condition::NOT_FOUND,
            format!("no event hub named {hub_name:?}"),
        ));
        return;
    };
    let fixed = match &partition {
        Some(p) => match p
            .parse::<u32>()
            .ok()
            .filter(|&i| i < hub.config.partition_count)
        {
            Some(i) => Some(i),
            None => {
                link.refuse(err(
                    condition::NOT_FOUND,
                    format!("event hub {hub_name:?} has no partition {p:?}"),
                ));
                return;
            }
        },
        None => None,
    };
    let path = match &partition {
        Some(p) => partition_path(&hub.config.name, p),
        None => hub.config.name.clone(),
    };
    if !conn.authorized(&path) {
        link.refuse(unauthorized(&path));
        return;
    }
    let idempotent = has_capability(
        link.attach().desired_capabilities.as_deref(),
        &IDEMPOTENT_PRODUCER,
    );
    let mut acceptance = LinkAcceptance {
        target: link.attach().target.as_deref().cloned(),
        rcv_settle_mode: Some(ReceiverSettleMode::First),
        max_message_size: Some(MAX_MESSAGE_SIZE),
        ..Default::default()
    };
    // An idempotent link's epoch and the watch of its producer id's current epoch.
    let mut owner = None;
    if idempotent {
        let Some(p) = fixed else {
            link.refuse(err(
                ARGUMENT_ERROR,
                "idempotent publishing needs a partition address ({hub}/Partitions/{id})",
            ));
            return;
        };
        let state = read_link_properties(link.attach().properties.as_ref())
            .map_err(|e| err(condition::INVALID_FIELD, e))
            .and_then(|requested| match hub.partitions.get(p as usize) {
                Some(log) => log.attach_producer(requested),
                None => Err(err(condition::INTERNAL_ERROR, "partition vanished")),
            });
        match state {
            Ok((state, epochs)) => {
                acceptance.offered_capabilities = Some(vec![IDEMPOTENT_PRODUCER]);
                acceptance.properties = Some(link_properties(Some(&state)));
                owner = Some((state, epochs));
            }
            Err(e) => {
                link.refuse(e);
                return;
            }
        }
    }
    let Ok(mut rx) = link.accept_receiver(acceptance, 1000).await else {
        return;
    };
    // Kept across deliveries, so that reading a batch in place allocates nothing.
    let mut scratch = Scratch::default();
    loop {
        let delivery = tokio::select! {
            d = rx.recv() => match d {
                Ok(d) => d,
                Err(_) => return,
            },
            stolen = taken_over(&mut owner) => {
                let _ = rx.close_with_error(stolen).await;
                return;
            }
        };
        if !conn.authorized(&path) {
            let _ = rx.close_with_error(unauthorized(&path)).await;
            return;
        }
        if let Some(fault) = conn.shared.next_send_fault() {
            let _ = rx.reject(&delivery, Some(fault));
            continue;
        }
        let in_place = match (idempotent, delivery.delivery.message_format) {
            (false, BATCH_MESSAGE_FORMAT) => {
                store_in_place(&hub, fixed, delivery.payload(), &mut scratch)
            }
            (true, BATCH_MESSAGE_FORMAT) => {
                store_idempotent_in_place(&hub, fixed, delivery.payload(), &mut scratch)
            }
            _ => None,
        };
        match in_place.unwrap_or_else(|| store(&hub, fixed, idempotent, &delivery)) {
            Ok(()) => {
                let _ = rx.accept(&delivery);
            }
            Err(e) => {
                let _ = rx.reject(&delivery, Some(e));
            }
        }
    }
}

/// Resolves once a higher epoch has taken the producer id of an idempotent link over (never
/// for other links), with the error the link is detached with: the service detaches the
/// older producer at once rather than waiting for its next send (our reading of the service,
/// see [`crate::emulator::store::producers`]).
async fn taken_over(owner: &mut Option<(PublishingState, watch::Receiver<i16>)>) -> AmqpError {
    let Some((state, epochs)) = owner else {
        return std::future::pending().await;
    };
    let mine = state.owner_level;
    let taken = epochs.wait_for(|&epoch| epoch > mine).await.map(|e| *e);
    match taken {
        Ok(epoch) => err(
            PRODUCER_EPOCH_STOLEN,
            format!(
                "producer {} was taken over by epoch {epoch}; this link's epoch {mine} is closed",
                state.producer_id
            ),
        ),
        // The partition (and the emulator with it) is gone; the connection ends on its own.
        Err(_) => std::future::pending().await,
    }
}

/// What a link reads batches in place with, reused from one delivery to the next.
#[derive(Default)]
struct Scratch {
    ranges: Vec<std::ops::Range<usize>>,
    events: Vec<EventLayout>,
    stamps: Vec<Stamp>,
}

/// Reads a batch in place into `scratch.events`: the decoder over it, the envelope's
/// partition key, and the annotation keys an event of it must not hold to be stored so (the
/// service's, the partition key only when the envelope has one).
fn read_batch(
    payload: &bytes::Bytes,
    scratch: &mut Scratch,
) -> Option<(Decoder, Option<Str>, &'static [&'static str])> {
    let mut d = Decoder::new(payload.clone());
    let envelope_key =
        batch::read_in_place(&mut d, &mut scratch.ranges, &mut scratch.events)?.map(Str::from);
    let service_keys: &'static [&'static str] = match envelope_key {
        Some(_) => &SERVICE_KEYS,
        None => &SERVICE_KEYS[..3],
    };
    Some((d, envelope_key, service_keys))
}

/// Stores a batch read in place ([`batch::read_in_place`]): each event written stamped
/// straight from the payload, nothing built or sliced per event. `None` when the batch is not
/// of the usual shape, or an event's own annotations hold a key the service writes: [`store`]
/// then reads it the general way.
fn store_in_place(
    hub: &Hub,
    fixed: Option<u32>,
    payload: &bytes::Bytes,
    scratch: &mut Scratch,
) -> Option<Result<(), AmqpError>> {
    let (mut d, envelope_key, service_keys) = read_batch(payload, scratch)?;
    let mut event_key = None;
    for e in scratch.events.iter().filter(|e| !e.annotations.is_empty()) {
        d.set_window(e.annotations.clone());
        if d.seek_map_key_of(service_keys).is_some() {
            return None;
        }
        if event_key.is_none() && envelope_key.is_none() && fixed.is_none() {
            d.set_window(e.annotations.clone());
            if d.seek_map_key(PARTITION_KEY) {
                let key = d.text_range()?;
                event_key = Some(Str::from(std::str::from_utf8(d.bytes_at(key)).ok()?));
            }
        }
    }
    let partition = match (fixed, envelope_key.as_ref().or(event_key.as_ref())) {
        (Some(p), _) => p,
        (None, Some(k)) => hub.partition_for_key(k.as_str()),
        (None, None) => hub.next_partition(),
    };
    let Some(log) = hub.partitions.get(partition as usize) else {
        return Some(Err(err(condition::INTERNAL_ERROR, "partition vanished")));
    };
    Some(
        log.store_in_place(&scratch.events, payload, envelope_key.as_ref())
            .map_err(|e| err(condition::INTERNAL_ERROR, format!("storing events: {e}"))),
    )
}

/// [`store_in_place`] for an idempotent link (its partition is fixed): each event's stamp is
/// read in place from its own annotations, and the events are checked and stored as
/// [`crate::emulator::store::Partition::append_idempotent`] does. `None` when an event has no
/// stamp of the usual shape or holds a key the service writes: [`store`] then reads the batch
/// the general way and gives the answer (an error naming what is wrong, if anything is).
fn store_idempotent_in_place(
    hub: &Hub,
    fixed: Option<u32>,
    payload: &bytes::Bytes,
    scratch: &mut Scratch,
) -> Option<Result<(), AmqpError>> {
    let partition = fixed?;
    let (mut d, envelope_key, service_keys) = read_batch(payload, scratch)?;
    scratch.stamps.clear();
    for e in &scratch.events {
        if e.annotations.is_empty() {
            return None;
        }
        d.set_window(e.annotations.clone());
        if d.seek_map_key_of(service_keys).is_some() {
            return None;
        }
        scratch
            .stamps
            .push(read_stamp_at(&mut d, e.annotations.clone())?);
    }
    let Some(log) = hub.partitions.get(partition as usize) else {
        return Some(Err(err(condition::INTERNAL_ERROR, "partition vanished")));
    };
    Some(idempotent_outcome(log.append_idempotent_in_place(
        &scratch.events,
        payload,
        &scratch.stamps,
        envelope_key.as_ref(),
    )))
}

/// What an idempotent link answers for a delivery the partition stored (or refused).
fn idempotent_outcome(stored: Result<usize, IdempotentError>) -> Result<(), AmqpError> {
    match stored {
        Ok(_) => Ok(()),
        Err(IdempotentError::Refused(e)) => Err(e),
        Err(IdempotentError::Io(e)) => Err(err(
            condition::INTERNAL_ERROR,
            format!("storing events: {e}"),
        )),
    }
}

/// The annotation keys the service writes on a stored event; the partition key only when
/// the batch has one.
const SERVICE_KEYS: [&str; 4] = [
    crate::wire::annotations::SEQUENCE_NUMBER,
    crate::wire::annotations::OFFSET,
    crate::wire::annotations::ENQUEUED_TIME,
    PARTITION_KEY,
];

/// Unpacks a delivery into events and stores them on one partition; on an idempotent link,
/// under the producer rules of [`crate::emulator::store::producers`]. Events are scanned, not
/// decoded: only their annotations are read and rewritten ([`RawMessage`]).
fn store(
    hub: &Hub,
    fixed: Option<u32>,
    idempotent: bool,
    delivery: &ReceivedMessage,
) -> Result<(), AmqpError> {
    let decode_error = |e: &dyn std::fmt::Display| err(condition::DECODE_ERROR, e.to_string());
    // Read in place: most events carry no key, and their annotations stay unbuilt.
    let key_of = |m: Option<&Annotations>| m.and_then(|a| a.get_str(PARTITION_KEY)).map(Str::from);
    // The envelope's key is stamped on every event; an event's own key (a batch of mixed
    // keys to one partition, as the buffered producer sends) stays its own.
    let (envelope_key, events) = if delivery.delivery.message_format == BATCH_MESSAGE_FORMAT {
        let mut envelope = delivery.message().map_err(|e| decode_error(&e))?;
        let events = batch::split_raw(&mut envelope).map_err(|e| decode_error(&e))?;
        (key_of(envelope.message_annotations.as_deref()), events)
    } else {
        let event = RawMessage::scan(delivery.payload().clone()).map_err(|e| decode_error(&e))?;
        (key_of(event.message_annotations()), vec![event])
    };
    let key = envelope_key
        .clone()
        .or_else(|| events.iter().find_map(|e| key_of(e.message_annotations())));
    if events.is_empty() {
        return Ok(());
    }
    let partition = match (fixed, &key) {
        (Some(p), _) => p,
        (None, Some(k)) => hub.partition_for_key(k.as_str()),
        (None, None) => hub.next_partition(),
    };
    let log = hub
        .partitions
        .get(partition as usize)
        .ok_or_else(|| err(condition::INTERNAL_ERROR, "partition vanished"))?;
    if idempotent {
        let stamps = events
            .iter()
            .map(|m| match read_stamp_in(m.message_annotations()) {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(err(
                    condition::INVALID_FIELD,
                    "an event on an idempotent link carries no producer sequence number",
                )),
                Err(e) => Err(err(condition::INVALID_FIELD, e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        return idempotent_outcome(log.append_idempotent(&events, &stamps, envelope_key.as_ref()));
    }
    log.store(events, envelope_key.as_ref())
        .map_err(|e| err(condition::INTERNAL_ERROR, format!("storing events: {e}")))?;
    Ok(())
}
