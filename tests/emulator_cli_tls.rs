//! `ehub emulator --tls-cert PEM --tls-key PEM` as a process: TLS on its AMQP port and on its
//! `--ws-port`, a connection string that makes clients dial TLS, and our client sending and
//! receiving over both (trusting the certificate); unreadable PEM files are usage errors.
#![cfg(all(feature = "cli", feature = "tls"))]

mod client_common;
mod support;

use eventhubs::amqp::io::tls::TlsClientOptions;
use eventhubs::{
    ConsumerOptions, EventData, EventHubClientBuilder, EventPosition, ProducerOptions,
    TransportType,
};
use rustls_pki_types::CertificateDer;
use std::path::PathBuf;
use std::time::Duration;

/// A fresh directory for this test's PEM files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ehub-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kills the emulator child when the test ends, pass or fail.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehub_emulator_serves_tls_on_both_ports() {
    let dir = scratch("serve");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();

    let (child, lines) = support::spawn_ehub_emulator_with(&[
        "--port",
        "0",
        "--ws-port",
        "0",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let _child = Killed(child);
    let cs = lines.last().unwrap().clone();
    assert!(!cs.contains("UseDevelopmentEmulator"), "{cs}");
    assert!(
        lines.iter().any(|l| l.contains("(TLS)")),
        "no TLS note: {lines:?}"
    );
    // "AMQP over WebSockets on wss://127.0.0.1:PORT/$servicebus/websocket/"
    let ws_port: u16 = lines
        .iter()
        .find_map(|l| l.split_once("wss://127.0.0.1:"))
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no wss:// line: {lines:?}"));
    let amqp_port: u16 = cs
        .split_once("sb://localhost:")
        .and_then(|(_, rest)| rest.split(';').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no port in {cs}"));

    let mut tls = TlsClientOptions::default()
        .with_extra_roots(vec![cert])
        .with_only_extra_roots(true);
    tls.client_certificate = None;
    for (transport, port, partition) in [
        (TransportType::AmqpWebSockets, ws_port, "0"),
        (TransportType::Amqp, amqp_port, "1"),
    ] {
        let client = EventHubClientBuilder::from_connection_string(&cs, Some("eh1"))
            .unwrap()
            .tls(tls.clone())
            .transport(transport)
            .custom_endpoint("127.0.0.1", port)
            .retry(client_common::fast_retry())
            .build()
            .unwrap();
        assert!(client.options().use_tls);
        assert_eq!(client.get_properties().await.unwrap().name, "eh1");
        let producer = client
            .create_producer(ProducerOptions::partition(partition))
            .await
            .unwrap();
        let body = format!("{transport:?} over TLS");
        producer.send(EventData::from(body.clone())).await.unwrap();
        let mut consumer = client
            .create_consumer(
                "$default",
                partition,
                EventPosition::earliest(),
                ConsumerOptions::default(),
            )
            .await
            .unwrap();
        let got = consumer.receive(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got.len(), 1, "{transport:?}: nothing received");
        assert_eq!(got[0].body_as_str().unwrap(), body);
        client.close().await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_or_lone_tls_files_are_usage_errors() {
    let dir = scratch("bad");
    let missing = dir.join("missing.pem");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for args in [
        vec!["--tls-cert", missing.to_str().unwrap()],
        vec![
            "--tls-cert",
            missing.to_str().unwrap(),
            "--tls-key",
            junk.to_str().unwrap(),
        ],
        vec![
            "--tls-cert",
            junk.to_str().unwrap(),
            "--tls-key",
            junk.to_str().unwrap(),
        ],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ehub"))
            .args(["emulator", "--port", "0"])
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ehub");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("tls"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
