//! The examples run as a user runs them: separate processes pointed at an emulator by
//! `EVENTHUB_CONNECTION_STRING`, checked by what they print. `send`, `send_async` and `batch`
//! fill partition 0, `recv` and `recv_async` read all of it back; the README's demo runs with
//! a small event count.
//!
//! `cargo test` builds the examples (into `target/<profile>/examples/`) before it runs any
//! test, so a full `cargo test --release` runs the current ones. Run alone
//! (`cargo test --test examples_run`), it uses whatever was built last: build them first with
//! `cargo build --release --examples`.
#![cfg(feature = "emulator")]

mod support;

use std::path::PathBuf;
use std::process::Command;

/// The example binary `name`, next to this test's own profile directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "no example binary at {}: `cargo test` builds the examples; when running this test \
         alone, run `cargo build --examples` (with the same profile) first",
        path.display()
    );
    path
}

/// Runs example `name` against `conn` with `N=n`; returns its stdout after checking it
/// succeeded.
fn run(name: &str, conn: &str, n: usize) -> String {
    let out = Command::new(example(name))
        .env("EVENTHUB_CONNECTION_STRING", conn)
        .env("EVENTHUB_NAME", "eh1")
        .env("N", n.to_string())
        .output()
        .expect("example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

#[test]
fn the_examples_send_and_receive_through_the_emulator() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emu = runtime.block_on(support::emulator());
    let conn = emu.connection_string();

    assert_eq!(
        last_line(&run("send", &conn, 7)),
        "sent 7 events to partition 0 of eh1"
    );
    assert_eq!(
        last_line(&run("send_async", &conn, 5)),
        "sent 5 events to partition 0 of eh1"
    );
    let batch = run("batch", &conn, 3000);
    assert!(
        last_line(&batch).starts_with("sent 3000 events in "),
        "{batch}"
    );
    let total = 7 + 5 + 3000;
    let info = emu.partition_info("eh1", 0).unwrap();
    assert_eq!(info.last_sequence_number, total as i64 - 1, "{info:?}");

    for reader in ["recv", "recv_async"] {
        let out = run(reader, &conn, total);
        let events: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("sequence number "))
            .collect();
        assert_eq!(events.len(), total, "{reader}: one line per event");
        for (i, line) in events.iter().enumerate() {
            assert!(
                line.starts_with(&format!("sequence number {i} ")),
                "{reader}: in order: {line}"
            );
        }
        assert_eq!(last_line(&out), format!("received {total} events"));
    }
    drop(emu);
}

/// `processor_blob` against Azurite (`EVENTHUBS_AZURITE`): all events from earliest, then,
/// run again, only the new ones (it resumed from its blob checkpoints).
#[test]
fn the_blob_processor_example_resumes_from_its_checkpoints() {
    let Some(storage) = support::peer("EVENTHUBS_AZURITE", "Azurite (Blob Storage)") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emu = runtime.block_on(support::emulator());
    let conn = emu.connection_string();
    let container = format!("example-{}", std::process::id());
    let processor = |n: usize| {
        let out = Command::new(example("processor_blob"))
            .env("EVENTHUB_CONNECTION_STRING", &conn)
            .env("EVENTHUB_NAME", "eh1")
            .env("STORAGE_CONNECTION_STRING", &storage)
            .env("BLOB_CONTAINER", &container)
            .env("N", n.to_string())
            .output()
            .expect("example starts");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "processor_blob failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    run("send", &conn, 7);
    let first = processor(7);
    let lines: Vec<&str> = first
        .lines()
        .filter(|l| l.starts_with("partition "))
        .collect();
    let want: Vec<String> = (0..7)
        .map(|s| format!("partition 0 sequence {s}"))
        .collect();
    assert_eq!(lines, want, "{first}");
    assert_eq!(last_line(&first), "processed 7 events");
    run("send", &conn, 3);
    let second = processor(3);
    let lines: Vec<&str> = second
        .lines()
        .filter(|l| l.starts_with("partition "))
        .collect();
    let want: Vec<String> = (7..10)
        .map(|s| format!("partition 0 sequence {s}"))
        .collect();
    assert_eq!(lines, want, "resumed after the checkpoint: {second}");
    assert_eq!(last_line(&second), "processed 3 events");
    println!("processor_blob example resumed from its checkpoints on Azurite");
    drop(emu);
}

#[test]
fn the_demo_runs_to_a_summary_without_loss() {
    let out = Command::new(example("demo"))
        .env("DEMO_EVENTS", "3000")
        .output()
        .expect("demo starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("events sent        3000"), "{stdout}");
    assert!(
        stdout.contains("events received") && stdout.contains("(3000 unique)"),
        "{stdout}"
    );
}

/// A port nothing listens on, so that an example that wrongly connects fails differently.
fn closed_port_connection_string() -> String {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    format!("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true")
}

#[test]
fn a_bad_n_is_a_one_line_usage_error_with_status_2() {
    let conn = closed_port_connection_string();
    let cases = [
        ("send", "N", "-1"),
        ("send", "N", "abc"),
        ("send_async", "N", "-1"),
        ("send_async", "N", "18446744073709551616"),
        ("batch", "N", "abc"),
        ("batch", "N", "1000000000000"),
        ("recv", "N", "-1"),
        ("recv_async", "N", "1.5"),
        ("demo", "DEMO_EVENTS", "lots"),
    ];
    for (name, var, value) in cases {
        let started = std::time::Instant::now();
        let out = Command::new(example(name))
            .env("EVENTHUB_CONNECTION_STRING", &conn)
            .env("EVENTHUB_NAME", "eh1")
            .env(var, value)
            .output()
            .expect("example starts");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {var}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name} {var}={value}: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(value) && !stderr.contains("Error {"),
            "{name} {var}={value}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{name}: nothing done");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{name}: at once"
        );
    }
}

#[test]
fn a_failure_prints_one_display_line_with_status_1() {
    // Nothing listens: connecting fails (after the default retries) with a Connect error.
    let out = Command::new(example("recv"))
        .env(
            "EVENTHUB_CONNECTION_STRING",
            closed_port_connection_string(),
        )
        .env("EVENTHUB_NAME", "eh1")
        .env("N", "1")
        .output()
        .expect("example starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("Error {") && !stderr.contains("kind:"),
        "{stderr}"
    );
}
