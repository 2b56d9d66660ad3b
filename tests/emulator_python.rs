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

use eventhubs::emulator::{Emulator, EmulatorOptions};
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

const SKIP: &str =
    "skipped: EVENTHUBS_PYTHON_CLIENT not set (official Python client not installed)";
const HUB: &str = "eh1";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn python() -> Option<String> {
    std::env::var("EVENTHUBS_PYTHON_CLIENT")
        .ok()
        .filter(|p| !p.trim().is_empty())
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Fails loudly (rather than skipping) when the named interpreter lacks the client: CI set
/// the variable, so a broken install must not pass as a skip.
fn check_client(python: &str) {
    static CHECKED: Once = Once::new();
    CHECKED.call_once(|| {
        let out = Command::new(python)
            .args(["-c", "import azure.eventhub as e; print(e.__version__)"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run EVENTHUBS_PYTHON_CLIENT={python}: {e}"));
        assert!(
            out.status.success(),
            "EVENTHUBS_PYTHON_CLIENT={python} cannot import azure.eventhub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "official Python client: azure-eventhub {} ({python})",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    });
}

/// An emulator on an ephemeral port, on its own runtime (the test thread runs the scripts).
struct Running {
    emulator: Option<Emulator>,
    runtime: tokio::runtime::Runtime,
}

impl Running {
    fn start() -> Running {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emulator = runtime
            .block_on(Emulator::start(EmulatorOptions::ephemeral()))
            .expect("emulator starts");
        Running {
            emulator: Some(emulator),
            runtime,
        }
    }

    fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("running")
    }

    /// (number of events, last sequence number) per partition, as the emulator sees them.
    fn partitions(&self) -> Vec<(i64, i64)> {
        (0..)
            .map_while(|p| self.emulator().partition_info(HUB, p))
            .map(|i| {
                let n = if i.is_empty {
                    0
                } else {
                    i.last_sequence_number - i.begin_sequence_number + 1
                };
                (n, i.last_sequence_number)
            })
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(e) = self.emulator.take() {
            let _guard = self.runtime.enter();
            e.shutdown();
        }
    }
}

/// Runs one scenario script to completion and returns its JSON result line; panics with the
/// script's output when it fails, times out or prints no result.
fn scenario(python: &str, script: &str, emulator: &Emulator, extra: &[&str]) -> Json {
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(scripts_dir().join(script))
        .args(["--conn", &emulator.connection_string(), "--hub", HUB])
        .args(extra)
        .current_dir(scripts_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} {script}: {e}"));
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
        if let Some(status) = child.try_wait().expect("wait for script") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let result: Option<Json> = line.and_then(|l| serde_json::from_str(l).ok());
    let ok = status.is_some_and(|s| s.success())
        && result.as_ref().is_some_and(|r| r["ok"] == Json::Bool(true));
    if let (Some(line), Ok(path)) = (line, std::env::var("EVENTHUBS_PYTHON_REPORT")) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    assert!(
        ok,
        "python scenario {script} failed (status {status:?}, {:.1} s)\n--- result ---\n{}\n--- stderr (tail) ---\n{}",
        started.elapsed().as_secs_f64(),
        line.unwrap_or("(no JSON result line)"),
        tail(&stderr)
    );
    let result = result.expect("checked above");
    println!(
        "python {script}: ok, {} checks in {:.1} s",
        result["checks"],
        started.elapsed().as_secs_f64()
    );
    println!("{}", line.unwrap_or_default());
    result
}

/// Hub and partition properties; the refusals for unknown partition, unknown hub, wrong key.
#[test]
fn python_hub_and_partition_properties() {
    let Some(py) = python() else {
        println!("{SKIP}");
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
        println!("{SKIP}");
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
        println!("{SKIP}");
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
        println!("{SKIP}");
        return;
    };
    check_client(&py);
    let run = Running::start();
    let r = scenario(&py, "processor.py", run.emulator(), &[]);
    assert!(r["balance_seconds"].is_number(), "{r}");
    // 500 seeded + 10 to resume from the checkpoints + 10 after the handover, per partition.
    assert_eq!(run.partitions(), vec![(520, 519); 4]);
}
