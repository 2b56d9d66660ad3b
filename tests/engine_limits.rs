//! The engine's per-connection limits, sans-IO: a peer that begins too many sessions, attaches
//! too many links, leaves too many attaches waiting or too many deliveries unsettled gets a
//! close with `amqp:resource-limit-exceeded`, and nothing in the engine grows past the limit.

mod common_engine;

use common_engine::*;
use eventhubs::amqp::engine::{ConnectionConfig, ConnectionLimits, Event, LinkAcceptance};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::error::condition;
use eventhubs::amqp::types::messaging::Target;
use eventhubs::amqp::types::transport::Performative;

fn server(limits: ConnectionLimits) -> Scripted {
    Scripted::opened_server(
        ConnectionConfig::default().with_limits(limits),
        open("hostile"),
    )
}

/// The condition of the close the engine wrote, if it wrote one.
fn close_condition(s: &mut Scripted) -> Option<String> {
    s.perfs().into_iter().find_map(|(_, p)| match p {
        Performative::Close(c) => c.error.map(|e| e.condition.to_string()),
        _ => None,
    })
}

#[test]
fn too_many_sessions_close_the_connection() {
    let mut s = server(ConnectionLimits {
        max_sessions: 3,
        ..ConnectionLimits::default()
    });
    for channel in 0..3 {
        s.feed_perf(channel, begin(None, 100));
    }
    assert_eq!(close_condition(&mut s), None);
    s.feed_perf(3, begin(None, 100));
    assert_eq!(
        close_condition(&mut s).as_deref(),
        Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str())
    );
    assert!(s.conn.is_closed());
}

#[test]
fn too_many_links_close_the_connection() {
    let mut s = server(ConnectionLimits {
        max_links: 4,
        ..ConnectionLimits::default()
    });
    s.feed_perf(0, begin(None, 100));
    let mut accepted = 0;
    for handle in 0..4 {
        s.feed_perf(0, attach(&format!("l{handle}"), handle, Role::Sender));
        for e in s.events() {
            if let Event::LinkAttachRequested { link, .. } = e {
                let acceptance = LinkAcceptance::default().with_target(Target::new("tgt"));
                s.conn.accept_link(link, acceptance).unwrap();
                accepted += 1;
            }
        }
    }
    assert_eq!(accepted, 4);
    assert_eq!(close_condition(&mut s), None);
    s.feed_perf(0, attach("one-too-many", 4, Role::Sender));
    assert_eq!(
        close_condition(&mut s).as_deref(),
        Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str())
    );
}

#[test]
fn attaches_left_waiting_close_the_connection() {
    let mut s = server(ConnectionLimits {
        max_pending_attaches: 2,
        ..ConnectionLimits::default()
    });
    s.feed_perf(0, begin(None, 100));
    s.feed_perf(0, attach("a", 0, Role::Sender));
    s.feed_perf(0, attach("b", 1, Role::Sender));
    assert_eq!(close_condition(&mut s), None);
    s.feed_perf(0, attach("c", 2, Role::Sender));
    assert_eq!(
        close_condition(&mut s).as_deref(),
        Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str())
    );
}

#[test]
fn too_many_unsettled_deliveries_close_the_connection() {
    let mut s = server(ConnectionLimits {
        max_unsettled: 3,
        ..ConnectionLimits::default()
    });
    s.feed_perf(0, begin(None, 100));
    s.feed_perf(0, attach("in", 0, Role::Sender));
    let link = s
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::LinkAttachRequested { link, .. } => Some(link),
            _ => None,
        })
        .unwrap();
    let acceptance = LinkAcceptance::default().with_target(Target::new("tgt"));
    s.conn.accept_link(link, acceptance).unwrap();
    s.conn.add_credit(link, 100);
    s.collect();
    for id in 0..3 {
        s.feed_transfer(0, transfer(0, id, false), b"x");
    }
    assert_eq!(deliveries(&s.events()).len(), 3);
    assert_eq!(close_condition(&mut s), None);
    s.feed_transfer(0, transfer(0, 3, false), b"x");
    assert_eq!(
        deliveries(&s.events()).len(),
        0,
        "the fourth is not handed out"
    );
    assert_eq!(
        close_condition(&mut s).as_deref(),
        Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str())
    );
}
