//! The `$management` node: READ requests for hub and partition properties.

use super::requests::prop_text;
use crate::amqp::codec::{Str, Value};
use crate::amqp::types::message::{Body, PropertyMap};
use crate::auth::verify_sas_token;
use crate::emulator::routing::{audience_path, now_secs, Conn};

pub(crate) fn management(conn: &Conn, props: &PropertyMap) -> (i32, String, Body) {
    if prop_text(props, "operation").as_deref() != Some("READ") {
        return (
            400,
            "the $management node only supports operation READ".into(),
            Body::Empty,
        );
    }
    let Some(name) = prop_text(props, "name") else {
        return (400, "management request without a name".into(), Body::Empty);
    };
    let Some(hub) = conn.hub(&name) else {
        return (404, format!("no event hub named {name:?}"), Body::Empty);
    };
    let authorized = match prop_text(props, "security_token") {
        Some(token) if conn.shared.require_auth => {
            let keys = &conn.shared.keys;
            verify_sas_token(
                &token,
                |n| keys.iter().find(|k| k.name == n).map(|k| k.key.as_str()),
                now_secs(),
            )
            .map(|t| {
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
    let s = |t: &str| Value::String(Str::from(t));
    match prop_text(props, "type").as_deref() {
        Some("com.microsoft:eventhub") => {
            let ids: Vec<Value> = (0..hub.config.partition_count)
                .map(|i| s(&i.to_string()))
                .collect();
            let map = vec![
                (s("name"), s(&hub.config.name)),
                (s("type"), s("com.microsoft:eventhub")),
                (s("created_at"), Value::Timestamp(hub.created_at)),
                (
                    s("partition_count"),
                    Value::Int(hub.config.partition_count as i32),
                ),
                (
                    s("partition_ids"),
                    Value::Array(
                        crate::amqp::codec::Array::new(
                            crate::amqp::codec::ElementType::String,
                            ids,
                        )
                        .unwrap_or_else(|_| crate::amqp::codec::Array::symbols([])),
                    ),
                ),
                (s("georeplication_factor"), Value::Int(1)),
            ];
            (200, "OK".into(), Body::Value(Value::Map(map)))
        }
        Some("com.microsoft:partition") => {
            let Some(pid) = prop_text(props, "partition") else {
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
            let map = vec![
                (s("name"), s(&hub.config.name)),
                (s("partition"), s(&pid)),
                (s("type"), s("com.microsoft:partition")),
                (
                    s("begin_sequence_number"),
                    Value::Long(info.begin_sequence_number),
                ),
                (
                    s("last_enqueued_sequence_number"),
                    Value::Long(info.last_sequence_number),
                ),
                (s("last_enqueued_offset"), s(&info.last_offset.to_string())),
                (
                    s("last_enqueued_time_utc"),
                    Value::Timestamp(info.last_enqueued_time),
                ),
                (s("is_partition_empty"), Value::Bool(info.is_empty)),
                (s("last_enqueued_sequence_number_epoch"), Value::Long(0)),
            ];
            (200, "OK".into(), Body::Value(Value::Map(map)))
        }
        other => (
            400,
            format!("unknown management type {other:?}"),
            Body::Empty,
        ),
    }
}
