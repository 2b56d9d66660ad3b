//! Emulator authorization over real sockets: `$cbs` put-token status codes, per-connection
//! grants by audience, links refused without a valid token, SASL PLAIN.

mod emulator_support;
mod support;

use emulator_support::*;
use eventhubs::amqp::codec::{Str, Value};
use eventhubs::amqp::types::message::PropertyMap;
use eventhubs::amqp::ConnectOptions;
use eventhubs::auth::generate_sas_token;
use eventhubs::emulator::{EmulatorOptions, EntityConfig, HubConfig};
use support::{emulator, emulator_with};

fn hub(name: &str, partitions: u32) -> HubConfig {
    HubConfig::new(name.into(), partitions)
        .with_consumer_groups(vec!["$default".into(), "cg1".into()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_token_answers_with_the_service_status_codes() {
    let em = emulator().await;
    let (_conn, session) = connect(&em).await;
    let mut cbs = Rpc::attach(&session, "$cbs", Some("cbs-client-reply")).await;
    let aud = "sb://localhost/eh1";
    let far = now_secs() + 3600;

    // As the service: 202 Accepted, which fe2o3-amqp-cbs (the official Rust SDK) requires.
    let (code, d) = cbs.put_token(aud).await;
    assert_eq!((code, d.as_str()), (202, "Accepted"));

    let s = |t: String| Value::String(Str::from(t));
    let bad_sig = generate_sas_token(aud, KEY_NAME, "not-the-key", far);
    let (code, d) = cbs.put_raw_token(aud, s(bad_sig)).await;
    assert_eq!(code, 401, "bad signature: {d}");
    assert!(d.contains("signature"), "{d}");

    let expired = generate_sas_token(aud, KEY_NAME, KEY, now_secs() - 10);
    let (code, d) = cbs.put_raw_token(aud, s(expired)).await;
    assert_eq!(code, 401, "expired: {d}");
    assert!(d.contains("expired"), "{d}");

    let (code, d) = cbs.put_token("sb://localhost/nosuchhub/Partitions/0").await;
    assert_eq!(code, 404, "unknown hub: {d}");
    assert!(d.contains("nosuchhub"), "{d}");
    assert_eq!(
        cbs.put_token("sb://localhost/").await.0,
        202,
        "namespace-wide"
    );

    let unknown = generate_sas_token(aud, "NoSuchKey", KEY, far);
    let (code, d) = cbs.put_raw_token(aud, s(unknown)).await;
    assert_eq!(code, 401, "unknown key name: {d}");
    assert!(d.contains("NoSuchKey"), "{d}");

    // Malformed: not a SAS token at all, a token missing its signature, a body that is no
    // string, a request without a body, an unknown operation.
    let (code, d) = cbs
        .put_raw_token(aud, s("certainly not a token".into()))
        .await;
    assert_eq!(code, 400, "malformed token: {d}");
    let (code, d) = cbs
        .put_raw_token(
            aud,
            s(format!(
                "SharedAccessSignature sr=x&se={far}&skn={KEY_NAME}"
            )),
        )
        .await;
    assert_eq!(code, 400, "token without sig: {d}");
    let (code, d) = cbs.put_raw_token(aud, Value::Int(7)).await;
    assert_eq!(code, 400, "int body: {d}");
    let mut props = PropertyMap::new();
    props.insert("operation", Value::String(Str::from("put-token")));
    props.insert(
        "type",
        Value::String(Str::from("servicebus.windows.net:sastoken")),
    );
    props.insert("name", Value::String(Str::from(aud)));
    let (code, d) = status(&cbs.request(props.clone(), None).await);
    assert_eq!(code, 400, "no body: {d}");
    props.insert("operation", Value::String(Str::from("delete-token")));
    let (code, d) = status(&cbs.request(props, Some(s(token(aud)))).await);
    assert_eq!(code, 400, "unknown operation: {d}");

    // The first good token still holds on this connection.
    attach_sender(&session, "eh1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_without_a_valid_token_are_refused() {
    let em = emulator().await;
    let (_conn, session) = connect(&em).await;
    let unauthorized = "amqp:unauthorized-access";
    assert_eq!(refused_sender(&session, "eh1").await, unauthorized);
    assert_eq!(
        refused_sender(&session, "eh1/Partitions/0").await,
        unauthorized
    );
    assert_eq!(
        refused_receiver(
            &session,
            consumer("eh1/ConsumerGroups/$default/Partitions/0", Some(EARLIEST))
        )
        .await,
        unauthorized
    );

    // Refused tokens grant nothing.
    let mut cbs = Rpc::attach(&session, "$cbs", None).await;
    let expired = generate_sas_token("sb://localhost/eh1", KEY_NAME, KEY, now_secs() - 1);
    let (code, _) = cbs
        .put_raw_token("sb://localhost/eh1", Value::String(Str::from(expired)))
        .await;
    assert_eq!(code, 401);
    let forged = generate_sas_token("sb://localhost/eh1", KEY_NAME, "guess", now_secs() + 60);
    let (code, _) = cbs
        .put_raw_token("sb://localhost/eh1", Value::String(Str::from(forged)))
        .await;
    assert_eq!(code, 401);
    assert_eq!(refused_sender(&session, "eh1").await, unauthorized);

    // A token on another connection does not help this one.
    let (_other, _other_session) = authorized(&em).await;
    assert_eq!(refused_sender(&session, "eh1").await, unauthorized);

    // A good token opens them all.
    assert_eq!(cbs.put_token("sb://localhost/eh1").await.0, 202);
    attach_sender(&session, "eh1").await;
    attach_sender(&session, "eh1/Partitions/0").await;
    open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/0",
        Some(EARLIEST),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_hub_does_not_open_another() {
    let entities =
        EntityConfig::default().with_hubs(vec![hub("eh1", 2), hub("eh10", 2), hub("eh2", 2)]);
    let em = emulator_with(EmulatorOptions::ephemeral().with_entities(entities)).await;
    let unauthorized = "amqp:unauthorized-access";

    // Producer-style audience (Python): sb://host/hub.
    let (_c, session) = connect(&em).await;
    let mut cbs = Rpc::attach(&session, "$cbs", None).await;
    assert_eq!(cbs.put_token("sb://localhost/eh1").await.0, 202);
    attach_sender(&session, "eh1").await;
    attach_sender(&session, "eh1/Partitions/1").await;
    open_consumer(&session, "eh1/ConsumerGroups/cg1/Partitions/1", None).await;
    assert_eq!(refused_sender(&session, "eh2").await, unauthorized);
    // A name prefix is not a path prefix.
    assert_eq!(refused_sender(&session, "eh10").await, unauthorized);
    assert_eq!(
        refused_sender(&session, "eh10/Partitions/0").await,
        unauthorized
    );
    // The management node answers for the granted hub only.
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    assert_eq!(
        status(&mgmt.read("eh1", "com.microsoft:eventhub", None).await).0,
        200
    );
    assert_eq!(
        status(&mgmt.read("eh2", "com.microsoft:eventhub", None).await).0,
        401
    );

    // Consumer-style audience (Python): sb://host/hub/consumergroups/cg, lower case; an
    // absolute URL with a port and odd case (Go/Rust style) matches case-insensitively.
    let (_c2, session2) = connect(&em).await;
    let mut cbs2 = Rpc::attach(&session2, "$cbs", None).await;
    assert_eq!(
        cbs2.put_token("sb://localhost/eh2/consumergroups/$default")
            .await
            .0,
        202
    );
    open_consumer(&session2, "eh2/ConsumerGroups/$Default/Partitions/0", None).await;
    open_consumer(&session2, "eh2/ConsumerGroups/$default/Partitions/1", None).await;
    assert_eq!(
        refused_receiver(
            &session2,
            consumer("eh2/ConsumerGroups/cg1/Partitions/0", None)
        )
        .await,
        unauthorized
    );
    assert_eq!(refused_sender(&session2, "eh2").await, unauthorized);
    assert_eq!(
        cbs2.put_token("amqps://127.0.0.1:5671/EH10/Partitions/1")
            .await
            .0,
        202
    );
    attach_sender(&session2, "eh10/Partitions/1").await;
    assert_eq!(
        refused_sender(&session2, "eh10/Partitions/0").await,
        unauthorized
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_needs_a_token_on_the_connection_or_in_the_request() {
    let em = emulator().await;
    let (_c, session) = connect(&em).await;
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    let (code, d) = status(&mgmt.read("eh1", "com.microsoft:eventhub", None).await);
    assert_eq!(code, 401, "{d}");

    // security_token in the request, as the SDKs send it.
    let read = |tok: String| {
        let mut p = PropertyMap::new();
        p.insert("operation", Value::String(Str::from("READ")));
        p.insert("name", Value::String(Str::from("eh1")));
        p.insert("type", Value::String(Str::from("com.microsoft:eventhub")));
        p.insert("security_token", Value::String(Str::from(tok)));
        p
    };
    let ok = mgmt.request(read(token("sb://localhost/eh1")), None).await;
    assert_eq!(status(&ok).0, 200);
    let other = mgmt.request(read(token("sb://localhost/eh2")), None).await;
    assert_eq!(status(&other).0, 401);
    let forged = generate_sas_token("sb://localhost/eh1", KEY_NAME, "x", now_secs() + 60);
    assert_eq!(status(&mgmt.request(read(forged), None).await).0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_checks_the_key() {
    let em = emulator().await;
    let port = em.local_addr().port();
    let good = ConnectOptions::new("127.0.0.1", port).sasl_plain(KEY_NAME, KEY);
    let conn = eventhubs::amqp::Connection::connect(good)
        .await
        .expect("PLAIN with the configured key");
    conn.open_session().await.unwrap();
    let bad = ConnectOptions::new("127.0.0.1", port).sasl_plain(KEY_NAME, "wrong");
    assert!(eventhubs::amqp::Connection::connect(bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_end_when_their_token_expires_and_a_fresh_token_reopens() {
    let em = emulator().await;
    let (_c, session) = connect(&em).await;
    let mut cbs = Rpc::attach(&session, "$cbs", None).await;
    let aud = "sb://localhost/eh1";
    let expiry = now_secs() + 2;
    let short = generate_sas_token(aud, KEY_NAME, KEY, expiry);
    assert_eq!(
        cbs.put_raw_token(aud, Value::String(Str::from(short)))
            .await
            .0,
        202
    );
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    send_event(&sender, &event(&b"in time"[..])).await;
    let mut rx = open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/0",
        Some(EARLIEST),
    )
    .await;
    recv_n(&mut rx, 1).await;

    // The idle consumer is detached soon after expiry.
    let end = tokio::time::timeout(std::time::Duration::from_secs(6), rx.recv())
        .await
        .expect("consumer detached after its token expired")
        .expect_err("link ends");
    assert!(now_secs() >= expiry);
    assert_eq!(condition(&end), "amqp:unauthorized-access");
    // The sender's next delivery is not stored.
    let e = async { sender.start_send(&event(&b"too late"[..])).await?.await }
        .await
        .expect_err("send after expiry fails");
    assert_eq!(condition(&e), "amqp:unauthorized-access");
    assert_eq!(em.partition_info("eh1", 0).unwrap().last_sequence_number, 0);

    // Refreshing the token on the same connection opens links again.
    assert_eq!(cbs.put_token(aud).await.0, 202);
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    send_event(&sender, &event(&b"refreshed"[..])).await;
    assert_eq!(em.partition_info("eh1", 0).unwrap().last_sequence_number, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_given_certificate() {
    use eventhubs::amqp::io::tls::{TlsClientOptions, TlsServerOptions};
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let em = emulator_with(
        EmulatorOptions::ephemeral()
            .with_tls(TlsServerOptions::new(vec![cert.clone()], key).unwrap()),
    )
    .await;
    let port = em.local_addr().port();
    let tls = {
        let mut o = TlsClientOptions::default()
            .with_server_name("localhost".into())
            .with_extra_roots(vec![cert])
            .with_only_extra_roots(true);
        o.client_certificate = None;
        o
    };
    let conn = eventhubs::amqp::Connection::connect(
        ConnectOptions::new("127.0.0.1", port)
            .sasl_anonymous()
            .tls(tls),
    )
    .await
    .expect("TLS connection with the emulator's certificate trusted");
    let session = conn.open_session().await.unwrap();
    let mut cbs = Rpc::attach(&session, "$cbs", None).await;
    assert_eq!(cbs.put_token("amqps://localhost/eh1").await.0, 202);
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    send_event(&sender, &event(&b"over tls"[..])).await;
    let mut rx = open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/0",
        Some(EARLIEST),
    )
    .await;
    assert_eq!(&body(&recv_n(&mut rx, 1).await[0])[..], b"over tls");

    // Plain AMQP to the TLS port, and TLS without trusting the certificate, both fail.
    let plain = ConnectOptions::new("127.0.0.1", port).sasl_anonymous();
    let mut plain = plain;
    plain.connect_timeout = std::time::Duration::from_secs(3);
    assert!(eventhubs::amqp::Connection::connect(plain).await.is_err());
    let untrusted = ConnectOptions::new("127.0.0.1", port)
        .sasl_anonymous()
        .tls(TlsClientOptions::default().with_server_name("localhost".into()));
    assert!(eventhubs::amqp::Connection::connect(untrusted)
        .await
        .is_err());
}
