//! `ehub` as kcat users run it, each case a real process against an emulator over TCP: stdin
//! to send to `receive --json` round trips, all partitions with `-e`, positions, Ctrl-C
//! summaries, exit statuses, help text, and the bugs first seen by a new user.
#![cfg(feature = "cli")]

mod support;

use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EHUB: &str = env!("CARGO_BIN_EXE_ehub");

fn ehub(args: &[&str], conn: &str, stdin: &[u8]) -> Output {
    let mut child = spawn(args, conn);
    let mut input = child.stdin.take().unwrap();
    // A process that ended before reading its input says why in its status and stderr,
    // which the caller checks; the broken pipe alone would hide that.
    if let Err(e) = input.write_all(stdin) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing ehub's stdin: {e}"
        );
    }
    drop(input);
    child.wait_with_output().expect("ehub runs")
}

fn spawn(args: &[&str], conn: &str) -> Child {
    Command::new(EHUB)
        .args(args)
        .env("EVENTHUB_CONNECTION_STRING", conn)
        .env_remove("EVENTHUB_NAME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ehub starts")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
}

fn json_lines(out: &Output) -> Vec<Json> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn stdin_lines_round_trip_through_receive_json_with_keys_and_properties() {
    let rt = runtime();
    let emu = rt.block_on(support::emulator());
    let conn = emu.connection_string();
    let mut input = b"k1:hello\nk2:wor:ld\nk1:again\nnokey\n".to_vec();
    input.extend_from_slice(b"k3:\xff\xfe\n");
    let out = ehub(
        &[
            "send",
            "--stdin",
            "-K",
            ":",
            "-H",
            "source=test",
            "-H",
            "n=1",
        ],
        &conn,
        &input,
    );
    ok(&out, "send");
    assert!(
        out.stdout.is_empty(),
        "data only on stdout: {:?}",
        out.stdout
    );
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("sent 5 events"), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "no progress off a terminal: {stderr:?}"
    );

    let out = ehub(&["receive", "-e", "-J"], &conn, b"");
    ok(&out, "receive");
    let events = json_lines(&out);
    assert_eq!(events.len(), 5, "{}", text(&out.stdout));
    let find = |body: &str| {
        events
            .iter()
            .find(|e| e["body"] == body)
            .unwrap_or_else(|| panic!("{body} in {events:?}"))
    };
    let hello = find("hello");
    assert_eq!(hello["partition_key"], "k1");
    assert_eq!(hello["body_encoding"], "utf-8");
    assert_eq!(
        hello["properties"]["source"],
        serde_json::json!({"type": "string", "value": "test"})
    );
    assert_eq!(hello["properties"]["n"]["value"], "1");
    assert_eq!(
        hello["system_properties"]["x-opt-sequence-number"]["type"],
        "long"
    );
    assert!(hello["enqueued_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        find("wor:ld")["partition_key"],
        "k2",
        "split at the first ':'"
    );
    assert_eq!(find("nokey")["partition_key"], Json::Null);
    let again = find("again");
    assert_eq!(
        again["partition"], hello["partition"],
        "one key, one partition"
    );
    assert!(again["sequence_number"].as_i64() > hello["sequence_number"].as_i64());
    let binary = events.iter().find(|e| e["partition_key"] == "k3").unwrap();
    assert_eq!(binary["body_encoding"], "base64");
    assert_eq!(binary["body"], "//4=");

    // A delimiter other than newline and a partition id; a key and a partition exclude
    // each other.
    let out = ehub(&["send", "--stdin", "-k", "x", "-p", "3"], &conn, b"a");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = ehub(
        &["send", "--stdin", "-D", ",", "-p", "3", "-q"],
        &conn,
        b"a,b,c",
    );
    ok(&out, "send -D");
    assert!(out.stderr.is_empty(), "-q: {}", text(&out.stderr));
    let out = ehub(
        &[
            "receive",
            "-p",
            "3",
            "-o",
            "-3",
            "-e",
            "-f",
            "[%k] %h|%b\\n",
        ],
        &conn,
        b"",
    );
    ok(&out, "receive -f");
    assert_eq!(text(&out.stdout), "[] |a\n[] |b\n[] |c\n");
}

#[test]
fn positions_are_inclusive_unless_marked_and_bad_ones_list_the_forms() {
    let rt = runtime();
    let emu = rt.block_on(support::emulator());
    let conn = emu.connection_string();
    ok(
        &ehub(
            &["send", "--stdin", "-p", "0", "-q"],
            &conn,
            b"e0\ne1\ne2\ne3\n",
        ),
        "send",
    );
    let read = |from: &str| {
        let out = ehub(
            &["receive", "-p", "0", "-e", "-q", "-f", "%s,", "-o", from],
            &conn,
            b"",
        );
        ok(&out, from);
        text(&out.stdout)
    };
    assert_eq!(read("beginning"), "0,1,2,3,");
    assert_eq!(read("seq:1"), "1,2,3,");
    assert_eq!(read("seq:>1"), "2,3,");
    assert_eq!(read("2"), "2,3,");
    assert_eq!(read("-2"), "2,3,");
    assert_eq!(read("-10"), "0,1,2,3,");
    assert_eq!(read("seq:>3"), "");
    assert_eq!(read("end"), "");
    assert_eq!(read("time:0"), "0,1,2,3,");
    assert_eq!(read("time:2000-01-01T00:00:00Z"), "0,1,2,3,");
    assert_eq!(read("time:2999-01-01"), "");
    let offset = text(
        &ehub(
            &[
                "receive", "-p", "0", "-e", "-q", "-f", "%o\\n", "-o", "seq:2",
            ],
            &conn,
            b"",
        )
        .stdout,
    );
    let offset = offset.lines().next().unwrap().to_owned();
    assert_eq!(read(&format!("offset:{offset}")), "2,3,");
    assert_eq!(read(&format!("offset:>{offset}")), "3,");

    for bad in ["seq:x", "time:soon", "middle"] {
        let out = ehub(&["receive", "-o", bad], &conn, b"");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("seq:>N") && stderr.contains("time:T"),
            "{stderr}"
        );
    }
}

#[test]
fn all_partitions_exit_at_end_and_counts_give_distinct_statuses() {
    let rt = runtime();
    let emu = rt.block_on(support::emulator());
    let conn = emu.connection_string();
    // An empty hub: caught up at once.
    let out = ehub(&["receive", "-e"], &conn, b"");
    ok(&out, "empty");
    assert_eq!(text(&out.stderr), "received 0 events from 4 partitions\n");
    for p in ["0", "1", "2"] {
        ok(
            &ehub(
                &["send", "-p", p, "-c", "50", "--size", "10", "-q"],
                &conn,
                b"",
            ),
            "send",
        );
    }
    let out = ehub(&["receive", "-e", "-J"], &conn, b"");
    ok(&out, "all partitions");
    let events = json_lines(&out);
    assert_eq!(events.len(), 150);
    for p in ["0", "1", "2"] {
        assert_eq!(events.iter().filter(|e| e["partition"] == p).count(), 50);
    }
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("received 150 events in ") && stderr.contains("from 4 partitions"),
        "{stderr}"
    );

    // -c reached: 0; not reached: 3, with the shortfall said.
    let out = ehub(&["receive", "-p", "0", "-c", "10", "-q"], &conn, b"");
    ok(&out, "-c 10");
    assert_eq!(text(&out.stdout).lines().count(), 10);
    let out = ehub(&["receive", "-p", "0", "-e", "-c", "60", "-q"], &conn, b"");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("50 events of the 60"),
        "{}",
        text(&out.stderr)
    );
    let out = ehub(&["send", "--stdin", "-c", "5", "-q"], &conn, b"a\nb\n");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // Usage: 2.
    let out = ehub(&["receive", "-f", "%z"], &conn, b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = ehub(&["send", "-H", "novalue"], &conn, b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // The rate is over the work, not the idle wait that ended it; one event is singular.
    let out = ehub(&["receive", "-p", "1", "--idle-secs", "3"], &conn, b"");
    ok(&out, "idle");
    let stderr = text(&out.stderr);
    let secs: f64 = stderr
        .split(" in ")
        .nth(1)
        .and_then(|s| s.split(" s ").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(secs < 3.0, "the idle wait is not in the rate: {stderr}");
    let out = ehub(
        &["receive", "-p", "2", "-o", "-1", "-e", "--print"],
        &conn,
        b"",
    );
    ok(&out, "--print");
    let line = text(&out.stdout);
    assert!(line.starts_with("partition 2 seq 49 offset "), "{line}");
    assert!(!line.contains("Some("), "no Debug output: {line}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("received 1 event ") && stderr.ends_with(" from 1 partition\n"),
        "{stderr}"
    );
}

/// Waits for one line on `child`'s stdout, sending an event to partition 0 now and then so
/// that a reader started at `end` sees one once its link is up.
fn first_line(child: &mut Child, conn: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(l)) = lines.next() {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        ok(
            &ehub(&["send", "-p", "0", "-c", "1", "-q"], conn, b""),
            "send",
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            return l;
        }
        assert!(Instant::now() < deadline, "the reader never printed");
    }
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn ctrl_c_prints_a_summary_and_exits_130() {
    let rt = runtime();
    let emu = rt.block_on(support::emulator());
    let conn = emu.connection_string();

    let mut receiver = spawn(&["receive", "-p", "0", "-o", "end"], &conn);
    first_line(&mut receiver, &conn);
    interrupt(&receiver);
    let status = receiver.wait().unwrap();
    let stderr = stderr_of(&mut receiver);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: received "), "{stderr}");
    assert!(stderr.contains("from 1 partition"), "{stderr}");

    // A sender reading a stdin that stays open.
    let mut sender = spawn(&["send", "--stdin", "-p", "1"], &conn);
    let mut input = sender.stdin.take().unwrap();
    input.write_all(b"one\n").unwrap();
    input.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.partition_info("eh1", 1).unwrap().last_sequence_number < 0 {
        assert!(Instant::now() < deadline, "the line was never sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&sender);
    let status = sender.wait().unwrap();
    let stderr = stderr_of(&mut sender);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: sent 1 event"), "{stderr}");
    drop(input);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `ehub emulator` with `args` and returns it with the connection string it printed.
fn emulator_process(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(EHUB)
        .arg("emulator")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.starts_with("Endpoint=") => return (child, l),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("no connection string");
            }
        }
    }
}

#[test]
fn a_one_hub_config_prints_its_entity_path_and_a_dead_emulator_is_reported() {
    let dir = std::env::temp_dir().join(format!("ehub-modes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("orders.json");
    std::fs::write(
        &config,
        r#"{"UserConfig":{"NamespaceConfig":[{"Type":"EventHub","Name":"ns","Entities":[{"Name":"orders","PartitionCount":2}]}]}}"#,
    )
    .unwrap();
    let port = free_port().to_string();
    let (mut emulator, conn) =
        emulator_process(&["--port", &port, "--config", config.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(conn.contains("EntityPath=orders"), "{conn}");
    let out = ehub(&["info"], &conn, b"");
    ok(&out, "info");
    assert!(text(&out.stdout).starts_with("event hub orders (2 partitions)"));
    let out = ehub(&["info", "--json"], &conn, b"");
    ok(&out, "info --json");
    let info: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["partitions"][1]["is_empty"], true);

    // The emulator dies under a reader that waits for new events: it fails, and says why.
    let mut receiver = spawn(&["receive", "-p", "0", "-o", "end"], &conn);
    first_line(&mut receiver, &conn);
    emulator.kill().unwrap();
    emulator.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = receiver.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = receiver.kill();
            panic!("a dead emulator went unreported");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr_of(&mut receiver);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("ehub: "), "{stderr}");
    assert!(last.contains("start one with `ehub emulator`"), "{stderr}");
}

#[test]
fn help_names_each_env_var_once_without_values() {
    for cmd in ["send", "receive", "info"] {
        let out = Command::new(EHUB)
            .args([cmd, "--help"])
            .env("EVENTHUB_CONNECTION_STRING", "Endpoint=sb://secret")
            .env("EVENTHUB_NAME", "")
            .output()
            .unwrap();
        let help = text(&out.stdout);
        assert_eq!(
            help.matches("EVENTHUB_CONNECTION_STRING").count(),
            1,
            "{help}"
        );
        assert_eq!(help.matches("EVENTHUB_NAME").count(), 1, "{help}");
        assert!(
            !help.contains("secret") && !help.contains("EVENTHUB_NAME="),
            "{help}"
        );
    }
    let help = text(
        &Command::new(EHUB)
            .args(["receive", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    for form in ["seq:>N", "time:T", "-e", "--json", "%p"] {
        assert!(help.contains(form), "{form} in {help}");
    }
}

#[test]
fn typed_headers_keep_their_amqp_type_through_receive_json() {
    let rt = runtime();
    let emu = rt.block_on(support::emulator());
    let conn = emu.connection_string();
    let out = ehub(
        &[
            "send",
            "--stdin",
            "-p",
            "2",
            "-q",
            "-H",
            "n:i64=5",
            "-H",
            "ok:bool=true",
            "-H",
            "plain=5",
            "-H",
            "ratio:f64=0.5",
            "-H",
            "at:timestamp=2026-01-31T12:00:00Z",
            "-H",
            "raw:binary=AAE=",
            "-H",
            "a:b:string=c",
        ],
        &conn,
        b"typed\n",
    );
    ok(&out, "send");
    let out = ehub(&["receive", "-p", "2", "-e", "-J"], &conn, b"");
    ok(&out, "receive");
    let events = json_lines(&out);
    assert_eq!(events.len(), 1, "{}", text(&out.stdout));
    let props = &events[0]["properties"];
    let typed = |ty: &str, value: Json| serde_json::json!({"type": ty, "value": value});
    assert_eq!(props["n"], typed("long", 5.into()));
    assert_eq!(props["ok"], typed("boolean", true.into()));
    assert_eq!(
        props["plain"],
        typed("string", "5".into()),
        "untyped is a string"
    );
    assert_eq!(props["ratio"], typed("double", 0.5.into()));
    assert_eq!(
        props["at"],
        typed("timestamp", "2026-01-31T12:00:00.000Z".into())
    );
    assert_eq!(props["raw"], typed("binary", "AAE=".into()));
    assert_eq!(props["a:b"], typed("string", "c".into()));

    // A bad type or value is a usage error on one line, before anything is sent.
    for (bad, needle) in [("n:i46=5", "types: string"), ("n:i64=five", "not an i64")] {
        let out = ehub(&["send", "--stdin", "-H", bad], &conn, b"x\n");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    assert_eq!(
        emu.partition_info("eh1", 2).unwrap().last_sequence_number,
        0,
        "nothing sent by the refused ones"
    );
    let help = text(
        &Command::new(EHUB)
            .args(["send", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    for form in ["KEY:TYPE=VALUE", "n:i64=5", "timestamp", "base64"] {
        assert!(help.contains(form), "{form} in {help}");
    }
}

/// A port that accepts TCP and then says nothing, as an emulator does before it serves:
/// returns once `ehub` has connected to it, so that it is known to be waiting there.
fn silent_port() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conn = format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;\
         SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    );
    (listener, conn)
}

#[test]
fn ctrl_c_while_connecting_prints_a_summary_and_exits_130() {
    for (args, said) in [
        (
            &["receive", "-e"][..],
            "interrupted while connecting: received 0 events",
        ),
        (
            &["send", "-c", "5"][..],
            "interrupted while connecting: sent 0 events",
        ),
        (&["info"][..], "interrupted"),
    ] {
        let (listener, conn) = silent_port();
        let mut child = spawn(args, &conn);
        // Its connection attempt has reached the port: it is waiting for an answer (for
        // up to 4 × 5 s), with its Ctrl-C handler in place since it started.
        let (held, _) = listener.accept().unwrap();
        interrupt(&child);
        let status = child.wait().unwrap();
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(130), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), said, "{args:?}");
        drop(held);
    }
}

#[test]
fn exit_at_end_help_says_exactly_when_it_exits() {
    let help = text(
        &Command::new(EHUB)
            .args(["receive", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for phrase in [
        "last enqueued sequence number is read once, before its consumer attaches",
        "holding nothing at or after --from is done at once",
        "not waited for",
    ] {
        assert!(help.contains(phrase), "{phrase} in {help}");
    }
}
