//! One client connection to the emulator: routes the links it attaches to CBS, management,
//! ingest and consumer handlers.

use super::hub::Hub;
use super::selector::parse_selector;
use super::store::{Start, StoredEvent};
use super::Shared;
use crate::amqp::codec::{Encode, Str, Symbol, Timestamp, Value};
use crate::amqp::engine::LinkAcceptance;
use crate::amqp::types::definitions::{ReceiverSettleMode, SenderSettleMode};
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::message::{ApplicationProperties, Body, Message, Properties, PropertyMap};
use crate::amqp::{IncomingLink, ServerConnection};
use crate::amqp::{ReceivedMessage, Receiver, Sender};
use crate::auth::{verify_sas_token, SasVerifyError, SAS_TOKEN_TYPE};
use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Message format of an Event Hubs batch: the body's data sections are whole messages.
pub(crate) const BATCH_FORMAT: u32 = 0x8001_3700;
/// Largest message accepted on a sending link.
pub(crate) const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;
const RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";
const EPOCH: &str = "com.microsoft:epoch";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn err(cond: Symbol, description: impl Into<String>) -> AmqpError {
    AmqpError::with_description(cond, description.into())
}

/// What a link address names.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Cbs,
    Management,
    Hub(String),
    Partition(String, String),
    Consumer(String, String, String),
    Unknown,
}

/// Strips `scheme://host[:port]/` and leading slashes, then classifies the path.
fn parse_address(address: &str) -> Node {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => address,
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["$cbs"] => Node::Cbs,
        ["$management"] | [_, "$management"] => Node::Management,
        [hub] if !hub.is_empty() => Node::Hub((*hub).to_owned()),
        [hub, p, id] if p.eq_ignore_ascii_case("partitions") => {
            Node::Partition((*hub).to_owned(), (*id).to_owned())
        }
        [hub, c, cg, p, id]
            if c.eq_ignore_ascii_case("consumergroups") && p.eq_ignore_ascii_case("partitions") =>
        {
            Node::Consumer((*hub).to_owned(), (*cg).to_owned(), (*id).to_owned())
        }
        _ => Node::Unknown,
    }
}

/// The path a token audience grants: `sb://host/hub/...` → `hub/...` (lower case).
fn audience_path(audience: &str) -> String {
    let path = match audience.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => audience,
    };
    path.trim_matches('/').to_ascii_lowercase()
}

struct Grant {
    path: String,
    expiry: u64,
}

struct ReplyLink {
    node: Node,
    target: Option<String>,
    sender: Arc<Sender>,
}

/// Per-connection state shared by its link tasks.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    grants: Mutex<Vec<Grant>>,
    replies: Mutex<Vec<ReplyLink>>,
    replies_changed: Notify,
}

impl Conn {
    fn authorized(&self, path: &str) -> bool {
        if !self.shared.require_auth {
            return true;
        }
        let path = path.to_ascii_lowercase();
        let now = now_secs();
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|g| {
                g.expiry > now
                    && (g.path.is_empty()
                        || path == g.path
                        || path
                            .strip_prefix(&g.path)
                            .is_some_and(|r| r.starts_with('/')))
            })
    }

    fn grant(&self, path: String, expiry: u64) {
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_secs();
        grants.retain(|g| g.expiry > now && g.path != path);
        grants.push(Grant { path, expiry });
    }

    fn hub(&self, name: &str) -> Option<Arc<Hub>> {
        self.shared.hub(name)
    }
}

/// Serves one connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, mut connection: ServerConnection) {
    let conn = Arc::new(Conn {
        shared,
        grants: Mutex::new(Vec::new()),
        replies: Mutex::new(Vec::new()),
        replies_changed: Notify::new(),
    });
    while let Some(link) = connection.next_link().await {
        let conn = conn.clone();
        tokio::spawn(async move { route(conn, link).await });
    }
}

async fn route(conn: Arc<Conn>, link: IncomingLink) {
    let attach = link.attach();
    let peer_sends = link.peer_is_sender();
    let address = if peer_sends {
        attach.target.as_ref().and_then(|t| t.address.clone())
    } else {
        attach.source.as_ref().and_then(|s| s.address.clone())
    };
    let Some(address) = address else {
        link.refuse(err(condition::INVALID_FIELD, "link has no address"));
        return;
    };
    let node = parse_address(address.as_str());
    match (node, peer_sends) {
        (Node::Cbs, true) => {
            if let Some(rx) = accept_requests(link).await {
                serve_requests(conn, rx, Node::Cbs).await;
            }
        }
        (Node::Management, true) => {
            if let Some(rx) = accept_requests(link).await {
                serve_requests(conn, rx, Node::Management).await;
            }
        }
        (node @ (Node::Cbs | Node::Management), false) => {
            let target = link
                .attach()
                .target
                .as_ref()
                .and_then(|t| t.address.as_ref())
                .map(|a| a.as_str().to_owned());
            let acceptance = LinkAcceptance {
                source: link.attach().source.as_deref().cloned(),
                snd_settle_mode: Some(SenderSettleMode::Settled),
                ..Default::default()
            };
            if let Ok(sender) = link.accept_sender(acceptance, 1000).await {
                conn.replies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(ReplyLink {
                        node,
                        target,
                        sender: Arc::new(sender),
                    });
                conn.replies_changed.notify_waiters();
            }
        }
        (Node::Hub(hub), true) => ingest(conn, link, hub, None).await,
        (Node::Partition(hub, p), true) => ingest(conn, link, hub, Some(p)).await,
        (Node::Consumer(hub, cg, p), false) => consume(conn, link, hub, cg, p).await,
        (_, _) => link.refuse(err(
            condition::NOT_FOUND,
            format!("the emulator has no node {address:?} for this link direction"),
        )),
    }
}

async fn accept_requests(link: IncomingLink) -> Option<Receiver> {
    let acceptance = LinkAcceptance {
        target: link.attach().target.as_deref().cloned(),
        rcv_settle_mode: Some(ReceiverSettleMode::First),
        ..Default::default()
    };
    link.accept_receiver(acceptance, 100).await.ok()
}

/// Text of an application property that may arrive as string, symbol or binary.
fn prop_text(props: &PropertyMap, key: &str) -> Option<String> {
    match props.get(key)? {
        Value::String(s) => Some(s.as_str().to_owned()),
        Value::Symbol(s) => Some(s.as_str().to_owned()),
        Value::Binary(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    }
}

async fn serve_requests(conn: Arc<Conn>, mut rx: Receiver, node: Node) {
    while let Ok(delivery) = rx.recv().await {
        let _ = rx.accept(&delivery);
        let Ok(request) = delivery.message() else {
            continue;
        };
        let props = request
            .application_properties
            .as_ref()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        let (status, description, body) = match node {
            Node::Cbs => put_token(&conn, &props, &request),
            _ => management(&conn, &props),
        };
        let mut reply = Message {
            body,
            ..Default::default()
        };
        let mut app = PropertyMap::new();
        app.insert("status-code", Value::Int(status));
        app.insert("status-description", Value::String(Str::from(description)));
        reply.application_properties = Some(ApplicationProperties(app));
        let request_props = request.properties.clone().unwrap_or_default();
        reply.properties = Some(Properties {
            correlation_id: request_props.message_id.clone(),
            to: request_props.reply_to.clone(),
            ..Default::default()
        });
        let reply_to = request_props.reply_to.map(|r| r.as_str().to_owned());
        if let Some(sender) = reply_link(&conn, &node, reply_to.as_deref()).await {
            let mut buf = BytesMut::with_capacity(reply.encoded_len());
            reply.encode(&mut buf);
            if let Ok(p) = sender.start_send_bytes(buf.freeze(), 0, true).await {
                let _ = p.await;
            }
        }
    }
}

/// The link to answer on: the one whose target is the request's reply-to, else the one the
/// client attached with the node as source on this connection (the Python client sets no
/// reply-to). Waits a little for a client that attaches it after sending.
async fn reply_link(conn: &Conn, node: &Node, reply_to: Option<&str>) -> Option<Arc<Sender>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let notified = conn.replies_changed.notified();
        {
            let replies = conn.replies.lock().unwrap_or_else(|e| e.into_inner());
            let same_node = |r: &&ReplyLink| r.node == *node;
            let by_target = reply_to.and_then(|t| {
                replies
                    .iter()
                    .filter(same_node)
                    .find(|r| r.target.as_deref() == Some(t))
            });
            if let Some(r) = by_target.or_else(|| replies.iter().rev().find(same_node)) {
                return Some(r.sender.clone());
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return None;
        }
    }
}

fn put_token(conn: &Conn, props: &PropertyMap, request: &Message) -> (i32, String, Body) {
    if prop_text(props, "operation").as_deref() != Some("put-token") {
        return (
            400,
            "the $cbs node only supports operation put-token".into(),
            Body::Empty,
        );
    }
    let token_type = prop_text(props, "type").unwrap_or_default();
    if token_type != SAS_TOKEN_TYPE {
        return (
            401,
            format!("token type {token_type:?} is not supported by the emulator; use SAS"),
            Body::Empty,
        );
    }
    let token = match &request.body {
        Body::Value(Value::String(s)) => s.as_str().to_owned(),
        Body::Value(Value::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => {
            return (
                400,
                "put-token body must be the token string".into(),
                Body::Empty,
            )
        }
    };
    let keys = &conn.shared.keys;
    match verify_sas_token(
        &token,
        |name| keys.iter().find(|k| k.name == name).map(|k| k.key.as_str()),
        now_secs(),
    ) {
        Ok(t) => {
            let path = audience_path(&t.audience);
            // A namespace-wide token is fine; one for an entity must name a hub we have.
            let hub = path.split('/').next().unwrap_or_default();
            if !hub.is_empty() && conn.hub(hub).is_none() {
                return (404, format!("no event hub named {hub:?}"), Body::Empty);
            }
            conn.grant(path, t.expiry);
            (200, "OK".into(), Body::Empty)
        }
        // A token that is not a SAS token at all is a bad request; one that is well formed but
        // does not verify (signature, key name, expiry) is unauthorized.
        Err(e @ SasVerifyError::Malformed(_)) => (400, e.to_string(), Body::Empty),
        Err(e) => (401, e.to_string(), Body::Empty),
    }
}

fn management(conn: &Conn, props: &PropertyMap) -> (i32, String, Body) {
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

fn unauthorized(path: &str) -> AmqpError {
    err(
        condition::UNAUTHORIZED_ACCESS,
        format!("no valid token for {path}: put a SAS token to $cbs first"),
    )
}

async fn ingest(conn: Arc<Conn>, link: IncomingLink, hub_name: String, partition: Option<String>) {
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
        Some(p) => format!("{}/Partitions/{p}", hub.config.name),
        None => hub.config.name.clone(),
    };
    if !conn.authorized(&path) {
        link.refuse(unauthorized(&path));
        return;
    }
    let acceptance = LinkAcceptance {
        target: link.attach().target.as_deref().cloned(),
        rcv_settle_mode: Some(ReceiverSettleMode::First),
        max_message_size: Some(MAX_MESSAGE_SIZE),
        ..Default::default()
    };
    let Ok(mut rx) = link.accept_receiver(acceptance, 1000).await else {
        return;
    };
    while let Ok(delivery) = rx.recv().await {
        if !conn.authorized(&path) {
            let _ = rx.close_with_error(unauthorized(&path)).await;
            return;
        }
        if let Some(fault) = conn.shared.next_send_fault() {
            let _ = rx.reject(&delivery, Some(fault));
            continue;
        }
        match store(&hub, fixed, &delivery) {
            Ok(()) => {
                let _ = rx.accept(&delivery);
            }
            Err(e) => {
                let _ = rx.reject(&delivery, Some(e));
            }
        }
    }
}

/// Unpacks a delivery into events and stores them on one partition.
fn store(hub: &Hub, fixed: Option<u32>, delivery: &ReceivedMessage) -> Result<(), AmqpError> {
    let message = delivery
        .message()
        .map_err(|e| err(condition::DECODE_ERROR, e.to_string()))?;
    let key_of = |m: &Message| match m.message_annotation("x-opt-partition-key") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let mut key = key_of(&message);
    let events = if delivery.delivery.message_format == BATCH_FORMAT {
        let Body::Data(sections) = &message.body else {
            return Err(err(
                condition::DECODE_ERROR,
                "batch body must be data sections",
            ));
        };
        let mut events = Vec::with_capacity(sections.len());
        for (i, data) in sections.iter().enumerate() {
            let e = Message::decode(data.clone())
                .map_err(|e| err(condition::DECODE_ERROR, format!("batch event {i}: {e}")))?;
            if key.is_none() {
                key = key_of(&e);
            }
            events.push(e);
        }
        events
    } else {
        vec![message]
    };
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
    log.append(events, key.as_ref())
        .map_err(|e| err(condition::INTERNAL_ERROR, format!("storing events: {e}")))?;
    Ok(())
}

async fn consume(
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
    let path = format!(
        "{}/ConsumerGroups/{group}/Partitions/{index}",
        hub.config.name
    );
    if !conn.authorized(&path) {
        link.refuse(unauthorized(&path));
        return;
    }
    let attach = link.attach();
    let start = match attach
        .source
        .as_ref()
        .and_then(|s| s.selector_filter().map(str::to_owned))
    {
        Some(expr) => match parse_selector(&expr) {
            Ok(s) => s,
            Err(e) => {
                link.refuse(err(condition::ARGUMENT_ERROR, e.to_string()));
                return;
            }
        },
        None => Start::Latest,
    };
    let epoch = attach
        .properties
        .as_ref()
        .and_then(|p| p.iter().find(|(k, _)| k.as_str() == EPOCH))
        .and_then(|(_, v)| v.as_i64());
    let metrics = attach
        .desired_capabilities
        .as_ref()
        .is_some_and(|c| c.iter().any(|s| s.as_str() == RUNTIME_METRIC));
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
        offered_capabilities: metrics.then(|| vec![Symbol::from_static(RUNTIME_METRIC)]),
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
        let mut last = None;
        for e in &events {
            let payload = if metrics {
                with_runtime_metrics(e, &partition.info())
            } else {
                e.message.clone()
            };
            match tx.start_send_bytes(payload, 0, true).await {
                Ok(p) => last = Some(p),
                Err(_) => return,
            }
            next = e.sequence_number + 1;
        }
        // Once the last send is processed the link's published credit accounts for all of
        // them, so the next wait sees the truth.
        if let Some(p) = last {
            if p.await.is_err() {
                return;
            }
        }
    }
}

fn with_runtime_metrics(e: &StoredEvent, info: &super::store::PartitionInfo) -> Bytes {
    let Ok(mut m) = Message::decode(e.message.clone()) else {
        return e.message.clone();
    };
    let a = m.delivery_annotations_mut();
    a.insert(
        "last_enqueued_sequence_number",
        Value::Long(info.last_sequence_number),
    );
    a.insert(
        "last_enqueued_offset",
        Value::String(Str::from(info.last_offset.to_string())),
    );
    a.insert(
        "last_enqueued_time_utc",
        Value::Timestamp(info.last_enqueued_time),
    );
    a.insert(
        "runtime_info_retrieval_time_utc",
        Value::Timestamp(Timestamp::now()),
    );
    let mut buf = BytesMut::with_capacity(m.encoded_len());
    m.encode(&mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_paths_and_urls() {
        assert_eq!(parse_address("$cbs"), Node::Cbs);
        assert_eq!(parse_address("$management"), Node::Management);
        assert_eq!(parse_address("eh1/$management"), Node::Management);
        assert_eq!(parse_address("eh1"), Node::Hub("eh1".into()));
        assert_eq!(
            parse_address("amqps://localhost:5672/eh1/Partitions/0"),
            Node::Partition("eh1".into(), "0".into())
        );
        assert_eq!(
            parse_address("amqps://h/eh1/ConsumerGroups/$Default/Partitions/3"),
            Node::Consumer("eh1".into(), "$Default".into(), "3".into())
        );
        assert_eq!(parse_address("eh1/x"), Node::Unknown);
        assert_eq!(
            audience_path("sb://localhost/eh1/consumergroups/$default"),
            "eh1/consumergroups/$default"
        );
        assert_eq!(audience_path("amqps://h:5671/"), "");
    }
}
