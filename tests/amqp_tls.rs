//! TLS on loopback with certificates made by `rcgen`: verification is always on.

mod amqp_support;
mod support;

use amqp_support::{within, QueueBroker};
use bytes::Bytes;
use eventhubs::amqp::io::tls::{TlsClientOptions, TlsServerOptions};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::{
    ConnectOptions, Connection, Error, ListenerOptions, ReceiverOptions, SenderOptions,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::TestAuth;

/// A CA and a server certificate for `localhost` signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

async fn tls_broker(p: &Pki) -> QueueBroker {
    QueueBroker::start(
        ListenerOptions::default()
            .with_tls(TlsServerOptions::new(p.chain.clone(), p.key.clone_key()).unwrap())
            .with_config(
                ListenerOptions::default()
                    .config
                    .with_sasl_server(TestAuth::new("tester", "s3cret")),
            ),
    )
    .await
}

fn trusting(p: &Pki, name: &str) -> TlsClientOptions {
    {
        let mut o = TlsClientOptions::default()
            .with_server_name(name.to_owned())
            .with_extra_roots(vec![p.ca.clone()])
            .with_only_extra_roots(true);
        o.client_certificate = None;
        o
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_ca_connects_and_moves_messages() {
    support::init_tracing();
    let p = pki();
    let b = tls_broker(&p).await;
    // Connect by IP, verify the name `localhost`; SASL PLAIN inside TLS.
    let conn = within(
        10,
        "TLS connect",
        Connection::connect(
            ConnectOptions::new("127.0.0.1", b.port())
                .tls(trusting(&p, "localhost"))
                .sasl_plain("tester", "s3cret"),
        ),
    )
    .await
    .expect("TLS with a trusted CA");
    let s = conn.open_session().await.unwrap();
    let sender = s.attach_sender(SenderOptions::new("tls-q")).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..500u32 {
        let body = Bytes::from(vec![i as u8; 1000 + i as usize * 37]);
        pending.push(sender.start_send(&Message::with_data(body)).await.unwrap());
    }
    for p in pending {
        assert!(p.await.unwrap().is_some_and(|s| s.is_accepted()));
    }
    let mut rx = s
        .attach_receiver(ReceiverOptions::new("tls-q"))
        .await
        .unwrap();
    for i in 0..500u32 {
        let m = within(10, "TLS recv", rx.recv()).await.unwrap();
        let body = m.message().unwrap().body.single_data().cloned().unwrap();
        assert_eq!(body, Bytes::from(vec![i as u8; 1000 + i as usize * 37]));
        rx.accept(&m).unwrap();
    }
    conn.close().await.unwrap();
    // Also the extra root added beside the webpki roots (the default).
    let conn = Connection::connect(
        ConnectOptions::new("localhost", b.port())
            .tls(TlsClientOptions::default().with_extra_roots(vec![p.ca.clone()]))
            .sasl_anonymous(),
    )
    .await
    .expect("TLS to `localhost` with the CA added to the public roots");
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_fails_with_a_tls_error() {
    support::init_tracing();
    let p = pki();
    let b = tls_broker(&p).await;
    // Public roots only: our private CA is unknown.
    let e = within(
        10,
        "untrusted connect",
        Connection::connect(
            ConnectOptions::new("localhost", b.port())
                .tls(TlsClientOptions::default())
                .sasl_anonymous(),
        ),
    )
    .await
    .expect_err("an unknown CA must not be accepted");
    assert!(
        matches!(&e, Error::Tls(m) if m.contains("UnknownIssuer") || m.to_lowercase().contains("unknown")),
        "{e:?}"
    );
    // A different CA than the one that signed the server.
    let other = pki();
    let e = Connection::connect(
        ConnectOptions::new("127.0.0.1", b.port())
            .tls(trusting(&other, "localhost"))
            .sasl_anonymous(),
    )
    .await
    .expect_err("a certificate from another CA must not be accepted");
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    assert_eq!(
        b.stats(|s| s.connections),
        0,
        "no AMQP connection was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_name_fails() {
    support::init_tracing();
    let p = pki();
    let b = tls_broker(&p).await;
    let e = within(
        10,
        "wrong name",
        Connection::connect(
            ConnectOptions::new("127.0.0.1", b.port())
                .tls(trusting(&p, "not-localhost.example"))
                .sasl_anonymous(),
        ),
    )
    .await
    .expect_err("a certificate for another name must not be accepted");
    assert!(
        matches!(&e, Error::Tls(m) if m.contains("NotValidForName") || m.contains("not valid for")),
        "{e:?}"
    );
    // Connecting by IP without a server name verifies the IP, which the certificate lacks.
    let e = Connection::connect(
        ConnectOptions::new("127.0.0.1", b.port())
            .tls({
                let mut o = TlsClientOptions::default()
                    .with_extra_roots(vec![p.ca.clone()])
                    .with_only_extra_roots(true);
                o.client_certificate = None;
                o
            })
            .sasl_anonymous(),
    )
    .await
    .expect_err("the IP is not in the certificate");
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_against_tls_listener_fails_promptly() {
    support::init_tracing();
    let p = pki();
    let b = tls_broker(&p).await;
    let mut opts = ConnectOptions::new("127.0.0.1", b.port()).sasl_anonymous();
    opts.connect_timeout = std::time::Duration::from_secs(20);
    let t0 = std::time::Instant::now();
    let r = within(15, "plain against TLS", Connection::connect(opts)).await;
    assert!(r.is_err(), "plain AMQP must not open against a TLS port");
    assert!(
        t0.elapsed().as_secs() < 5,
        "failed promptly: {:?}",
        t0.elapsed()
    );
}
