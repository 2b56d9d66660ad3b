//! Where `ehub` connects: a connection string (or the local emulator's) and a hub.

use crate::Failure;
use clap::Args;
use eventhubs::EventHubClient;
use std::io::IsTerminal;
use std::time::Duration;

/// The local emulator's connection string, used when none is given.
pub const EMULATOR: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;";

/// Where to connect: any Event Hubs (Azure or an emulator).
#[derive(Args)]
pub struct Target {
    /// Connection string (default: the local emulator's, localhost:5672).
    #[arg(long, env = "EVENTHUB_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: Option<String>,
    /// Event hub (default: the connection string's EntityPath, else eh1).
    #[arg(long, env = "EVENTHUB_NAME", hide_env_values = true)]
    pub hub: Option<String>,
    /// Seconds to wait for a connection before the attempt counts as failed (4 attempts).
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// How to reach the service: plain AMQP, or AMQP over WebSockets on 443.
    #[arg(long, value_enum, default_value_t = TransportMode::Amqp)]
    pub transport: TransportMode,
    /// Tunnel through this HTTP proxy: `http://[user:password@]host[:port]`.
    #[arg(long, env = "EHUB_PROXY", hide_env_values = true)]
    pub proxy: Option<String>,
    /// Take the proxy from HTTPS_PROXY (or https_proxy) unless NO_PROXY (or no_proxy) exempts
    /// the host connected to; --proxy, when given, wins. Off by default: the environment is
    /// read only when asked.
    #[arg(long)]
    pub proxy_from_env: bool,
    /// Connect to HOST:PORT instead of the namespace's endpoint (e.g. an emulator's --ws-port).
    #[arg(long)]
    pub custom_endpoint: Option<String>,
}

/// `--transport`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TransportMode {
    /// AMQP on 5671 (5672 for the emulator).
    Amqp,
    /// AMQP over WebSockets (`/$servicebus/websocket/` on 443).
    Websockets,
}

impl Target {
    fn conn(&self) -> &str {
        self.connection_string
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or(EMULATOR)
    }

    /// Whether this names a development emulator (so a refused connection means none runs).
    pub fn is_emulator(&self) -> bool {
        self.conn()
            .to_ascii_lowercase()
            .contains("usedevelopmentemulator=true")
    }

    /// A client for this target; a bad connection string or timeout is a usage error.
    pub fn client(&self) -> Result<EventHubClient, Failure> {
        let cs = self.conn();
        let hub = match (
            self.hub.as_deref().filter(|h| !h.is_empty()),
            cs.to_ascii_lowercase().contains("entitypath="),
        ) {
            (Some(h), _) => Some(h),
            (None, true) => None,
            (None, false) => Some("eh1"),
        };
        let t = self.connect_timeout;
        if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
            return Err(Failure::Usage(format!(
                "--connect-timeout {t}: expected seconds, more than 0 and at most 3600"
            )));
        }
        let builder = eventhubs::EventHubClientBuilder::from_connection_string(cs, hub)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let mut retry = eventhubs::RetryOptions::default();
        if std::io::stderr().is_terminal() {
            // Silence is the worst answer a tool can give while it retries: say what it waits for.
            let host = builder_host(cs);
            retry.observer = Some(eventhubs::RetryObserver::new(move |n| {
                eprintln!(
                    "waiting for {host}, attempt {}/{} ({})",
                    n.attempt,
                    n.attempts,
                    crate::one_line(&n.error.to_string())
                );
            }));
        }
        crate::EMULATOR_TARGET.store(self.is_emulator(), std::sync::atomic::Ordering::Relaxed);
        let mut builder = builder.transport(match self.transport {
            TransportMode::Amqp => eventhubs::TransportType::Amqp,
            TransportMode::Websockets => eventhubs::TransportType::AmqpWebSockets,
        });
        builder = builder.proxy_from_env(self.proxy_from_env);
        if let Some(url) = &self.proxy {
            builder = builder
                .proxy_url(url)
                .map_err(|e| Failure::Usage(format!("--proxy: {}", e.message())))?;
        }
        if let Some(ep) = &self.custom_endpoint {
            let (host, port) = ep
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| {
                    Failure::Usage(format!("--custom-endpoint {ep}: expected HOST:PORT"))
                })?;
            builder = builder.custom_endpoint(host.trim_matches(['[', ']']), port);
        }
        Ok(builder
            .retry(retry)
            .connect_timeout(Duration::from_secs_f64(t))
            .build()?)
    }
}

/// The namespace host a connection string names, for progress lines.
fn builder_host(cs: &str) -> String {
    cs.split(';')
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case("endpoint").then(|| v.trim())
        })
        .map(|v| v.split_once("://").map_or(v, |(_, rest)| rest))
        .map(|v| v.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| "the event hub".to_owned())
}
