//! The official Python client (`azure-eventhub`, pure-Python AMQP) against our emulator, over
//! real sockets: the scenarios in `tests/python/` each run as a subprocess against an emulator
//! started in-process on an ephemeral port, print one JSON result line, and exit non-zero when
//! a check failed. Here we run them, require success, and cross-check what they report
//! against the emulator's own view of its partitions.
//!
//! Enabled when `EVENTHUBS_PYTHON_CLIENT` names a python that has `azure-eventhub`; otherwise
//! each test prints a skip line and passes. When `EVENTHUBS_PYTHON_REPORT` names a file, each
//! scenario's result line is appended to it (CI checks that they really ran).
//!
//! The Python client honours the port in `Endpoint=sb://localhost:PORT` when the connection
//! string says `UseDevelopmentEmulator=true` (it then also turns TLS off); without that flag it
//! would use TLS on 5671 whatever the endpoint says. So no fixed port is needed.
#![cfg(feature = "emulator")]

mod python_support;
mod support;

use python_support::*;

/// Hub and partition properties; the refusals for unknown partition, unknown hub, wrong key.
#[test]
fn python_hub_and_partition_properties() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let r = scenario(&py, "properties.py", run.emulator(), &[]);
    assert_eq!(r["partitions"], 4);
    // It sent four events to the last partition and nothing elsewhere.
    assert_eq!(run.partitions(), vec![(0, -1), (0, -1), (0, -1), (4, 3)]);
    assert_eq!(
        r["partition_properties"]["last_enqueued_sequence_number"],
        3
    );
    for refusal in ["unknown partition", "unknown hub", "wrong key"] {
        assert!(
            r["refusals"][refusal].is_string(),
            "{refusal} was not refused: {r}"
        );
    }
}

/// 10 000 events sent single, in batches, by partition key and by partition id; read back
/// from earliest, offsets, sequence numbers, enqueued times and latest.
#[test]
fn python_ten_thousand_events_sent_and_read_back() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let dir = std::env::temp_dir().join(format!("eventhubs-pyclient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = dir.join("manifest.json");
    let manifest_arg = manifest.to_str().expect("utf-8 path");

    let sent = scenario(
        &py,
        "send.py",
        run.emulator(),
        &["--manifest", manifest_arg],
    );
    assert_eq!(sent["sent"], 10_000);
    let stored = run.partitions();
    assert_eq!(
        stored.iter().map(|(n, _)| n).sum::<i64>(),
        10_000,
        "the emulator stored {stored:?}"
    );
    assert!(
        stored.iter().all(|&(n, last)| n > 0 && last == n - 1),
        "every partition holds events numbered from 0: {stored:?}"
    );

    let read = scenario(
        &py,
        "read.py",
        run.emulator(),
        &["--manifest", manifest_arg],
    );
    // What the client read from earliest is exactly what the emulator stored.
    for (p, (n, _)) in stored.iter().enumerate() {
        assert_eq!(
            read["per_partition"][p.to_string()].as_i64(),
            Some(*n),
            "partition {p}: read {read}"
        );
    }
    assert_eq!(read["position_reads"], 24);
    // The latest-position markers went to the first and the last partition, after the rest.
    let after = run.partitions();
    for (p, m) in [(0usize, "0"), (3, "3")] {
        let markers = read["latest"][m]["markers_sent"].as_i64().expect("markers");
        assert_eq!(read["latest"][m]["received"].as_i64(), Some(markers));
        assert_eq!(after[p].0, stored[p].0 + markers, "partition {p}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An owner-level consumer takes the partition from one without; refusals while it owns it;
/// a higher owner level takes it over in turn.
#[test]
fn python_owner_level_takes_over() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let r = scenario(&py, "takeover.py", run.emulator(), &[]);
    let err = r["non_owner_error"].as_str().unwrap_or_default();
    assert!(err.contains("amqp:link:stolen"), "{r}");
    assert_eq!(run.partitions()[0], (80, 79));
}

/// `EventHubConsumerClient` on all partitions with the in-memory checkpoint store: reads
/// everything, checkpoints, resumes from checkpoints, shares partitions with a second client.
#[test]
fn python_consumer_client_with_in_memory_checkpoints() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start();
    let r = scenario(&py, "processor.py", run.emulator(), &[]);
    assert!(r["balance_seconds"].is_number(), "{r}");
    // 500 seeded + 10 to resume from the checkpoints + 10 after the handover, per partition.
    assert_eq!(run.partitions(), vec![(520, 519); 4]);
}

/// The official client with `TransportType.AmqpOverWebsocket` sends and receives through the
/// emulator's WebSocket port (`custom_endpoint_address`).
#[test]
fn python_over_websockets() {
    let Some(py) = python() else {
        return;
    };
    check_client(&py);
    let run = Running::start_with(
        eventhubs::emulator::EmulatorOptions::ephemeral().with_ws_bind(([127, 0, 0, 1], 0).into()),
    );
    let ws = run
        .emulator()
        .ws_local_addr()
        .expect("WebSocket listener")
        .to_string();
    let r = scenario(
        &py,
        "over_websockets.py",
        run.emulator(),
        &["--ws-endpoint", &ws],
    );
    assert_eq!(r["received"], 50, "{r}");
    assert_eq!(run.partitions()[0], (50, 49));
}
