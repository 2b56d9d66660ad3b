//! Frames that cannot be split must still fit the peer's max-frame-size: an attach that would
//! not fit is refused locally (`amqp:frame-size-too-small`), never written.

use eventhubs::amqp::codec::{Symbol, Value};
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, Event, LinkAcceptance, LinkConfig, SessionConfig,
};
use eventhubs::amqp::frame::FrameReader;
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::messaging::{Source, Target};
use std::time::Instant;

fn pump(a: &mut Connection, b: &mut Connection, now: Instant) {
    loop {
        let mut moved = false;
        if let Some(bytes) = a.poll_transmit() {
            // Every frame either side writes fits the limit both announced (512).
            check_frames(&bytes);
            b.handle_bytes(&bytes, now);
            moved = true;
        }
        if let Some(bytes) = b.poll_transmit() {
            check_frames(&bytes);
            a.handle_bytes(&bytes, now);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// Checks that every frame between the protocol headers fits a 512-byte peer.
fn check_frames(bytes: &[u8]) {
    let mut reader = FrameReader::new(512);
    reader.push(bytes);
    while reader
        .next_item()
        .unwrap_or_else(|e| panic!("written to a 512-byte peer: {e}"))
        .is_some()
    {}
    assert!(reader.buffered().is_empty(), "a frame was cut short");
}

fn small() -> ConnectionConfig {
    ConnectionConfig::default().with_max_frame_size(512)
}

fn big_properties() -> Option<Vec<(Symbol, Value)>> {
    Some(vec![(Symbol::from("blob"), Value::from("x".repeat(600)))])
}

#[test]
fn an_attach_too_large_for_the_peer_is_refused_not_written() {
    let now = Instant::now();
    let mut client = Connection::client(small(), now);
    let mut server = Connection::server(small(), now);
    pump(&mut client, &mut server, now);
    let s = client.begin_session(SessionConfig::default()).unwrap();
    pump(&mut client, &mut server, now);
    let e = client
        .attach(s, {
            let mut o = LinkConfig::default()
                .with_name("big".into())
                .with_role(Role::Sender)
                .with_target(Target::new("q"));
            o.properties = big_properties();
            o
        })
        .unwrap_err();
    assert_eq!(e.condition.as_str(), "amqp:frame-size-too-small");
    assert!(e.description_str().contains("512"), "{e}");
    // A normal attach still works, so the refusal left nothing half-done.
    client
        .attach(
            s,
            LinkConfig::default()
                .with_name("ok".into())
                .with_role(Role::Sender)
                .with_target(Target::new("q")),
        )
        .unwrap();
    pump(&mut client, &mut server, now);
    let requested: Vec<_> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            Event::LinkAttachRequested { link, attach, .. } => Some((link, attach)),
            _ => None,
        })
        .collect();
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].1.name.as_str(), "ok");

    // The server cannot answer with a huge terminus either, but can still refuse the link.
    let (link, _) = requested[0].clone();
    let e = server
        .accept_link(
            link,
            LinkAcceptance::default().with_source(Source::new("s".repeat(600).as_str())),
        )
        .unwrap_err();
    assert_eq!(e.condition.as_str(), "amqp:frame-size-too-small");
    server
        .refuse_link(
            link,
            eventhubs::amqp::types::error::AmqpError::with_description(
                eventhubs::amqp::types::error::condition::NOT_ALLOWED,
                "too large",
            ),
        )
        .unwrap();
    pump(&mut client, &mut server, now);
    let detached = std::iter::from_fn(|| client.poll_event()).any(|e| {
        matches!(e, Event::LinkDetached { error: Some(ref err), .. } if err.condition.as_str() == "amqp:not-allowed")
    });
    assert!(detached, "the refusal reaches the client");
}
