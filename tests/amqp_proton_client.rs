//! A third-party client (python-qpid-proton's BlockingConnection, via
//! `../shared/peers/proton-client.py`) sending to and receiving from OUR listener, which runs
//! the in-memory queue broker of `amqp_support`.
//!
//! Enabled when `EVENTHUBS_PROTON_CLIENT` names `proton-client.py`; skipped (with a message)
//! otherwise, and failed under `CI=true`.

mod amqp_support;
mod support;

use amqp_support::QueueBroker;
use eventhubs::amqp::codec::Value;
use eventhubs::amqp::types::message::{Body, Message};
use eventhubs::amqp::ListenerOptions;
use serde_json::Value as Json;
use std::process::Command;
use std::time::Instant;
use support::TestAuth;

fn client() -> Option<String> {
    support::peer("EVENTHUBS_PROTON_CLIENT", "Proton client peer")
}

struct Run {
    code: Option<i32>,
    lines: Vec<Json>,
    stderr: String,
}

/// Runs `proton-client.py ARGS` off the async threads and parses its JSON lines.
async fn run(script: &str, args: Vec<String>) -> Run {
    let script = script.to_owned();
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&script)
            .args(&args)
            .output()
            .expect("run proton-client.py")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{shown}: bad JSON {l:?}: {e}")))
        .collect();
    Run {
        code: out.status.code(),
        lines,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn args(op: &str, port: u16, address: &str, n: usize, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        op.to_owned(),
        format!("amqp://127.0.0.1:{port}"),
        address.to_owned(),
        "-n".to_owned(),
        n.to_string(),
        "--timeout".to_owned(),
        "20".to_owned(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

async fn broker(prefetch: u32) -> QueueBroker {
    QueueBroker::start_with_prefetch(
        ListenerOptions::default().with_config(
            ListenerOptions::default()
                .config
                .with_sasl_server(TestAuth::new("tester", "s3cret"))
                // `--no-sasl` clients are let in too.
                .with_allow_no_sasl(true),
        ),
        prefetch,
    )
    .await
}

/// Sends `n` with Proton, checks every outcome line and what the broker stored.
async fn proton_send(
    script: &str,
    b: &QueueBroker,
    address: &str,
    n: usize,
    auth: &[&str],
    presettled: bool,
) {
    let mut extra: Vec<&str> = auth.to_vec();
    if presettled {
        extra.push("--presettled");
    }
    let r = run(script, args("send", b.port(), address, n, &extra)).await;
    assert_eq!(r.code, Some(0), "send {auth:?}: stderr {}", r.stderr);
    assert_eq!(r.lines.len(), n, "send {auth:?}: one line per message");
    let want = if presettled { "presettled" } else { "accepted" };
    for (i, l) in r.lines.iter().enumerate() {
        assert_eq!(l["sent"], Json::from(i), "{l}");
        assert_eq!(l["outcome"], Json::from(want), "{l}");
    }
    b.stats(|s| {
        assert_eq!(s.stored.get(address), Some(&n), "{address} stored");
        let pre = s.stored_presettled.get(address).copied().unwrap_or(0);
        assert_eq!(
            pre,
            if presettled { n } else { 0 },
            "{address} pre-settled count"
        );
    });
    // What Proton encoded decodes with our codec, field by field.
    let stored = b.snapshot(address);
    assert_eq!(stored.len(), n);
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(m.format, 0);
        let msg = Message::decode(m.payload.clone()).expect("decode Proton's message");
        assert_eq!(
            msg.body,
            Body::Value(Value::String(format!("hello-{i}").into()))
        );
        let p = msg.properties.as_ref().expect("properties");
        assert_eq!(p.subject.as_ref().map(|s| s.as_str()), Some(address));
        match msg.application_property("seq") {
            Some(Value::Long(v)) => assert_eq!(*v, i as i64),
            Some(Value::Int(v)) => assert_eq!(*v, i as i32),
            other => panic!("seq of message {i}: {other:?}"),
        }
    }
}

/// Receives `n` with Proton and checks every line and the broker's outcome counts.
async fn proton_recv(script: &str, b: &QueueBroker, address: &str, n: usize, auth: &[&str]) {
    let r = run(script, args("recv", b.port(), address, n, auth)).await;
    assert_eq!(r.code, Some(0), "recv {auth:?}: stderr {}", r.stderr);
    assert_eq!(r.lines.len(), n);
    for (i, l) in r.lines.iter().enumerate() {
        assert_eq!(l["body"], Json::from(format!("hello-{i}")), "{l}");
        assert_eq!(l["subject"], Json::from(address), "{l}");
        assert_eq!(l["properties"]["seq"], Json::from(i), "{l}");
    }
    assert_eq!(b.queued(address), 0, "{address} drained");
    let accepted = amqp_support::eventually(10, || {
        b.stats(|s| {
            let o = s.outcomes.get(address)?;
            (o.values().sum::<usize>() >= n).then(|| o.clone())
        })
    })
    .await;
    assert_eq!(
        accepted.get("accepted"),
        Some(&n),
        "{address}: {accepted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proton_sends_and_receives_through_our_listener() {
    let Some(script) = client() else { return };
    support::init_tracing();
    let t0 = Instant::now();
    // Unsettled sends run under a small credit window that our receiver tops up as it
    // goes. Pre-settled sends need credit for all of them up front: Proton's blocking sender
    // reports a pre-settled send done as soon as it is buffered, and closing the connection
    // drops what is still waiting for credit (at-most-once, as the mode says).
    let windowed = broker(40).await;
    let roomy = broker(1000).await;
    let plain = [
        "--user",
        "tester",
        "--password",
        "s3cret",
        "--mech",
        "PLAIN",
    ];
    let cases: [(&str, &[&str], bool, &QueueBroker); 5] = [
        ("q-anonymous", &["--mech", "ANONYMOUS"], false, &windowed),
        ("q-plain", &plain, false, &windowed),
        ("q-no-sasl", &["--no-sasl"], false, &windowed),
        ("q-plain-presettled", &plain, true, &roomy),
        ("q-no-sasl-presettled", &["--no-sasl"], true, &roomy),
    ];
    for (address, auth, presettled, b) in cases {
        proton_send(&script, b, address, 200, auth, presettled).await;
        proton_recv(&script, b, address, 200, auth).await;
    }
    for b in [&windowed, &roomy] {
        assert!(b.stats(|s| s.failed_handshakes.is_empty()));
    }
    println!(
        "Proton client: 5 x (200 sent + 200 received) in {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proton_with_a_wrong_password_is_refused() {
    let Some(script) = client() else { return };
    support::init_tracing();
    let b = broker(100).await;
    let r = run(
        &script,
        args(
            "send",
            b.port(),
            "q",
            1,
            &[
                "--user",
                "tester",
                "--password",
                "wrong",
                "--mech",
                "PLAIN",
                "--timeout",
                "5",
            ],
        ),
    )
    .await;
    assert_eq!(r.code, Some(1), "stderr {}", r.stderr);
    assert!(r.lines.is_empty());
    assert!(
        r.stderr.to_lowercase().contains("auth"),
        "the failure names authentication: {}",
        r.stderr
    );
    assert_eq!(b.queued("q"), 0);
    assert!(b.stats(|s| s.failed_handshakes.len()) == 1);
}
