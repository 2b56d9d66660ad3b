//! Large transfers without copies, engine side: a large payload is handed out as its own
//! chunk (the sender's own memory), output as chunks is byte for byte the contiguous output,
//! input read straight into the engine's buffer gives the same deliveries, and a delivery
//! whose last frame is short (a 64 KiB event in 64 KiB frames) is joined in place.

use bytes::{Bytes, BytesMut};
use eventhubs::amqp::engine::{
    Connection, ConnectionConfig, Delivery, Event, LinkAcceptance, LinkConfig, LinkId,
    SessionConfig,
};
use eventhubs::amqp::types::definitions::Role;
use eventhubs::amqp::types::messaging::Target;
use std::time::Instant;

/// How one side's output is taken.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    Contiguous,
    Chunks,
}

fn take_output(c: &mut Connection, how: Out) -> Vec<Bytes> {
    let mut all = Vec::new();
    match how {
        Out::Contiguous => all.extend(c.poll_transmit()),
        Out::Chunks => {
            while let Some((b, _)) = c.poll_transmit_chunk() {
                all.push(b);
            }
        }
    }
    all
}

/// Feeds `bytes` through `input_buffer` + `handle_input` in pieces of `piece` bytes.
fn feed(c: &mut Connection, bytes: &[u8], piece: usize, now: Instant) {
    for part in bytes.chunks(piece.max(1)) {
        c.input_buffer(part.len(), 256 * 1024)
            .extend_from_slice(part);
        c.handle_input(now);
    }
}

fn pump(a: &mut Connection, b: &mut Connection, how: Out, now: Instant) {
    loop {
        let to_b: Vec<u8> = take_output(a, how).concat();
        let to_a: Vec<u8> = take_output(b, how).concat();
        if to_a.is_empty() && to_b.is_empty() {
            return;
        }
        feed(b, &to_b, usize::MAX, now);
        feed(a, &to_a, usize::MAX, now);
    }
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// An open client/server pair with a sending link from the client, credited. Every engine
/// built from the same `now` writes the same bytes.
fn linked(how: Out, now: Instant) -> (Connection, Connection, LinkId) {
    let mut client = Connection::client(ConnectionConfig::default(), now);
    let mut server = Connection::server(ConnectionConfig::default(), now);
    pump(&mut client, &mut server, how, now);
    let s = client.begin_session(SessionConfig::default()).unwrap();
    let link = client
        .attach(
            s,
            LinkConfig::default()
                .with_name("zero-copy".into())
                .with_role(Role::Sender)
                .with_target(Target::new("q")),
        )
        .unwrap();
    pump(&mut client, &mut server, how, now);
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
    pump(&mut client, &mut server, how, now);
    events(&mut client);
    (client, server, link)
}

fn deliveries(c: &mut Connection) -> Vec<Delivery> {
    events(c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Delivery { delivery, .. } => Some(delivery),
            _ => None,
        })
        .collect()
}

fn body(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

#[test]
fn a_large_payload_goes_out_as_the_senders_own_bytes() {
    let now = Instant::now();
    let (mut client, _server, link) = linked(Out::Chunks, now);
    let payload = body(200_000, 1);
    client.send(link, payload.clone(), 0, false).unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = client.poll_transmit_chunk() {
        chunks.push(c);
    }
    // Frames of at most 64 KiB: header and payload chunks alternate, each payload chunk a
    // slice of the sender's `Bytes`.
    let payload_chunks: Vec<&Bytes> = chunks
        .iter()
        .filter(|(b, _)| within(b, &payload))
        .map(|(b, _)| b)
        .collect();
    // Three full frames go out as slices; the last ~1.6 KB, below the size worth a chunk of
    // its own, is copied behind its header.
    assert_eq!(payload_chunks.len(), 3, "payload chunks");
    let sliced: usize = payload_chunks.iter().map(|b| b.len()).sum();
    assert!(
        payload.len() - sliced < 4096,
        "{sliced} of {} bytes sliced",
        payload.len()
    );
    for w in chunks.windows(2) {
        if within(&w[1].0, &payload) {
            assert!(!w[0].1, "a transfer's header does not end its frame");
            assert!(w[1].1, "its payload does");
        }
    }
}

#[test]
fn chunked_output_is_the_contiguous_output() {
    let now = Instant::now();
    let (mut a, _sa, la) = linked(Out::Contiguous, now);
    let (mut b, _sb, lb) = linked(Out::Chunks, now);
    for (i, len) in [10usize, 5000, 70_000, 65_536, 300, 200_000]
        .into_iter()
        .enumerate()
    {
        let p = body(len, i as u8);
        a.send(la, p.clone(), 0, false).unwrap();
        b.send(lb, p, 0, false).unwrap();
        if i % 2 == 0 {
            continue;
        }
        let contiguous = take_output(&mut a, Out::Contiguous).concat();
        let chunked = take_output(&mut b, Out::Chunks).concat();
        assert_eq!(contiguous, chunked, "after message {i}");
    }
}

#[test]
fn deliveries_read_into_the_input_buffer_are_whole_in_any_pieces() {
    let now = Instant::now();
    let sizes = [1usize, 4095, 4096, 65_000, 65_536, 65_600, 131_072, 300_000];
    for piece in [1usize, 7, 1000, 65_536, 70_000, usize::MAX] {
        let (mut client, mut server, link) = linked(Out::Chunks, now);
        let sent: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| body(n, i as u8))
            .collect();
        for p in &sent {
            client.send(link, p.clone(), 0, true).unwrap();
        }
        let wire = take_output(&mut client, Out::Chunks).concat();
        feed(&mut server, &wire, piece, now);
        let got: Vec<Bytes> = deliveries(&mut server)
            .into_iter()
            .map(|d| d.payload)
            .collect();
        assert_eq!(got, sent, "pieces of {piece}");
    }
}

#[test]
fn a_delivery_with_a_short_last_frame_is_joined_in_place() {
    let now = Instant::now();
    let (mut client, mut server, link) = linked(Out::Chunks, now);
    // Just over one 64 KiB frame: a full frame and a short one.
    let payload = body(65_536 + 100, 3);
    client.send(link, payload.clone(), 0, true).unwrap();
    let wire = take_output(&mut client, Out::Chunks).concat();
    let input: &mut BytesMut = server.input_buffer(wire.len(), wire.len());
    input.extend_from_slice(&wire);
    // Where the bytes sit: the delivery must be a slice of this memory, not a copy.
    let (start, end) = (
        input.as_ptr() as usize,
        input.as_ptr() as usize + input.len(),
    );
    server.handle_input(now);
    let got = deliveries(&mut server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, payload);
    let p = got[0].payload.as_ptr() as usize;
    assert!(
        p >= start && p + payload.len() <= end,
        "the delivery is a slice of the input buffer"
    );
}
