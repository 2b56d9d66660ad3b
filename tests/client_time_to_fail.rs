//! Time to fail: an endpoint that accepts TCP and never answers fails a call within the
//! documented bound, `(1 + max_retries) × connect_timeout` plus the retry waits.

use eventhubs::{
    ClientOptions, ErrorKind, EventHubClientBuilder, RetryMode, RetryObserver, RetryOptions,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listener that accepts every connection and never writes a byte (the sockets stay open
/// until the test ends, so the client sees silence, not a reset).
fn silent_endpoint() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_fails_get_properties_within_the_bound() {
    let port = silent_endpoint();
    let cs = format!(
        "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true"
    );
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let connect_timeout = Duration::from_millis(300);
    let retry = RetryOptions::default()
        .with_max_retries(3)
        .with_delay(Duration::from_millis(20))
        .with_mode(RetryMode::Fixed)
        .with_jitter(false)
        .with_observer(RetryObserver::new(move |n| {
            log.lock().unwrap().push((n.attempt, n.attempts));
        }));
    let client = EventHubClientBuilder::from_connection_string(&cs, Some("eh1"))
        .unwrap()
        .retry(retry)
        .connect_timeout(connect_timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let e = client.get_properties().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::OperationTimeout, "{e}");
    assert!(e.to_string().contains("connecting to 127.0.0.1"), "{e}");
    // Four attempts of 300 ms and three 20 ms waits: 1.26 s, plus slack for a loaded machine.
    let bound = connect_timeout * 4 + Duration::from_millis(60);
    assert!(took >= connect_timeout * 4, "gave up early: {took:?}");
    assert!(took < bound + Duration::from_secs(2), "took {took:?}");
    assert_eq!(*heard.lock().unwrap(), [(2, 4), (3, 4), (4, 4)]);
}

#[test]
fn the_default_time_to_fail_is_under_30_seconds() {
    let o = ClientOptions::default();
    let r = o.retry.clone().with_jitter(false);
    // Jitter stretches a wait by at most 1.3×.
    let waits: Duration = (1..=r.max_retries)
        .map(|n| r.delay_for(n, None).mul_f64(1.3).min(r.max_delay))
        .sum();
    let attempts = o.retry.max_retries + 1;
    let worst = o.connect_timeout * attempts + waits;
    assert!(worst <= Duration::from_secs(30), "{worst:?}");
    assert!(o.connect_timeout <= o.operation_timeout);
}
