//! `ehub emulator --max-connections N --handshake-timeout S` and the per-connection limit
//! flags (`--max-sessions N` ...): the flags reach the emulator.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EHUB: &str = env!("CARGO_BIN_EXE_ehub");

/// True when the peer hung up on `tcp` within `d`.
fn hung_up_within(tcp: &mut TcpStream, d: Duration) -> bool {
    tcp.set_read_timeout(Some(d)).unwrap();
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn the_connection_limit_and_handshake_timeout_flags_apply() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(EHUB)
        .args(["emulator", "--port", &port.to_string()])
        .args(["--max-connections", "1", "--handshake-timeout", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ehub");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = lines.any(|l| l.is_ok_and(|l| l.contains("UseDevelopmentEmulator=true")));
    assert!(started, "ehub printed its connection string");

    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        hung_up_within(&mut second, Duration::from_secs(1)),
        "over --max-connections"
    );
    let t0 = Instant::now();
    assert!(
        hung_up_within(&mut first, Duration::from_secs(10)),
        "dropped by --handshake-timeout"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_per_connection_limit_flags_apply() {
    use eventhubs::amqp::types::error::condition;
    use eventhubs::amqp::{ConnectOptions, Connection, Error};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(EHUB)
        .args([
            "emulator",
            "--port",
            &port.to_string(),
            "--max-sessions",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ehub");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = lines.any(|l| l.is_ok_and(|l| l.contains("UseDevelopmentEmulator=true")));
    assert!(started, "ehub printed its connection string");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let second = rt.block_on(async {
        let conn = Connection::connect(ConnectOptions::new("127.0.0.1", port))
            .await
            .unwrap();
        conn.open_session().await.unwrap();
        conn.open_session().await
    });
    let _ = child.kill();
    let _ = child.wait();
    match second {
        Err(Error::ConnectionClosed(Some(e))) => {
            assert_eq!(e.condition, condition::RESOURCE_LIMIT_EXCEEDED)
        }
        other => panic!("a second session is over --max-sessions 1, got {other:?}"),
    }
}
