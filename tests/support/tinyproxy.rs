//! A tinyproxy process of a test's own (the binary `.ci/run` installs, named by
//! `EVENTHUBS_TINYPROXY_BIN`), on a free 127.0.0.1 port with Basic auth, in the foreground so
//! that the test holds its pid: it can SIGKILL it mid-stream and start it again on the same
//! port, and read its log to see which tunnels it opened.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming the tinyproxy binary.
pub const VAR: &str = "EVENTHUBS_TINYPROXY_BIN";

/// What the gate says is missing when [`VAR`] is unset.
pub const WHAT: &str = "tinyproxy binary (Debian's tinyproxy-bin, see .ci/run)";

/// A running (or killed) tinyproxy.
pub struct TinyProxy {
    bin: String,
    dir: PathBuf,
    /// The port it listens on, the same across restarts.
    pub port: u16,
    /// The Basic auth user it accepts.
    pub user: String,
    /// That user's password.
    pub password: String,
    child: Option<Child>,
}

impl TinyProxy {
    /// The binary from [`VAR`] (`None`, after the peer gate, when unset), started on a free
    /// port accepting `user`/`password`. Its config and log live in a fresh directory named
    /// after `name`.
    pub fn start(name: &str, user: &str, password: &str) -> Option<TinyProxy> {
        let bin = super::peer(VAR, WHAT)?;
        let dir =
            std::env::temp_dir().join(format!("eventhubs-tinyproxy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A port the OS just handed out and took back: free unless someone races for it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // No ConnectPort line: CONNECT to any port (the emulator's are ephemeral).
        let conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\nAllow 127.0.0.1\n\
             BasicAuth {user} {password}\nLogLevel Info\nLogFile \"{}\"\n",
            dir.join("tinyproxy.log").display()
        );
        std::fs::write(dir.join("tinyproxy.conf"), conf).unwrap();
        let mut proxy = TinyProxy {
            bin,
            dir,
            port,
            user: user.to_owned(),
            password: password.to_owned(),
            child: None,
        };
        proxy.restart();
        Some(proxy)
    }

    /// `http://user:password@127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!(
            "http://{}:{}@127.0.0.1:{}",
            self.user, self.password, self.port
        )
    }

    /// The same URL with another password.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("http://{}:{password}@127.0.0.1:{}", self.user, self.port)
    }

    /// SIGKILLs the process (every tunnel through it dies at once, as when the proxy host
    /// crashes) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process (again) on the same port and waits, up to 10 s, until it accepts
    /// connections. Panics if it exits or never listens.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.bin)
            .arg("-d")
            .arg("-c")
            .arg(self.dir.join("tinyproxy.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{VAR}={}: {e}", self.bin));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("tinyproxy exited with {status}; its log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy does not listen on {}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it has logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }

    /// How many CONNECT requests for `target` (`host:port`) it has logged.
    pub fn connects_to(&self, target: &str) -> usize {
        let want = format!("CONNECT {target} ");
        self.log().lines().filter(|l| l.contains(&want)).count()
    }
}

impl Drop for TinyProxy {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
