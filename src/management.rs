//! Runtime metadata through the `$management` node: hub and partition properties.

use crate::amqp::codec::{Timestamp, Value};
use crate::amqp::types::message::Body;
use crate::cbs::status_error;
use crate::client::EventHubClient;
use crate::error::{Error, ErrorKind};
use crate::event::timestamp_to_system_time;
use crate::wire::management::{HubReadReply, PartitionReadReply, ReadRequest, ReplyError};
use crate::wire::rpc::Status;
use crate::wire::selector::EARLIEST_OFFSET;
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

fn time(t: Option<Timestamp>) -> SystemTime {
    t.map_or(std::time::UNIX_EPOCH, timestamp_to_system_time)
}

/// A reply map that does not say what it must, as an error naming the request.
fn reply_error(what: &str, e: ReplyError) -> Error {
    Error::new(ErrorKind::EventHub, format!("{what} {e}"))
}

impl EventHubClient {
    /// Sends a READ request for the hub, or for `partition` of it, and returns the reply
    /// body's map.
    async fn management_read(&self, partition: Option<&str>) -> Result<Value, Error> {
        let what = match partition {
            Some(p) => format!("reading properties of partition {p}"),
            None => "reading event hub properties".to_owned(),
        };
        self.with_retry(&what, |_| async {
            let conn = self.connection().await?;
            let r = async {
                let token = conn.cbs.authorize(&self.audience(&self.inner.hub)).await?;
                let link = conn.management().await?;
                let request = match partition {
                    Some(id) => ReadRequest::partition(self.inner.hub.as_str(), id),
                    None => ReadRequest::hub(self.inner.hub.as_str()),
                };
                link.call(request.with_security_token(token).to_message())
                    .await
            }
            .await;
            let reply = match r {
                Ok(reply) => reply,
                Err(e) => {
                    self.connection_failed(&conn).await;
                    return Err(e);
                }
            };
            let status = Status::from_message(&reply);
            if !status.is_success() {
                return Err(status_error(&what, &status));
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
        let map = self.management_read(None).await?;
        let r = HubReadReply::from_map(&map).map_err(|e| reply_error("event hub READ", e))?;
        Ok(EventHubProperties {
            name: r.name.unwrap_or_else(|| self.inner.hub.clone()),
            created_at: time(r.created_at),
            partition_ids: r.partition_ids,
            georeplication_factor: r.georeplication_factor,
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
        let map = self.management_read(Some(partition_id)).await?;
        let r = PartitionReadReply::from_map(&map).map_err(|e| reply_error("partition READ", e))?;
        Ok(PartitionProperties {
            event_hub_name: r.name.unwrap_or_else(|| self.inner.hub.clone()),
            id: r.partition.unwrap_or_else(|| partition_id.to_owned()),
            beginning_sequence_number: r.begin_sequence_number,
            last_enqueued_sequence_number: r.last_enqueued_sequence_number,
            last_enqueued_offset: r
                .last_enqueued_offset
                .unwrap_or_else(|| EARLIEST_OFFSET.to_owned()),
            last_enqueued_time_utc: time(r.last_enqueued_time_utc),
            is_empty: r
                .is_partition_empty
                .unwrap_or(r.last_enqueued_sequence_number < 0),
        })
    }
}
