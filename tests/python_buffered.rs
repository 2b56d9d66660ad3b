//! The official Python client's buffered producer (`buffered_mode=True`) publishes through
//! our emulator; read back complete with our client, in order per key. Gated like the other
//! Python tests on `EVENTHUBS_PYTHON_CLIENT` (see `tests/emulator_python.rs`).

mod client_common;
mod python_support;
mod support;

use python_support::{check_client, python, scenario, Running};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[test]
fn python_buffered_producer_publishes_everything() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let r = scenario(&py, "buffered.py", run.emulator(), &[]);
    assert_eq!(r["sent"], 3000, "{r}");
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
            while got < n as usize {
                let batch = c.receive(500, Duration::from_secs(10)).await.unwrap();
                assert!(!batch.is_empty(), "partition {p}: {got} of {n}");
                got += batch.len();
                for e in batch {
                    let i = e.property_i64("i").expect("property i");
                    assert!(seen.insert(i), "event {i} stored twice");
                    if let Some(k) = e.partition_key() {
                        assert_eq!(r["key_partitions"][k], p.to_string(), "key {k}");
                        if let Some(prev) = last.insert(k.to_owned(), i) {
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
