//! The client through a real HTTP proxy (tinyproxy with Basic auth, started by `.ci/run`;
//! `EVENTHUBS_HTTP_PROXY=http://user:pass@127.0.0.1:PORT`), over both wires: sends and
//! receives, a wrong password fails fast and clearly, and connections to the proxy cut
//! mid-stream are recovered without losing or repeating an event, as is the proxy process
//! itself SIGKILLed mid-stream and started again (a tinyproxy of the test's own,
//! `EVENTHUBS_TINYPROXY_BIN`).

mod client_common;
mod support;

use client_common::*;
use eventhubs::{
    ConsumerOptions, ErrorKind, EventData, EventPosition, ProducerOptions, ProxyOptions,
};
use std::time::{Duration, Instant};
use support::tinyproxy::TinyProxy;
use support::{peer, Proxy};

const WHAT: &str = "an HTTP proxy with Basic auth (tinyproxy, see .ci/run)";

fn proxy_options() -> Option<ProxyOptions> {
    let url = peer("EVENTHUBS_HTTP_PROXY", WHAT)?;
    Some(ProxyOptions::from_url(&url).expect("EVENTHUBS_HTTP_PROXY is a proxy URL"))
}

async fn send_and_receive_through_the_proxy(wire: Wire) {
    let Some(proxy) = proxy_options() else { return };
    let emu = wire.emulator().await;
    let client = wire.builder(&emu).proxy(proxy).build().unwrap();
    let producer = client
        .create_producer(ProducerOptions::partition("0"))
        .await
        .unwrap();
    for i in 0..20 {
        producer
            .send(EventData::from(format!("p{i}")))
            .await
            .unwrap();
    }
    let mut consumer = client
        .create_consumer(
            "$default",
            "0",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 20 {
        let batch = consumer.receive(20, Duration::from_secs(5)).await.unwrap();
        assert!(!batch.is_empty(), "nothing received through the proxy");
        got.extend(
            batch
                .into_iter()
                .map(|e| e.body_as_str().unwrap().to_owned()),
        );
    }
    let want: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    assert_eq!(got, want);
    println!("{wire:?}: 20 events sent and received through the HTTP proxy");
    client.close().await.unwrap();
}

async fn a_wrong_proxy_password_fails_fast_and_clearly(wire: Wire) {
    let Some(mut proxy) = proxy_options() else {
        return;
    };
    let user = proxy
        .credentials
        .as_ref()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    proxy.credentials = Some((user, "not-the-password".into()));
    let emu = wire.emulator().await;
    let client = wire
        .builder(&emu)
        .proxy(proxy)
        .retry(eventhubs::RetryOptions::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let e = client.get_properties().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let text = format!("{e} {e:?}");
    // tinyproxy answers an authentication failure on CONNECT with 401, others with 407.
    assert!(
        text.contains("refused CONNECT") && (text.contains(" 407 ") || text.contains(" 401 ")),
        "the proxy's status line is missing: {text}"
    );
    assert!(
        !text.contains("not-the-password"),
        "the password leaked: {text}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

async fn connections_to_the_proxy_cut_mid_stream_are_recovered(wire: Wire) {
    let Some(mut proxy) = proxy_options() else {
        return;
    };
    // Our fault proxy in front of the HTTP proxy: killing its connections is the HTTP proxy
    // dropping the tunnel.
    let upstream = format!("{}:{}", proxy.host, proxy.port);
    let upstream = tokio::net::lookup_host(upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let cutter = Proxy::start(upstream).await;
    proxy.port = cutter.port;
    proxy.host = "127.0.0.1".into();
    let emu = wire.emulator().await;
    let client = wire.builder(&emu).proxy(proxy).build().unwrap();
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
    let (mut sent, mut next) = (0i64, 0i64);
    let mut cuts = 0;
    while sent < 300 {
        producer
            .send(EventData::from(format!("c{sent}")))
            .await
            .unwrap();
        sent += 1;
        if sent % 100 == 50 {
            cuts += cutter.kill_all();
        }
        for e in consumer
            .receive(50, Duration::from_millis(20))
            .await
            .unwrap()
        {
            assert_eq!(e.sequence_number(), Some(next), "gap or duplicate");
            next += 1;
        }
    }
    while next < sent {
        for e in consumer.receive(100, Duration::from_secs(5)).await.unwrap() {
            assert_eq!(e.sequence_number(), Some(next), "gap or duplicate");
            next += 1;
        }
    }
    assert!(cuts >= 3, "only {cuts} connections were cut");
    println!("{wire:?}: {sent} events through the HTTP proxy across {cuts} cut connections");
}

/// Retries patient enough to outlast a proxy that is down for a few hundred milliseconds.
fn patient_retry() -> eventhubs::RetryOptions {
    eventhubs::RetryOptions::default()
        .with_max_retries(200)
        .with_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(200))
}

async fn the_proxy_process_killed_mid_stream_is_recovered(wire: Wire) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let Some(mut tp) = TinyProxy::start(&format!("{wire:?}"), "ehub-kill", "kill-pass") else {
        return;
    };
    const N: usize = 300;
    let emu = wire.emulator().await;
    let target = format!("127.0.0.1:{}", wire.addr(&emu).port());
    let client = wire
        .builder(&emu)
        .proxy(ProxyOptions::from_url(&tp.url()).unwrap())
        .retry(patient_retry())
        .build()
        .unwrap();
    // Idempotent, so that a send resent after a kill is stored once, not twice.
    let producer = client
        .create_producer(ProducerOptions::partition("2").with_enable_idempotent_partitions(true))
        .await
        .unwrap();
    let mut consumer = client
        .create_consumer(
            "$default",
            "2",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let (sent, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sender = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for i in 0..N {
                producer
                    .send(EventData::from(format!("k{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("send k{i} fails despite recovery: {e}"));
                sent.store(i + 1, SeqCst);
            }
        })
    };
    let receiver = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut next = 0i64;
            while (next as usize) < N {
                let batch = consumer
                    .receive(50, Duration::from_millis(200))
                    .await
                    .unwrap_or_else(|e| panic!("receive after k{next} fails: {e}"));
                for e in batch {
                    // Resumes right after the last event it saw: no gap, no repeat.
                    assert_eq!(e.sequence_number(), Some(next), "gap or duplicate");
                    assert_eq!(e.body_as_str().unwrap(), format!("k{next}"));
                    next += 1;
                    seen.store(next as usize, SeqCst);
                }
            }
        })
    };
    // Kill the proxy twice while both are mid-stream; it stays down 300 ms each time.
    let mut kills = Vec::new();
    for at in [N / 3, 2 * N / 3] {
        while sent.load(SeqCst) < at || seen.load(SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tp.kill();
        kills.push((sent.load(SeqCst), seen.load(SeqCst)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        tp.restart();
    }
    let both = async {
        sender.await.unwrap();
        receiver.await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(120), both)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "stuck after the proxy restarts: {} sent, {} received, kills at {kills:?}",
                sent.load(SeqCst),
                seen.load(SeqCst)
            )
        });
    for (s, r) in &kills {
        assert!(
            *s < N && *r < N,
            "a kill came after the stream ended: {kills:?}"
        );
    }
    // The client went back through the restarted proxy (one tunnel at first, one per kill).
    let tunnels = tp.connects_to(&target);
    assert!(
        tunnels >= 3,
        "{tunnels} CONNECTs to {target} logged:\n{}",
        tp.log()
    );

    // Every acknowledged send stored exactly once, in order: read back directly.
    let direct = wire.builder(&emu).build().unwrap();
    let info = direct.get_partition_properties("2").await.unwrap();
    assert_eq!(
        info.last_enqueued_sequence_number + 1,
        N as i64,
        "events stored for {N} acknowledged sends"
    );
    let mut c = direct
        .create_consumer(
            "$default",
            "2",
            EventPosition::earliest(),
            ConsumerOptions::default(),
        )
        .await
        .unwrap();
    let mut stored = Vec::new();
    while stored.len() < N {
        let batch = c.receive(N, Duration::from_secs(5)).await.unwrap();
        assert!(!batch.is_empty(), "read-back stalled at {}", stored.len());
        stored.extend(batch.iter().map(|e| e.body_as_str().unwrap().to_owned()));
    }
    let want: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    assert_eq!(stored, want);
    println!(
        "{wire:?}: {N} events sent and received through tinyproxy, SIGKILLed and restarted at {kills:?} (sent, received), {tunnels} tunnels"
    );
    client.close().await.unwrap();
}

/// A stand-in proxy that answers every `CONNECT` with `reply` (or hangs up when it is empty).
async fn refusing_proxy(reply: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// Refusals and a dropped tunnel are connect errors that carry what the proxy said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_refusals_are_connect_errors_with_the_status_line() {
    let emu = Wire::Amqp.emulator().await;
    for (reply, want) in [
        ("HTTP/1.1 403 Forbidden\r\n\r\n", "HTTP/1.1 403 Forbidden"),
        (
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 502 Bad Gateway",
        ),
        (
            "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            "407 Proxy Authentication Required",
        ),
        ("", "closed the connection before answering CONNECT"),
    ] {
        let port = refusing_proxy(reply).await;
        let client = Wire::Amqp
            .builder(&emu)
            .proxy(ProxyOptions::new("127.0.0.1", port).with_credentials("u", "pw-secret"))
            .retry(eventhubs::RetryOptions::none())
            .build()
            .unwrap();
        let e = client.get_properties().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
        let text = format!("{e} {e:?}");
        assert!(text.contains(want), "{want:?} missing: {text}");
        assert!(!text.contains("pw-secret"), "the password leaked: {text}");
    }
}

over_each_wire!(
    send_and_receive_through_the_proxy,
    a_wrong_proxy_password_fails_fast_and_clearly,
    connections_to_the_proxy_cut_mid_stream_are_recovered,
    the_proxy_process_killed_mid_stream_is_recovered,
);
