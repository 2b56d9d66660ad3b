//! Helpers for the socket-level AMQP tests: a tiny in-memory queue broker built on our
//! [`Listener`], and small utilities (the SASL authenticator and the fault proxy are in
//! `support`).
//!
//! The broker stores every message sent to an address in a FIFO queue for that address and
//! serves it to receivers attached to the same address, only under their credit, pre-settled
//! when the receiver asked for `snd-settle-mode = settled` and unsettled otherwise. An unsettled
//! message the receiver releases or modifies goes back to the head of its queue; accepted and
//! rejected ones are gone.
#![allow(dead_code)]

use bytes::Bytes;
use eventhubs::amqp::engine::LinkAcceptance;
use eventhubs::amqp::types::definitions::SenderSettleMode;
use eventhubs::amqp::types::messaging::DeliveryState;
use eventhubs::amqp::{IncomingLink, Listener, ListenerOptions, ServerConnection};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A stored message: the encoded bytes and the message format it came with.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The encoded message.
    pub payload: Bytes,
    /// Its message format.
    pub format: u32,
}

/// What the broker saw, for assertions.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages stored, per address.
    pub stored: HashMap<String, usize>,
    /// Of those, how many arrived pre-settled.
    pub stored_presettled: HashMap<String, usize>,
    /// Deliveries handed to receivers, per address: (pre-settled, unsettled).
    pub served: HashMap<String, (usize, usize)>,
    /// Outcomes receivers gave to unsettled deliveries, per address, by outcome name.
    pub outcomes: HashMap<String, HashMap<&'static str, usize>>,
    /// Connections that finished their handshake.
    pub connections: usize,
    /// Handshakes that failed, with the error text.
    pub failed_handshakes: Vec<String>,
}

#[derive(Default)]
struct State {
    queues: Mutex<HashMap<String, VecDeque<Stored>>>,
    stats: Mutex<Stats>,
    arrived: Notify,
}

/// A running in-memory queue broker.
#[derive(Clone)]
pub struct QueueBroker {
    addr: SocketAddr,
    state: Arc<State>,
    prefetch: u32,
}

fn outcome_name(s: &Option<DeliveryState>) -> &'static str {
    match s {
        Some(DeliveryState::Accepted(_)) => "accepted",
        Some(DeliveryState::Rejected(_)) => "rejected",
        Some(DeliveryState::Released(_)) => "released",
        Some(DeliveryState::Modified(_)) => "modified",
        Some(DeliveryState::Received(_)) => "received",
        None => "none",
    }
}

impl QueueBroker {
    /// Binds to an ephemeral loopback port and serves connections until the runtime ends;
    /// links that send to it get 100 credit, topped up as messages are stored.
    pub async fn start(options: ListenerOptions) -> QueueBroker {
        Self::start_with_prefetch(options, 100).await
    }

    /// As [`Self::start`], granting `prefetch` credit to links that send to it.
    pub async fn start_with_prefetch(options: ListenerOptions, prefetch: u32) -> QueueBroker {
        let listener = Listener::bind("127.0.0.1:0", options).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let broker = QueueBroker {
            addr,
            state: state.clone(),
            prefetch,
        };
        let b = broker.clone();
        tokio::spawn(async move {
            while let Ok(incoming) = listener.accept().await {
                let b = b.clone();
                tokio::spawn(async move {
                    match incoming.handshake().await {
                        Ok(conn) => {
                            b.state.stats.lock().unwrap().connections += 1;
                            b.serve(conn).await;
                        }
                        Err(e) => b
                            .state
                            .stats
                            .lock()
                            .unwrap()
                            .failed_handshakes
                            .push(e.to_string()),
                    }
                });
            }
        });
        broker
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Runs `f` on the statistics.
    pub fn stats<T>(&self, f: impl FnOnce(&Stats) -> T) -> T {
        f(&self.state.stats.lock().unwrap())
    }

    /// Messages currently queued at `address`.
    pub fn queued(&self, address: &str) -> usize {
        self.state
            .queues
            .lock()
            .unwrap()
            .get(address)
            .map_or(0, VecDeque::len)
    }

    /// A copy of the messages queued at `address`, head first.
    pub fn snapshot(&self, address: &str) -> Vec<Stored> {
        self.state
            .queues
            .lock()
            .unwrap()
            .get(address)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Puts a message at the tail of `address`'s queue (to preload receivers).
    pub fn push(&self, address: &str, payload: Bytes) {
        self.push_back(address, Stored { payload, format: 0 });
    }

    fn push_back(&self, address: &str, m: Stored) {
        self.state
            .queues
            .lock()
            .unwrap()
            .entry(address.to_owned())
            .or_default()
            .push_back(m);
        self.state.arrived.notify_waiters();
    }

    fn push_front(&self, address: &str, m: Stored) {
        self.state
            .queues
            .lock()
            .unwrap()
            .entry(address.to_owned())
            .or_default()
            .push_front(m);
        self.state.arrived.notify_waiters();
    }

    fn try_pop(&self, address: &str) -> Option<Stored> {
        self.state
            .queues
            .lock()
            .unwrap()
            .get_mut(address)
            .and_then(VecDeque::pop_front)
    }

    /// Waits for a message at `address` (re-checking periodically so nothing is missed).
    async fn pop(&self, address: &str) -> Stored {
        loop {
            let notified = self.state.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.try_pop(address) {
                return m;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    async fn serve(&self, mut conn: ServerConnection) {
        while let Some(link) = conn.next_link().await {
            let b = self.clone();
            tokio::spawn(async move { b.serve_link(link).await });
        }
    }

    async fn serve_link(&self, link: IncomingLink) {
        if link.peer_is_sender() {
            let target = link.attach().target.as_deref().cloned();
            let address = target
                .as_ref()
                .and_then(|t| t.address.as_ref())
                .map(|a| a.as_str().to_owned());
            let Some(address) = address else {
                link.refuse(eventhubs::amqp::types::error::AmqpError::with_description(
                    eventhubs::amqp::types::error::condition::NOT_FOUND,
                    "a target address is required",
                ));
                return;
            };
            let Ok(mut rx) = link
                .accept_receiver(
                    {
                        let mut o = LinkAcceptance::default();
                        o.target = target;
                        o
                    },
                    self.prefetch,
                )
                .await
            else {
                return;
            };
            while let Ok(m) = rx.recv().await {
                {
                    let mut st = self.state.stats.lock().unwrap();
                    *st.stored.entry(address.clone()).or_default() += 1;
                    if m.is_settled() {
                        *st.stored_presettled.entry(address.clone()).or_default() += 1;
                    }
                }
                self.push_back(
                    &address,
                    Stored {
                        payload: m.payload().clone(),
                        format: m.delivery.message_format,
                    },
                );
                if rx.accept(&m).is_err() {
                    break;
                }
            }
        } else {
            let source = link.attach().source.as_deref().cloned();
            let address = source
                .as_ref()
                .and_then(|s| s.address.as_ref())
                .map(|a| a.as_str().to_owned());
            let Some(address) = address else {
                link.refuse(eventhubs::amqp::types::error::AmqpError::with_description(
                    eventhubs::amqp::types::error::condition::NOT_FOUND,
                    "a source address is required",
                ));
                return;
            };
            let presettle = link.attach().snd_settle_mode == SenderSettleMode::Settled;
            let Ok(mut tx) = link
                .accept_sender(
                    {
                        let mut o = LinkAcceptance::default()
                            .with_snd_settle_mode(link_snd_mode(presettle));
                        o.source = source;
                        o
                    },
                    1000,
                )
                .await
            else {
                return;
            };
            loop {
                if tx.wait_for_credit().await.is_err() {
                    return;
                }
                let m = self.pop(&address).await;
                let pending = match tx
                    .start_send_bytes(m.payload.clone(), m.format, presettle)
                    .await
                {
                    Ok(p) => p,
                    Err(_) => {
                        self.push_front(&address, m);
                        return;
                    }
                };
                {
                    let mut st = self.state.stats.lock().unwrap();
                    let e = st.served.entry(address.clone()).or_default();
                    if presettle {
                        e.0 += 1;
                    } else {
                        e.1 += 1;
                    }
                }
                if !presettle {
                    let b = self.clone();
                    let address = address.clone();
                    tokio::spawn(async move {
                        let outcome = pending.await;
                        let name = match &outcome {
                            Ok(s) => outcome_name(s),
                            Err(_) => "lost",
                        };
                        *b.state
                            .stats
                            .lock()
                            .unwrap()
                            .outcomes
                            .entry(address.clone())
                            .or_default()
                            .entry(name)
                            .or_default() += 1;
                        if matches!(name, "released" | "modified" | "lost") {
                            b.push_front(&address, m);
                        }
                    });
                }
            }
        }
    }
}

fn link_snd_mode(presettle: bool) -> SenderSettleMode {
    if presettle {
        SenderSettleMode::Settled
    } else {
        SenderSettleMode::Unsettled
    }
}

/// A unique suffix for queue names (the RabbitMQ broker outlives test runs).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{t:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `f` with a time limit, panicking with `what` when it runs over (no hangs).
pub async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {secs} s"),
    }
}

/// Polls `f` every 10 ms until it returns `Some`, panicking after `secs` seconds.
pub async fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
