//! Shared helpers for the client integration tests: an emulator on an ephemeral port.
#![allow(dead_code)]

use eventhubs::emulator::{Emulator, EmulatorOptions};
use eventhubs::{EventHubClient, EventHubClientBuilder, RetryOptions};
use std::time::Duration;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts an emulator with the default entities (hub `eh1`, 4 partitions, `$default`, `cg1`).
pub async fn emulator() -> Emulator {
    init_tracing();
    Emulator::start(EmulatorOptions::ephemeral())
        .await
        .expect("emulator starts")
}

/// Quick retries so that tests of failures do not wait long.
pub fn fast_retry() -> RetryOptions {
    RetryOptions {
        max_retries: 5,
        delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        ..RetryOptions::default()
    }
}

pub fn builder(emulator: &Emulator) -> EventHubClientBuilder {
    EventHubClientBuilder::from_connection_string(&emulator.connection_string(), Some("eh1"))
        .unwrap()
        .retry(fast_retry())
        .operation_timeout(Duration::from_secs(10))
}

pub fn client(emulator: &Emulator) -> EventHubClient {
    builder(emulator).build().unwrap()
}

/// A TCP proxy in front of the emulator whose connections the test can cut.
pub struct Proxy {
    pub port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = up.set_nodelay(true);
                    let _ = down.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy {
            port,
            conns,
            accept,
        }
    }

    /// Cuts every connection made so far (both sockets close).
    pub fn kill_all(&self) -> usize {
        let mut conns = self.conns.lock().unwrap();
        let n = conns.iter().filter(|t| !t.is_finished()).count();
        for t in conns.drain(..) {
            t.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_all();
    }
}
