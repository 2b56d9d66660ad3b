//! Where `$cbs` and `$management` replies go, over real sockets with our low-level client doing
//! what the official Rust SDK (fe2o3-amqp) does: a new session per request with the same link
//! names and the same reply address, detached and ended after each answer. Every request must
//! be answered on the live link; detached links are forgotten; the newest of several matching
//! live links answers. And our own client accepts the service's 202 to put-token.

mod emulator_support;
mod support;

use emulator_support::*;
use eventhubs::amqp::codec::{Str, Timestamp, Value};
use eventhubs::amqp::types::message::{ApplicationProperties, Message, MessageId, PropertyMap};
use eventhubs::amqp::types::messaging::{DeliveryState, Target};
use eventhubs::amqp::{Connection, Receiver, ReceiverOptions, Sender, SenderOptions, Session};
use eventhubs::auth::SAS_TOKEN_TYPE;
use eventhubs::emulator::EmulatorOptions;
use eventhubs::{EventData, EventHubClient, ProducerOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{emulator, emulator_with};

/// The reply address the official Rust SDK gives its CBS client, every time.
const SDK_CBS_REPLY: &str = "rust_amqp_cbs";
const SDK_MGMT_REPLY: &str = "rust_amqp_management";

fn text(s: &str) -> Value {
    Value::String(Str::from(s))
}

fn put_token_request(id: u64, audience: &str, reply_to: &str) -> Message {
    let mut props = PropertyMap::new();
    props.insert("operation", text("put-token"));
    props.insert("type", text(SAS_TOKEN_TYPE));
    props.insert("name", text(audience));
    props.insert(
        "expiration",
        Value::Timestamp(Timestamp(((now_secs() + 3600) * 1000) as i64)),
    );
    let mut m = Message::with_value(text(&token(audience)));
    m.application_properties = Some(ApplicationProperties(props));
    m.properties_mut().message_id = Some(MessageId::Ulong(id));
    m.properties_mut().reply_to = Some(Str::from(reply_to));
    m
}

fn hub_read_request(id: u64, reply_to: &str) -> Message {
    let mut props = PropertyMap::new();
    props.insert("operation", text("READ"));
    props.insert("name", text("eh1"));
    props.insert("type", text("com.microsoft:eventhub"));
    props.insert("security_token", text(&token("sb://localhost/eh1")));
    let mut m = Message {
        application_properties: Some(ApplicationProperties(props)),
        ..Message::default()
    };
    m.properties_mut().message_id = Some(MessageId::Ulong(id));
    m.properties_mut().reply_to = Some(Str::from(reply_to));
    m
}

/// A request/reply link pair with fixed names, as fe2o3's management client attaches it.
async fn sdk_pair(session: &Session, node: &str, reply_to: &str) -> (Sender, Receiver) {
    let mut so = SenderOptions::new(node);
    so.name = Some(format!("{reply_to}-mgmt-sender"));
    let sender = session.attach_sender(so).await.expect("attach sender");
    (
        sender,
        receiver_named(session, node, reply_to, "mgmt-receiver").await,
    )
}

async fn receiver_named(session: &Session, node: &str, target: &str, name: &str) -> Receiver {
    let mut ro = ReceiverOptions::new(node);
    ro.name = Some(format!("{target}-{name}"));
    ro.target = Some(Target::new(target));
    session.attach_receiver(ro).await.expect("attach receiver")
}

/// Sends `request`, checks it is accepted, and returns the reply that arrives on `receiver`.
async fn ask(sender: &Sender, receiver: &mut Receiver, request: &Message) -> Message {
    let outcome = tokio::time::timeout(PROMPT, sender.send(request))
        .await
        .expect("request settled in time")
        .expect("request sent");
    assert!(
        matches!(outcome, Some(DeliveryState::Accepted(_))),
        "{outcome:?}"
    );
    let reply = recv_within(receiver, PROMPT)
        .await
        .expect("the reply arrives on the live link");
    let _ = receiver.accept(&reply);
    reply.message().expect("reply decodes")
}

fn correlation(reply: &Message) -> Option<MessageId> {
    reply
        .properties
        .as_ref()
        .and_then(|p| p.correlation_id.clone())
}

/// One authorization the SDK's way on `conn`: a fresh session and link pair, one request,
/// then detach both links and end the session.
async fn sdk_round(conn: &Connection, node: &str, reply_to: &str, request: &Message) -> Message {
    let session = conn.open_session().await.expect("session");
    let (sender, mut receiver) = sdk_pair(&session, node, reply_to).await;
    let reply = ask(&sender, &mut receiver, request).await;
    sender.close().await.expect("detach sender");
    receiver.close().await.expect("detach receiver");
    session.end().await.expect("end session");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sdk_style_authorizations_in_a_row_are_each_answered_with_202() {
    let em = emulator().await;
    let (conn, _session) = connect(&em).await;
    for i in 0..10 {
        let request = put_token_request(i, "sb://localhost/eh1", SDK_CBS_REPLY);
        let reply = sdk_round(&conn, "$cbs", SDK_CBS_REPLY, &request).await;
        assert_eq!(status(&reply), (202, "Accepted".to_owned()), "round {i}");
        assert_eq!(correlation(&reply), Some(MessageId::Ulong(i)), "round {i}");
    }
    // The grants are real: the connection may now send to the hub.
    let session = conn.open_session().await.expect("session");
    send_event(&attach_sender(&session, "eh1").await, &event(&b"after"[..])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sdk_style_management_reads_in_a_row_are_each_answered() {
    let em = emulator().await;
    let (conn, _session) = connect(&em).await;
    for i in 0..10 {
        let request = hub_read_request(i, SDK_MGMT_REPLY);
        let reply = sdk_round(&conn, "$management", SDK_MGMT_REPLY, &request).await;
        assert_eq!(status(&reply), (200, "OK".to_owned()), "round {i}");
        assert_eq!(correlation(&reply), Some(MessageId::Ulong(i)), "round {i}");
    }
}

/// Links detached without ending their session are forgotten too; a reply then goes to the
/// one live link with the address, and with several live ones to the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_live_link_with_the_reply_address_answers() {
    let em = emulator().await;
    let (_conn, session) = connect(&em).await;
    let quiet = Duration::from_millis(200);
    let sender = attach_sender(&session, "$cbs").await;
    let aud = "sb://localhost/eh1";

    let old = receiver_named(&session, "$cbs", "same-reply", "a").await;
    old.close().await.expect("detach");
    let mut live = receiver_named(&session, "$cbs", "same-reply", "b").await;
    let reply = ask(&sender, &mut live, &put_token_request(1, aud, "same-reply")).await;
    assert_eq!(status(&reply).0, 202);

    let mut newest = receiver_named(&session, "$cbs", "same-reply", "c").await;
    let reply = ask(
        &sender,
        &mut newest,
        &put_token_request(2, aud, "same-reply"),
    )
    .await;
    assert_eq!(correlation(&reply), Some(MessageId::Ulong(2)));
    assert!(recv_within(&mut live, quiet).await.is_none(), "one reply");

    // Once the newest is gone, the older live one answers again.
    newest.close().await.expect("detach");
    let reply = ask(&sender, &mut live, &put_token_request(3, aud, "same-reply")).await;
    assert_eq!(correlation(&reply), Some(MessageId::Ulong(3)));
}

/// The official JS client attaches its `$cbs` receiver with a link name and no target, and
/// puts that name in the request's reply-to: the reply goes to the link with that name (and
/// not to another live link of the node with a different name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_naming_a_link_without_target_is_answered_on_that_link() {
    let em = emulator().await;
    let (_conn, session) = connect(&em).await;
    let sender = attach_sender(&session, "$cbs").await;
    let untargeted = |name: &str| {
        let mut ro = ReceiverOptions::new("$cbs");
        ro.name = Some(name.to_owned());
        ro.target = None;
        ro
    };
    let mut js = session
        .attach_receiver(untargeted("cbs-6b1f"))
        .await
        .expect("attach receiver");
    let mut other = session
        .attach_receiver(untargeted("cbs-other"))
        .await
        .expect("attach receiver");
    let reply = ask(
        &sender,
        &mut js,
        &put_token_request(7, "sb://localhost/eh1", "cbs-6b1f"),
    )
    .await;
    assert_eq!(status(&reply), (202, "Accepted".to_owned()));
    assert_eq!(correlation(&reply), Some(MessageId::Ulong(7)));
    assert!(
        recv_within(&mut other, Duration::from_millis(200))
            .await
            .is_none(),
        "only the named link gets the reply"
    );
}

/// What the emulator logs on this thread (the test runs everything on one thread).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn lines_with(&self, needle: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(needle)).count()
    }
}

/// A reply nobody can receive is dropped and logged once with its address (the node keeps
/// serving); a link that attaches after the request was sent still gets its reply.
#[tokio::test]
async fn replies_wait_briefly_for_their_link_and_are_dropped_without_one() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let em = eventhubs::emulator::Emulator::start(EmulatorOptions::ephemeral())
        .await
        .expect("emulator starts");
    let (_conn, session) = connect(&em).await;
    let sender = attach_sender(&session, "$cbs").await;
    let mut other = receiver_named(&session, "$cbs", "other-reply", "r").await;
    let aud = "sb://localhost/eh1";

    let outcome = sender
        .send(&put_token_request(1, aud, "late-reply"))
        .await
        .expect("sent");
    assert!(matches!(outcome, Some(DeliveryState::Accepted(_))));
    let mut late = receiver_named(&session, "$cbs", "late-reply", "r").await;
    let reply = recv_within(&mut late, PROMPT)
        .await
        .expect("late link answered");
    assert_eq!(
        correlation(&reply.message().unwrap()),
        Some(MessageId::Ulong(1))
    );

    // Nobody has this address: no link gets the reply, not even another live one.
    let outcome = sender
        .send(&put_token_request(2, aud, "nobody-reply"))
        .await
        .expect("sent");
    assert!(matches!(outcome, Some(DeliveryState::Accepted(_))));
    assert!(recv_within(&mut other, Duration::from_millis(300))
        .await
        .is_none());
    assert!(recv_within(&mut late, Duration::from_millis(100))
        .await
        .is_none());
    // After giving up on it (the emulator waits 5 s for a late link), the node answers the
    // next request.
    sender
        .send(&put_token_request(3, aud, "other-reply"))
        .await
        .expect("sent");
    let reply = recv_within(&mut other, PROMPT * 3)
        .await
        .expect("the next request is answered");
    assert_eq!(
        correlation(&reply.message().unwrap()),
        Some(MessageId::Ulong(3))
    );
    assert_eq!(
        log.lines_with("nobody-reply"),
        1,
        "logged once, with the address"
    );
    assert_eq!(
        log.lines_with("reply dropped"),
        1,
        "only that reply was dropped"
    );
}

/// Our own client takes the 202 as success: it authorizes, reads properties and sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_accepts_the_202() {
    let em = emulator_with(EmulatorOptions::ephemeral()).await;
    let client = EventHubClient::from_connection_string(&em.connection_string(), Some("eh1"))
        .expect("client");
    let props = client
        .get_properties()
        .await
        .expect("authorized: properties");
    assert_eq!(props.partition_ids.len(), 4);
    let producer = client
        .create_producer(ProducerOptions::default())
        .await
        .expect("authorized: producer");
    producer
        .send(EventData::from(&b"accepted"[..]))
        .await
        .expect("authorized: send");
    let stored: i64 = (0..4)
        .filter_map(|p| em.partition_info("eh1", p))
        .map(|i| i.last_sequence_number + 1)
        .sum();
    assert_eq!(stored, 1);
}
