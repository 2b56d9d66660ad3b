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
