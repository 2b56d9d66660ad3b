//! The official Azure SDK for Rust (`azure_messaging_eventhubs` 0.16.0, on fe2o3-amqp) against
//! our emulator over real sockets: the program in `tests/rust_sdk/` (its own workspace, so the
//! SDK stays out of this crate's dependency tree) reads hub and partition properties, sends a
//! batch to partition 0 and receives exactly that batch back, printing one JSON result line.
//! Here we start an emulator in-process, run the program against it, require success, and
//! cross-check what it reports against the emulator's own view of the partition.
//!
//! Enabled when `EVENTHUBS_RUST_SDK` names the built program
//! (`cargo build --release --manifest-path tests/rust_sdk/Cargo.toml`); otherwise the test
//! prints a skip line and passes, except with `CI=true`, where a missing peer fails. When
//! `EVENTHUBS_RUST_SDK_REPORT` names a file, the final result line is appended to it (CI
//! checks that it really ran).
//!
//! The SDK has races of its own that a local emulator's quick answers expose (README, "Use the
//! emulator from any SDK"): a call may hang, or the SDK may drop its connection with "Session
//! is not found". The program runs the SDK on a current-thread runtime, where we have not seen
//! them; an attempt that still ends either way is retried once, and the output says so.
#![cfg(feature = "emulator")]

mod python_support;
mod support;

use python_support::{Running, HUB};
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const EVENTS: i64 = 10;
/// Per SDK call; the emulator answers each in milliseconds.
const CALL_TIMEOUT_SECS: u64 = 10;
/// The whole program, in case it hangs past its own per-call timeouts.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(120);

/// One run of the program: its exit status (None when it had to be killed) and result line.
struct Attempt {
    status: Option<ExitStatus>,
    result: Option<Json>,
    line: String,
    stderr: String,
    seconds: f64,
}

impl Attempt {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && self.result.as_ref().is_some_and(|r| r["ok"] == true)
    }

    /// The SDK's own races, not a wrong answer from the emulator: a call with no answer, or
    /// the SDK tearing down its connection after a session mix-up.
    fn hit_sdk_race(&self) -> bool {
        let Some(r) = &self.result else {
            return self.status.is_none();
        };
        r["timed_out"] == true
            || r["error"]
                .as_str()
                .is_some_and(|e| e.contains("Connection dropped"))
    }
}

fn run_program(program: &str, port: u16) -> Attempt {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(["--address", &format!("127.0.0.1:{port}"), "--hub", HUB])
        .args(["--events", &EVENTS.to_string()])
        .args(["--timeout-secs", &CALL_TIMEOUT_SECS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start EVENTHUBS_RUST_SDK={program}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break Some(status);
        }
        if started.elapsed() > PROGRAM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default()
        .to_string();
    Attempt {
        status,
        result: serde_json::from_str(&line).ok(),
        line,
        stderr: stderr.join().unwrap_or_default(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Appends the result line, with how many attempts it took, to `EVENTHUBS_RUST_SDK_REPORT`.
fn report(result: &Json, attempts: usize) {
    let Ok(path) = std::env::var("EVENTHUBS_RUST_SDK_REPORT") else {
        return;
    };
    let mut line = result.clone();
    line["attempts"] = attempts.into();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Hub properties, a batch of ten events sent to partition 0, and those ten received back in
/// order with their bodies, `index` property and sequence numbers.
#[test]
fn official_rust_sdk_properties_batch_send_and_receive() {
    let Some(program) = support::peer("EVENTHUBS_RUST_SDK", "official Rust SDK program") else {
        return;
    };
    let run = Running::start();
    let port = run.emulator().local_addr().port();

    let mut attempts = vec![run_program(&program, port)];
    if !attempts[0].ok() && attempts[0].hit_sdk_race() {
        println!(
            "official Rust SDK: attempt 1 hit the SDK's known race, retrying once: {}",
            attempts[0].line
        );
        attempts.push(run_program(&program, port));
    }
    let last = attempts.last().expect("one attempt at least");
    assert!(
        last.ok(),
        "official Rust SDK program failed after {} attempt(s) (status {:?}, {:.1} s)\n--- result ---\n{}\n--- stderr (tail) ---\n{}",
        attempts.len(),
        last.status,
        last.seconds,
        if last.line.is_empty() { "(no JSON result line)" } else { &last.line },
        last.stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    let r = last.result.as_ref().expect("checked above");
    assert_eq!(r["hub"], HUB, "{r}");
    assert_eq!(r["partitions"], 4, "{r}");
    assert_eq!(r["sent"], EVENTS, "{r}");
    assert_eq!(r["received"], EVENTS, "{r}");

    // What the SDK received is what the emulator stored last on partition 0: nothing was sent
    // after its batch, and its batch followed what the partition held before.
    let first = r["first_sequence_number"]
        .as_i64()
        .expect("first sequence number");
    let before = r["last_sequence_number_before"]
        .as_i64()
        .expect("sequence number before");
    assert_eq!(first, before + 1, "{r}");
    let (_, last_stored) = run.partitions()[0];
    assert_eq!(last_stored, first + EVENTS - 1, "{r}");

    report(r, attempts.len());
    println!(
        "official Rust SDK: ok on attempt {} of 2 ({}), {} events sent and received back, {:.1} s",
        attempts.len(),
        if attempts.len() > 1 {
            "retry needed"
        } else {
            "no retry needed"
        },
        EVENTS,
        last.seconds
    );
    println!("{}", last.line);
}
