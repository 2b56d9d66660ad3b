//! A connection's reply links for `$cbs` and `$management`. Clients such as the official Rust
//! SDK open a new session per request with the same link names and reply address, so only
//! live links count, and the newest one that matches a request gets its reply. A request's
//! reply-to names either the reply link's target address (our client, .NET, the Rust SDK) or
//! the reply link's name (the JS client attaches its `$cbs` receiver with no target at all).

use super::routing::Node;
use crate::amqp::Sender;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a reply waits for its link: a client may attach it just after sending.
const LINK_WAIT: Duration = Duration::from_secs(5);

struct ReplyLink {
    id: u64,
    node: Node,
    name: String,
    target: Option<String>,
    sender: Arc<Sender>,
}

/// The live reply links of one connection.
pub(super) struct ReplyLinks {
    links: Mutex<Vec<ReplyLink>>,
    next_id: AtomicU64,
    changed: Notify,
}

impl ReplyLinks {
    pub(super) fn new() -> Self {
        ReplyLinks {
            links: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    /// Offers `sender` (the client's receiver named `name`, with `node` as source and `target`
    /// as its address) for replies until it detaches, then forgets it.
    pub(super) async fn serve(
        &self,
        node: Node,
        name: String,
        target: Option<String>,
        sender: Sender,
    ) {
        let sender = Arc::new(sender);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(ReplyLink {
            id,
            node,
            name,
            target,
            sender: sender.clone(),
        });
        self.changed.notify_waiters();
        let _ = sender.detached().await;
        self.lock().retain(|l| l.id != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReplyLink>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest live link of `node` whose target or name is `reply_to`; without a reply-to
    /// (the Python client sets none) the newest live link of `node`. Waits [`LINK_WAIT`] for
    /// one.
    async fn choose(&self, node: &Node, reply_to: Option<&str>) -> Option<Arc<Sender>> {
        let deadline = tokio::time::Instant::now() + LINK_WAIT;
        loop {
            let notified = self.changed.notified();
            {
                let links = self.lock();
                let found = links.iter().rev().find(|l| {
                    l.node == *node
                        && !l.sender.is_detached()
                        && match reply_to {
                            Some(t) => l.target.as_deref() == Some(t) || l.name == t,
                            None => true,
                        }
                });
                if let Some(l) = found {
                    return Some(l.sender.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Sends an encoded reply on the link chosen for it, choosing again when that link detaches
    /// under the send; a reply that cannot be delivered is logged, once, with its address.
    pub(super) async fn deliver(&self, node: &Node, reply_to: Option<&str>, reply: Bytes) {
        // Each retry needs a link that detached under the previous send; bound them anyway.
        for _ in 0..4 {
            let Some(sender) = self.choose(node, reply_to).await else {
                break;
            };
            if let Ok(pending) = sender.start_send_bytes(reply.clone(), 0, true).await {
                if pending.await.is_ok() {
                    return;
                }
            }
            if !sender.is_detached() {
                break;
            }
        }
        tracing::warn!(
            ?node,
            reply_to = reply_to.unwrap_or("(none)"),
            "no live reply link on this connection for the request's reply-to address; reply dropped"
        );
    }
}
