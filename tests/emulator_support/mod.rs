//! Helpers for the emulator integration tests (which start one with `support::emulator`):
//! connect our low-level AMQP client to it, run CBS / `$management` request-response
//! exchanges, build batches, and read the service annotations off received events. Everything
//! goes over real loopback sockets.
#![allow(dead_code)]

pub mod raw;

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::codec::{Encode, Str, Symbol, Timestamp, Value};
use eventhubs::amqp::types::definitions::Fields;
use eventhubs::amqp::types::message::{ApplicationProperties, Message, MessageId, PropertyMap};
use eventhubs::amqp::types::messaging::{DeliveryState, Source, Target};
use eventhubs::amqp::{
    ConnectOptions, Connection, ReceivedMessage, Receiver, ReceiverOptions, Sender, SenderOptions,
    Session,
};
use eventhubs::auth::{generate_sas_token, SAS_TOKEN_TYPE};
use eventhubs::emulator::Emulator;
use eventhubs::wire::{batch as wire_batch, selector};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The emulator's default key name and key.
pub const KEY_NAME: &str = "RootManageSharedAccessKey";
pub const KEY: &str = "SAS_KEY_VALUE";
/// Event Hubs batch message format.
pub const BATCH_FORMAT: u32 = wire_batch::BATCH_MESSAGE_FORMAT;
/// How long a test waits for something that should happen promptly.
pub const PROMPT: Duration = Duration::from_secs(5);

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A SAS token for `audience` with the default key, valid for an hour.
pub fn token(audience: &str) -> String {
    generate_sas_token(audience, KEY_NAME, KEY, now_secs() + 3600)
}

/// A plain connection (SASL ANONYMOUS) and one session.
pub async fn connect(em: &Emulator) -> (Connection, Session) {
    connect_port(em.local_addr().port()).await
}

pub async fn connect_port(port: u16) -> (Connection, Session) {
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", port).sasl_anonymous())
        .await
        .expect("connect");
    let session = conn.open_session().await.expect("session");
    (conn, session)
}

/// A connection that has put a namespace-wide token (audience `sb://localhost/`).
pub async fn authorized(em: &Emulator) -> (Connection, Session) {
    authorized_port(em.local_addr().port()).await
}

pub async fn authorized_port(port: u16) -> (Connection, Session) {
    let (conn, session) = connect_port(port).await;
    let mut cbs = Rpc::attach(&session, "$cbs", Some("cbs-reply")).await;
    let (status, description) = cbs.put_token("sb://localhost/").await;
    assert_eq!(status, 202, "put-token: {description}");
    (conn, session)
}

/// A request-response link pair (`$cbs` or `$management`), like the SDKs attach.
pub struct Rpc {
    pub sender: Sender,
    pub receiver: Receiver,
    next_id: u64,
}

impl Rpc {
    /// Attaches a sender with target `node` and a receiver with source `node`; the receiver's
    /// target is `reply_to` (when given), the address requests may name as their reply-to.
    pub async fn attach(session: &Session, node: &str, reply_to: Option<&str>) -> Rpc {
        let sender = session
            .attach_sender(SenderOptions::new(node))
            .await
            .expect("attach request sender");
        let receiver = reply_receiver(session, node, reply_to).await;
        Rpc {
            sender,
            receiver,
            next_id: 1,
        }
    }

    /// Sends `request` as is and waits for the reply on our receiver.
    pub async fn exchange(&mut self, request: &Message) -> Message {
        let outcome = tokio::time::timeout(PROMPT, self.sender.send(request))
            .await
            .expect("request settled in time")
            .expect("request sent");
        assert!(
            matches!(outcome, Some(DeliveryState::Accepted(_))),
            "request outcome {outcome:?}"
        );
        let reply = recv_within(&mut self.receiver, PROMPT)
            .await
            .expect("a reply arrives");
        let _ = self.receiver.accept(&reply);
        reply.message().expect("reply decodes")
    }

    /// A request with a fresh string message-id and the given application properties and
    /// body; checks that the reply correlates.
    pub async fn request(&mut self, props: PropertyMap, body: Option<Value>) -> Message {
        let id = MessageId::String(Str::from(format!("req-{}", self.next_id)));
        self.next_id += 1;
        let mut m = match body {
            Some(v) => Message::with_value(v),
            None => Message::default(),
        };
        m.properties_mut().message_id = Some(id.clone());
        m.application_properties = Some(ApplicationProperties(props));
        let reply = self.exchange(&m).await;
        assert_eq!(
            reply
                .properties
                .as_ref()
                .and_then(|p| p.correlation_id.clone()),
            Some(id),
            "correlation-id echoes the message-id"
        );
        reply
    }

    /// A put-token request with a token for `audience`; returns status and description.
    pub async fn put_token(&mut self, audience: &str) -> (i32, String) {
        let t = token(audience);
        self.put_raw_token(audience, Value::String(Str::from(t)))
            .await
    }

    /// A put-token request with whatever body value.
    pub async fn put_raw_token(&mut self, audience: &str, body: Value) -> (i32, String) {
        let mut props = PropertyMap::new();
        props.insert("operation", Value::String(Str::from("put-token")));
        props.insert("type", Value::String(Str::from(SAS_TOKEN_TYPE)));
        props.insert("name", Value::String(Str::from(audience)));
        props.insert(
            "expiration",
            Value::Timestamp(Timestamp(((now_secs() + 3600) * 1000) as i64)),
        );
        let reply = self.request(props, Some(body)).await;
        status(&reply)
    }

    /// A management READ.
    pub async fn read(&mut self, hub: &str, kind: &str, partition: Option<&str>) -> Message {
        let mut props = PropertyMap::new();
        props.insert("operation", Value::String(Str::from("READ")));
        props.insert("name", Value::String(Str::from(hub)));
        props.insert("type", Value::String(Str::from(kind)));
        if let Some(p) = partition {
            props.insert("partition", Value::String(Str::from(p)));
        }
        self.request(props, None).await
    }
}

pub async fn reply_receiver(session: &Session, node: &str, reply_to: Option<&str>) -> Receiver {
    let mut options = ReceiverOptions::new(node);
    options.target = reply_to.map(Target::new);
    session
        .attach_receiver(options)
        .await
        .expect("attach reply receiver")
}

/// `status-code` (must be an int) and `status-description` of a reply.
pub fn status(reply: &Message) -> (i32, String) {
    let code = match reply.application_property("status-code") {
        Some(Value::Int(c)) => *c,
        other => panic!("status-code must be an AMQP int, got {other:?}"),
    };
    let description = match reply.application_property("status-description") {
        Some(Value::String(s)) => s.as_str().to_owned(),
        other => panic!("status-description must be a string, got {other:?}"),
    };
    (code, description)
}

/// The next message, or `None` when none arrives within `d`; panics when the link fails.
pub async fn recv_within(rx: &mut Receiver, d: Duration) -> Option<ReceivedMessage> {
    match tokio::time::timeout(d, rx.recv()).await {
        Ok(r) => Some(r.expect("receiver still attached")),
        Err(_) => None,
    }
}

/// `n` messages, each within [`PROMPT`].
pub async fn recv_n(rx: &mut Receiver, n: usize) -> Vec<Message> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let m = recv_within(rx, PROMPT)
            .await
            .unwrap_or_else(|| panic!("event {i} of {n} did not arrive"));
        out.push(m.message().expect("event decodes"));
    }
    out
}

/// Receiver options for a consumer address with an optional selector expression.
pub fn consumer(address: &str, selector: Option<&str>) -> ReceiverOptions {
    let mut source = Source::new(address);
    if let Some(s) = selector {
        source = selector::with_filter(source, s);
    }
    let mut o = ReceiverOptions::new(address);
    o.source = source;
    o
}

/// The same with an owner level.
pub fn with_epoch(mut o: ReceiverOptions, epoch: i64) -> ReceiverOptions {
    let props: Fields = vec![(Symbol::from("com.microsoft:epoch"), Value::Long(epoch))];
    o.properties = Some(props);
    o
}

pub async fn open_consumer(session: &Session, address: &str, selector: Option<&str>) -> Receiver {
    session
        .attach_receiver(consumer(address, selector))
        .await
        .unwrap_or_else(|e| panic!("attach consumer {address}: {e}"))
}

pub const EARLIEST: &str = "amqp.annotation.x-opt-offset > '-1'";

/// An event with a data body.
pub fn event(body: impl Into<Bytes>) -> Message {
    Message::with_data(body.into())
}

pub fn encode(m: &Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(m.encoded_len());
    m.encode(&mut buf);
    buf.freeze()
}

/// An Event Hubs batch payload: `envelope` (no body) followed by one data section per event,
/// each holding the fully encoded event.
pub fn batch(envelope: &Message, events: &[Message]) -> Bytes {
    let encoded: Vec<Bytes> = events.iter().map(encode).collect();
    let size = envelope.encoded_len()
        + encoded
            .iter()
            .map(|e| wire_batch::data_section_len(e.len()))
            .sum::<usize>();
    let payload = wire_batch::build(envelope, &encoded);
    assert_eq!(payload.len(), size);
    payload
}

/// Sends `payload` unsettled and asserts it was accepted.
pub async fn send_accepted(sender: &Sender, payload: Bytes, format: u32) {
    let outcome = tokio::time::timeout(PROMPT, async {
        sender
            .start_send_bytes(payload, format, false)
            .await
            .expect("send queued")
            .await
            .expect("send settled")
    })
    .await
    .expect("send settled in time");
    assert!(
        matches!(outcome, Some(DeliveryState::Accepted(_))),
        "outcome {outcome:?}"
    );
}

pub async fn send_event(sender: &Sender, m: &Message) {
    send_accepted(sender, encode(m), 0).await;
}

pub async fn attach_sender(session: &Session, address: &str) -> Sender {
    session
        .attach_sender(SenderOptions::new(address))
        .await
        .unwrap_or_else(|e| panic!("attach sender {address}: {e}"))
}

pub fn seq(m: &Message) -> i64 {
    match m.message_annotation("x-opt-sequence-number") {
        Some(Value::Long(n)) => *n,
        other => panic!("x-opt-sequence-number must be a long, got {other:?}"),
    }
}

pub fn offset(m: &Message) -> i64 {
    match m.message_annotation("x-opt-offset") {
        Some(Value::String(s)) => s.as_str().parse().expect("offset is decimal text"),
        other => panic!("x-opt-offset must be a string, got {other:?}"),
    }
}

pub fn enqueued(m: &Message) -> i64 {
    match m.message_annotation("x-opt-enqueued-time") {
        Some(Value::Timestamp(t)) => t.0,
        other => panic!("x-opt-enqueued-time must be a timestamp, got {other:?}"),
    }
}

pub fn partition_key(m: &Message) -> Option<String> {
    match m.message_annotation("x-opt-partition-key") {
        Some(Value::String(s)) => Some(s.as_str().to_owned()),
        None => None,
        other => panic!("x-opt-partition-key must be a string, got {other:?}"),
    }
}

pub fn body(m: &Message) -> Bytes {
    m.body.single_data().cloned().expect("one data section")
}

/// The condition of a failed attach (or a link's end).
pub fn condition(e: &eventhubs::amqp::Error) -> String {
    e.condition()
        .unwrap_or_else(|| panic!("error without an AMQP condition: {e:?}"))
        .to_owned()
}

/// Attaching `options` fails; returns the condition.
pub async fn refused_receiver(session: &Session, options: ReceiverOptions) -> String {
    let address = options.source.address.clone();
    match tokio::time::timeout(PROMPT, session.attach_receiver(options)).await {
        Ok(Ok(mut rx)) => {
            // Attach-then-detach: the refusal arrives as the link's end.
            match tokio::time::timeout(PROMPT, rx.recv()).await {
                Ok(Err(e)) => condition(&e),
                other => panic!("receiver {address:?} was not refused: {other:?}"),
            }
        }
        Ok(Err(e)) => condition(&e),
        Err(_) => panic!("attach of {address:?} hung"),
    }
}

pub async fn refused_sender(session: &Session, address: &str) -> String {
    match tokio::time::timeout(PROMPT, session.attach_sender(SenderOptions::new(address))).await {
        Ok(Ok(sender)) => {
            let e = tokio::time::timeout(PROMPT, sender.detached())
                .await
                .unwrap_or_else(|_| panic!("sender {address:?} was not refused"));
            condition(&e)
        }
        Ok(Err(e)) => condition(&e),
        Err(_) => panic!("attach of {address:?} hung"),
    }
}
