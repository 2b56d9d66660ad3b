//! Connection loss and idle timeout over real sockets: nothing hangs.

mod amqp_support;
mod support;

use amqp_support::{within, QueueBroker};
use eventhubs::amqp::engine::LinkAcceptance;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::{
    ConnectOptions, Connection, Error, Listener, ListenerOptions, ReceiverOptions, SenderOptions,
};
use std::time::Duration;
use support::Proxy;
use tokio::time::Instant;

/// A server that accepts every link, grants senders 10 credit and never settles or sends.
async fn silent_server() -> std::net::SocketAddr {
    let listener = Listener::bind("127.0.0.1:0", ListenerOptions::default())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = incoming.handshake().await else {
                    return;
                };
                let mut keep = (Vec::new(), Vec::new());
                while let Some(link) = conn.next_link().await {
                    if link.peer_is_sender() {
                        let target = link.attach().target.as_deref().cloned();
                        let acc = {
                            let mut o = LinkAcceptance::default();
                            o.target = target;
                            o
                        };
                        keep.0.push(link.accept_receiver(acc, 10).await.unwrap());
                    } else {
                        let source = link.attach().source.as_deref().cloned();
                        let acc = {
                            let mut o = LinkAcceptance::default();
                            o.source = source;
                            o
                        };
                        keep.1.push(link.accept_sender(acc, 10).await.unwrap());
                    }
                }
            });
        }
    });
    addr
}

/// In simulated time: "promptly" means before any timer could have fired.
#[tokio::test(start_paused = true)]
async fn killing_the_server_fails_pending_sends_and_receives_promptly() {
    support::init_tracing();
    let _clock = support::fast_clock();
    let server = silent_server().await;
    let proxy = Proxy::start(server).await;
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", proxy.port))
        .await
        .unwrap();
    let s = conn.open_session().await.unwrap();
    let tx = s.attach_sender(SenderOptions::new("q")).await.unwrap();
    let mut rx = s.attach_receiver(ReceiverOptions::new("q")).await.unwrap();
    // 10 go out under credit and stay unsettled; 10 wait for credit.
    let mut pending = Vec::new();
    for i in 0..20u32 {
        let m = Message::with_data(format!("m{i}"));
        pending.push(tx.start_send(&m).await.unwrap());
    }
    let recv = tokio::spawn(async move { rx.recv().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!recv.is_finished(), "nothing to receive yet");
    let t0 = Instant::now();
    proxy.cut();
    for (i, p) in pending.into_iter().enumerate() {
        let r = within(5, "pending send after the server died", p).await;
        assert!(r.is_err(), "send {i} must fail, got {r:?}");
    }
    let r = within(5, "pending recv after the server died", recv)
        .await
        .unwrap();
    let e = r.expect_err("recv must fail");
    assert!(
        matches!(e, Error::Io(_) | Error::ConnectionClosed(_)),
        "{e:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Everything after fails at once too.
    let e = within(2, "send after loss", tx.send(&Message::with_data("late")))
        .await
        .expect_err("send after loss");
    assert!(
        matches!(e, Error::Io(_) | Error::ConnectionClosed(_)),
        "{e:?}"
    );
    let e = within(2, "session after loss", conn.open_session())
        .await
        .expect_err("session after loss");
    assert!(
        matches!(e, Error::Io(_) | Error::ConnectionClosed(_)),
        "{e:?}"
    );
    assert!(conn.is_closed());
}

/// In simulated time: the driver's timers run on tokio's clock.
#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_quiet_connection_alive() {
    support::init_tracing();
    let _clock = support::fast_clock();
    let b = QueueBroker::start(
        ListenerOptions::default().with_config(
            ListenerOptions::default()
                .config
                .with_idle_timeout(Duration::from_millis(300)),
        ),
    )
    .await;
    let opts =
        ConnectOptions::new("127.0.0.1", b.port()).idle_timeout(Some(Duration::from_millis(300)));
    let conn = Connection::connect(opts).await.unwrap();
    assert_eq!(conn.remote_open().idle_time_out, Some(300));
    let s = conn.open_session().await.unwrap();
    let tx = s.attach_sender(SenderOptions::new("quiet")).await.unwrap();
    // Ten idle timeouts of silence from the application.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!conn.is_closed());
    let o = within(
        5,
        "send after a quiet spell",
        tx.send(&Message::with_data("still here")),
    )
    .await
    .expect("the connection survived on heartbeats");
    assert!(o.is_some_and(|s| s.is_accepted()));
    conn.close().await.unwrap();
}

/// In simulated time, so the bounds on when the peer is given up on are exact.
#[tokio::test(start_paused = true)]
async fn a_peer_that_goes_silent_is_closed_after_the_idle_timeout() {
    support::init_tracing();
    let _clock = support::fast_clock();
    let b = QueueBroker::start(ListenerOptions::default()).await;
    let proxy = Proxy::start(b.addr()).await;
    let opts =
        ConnectOptions::new("127.0.0.1", proxy.port).idle_timeout(Some(Duration::from_millis(500)));
    let conn = Connection::connect(opts).await.unwrap();
    let s = conn.open_session().await.unwrap();
    let mut rx = s
        .attach_receiver(ReceiverOptions::new("nothing"))
        .await
        .unwrap();
    let t0 = Instant::now();
    proxy.black_hole();
    let e = within(5, "recv from a silent peer", rx.recv())
        .await
        .expect_err("the silent peer is given up on");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "closed after the idle timeout, not before or much later: {waited:?}"
    );
    assert_eq!(e.condition(), Some("amqp:resource-limit-exceeded"), "{e:?}");
    assert!(
        conn.is_closed()
            || within(2, "close", async {
                while !conn.is_closed() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                true
            })
            .await
    );
}
