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

struct Grant {
    path: String,
    expiry: u64,
}

/// Per-connection state shared by its link tasks.
pub(crate) struct Conn {
    pub(super) shared: Arc<Shared>,
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
    let conn = Arc::new(Conn {
        shared,
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
            let acceptance = LinkAcceptance {
                source: link.attach().source.as_deref().cloned(),
                snd_settle_mode: Some(SenderSettleMode::Settled),
                ..Default::default()
            };
            if let Ok(sender) = link.accept_sender(acceptance, 1000).await {
                conn.replies.serve(node, target, sender).await;
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
}
