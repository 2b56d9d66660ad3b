//! Recovery against the emulator: token refresh with 5-second tokens while sending, a
//! connection cut mid-send (every acknowledged event present afterwards), and a consumer
//! resuming after a cut without gap or duplicate.

mod client_common;
mod support;

use client_common::*;
use eventhubs::auth::SasCredential;
use eventhubs::{ConsumerOptions, EventData, EventPosition, ProducerOptions};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::{emulator, Proxy};

async fn five_second_tokens_are_refreshed_while_sending(wire: Wire) {
    let emu = wire.emulator().await;
    let client = wire
        .builder(&emu)
        .credential(
            SasCredential::new("RootManageSharedAccessKey", "SAS_KEY_VALUE")
                .with_validity(Duration::from_secs(5)),
        )
        .retry(eventhubs::RetryOptions::none())
        .build()
        .unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    let mut consumer = client
        .create_consumer(
            "$default",
            "1",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let mut sent = 0i64;
    let mut received = 0i64;
    while start.elapsed() < Duration::from_secs(13) {
        producer
            .send(EventData::from(format!("t{sent}")))
            .await
            .unwrap();
        sent += 1;
        for e in consumer
            .receive(100, Duration::from_millis(50))
            .await
            .unwrap()
        {
            assert_eq!(e.sequence_number(), Some(received));
            received += 1;
        }
        if sent % 10 == 0 {
            // Management calls carry the current token too.
            client.get_partition_properties("1").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while received < sent {
        let got = consumer.receive(100, Duration::from_secs(5)).await.unwrap();
        assert!(!got.is_empty());
        received += got.len() as i64;
    }
    assert_eq!(received, sent);
    assert!(sent > 100, "sent only {sent}");
}

/// 3-second SAS tokens whose second issue comes 4 s late, so the first one lapses while in use.
struct SlowRefresh {
    inner: SasCredential,
    calls: std::sync::atomic::AtomicUsize,
}

impl eventhubs::auth::TokenCredential for SlowRefresh {
    fn get_token<'a>(&'a self, audience: &'a str) -> eventhubs::auth::TokenFuture<'a> {
        Box::pin(async move {
            if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            self.inner.get_token(audience).await
        })
    }

    fn token_type(&self) -> &str {
        self.inner.token_type()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_token_is_renewed_and_the_link_reattached() {
    let emu = emulator().await;
    let client = builder(&emu)
        .credential(SlowRefresh {
            inner: SasCredential::new("RootManageSharedAccessKey", "SAS_KEY_VALUE")
                .with_validity(Duration::from_secs(3)),
            calls: Default::default(),
        })
        .build()
        .unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("2"))
        .await
        .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(6) {
        producer
            .send(EventData::from(format!("x{sent}")))
            .await
            .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = client_common::client(&emu)
        .get_partition_properties("2")
        .await
        .unwrap();
    assert!(info.last_enqueued_sequence_number + 1 >= sent);
}

async fn cut_connections_mid_send_lose_no_acknowledged_event(wire: Wire) {
    let emu = wire.emulator().await;
    let proxy = Proxy::start(wire.addr(&emu)).await;
    let client = wire
        .builder(&emu)
        .custom_endpoint("127.0.0.1", proxy.port)
        .build()
        .unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    let total = 2000usize;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sender = {
        let producer = producer.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(50));
            for i in 0..total {
                let permit = sem.clone().acquire_owned().await.unwrap();
                let p = producer.clone();
                let progress = progress.clone();
                set.spawn(async move {
                    let r = p.send(EventData::from(format!("m{i}"))).await;
                    progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    drop(permit);
                    r.map(|_| i)
                });
            }
            let mut acked = HashSet::new();
            while let Some(r) = set.join_next().await {
                acked.insert(r.unwrap().expect("send fails despite recovery"));
            }
            acked
        })
    };
    // Cut the connection each time another fifth of the sends have completed. Sends acked
    // just before a cut can complete while the client is still reconnecting, so a threshold
    // may be reached with no connection up: then wait for the next one to cut.
    let mut cuts = 0;
    for fifth in 1..5 {
        while progress.load(std::sync::atomic::Ordering::Relaxed) < fifth * total / 5 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let killed = proxy.kill_all();
            if killed > 0 || tokio::time::Instant::now() > deadline {
                cuts += killed;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let acked = sender.await.unwrap();
    assert_eq!(acked.len(), total);
    assert_eq!(cuts, 4, "connections cut");
    // Read everything back directly (not through the proxy).
    let direct = wire.builder(&emu).build().unwrap();
    let info = direct.get_partition_properties("0").await.unwrap();
    let n = (info.last_enqueued_sequence_number + 1) as usize;
    assert!(n >= total);
    let mut c = direct
        .create_consumer(
            "$default",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut count = 0;
    while count < n {
        for e in c.receive(500, Duration::from_secs(5)).await.unwrap() {
            let body = e.body_as_str().unwrap().to_owned();
            seen.insert(body[1..].parse::<usize>().unwrap());
            count += 1;
        }
    }
    for i in &acked {
        assert!(seen.contains(i), "acknowledged event m{i} missing");
    }
}

async fn consumer_resumes_after_a_cut_without_gap_or_duplicate(wire: Wire) {
    let emu = wire.emulator().await;
    let direct = wire.builder(&emu).build().unwrap();
    let producer = direct
        .create_producer(ProducerOptions::partition("3"))
        .await
        .unwrap();
    let batch: Vec<_> = (0..300).map(|i| EventData::from(format!("r{i}"))).collect();
    producer.send(batch).await.unwrap();

    let proxy = Proxy::start(wire.addr(&emu)).await;
    let client = wire
        .builder(&emu)
        .custom_endpoint("127.0.0.1", proxy.port)
        .build()
        .unwrap();
    let mut c = client
        .create_consumer(
            "$default",
            "3",
            EventPosition::earliest(),
            ConsumerOptions::default().with_prefetch(20),
        )
        .await
        .unwrap();
    let mut next = 0i64;
    let mut cuts = 0;
    let mut cut_points = vec![333, 201, 100];
    let mut sent_more = false;
    while next < 400 {
        if cut_points.last().is_some_and(|&p| next >= p) {
            cut_points.pop();
            cuts += proxy.kill_all();
        }
        if next >= 250 && !sent_more {
            sent_more = true;
            // More events arrive while the consumer is reading.
            let more: Vec<_> = (300..400)
                .map(|i| EventData::from(format!("r{i}")))
                .collect();
            producer.send(more).await.unwrap();
        }
        let got = c.receive(7, Duration::from_secs(5)).await.unwrap();
        assert!(!got.is_empty(), "stalled at {next}");
        for e in got {
            assert_eq!(e.sequence_number(), Some(next));
            assert_eq!(e.body_as_str().unwrap(), format!("r{next}"));
            next += 1;
        }
    }
    assert!(cuts >= 3, "cuts {cuts}");
    assert!(c
        .receive(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

/// 3-second SAS tokens, each issued 200 ms late, counting issues per audience and the most
/// issues in flight at once.
#[derive(Default)]
struct CountingCredential {
    calls: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

impl eventhubs::auth::TokenCredential for CountingCredential {
    fn get_token<'a>(&'a self, audience: &'a str) -> eventhubs::auth::TokenFuture<'a> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            *self
                .calls
                .lock()
                .unwrap()
                .entry(audience.to_string())
                .or_default() += 1;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_in_flight.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            SasCredential::new("RootManageSharedAccessKey", "SAS_KEY_VALUE")
                .with_validity(Duration::from_secs(3))
                .get_token(audience)
                .await
        })
    }

    fn token_type(&self) -> &str {
        "servicebus.windows.net:sastoken"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tokens_of_live_links_are_refreshed_and_together() {
    use eventhubs::auth::TokenCredential;
    let emu = emulator().await;
    let credential = std::sync::Arc::new(CountingCredential::default());
    struct Shared(std::sync::Arc<CountingCredential>);
    impl TokenCredential for Shared {
        fn get_token<'a>(&'a self, audience: &'a str) -> eventhubs::auth::TokenFuture<'a> {
            self.0.get_token(audience)
        }
        fn token_type(&self) -> &str {
            self.0.token_type()
        }
    }
    let client = builder(&emu)
        .credential(Shared(credential.clone()))
        .build()
        .unwrap();
    let p0 = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    let p1 = client
        .create_producer(ProducerOptions::partition("1"))
        .await
        .unwrap();
    let mut c2 = client
        .create_consumer(
            "$default",
            "2",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    p1.close().await.unwrap();
    // Three 3-second tokens are refreshed 2 s after each put: about three rounds.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    p0.send(EventData::from("still authorized")).await.unwrap();
    assert!(c2
        .receive(1, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());

    let calls = credential.calls.lock().unwrap().clone();
    let count = |suffix: &str| {
        calls
            .iter()
            .filter(|(a, _)| a.ends_with(suffix))
            .map(|(_, n)| *n)
            .sum::<usize>()
    };
    assert!(count("/eh1/Partitions/0") >= 3, "{calls:?}");
    assert!(
        count("/ConsumerGroups/$default/Partitions/2") >= 3,
        "{calls:?}"
    );
    assert_eq!(
        count("/eh1/Partitions/1"),
        1,
        "a closed producer's token is not refreshed: {calls:?}"
    );
    assert!(
        credential
            .most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 2,
        "tokens due together are refreshed side by side"
    );
}

over_each_wire!(
    five_second_tokens_are_refreshed_while_sending,
    cut_connections_mid_send_lose_no_acknowledged_event,
    consumer_resumes_after_a_cut_without_gap_or_duplicate,
);
