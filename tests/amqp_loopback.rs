//! Our client against our listener over real loopback sockets.

use bytes::Bytes;
use eventhubs::amqp::engine::LinkAcceptance;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::messaging::{Source, Target};
use eventhubs::amqp::{
    ConnectOptions, Connection, Listener, ListenerOptions, ReceiverOptions, SenderOptions,
};

/// A tiny broker: every message sent to any address is echoed to the receiver attached on the
/// same connection (one receiver per connection, for the test).
async fn start_echo_server() -> std::net::SocketAddr {
    let listener = Listener::bind("127.0.0.1:0", ListenerOptions::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            tokio::spawn(async move {
                let mut conn = incoming.handshake().await.unwrap();
                let mut rx = None;
                let mut tx = None;
                while rx.is_none() || tx.is_none() {
                    let link = conn.next_link().await.unwrap();
                    if link.peer_is_sender() {
                        let target = link.attach().target.as_deref().cloned();
                        rx = Some(
                            link.accept_receiver(
                                LinkAcceptance {
                                    target,
                                    ..Default::default()
                                },
                                100,
                            )
                            .await
                            .unwrap(),
                        );
                    } else {
                        let source = link.attach().source.as_deref().cloned();
                        tx = Some(
                            link.accept_sender(
                                LinkAcceptance {
                                    source,
                                    ..Default::default()
                                },
                                1000,
                            )
                            .await
                            .unwrap(),
                        );
                    }
                }
                let (mut rx, mut tx) = (rx.unwrap(), tx.unwrap());
                while let Ok(m) = rx.recv().await {
                    tx.wait_for_credit().await.unwrap();
                    let pending = tx
                        .start_send_bytes(m.payload().clone(), 0, true)
                        .await
                        .unwrap();
                    pending.await.unwrap();
                    rx.accept(&m).unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_receive_back_over_tcp() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let addr = start_echo_server().await;
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", addr.port()))
        .await
        .unwrap();
    let session = conn.open_session().await.unwrap();
    let mut receiver = session
        .attach_receiver(ReceiverOptions {
            source: Source::new("q"),
            ..ReceiverOptions::new("q")
        })
        .await
        .unwrap();
    let sender = session
        .attach_sender(SenderOptions {
            target: Target::new("q"),
            ..SenderOptions::new("q")
        })
        .await
        .unwrap();
    // Read concurrently: the echo server can only run ahead of us by our prefetch.
    let reader = tokio::spawn(async move {
        for i in 0..2000u32 {
            let m = receiver.recv().await.unwrap();
            let msg = m.message().unwrap();
            assert_eq!(
                msg.body.single_data().unwrap(),
                &Bytes::from(format!("message {i}").into_bytes())
            );
        }
    });
    let mut pending = Vec::new();
    for i in 0..2000u32 {
        let body = Bytes::from(format!("message {i}").into_bytes());
        pending.push(sender.start_send(&Message::with_data(body)).await.unwrap());
    }
    for p in pending {
        let outcome = p.await.unwrap();
        assert!(outcome.is_some_and(|s| s.is_accepted()));
    }
    reader.await.unwrap();
    conn.close().await.unwrap();
}
