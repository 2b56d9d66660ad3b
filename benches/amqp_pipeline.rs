//! End-to-end send throughput: our `Sender` to our `Listener` over loopback TCP.
//!
//!     cargo bench --bench amqp_pipeline
//!
//! For 100-byte and 64 KiB bodies, two ways of sending unsettled messages:
//! - `pipelined`: `Sender::start_send` keeps up to a window of sends in flight and awaits the
//!   oldest outcome only when the window is full (how the producer sends);
//! - `send-and-wait`: `Sender::send`, one message at a time (one round trip per message);
//! - `4-in-flight` (64 KiB only): `start_send` with a window of 4, against which 1 in flight
//!   (`send-and-wait`) is compared.
//!
//! Beside them, in the same run, `raw-tcp`: a plain TCP blaster writing the same 64 KiB
//! buffers over a loopback socket to a reader that discards them, no AMQP at all — the
//! ceiling the 64 KiB cases are measured against (`PIPE-TCP` lines).
//!
//! The listener accepts the link as a receiver and accepts (settles) every delivery. Client and
//! listener share one process and one two-worker tokio runtime. Each case runs a short warm-up
//! and then `BENCH_ROUNDS` rounds (default 3) of `BENCH_SECS` seconds (default 1.5); the median
//! round is reported. MB/s counts body bytes (10^6 bytes). `BENCH_MESSAGES=N` makes every round
//! (warm-up included) N messages instead, and skips the raw TCP rounds: for instruction
//! counts under valgrind.
//!
//! Lines starting with `PIPE ` and `PIPE-RATIO` are the machine-readable summary
//! `scripts/bench.sh` collects; `PIPE-RAW`, `PIPE-TCP` (each 64 KiB case as a share of raw TCP
//! bytes/s) and `PIPE-INFLIGHT` (4 in flight / 1 in flight at 64 KiB) go with them.

use bytes::Bytes;
use eventhubs::amqp::engine::LinkAcceptance;
use eventhubs::amqp::types::error::{condition, AmqpError};
use eventhubs::amqp::types::message::Message;
use eventhubs::amqp::{
    ConnectOptions, Connection, Listener, ListenerOptions, Sender, SenderOptions,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Credit the listener keeps granted to each sending link.
const PREFETCH: u32 = 1000;
/// Most sends the pipelined case keeps in flight (fewer for large bodies, see `window`).
const MAX_WINDOW: usize = 1000;
/// Bytes of body the pipelined case keeps in flight at most.
const WINDOW_BYTES: usize = 8 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pipelined,
    SendAndWait,
    InFlight4,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pipelined => "pipelined",
            Mode::SendAndWait => "send-and-wait",
            Mode::InFlight4 => "4-in-flight",
        }
    }

    /// Sends kept in flight.
    fn window(self, body_len: usize) -> usize {
        match self {
            Mode::Pipelined => window(body_len),
            Mode::SendAndWait => 1,
            Mode::InFlight4 => 4,
        }
    }
}

/// `BENCH_MESSAGES`: messages per round instead of `BENCH_SECS` of sending (64 per step, so
/// rounded up to a multiple of 64; raw TCP rounds are skipped).
fn fixed_messages() -> Option<u64> {
    std::env::var("BENCH_MESSAGES").ok()?.parse().ok()
}

/// Bytes per write of the raw TCP blaster (and per read of its reader).
const RAW_CHUNK: usize = 64 * 1024;

/// A loopback TCP reader that discards everything; returns its address.
async fn start_sink() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sink");
    let addr = listener.local_addr().expect("sink addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; RAW_CHUNK];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Raw TCP bytes/s over loopback: `RAW_CHUNK`-byte writes for about `dur` (then the writer
/// shuts down and waits for the reader to close, so every byte counted was read).
async fn raw_tcp_round(addr: SocketAddr, dur: Duration) -> f64 {
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect sink");
    sock.set_nodelay(true).expect("nodelay");
    let chunk = vec![7u8; RAW_CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            sock.write_all(&chunk).await.expect("raw write");
            sent += RAW_CHUNK as u64;
        }
    }
    sock.shutdown().await.expect("shutdown");
    let mut rest = [0u8; 16];
    let _ = sock.read(&mut rest).await;
    sent as f64 / start.elapsed().as_secs_f64()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A listener that accepts every sending link and accepts every delivery on it.
async fn start_listener() -> SocketAddr {
    let listener = Listener::bind("127.0.0.1:0", ListenerOptions::default())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok(incoming) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = incoming.handshake().await else {
                    return;
                };
                while let Some(link) = conn.next_link().await {
                    if !link.peer_is_sender() {
                        link.refuse(AmqpError::with_description(
                            condition::NOT_ALLOWED,
                            "this bench listener only receives",
                        ));
                        continue;
                    }
                    let target = link.attach().target.as_deref().cloned();
                    let acceptance = {
                        let mut o = LinkAcceptance::default();
                        o.target = target;
                        o
                    };
                    let Ok(mut rx) = link.accept_receiver(acceptance, PREFETCH).await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        while let Ok(m) = rx.recv().await {
                            if rx.accept(&m).is_err() {
                                break;
                            }
                        }
                    });
                }
            });
        }
    });
    addr
}

fn check(
    outcome: Result<
        Option<eventhubs::amqp::types::messaging::DeliveryState>,
        eventhubs::amqp::Error,
    >,
) {
    match outcome {
        Ok(Some(state)) if state.is_accepted() => {}
        other => panic!("send not accepted: {other:?}"),
    }
}

fn window(body_len: usize) -> usize {
    (WINDOW_BYTES / body_len.max(1)).clamp(16, MAX_WINDOW)
}

/// Sends for about `dur`; returns messages sent (all settled as accepted) and the time taken.
async fn round(
    sender: &Sender,
    msg: &Message,
    mode: Mode,
    body_len: usize,
    dur: Duration,
) -> (u64, Duration) {
    let start = Instant::now();
    let mut sent = 0u64;
    // With `BENCH_MESSAGES` a round is a fixed number of messages (for instruction counts
    // under valgrind, which must not depend on the machine's speed).
    let fixed = fixed_messages();
    let more = |sent: u64| match fixed {
        Some(n) => sent < n,
        None => start.elapsed() < dur,
    };
    match mode {
        Mode::SendAndWait => {
            while more(sent) {
                for _ in 0..16 {
                    check(sender.send(msg).await);
                    sent += 1;
                }
            }
        }
        Mode::Pipelined | Mode::InFlight4 => {
            let window = mode.window(body_len);
            let mut in_flight = VecDeque::with_capacity(window);
            while more(sent) {
                for _ in 0..64 {
                    if in_flight.len() >= window {
                        let oldest = in_flight.pop_front().expect("window is not empty");
                        check(oldest.await);
                    }
                    in_flight.push_back(sender.start_send(msg).await.expect("start_send"));
                    sent += 1;
                }
            }
            while let Some(p) = in_flight.pop_front() {
                check(p.await);
            }
        }
    }
    (sent, start.elapsed())
}

struct CaseResult {
    body_len: usize,
    mode: Mode,
    msgs_per_sec: f64,
    rounds: Vec<f64>,
    /// Raw TCP bytes/s of the round paired with each of `rounds` (64 KiB cases).
    raw: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn run_case(
    conn: &Connection,
    body_len: usize,
    mode: Mode,
    rounds: usize,
    secs: f64,
    sink: Option<SocketAddr>,
) -> CaseResult {
    let session = conn.open_session().await.expect("session");
    let mut sender = session
        .attach_sender(SenderOptions::new("bench"))
        .await
        .expect("attach");
    sender.wait_for_credit().await.expect("credit");
    let body = Bytes::from((0..body_len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let msg = Message::with_data(body);
    // Warm-up: connection buffers, allocator, first credit top-ups.
    round(&sender, &msg, mode, body_len, Duration::from_millis(300)).await;
    let mut rates = Vec::with_capacity(rounds);
    let mut raw = Vec::new();
    for i in 0..rounds {
        let dur = Duration::from_secs_f64(secs);
        // The raw TCP round goes right before or right after its AMQP round (alternating),
        // so that each share compares two moments of the same machine load.
        let raw_first = i % 2 == 0;
        if let (Some(addr), true) = (sink, raw_first) {
            raw.push(raw_tcp_round(addr, dur).await);
        }
        let (n, t) = round(&sender, &msg, mode, body_len, dur).await;
        rates.push(n as f64 / t.as_secs_f64());
        if let (Some(addr), false) = (sink, raw_first) {
            raw.push(raw_tcp_round(addr, dur).await);
        }
    }
    sender.close().await.expect("detach");
    session.end().await.expect("end");
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    CaseResult {
        body_len,
        mode,
        msgs_per_sec: sorted[sorted.len() / 2],
        rounds: rates,
        raw,
    }
}

fn size_name(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}KiB", n / 1024)
    } else {
        format!("{n}B")
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects cases by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rounds = env_or("BENCH_ROUNDS", 3usize).max(1);
    let secs = env_or("BENCH_SECS", 1.5f64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let addr = start_listener().await;
        let conn = Connection::connect(ConnectOptions::new("127.0.0.1", addr.port()))
            .await
            .expect("connect");
        println!(
            "amqp_pipeline: loopback TCP, listener prefetch {PREFETCH}, {rounds} rounds of {secs} s, median reported"
        );
        let sink = start_sink().await;
        let mut results = Vec::new();
        for body_len in [100usize, 64 * 1024] {
            let modes: &[Mode] = if body_len >= 64 * 1024 {
                &[Mode::Pipelined, Mode::SendAndWait, Mode::InFlight4]
            } else {
                &[Mode::Pipelined, Mode::SendAndWait]
            };
            for &mode in modes {
                let name = format!("{}/{}", size_name(body_len), mode.name());
                if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                    continue;
                }
                let paired = (body_len >= 64 * 1024 && fixed_messages().is_none()).then_some(sink);
                let r = run_case(&conn, body_len, mode, rounds, secs, paired).await;
                let rounds: Vec<String> = r.rounds.iter().map(|x| format!("{x:.0}")).collect();
                println!(
                    "PIPE {:<8} {:<14} {:>10.0} msgs/s {:>9.1} MB/s  window {:>4}  rounds [{}]",
                    size_name(r.body_len),
                    r.mode.name(),
                    r.msgs_per_sec,
                    r.msgs_per_sec * r.body_len as f64 / 1e6,
                    r.mode.window(r.body_len),
                    rounds.join(" ")
                );
                if !r.raw.is_empty() {
                    let shares: Vec<f64> = r
                        .rounds
                        .iter()
                        .zip(&r.raw)
                        .map(|(m, raw)| 100.0 * m * r.body_len as f64 / raw)
                        .collect();
                    let raws: Vec<String> = r.raw.iter().map(|x| format!("{:.0}", x / 1e6)).collect();
                    let each: Vec<String> = shares.iter().map(|x| format!("{x:.0}")).collect();
                    println!(
                        "PIPE-TCP {:<8} {:<14} {:>6.1} % of raw TCP bytes/s (median of rounds [{}] %; raw TCP MB/s [{}], writes of {} B)",
                        size_name(r.body_len),
                        r.mode.name(),
                        median(&shares),
                        each.join(" "),
                        raws.join(" "),
                        RAW_CHUNK
                    );
                }
                results.push(r);
            }
        }
        let rate = |len: usize, m: Mode| {
            results
                .iter()
                .find(|r| r.body_len == len && r.mode == m)
                .map(|r| r.msgs_per_sec)
        };
        for body_len in [100usize, 64 * 1024] {
            if let (Some(p), Some(s)) = (
                rate(body_len, Mode::Pipelined),
                rate(body_len, Mode::SendAndWait),
            ) {
                println!(
                    "PIPE-RATIO {:<8} pipelined/send-and-wait {:>7.2}x",
                    size_name(body_len),
                    p / s
                );
            }
        }
        if let (Some(four), Some(one)) = (
            rate(64 * 1024, Mode::InFlight4),
            rate(64 * 1024, Mode::SendAndWait),
        ) {
            println!("PIPE-INFLIGHT 64KiB 4-in-flight/1-in-flight {:>7.2}x", four / one);
        }
        conn.close().await.expect("close");
    });
}
