//! One client connection to the emulator: parses link addresses, routes each link to its node
//! (CBS, management, ingest, consume) and keeps the connection's grants and reply links.

use super::hub::Hub;
use super::nodes::consume::consume;
use super::nodes::ingest::ingest;
use super::nodes::requests::{accept_requests, serve_requests};
use super::replies::ReplyLinks;
use super::Shared;
use crate::amqp::codec::Symbol;
use crate::amqp::engine::LinkAcceptance;
use crate::amqp::types::definitions::SenderSettleMode;
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::{IncomingLink, ServerConnection};
pub(super) use crate::wire::address::Node;
use crate::wire::address::CBS_NODE;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn err(cond: Symbol, description: impl Into<String>) -> AmqpError {
    AmqpError::with_description(cond, description.into())
}

/// The path a token audience grants: `sb://host/hub/...` → `hub/...` (lower case).
pub(super) fn audience_path(audience: &str) -> String {
    let path = match audience.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => audience,
    };
    path.trim_matches('/').to_ascii_lowercase()
}

/// The host a token audience names (`sb://Host:5671/hub` → `host`), without port, brackets
/// or user info; `None` when the audience has no scheme and so names no host.
pub(super) fn audience_host(audience: &str) -> Option<String> {
    let (_, rest) = audience.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => host.split_once(':').map_or(host, |(h, _)| h),
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Names under which this machine is reached from itself; a token for any of them is a token
/// for the emulator, as `localhost` and `127.0.0.1` are the same place to a client.
fn is_local_name(host: &str) -> bool {
    static MACHINE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let machine = MACHINE.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
    });
    matches!(host, "localhost" | "127.0.0.1" | "::1")
        || host.ends_with(".localhost")
        || machine.as_deref() == Some(host)
}

struct Grant {
    path: String,
    expiry: u64,
}

/// Per-connection state shared by its link tasks.
pub(crate) struct Conn {
    pub(super) shared: Arc<Shared>,
    /// The namespace host the client opened this connection to (`open.hostname`), lower case.
    hostname: Option<String>,
    grants: Mutex<Vec<Grant>>,
    pub(super) replies: ReplyLinks,
}

impl Conn {
    pub(super) fn authorized(&self, path: &str) -> bool {
        if !self.shared.require_auth {
            return true;
        }
        let path = path.to_ascii_lowercase();
        let now = now_secs();
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|g| {
                g.expiry > now
                    && (g.path.is_empty()
                        || path == g.path
                        || path
                            .strip_prefix(&g.path)
                            .is_some_and(|r| r.starts_with('/')))
            })
    }

    /// Whether a token audience naming `host` is for the namespace this connection reached:
    /// the host the client opened to, or any local name of this machine.
    fn serves_host(&self, host: &str) -> bool {
        is_local_name(host) || self.hostname.as_deref() == Some(host)
    }

    /// Whether a token for `audience` may grant anything here: it names no host, or one
    /// [`Self::serves_host`] accepts.
    pub(super) fn serves_audience(&self, audience: &str) -> bool {
        audience_host(audience).is_none_or(|h| self.serves_host(&h))
    }

    pub(super) fn grant(&self, path: String, expiry: u64) {
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_secs();
        grants.retain(|g| g.expiry > now && g.path != path);
        grants.push(Grant { path, expiry });
    }

    pub(super) fn hub(&self, name: &str) -> Option<Arc<Hub>> {
        self.shared.hub(name)
    }
}

/// Serves one connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, mut connection: ServerConnection) {
    let hostname = connection
        .remote_open()
        .hostname
        .as_ref()
        .map(|h| h.as_str().trim_end_matches('.').to_ascii_lowercase());
    let conn = Arc::new(Conn {
        shared,
        hostname,
        grants: Mutex::new(Vec::new()),
        replies: ReplyLinks::new(),
    });
    while let Some(link) = connection.next_link().await {
        let conn = conn.clone();
        tokio::spawn(async move { route(conn, link).await });
    }
}

async fn route(conn: Arc<Conn>, link: IncomingLink) {
    let attach = link.attach();
    let peer_sends = link.peer_is_sender();
    let address = if peer_sends {
        attach.target.as_ref().and_then(|t| t.address.clone())
    } else {
        attach.source.as_ref().and_then(|s| s.address.clone())
    };
    let Some(address) = address else {
        link.refuse(err(condition::INVALID_FIELD, "link has no address"));
        return;
    };
    match (Node::parse(address.as_str()), peer_sends) {
        (Some(Node::Cbs), true) => {
            if let Some(rx) = accept_requests(link).await {
                serve_requests(conn, rx, Node::Cbs).await;
            }
        }
        (Some(Node::Management), true) => {
            if let Some(rx) = accept_requests(link).await {
                serve_requests(conn, rx, Node::Management).await;
            }
        }
        (Some(node @ (Node::Cbs | Node::Management)), false) => {
            let target = link
                .attach()
                .target
                .as_ref()
                .and_then(|t| t.address.as_ref())
                .map(|a| a.as_str().to_owned());
            let name = link.attach().name.to_string();
            let acceptance = LinkAcceptance {
                source: link.attach().source.as_deref().cloned(),
                snd_settle_mode: Some(SenderSettleMode::Settled),
                ..Default::default()
            };
            if let Ok(sender) = link.accept_sender(acceptance, 1000).await {
                conn.replies.serve(node, name, target, sender).await;
            }
        }
        (Some(Node::Hub(hub)), true) => ingest(conn, link, hub, None).await,
        (Some(Node::Partition { hub, partition }), true) => {
            ingest(conn, link, hub, Some(partition)).await
        }
        (
            Some(Node::Consumer {
                hub,
                consumer_group,
                partition,
            }),
            false,
        ) => consume(conn, link, hub, consumer_group, partition).await,
        (_, _) => link.refuse(err(
            condition::NOT_FOUND,
            format!("the emulator has no node {address:?} for this link direction"),
        )),
    }
}

pub(super) fn unauthorized(path: &str) -> AmqpError {
    err(
        condition::UNAUTHORIZED_ACCESS,
        format!("no valid token for {path}: put a SAS token to {CBS_NODE} first"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Address parsing is tested with its definition, in `wire::address`.
    #[test]
    fn audiences_as_paths() {
        assert_eq!(
            audience_path("sb://localhost/eh1/consumergroups/$default"),
            "eh1/consumergroups/$default"
        );
        assert_eq!(audience_path("amqps://h:5671/"), "");
    }

    #[test]
    fn audience_hosts() {
        let h = |a| audience_host(a);
        assert_eq!(h("sb://LocalHost/eh1").as_deref(), Some("localhost"));
        assert_eq!(
            h("amqps://ns.example:5671/eh1").as_deref(),
            Some("ns.example")
        );
        assert_eq!(h("sb://[::1]:5672/eh1").as_deref(), Some("::1"));
        assert_eq!(h("sb://user@ns.example./").as_deref(), Some("ns.example"));
        assert_eq!(h("sb://ns.example").as_deref(), Some("ns.example"));
        assert_eq!(h("eh1/partitions/0"), None);
        assert!(is_local_name("127.0.0.1") && is_local_name("localhost"));
        assert!(!is_local_name("other-namespace.example"));
    }
}
