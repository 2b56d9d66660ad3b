//! `EventHubConsumer::stream()` as a `futures_core::Stream` against the emulator: order across
//! the buffered and the waiting path, nothing lost when a stream is dropped half way, and the
//! end after a permanent error.

mod client_common;
mod support;

use client_common::*;
use eventhubs::{ConsumerOptions, ErrorKind, EventData, EventPosition, ProducerOptions};
use futures_core::Stream;
use std::pin::Pin;
use std::time::Duration;
use support::emulator;

/// The next item through the trait alone, as any stream combinator would poll it.
async fn poll_next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

async fn send_range(producer: &eventhubs::EventHubProducer, range: std::ops::Range<u32>) {
    let events: Vec<EventData> = range.map(|i| EventData::from(format!("e{i}"))).collect();
    producer.send(events).await.unwrap();
}

/// Partition `p` given events `e0..e{n}`, and a consumer of it from its start with `prefetch`.
async fn filled(
    client: &eventhubs::EventHubClient,
    p: &str,
    n: u32,
    prefetch: u32,
) -> (eventhubs::EventHubProducer, eventhubs::EventHubConsumer) {
    let producer = client
        .create_producer(ProducerOptions::partition(p))
        .await
        .unwrap();
    send_range(&producer, 0..n).await;
    let consumer = client
        .create_consumer(
            "$default",
            p,
            EventPosition::earliest(),
            ConsumerOptions::default().with_prefetch(prefetch),
        )
        .await
        .unwrap();
    (producer, consumer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_in_order_and_dropping_it_loses_nothing() {
    let emu = emulator().await;
    let client = client(&emu);
    let (producer, mut consumer) = filled(&client, "3", 500, 40).await;

    let mut next = 0i64;
    {
        let mut stream = consumer.stream();
        while next < 123 {
            let e = poll_next(&mut stream).await.unwrap().unwrap();
            assert_eq!(e.sequence_number(), Some(next));
            assert_eq!(e.body_as_str().unwrap(), format!("e{next}"));
            next += 1;
        }
        // Dropped with prefetched events still on the link.
    }
    assert_eq!(consumer.last_sequence_number(), Some(122));
    let after_drop = consumer.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(after_drop[0].sequence_number(), Some(123), "no gap");
    next += 1;

    // The waiting path: the stream is polled before the events exist.
    let mut stream = consumer.stream();
    let sender = {
        let producer = producer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            send_range(&producer, 500..700).await;
        })
    };
    while next < 700 {
        let e = stream.next().await.unwrap().unwrap();
        assert_eq!(e.sequence_number(), Some(next));
        next += 1;
    }
    sender.await.unwrap();
    // Nothing more: the stream waits rather than ending.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), poll_next(&mut stream))
            .await
            .is_err()
    );
    drop(stream);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ends_after_the_partition_is_taken_over() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    send_range(&producer, 0..5).await;
    let opts = |level| ConsumerOptions::default().with_owner_level(level);
    let mut first = client
        .create_consumer("$default", "1", EventPosition::earliest(), opts(1))
        .await
        .unwrap();
    let mut stream = first.stream();
    for i in 0..5 {
        let e = poll_next(&mut stream).await.unwrap().unwrap();
        assert_eq!(e.sequence_number(), Some(i));
    }
    let _second = client
        .create_consumer("$default", "1", EventPosition::earliest(), opts(2))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), poll_next(&mut stream))
        .await
        .expect("the takeover reaches the stream")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConsumerDisconnected, "{e}");
    assert!(poll_next(&mut stream).await.is_none(), "ended");
    assert!(stream.next().await.is_none(), "and stays ended");
}

/// `receive` cancelled at every point it can be (a `select!` that gives up as soon as the call
/// waits) still hands out every event exactly once, in order: a batch taken from the link
/// while the call let the driver send credit comes back on the next call or the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_receive_loses_no_event() {
    let emu = emulator().await;
    let client = client(&emu);
    let (_producer, mut consumer) = filled(&client, "1", 1000, 300).await;
    let mut next = 0i64;
    let mut cancelled = 0u32;
    let check = |e: &EventData, next: &mut i64| {
        assert_eq!(e.sequence_number(), Some(*next), "in order, no gap");
        assert_eq!(e.body_as_str().unwrap(), format!("e{next}"));
        *next += 1;
    };
    while next < 900 {
        tokio::select! {
            biased;
            r = consumer.receive(300, Duration::from_secs(5)) => {
                for e in r.unwrap() {
                    check(&e, &mut next);
                }
            }
            _ = std::future::ready(()) => {
                cancelled += 1;
                // Lets the prefetch fill up, so the next call takes a batch large enough to
                // grant credit.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(cancelled < 10_000, "no progress at {next}");
    }
    assert!(cancelled > 0);
    // The rest through the stream, which also returns a kept batch first.
    let mut stream = consumer.stream();
    while next < 1000 {
        let e = poll_next(&mut stream).await.unwrap().unwrap();
        check(&e, &mut next);
    }
}
