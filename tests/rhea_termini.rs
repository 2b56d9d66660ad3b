//! Our `EventHubClient` against a minimal Event Hubs written on the npm package rhea
//! (tests/rhea/eventhub_server.js), which echoes each attach's termini back and reads them, as
//! rhea-based servers commonly do: a null source or target drops the connection. CBS put-token,
//! `$management` READ, a partition send and a receive all go through it.
//!
//! Enabled when `EVENTHUBS_RHEA` names a `node_modules` directory that holds `rhea` (`.ci/run`
//! installs it); otherwise skipped with a message, except under `CI=true`, where a missing peer
//! fails the test.

mod support;

use eventhubs::{
    EventData, EventHubClient, EventHubClientBuilder, EventPosition, ProducerOptions, RetryOptions,
};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HUB: &str = "eh1";

fn rhea_modules() -> Option<String> {
    support::peer("EVENTHUBS_RHEA", "rhea peer (npm rhea)")
}

/// The rhea server process; dropping it closes its stdin (it exits) and reaps it.
struct RheaHub {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    lines: Arc<Mutex<Vec<Json>>>,
}

impl RheaHub {
    fn start(node_modules: &str) -> RheaHub {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rhea/eventhub_server.js");
        let mut child = Command::new("node")
            .arg(script)
            .args(["--hub", HUB, "--partitions", "2"])
            .env("NODE_PATH", node_modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start node tests/rhea/eventhub_server.js");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("server stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("server prints its port");
        let port = serde_json::from_str::<Json>(&first)
            .ok()
            .and_then(|j| j["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("rhea server did not start: {first:?}"));
        let lines: Arc<Mutex<Vec<Json>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(j) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(j);
                }
            }
        });
        RheaHub {
            child,
            stdin,
            port,
            lines,
        }
    }

    fn client(&self) -> EventHubClient {
        let conn = format!(
            "Endpoint=sb://127.0.0.1:{};SharedAccessKeyName=k;SharedAccessKey=dGVzdA==;\
             UseDevelopmentEmulator=true;EntityPath={HUB}",
            self.port
        );
        EventHubClientBuilder::from_connection_string(&conn, None)
            .unwrap()
            .retry(
                RetryOptions::default()
                    .with_max_retries(2)
                    .with_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_millis(200)),
            )
            .operation_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// The links the server saw attach, and the connections it dropped.
    fn report(&self) -> (Vec<Json>, Vec<String>) {
        let lines = self.lines.lock().unwrap();
        let attaches = lines.iter().filter_map(|l| l.get("attach")).cloned();
        let dropped = lines
            .iter()
            .filter_map(|l| l.get("dropped"))
            .map(|d| d.to_string());
        (attaches.collect(), dropped.collect())
    }
}

impl Drop for RheaHub {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        if wait_briefly(&mut self.child).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits briefly for the child to exit on its own (it does once stdin closes).
fn wait_briefly(child: &mut Child) -> Option<std::process::ExitStatus> {
    for _ in 0..50 {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The attach the server recorded for `role` whose `key` terminus has `address`.
fn attach<'a>(attaches: &'a [Json], role: &str, key: &str, address: &str) -> &'a Json {
    attaches
        .iter()
        .find(|a| a["role"] == role && a[key] == address)
        .unwrap_or_else(|| panic!("no {role} attach with {key} {address:?} in {attaches:#?}"))
}

#[tokio::test]
async fn cbs_management_send_and_receive_through_a_rhea_server_that_echoes_termini() {
    let Some(modules) = rhea_modules() else {
        return;
    };
    let hub = RheaHub::start(&modules);
    let client = hub.client();

    let outcome = async {
        let props = client.get_properties().await?;
        let empty = client.get_partition_properties("0").await?;
        let producer = client
            .create_producer(ProducerOptions::partition("0"))
            .await?;
        let events: Vec<EventData> = (0..3)
            .map(|i| EventData::new(format!("rhea-{i}")).with_property("n", i as i64))
            .collect();
        producer.send(events).await?;
        producer.send(EventData::new("rhea-3")).await?;
        let mut consumer = client
            .create_consumer(
                "$Default",
                "0",
                EventPosition::earliest(),
                Default::default(),
            )
            .await?;
        let mut got = Vec::new();
        while got.len() < 4 {
            let batch = consumer.receive(4, Duration::from_secs(10)).await?;
            assert!(!batch.is_empty(), "events did not arrive: {got:?}");
            got.extend(batch);
        }
        let after = client.get_partition_properties("0").await?;
        consumer.close().await?;
        producer.close().await?;
        Ok::<_, eventhubs::Error>((props, empty, got, after))
    }
    .await;
    let (attaches, dropped) = hub.report();
    let (props, empty, got, after) = outcome.unwrap_or_else(|e| {
        panic!("through the rhea server: {e:?}\nconnections it dropped: {dropped:?}")
    });
    client.close().await.unwrap();

    assert_eq!(props.partition_ids, vec!["0", "1"]);
    assert!(empty.is_empty, "{empty:?}");
    let bodies: Vec<&str> = got.iter().map(|e| e.body_as_str().unwrap()).collect();
    assert_eq!(bodies, ["rhea-0", "rhea-1", "rhea-2", "rhea-3"]);
    let seqs: Vec<Option<i64>> = got.iter().map(EventData::sequence_number).collect();
    assert_eq!(seqs, [Some(0), Some(1), Some(2), Some(3)]);
    assert_eq!(
        got[2].property("n").and_then(|v| v.as_i64()),
        Some(2),
        "application properties survive the batch"
    );
    assert_eq!(after.last_enqueued_sequence_number, 3);
    assert!(dropped.is_empty(), "the server dropped: {dropped:?}");

    // Every link carried both termini; the one we do not address is named after the link.
    for a in &attaches {
        for key in ["source", "target"] {
            assert!(
                a[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} missing in {a}"
            );
        }
    }
    let path = format!("{HUB}/ConsumerGroups/$Default/Partitions/0");
    for (role, key, address) in [
        ("sender", "target", "$cbs"),
        ("receiver", "source", "$cbs"),
        ("sender", "target", "$management"),
        ("receiver", "source", "$management"),
        ("sender", "target", "eh1/Partitions/0"),
        ("receiver", "source", path.as_str()),
    ] {
        let a = attach(&attaches, role, key, address);
        let other = if key == "source" { "target" } else { "source" };
        if !address.starts_with('$') {
            assert_eq!(a[other], a["name"], "{role} to {address}: {a}");
        }
    }
    println!(
        "EventHubClient through rhea: {} links attached with both termini, {} events sent and received",
        attaches.len(),
        got.len()
    );
}
