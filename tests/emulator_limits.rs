//! The emulator's global connection limit and handshake timeout, under simulated time: idle
//! TCP connections cannot pile up, and one that never finishes its handshake is dropped.
#![cfg(feature = "emulator")]

mod support;

use eventhubs::emulator::EmulatorOptions;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// True when the emulator hung up on `tcp` within `d` (end of stream or a reset).
async fn hung_up_within(tcp: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(d, tcp.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(start_paused = true)]
async fn a_connection_beyond_the_limit_is_dropped_and_idle_ones_time_out() {
    let _clock = support::fast_clock();
    let em = support::emulator_with(
        EmulatorOptions::ephemeral()
            .with_max_connections(2)
            .with_handshake_timeout(Duration::from_secs(10)),
    )
    .await;
    let addr = em.local_addr();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    // Let the accept loop take both before the third knocks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        hung_up_within(&mut third, Duration::from_secs(1)).await,
        "the third connection is over the limit"
    );
    assert!(
        !hung_up_within(&mut first, Duration::from_secs(5)).await,
        "within the handshake timeout the first stays"
    );
    assert!(
        hung_up_within(&mut first, Duration::from_secs(10)).await,
        "a connection that never says a word is dropped after the handshake timeout"
    );
    assert!(hung_up_within(&mut second, Duration::from_secs(1)).await);
    // Their slots are free again.
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    assert!(
        !hung_up_within(&mut fourth, Duration::from_secs(5)).await,
        "a freed slot takes a new connection"
    );
}

#[tokio::test]
async fn per_connection_limits_are_the_emulators_options_and_a_hit_names_the_peer() {
    use eventhubs::amqp::engine::ConnectionLimits;
    use eventhubs::amqp::types::error::condition;
    use eventhubs::amqp::{ConnectOptions, Connection, Error};

    let (logs, _guard) = support::LogCapture::start();
    let limits = ConnectionLimits {
        max_sessions: 2,
        ..ConnectionLimits::default()
    };
    let em = support::emulator_with(EmulatorOptions::ephemeral().with_limits(limits)).await;
    let addr = em.local_addr();
    let conn = Connection::connect(ConnectOptions::new("127.0.0.1", addr.port()))
        .await
        .unwrap();
    conn.open_session().await.unwrap();
    conn.open_session().await.unwrap();
    let error = match conn.open_session().await {
        Err(Error::ConnectionClosed(Some(e))) => e,
        other => panic!("a third session is over the limit, got {other:?}"),
    };
    assert_eq!(error.condition, condition::RESOURCE_LIMIT_EXCEEDED);
    let logs = logs.text();
    let hit = logs
        .lines()
        .find(|l| l.contains("peer exceeded a connection limit"))
        .unwrap_or_else(|| panic!("no limit hit logged:\n{logs}"));
    assert!(hit.contains("limit=\"max_sessions\""), "{hit}");
    assert!(hit.contains("peer=127.0.0.1:"), "{hit}");
}
