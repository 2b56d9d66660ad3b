//! The official clients' buffered producers publish through our emulator and what they sent
//! reads back complete with our client, in order per key: the Python client in
//! `buffered_mode=True` (gated on `EVENTHUBS_PYTHON_CLIENT`, see `tests/emulator_python.rs`)
//! and the JS client's `EventHubBufferedProducerClient` with `enableIdempotentRetries` (npm
//! `@azure/event-hubs`, gated on `EVENTHUBS_AZURE_JS`, a `node_modules` directory holding it;
//! `.ci/run` installs it).

mod client_common;
mod python_support;
mod support;

use python_support::{check_client, python, scenario, Running};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How a scenario's stored event tells its key: the Python client sends keyed events with the
/// key on them; the JS client assigns partitions itself and sends by partition id, so its
/// stored events carry no key and the key follows from `i` (`bk-{i % 13}` below 2 000).
#[derive(Clone, Copy)]
enum Keys {
    OnEvents,
    FromIndex,
}

/// Reads every partition back: 3 000 events with property `i`, each once; the 13 keys each in
/// the partition the client reported, in order. With `stamped`, every event carries an
/// idempotent producer's stamp, and each producer's sequence numbers on a partition run on
/// without gaps or repeats.
fn check_stored(run: &Running, report: &Json, keys: Keys, stamped: bool) {
    let stored = run.partitions();
    assert_eq!(
        stored.iter().map(|(n, _)| n).sum::<i64>(),
        3000,
        "{stored:?}"
    );
    let client = client_common::client(run.emulator());
    run.runtime.block_on(async {
        let mut seen = HashSet::new();
        let mut last: HashMap<String, i64> = HashMap::new();
        for (p, &(n, _)) in stored.iter().enumerate() {
            let mut c = client
                .create_consumer(
                    "$default",
                    &p.to_string(),
                    eventhubs::EventPosition::earliest(),
                    eventhubs::ConsumerOptions::default(),
                )
                .await
                .unwrap();
            let mut got = 0;
            let mut sequences: HashMap<i64, i32> = HashMap::new();
            while got < n as usize {
                let batch = c.receive(500, Duration::from_secs(10)).await.unwrap();
                assert!(!batch.is_empty(), "partition {p}: {got} of {n}");
                got += batch.len();
                for e in batch {
                    let i = e.property_i64("i").expect("property i");
                    assert!(seen.insert(i), "event {i} stored twice");
                    if stamped {
                        let stamp = eventhubs::wire::idempotent::read_stamp(e.raw_message())
                            .expect("a readable stamp")
                            .unwrap_or_else(|| panic!("event {i} carries no idempotent stamp"));
                        if let Some(prev) = sequences.insert(stamp.producer_id, stamp.sequence) {
                            assert_eq!(
                                stamp.sequence,
                                eventhubs::wire::idempotent::next_sequence(prev),
                                "partition {p}, producer {}",
                                stamp.producer_id
                            );
                        }
                    }
                    let key = match keys {
                        Keys::OnEvents => e.partition_key().map(str::to_owned),
                        Keys::FromIndex => (i < 2000).then(|| format!("bk-{}", i % 13)),
                    };
                    if let Some(k) = key {
                        assert_eq!(report["key_partitions"][&k], p.to_string(), "key {k}");
                        if let Some(prev) = last.insert(k.clone(), i) {
                            assert!(prev < i, "key {k}: {i} after {prev}");
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), 3000);
        assert_eq!(last.len(), 13, "every key's events carry the key");
        client.close().await.unwrap();
    });
}

#[test]
fn python_buffered_producer_publishes_everything() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let r = scenario(&py, "buffered.py", run.emulator(), &[]);
    assert_eq!(r["sent"], 3000, "{r}");
    check_stored(&run, &r, Keys::OnEvents, false);
}

#[test]
fn js_buffered_producer_publishes_everything() {
    let Some(modules) = support::peer(
        "EVENTHUBS_AZURE_JS",
        "official JS client (@azure/event-hubs)",
    ) else {
        return;
    };
    let run = Running::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/buffered.js");
    let out = Command::new("node")
        .arg(&script)
        // Node tries `localhost` as ::1 first; the emulator listens on 127.0.0.1.
        .args([
            run.emulator()
                .connection_string()
                .replace("localhost", "127.0.0.1")
                .as_str(),
            "eh1",
        ])
        .env("NODE_PATH", &modules)
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let r: Json = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "no JSON result ({e}): stdout {stdout} stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success() && r["ok"] == true, "{r}");
    let version = Command::new("node")
        .args(["-p", "require('@azure/event-hubs/package.json').version"])
        .env("NODE_PATH", &modules)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "official JS client: @azure/event-hubs {version}, buffered producer sent {}",
        r["sent"]
    );
    // The JS client hashes keys client-side as .NET does: the partition it picked for each
    // key is the one our hash (and so the emulator's routing) gives.
    let count = run.partitions().len() as u32;
    for (k, p) in r["key_partitions"].as_object().expect("key_partitions") {
        let ours = eventhubs::wire::partition_key::partition_index(k, count);
        assert_eq!(p.as_str(), Some(ours.to_string().as_str()), "key {k}");
    }
    check_stored(&run, &r, Keys::FromIndex, true);
}
