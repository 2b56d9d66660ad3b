//! A client engine and a server engine joined in memory: the basic life of a connection.

use bytes::Bytes;
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, Event, LinkAcceptance, LinkConfig, SessionConfig,
};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::messaging::{DeliveryState, Target};
use std::time::Instant;

fn pump(a: &mut Connection, b: &mut Connection, now: Instant) {
    loop {
        let mut moved = false;
        if let Some(bytes) = a.poll_transmit() {
            b.handle_bytes(&bytes, now);
            moved = true;
        }
        if let Some(bytes) = b.poll_transmit() {
            a.handle_bytes(&bytes, now);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn client_sends_to_server_and_gets_outcomes() {
    let now = Instant::now();
    let mut client = Connection::client(ConnectionConfig::default(), now);
    let mut server = Connection::server(ConnectionConfig::default(), now);
    pump(&mut client, &mut server, now);
    assert!(matches!(events(&mut client)[0], Event::Opened { .. }));
    assert!(matches!(events(&mut server)[0], Event::Opened { .. }));

    let s = client.begin_session(SessionConfig::default()).unwrap();
    let link = client
        .attach(
            s,
            LinkConfig::default()
                .with_name("sender-1".into())
                .with_role(Role::Sender)
                .with_target(Target::new("q1")),
        )
        .unwrap();
    pump(&mut client, &mut server, now);
    let server_link = events(&mut server)
        .into_iter()
        .find_map(|e| match e {
            Event::LinkAttachRequested { link, .. } => Some(link),
            _ => None,
        })
        .expect("attach requested");
    server
        .accept_link(server_link, LinkAcceptance::default())
        .unwrap();
    server.add_credit(server_link, 100);
    pump(&mut client, &mut server, now);
    assert!(events(&mut client)
        .iter()
        .any(|e| matches!(e, Event::Credit { credit: 100, .. })));

    for i in 0..10u8 {
        client
            .send(link, Bytes::from(vec![i; 2000]), 0, false)
            .unwrap();
    }
    pump(&mut client, &mut server, now);
    let deliveries: Vec<_> = events(&mut server)
        .into_iter()
        .filter_map(|e| match e {
            Event::Delivery { delivery, .. } => Some(delivery),
            _ => None,
        })
        .collect();
    assert_eq!(deliveries.len(), 10);
    for (i, d) in deliveries.iter().enumerate() {
        assert_eq!(d.payload, Bytes::from(vec![i as u8; 2000]));
        server.settle(
            server_link,
            d.delivery_id,
            Some(DeliveryState::Accepted(Default::default())),
        );
    }
    pump(&mut client, &mut server, now);
    let outcomes = events(&mut client)
        .into_iter()
        .filter(|e| matches!(e, Event::Outcome { settled: true, .. }))
        .count();
    assert_eq!(outcomes, 10);

    client.close(None);
    pump(&mut client, &mut server, now);
    assert!(events(&mut server)
        .iter()
        .any(|e| matches!(e, Event::Closed { by_peer: true, .. })));
    assert!(client.is_closed() && server.is_closed());
}
