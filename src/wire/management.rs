//! The `$management` READ request and its replies: hub and partition metadata as string-keyed
//! maps in an `amqp-value` body.

use super::lenient_text;
use super::rpc::{NAME, OPERATION, TYPE};
use crate::amqp::codec::{Array, ElementType, Str, Timestamp, Value};
use crate::amqp::types::message::Message;

/// The one operation `$management` performs.
pub const READ: &str = "READ";
/// Entity type of a hub READ.
pub const EVENTHUB_TYPE: &str = "com.microsoft:eventhub";
/// Entity type of a partition READ.
pub const PARTITION_TYPE: &str = "com.microsoft:partition";
/// Request application property (partition READ) and reply key: the partition id.
pub const PARTITION: &str = "partition";
/// Request application property: the caller's current token.
pub const SECURITY_TOKEN: &str = "security_token";

/// Reply key (hub): creation time.
pub const CREATED_AT: &str = "created_at";
/// Reply key (hub): number of partitions.
pub const PARTITION_COUNT: &str = "partition_count";
/// Reply key (hub): the partition ids.
pub const PARTITION_IDS: &str = "partition_ids";
/// Reply key (hub): geo-replication factor (1: not replicated).
pub const GEOREPLICATION_FACTOR: &str = "georeplication_factor";
/// Reply key (partition): first retained sequence number.
pub const BEGIN_SEQUENCE_NUMBER: &str = "begin_sequence_number";
/// Reply key (partition): last enqueued sequence number.
pub const LAST_ENQUEUED_SEQUENCE_NUMBER: &str = "last_enqueued_sequence_number";
/// Reply key (partition): last enqueued offset.
pub const LAST_ENQUEUED_OFFSET: &str = "last_enqueued_offset";
/// Reply key (partition): last enqueued time.
pub const LAST_ENQUEUED_TIME_UTC: &str = "last_enqueued_time_utc";
/// Reply key (partition): whether the partition is empty.
pub const IS_PARTITION_EMPTY: &str = "is_partition_empty";
/// Reply key (partition): epoch of the last sequence number (some clients require it).
pub const LAST_ENQUEUED_SEQUENCE_NUMBER_EPOCH: &str = "last_enqueued_sequence_number_epoch";

/// A READ request for a hub or one of its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// The hub name.
    pub name: String,
    /// [`EVENTHUB_TYPE`], [`PARTITION_TYPE`], or what the peer sent (`None`: nothing).
    pub entity_type: Option<String>,
    /// The partition id of a partition READ.
    pub partition: Option<String>,
    /// The caller's current token, when it sends one.
    pub security_token: Option<String>,
}

/// Why a message is not a READ request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotRead {
    /// Another (or no) operation.
    #[error("the $management node only supports operation READ")]
    Operation,
    /// No hub name.
    #[error("management request without a name")]
    NoName,
}

impl ReadRequest {
    /// A READ of hub `name`.
    pub fn hub(name: impl Into<String>) -> ReadRequest {
        ReadRequest {
            name: name.into(),
            entity_type: Some(EVENTHUB_TYPE.to_owned()),
            partition: None,
            security_token: None,
        }
    }

    /// A READ of partition `partition` of hub `name`.
    pub fn partition(name: impl Into<String>, partition: impl Into<String>) -> ReadRequest {
        ReadRequest {
            name: name.into(),
            entity_type: Some(PARTITION_TYPE.to_owned()),
            partition: Some(partition.into()),
            security_token: None,
        }
    }

    /// The same request carrying `token`.
    pub fn with_security_token(mut self, token: impl Into<String>) -> ReadRequest {
        self.security_token = Some(token.into());
        self
    }

    /// The request message (no body; the link adds message id and reply-to).
    pub fn to_message(&self) -> Message {
        let mut m = Message::default();
        let p = m.application_properties_mut();
        p.insert(OPERATION, READ);
        p.insert(NAME, self.name.as_str());
        if let Some(t) = &self.entity_type {
            p.insert(TYPE, t.as_str());
        }
        if let Some(id) = &self.partition {
            p.insert(PARTITION, id.as_str());
        }
        if let Some(t) = &self.security_token {
            p.insert(SECURITY_TOKEN, t.as_str());
        }
        m
    }

    /// Reads a request; text may come as string, symbol or binary (Python sends binary).
    pub fn from_message(m: &Message) -> Result<ReadRequest, NotRead> {
        let text = |k: &str| m.application_property(k).and_then(lenient_text);
        if text(OPERATION).as_deref() != Some(READ) {
            return Err(NotRead::Operation);
        }
        Ok(ReadRequest {
            name: text(NAME).ok_or(NotRead::NoName)?,
            entity_type: text(TYPE),
            partition: text(PARTITION),
            security_token: text(SECURITY_TOKEN),
        })
    }
}

/// Why a reply map could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A required key is missing.
    #[error("reply has no {0:?}")]
    Missing(&'static str),
    /// A key that must hold an integer holds something else.
    #[error("reply: {0:?} is not an integer")]
    NotInteger(&'static str),
    /// A key that must hold a list holds something else.
    #[error("reply: {0} is not a list")]
    NotList(&'static str),
}

/// Text of a reply value: strings and symbols, and integers as decimal text.
fn reply_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.as_str().to_owned()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        v => v.as_i64().map(|n| n.to_string()),
    }
}

/// A time as a timestamp or as integer ms; anything else reads as the epoch.
fn reply_time(v: &Value) -> Timestamp {
    match v {
        Value::Timestamp(t) => *t,
        v => Timestamp(v.as_i64().unwrap_or(0)),
    }
}

fn long(map: &Value, key: &'static str) -> Result<i64, ReplyError> {
    map.map_get(key)
        .ok_or(ReplyError::Missing(key))?
        .as_i64()
        .ok_or(ReplyError::NotInteger(key))
}

fn s(t: &str) -> Value {
    Value::String(Str::from(t))
}

/// An int when it fits, else a long.
fn int(n: i64) -> Value {
    i32::try_from(n).map_or(Value::Long(n), Value::Int)
}

/// The reply to a hub READ. Only the partition ids are required when reading; the rest is
/// `None` when the service left it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubReadReply {
    /// The hub name.
    pub name: Option<String>,
    /// When the hub was created.
    pub created_at: Option<Timestamp>,
    /// Number of partitions.
    pub partition_count: Option<i64>,
    /// The partition ids.
    pub partition_ids: Vec<String>,
    /// Geo-replication factor (1: not replicated).
    pub georeplication_factor: Option<i64>,
}

impl HubReadReply {
    /// The reply map (string keys), with the entity type.
    pub fn to_map(&self) -> Value {
        let mut map = Vec::with_capacity(6);
        if let Some(n) = &self.name {
            map.push((s(NAME), s(n)));
        }
        map.push((s(TYPE), s(EVENTHUB_TYPE)));
        if let Some(t) = self.created_at {
            map.push((s(CREATED_AT), Value::Timestamp(t)));
        }
        if let Some(n) = self.partition_count {
            map.push((s(PARTITION_COUNT), int(n)));
        }
        let ids = self.partition_ids.iter().map(|i| s(i)).collect();
        let ids = Array::new(ElementType::String, ids).unwrap_or_else(|_| Array::symbols([]));
        map.push((s(PARTITION_IDS), Value::Array(ids)));
        if let Some(g) = self.georeplication_factor {
            map.push((s(GEOREPLICATION_FACTOR), int(g)));
        }
        Value::Map(map)
    }

    /// Reads a reply map; the ids may be an array or a list of strings, symbols or integers.
    pub fn from_map(map: &Value) -> Result<HubReadReply, ReplyError> {
        let partition_ids = match map
            .map_get(PARTITION_IDS)
            .ok_or(ReplyError::Missing(PARTITION_IDS))?
        {
            Value::Array(a) => a.items().iter().filter_map(reply_text).collect(),
            Value::List(l) => l.iter().filter_map(reply_text).collect(),
            _ => return Err(ReplyError::NotList(PARTITION_IDS)),
        };
        Ok(HubReadReply {
            name: map.map_get(NAME).and_then(reply_text),
            created_at: map.map_get(CREATED_AT).map(reply_time),
            partition_count: map.map_get(PARTITION_COUNT).and_then(Value::as_i64),
            partition_ids,
            georeplication_factor: map.map_get(GEOREPLICATION_FACTOR).and_then(Value::as_i64),
        })
    }
}

/// The reply to a partition READ. The two sequence numbers are required when reading; the
/// rest is `None` when the service left it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionReadReply {
    /// The hub name.
    pub name: Option<String>,
    /// The partition id.
    pub partition: Option<String>,
    /// First retained sequence number (-1 when empty).
    pub begin_sequence_number: i64,
    /// Last enqueued sequence number (-1 when empty).
    pub last_enqueued_sequence_number: i64,
    /// Offset of the last enqueued event (`-1` when empty).
    pub last_enqueued_offset: Option<String>,
    /// When the last event was enqueued.
    pub last_enqueued_time_utc: Option<Timestamp>,
    /// Whether the partition holds no events.
    pub is_partition_empty: Option<bool>,
    /// Epoch of the last sequence number.
    pub last_enqueued_sequence_number_epoch: Option<i64>,
}

impl PartitionReadReply {
    /// The reply map (string keys), with the entity type.
    pub fn to_map(&self) -> Value {
        let mut map = Vec::with_capacity(9);
        if let Some(n) = &self.name {
            map.push((s(NAME), s(n)));
        }
        if let Some(p) = &self.partition {
            map.push((s(PARTITION), s(p)));
        }
        map.push((s(TYPE), s(PARTITION_TYPE)));
        map.push((
            s(BEGIN_SEQUENCE_NUMBER),
            Value::Long(self.begin_sequence_number),
        ));
        map.push((
            s(LAST_ENQUEUED_SEQUENCE_NUMBER),
            Value::Long(self.last_enqueued_sequence_number),
        ));
        if let Some(o) = &self.last_enqueued_offset {
            map.push((s(LAST_ENQUEUED_OFFSET), s(o)));
        }
        if let Some(t) = self.last_enqueued_time_utc {
            map.push((s(LAST_ENQUEUED_TIME_UTC), Value::Timestamp(t)));
        }
        if let Some(e) = self.is_partition_empty {
            map.push((s(IS_PARTITION_EMPTY), Value::Bool(e)));
        }
        if let Some(e) = self.last_enqueued_sequence_number_epoch {
            map.push((s(LAST_ENQUEUED_SEQUENCE_NUMBER_EPOCH), Value::Long(e)));
        }
        Value::Map(map)
    }

    /// Reads a reply map.
    pub fn from_map(map: &Value) -> Result<PartitionReadReply, ReplyError> {
        let last_enqueued_sequence_number = long(map, LAST_ENQUEUED_SEQUENCE_NUMBER)?;
        Ok(PartitionReadReply {
            name: map.map_get(NAME).and_then(reply_text),
            partition: map.map_get(PARTITION).and_then(reply_text),
            begin_sequence_number: long(map, BEGIN_SEQUENCE_NUMBER)?,
            last_enqueued_sequence_number,
            last_enqueued_offset: map.map_get(LAST_ENQUEUED_OFFSET).and_then(reply_text),
            last_enqueued_time_utc: map.map_get(LAST_ENQUEUED_TIME_UTC).map(reply_time),
            is_partition_empty: match map.map_get(IS_PARTITION_EMPTY) {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
            last_enqueued_sequence_number_epoch: map
                .map_get(LAST_ENQUEUED_SEQUENCE_NUMBER_EPOCH)
                .and_then(Value::as_i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{decode_exact, encode_to_vec};
    use bytes::Bytes;

    fn wire(v: &Value) -> Value {
        decode_exact(Bytes::from(encode_to_vec(v))).unwrap()
    }

    fn wire_message(m: &Message) -> Message {
        Message::decode(Bytes::from(encode_to_vec(m))).unwrap()
    }

    #[test]
    fn read_requests_round_trip() {
        for r in [
            ReadRequest::hub("eh1"),
            ReadRequest::partition("eh1", "3").with_security_token("tok"),
        ] {
            assert_eq!(
                ReadRequest::from_message(&wire_message(&r.to_message())),
                Ok(r)
            );
        }
        let m = ReadRequest::partition("eh1", "0").to_message();
        let keys: Vec<&str> = m
            .application_properties
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, [OPERATION, NAME, TYPE, PARTITION]);
    }

    #[test]
    fn read_requests_python_style_and_wrong_ones() {
        let mut m = Message::default();
        let p = m.application_properties_mut();
        p.insert(OPERATION, Value::Binary(Bytes::from_static(b"READ")));
        p.insert(NAME, "eh1");
        p.insert(
            TYPE,
            Value::Binary(Bytes::from_static(b"com.microsoft:eventhub")),
        );
        assert_eq!(ReadRequest::from_message(&m), Ok(ReadRequest::hub("eh1")));
        m.application_properties_mut().remove(NAME);
        assert_eq!(ReadRequest::from_message(&m), Err(NotRead::NoName));
        m.application_properties_mut().insert(OPERATION, "CREATE");
        assert_eq!(ReadRequest::from_message(&m), Err(NotRead::Operation));
        assert_eq!(
            ReadRequest::from_message(&Message::default()),
            Err(NotRead::Operation)
        );
    }

    #[test]
    fn hub_reply_round_trips() {
        let r = HubReadReply {
            name: Some("eh1".into()),
            created_at: Some(Timestamp(1_700_000_000_000)),
            partition_count: Some(4),
            partition_ids: vec!["0".into(), "1".into(), "2".into(), "3".into()],
            georeplication_factor: Some(1),
        };
        let map = wire(&r.to_map());
        assert_eq!(map.map_get(TYPE), Some(&s(EVENTHUB_TYPE)));
        assert_eq!(map.map_get(PARTITION_COUNT), Some(&Value::Int(4)));
        assert!(matches!(map.map_get(PARTITION_IDS), Some(Value::Array(_))));
        assert_eq!(HubReadReply::from_map(&map), Ok(r));
    }

    #[test]
    fn hub_reply_lenient_forms_and_errors() {
        let map = Value::Map(vec![
            (
                s(PARTITION_IDS),
                Value::List(vec![s("a"), Value::Int(1), Value::Null]),
            ),
            (s(CREATED_AT), Value::Long(5)),
        ]);
        let r = HubReadReply::from_map(&map).unwrap();
        assert_eq!(r.partition_ids, ["a", "1"]);
        assert_eq!(r.created_at, Some(Timestamp(5)));
        assert_eq!(r.name, None);
        assert_eq!(
            HubReadReply::from_map(&Value::Map(vec![])),
            Err(ReplyError::Missing(PARTITION_IDS))
        );
        assert_eq!(
            HubReadReply::from_map(&Value::Map(vec![(s(PARTITION_IDS), s("0"))])),
            Err(ReplyError::NotList(PARTITION_IDS))
        );
    }

    #[test]
    fn partition_reply_round_trips() {
        let r = PartitionReadReply {
            name: Some("eh1".into()),
            partition: Some("2".into()),
            begin_sequence_number: 0,
            last_enqueued_sequence_number: 9,
            last_enqueued_offset: Some("4096".into()),
            last_enqueued_time_utc: Some(Timestamp(1_700_000_000_000)),
            is_partition_empty: Some(false),
            last_enqueued_sequence_number_epoch: Some(0),
        };
        let map = wire(&r.to_map());
        assert_eq!(map.map_get(TYPE), Some(&s(PARTITION_TYPE)));
        assert_eq!(PartitionReadReply::from_map(&map), Ok(r));
    }

    #[test]
    fn partition_reply_requires_integer_sequence_numbers() {
        let both = Value::Map(vec![
            (s(BEGIN_SEQUENCE_NUMBER), s("x")),
            (s(LAST_ENQUEUED_SEQUENCE_NUMBER), Value::Long(-1)),
        ]);
        assert_eq!(
            PartitionReadReply::from_map(&both),
            Err(ReplyError::NotInteger(BEGIN_SEQUENCE_NUMBER))
        );
        assert_eq!(
            PartitionReadReply::from_map(&Value::Map(vec![])),
            Err(ReplyError::Missing(LAST_ENQUEUED_SEQUENCE_NUMBER))
        );
        assert_eq!(
            ReplyError::NotInteger(BEGIN_SEQUENCE_NUMBER).to_string(),
            "reply: \"begin_sequence_number\" is not an integer"
        );
    }
}
