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
                                {
                                    let mut o = LinkAcceptance::default();
                                    o.target = target;
                                    o
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
                                {
                                    let mut o = LinkAcceptance::default();
                                    o.source = source;
                                    o
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
    support::init_tracing();
    let addr = start_echo_server().await;
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", addr.port()))
        .await
        .unwrap();
    let session = conn.open_session().await.unwrap();
    let mut receiver = session
        .attach_receiver(ReceiverOptions::new("q").with_source(Source::new("q")))
        .await
        .unwrap();
    let sender = session
        .attach_sender(SenderOptions::new("q").with_target(Target::new("q")))
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

mod amqp_support;
mod support;

/// Outcomes given just before a detach, end or close must reach the peer first: the engine
/// used to queue dispositions and write them after the detach/end/close that followed in the
/// same burst, so the peer (which discards frames after a close) redelivered accepted messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_go_out_before_detach_end_and_close() {
    support::init_tracing();
    let broker = amqp_support::QueueBroker::start(ListenerOptions::default()).await;
    for round in 0..30 {
        let how = ["detach", "end", "close"][round % 3];
        let address = format!("settle-then-{how}-{round}");
        for i in 0..3 {
            broker.push(&address, encoded(&Message::with_data(format!("{how} {i}"))));
        }
        let conn = Connection::connect(ConnectOptions::new("127.0.0.1", broker.port()))
            .await
            .unwrap();
        let session = conn.open_session().await.unwrap();
        let mut rx = session
            .attach_receiver(ReceiverOptions::new(address.as_str()).with_prefetch(0))
            .await
            .unwrap();
        rx.add_credit(3).unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.unwrap());
        }
        for m in &got {
            rx.accept(m).unwrap();
        }
        // No await between the settlements and the ending: same command burst.
        match how {
            "detach" => rx.close().await.unwrap(),
            "end" => session.end().await.unwrap(),
            _ => conn.close().await.unwrap(),
        }
        let outcomes = amqp_support::eventually(5, || {
            broker.stats(|s| {
                let o = s.outcomes.get(&address)?;
                (o.values().sum::<usize>() == 3).then(|| o.clone())
            })
        })
        .await;
        assert_eq!(
            outcomes.get("accepted"),
            Some(&3),
            "round {round} ({how}): {outcomes:?}"
        );
        assert_eq!(broker.queued(&address), 0, "{how}: nothing requeued");
        let _ = conn.close().await;
    }
}

fn encoded(m: &Message) -> Bytes {
    use eventhubs::amqp::codec::Encode;
    let mut b = bytes::BytesMut::new();
    m.encode(&mut b);
    b.freeze()
}

/// A settled batch bigger than the receiver's credit: all of it arrives, pre-settled and in
/// order, the part beyond the credit held back until the receiver grants more; the batch's
/// future resolves once it is all queued; and a batch on a detached link fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_batch_beyond_the_credit_arrives_whole_and_in_order() {
    support::init_tracing();
    let listener = Listener::bind("127.0.0.1:0", ListenerOptions::default())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        let mut conn = incoming.handshake().await.unwrap();
        let link = conn.next_link().await.unwrap();
        let source = link.attach().source.as_deref().cloned();
        let mut acceptance = LinkAcceptance::default();
        acceptance.source = source;
        let mut tx = link.accept_sender(acceptance, 1).await.unwrap();
        tx.wait_for_credit().await.unwrap();
        let payloads = (0..1000)
            .map(|i| encoded(&Message::with_data(format!("batch {i}"))))
            .collect();
        let queued = tx.send_settled_batch(payloads, 0).await.unwrap().await;
        assert!(matches!(queued, Ok(None)), "{queued:?}");
        let gone = tx.detached().await;
        let late = match tx
            .send_settled_batch(vec![encoded(&Message::with_data("late"))], 0)
            .await
        {
            Ok(p) => p.await.map(|_| ()),
            Err(e) => Err(e),
        };
        done_tx.send((gone, late.is_err())).unwrap();
        let _ = conn;
    });
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", port))
        .await
        .unwrap();
    let session = conn.open_session().await.unwrap();
    let mut rx = session
        .attach_receiver(ReceiverOptions::new("q").with_prefetch(300))
        .await
        .unwrap();
    for i in 0..1000 {
        let m = rx.recv().await.unwrap();
        assert!(m.is_settled(), "message {i} pre-settled");
        assert_eq!(
            m.message().unwrap().body.single_data().unwrap(),
            &Bytes::from(format!("batch {i}"))
        );
    }
    assert!(rx.try_recv().is_none(), "nothing beyond the batch");
    rx.close().await.unwrap();
    let (_gone, late_failed) = done_rx.await.unwrap();
    assert!(late_failed, "a batch on a detached link fails");
    // The server's side of the connection is gone with its task by now.
    let _ = conn.close().await;
}
