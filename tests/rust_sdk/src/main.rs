//! The official Azure SDK for Rust (`azure_messaging_eventhubs`) as a user would run it against
//! `ehub emulator`: hub properties, partition properties, a batch sent to one partition, and a
//! receive of exactly what was sent. Every SDK call has its own timeout, because the SDK can
//! hang instead of failing (see README, "Use the emulator from any SDK").
//!
//! ```text
//! eventhubs-rust-sdk-peer --address localhost:5672 [--hub eh1] [--events 10]
//!     [--partition 0] [--key-name RootManageSharedAccessKey] [--key SAS_KEY_VALUE]
//!     [--timeout-secs 15] [--runtime current-thread|multi-thread]
//! ```
//!
//! The default current-thread runtime is deliberate: on a multi-thread runtime the SDK records
//! an unsettled delivery only after its connection task may already have taken the answer off
//! the socket, so against a local emulator about half the runs hang in some call. On one
//! thread the caller records the delivery before that task can run. `--runtime multi-thread`
//! shows the race.
//!
//! Prints one JSON result line on stdout. Exit status: 0 when every check passed, 1 when a
//! call failed or a check did not hold, 2 when a call timed out (the caller may retry), 64 for
//! a usage error.

use azure_core::time::Duration as SdkDuration;
use azure_messaging_eventhubs::{
    models::EventData, ConsumerClient, EventDataBatchOptions, OpenReceiverOptions, ProducerClient,
    RetryOptions, StartLocation, StartPosition,
};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the command line asked for.
struct Args {
    address: String,
    hub: String,
    partition: String,
    events: usize,
    key_name: String,
    key: String,
    timeout: Duration,
    multi_thread: bool,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            address: String::new(),
            hub: "eh1".into(),
            partition: "0".into(),
            events: 10,
            // The emulator's default policy (also the one Microsoft's emulator uses).
            key_name: "RootManageSharedAccessKey".into(),
            key: "SAS_KEY_VALUE".into(),
            timeout: Duration::from_secs(15),
            multi_thread: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--address" => args.address = value()?,
                "--hub" => args.hub = value()?,
                "--partition" => args.partition = value()?,
                "--events" => {
                    args.events = value()?.parse().map_err(|e| format!("--events: {e}"))?
                }
                "--key-name" => args.key_name = value()?,
                "--key" => args.key = value()?,
                "--timeout-secs" => {
                    let secs: u64 = value()?
                        .parse()
                        .map_err(|e| format!("--timeout-secs: {e}"))?;
                    args.timeout = Duration::from_secs(secs.max(1));
                }
                "--runtime" => {
                    args.multi_thread = match value()?.as_str() {
                        "current-thread" => false,
                        "multi-thread" => true,
                        other => return Err(format!("--runtime: unknown runtime {other}")),
                    }
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if args.address.is_empty() {
            return Err("--address HOST:PORT is required".into());
        }
        if args.events == 0 {
            return Err("--events must be at least 1".into());
        }
        Ok(args)
    }

    /// The SDK takes the namespace, key name and key from here, but dials neither the port in
    /// `Endpoint` nor plain AMQP for `UseDevelopmentEmulator=true`: the custom endpoint below
    /// is what reaches the emulator.
    fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://localhost;SharedAccessKeyName={};SharedAccessKey={};UseDevelopmentEmulator=true",
            self.key_name, self.key
        )
    }

    fn custom_endpoint(&self) -> String {
        format!("amqp://{}", self.address)
    }
}

/// Why the scenario stopped early.
struct Failure {
    step: &'static str,
    error: String,
    timed_out: bool,
}

/// The scenario's record: per-step durations and the facts it saw, for the JSON line.
struct Report {
    timeout: Duration,
    steps_ms: Map<String, Value>,
    facts: Map<String, Value>,
}

impl Report {
    /// Runs one SDK call under the per-call timeout and records how long it took.
    async fn step<T, E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, call).await;
        self.steps_ms
            .insert(name.into(), json!(started.elapsed().as_millis() as u64));
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure {
                step: name,
                error: e.to_string(),
                timed_out: false,
            }),
            Err(_) => Err(Failure {
                step: name,
                error: format!("no answer within {} s", self.timeout.as_secs()),
                timed_out: true,
            }),
        }
    }

    fn fact(&mut self, key: &str, value: Value) {
        self.facts.insert(key.into(), value);
    }
}

fn check(step: &'static str, holds: bool, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if holds {
        Ok(())
    } else {
        Err(Failure {
            step,
            error: what(),
            timed_out: false,
        })
    }
}

/// Failed calls surface instead of being retried for the SDK's default minute.
fn retry_options() -> RetryOptions {
    RetryOptions {
        initial_delay: SdkDuration::milliseconds(100),
        max_delay: SdkDuration::seconds(1),
        max_total_elapsed: SdkDuration::seconds(5),
        max_retries: 2,
    }
}

async fn scenario(args: &Args, report: &mut Report) -> Result<(), Failure> {
    let conn = args.connection_string();
    let hub = Some(args.hub.as_str());

    let producer = report
        .step(
            "open_producer",
            ProducerClient::builder()
                .with_custom_endpoint(args.custom_endpoint())
                .with_retry_options(retry_options())
                .open_with_connection_string(&conn, hub),
        )
        .await?;

    let props = report
        .step("hub_properties", producer.get_eventhub_properties())
        .await?;
    report.fact("hub", json!(props.name));
    report.fact("partitions", json!(props.partition_ids.len()));
    check("hub_properties", props.name == args.hub, || {
        format!(
            "hub properties name {:?}, asked for {:?}",
            props.name, args.hub
        )
    })?;
    check(
        "hub_properties",
        props.partition_ids.contains(&args.partition),
        || {
            format!(
                "partition {} not in {:?}",
                args.partition, props.partition_ids
            )
        },
    )?;

    let before = report
        .step(
            "partition_properties",
            producer.get_partition_properties(&args.partition),
        )
        .await?;
    report.fact(
        "last_sequence_number_before",
        json!(before.last_enqueued_sequence_number),
    );

    // Bodies unique to this run, so a retry never mistakes an earlier attempt's events for its own.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let bodies: Vec<String> = (0..args.events)
        .map(|i| format!("rust-sdk {} {nonce} #{i}", std::process::id()))
        .collect();
    let batch = report
        .step(
            "create_batch",
            producer.create_batch(Some(EventDataBatchOptions {
                partition_id: Some(args.partition.clone()),
                ..Default::default()
            })),
        )
        .await?;
    for (i, body) in bodies.iter().enumerate() {
        let event = EventData::builder()
            .with_body(body.clone().into_bytes())
            .add_property("index".to_string(), i as i64)
            .build();
        let added = batch.try_add_event_data(event, None).map_err(|e| Failure {
            step: "create_batch",
            error: e.to_string(),
            timed_out: false,
        })?;
        check("create_batch", added, || format!("event {i} did not fit"))?;
    }
    report
        .step("send_batch", producer.send_batch(batch, None))
        .await?;
    report.fact("sent", json!(bodies.len()));

    let consumer = report
        .step(
            "open_consumer",
            ConsumerClient::builder()
                .with_custom_endpoint(args.custom_endpoint())
                .with_retry_options(retry_options())
                .open_with_connection_string(&conn, hub),
        )
        .await?;
    let location = if before.is_empty {
        StartLocation::Earliest
    } else {
        StartLocation::SequenceNumber(before.last_enqueued_sequence_number)
    };
    let receiver = report
        .step(
            "open_receiver",
            consumer.open_receiver_on_partition(
                args.partition.clone(),
                Some(OpenReceiverOptions {
                    start_position: Some(StartPosition {
                        location,
                        inclusive: false,
                    }),
                    receive_timeout: SdkDuration::try_from(report.timeout).ok(),
                    ..Default::default()
                }),
            ),
        )
        .await?;

    let mut received = Vec::new();
    {
        let mut stream = receiver.stream_events();
        while received.len() < bodies.len() {
            let next = report
                .step("receive", async {
                    match stream.next().await {
                        Some(event) => event.map_err(|e| e.to_string()),
                        None => Err("the event stream ended".to_string()),
                    }
                })
                .await?;
            received.push(next);
        }
    }
    report.fact("received", json!(received.len()));
    let first = received.first().and_then(|e| e.sequence_number());
    report.fact("first_sequence_number", json!(first));
    for (i, (event, body)) in received.iter().zip(&bodies).enumerate() {
        let got = event.event_data().body().unwrap_or_default();
        check("receive", got == body.as_bytes(), || {
            format!(
                "event {i}: body {:?}, sent {body:?}",
                String::from_utf8_lossy(got)
            )
        })?;
        let index = event
            .event_data()
            .properties()
            .and_then(|p| p.get("index"))
            .map(|v| format!("{v:?}"));
        check(
            "receive",
            index.as_deref().is_some_and(|v| v.contains(&i.to_string())),
            || format!("event {i}: property index {index:?}"),
        )?;
        let expected = before.last_enqueued_sequence_number + 1 + i as i64;
        let expected = if before.is_empty { i as i64 } else { expected };
        check("receive", event.sequence_number() == Some(expected), || {
            format!(
                "event {i}: sequence number {:?}, expected {expected}",
                event.sequence_number()
            )
        })?;
    }

    report.step("close_receiver", receiver.close()).await?;
    report.step("close_consumer", consumer.close()).await?;
    report.step("close_producer", producer.close()).await?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("eventhubs-rust-sdk-peer: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = if args.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build();
    match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => {
            eprintln!("eventhubs-rust-sdk-peer: cannot start a tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let started = Instant::now();
    let mut report = Report {
        timeout: args.timeout,
        steps_ms: Map::new(),
        facts: Map::new(),
    };
    let outcome = scenario(&args, &mut report).await;
    let mut line = Map::new();
    line.insert("scenario".into(), json!("rust_sdk"));
    line.insert("ok".into(), json!(outcome.is_ok()));
    line.insert("sdk".into(), json!("azure_messaging_eventhubs 0.16.0"));
    line.insert("endpoint".into(), json!(args.custom_endpoint()));
    let runtime = if args.multi_thread {
        "multi-thread"
    } else {
        "current-thread"
    };
    line.insert("runtime".into(), json!(runtime));
    line.append(&mut report.facts);
    if let Err(f) = &outcome {
        line.insert("failed_step".into(), json!(f.step));
        line.insert("error".into(), json!(f.error));
        line.insert("timed_out".into(), json!(f.timed_out));
    }
    line.insert("steps_ms".into(), Value::Object(report.steps_ms));
    line.insert(
        "seconds".into(),
        json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
    );
    println!("{}", Value::Object(line));
    // The SDK's connection tasks may still be waiting on a peer that never answers; the
    // result is out, so leave without waiting for them.
    let code = match outcome {
        Ok(()) => 0,
        Err(f) if f.timed_out => 2,
        Err(_) => 1,
    };
    std::process::exit(code)
}
