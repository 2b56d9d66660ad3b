//! SASL over real sockets, and that no `Debug` output leaks a password.

mod amqp_support;
mod support;

use amqp_support::{within, QueueBroker};
use eventhubs::amqp::engine::{ConnectionConfig, SaslClientMechanism};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::sasl::SaslInit;
use eventhubs::amqp::{ConnectOptions, Connection, Error, ListenerOptions, SenderOptions};
use support::TestAuth;

async fn sasl_broker(allow_no_sasl: bool) -> QueueBroker {
    QueueBroker::start(
        ListenerOptions::default().with_config(
            ListenerOptions::default()
                .config
                .with_sasl_server(TestAuth::new("tester", "s3cret"))
                .with_allow_no_sasl(allow_no_sasl),
        ),
    )
    .await
}

async fn use_it(conn: &Connection) {
    let s = conn.open_session().await.unwrap();
    let tx = s.attach_sender(SenderOptions::new("sasl-q")).await.unwrap();
    let o = tx
        .send(&Message::with_data(&b"authenticated"[..]))
        .await
        .unwrap();
    assert!(o.is_some_and(|s| s.is_accepted()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_accepted_and_rejected() {
    support::init_tracing();
    let b = sasl_broker(false).await;
    let conn = within(
        10,
        "PLAIN",
        Connection::connect(
            ConnectOptions::new("127.0.0.1", b.port()).sasl_plain("tester", "s3cret"),
        ),
    )
    .await
    .expect("right password");
    use_it(&conn).await;
    conn.close().await.unwrap();
    for (user, pass) in [("tester", "wrong"), ("nobody", "s3cret"), ("", "")] {
        let e = within(
            10,
            "PLAIN rejected",
            Connection::connect(ConnectOptions::new("127.0.0.1", b.port()).sasl_plain(user, pass)),
        )
        .await
        .expect_err("bad credentials must fail");
        assert!(matches!(e, Error::ConnectionClosed(_)), "{e:?}");
        assert_eq!(e.condition(), Some("amqp:unauthorized-access"), "{e}");
        assert!(
            !format!("{e:?} {e}").contains("wrong"),
            "error text holds no password"
        );
    }
    assert_eq!(b.queued("sasl-q"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_accepted_or_refused_as_configured() {
    support::init_tracing();
    let b = sasl_broker(false).await;
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", b.port()).sasl_anonymous())
        .await
        .expect("ANONYMOUS is offered");
    use_it(&conn).await;
    conn.close().await.unwrap();
    // A server that offers only PLAIN refuses ANONYMOUS.
    let strict = QueueBroker::start(
        ListenerOptions::default().with_config(
            ListenerOptions::default()
                .config
                .with_sasl_server(TestAuth::plain_only("tester", "s3cret"))
                .with_allow_no_sasl(false),
        ),
    )
    .await;
    let e = within(
        10,
        "ANONYMOUS refused",
        Connection::connect(ConnectOptions::new("127.0.0.1", strict.port()).sasl_anonymous()),
    )
    .await
    .expect_err("ANONYMOUS is not offered");
    assert!(matches!(e, Error::ConnectionClosed(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_sasl_against_sasl_only_server() {
    support::init_tracing();
    let b = sasl_broker(false).await;
    let t0 = std::time::Instant::now();
    let e = within(
        10,
        "no SASL against SASL-only",
        Connection::connect(ConnectOptions::new("127.0.0.1", b.port())),
    )
    .await
    .expect_err("the server requires SASL");
    assert!(t0.elapsed().as_secs() < 5, "failed promptly");
    assert!(
        matches!(e, Error::ConnectionClosed(_) | Error::Io(_)),
        "{e:?}"
    );
    assert_eq!(b.stats(|s| s.connections), 0);
    // The same server with allow_no_sasl lets it in.
    let lax = sasl_broker(true).await;
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", lax.port()))
        .await
        .expect("allow_no_sasl");
    use_it(&conn).await;
    conn.close().await.unwrap();
}

#[test]
fn debug_output_never_contains_the_password() {
    const SECRET: &str = "hunter2-Very-Secret";
    let opts =
        ConnectOptions::new("example.servicebus.windows.net", 5671).sasl_plain("user", SECRET);
    let mech = SaslClientMechanism::Plain {
        username: "user".into(),
        password: SECRET.into(),
    };
    let config = ConnectionConfig::default().with_sasl(mech.clone());
    let init = SaslInit::plain("user", SECRET);
    for (what, text) in [
        ("ConnectOptions", format!("{opts:?} {opts:#?}")),
        ("ConnectionConfig", format!("{config:?} {config:#?}")),
        ("SaslClientMechanism", format!("{mech:?}")),
        ("SaslInit", format!("{init:?} {init:#?}")),
    ] {
        assert!(
            !text.contains(SECRET),
            "{what} Debug leaks the password: {text}"
        );
        assert!(
            !text.contains("hunter2"),
            "{what} Debug leaks part of the password"
        );
    }
    // The user name is fine to show, and the secret really is inside.
    assert!(format!("{opts:?}").contains("user"));
    assert_eq!(
        init.plain_credentials().map(|(_, _, p)| p.to_vec()),
        Some(SECRET.as_bytes().to_vec())
    );
}
