//! The `ehub emulator` binary: bad config files are refused with the field named, and a
//! SIGKILL mid-ingest loses no acknowledged event (read back exactly once, in order, with
//! sequence numbers and offsets continuing after a restart on the same data directory).

mod emulator_support;
mod support;

use bytes::Bytes;
use emulator_support::*;
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::SenderOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::init_tracing;

const EHUB: &str = env!("CARGO_BIN_EXE_ehub");

fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!("ehub-test-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `ehub emulator --config <json>` and returns (exit success, stderr).
fn run_with_config(dir: &Path, i: usize, json: &str) -> (bool, String) {
    let path = dir.join(format!("config{i}.json"));
    std::fs::write(&path, json).unwrap();
    let mut child = Command::new(EHUB)
        .args(["emulator", "--port", "0", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ehub");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ehub kept running with bad config {json}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn bad_config_files_exit_non_zero_naming_the_field() {
    let dir = scratch("config");
    let ns = |entities: &str| {
        format!(
            r#"{{"UserConfig":{{"NamespaceConfig":[{{"Type":"EventHub","Name":"ns","Entities":{entities}}}]}}}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            ns(r#"[{"Name":"eh1","PartitionCount":0}]"#),
            "Entities[0].PartitionCount",
        ),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":"many"}]"#),
            "Entities[0].PartitionCount",
        ),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":-2}]"#),
            "Entities[0].PartitionCount",
        ),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":5000}]"#),
            "Entities[0].PartitionCount",
        ),
        (
            ns(r#"[{"Name":"ok","PartitionCount":1},{"PartitionCount":2}]"#),
            "Entities[1].Name",
        ),
        (
            ns(r#"[{"Name":"","PartitionCount":2}]"#),
            "Entities[0].Name",
        ),
        (ns(r#"[{"Name":7,"PartitionCount":2}]"#), "Entities[0].Name"),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":2},{"Name":"EH1","PartitionCount":1}]"#),
            "Entities[1].Name",
        ),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":2,"ConsumerGroups":[{"Name":"a/b"}]}]"#),
            "ConsumerGroups[0].Name",
        ),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":2,"ConsumerGroups":"cg1"}]"#),
            "Entities[0].ConsumerGroups",
        ),
        (
            ns(r#"[{"Name":"eh1","PartitionCount":2,"ConsumerGroups":[{}]}]"#),
            "ConsumerGroups[0].Name",
        ),
        (ns(r#""eh1""#), "NamespaceConfig[0].Entities"),
        (ns("[]"), "Entities"),
        (
            r#"{"UserConfig":{"NamespaceConfig":[{"Type":"ServiceBus","Entities":[]}]}}"#.into(),
            "NamespaceConfig[0].Type",
        ),
        (r#"{"UserConfig":{}}"#.into(), "NamespaceConfig"),
        (
            r#"{"UserConfig":{"NamespaceConfig":{}}}"#.into(),
            "NamespaceConfig",
        ),
        (r#"{}"#.into(), "UserConfig"),
        (r#"{"UserConfig": [1,2"#.into(), "line 1"),
    ];
    let mut failures = Vec::new();
    for (i, (json, field)) in cases.iter().enumerate() {
        let (ok, stderr) = run_with_config(&dir, i, json);
        if ok || !stderr.contains(field) {
            failures.push(format!(
                "config {json}\n  exit ok: {ok}; expected stderr naming {field:?}, got {stderr:?}"
            ));
        }
    }
    // A missing file is named too.
    let (ok, stderr) = run_with_config_path(&dir.join("absent.json"));
    if ok || !stderr.contains("absent.json") {
        failures.push(format!("missing file: ok {ok}, {stderr:?}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn run_with_config_path(path: &Path) -> (bool, String) {
    let out = Command::new(EHUB)
        .args(["emulator", "--port", "0", "--config"])
        .arg(path)
        .output()
        .expect("run ehub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn id_event(id: u64) -> Message {
    event(Bytes::from(id.to_be_bytes().to_vec()))
}

fn id_of(m: &Message) -> u64 {
    let b = body(m);
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// Reads partition 0 of eh1 from the start up to (including) `last` sequence number.
async fn read_all(port: u16, count: usize) -> Vec<Message> {
    let (conn, session) = authorized_port(port).await;
    let mut rx = open_consumer(
        &session,
        "eh1/ConsumerGroups/$default/Partitions/0",
        Some(EARLIEST),
    )
    .await;
    let events = recv_n(&mut rx, count).await;
    assert!(
        recv_within(&mut rx, Duration::from_millis(200))
            .await
            .is_none(),
        "more events than the partition reports"
    );
    let _ = conn.close().await;
    events
}

async fn last_sequence(port: u16) -> i64 {
    let (conn, session) = authorized_port(port).await;
    let mut mgmt = Rpc::attach(&session, "$management", None).await;
    let reply = mgmt.read("eh1", "com.microsoft:partition", Some("0")).await;
    let _ = conn.close().await;
    match reply.body {
        eventhubs::amqp::types::message::Body::Value(v) => v
            .map_get("last_enqueued_sequence_number")
            .and_then(|v| v.as_i64())
            .expect("last_enqueued_sequence_number"),
        other => panic!("READ body {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_ingest_loses_no_acknowledged_event() {
    init_tracing();
    let dir = scratch("restart");
    let port = free_port();
    let mut child = support::spawn_ehub_emulator(&dir, port);

    // Ingest continuously, pipelined: single events and batches of 20, recording every id
    // whose delivery the emulator accepted.
    let (conn, session) = authorized_port(port).await;
    let mut options = SenderOptions::new("eh1/Partitions/0");
    options.max_in_flight = 2000;
    let sender = Arc::new(session.attach_sender(options).await.unwrap());
    let accepted = Arc::new(Mutex::new(Vec::<u64>::new()));
    let producer = {
        let (sender, accepted) = (sender.clone(), accepted.clone());
        tokio::spawn(async move {
            let mut next = 0u64;
            let mut waiters = Vec::new();
            loop {
                let (ids, pending) = if next % 10 == 9 {
                    let ids: Vec<u64> = (next..next + 20).collect();
                    let events: Vec<Message> = ids.iter().map(|&i| id_event(i)).collect();
                    let payload = batch(&Message::default(), &events);
                    (
                        ids,
                        sender.start_send_bytes(payload, BATCH_FORMAT, false).await,
                    )
                } else {
                    (vec![next], sender.start_send(&id_event(next)).await)
                };
                let Ok(pending) = pending else { break };
                next += ids.len() as u64;
                let accepted = accepted.clone();
                waiters.push(tokio::spawn(async move {
                    if let Ok(Some(DeliveryState::Accepted(_))) = pending.await {
                        accepted.lock().unwrap().extend(ids);
                    }
                }));
                if next > 2_000_000 {
                    break;
                }
            }
            for w in waiters {
                let _ = w.await;
            }
            next
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted.lock().unwrap().len() < 5000 {
        assert!(Instant::now() < deadline, "ingest too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let attempted = tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .expect("the producer notices the kill")
        .unwrap();
    drop(conn);
    let mut acked = accepted.lock().unwrap().clone();
    acked.sort_unstable();
    assert!(
        (acked.len() as u64) < attempted,
        "the kill came mid-ingest: {} acknowledged of {attempted} sent",
        acked.len()
    );

    // A torn record at the end of the log, as a crash during a write would leave.
    let log = dir.join("eh1").join("0.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[0, 0, 4, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .unwrap();
    drop(f);

    let mut child = support::spawn_ehub_emulator(&dir, port);
    let last = last_sequence(port).await;
    let stored = read_all(port, (last + 1) as usize).await;
    let ids: Vec<u64> = stored.iter().map(id_of).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "read back in order, each once"
    );
    assert!(ids.iter().all(|&i| i < attempted), "nothing invented");
    let held: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
    let lost: Vec<&u64> = acked.iter().filter(|i| !held.contains(i)).take(5).collect();
    assert!(
        lost.is_empty(),
        "acknowledged events lost: {lost:?}... ({} acked, {} stored)",
        acked.len(),
        ids.len()
    );
    assert_eq!(
        stored.iter().map(seq).collect::<Vec<_>>(),
        (0..=last).collect::<Vec<_>>()
    );
    let offsets: Vec<i64> = stored.iter().map(offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]));

    // New events continue the numbering.
    let (conn, session) = authorized_port(port).await;
    let sender = attach_sender(&session, "eh1/Partitions/0").await;
    for i in 0..5 {
        send_event(&sender, &id_event(attempted + i)).await;
    }
    let _ = conn.close().await;
    let all = read_all(port, (last + 6) as usize).await;
    let fresh = &all[(last + 1) as usize..];
    assert_eq!(
        fresh.iter().map(seq).collect::<Vec<_>>(),
        (last + 1..=last + 5).collect::<Vec<_>>()
    );
    assert!(offset(&fresh[0]) > *offsets.last().unwrap());
    assert_eq!(id_of(&fresh[4]), attempted + 4);

    // And once more: everything, old and new, survives another kill.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = support::spawn_ehub_emulator(&dir, port);
    assert_eq!(last_sequence(port).await, last + 5);
    let again = read_all(port, (last + 6) as usize).await;
    assert_eq!(
        again.iter().map(offset).collect::<Vec<_>>(),
        all.iter().map(offset).collect::<Vec<_>>()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
