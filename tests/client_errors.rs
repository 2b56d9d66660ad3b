//! Failure paths against the emulator: bad connection strings, wrong keys, unknown hub,
//! partition and consumer group, oversized events, owner levels, sends the service rejects.

mod client_common;
mod support;

use client_common::*;
use eventhubs::amqp::codec::Symbol;
use eventhubs::amqp::types::error::AmqpError;
use eventhubs::{
    BatchOptions, ConsumerOptions, ErrorKind, EventData, EventHubClient, EventHubClientBuilder,
    EventPosition, ProducerOptions,
};
use std::time::Duration;
use support::{emulator, init_tracing};

#[test]
fn bad_connection_strings_name_the_key() {
    for (cs, hub, needle) in [
        (
            "SharedAccessKeyName=a;SharedAccessKey=b",
            Some("h"),
            "Endpoint",
        ),
        (
            "Endpoint=sb://h/;SharedAccessKeyName=a",
            Some("h"),
            "SharedAccessKey",
        ),
        (
            "Endpoint=sb://h/;SharedAccessKey=b",
            Some("h"),
            "SharedAccessKeyName",
        ),
        (
            "Endpoint=nonsense;SharedAccessKeyName=a;SharedAccessKey=b",
            Some("h"),
            "Endpoint",
        ),
        (
            "Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=b",
            None,
            "EntityPath",
        ),
        (
            "Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=b;EntityPath=x",
            Some("y"),
            "EntityPath",
        ),
        (
            "Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=maybe",
            Some("h"),
            "UseDevelopmentEmulator",
        ),
        (
            "Endpoint=sb://h/;SharedAccessSignature=garbage",
            Some("h"),
            "SharedAccessSignature",
        ),
        ("Endpoint=sb://h/;Nonsense", Some("h"), "segment 1"),
    ] {
        let e = EventHubClient::from_connection_string(cs, hub).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{cs}");
        assert!(!e.is_transient());
        assert!(e.to_string().contains(needle), "{cs}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_an_authentication_error() {
    let emu = emulator().await;
    let cs = emu.connection_string().replace("SAS_KEY_VALUE", "wrong");
    let client = EventHubClientBuilder::from_connection_string(&cs, Some("eh1"))
        .unwrap()
        .retry(fast_retry())
        .build()
        .unwrap();
    let e = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(e.is_connect_error());
    assert!(!e.is_transient());
    // The text names the plain endpoint dialled, not the token audience's `amqps://` form.
    let port = emu.local_addr().port();
    let text = e.to_string();
    assert!(
        text.contains(&format!("eh1/Partitions/0 at amqp://localhost:{port}")),
        "{text}"
    );
    assert!(!text.contains("amqps://"), "{text}");
    let e = client.get_properties().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!e.to_string().contains("amqps://"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connect_error() {
    init_tracing();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cs = format!("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true");
    let client = EventHubClientBuilder::from_connection_string(&cs, Some("eh1"))
        .unwrap()
        .retry(
            eventhubs::RetryOptions::default()
                .with_max_retries(1)
                .with_delay(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let e = client.get_partition_ids().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hub_partition_and_group() {
    let emu = emulator().await;
    let nohub =
        EventHubClientBuilder::from_connection_string(&emu.connection_string(), Some("nope"))
            .unwrap()
            .retry(fast_retry())
            .build()
            .unwrap();
    let e = nohub
        .create_producer(ProducerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(!e.is_transient());
    let e = nohub.get_properties().await.unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let client = client(&emu);
    let e = client
        .create_producer(ProducerOptions::partition("9"))
        .await
        .unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client.get_partition_properties("9").await.unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client
        .create_consumer(
            "nogroup",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = client
        .create_consumer(
            "$default",
            "7",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.condition(), Some("amqp:not-found"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // The connection survives refused links.
    assert_eq!(client.get_partition_ids().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_events_name_the_sizes() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    let big = EventData::from(vec![7u8; 2 * 1024 * 1024]);
    let e = producer.send(big.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventData, "{e}");
    assert!(
        e.to_string().contains("1048576") && e.to_string().contains("2097"),
        "{e}"
    );
    let e = producer
        .send(vec![EventData::from("small"), big.clone()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventData, "{e}");
    assert!(e.to_string().contains("1048576"), "{e}");
    let half: Vec<_> = (0..3)
        .map(|_| EventData::from(vec![1u8; 400_000]))
        .collect();
    let e = producer.send(half).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventData, "{e}");
    let mut batch = producer
        .create_batch(BatchOptions::default())
        .await
        .unwrap();
    let back = batch.try_add(big).unwrap_err();
    assert_eq!(back.body().len(), 2 * 1024 * 1024);
    let e = batch.add(back).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventData);
    // Just under the limit still goes through.
    let fits = EventData::from(vec![3u8; 1024 * 1024 - 64]);
    producer.send(fits).await.unwrap();
    let info = client.get_partition_properties("0").await.unwrap();
    assert_eq!(info.last_enqueued_sequence_number, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_owner_level_disconnects_the_consumer() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    producer.send(EventData::from("one")).await.unwrap();
    let opts = |level| ConsumerOptions::default().with_owner_level(level);
    let mut first = client
        .create_consumer("$default", "0", EventPosition::earliest(), opts(1))
        .await
        .unwrap();
    assert_eq!(
        first
            .receive(10, Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        1
    );
    let mut second = client
        .create_consumer("$default", "0", EventPosition::earliest(), opts(2))
        .await
        .unwrap();
    let e = first.receive(10, Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConsumerDisconnected, "{e}");
    assert_eq!(e.condition(), Some("amqp:link:stolen"));
    assert!(!e.is_transient());
    // Sticky: no silent re-attach that would steal the partition back.
    let e = first.receive(10, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConsumerDisconnected);
    assert_eq!(
        second
            .receive(10, Duration::from_secs(5))
            .await
            .unwrap()
            .len(),
        1
    );
    // A lower level cannot take over.
    let e = client
        .create_consumer("$default", "0", EventPosition::earliest(), opts(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConsumerDisconnected, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_enqueued_event_properties_are_tracked() {
    let emu = emulator().await;
    let client = client(&emu);
    let producer = client
        .create_producer(ProducerOptions::partition("2"))
        .await
        .unwrap();
    for i in 0..5 {
        producer
            .send(EventData::from(format!("{i}")))
            .await
            .unwrap();
    }
    let mut c = client
        .create_consumer(
            "$default",
            "2",
            EventPosition::earliest(),
            ConsumerOptions::default().with_track_last_enqueued_event_properties(true),
        )
        .await
        .unwrap();
    let got = c.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    let last = c.last_enqueued_event_properties().expect("runtime metrics");
    assert_eq!(last.sequence_number, Some(4));
    assert!(last.offset.is_some());
    assert!(last.enqueued_time.is_some());
}

fn amqp_error(condition: &'static str, description: &'static str) -> AmqpError {
    AmqpError::with_description(Symbol::from_static(condition), description)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_sends_are_retried_when_transient_and_surfaced_when_not() {
    let emu = emulator().await;
    let client = builder(&emu)
        .retry(
            eventhubs::RetryOptions::default()
                .with_max_retries(2)
                .with_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();

    // A transient rejection is retried and the caller sees only a delay; the event is stored
    // once, by the attempt that was accepted.
    emu.reject_next_sends([amqp_error("com.microsoft:server-busy", "busy")]);
    producer.send(EventData::from("after busy")).await.unwrap();
    assert_eq!(emu.pending_send_faults(), 0);
    assert_eq!(
        emu.partition_info("eh1", 0).unwrap().last_sequence_number,
        0
    );

    // A permanent rejection is surfaced at once, with its condition and description.
    emu.reject_next_sends([
        amqp_error("amqp:not-allowed", "no such thing"),
        amqp_error("com.microsoft:server-busy", "must stay queued"),
    ]);
    let e = producer.send(EventData::from("refused")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventDataSend, "{e}");
    assert_eq!(e.condition(), Some("amqp:not-allowed"));
    assert_eq!(e.description(), Some("no such thing"));
    assert!(!e.is_transient());
    assert_eq!(emu.pending_send_faults(), 1, "not retried");

    // Transient rejections past the retry budget: 1 attempt + 2 retries, then the error.
    emu.reject_next_sends(std::iter::repeat_n(
        amqp_error("com.microsoft:server-busy", "still busy"),
        4,
    ));
    let e = producer
        .send(vec![EventData::from("a"), EventData::from("b")])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EventDataSend, "{e}");
    assert_eq!(e.condition(), Some("com.microsoft:server-busy"));
    assert!(e.is_transient());
    assert_eq!(emu.pending_send_faults(), 1 + 4 - 3);

    // The remaining fault is used by the next send's first attempt, which is then retried;
    // nothing rejected was stored.
    producer.send(EventData::from("last")).await.unwrap();
    assert_eq!(emu.pending_send_faults(), 0);
    let info = emu.partition_info("eh1", 0).unwrap();
    assert_eq!(info.last_sequence_number, 1, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_service_is_an_operation_timeout() {
    init_tracing();
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            sockets.push(s);
        }
    });
    let cs = format!("Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true");
    let client = EventHubClientBuilder::from_connection_string(&cs, Some("eh1"))
        .unwrap()
        .operation_timeout(Duration::from_millis(300))
        .retry(
            eventhubs::RetryOptions::default()
                .with_max_retries(1)
                .with_delay(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = client.get_partition_ids().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OperationTimeout, "{e}");
    assert!(e.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeout and the retry budget: {:?}",
        started.elapsed()
    );
    let e = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OperationTimeout, "{e}");
    held.abort();
}
