//! The consumer decodes a delivery before it settles it: an event that does not decode comes
//! out as an `EventData` error naming its sequence number, and reading goes on with the next
//! event (through `receive` and through the stream).
//!
//! The emulator only stores what decodes, so the undecodable event is made on the way: a proxy
//! between our consumer and the emulator turns the body section descriptor of each event whose
//! body is [`POISON`] into one no AMQP message has (same length, so the frames stay whole).

mod client_common;
mod support;

use bytes::{Bytes, BytesMut};
use eventhubs::{ErrorKind, EventHubConsumer};
use eventhubs::{EventData, EventHubClientBuilder, EventPosition, ProducerOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POISON: &[u8] = b"poison-event";

/// Offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Forwards whole frames (and protocol headers) from the emulator, breaking poisoned events.
async fn corrupt_stream(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    // A data section holding POISON: descriptor 0x75, vbin8 of its length, the bytes.
    let mut section = vec![0x00, 0x53, 0x75, 0xa0, POISON.len() as u8];
    section.extend_from_slice(POISON);
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            let out: Bytes = if buf.len() >= 8 && buf.starts_with(b"AMQP") {
                buf.split_to(8).freeze()
            } else {
                let size = match buf.get(..4) {
                    Some(h) => u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize,
                    None => break,
                };
                if buf.len() < size.max(8) {
                    break;
                }
                let mut frame = buf.split_to(size);
                if let Some(at) = find(&frame, &section) {
                    frame[at + 2] = 0x7f;
                }
                frame.freeze()
            };
            if to.write_all(&out).await.is_err() {
                return;
            }
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A proxy to `upstream` whose emulator-to-client direction goes through [`corrupt_stream`].
async fn poisoning_proxy(upstream: std::net::SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut down_r, down_w) = down.into_split();
                let (up_r, mut up_w) = up.into_split();
                tokio::spawn(corrupt_stream(up_r, down_w));
                let _ = tokio::io::copy(&mut down_r, &mut up_w).await;
            });
        }
    });
    port
}

/// A consumer of partition 0 from earliest, through the poisoning proxy, after sending `bodies`
/// there directly.
async fn consumer_over_poison(
    emulator: &eventhubs::emulator::Emulator,
    bodies: &[&'static [u8]],
) -> (eventhubs::EventHubClient, EventHubConsumer) {
    let direct = client_common::client(emulator);
    let producer = direct
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    for b in bodies {
        producer.send(EventData::new(*b)).await.unwrap();
    }
    producer.close().await.unwrap();
    direct.close().await.unwrap();

    let port = poisoning_proxy(emulator.local_addr()).await;
    let conn_str = emulator.connection_string().replace(
        &format!(":{};", emulator.local_addr().port()),
        &format!(":{port};"),
    );
    let client = EventHubClientBuilder::from_connection_string(&conn_str, Some("eh1"))
        .unwrap()
        .retry(client_common::fast_retry())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let consumer = client
        .create_consumer(
            "$Default",
            "0",
            EventPosition::earliest(),
            Default::default(),
        )
        .await
        .unwrap();
    (client, consumer)
}

fn assert_undecodable(e: &eventhubs::Error, seq: i64) {
    assert_eq!(e.kind(), ErrorKind::EventData, "{e:?}");
    assert!(!e.is_transient(), "{e:?}");
    let named = format!("sequence number {seq})");
    assert!(e.to_string().contains(&named), "{e} should name {named:?}");
}

#[tokio::test]
async fn receive_returns_the_events_before_an_undecodable_one_then_its_error_then_the_rest() {
    let emulator = support::emulator().await;
    let (client, mut consumer) =
        consumer_over_poison(&emulator, &[b"e0", b"e1", POISON, b"e3"]).await;

    // However the events are batched, the two before the undecodable one all come out first.
    let mut before = Vec::new();
    let err = loop {
        match consumer.receive(10, Duration::from_secs(10)).await {
            Ok(batch) => {
                assert!(!batch.is_empty(), "events did not arrive");
                before.extend(batch);
            }
            Err(e) => break e,
        }
    };
    let bodies: Vec<&[u8]> = before.iter().map(|e| e.body().as_ref()).collect();
    assert_eq!(bodies, [b"e0".as_slice(), b"e1"]);
    assert_undecodable(&err, 2);
    assert_eq!(
        consumer.last_sequence_number(),
        Some(2),
        "the position moved past it"
    );
    let rest = consumer.receive(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].body().as_ref(), b"e3");
    assert_eq!(rest[0].sequence_number(), Some(3));

    consumer.close().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_stream_yields_an_undecodable_event_as_an_error_and_goes_on() {
    let emulator = support::emulator().await;
    let (client, mut consumer) =
        consumer_over_poison(&emulator, &[POISON, b"e1", POISON, b"e3"]).await;

    let mut stream = consumer.stream();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream goes on")
            .expect("the stream has not ended");
        seen.push(next);
    }
    drop(stream);
    assert_undecodable(seen[0].as_ref().unwrap_err(), 0);
    assert_eq!(seen[1].as_ref().unwrap().body().as_ref(), b"e1");
    assert_undecodable(seen[2].as_ref().unwrap_err(), 2);
    assert_eq!(seen[3].as_ref().unwrap().body().as_ref(), b"e3");
    assert_eq!(consumer.last_sequence_number(), Some(3));

    consumer.close().await.unwrap();
    client.close().await.unwrap();
}
