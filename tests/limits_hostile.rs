//! Hostile peers that flood frames which make us answer (echo flows, attaches to unknown nodes
//! with long addresses) and never read: our endpoint, in either role, stops reading, keeps
//! its queued output near the bound (measured by the driver's own peak), closes with
//! `amqp:resource-limit-exceeded`, and logs the hit once with the peer's address and the
//! limit's name.

mod support;

use eventhubs::amqp::codec::Str;
use eventhubs::amqp::engine::{ConnectionConfig, ConnectionLimits};
use eventhubs::amqp::frame::{
    write_amqp_frame, AmqpFrame, FrameReader, ProtocolHeader, StreamItem,
};
use eventhubs::amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use eventhubs::amqp::types::error::condition;
use eventhubs::amqp::types::messaging::{Source, Target};
use eventhubs::amqp::types::transport::{Attach, Begin, Flow, Open, Performative};
use eventhubs::amqp::{ConnectOptions, Connection, Error};
use eventhubs::amqp::{Listener, ListenerOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound far below the default, so the test fills it in moments.
const BOUND: usize = 256 * 1024;
/// What the kernel may hold in the two socket buffers on top of our queue (generous).
const SOCKET_SLACK: usize = 80 * 1024 * 1024;
/// What the endpoint may queue past the bound: the answers to one 64 KiB read (a long attach
/// is answered by an attach and a detach that echo its addresses), with room to spare.
const ANSWER_SLACK: usize = 1024 * 1024;

/// Checks that the flood filled the endpoint's output queue to the bound and no further than
/// the answers to one read past it, and that the hit was logged as it should be.
fn assert_held_at_the_bound(conn: &Connection, logs: &str) {
    let peak = conn.queued_output_peak();
    assert!(
        peak > BOUND,
        "the flood never reached the bound: peak {peak} B"
    );
    assert!(peak <= BOUND + ANSWER_SLACK, "queued {peak} B");
    assert_limit_logged(logs);
}

/// Checks the log lines of limit hits: each names the peer's address and the limit, and the
/// queued-output limit is reported once however long the flood went on.
fn assert_limit_logged(logs: &str) {
    let hits: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("peer exceeded a connection limit"))
        .collect();
    assert!(!hits.is_empty(), "no limit hit logged:\n{logs}");
    for line in &hits {
        assert!(line.contains("peer=127.0.0.1:"), "no peer address: {line}");
        assert!(line.contains("limit="), "no limit name: {line}");
    }
    let queued = hits
        .iter()
        .filter(|l| l.contains("limit=\"max_queued_output\""))
        .count();
    assert_eq!(queued, 1, "{hits:#?}");
}

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_queued_output: BOUND,
        output_stall_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

/// A connection to `port` whose kernel buffers are small, so what the flood leaves queued is
/// mostly in the endpoint, where the bound applies.
async fn small_socket(port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

fn frame(channel: u16, p: impl Into<Performative>) -> Vec<u8> {
    let mut v = Vec::new();
    write_amqp_frame(&mut v, channel, &p.into(), &[]);
    v
}

fn echo_flow() -> Flow {
    Flow {
        next_incoming_id: Some(0),
        incoming_window: 5000,
        next_outgoing_id: 0,
        outgoing_window: 5000,
        echo: true,
        ..Flow::default()
    }
}

fn long_attach(handle: u32) -> Attach {
    let address = "x".repeat(2000);
    Attach {
        name: Str::from(format!("hostile-{handle}")),
        handle,
        role: Role::Sender,
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::First,
        source: Some(Box::new(Source::new(address.as_str()))),
        target: Some(Box::new(Target::new(address.as_str()))),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: Some(0),
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

fn begin() -> Begin {
    Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: 5000,
        outgoing_window: 5000,
        handle_max: u32::MAX,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

/// Writes echo flows (and, with `attaches`, attaches with 2000-char addresses) until the
/// socket has taken nothing for longer than the endpoint's stall timeout (so it has given
/// up on us by then); returns the bytes written.
async fn flood(wr: &mut tokio::net::tcp::OwnedWriteHalf, channel: u16, attaches: bool) -> usize {
    let mut chunk = Vec::new();
    for _ in 0..200 {
        chunk.extend(frame(channel, echo_flow()));
    }
    let mut written = 0;
    let mut handle = 0u32;
    loop {
        let mut batch = chunk.clone();
        // Within the session's handle-max (1023): beyond it the session would end, and an
        // ended session answers nothing.
        if attaches && handle < 1000 {
            for _ in 0..20 {
                batch.extend(frame(channel, long_attach(handle)));
                handle += 1;
            }
        }
        match tokio::time::timeout(Duration::from_millis(1500), wr.write_all(&batch)).await {
            Ok(Ok(())) => written += batch.len(),
            // Blocked (we are not being read) or closed: either way the flood is over.
            Ok(Err(_)) | Err(_) => return written,
        }
    }
}

/// Reads everything the endpoint sent until it hangs up; returns the bytes and the error of its last close.
async fn drain(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
) -> (usize, Option<eventhubs::amqp::types::error::AmqpError>) {
    let mut frames = FrameReader::new(1 << 20);
    let mut total = 0;
    let mut close = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        total += n;
        frames.push(&buf[..n]);
        while let Some(item) = frames.next_item().expect("frames parse") {
            if let StreamItem::Frame(raw) = item {
                if let Ok(AmqpFrame {
                    performative: Some(Performative::Close(c)),
                    ..
                }) = AmqpFrame::decode(raw)
                {
                    close = Some(c.error);
                }
            }
        }
    }
    (total, close.flatten())
}

#[tokio::test]
async fn a_listener_closes_a_peer_that_floods_and_never_reads() {
    let (logs, _guard) = support::LogCapture::start();
    let options = ListenerOptions::default()
        .with_config(ListenerOptions::default().config.with_limits(limits()));
    let listener = Listener::bind("127.0.0.1:0", options).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        let mut conn = incoming.handshake().await.unwrap();
        let handle = conn.connection();
        while let Some(link) = conn.next_link().await {
            link.refuse(eventhubs::amqp::types::error::AmqpError::with_description(
                condition::NOT_FOUND,
                "no such node",
            ));
        }
        handle
    });

    let tcp = small_socket(port).await;
    let (mut rd, mut wr) = tcp.into_split();
    let mut hello = ProtocolHeader::AMQP.to_bytes().to_vec();
    hello.extend(frame(
        0,
        Open {
            container_id: Str::from("hostile"),
            max_frame_size: 65536,
            channel_max: 255,
            ..Open::default()
        },
    ));
    hello.extend(frame(0, begin()));
    wr.write_all(&hello).await.unwrap();

    let written = flood(&mut wr, 0, true).await;
    assert!(written > 0);
    // What the endpoint sent us is its bound plus what the kernel held, not the hundreds of
    // megabytes an endpoint that kept reading and answering would have queued.
    let (read, error) = drain(&mut rd).await;
    assert!(read < BOUND * 4 + SOCKET_SLACK, "read {read} B");
    let error = error.expect("a close with an error");
    assert_eq!(error.condition, condition::RESOURCE_LIMIT_EXCEEDED);
    drop(wr);
    let handle = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server loop ends with the connection")
        .unwrap();
    assert_held_at_the_bound(&handle, &logs.text());
}

#[tokio::test]
async fn a_client_closes_a_server_that_floods_and_never_reads() {
    let (logs, _guard) = support::LogCapture::start();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let tcp_listener = socket.listen(8).unwrap();
    let port = tcp_listener.local_addr().unwrap().port();
    let hostile = tokio::spawn(async move {
        let (tcp, _) = tcp_listener.accept().await.unwrap();
        // Small buffers on the hostile side too (a listener's accepted sockets take its own).
        let (mut rd, mut wr) = tcp.into_split();
        let mut header = [0u8; 8];
        rd.read_exact(&mut header).await.unwrap();
        let mut hello = ProtocolHeader::AMQP.to_bytes().to_vec();
        hello.extend(frame(
            0,
            Open {
                container_id: Str::from("hostile-server"),
                max_frame_size: 65536,
                channel_max: 255,
                ..Open::default()
            },
        ));
        hello.extend(frame(0, begin()));
        wr.write_all(&hello).await.unwrap();
        // The client's open and begin answer are read; after that, nothing more.
        let mut first = vec![0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), rd.read(&mut first)).await;
        let written = flood(&mut wr, 0, false).await;
        let drained = drain(&mut rd).await;
        (written, drained)
    });

    let mut options = ConnectOptions::new("127.0.0.1", port);
    options.config = ConnectionConfig::default().with_limits(limits());
    let conn = Connection::connect(options).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let error = loop {
        match conn.open_session().await {
            Err(Error::ConnectionClosed(Some(e))) => break e,
            _ if tokio::time::Instant::now() > deadline => panic!("the client never closed"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(error.condition, condition::RESOURCE_LIMIT_EXCEEDED);
    let (written, (read, close)) = hostile.await.unwrap();
    assert!(written > 0);
    assert!(read < BOUND * 4 + SOCKET_SLACK, "read {read} B");
    assert_eq!(
        close.expect("a close with an error").condition,
        condition::RESOURCE_LIMIT_EXCEEDED
    );
    assert_held_at_the_bound(&conn, &logs.text());
}
