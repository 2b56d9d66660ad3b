//! `ehub` as an operator runs it: sizes checked before anything is allocated or sent, usage
//! errors as one line with exit status 2, a silent endpoint given up on in bounded time, and
//! logs without colour codes unless they go to a terminal that wants them.
#![cfg(feature = "cli")]

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const EHUB: &str = env!("CARGO_BIN_EXE_ehub");

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Accepts every connection and never writes a byte, holding the sockets open.
fn silent_endpoint() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

fn conn_for(port: u16) -> String {
    format!("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true")
}

fn ehub(args: &[&str], conn: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(EHUB)
        .args(args)
        .env("EVENTHUB_CONNECTION_STRING", conn)
        .env_remove("EVENTHUB_NAME")
        .env_remove("RUST_LOG")
        .output()
        .expect("ehub starts");
    (out, started.elapsed())
}

/// Checks a one-line usage error (status 2) whose text contains `wanted`.
fn assert_usage_error(out: &Output, what: &str, wanted: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.starts_with("ehub: "), "{what}: {stderr}");
    assert!(stderr.contains(wanted), "{what}: {stderr}");
    for bad in ["Error {", "panicked", "memory allocation"] {
        assert!(!stderr.contains(bad), "{what}: {stderr}");
    }
}

#[test]
fn oversized_events_are_refused_at_once() {
    // Nothing listens: a size check that came after connecting would show as a connect error.
    let conn = conn_for(closed_port());
    for size in [
        "1000000000000000",
        "18446744073709551615",
        "1073741824",
        "20971521",
    ] {
        let (out, took) = ehub(&["send", "--size", size, "--count", "1"], &conn);
        assert_usage_error(&out, size, &format!("--size {size}"));
        assert!(took < Duration::from_secs(5), "--size {size} took {took:?}");
    }
}

#[test]
fn events_over_the_hubs_max_message_size_are_refused_before_sending() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emu = runtime.block_on(support::emulator());
    let conn = emu.connection_string();
    // The emulator's links take 1 MiB messages: over it, and exactly it (no room for headers).
    let (out, _) = ehub(&["send", "--size", "1048577", "--count", "1"], &conn);
    assert_usage_error(&out, "over the link's max", "max message size of 1048576");
    let (out, _) = ehub(&["send", "--size", "1048576", "--count", "1"], &conn);
    assert_usage_error(&out, "exactly the link's max", "do not fit");
    let (out, _) = ehub(&["send", "--size", "1000", "--count", "3"], &conn);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: i64 = (0..4)
        .map(|p| emu.partition_info("eh1", p).unwrap().last_sequence_number + 1)
        .sum();
    assert_eq!(sent, 3, "only the events that fit were sent");
}

#[test]
fn bad_options_are_one_line_usage_errors() {
    let conn = conn_for(closed_port());
    let (out, _) = ehub(&["receive", "--from", "seq:abc"], &conn);
    assert_usage_error(&out, "--from", "--from");
    for t in ["0", "-1", "1e9", "NaN"] {
        let (out, _) = ehub(&["info", &format!("--connect-timeout={t}")], &conn);
        assert_usage_error(&out, t, "--connect-timeout");
    }
    let (out, _) = ehub(&["info"], "Endpoint=nonsense");
    assert_usage_error(&out, "connection string", "ehub: ");
}

/// `ehub info` against a silent endpoint with a 300 ms connect timeout, debug logs on.
fn info_against_silence(extra_env: &[(&str, &str)], via_terminal: bool) -> (Output, Duration) {
    let port = silent_endpoint();
    let conn = conn_for(port);
    let started = Instant::now();
    let mut cmd = if via_terminal {
        // `script` gives ehub a pseudo-terminal for stderr, as an interactive shell would.
        let mut c = Command::new("script");
        c.args([
            "-qec",
            &format!("{EHUB} info --connect-timeout 0.3"),
            "/dev/null",
        ]);
        c
    } else {
        let mut c = Command::new(EHUB);
        c.args(["info", "--connect-timeout", "0.3"]);
        c
    };
    cmd.env("EVENTHUB_CONNECTION_STRING", &conn)
        .env("RUST_LOG", "eventhubs::retry=debug")
        .env_remove("NO_COLOR");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("ehub starts");
    (out, started.elapsed())
}

/// Four 300 ms attempts and the default waits between them (at most 7.3 s), plus slack.
const BOUND: Duration = Duration::from_millis(4 * 300 + 7300 + 5000);

fn has_script() -> bool {
    Command::new("script").arg("--version").output().is_ok()
}

#[test]
fn a_silent_endpoint_fails_ehub_info_in_bounded_time_with_plain_logs() {
    let piped = std::thread::spawn(|| info_against_silence(&[], false));
    let terminal = has_script().then(|| {
        (
            std::thread::spawn(|| info_against_silence(&[], true)),
            std::thread::spawn(|| info_against_silence(&[("NO_COLOR", "1")], true)),
        )
    });

    let (out, took) = piped.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < BOUND, "took {took:?}");
    assert!(
        took >= Duration::from_millis(1200),
        "four attempts: {took:?}"
    );
    assert!(stderr.contains("retrying"), "debug logs are on: {stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no colour when not a terminal: {stderr:?}"
    );
    assert!(
        !stderr.contains("waiting for"),
        "no progress when not a terminal"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ehub: ") && last.contains("connecting to"),
        "{stderr}"
    );

    let Some((coloured, no_color)) = terminal else {
        eprintln!("no `script` on this machine: terminal cases skipped");
        return;
    };
    let (out, took) = coloured.join().unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(took < BOUND, "took {took:?}");
    assert!(tty.contains('\x1b'), "a terminal gets colour: {tty:?}");
    assert!(
        tty.contains("waiting for 127.0.0.1:"),
        "progress on a terminal: {tty}"
    );
    for attempt in 2..=4 {
        assert!(tty.contains(&format!("attempt {attempt}/4")), "{tty}");
    }
    let (out, _) = no_color.join().unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(
        tty.contains("retrying") && tty.contains("attempt 2/4"),
        "{tty}"
    );
    assert!(!tty.contains('\x1b'), "NO_COLOR is honoured: {tty:?}");
}
