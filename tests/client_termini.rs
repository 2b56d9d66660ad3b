//! Every attach we send carries both a source and a target: servers that echo the client's
//! termini back (rhea-based ones, see tests/rhea_termini.rs) fail on a null one. The terminus
//! that is not the link's address is named after the link, as the official clients do.
//!
//! Checked on the wire: the low-level options against our listener, and the Event Hubs client's
//! CBS, management, producer and consumer links through a proxy that decodes what the client
//! sends to the emulator.

mod client_common;
mod support;

use bytes::BytesMut;
use eventhubs::amqp::frame::{parse_frame, AmqpFrame, FRAME_TYPE_AMQP};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::transport::{Attach, Performative};
use eventhubs::amqp::{
    ConnectOptions, Connection, Listener, ListenerOptions, ReceiverOptions, SenderOptions,
};
use eventhubs::{EventData, EventHubClientBuilder, EventPosition, ProducerOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn address_of(attach: &Attach, terminus: &str) -> Option<String> {
    let a = match terminus {
        "source" => attach.source.as_ref()?.address.as_ref(),
        _ => attach.target.as_ref()?.address.as_ref(),
    };
    a.map(|s| s.as_str().to_owned())
}

/// Both termini present, with an address each.
fn assert_both_termini(a: &Attach) {
    for t in ["source", "target"] {
        assert!(
            address_of(a, t).is_some_and(|s| !s.is_empty()),
            "attach {:?} ({:?}) has no {t} address: {a:?}",
            a.name,
            a.role
        );
    }
}

#[tokio::test]
async fn low_level_sender_and_receiver_options_name_the_other_terminus_after_the_link() {
    let listener = Listener::bind("127.0.0.1:0", ListenerOptions::default())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut conn = listener.accept().await.unwrap().handshake().await.unwrap();
        let (mut seen, mut rx, mut tx) = (Vec::new(), None, None);
        for _ in 0..2 {
            let link = conn.next_link().await.unwrap();
            seen.push(link.attach().clone());
            if link.peer_is_sender() {
                rx = Some(link.accept_receiver(Default::default(), 10).await.unwrap());
            } else {
                tx = Some(link.accept_sender(Default::default(), 10).await.unwrap());
            }
        }
        (seen, conn, rx, tx)
    });
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", port))
        .await
        .unwrap();
    let session = conn.open_session().await.unwrap();
    let _tx = session
        .attach_sender(SenderOptions::new("q-out"))
        .await
        .unwrap();
    let _rx = session
        .attach_receiver(ReceiverOptions::new("q-in"))
        .await
        .unwrap();
    let (seen, _server_conn, _rx, _tx) = server.await.unwrap();

    let sender = seen.iter().find(|a| a.role == Role::Sender).unwrap();
    assert_both_termini(sender);
    assert_eq!(address_of(sender, "target").as_deref(), Some("q-out"));
    assert_eq!(
        address_of(sender, "source").as_deref(),
        Some(sender.name.as_str())
    );
    let receiver = seen.iter().find(|a| a.role == Role::Receiver).unwrap();
    assert_both_termini(receiver);
    assert_eq!(address_of(receiver, "source").as_deref(), Some("q-in"));
    assert_eq!(
        address_of(receiver, "target").as_deref(),
        Some(receiver.name.as_str())
    );
    conn.close().await.unwrap();
}

/// Decodes the attaches in a client-to-server byte stream (protocol headers skipped).
#[derive(Default)]
struct AttachRecorder {
    buf: BytesMut,
    attaches: Vec<Attach>,
}

impl AttachRecorder {
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            if self.buf.len() >= 8 && self.buf.starts_with(b"AMQP") {
                let _ = self.buf.split_to(8);
                continue;
            }
            let Some(raw) = parse_frame(&mut self.buf, u32::MAX).expect("client frames parse")
            else {
                return;
            };
            if raw.frame_type != FRAME_TYPE_AMQP {
                continue;
            }
            let frame = AmqpFrame::decode(raw).expect("client frames decode");
            if let Some(Performative::Attach(a)) = frame.performative {
                self.attaches.push(a);
            }
        }
    }
}

/// A proxy to `upstream` that records every attach the client sends through it.
async fn recording_proxy(upstream: std::net::SocketAddr) -> (u16, Arc<Mutex<AttachRecorder>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder: Arc<Mutex<AttachRecorder>> = Arc::default();
    let rec = recorder.clone();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let rec = rec.clone();
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
                });
                let mut chunk = vec![0u8; 16 * 1024];
                while let Ok(n) = down_r.read(&mut chunk).await {
                    if n == 0 || up_w.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    rec.lock().unwrap().feed(&chunk[..n]);
                }
            });
        }
    });
    (port, recorder)
}

#[tokio::test]
async fn cbs_management_producer_and_consumer_links_carry_both_termini() {
    let emulator = support::emulator().await;
    let (port, recorder) = recording_proxy(emulator.local_addr()).await;
    let conn_str = emulator.connection_string().replace(
        &format!(":{};", emulator.local_addr().port()),
        &format!(":{port};"),
    );
    let client = EventHubClientBuilder::from_connection_string(&conn_str, Some("eh1"))
        .unwrap()
        .retry(client_common::fast_retry())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    client.get_properties().await.unwrap();
    client.get_partition_properties("1").await.unwrap();
    let to_partition = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    to_partition.send(EventData::new("p")).await.unwrap();
    let to_hub = client
        .create_producer(ProducerOptions::default())
        .await
        .unwrap();
    to_hub.send(EventData::new("h")).await.unwrap();
    let mut consumer = client
        .create_consumer(
            "$Default",
            "1",
            EventPosition::earliest(),
            Default::default(),
        )
        .await
        .unwrap();
    let got = consumer.receive(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    consumer.close().await.unwrap();
    to_partition.close().await.unwrap();
    to_hub.close().await.unwrap();
    client.close().await.unwrap();

    let attaches = std::mem::take(&mut recorder.lock().unwrap().attaches);
    for a in &attaches {
        assert_both_termini(a);
    }
    let find = |role: Role, terminus: &str, address: &str| {
        attaches
            .iter()
            .find(|a| a.role == role && address_of(a, terminus).as_deref() == Some(address))
            .unwrap_or_else(|| {
                panic!("no {role:?} attach with {terminus} {address}: {attaches:#?}")
            })
    };
    // The request/response pairs: our sender's source is its name, the receiver's target the
    // reply-to address.
    for node in ["$cbs", "$management"] {
        let s = find(Role::Sender, "target", node);
        assert_eq!(address_of(s, "source").as_deref(), Some(s.name.as_str()));
        let r = find(Role::Receiver, "source", node);
        assert!(
            address_of(r, "target").is_some_and(|t| t.starts_with(node)),
            "{r:?}"
        );
    }
    for target in ["eh1/Partitions/1", "eh1"] {
        let s = find(Role::Sender, "target", target);
        assert_eq!(address_of(s, "source").as_deref(), Some(s.name.as_str()));
    }
    let r = find(
        Role::Receiver,
        "source",
        "eh1/ConsumerGroups/$Default/Partitions/1",
    );
    assert_eq!(address_of(r, "target").as_deref(), Some(r.name.as_str()));
}
