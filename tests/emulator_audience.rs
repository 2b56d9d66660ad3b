//! The emulator checks a token's audience host against the namespace it serves, as the
//! service does: a correctly signed token for another namespace grants nothing.

mod emulator_support;
mod support;

use emulator_support::*;
use eventhubs::amqp::{ConnectOptions, Connection};
use support::emulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_namespace_is_refused() {
    let em = emulator().await;
    let (_conn, session) = connect(&em).await;
    let mut cbs = Rpc::attach(&session, "$cbs", Some("cbs-reply")).await;

    let (code, d) = cbs.put_token("sb://other-namespace.example/eh1").await;
    assert_eq!(code, 401, "other namespace: {d}");
    assert!(d.contains("other-namespace.example"), "{d}");
    assert_eq!(
        refused_sender(&session, "eh1").await,
        "amqp:unauthorized-access",
        "the refused token granted nothing"
    );
    let (code, d) = cbs.put_token("amqps://other-namespace.example:5671/").await;
    assert_eq!(code, 401, "namespace-wide, other namespace: {d}");

    // localhost and 127.0.0.1 (and ::1) are the same place; host case and port do not matter.
    for aud in [
        "sb://localhost/eh1",
        "sb://127.0.0.1/eh1",
        "sb://[::1]:5672/eh1",
        "amqps://LOCALHOST:5671/eh1/Partitions/0",
    ] {
        let (code, d) = cbs.put_token(aud).await;
        assert_eq!(code, 202, "{aud}: {d}");
    }
    attach_sender(&session, "eh1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_the_client_opened_to_is_this_namespace() {
    let em = emulator().await;
    let o = ConnectOptions::new("127.0.0.1", em.local_addr().port())
        .sasl_anonymous()
        .hostname("emulator.example");
    let conn = Connection::connect(o).await.expect("connect");
    let session = conn.open_session().await.expect("session");
    let mut cbs = Rpc::attach(&session, "$cbs", Some("cbs-reply")).await;
    let (code, d) = cbs.put_token("sb://Emulator.Example/eh1").await;
    assert_eq!(code, 202, "the opened host: {d}");
    let (code, d) = cbs.put_token("sb://other-namespace.example/eh1").await;
    assert_eq!(code, 401, "{d}");
    attach_sender(&session, "eh1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_management_security_token_for_another_namespace_is_refused() {
    use eventhubs::amqp::codec::{Str, Value};
    use eventhubs::amqp::types::message::PropertyMap;
    let em = emulator().await;
    let (_c, session) = connect(&em).await;
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    let read = |tok: String| {
        let mut p = PropertyMap::new();
        p.insert("operation", Value::String(Str::from("READ")));
        p.insert("name", Value::String(Str::from("eh1")));
        p.insert("type", Value::String(Str::from("com.microsoft:eventhub")));
        p.insert("security_token", Value::String(Str::from(tok)));
        p
    };
    let other = read(token("sb://other-namespace.example/eh1"));
    assert_eq!(status(&mgmt.request(other, None).await).0, 401);
    let local = read(token("sb://127.0.0.1/eh1"));
    assert_eq!(status(&mgmt.request(local, None).await).0, 200);
}
