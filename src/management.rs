//! Runtime metadata through the `$management` node: hub and partition properties.

use crate::amqp::codec::Value;
use crate::amqp::types::message::{Body, Message};
use crate::cbs::{reply_status, status_error};
use crate::client::EventHubClient;
use crate::error::{Error, ErrorKind};
use crate::event::timestamp_to_system_time;
use std::time::SystemTime;

/// Properties of an event hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHubProperties {
    /// The event hub name.
    pub name: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// Its partition ids.
    pub partition_ids: Vec<String>,
    /// Geo-replication factor, when the service reports one (1: not replicated).
    pub georeplication_factor: Option<i64>,
}

/// Properties of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProperties {
    /// The event hub name.
    pub event_hub_name: String,
    /// The partition id.
    pub id: String,
    /// Sequence number of the first event still retained (-1 when empty).
    pub beginning_sequence_number: i64,
    /// Sequence number of the last enqueued event (-1 when empty).
    pub last_enqueued_sequence_number: i64,
    /// Offset of the last enqueued event (opaque; `-1` when empty).
    pub last_enqueued_offset: String,
    /// When the last event was enqueued.
    pub last_enqueued_time_utc: SystemTime,
    /// True when the partition holds no events.
    pub is_empty: bool,
}

fn field<'a>(map: &'a Value, key: &str, what: &str) -> Result<&'a Value, Error> {
    map.map_get(key)
        .ok_or_else(|| Error::new(ErrorKind::EventHub, format!("{what} reply has no {key:?}")))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.as_str().to_owned()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        v => v.as_i64().map(|n| n.to_string()),
    }
}

fn time(v: &Value) -> SystemTime {
    match v {
        Value::Timestamp(t) => timestamp_to_system_time(*t),
        v => timestamp_to_system_time(crate::amqp::codec::Timestamp(v.as_i64().unwrap_or(0))),
    }
}

fn long(map: &Value, key: &str, what: &str) -> Result<i64, Error> {
    field(map, key, what)?.as_i64().ok_or_else(|| {
        Error::new(
            ErrorKind::EventHub,
            format!("{what} reply: {key:?} is not an integer"),
        )
    })
}

impl EventHubClient {
    /// Sends a READ request of `entity_type` (with `partition` for partitions) and returns
    /// the reply body's map.
    async fn management_read(
        &self,
        entity_type: &'static str,
        partition: Option<&str>,
    ) -> Result<Value, Error> {
        let what = match partition {
            Some(p) => format!("reading properties of partition {p}"),
            None => "reading event hub properties".to_owned(),
        };
        self.with_retry(&what, |_| async {
            let conn = self.connection().await?;
            let r = async {
                let token = conn.cbs.authorize(&self.audience(&self.inner.hub)).await?;
                let link = conn.management().await?;
                let mut m = Message::default();
                let p = m.application_properties_mut();
                p.insert("operation", "READ");
                p.insert("name", self.inner.hub.as_str());
                p.insert("type", entity_type);
                if let Some(id) = partition {
                    p.insert("partition", id);
                }
                p.insert("security_token", token);
                link.call(m).await
            }
            .await;
            let reply = match r {
                Ok(reply) => reply,
                Err(e) => {
                    self.connection_failed(&conn).await;
                    return Err(e);
                }
            };
            let (code, desc) = reply_status(&reply);
            if !(200..300).contains(&code) {
                return Err(status_error(&what, code, &desc));
            }
            match reply.body {
                Body::Value(v @ Value::Map(_)) => Ok(v),
                other => Err(Error::new(
                    ErrorKind::EventHub,
                    format!("{what}: reply body is not a map: {other:?}"),
                )),
            }
        })
        .await
    }

    /// The event hub's name, creation time and partition ids.
    pub async fn get_properties(&self) -> Result<EventHubProperties, Error> {
        let what = "event hub READ";
        let map = self.management_read("com.microsoft:eventhub", None).await?;
        let ids = match field(&map, "partition_ids", what)? {
            Value::Array(a) => a.items().iter().filter_map(text).collect(),
            Value::List(l) => l.iter().filter_map(text).collect(),
            _ => {
                return Err(Error::new(
                    ErrorKind::EventHub,
                    "event hub READ reply: partition_ids is not a list",
                ))
            }
        };
        Ok(EventHubProperties {
            name: field(&map, "name", what)
                .ok()
                .and_then(text)
                .unwrap_or_else(|| self.inner.hub.clone()),
            created_at: map
                .map_get("created_at")
                .map_or(std::time::UNIX_EPOCH, time),
            partition_ids: ids,
            georeplication_factor: map.map_get("georeplication_factor").and_then(Value::as_i64),
        })
    }

    /// The event hub's partition ids.
    pub async fn get_partition_ids(&self) -> Result<Vec<String>, Error> {
        Ok(self.get_properties().await?.partition_ids)
    }

    /// A partition's sequence numbers, last offset and enqueued time, and emptiness.
    pub async fn get_partition_properties(
        &self,
        partition_id: &str,
    ) -> Result<PartitionProperties, Error> {
        let what = "partition READ";
        let map = self
            .management_read("com.microsoft:partition", Some(partition_id))
            .await?;
        let last_seq = long(&map, "last_enqueued_sequence_number", what)?;
        Ok(PartitionProperties {
            event_hub_name: map
                .map_get("name")
                .and_then(text)
                .unwrap_or_else(|| self.inner.hub.clone()),
            id: map
                .map_get("partition")
                .and_then(text)
                .unwrap_or_else(|| partition_id.to_owned()),
            beginning_sequence_number: long(&map, "begin_sequence_number", what)?,
            last_enqueued_sequence_number: last_seq,
            last_enqueued_offset: map
                .map_get("last_enqueued_offset")
                .and_then(text)
                .unwrap_or_else(|| "-1".to_owned()),
            last_enqueued_time_utc: map
                .map_get("last_enqueued_time_utc")
                .map_or(std::time::UNIX_EPOCH, time),
            is_empty: match map.map_get("is_partition_empty") {
                Some(Value::Bool(b)) => *b,
                _ => last_seq < 0,
            },
        })
    }
}
