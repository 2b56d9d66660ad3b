//! TLS against an emulator with a self-signed certificate: trusted through extra roots it
//! works; with only the public roots the handshake fails as a connect error.
#![cfg(feature = "tls")]

mod client_common;
mod support;

use eventhubs::amqp::io::tls::{TlsClientOptions, TlsServerOptions};
use eventhubs::emulator::EmulatorOptions;
use eventhubs::{
    ConsumerOptions, ErrorKind, EventData, EventHubClientBuilder, EventPosition, ProducerOptions,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_emulator_certificate() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server = TlsServerOptions::new(vec![ck.cert.der().clone()], key).unwrap();
    let emu = support::emulator_with(EmulatorOptions::ephemeral().with_tls(server)).await;
    let cs = format!(
        "Endpoint=sb://localhost:{}/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;EntityPath=eh1",
        emu.local_addr().port()
    );
    let tls = {
        let mut o = TlsClientOptions::default()
            .with_extra_roots(vec![ck.cert.der().clone()])
            .with_only_extra_roots(true);
        o.client_certificate = None;
        o
    };
    let client = EventHubClientBuilder::from_connection_string(&cs, None)
        .unwrap()
        .tls(tls.clone())
        .retry(client_common::fast_retry())
        .build()
        .unwrap();
    assert!(client.options().use_tls);
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    producer.send(EventData::from("over tls")).await.unwrap();
    let mut c = client
        .create_consumer(
            "$default",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let got = c.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got[0].body_as_str().unwrap(), "over tls");

    // A host and a token credential instead of a connection string: TLS by default.
    let by_credential = EventHubClientBuilder::new(
        &format!("localhost:{}", emu.local_addr().port()),
        "eh1",
        eventhubs::auth::SasCredential::new("RootManageSharedAccessKey", "SAS_KEY_VALUE"),
    )
    .tls(tls.clone())
    .retry(client_common::fast_retry())
    .build()
    .unwrap();
    assert!(by_credential.options().use_tls);
    assert_eq!(by_credential.get_properties().await.unwrap().name, "eh1");
    let producer = by_credential
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    producer
        .send(EventData::from("by credential"))
        .await
        .unwrap();
    by_credential.close().await.unwrap();

    // Without the emulator's certificate the handshake fails, and is not retried forever.
    let untrusting = EventHubClientBuilder::from_connection_string(&cs, None)
        .unwrap()
        .retry(client_common::fast_retry())
        .build()
        .unwrap();
    let e = untrusting.get_partition_ids().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(!e.is_transient());
}
