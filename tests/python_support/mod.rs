//! The harness shared by the tests that drive the official Python client (`azure-eventhub`)
//! against our emulator: finding the interpreter, an emulator on an ephemeral port, and
//! running one scenario script of `tests/python/` to its JSON result line (see
//! `tests/emulator_python.rs` for the conventions).
#![allow(dead_code)]

use eventhubs::emulator::Emulator;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const HUB: &str = "eh1";
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// The interpreter that has the official client, from `EVENTHUBS_PYTHON_CLIENT`; `None` (the
/// test skips) when unset, a failure under `CI=true`.
pub fn python() -> Option<String> {
    crate::support::peer(
        "EVENTHUBS_PYTHON_CLIENT",
        "official Python client (azure-eventhub)",
    )
}

pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Fails loudly (rather than skipping) when the named interpreter lacks the client: CI set
/// the variable, so a broken install must not pass as a skip.
pub fn check_client(python: &str) {
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
pub struct Running {
    emulator: Option<Emulator>,
    pub runtime: tokio::runtime::Runtime,
}

impl Running {
    pub fn start() -> Running {
        Running::start_with(eventhubs::emulator::EmulatorOptions::ephemeral())
    }

    /// An emulator with `options` (e.g. other entities, or a WebSocket listener too).
    pub fn start_with(options: eventhubs::emulator::EmulatorOptions) -> Running {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let emulator = runtime.block_on(crate::support::emulator_with(options));
        Running {
            emulator: Some(emulator),
            runtime,
        }
    }

    pub fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("running")
    }

    /// (number of events, last sequence number) per partition, as the emulator sees them.
    pub fn partitions(&self) -> Vec<(i64, i64)> {
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
pub fn scenario(python: &str, script: &str, emulator: &Emulator, extra: &[&str]) -> Json {
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
