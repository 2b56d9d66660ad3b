//! The `$management` node: READ requests for hub and partition properties.

use crate::amqp::types::message::{Body, Message};
use crate::auth::verify_sas_token;
use crate::emulator::routing::{audience_path, now_secs, Conn};
use crate::wire::management::{
    HubReadReply, PartitionReadReply, ReadRequest, EVENTHUB_TYPE, PARTITION_TYPE,
};

pub(crate) fn management(conn: &Conn, request: &Message) -> (i32, String, Body) {
    let request = match ReadRequest::from_message(request) {
        Ok(r) => r,
        Err(e) => return (400, e.to_string(), Body::Empty),
    };
    let name = request.name.as_str();
    let Some(hub) = conn.hub(name) else {
        return (404, format!("no event hub named {name:?}"), Body::Empty);
    };
    let authorized = match &request.security_token {
        Some(token) if conn.shared.require_auth => {
            let keys = &conn.shared.keys;
            verify_sas_token(
                token,
                |n| keys.iter().find(|k| k.name == n).map(|k| k.key.as_str()),
                now_secs(),
            )
            .map(|t| {
                if !conn.serves_audience(&t.audience) {
                    return false;
                }
                let p = audience_path(&t.audience);
                let hub_path = hub.config.name.to_ascii_lowercase();
                p.is_empty()
                    || hub_path == p
                    || hub_path.starts_with(&format!("{p}/"))
                    || p.starts_with(&format!("{hub_path}/"))
            })
            .unwrap_or(false)
        }
        _ => conn.authorized(&hub.config.name),
    };
    if !authorized {
        return (
            401,
            format!("not authorized for event hub {name:?}"),
            Body::Empty,
        );
    }
    match request.entity_type.as_deref() {
        Some(EVENTHUB_TYPE) => {
            let reply = HubReadReply {
                name: Some(hub.config.name.clone()),
                created_at: Some(hub.created_at),
                partition_count: Some(hub.config.partition_count.into()),
                partition_ids: (0..hub.config.partition_count)
                    .map(|i| i.to_string())
                    .collect(),
                georeplication_factor: Some(1),
            };
            (200, "OK".into(), Body::Value(reply.to_map()))
        }
        Some(PARTITION_TYPE) => {
            let Some(pid) = request.partition else {
                return (
                    400,
                    "partition READ without a partition".into(),
                    Body::Empty,
                );
            };
            let Some(partition) = pid
                .parse::<usize>()
                .ok()
                .and_then(|i| hub.partitions.get(i))
            else {
                return (
                    404,
                    format!("event hub {name:?} has no partition {pid:?}"),
                    Body::Empty,
                );
            };
            let info = partition.info();
            let reply = PartitionReadReply {
                name: Some(hub.config.name.clone()),
                partition: Some(pid),
                begin_sequence_number: info.begin_sequence_number,
                last_enqueued_sequence_number: info.last_sequence_number,
                last_enqueued_offset: Some(info.last_offset.to_string()),
                last_enqueued_time_utc: Some(info.last_enqueued_time),
                is_partition_empty: Some(info.is_empty),
                last_enqueued_sequence_number_epoch: Some(0),
            };
            (200, "OK".into(), Body::Value(reply.to_map()))
        }
        other => (
            400,
            format!("unknown management type {other:?}"),
            Body::Empty,
        ),
    }
}
