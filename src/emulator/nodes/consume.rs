//! The consume node: a consumer group's partition that clients receive events from, with
//! selector filters, owner levels (epochs) and runtime metrics.

use crate::amqp::codec::Timestamp;
use crate::amqp::engine::LinkAcceptance;
use crate::amqp::types::definitions::SenderSettleMode;
use crate::amqp::types::error::condition;
use crate::amqp::types::message::Message;
use crate::amqp::IncomingLink;
use crate::emulator::routing::{err, unauthorized, Conn};
use crate::emulator::selector::parse_selector;
use crate::emulator::store::{PartitionInfo, Start, StoredEvent};
use crate::wire::address::consumer_path;
use crate::wire::annotations::RuntimeMetrics;
use crate::wire::condition as eventhubs_condition;
use crate::wire::link_props::{has_capability, read_owner_level, ENABLE_RECEIVER_RUNTIME_METRIC};
use crate::wire::selector::filter_expression;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn consume(
    conn: Arc<Conn>,
    link: IncomingLink,
    hub_name: String,
    group: String,
    pid: String,
) {
    let Some(hub) = conn.hub(&hub_name) else {
        link.refuse(err(
            condition::NOT_FOUND,
            format!("no event hub named {hub_name:?}"),
        ));
        return;
    };
    let Some(group) = hub.consumer_group(&group).map(str::to_owned) else {
        link.refuse(err(
            condition::NOT_FOUND,
            format!("event hub {hub_name:?} has no consumer group {group:?}"),
        ));
        return;
    };
    let Some((index, partition)) = pid
        .parse::<u32>()
        .ok()
        .and_then(|i| hub.partitions.get(i as usize).map(|p| (i, p.clone())))
    else {
        link.refuse(err(
            condition::NOT_FOUND,
            format!("event hub {hub_name:?} has no partition {pid:?}"),
        ));
        return;
    };
    let path = consumer_path(&hub.config.name, &group, &index.to_string());
    if !conn.authorized(&path) {
        link.refuse(unauthorized(&path));
        return;
    }
    let attach = link.attach();
    let start = match attach.source.as_ref().and_then(|s| filter_expression(s)) {
        Some(expr) => match parse_selector(expr) {
            Ok(s) => s,
            Err(e) => {
                link.refuse(err(eventhubs_condition::ARGUMENT_ERROR, e.to_string()));
                return;
            }
        },
        None => Start::Latest,
    };
    let epoch = read_owner_level(attach.properties.as_ref());
    let metrics = has_capability(
        attach.desired_capabilities.as_deref(),
        &ENABLE_RECEIVER_RUNTIME_METRIC,
    );
    let (_guard, mut kicked) = match hub.register_reader(&group, index, epoch) {
        Ok(r) => r,
        Err(e) => {
            link.refuse(e);
            return;
        }
    };
    let acceptance = LinkAcceptance {
        source: attach.source.as_deref().cloned(),
        snd_settle_mode: Some(SenderSettleMode::Settled),
        offered_capabilities: metrics.then(|| vec![ENABLE_RECEIVER_RUNTIME_METRIC]),
        properties: attach.properties.clone(),
        ..Default::default()
    };
    let Ok(mut tx) = link.accept_sender(acceptance, 1).await else {
        return;
    };
    let mut next = partition.resolve(start);
    let mut tail = partition.subscribe();
    loop {
        if !conn.authorized(&path) {
            let _ = tx.close_with_error(unauthorized(&path)).await;
            return;
        }
        let credit = tokio::select! {
            c = tx.wait_for_credit() => match c {
                Ok(c) => c,
                Err(_) => return,
            },
            e = &mut kicked => {
                if let Ok(e) = e {
                    let _ = tx.close_with_error(e).await;
                }
                return;
            }
        };
        let events = partition.read(next, credit.min(256) as usize);
        if events.is_empty() {
            tokio::select! {
                _ = tail.changed() => {}
                _ = tx.detached() => return,
                e = &mut kicked => {
                    if let Ok(e) = e {
                        let _ = tx.close_with_error(e).await;
                    }
                    return;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let info = metrics.then(|| partition.info());
        let payloads = events
            .iter()
            .map(|e| match &info {
                Some(info) => with_runtime_metrics(e, info),
                None => e.message.clone(),
            })
            .collect();
        if let Some(e) = events.last() {
            next = e.sequence_number + 1;
        }
        // One request for the whole read; once it is processed the link's published credit
        // accounts for all of them, so the next wait sees the truth.
        match tx.send_settled_batch(payloads, 0).await {
            Ok(p) => {
                if p.await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn with_runtime_metrics(e: &StoredEvent, info: &PartitionInfo) -> Bytes {
    let Ok(mut m) = Message::decode(e.message.clone()) else {
        return e.message.clone();
    };
    RuntimeMetrics {
        last_enqueued_sequence_number: Some(info.last_sequence_number),
        last_enqueued_offset: Some(info.last_offset.to_string()),
        last_enqueued_time: Some(info.last_enqueued_time),
        retrieval_time: Some(Timestamp::now()),
    }
    .write_to(m.delivery_annotations_mut());
    m.to_bytes()
}
