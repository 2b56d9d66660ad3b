//! What the integration tests share whatever layer they test: tracing set-up, an emulator on an
//! ephemeral port, simulated time over real sockets, a TCP fault proxy, the test SASL
//! authenticator, and the gate for tests that need a third-party peer. Layer-specific helpers stay in their own modules (`common`,
//! `common_engine`, `amqp_support`, `client_common`, `emulator_support`, `python_support`).
#![allow(dead_code)]

pub mod auth;
pub mod tinyproxy;

#[allow(unused_imports)]
pub use auth::TestAuth;

#[cfg(feature = "emulator")]
use eventhubs::emulator::{Emulator, EmulatorOptions};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;

/// Installs a test tracing subscriber driven by `RUST_LOG` (once per process).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts `ehub emulator --data-dir dir --port port` as a child process and waits (up to 60 s:
/// a restart may replay a large directory) for the connection string it prints, which must
/// name `localhost:port`.
#[cfg(feature = "cli")]
pub fn spawn_ehub_emulator(dir: &std::path::Path, port: u16) -> std::process::Child {
    let port_arg = port.to_string();
    let dir_arg = dir.to_string_lossy();
    let (child, lines) =
        spawn_ehub_emulator_with(&["--port", &port_arg, "--data-dir", dir_arg.as_ref()]);
    let cs = lines.last().expect("the connection string");
    assert!(cs.contains("UseDevelopmentEmulator=true"), "{cs}");
    assert!(cs.contains(&format!("localhost:{port}")), "{cs}");
    child
}

/// Starts `ehub emulator ARGS...` as a child process and waits (up to 60 s) for the
/// connection string it prints; returns the child and every line printed up to and including
/// that string (which is the last).
#[cfg(feature = "cli")]
pub fn spawn_ehub_emulator_with(args: &[&str]) -> (std::process::Child, Vec<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ehub"))
        .arg("emulator")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run ehub");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.starts_with("Endpoint=sb://");
                lines.push(line);
                if done {
                    return (child, lines);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ehub did not print its connection string; it printed {lines:?}");
            }
        }
    }
}

/// What was logged (as plain text, no colour) while the guard from [`LogCapture::start`]
/// lives, on this thread: in a current-thread test that includes the tasks it spawned.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Captures every event at `warn` and above until the guard drops.
    pub fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        Self::start_at(tracing::Level::WARN)
    }

    /// Captures every event at `level` and above until the guard drops (`DEBUG` for the
    /// events that count retries and requests).
    pub fn start_at(level: tracing::Level) -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "emulator")]
/// An emulator with the default entities (hub `eh1`, 4 partitions, `$default` and `cg1`) on an
/// ephemeral port, requiring CBS tokens.
pub async fn emulator() -> Emulator {
    emulator_with(EmulatorOptions::ephemeral()).await
}

#[cfg(feature = "emulator")]
/// An emulator with `options`.
pub async fn emulator_with(options: EmulatorOptions) -> Emulator {
    init_tracing();
    Emulator::start(options).await.expect("emulator starts")
}

// ---- peers -----------------------------------------------------------------------------------

/// The value of `var`, which points a peer test at its third-party peer (`what`), or `None`
/// when it is unset or empty: the test then skips, saying so.
///
/// Under `CI=true` a missing peer fails the test instead, so that a peer CI set up and then
/// lost (a renamed variable, a failed install) cannot pass as a row of skips.
pub fn peer(var: &str, what: &str) -> Option<String> {
    let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    if value.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        assert!(
            !ci,
            "{var} is not set but CI=true: the {what} this test needs is missing \
             (set {var}, see .ci/run)"
        );
        println!("skipped: {var} not set ({what} not available)");
    }
    value
}

// ---- simulated time --------------------------------------------------------------------------

/// Makes paused tokio time run on its own, a millisecond per scheduler turn, for tests that
/// wait out timers (idle timeouts, heartbeats) over real sockets: seconds pass in a few real
/// milliseconds, and the socket I/O is polled between every two steps, so the bytes a timer
/// makes one side write are read before the next step, as in real time.
///
/// Plain `pause()` is not enough there: when every task waits, tokio jumps straight to the
/// next timer, and a timer can fire before the bytes already sent are read (a spurious idle
/// timeout). The clock keeps one task always runnable, so that jump never happens.
///
/// For `#[tokio::test(start_paused = true)]` (a current-thread runtime). Stops when dropped.
pub struct FastClock(JoinHandle<()>);

/// Starts a [`FastClock`].
pub fn fast_clock() -> FastClock {
    FastClock(tokio::spawn(async {
        loop {
            tokio::time::advance(std::time::Duration::from_millis(1)).await;
        }
    }))
}

impl Drop for FastClock {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ---- a fault proxy ---------------------------------------------------------------------------

/// A TCP proxy in front of `upstream` whose connections a test can break the ways networks
/// and servers break: all closed at once ([`Proxy::kill_all`]), closed with the listener gone
/// as when the server process dies ([`Proxy::cut`]), or silent with the sockets still open as
/// when the peer hangs ([`Proxy::black_hole`]), cut in the middle of what was being sent
/// ([`Proxy::cut_mid_write`]), or slow to pass anything on for a while ([`Proxy::stall`]);
/// [`Chaos`] does all of these at random for a soak.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    black_hole: Arc<AtomicBool>,
    faults: Arc<Faults>,
    accept: JoinHandle<()>,
}

/// Faults the pipes act on as bytes pass.
#[derive(Default)]
struct Faults {
    /// The next chunk to pass is written half, then its connection closes.
    truncate: AtomicBool,
    /// Nothing passes before this time.
    stall_until: Mutex<Option<tokio::time::Instant>>,
}

impl Proxy {
    /// Starts proxying every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Default::default();
        let black_hole = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(Faults::default());
        let (c, bh, f) = (conns.clone(), black_hole.clone(), faults.clone());
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let bh = bh.clone();
                let f = f.clone();
                let task = tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = up.set_nodelay(true);
                    let _ = down.set_nodelay(true);
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    // Either direction ending drops all four halves.
                    tokio::select! {
                        _ = pipe(dr, uw, bh.clone(), f.clone()) => {}
                        _ = pipe(ur, dw, bh, f) => {}
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Proxy {
            port,
            conns,
            black_hole,
            faults,
            accept,
        }
    }

    /// The next chunk any connection passes on is written only half, and that connection
    /// then closes: a cut in the middle of a frame.
    pub fn cut_mid_write(&self) {
        self.faults.truncate.store(true, Ordering::SeqCst);
    }

    /// Holds every byte (in both directions, sockets open) for `d`, then passes them on.
    pub fn stall(&self, d: std::time::Duration) {
        *self.faults.stall_until.lock().unwrap() = Some(tokio::time::Instant::now() + d);
    }

    /// Closes every connection made so far (both sockets at once); new ones are still
    /// proxied. Returns how many were open.
    pub fn kill_all(&self) -> usize {
        let mut conns = self.conns.lock().unwrap();
        let n = conns.iter().filter(|t| !t.is_finished()).count();
        for t in conns.drain(..) {
            t.abort();
        }
        n
    }

    /// Closes every connection and stops listening, as when the server process dies.
    pub fn cut(&self) {
        self.accept.abort();
        self.kill_all();
    }

    /// From now on, drops every byte in both directions (the sockets stay open).
    pub fn black_hole(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Breaks a [`Proxy`]'s connections the ways a bad network does until stopped: the first
/// fault within 250 ms, then every 1-3 s a cut of every connection, a cut mid-frame, or a 5 s
/// stall, in a fixed (xorshift) pattern so that a failing run can be repeated.
pub struct Chaos {
    stop: Arc<AtomicBool>,
    faults: tokio::sync::watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Chaos {
    /// Starts breaking `proxy`'s connections.
    pub fn start(proxy: Arc<Proxy>) -> Chaos {
        let stop = Arc::new(AtomicBool::new(false));
        let (count, faults) = tokio::sync::watch::channel(0usize);
        let halt = stop.clone();
        let task = tokio::spawn(async move {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut first = true;
            while !halt.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let wait = if std::mem::take(&mut first) {
                    std::time::Duration::from_millis(50 + x % 200)
                } else {
                    std::time::Duration::from_millis(1000 + x % 2000)
                };
                // In steps, so that a stop is not held up by a long wait.
                let step = std::time::Duration::from_millis(50);
                let mut slept = std::time::Duration::ZERO;
                while slept < wait && !halt.load(Ordering::Relaxed) {
                    tokio::time::sleep(step).await;
                    slept += step;
                }
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                match (x >> 32) % 10 {
                    0..=5 => {
                        proxy.kill_all();
                    }
                    6..=8 => proxy.cut_mid_write(),
                    _ => proxy.stall(std::time::Duration::from_secs(5)),
                }
                count.send_modify(|n| *n += 1);
            }
        });
        Chaos { stop, faults, task }
    }

    /// Waits until the first fault has happened: a run too short to meet one by chance
    /// (a small N) calls this midway, so that it still crosses a fault.
    pub async fn first_fault(&self) {
        let mut faults = self.faults.clone();
        let _ = faults.wait_for(|&n| n > 0).await;
    }

    /// How many faults it has made so far.
    pub fn faults(&self) -> usize {
        *self.faults.borrow()
    }

    /// Stops and returns how many faults it made.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let n = *self.faults.borrow();
        n
    }
}

/// Copies `from` to `to` until either ends, dropping the bytes while `black_hole` is set and
/// acting on `faults`.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    black_hole: Arc<AtomicBool>,
    faults: Arc<Faults>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let until = *faults.stall_until.lock().unwrap();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        if faults.truncate.swap(false, Ordering::SeqCst) {
            let _ = to.write_all(&buf[..n / 2]).await;
            return;
        }
        if !black_hole.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
