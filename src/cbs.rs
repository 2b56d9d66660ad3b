//! Claims-based security: putting tokens to the `$cbs` node and refreshing them before they
//! expire; and the request/response link pair that `$cbs` and `$management` share.

use crate::amqp::types::error::condition as amqp;
use crate::amqp::types::message::{Message, MessageId};
use crate::amqp::{ReceiverOptions, SenderOptions, Session};
use crate::auth::TokenCredential;
use crate::error::{Error, ErrorKind};
use crate::wire::address::CBS_NODE;
use crate::wire::cbs::{PutTokenRequest, PUT_TOKEN};
use crate::wire::condition as wire;
use crate::wire::rpc::Status;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
// Refresh times are on tokio's clock, so that tests of expiry run under `time::pause()`.
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Aborts a spawned task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Message>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request/response link pair to a node such as `$cbs` or `$management`; replies are matched
/// to requests by correlation id, so many requests can be outstanding at once.
#[derive(Debug)]
pub(crate) struct RpcLink {
    node: String,
    sender: crate::amqp::Sender,
    reply_to: String,
    pending: Pending,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
    _task: AbortOnDrop,
}

/// Maps a non-2xx status to an error: 401 authentication, 404 not found, 408/429/5xx
/// transient, others permanent.
pub(crate) fn status_error(what: &str, status: &Status) -> Error {
    let (kind, condition, transient) = match status.code {
        401 | 403 => (ErrorKind::Authentication, amqp::UNAUTHORIZED_ACCESS, false),
        404 | 410 => (ErrorKind::NotFound, amqp::NOT_FOUND, false),
        400 => (ErrorKind::InvalidArgument, wire::ARGUMENT_ERROR, false),
        408 => (ErrorKind::OperationTimeout, wire::TIMEOUT, true),
        429 | 503 => (ErrorKind::EventHub, wire::SERVER_BUSY, true),
        500..=599 => (ErrorKind::EventHub, amqp::INTERNAL_ERROR, true),
        _ => (ErrorKind::EventHub, amqp::INTERNAL_ERROR, false),
    };
    let Status { code, description } = status;
    Error::new(
        kind,
        format!("{what} failed with status {code}: {description}"),
    )
    .with_condition(condition.as_str(), description.as_str())
    .with_transient(transient)
}

impl RpcLink {
    /// Attaches the pair to `node` on `session`.
    pub(crate) async fn open(session: &Session, node: &str) -> Result<RpcLink, Error> {
        let what = format!("attaching to {node}");
        let reply_to = format!(
            "{node}-reply-to-{:016x}",
            (crate::retry::random_unit() * (u64::MAX as f64)) as u64
        );
        let mut so = SenderOptions::new(node);
        so.max_in_flight = 64;
        let sender = session
            .attach_sender(so)
            .await
            .map_err(|e| Error::from_amqp(ErrorKind::Connect, &what, e))?;
        let mut ro = ReceiverOptions::new(node);
        ro.target = Some(crate::amqp::types::messaging::Target::new(
            reply_to.as_str(),
        ));
        ro.prefetch = 64;
        let mut receiver = session
            .attach_receiver(ro)
            .await
            .map_err(|e| Error::from_amqp(ErrorKind::Connect, &what, e))?;
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (p, c) = (pending.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok(m) = receiver.recv().await {
                let _ = receiver.accept(&m);
                let Ok(msg) = m.message() else { continue };
                let id = match msg
                    .properties
                    .as_ref()
                    .and_then(|p| p.correlation_id.as_ref())
                {
                    Some(MessageId::Ulong(id)) => *id,
                    _ => continue,
                };
                if let Some(tx) = lock(&p).remove(&id) {
                    let _ = tx.send(msg);
                }
            }
            c.store(true, Ordering::Release);
            // Waking every waiter: dropping their senders fails their calls.
            lock(&p).clear();
        });
        Ok(RpcLink {
            node: node.to_owned(),
            sender,
            reply_to,
            pending,
            next_id: AtomicU64::new(1),
            closed,
            _task: AbortOnDrop(task),
        })
    }

    /// True once the reply link is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends `request` and waits for its reply (no timeout here: callers bound it).
    pub(crate) async fn call(&self, mut request: Message) -> Result<Message, Error> {
        let what = format!("request to {}", self.node);
        if self.is_closed() {
            return Err(Error::new(
                ErrorKind::ConnectionLost,
                format!("{what}: link closed"),
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let props = request.properties_mut();
        props.message_id = Some(MessageId::Ulong(id));
        props.reply_to = Some(self.reply_to.as_str().into());
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        struct Unregister<'a>(&'a Pending, u64);
        impl Drop for Unregister<'_> {
            fn drop(&mut self) {
                lock(self.0).remove(&self.1);
            }
        }
        let _guard = Unregister(&self.pending, id);
        let outcome = self
            .sender
            .send(&request)
            .await
            .map_err(|e| Error::from_amqp(ErrorKind::EventHub, &what, e))?;
        if let Some(state) = outcome {
            if let Some(e) = state.error() {
                return Err(Error::from_amqp_error(ErrorKind::EventHub, what, e));
            }
        }
        rx.await.map_err(|_| {
            Error::new(
                ErrorKind::ConnectionLost,
                format!("{what}: link closed before the reply"),
            )
        })
    }
}

/// A token put on the connection, when to put a fresh one, and how many links rely on it.
#[derive(Debug)]
struct Entry {
    token: String,
    refresh_at: Instant,
    /// Links attached under this audience ([`TokenHold`]s). Only held tokens are refreshed;
    /// an unheld one (a management call's) is forgotten when due and put again on next use.
    holders: usize,
}

/// The CBS token manager of one connection: puts a token per audience and refreshes each
/// before it expires, in the background, without touching the links that use it.
pub(crate) struct Cbs {
    rpc: RpcLink,
    credential: Arc<dyn TokenCredential>,
    /// The endpoint as the connection reaches it (`amqp://localhost:5672`), named in errors
    /// instead of the audience's `amqps://` form.
    endpoint: String,
    /// Never held across an await: puts for different audiences run side by side.
    tokens: Mutex<HashMap<String, Entry>>,
    changed: Notify,
    /// The last refresh failure, if the latest attempt failed.
    pub(crate) refresh_error: Mutex<Option<Error>>,
}

impl std::fmt::Debug for Cbs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cbs").field("rpc", &self.rpc).finish()
    }
}

/// Keeps the token of one audience refreshed while a link attached under it lives.
#[derive(Debug)]
pub(crate) struct TokenHold {
    cbs: Arc<Cbs>,
    audience: String,
}

impl Drop for TokenHold {
    fn drop(&mut self) {
        if let Some(e) = lock(&self.cbs.tokens).get_mut(&self.audience) {
            e.holders = e.holders.saturating_sub(1);
        }
    }
}

/// When to refresh a token valid from `now` until `expires_on`: a fifth of its lifetime (at
/// most 10 minutes, at least 1 s) before it ends.
fn refresh_time(now: SystemTime, expires_on: SystemTime) -> SystemTime {
    let lifetime = expires_on.duration_since(now).unwrap_or_default();
    let margin = (lifetime / 5).clamp(Duration::from_secs(1), Duration::from_secs(600));
    expires_on
        .checked_sub(margin)
        .unwrap_or(now)
        .max(now + lifetime.min(Duration::from_millis(500)))
}

/// An audience as errors name it: `eh1/Partitions/0 at amqp://localhost:5672`, its entity
/// path on the endpoint really used. The audience itself says `amqps://namespace/...` over
/// every transport (the service wants that form), which would be wrong in an error about a
/// plain, WebSocket or custom-endpoint connection.
fn shown(audience: &str, endpoint: &str) -> String {
    let path = audience.split_once("://").map_or(audience, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, p)| p)
    });
    if path.is_empty() {
        format!("the namespace at {endpoint}")
    } else {
        format!("{path} at {endpoint}")
    }
}

/// Tokens due within this much of the earliest one are refreshed in the same round, so that
/// links opened together cost one wake-up rather than one each.
const REFRESH_GROUPING: Duration = Duration::from_secs(1);

/// A refresh that takes longer than this is given up and retried (the loop must not hang on
/// a request that never gets a reply).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the refresh loop does with the tokens at `now`: the audiences to put again (held
/// and due within the grouping window), and the earliest time it has to wake up next. Unheld
/// due tokens are dropped from `tokens`.
fn plan_refresh(
    tokens: &mut HashMap<String, Entry>,
    now: Instant,
) -> (Vec<String>, Option<Instant>) {
    tokens.retain(|_, e| e.holders > 0 || e.refresh_at > now);
    let horizon = now + REFRESH_GROUPING;
    let due: Vec<String> = tokens
        .iter()
        .filter(|(_, e)| e.refresh_at <= now)
        .map(|(a, _)| a.clone())
        .collect();
    if due.is_empty() {
        return (due, tokens.values().map(|e| e.refresh_at).min());
    }
    let due = tokens
        .iter()
        .filter(|(_, e)| e.holders > 0 && e.refresh_at <= horizon)
        .map(|(a, _)| a.clone())
        .collect();
    (due, None)
}

impl Cbs {
    /// Attaches the `$cbs` link pair of a connection to `endpoint` (as errors should name it).
    pub(crate) async fn open(
        session: &Session,
        credential: Arc<dyn TokenCredential>,
        endpoint: String,
    ) -> Result<Arc<Cbs>, Error> {
        let rpc = RpcLink::open(session, CBS_NODE).await?;
        Ok(Arc::new(Cbs {
            rpc,
            credential,
            endpoint,
            tokens: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            refresh_error: Mutex::new(None),
        }))
    }

    /// True once the `$cbs` link is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.rpc.is_closed()
    }

    /// How errors and logs name `audience`: see [`shown`].
    fn shown(&self, audience: &str) -> String {
        shown(audience, &self.endpoint)
    }

    /// Gets a token for `audience` and puts it; returns the token and its refresh time.
    async fn put(&self, audience: &str) -> Result<(String, Instant), Error> {
        let token = self.credential.get_token(audience).await.map_err(|e| {
            Error::new(
                ErrorKind::Authentication,
                format!("getting a token for {}: {e}", self.shown(audience)),
            )
        })?;
        // The token's lifetime is wall-clock time; when to refresh it is a point on our clock.
        let (now, clock) = (SystemTime::now(), Instant::now());
        let expiry_secs = token
            .expires_on
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let request = PutTokenRequest::new(
            self.credential.token_type(),
            audience,
            expiry_secs,
            token.token.as_str(),
        );
        let reply = self.rpc.call(request.to_message()).await?;
        let status = Status::from_message(&reply);
        if !status.is_success() {
            return Err(status_error(
                &format!("{PUT_TOKEN} for {}", self.shown(audience)),
                &status,
            ));
        }
        tracing::debug!(target: "eventhubs::cbs", audience, expires_on = ?token.expires_on, "token put");
        let refresh_in = refresh_time(now, token.expires_on)
            .duration_since(now)
            .unwrap_or_default();
        Ok((token.token, clock + refresh_in))
    }

    /// Records a fresh token for `audience`, keeping its holders.
    fn store(&self, audience: &str, token: String, refresh_at: Instant, hold: bool) {
        let mut tokens = lock(&self.tokens);
        let e = tokens.entry(audience.to_owned()).or_insert(Entry {
            token: String::new(),
            refresh_at,
            holders: 0,
        });
        e.token = token;
        e.refresh_at = refresh_at;
        e.holders += usize::from(hold);
    }

    /// Makes sure a valid token for `audience` is on the connection (putting one if needed)
    /// and returns it. Concurrent calls for the same audience may both put; the service
    /// keeps the latest, which is harmless.
    pub(crate) async fn authorize(&self, audience: &str) -> Result<String, Error> {
        self.authorize_inner(audience, false).await
    }

    /// [`Cbs::authorize`], and keeps the token refreshed until the hold is dropped.
    pub(crate) async fn authorize_and_hold(
        self: &Arc<Self>,
        audience: &str,
    ) -> Result<TokenHold, Error> {
        self.authorize_inner(audience, true).await?;
        Ok(TokenHold {
            cbs: self.clone(),
            audience: audience.to_owned(),
        })
    }

    async fn authorize_inner(&self, audience: &str, hold: bool) -> Result<String, Error> {
        {
            let mut tokens = lock(&self.tokens);
            if let Some(e) = tokens.get_mut(audience) {
                if e.refresh_at > Instant::now() {
                    e.holders += usize::from(hold);
                    return Ok(e.token.clone());
                }
            }
        }
        let (token, refresh_at) = self.put(audience).await?;
        self.store(audience, token.clone(), refresh_at, hold);
        self.changed.notify_one();
        Ok(token)
    }

    /// Marks the token for `audience` stale, so the next [`Cbs::authorize`] puts a fresh one.
    pub(crate) fn invalidate(&self, audience: &str) {
        if let Some(e) = lock(&self.tokens).get_mut(audience) {
            e.refresh_at = Instant::now();
        }
    }

    /// The refresh loop: wakes at the earliest refresh time and puts the due tokens again,
    /// all at once. Failures are retried every second (a token still valid keeps the links
    /// working meanwhile).
    pub(crate) async fn refresh_loop(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            let (due, next) = plan_refresh(&mut lock(&self.tokens), now);
            if due.is_empty() {
                let wake = next.unwrap_or(now + Duration::from_secs(3600));
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {}
                    _ = self.changed.notified() => {}
                }
                continue;
            }
            if self.is_closed() {
                return;
            }
            let mut puts = tokio::task::JoinSet::new();
            for audience in due {
                let cbs = self.clone();
                puts.spawn(async move {
                    let r = tokio::time::timeout(REFRESH_TIMEOUT, cbs.put(&audience))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorKind::OperationTimeout,
                                format!(
                                    "refreshing the token for {} took over {REFRESH_TIMEOUT:?}",
                                    cbs.shown(&audience)
                                ),
                            ))
                        });
                    (audience, r)
                });
            }
            while let Some(done) = puts.join_next().await {
                let Ok((audience, r)) = done else { continue };
                match r {
                    Ok((token, refresh_at)) => {
                        self.store(&audience, token, refresh_at, false);
                        *lock(&self.refresh_error) = None;
                    }
                    Err(e) => {
                        let entity = self.shown(&audience);
                        tracing::warn!(target: "eventhubs::cbs", error = %e, entity, "token refresh failed");
                        *lock(&self.refresh_error) = Some(e);
                        if let Some(entry) = lock(&self.tokens).get_mut(&audience) {
                            entry.refresh_at = Instant::now() + Duration::from_secs(1);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_times() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            refresh_time(now, now + Duration::from_secs(3600)),
            now + Duration::from_secs(3000)
        );
        assert_eq!(
            refresh_time(now, now + Duration::from_secs(5)),
            now + Duration::from_secs(4)
        );
        assert_eq!(
            refresh_time(now, now + Duration::from_secs(100)),
            now + Duration::from_secs(80)
        );
        // An already-expired token is retried shortly, not in a hot loop.
        assert_eq!(refresh_time(now, now), now);
        assert!(
            refresh_time(now, now + Duration::from_millis(800)) >= now + Duration::from_millis(500)
        );
    }

    fn entry(refresh_at: Instant, holders: usize) -> Entry {
        Entry {
            token: String::from("t"),
            refresh_at,
            holders,
        }
    }

    #[test]
    fn refresh_plan_groups_due_tokens_and_forgets_unheld_ones() {
        let now = Instant::now() + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        let mut tokens: HashMap<String, Entry> = [
            ("due", entry(now - s(1), 2)),
            ("soon", entry(now + Duration::from_millis(700), 1)),
            ("later", entry(now + s(30), 1)),
            ("unheld-due", entry(now, 0)),
            ("unheld-later", entry(now + s(5), 0)),
        ]
        .into_iter()
        .map(|(a, e)| (a.to_string(), e))
        .collect();
        let (mut due, next) = plan_refresh(&mut tokens, now);
        due.sort();
        assert_eq!(
            due,
            ["due", "soon"],
            "due now and within the grouping window"
        );
        assert_eq!(next, None);
        assert!(!tokens.contains_key("unheld-due"), "no link needs it");
        assert!(
            tokens.contains_key("unheld-later"),
            "a management call may reuse it"
        );

        // Nothing due: wake at the earliest refresh time, unheld ones included (to drop them).
        tokens.remove("due");
        tokens.remove("soon");
        let (due, next) = plan_refresh(&mut tokens, now);
        assert!(due.is_empty());
        assert_eq!(next, Some(now + s(5)));
        let (due, next) = plan_refresh(&mut tokens, now + s(6));
        assert!(due.is_empty());
        assert_eq!(next, Some(now + s(30)));
        assert!(!tokens.contains_key("unheld-later"));
    }

    #[test]
    fn audiences_are_shown_on_the_endpoint_used() {
        let ep = "amqp://localhost:5672";
        assert_eq!(
            shown("amqps://localhost/eh1/Partitions/0", ep),
            "eh1/Partitions/0 at amqp://localhost:5672"
        );
        assert_eq!(
            shown("amqps://ns/", ep),
            "the namespace at amqp://localhost:5672"
        );
        assert_eq!(
            shown("amqps://ns", ep),
            "the namespace at amqp://localhost:5672"
        );
        assert_eq!(shown("eh1", ep), "eh1 at amqp://localhost:5672");
    }

    #[test]
    fn statuses() {
        assert_eq!(
            status_error("x", &Status::new(401, "no")).kind(),
            ErrorKind::Authentication
        );
        assert!(!status_error("x", &Status::new(404, "no")).is_transient());
        assert!(status_error("x", &Status::new(503, "busy")).is_transient());
        assert!(status_error("x", &Status::new(500, "oops")).is_transient());
    }
}
