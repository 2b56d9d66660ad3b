//! Shared helpers for the client integration tests: a client for an emulator (which
//! `support::emulator` starts), with quick retries.
#![allow(dead_code)]

use eventhubs::emulator::Emulator;
use eventhubs::{EventHubClient, EventHubClientBuilder, RetryOptions};
use std::time::Duration;

/// Quick retries so that tests of failures do not wait long.
pub fn fast_retry() -> RetryOptions {
    RetryOptions::default()
        .with_max_retries(5)
        .with_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
}

/// A client builder for hub `eh1` of `emulator`, with quick retries.
pub fn builder(emulator: &Emulator) -> EventHubClientBuilder {
    EventHubClientBuilder::from_connection_string(&emulator.connection_string(), Some("eh1"))
        .unwrap()
        .retry(fast_retry())
        .operation_timeout(Duration::from_secs(10))
}

/// A client for hub `eh1` of `emulator`.
pub fn client(emulator: &Emulator) -> EventHubClient {
    builder(emulator).build().unwrap()
}

/// The transports the transport-relevant tests run over (each such test runs once per wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// AMQP on the emulator's AMQP port.
    Amqp,
    /// AMQP over WebSockets on the emulator's WebSocket port.
    WebSockets,
}

impl Wire {
    /// `options` with what this wire needs (the emulator's WebSocket port, ephemeral).
    pub fn emulator_options(
        self,
        options: eventhubs::emulator::EmulatorOptions,
    ) -> eventhubs::emulator::EmulatorOptions {
        match self {
            Wire::Amqp => options,
            Wire::WebSockets => options.with_ws_bind(([127, 0, 0, 1], 0).into()),
        }
    }

    /// An emulator with the default entities serving this wire.
    pub async fn emulator(self) -> Emulator {
        Emulator::start(self.emulator_options(eventhubs::emulator::EmulatorOptions::ephemeral()))
            .await
            .expect("emulator starts")
    }

    /// Where this wire reaches `emulator` (a fault proxy goes in front of it).
    pub fn addr(self, emulator: &Emulator) -> std::net::SocketAddr {
        match self {
            Wire::Amqp => emulator.local_addr(),
            Wire::WebSockets => emulator
                .ws_local_addr()
                .expect("emulator serves WebSockets"),
        }
    }

    /// `builder` set to this wire, connecting to `port` on 127.0.0.1.
    pub fn via(self, builder: EventHubClientBuilder, port: u16) -> EventHubClientBuilder {
        let b = builder.custom_endpoint("127.0.0.1", port);
        match self {
            Wire::Amqp => b,
            Wire::WebSockets => b.transport(eventhubs::TransportType::AmqpWebSockets),
        }
    }

    /// [`builder`] for `emulator` over this wire.
    pub fn builder(self, emulator: &Emulator) -> EventHubClientBuilder {
        self.via(builder(emulator), self.addr(emulator).port())
    }
}

/// Runs each listed `async fn name(wire: Wire)` as two tests, `amqp::name` and
/// `websockets::name`, so transport-relevant tests cover both wires without copies.
#[macro_export]
macro_rules! over_each_wire {
    ($($name:ident),* $(,)?) => {
        mod amqp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::client_common::Wire::Amqp).await
                }
            )*
        }
        mod websockets {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::client_common::Wire::WebSockets).await
                }
            )*
        }
    };
}

/// Every event partition `p` holds, read from its start in order. Fails the test if the
/// emulator already evicted some (the test stored more than its retention) or if the
/// partition stops delivering before its last enqueued event.
pub async fn read_partition(client: &EventHubClient, p: &str) -> Vec<eventhubs::EventData> {
    let props = client.get_partition_properties(p).await.unwrap();
    assert_eq!(
        props.beginning_sequence_number, 0,
        "partition {p}: the emulator evicted events; store less"
    );
    let n = if props.is_empty {
        0
    } else {
        (props.last_enqueued_sequence_number + 1) as usize
    };
    let mut consumer = client
        .create_consumer(
            "$default",
            p,
            eventhubs::EventPosition::earliest(),
            eventhubs::ConsumerOptions::default().with_prefetch(2000),
        )
        .await
        .unwrap();
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let batch = consumer
            .receive(2000, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "partition {p} stalled at {}", got.len());
        got.extend(batch);
    }
    got
}
