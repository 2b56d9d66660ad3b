//! Drives the Proton codec oracle (`proton-oracle.py`, python-qpid-proton's `Data` codec).
//!
//! The command comes from `EVENTHUBS_PROTON_ORACLE` (a path, optionally followed by
//! whitespace-separated arguments put before the mode). Many values go through one process:
//! one input per stdin line, one typed-JSON line out per value.

use serde_json::Value as Json;
use std::io::Write;
use std::process::{Command, Stdio};

/// Name of the environment variable that enables the Proton peer tests.
pub const ENV: &str = "EVENTHUBS_PROTON_ORACLE";

/// The oracle command line from the environment, or `None` when the peer is not set up (a
/// failure under `CI=true`: see `support::peer`).
pub fn command() -> Option<Vec<String>> {
    let raw = crate::support::peer(ENV, "Proton codec oracle")?;
    let words: Vec<String> = raw.split_whitespace().map(String::from).collect();
    (!words.is_empty()).then_some(words)
}

/// Runs the oracle in `mode` (`dec`, `enc`, `rt`) over `inputs`, one per stdin line, and
/// returns its stdout lines.
pub fn run(cmd: &[String], mode: &str, inputs: &[String]) -> Result<Vec<String>, String> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start oracle {cmd:?}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let text: String = inputs.iter().map(|i| format!("{i}\n")).collect();
    // Write from a thread so a chatty oracle cannot deadlock us on a full stdout pipe.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("oracle did not finish: {e}"))?;
    writer
        .join()
        .expect("writer thread")
        .map_err(|e| format!("writing to the oracle: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "oracle {mode} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout)
        .map_err(|e| format!("oracle output is not UTF-8: {e}"))?
        .lines()
        .map(String::from)
        .collect())
}

/// Decodes each hex string with Proton; each must hold exactly one value.
pub fn decode_each(cmd: &[String], hexes: &[String]) -> Result<Vec<Json>, String> {
    let lines = run(cmd, "dec", hexes)?;
    if lines.len() != hexes.len() {
        return Err(format!(
            "oracle printed {} values for {} inputs",
            lines.len(),
            hexes.len()
        ));
    }
    lines
        .iter()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad JSON from oracle {l:?}: {e}")))
        .collect()
}
