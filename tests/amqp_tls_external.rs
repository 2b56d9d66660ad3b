//! TLS client certificates and SASL EXTERNAL: a listener that requires a client certificate
//! accepts a client presenting one signed by its CA, and refuses one without.

mod amqp_support;

use amqp_support::{within, QueueBroker};
use eventhubs::amqp::codec::Symbol;
use eventhubs::amqp::engine::SaslClientMechanism;
use eventhubs::amqp::engine::{SaslAuthenticator, SaslDecision};
use eventhubs::amqp::io::tls::{ClientCertificate, TlsClientOptions, TlsServerOptions};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::{ConnectOptions, Connection, Error, ListenerOptions, SenderOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// Offers only EXTERNAL: the identity is the TLS client certificate the listener verified.
struct ExternalOnly;

impl SaslAuthenticator for ExternalOnly {
    fn mechanisms(&self) -> Vec<Symbol> {
        vec![Symbol::from_static("EXTERNAL")]
    }
    fn authenticate(&self, mechanism: &str, _response: &[u8], _host: Option<&str>) -> SaslDecision {
        if mechanism == "EXTERNAL" {
            SaslDecision::Accept
        } else {
            SaslDecision::Reject
        }
    }
}

struct Pki {
    ca: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    client: ClientCertificate,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.der().clone(),
        server_chain: vec![server.der().clone(), ca.der().clone()],
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        client: ClientCertificate {
            chain: vec![client.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
        },
    }
}

fn client_options(p: &Pki, port: u16, cert: Option<ClientCertificate>) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", port)
        .tls({
            let mut o = TlsClientOptions::default()
                .with_server_name("localhost".into())
                .with_extra_roots(vec![p.ca.clone()])
                .with_only_extra_roots(true);
            o.client_certificate = cert;
            o
        })
        .sasl(SaslClientMechanism::External)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_and_sasl_external() {
    let p = pki();
    let broker = QueueBroker::start(
        ListenerOptions::default()
            .with_tls(
                TlsServerOptions::requiring_client_certificates(
                    p.server_chain.clone(),
                    p.server_key.clone_key(),
                    vec![p.ca.clone()],
                )
                .unwrap(),
            )
            .with_config(
                ListenerOptions::default()
                    .config
                    .with_sasl_server(Arc::new(ExternalOnly))
                    .with_allow_no_sasl(false),
            ),
    )
    .await;

    // With the certificate: TLS client auth, then SASL EXTERNAL, then real traffic.
    let conn = within(
        10,
        "connect with a client certificate",
        Connection::connect(client_options(&p, broker.port(), Some(p.client.clone()))),
    )
    .await
    .expect("client certificate accepted");
    let s = conn.open_session().await.unwrap();
    let sender = s
        .attach_sender(SenderOptions::new("external-q"))
        .await
        .unwrap();
    let outcome = sender
        .send(&Message::with_data(&b"hello"[..]))
        .await
        .unwrap();
    assert!(outcome.is_some_and(|o| o.is_accepted()));
    conn.close().await.unwrap();

    // Without one, the listener refuses the TLS handshake (or drops the connection right
    // after it): the client fails, promptly.
    let r = within(
        10,
        "connect without a client certificate",
        Connection::connect(client_options(&p, broker.port(), None)),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(Error::Tls(_) | Error::Io(_) | Error::ConnectionClosed(_))
        ),
        "a client without a certificate must not get in: {r:?}"
    );

    // The key never shows in Debug output.
    let shown = format!("{:?}", client_options(&p, 1, Some(p.client.clone())));
    assert!(shown.contains("<redacted>"));
}
