//! AMQP over WebSockets with TLS (`wss://`) against an emulator serving a self-signed
//! certificate on both its ports: the client trusts it through extra roots and sends,
//! receives and asks `$management` over WebSockets, and plain AMQPS on the same emulator.
#![cfg(feature = "tls")]

mod client_common;
mod support;

use eventhubs::amqp::io::tls::{TlsClientOptions, TlsServerOptions};
use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::{
    ConsumerOptions, EventData, EventHubClient, EventHubClientBuilder, EventPosition,
    ProducerOptions, TransportType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::time::Duration;

/// A self-signed certificate for `localhost` and the server options serving it.
fn self_signed() -> (CertificateDer<'static>, TlsServerOptions) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cert = ck.cert.der().clone();
    (
        cert.clone(),
        TlsServerOptions::new(vec![cert], key).unwrap(),
    )
}

/// Client TLS settings trusting only `cert`.
fn trusting(cert: CertificateDer<'static>) -> TlsClientOptions {
    let mut o = TlsClientOptions::default()
        .with_extra_roots(vec![cert])
        .with_only_extra_roots(true);
    o.client_certificate = None;
    o
}

/// Sends three events to `partition`, reads them back, and checks the hub's management
/// answers, all through `client`.
async fn round_trip(client: &EventHubClient, partition: &str, tag: &str) {
    let props = client.get_properties().await.unwrap();
    assert_eq!(props.name, "eh1");
    assert_eq!(props.partition_ids.len(), 4);
    let producer = client
        .create_producer(ProducerOptions::partition(partition))
        .await
        .unwrap();
    let batch: Vec<_> = (0..3)
        .map(|i| EventData::from(format!("{tag}{i}")))
        .collect();
    producer.send(batch).await.unwrap();
    let info = client.get_partition_properties(partition).await.unwrap();
    assert_eq!(info.last_enqueued_sequence_number, 2);
    let mut consumer = client
        .create_consumer(
            "$default",
            partition,
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = consumer.receive(3, Duration::from_secs(5)).await.unwrap();
        assert!(!batch.is_empty(), "{tag}: nothing received");
        got.extend(batch.iter().map(|e| e.body_as_str().unwrap().to_owned()));
    }
    assert_eq!(
        got,
        [format!("{tag}0"), format!("{tag}1"), format!("{tag}2")]
    );
}

/// A client of `emu`'s hub `eh1`, TLS on (the emulator's connection string says so), trusting
/// `cert`, dialling 127.0.0.1:`port` over `transport` (the certificate is checked against
/// the namespace name, `localhost`).
fn client_for(
    emu: &Emulator,
    cert: &CertificateDer<'static>,
    transport: TransportType,
    port: u16,
) -> EventHubClient {
    let client =
        EventHubClientBuilder::from_connection_string(&emu.connection_string(), Some("eh1"))
            .unwrap()
            .tls(trusting(cert.clone()))
            .transport(transport)
            .custom_endpoint("127.0.0.1", port)
            .retry(client_common::fast_retry())
            .build()
            .unwrap();
    assert!(
        client.options().use_tls,
        "the TLS emulator's connection string turns TLS on"
    );
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_over_tls_and_amqps_on_one_emulator() {
    let (cert, server) = self_signed();
    let emu = support::emulator_with(
        EmulatorOptions::ephemeral()
            .with_tls(server)
            .with_ws_bind(([127, 0, 0, 1], 0).into()),
    )
    .await;
    assert!(
        !emu.connection_string().contains("UseDevelopmentEmulator"),
        "a TLS emulator must not tell clients to speak plain AMQP: {}",
        emu.connection_string()
    );
    let ws_port = emu.ws_local_addr().unwrap().port();

    let wss = client_for(&emu, &cert, TransportType::AmqpWebSockets, ws_port);
    round_trip(&wss, "0", "wss").await;
    wss.close().await.unwrap();

    let amqps = client_for(&emu, &cert, TransportType::Amqp, emu.local_addr().port());
    round_trip(&amqps, "1", "amqps").await;
    amqps.close().await.unwrap();

    // Without the certificate the WebSocket port refuses the handshake like the AMQP one.
    let untrusting =
        EventHubClientBuilder::from_connection_string(&emu.connection_string(), Some("eh1"))
            .unwrap()
            .transport(TransportType::AmqpWebSockets)
            .custom_endpoint("127.0.0.1", ws_port)
            .retry(eventhubs::RetryOptions::none())
            .build()
            .unwrap();
    let e = untrusting.get_properties().await.unwrap_err();
    assert_eq!(e.kind(), eventhubs::ErrorKind::Connect, "{e}");
}
