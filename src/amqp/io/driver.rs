//! The task that owns one connection's engine and socket, and routes its events to the
//! handles (sessions, senders, receivers) that wait for them.

use super::BoxedTransport;
use crate::amqp::engine::{
    Connection as Engine, ConnectionLimits, Delivery, Event, LinkAcceptance, LinkConfig, LinkId,
    SessionConfig, SessionId,
};
use crate::amqp::error::Error;
use crate::amqp::types::definitions::Role;
use crate::amqp::types::error::{condition, AmqpError};
use crate::amqp::types::messaging::DeliveryState;
use crate::amqp::types::transport::{Attach, Open};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};

/// The outcome of a send: the peer's delivery state, or `None` when it was settled without one
/// (pre-settled sends, or a peer that settles silently).
pub(crate) type SendResult = Result<Option<DeliveryState>, Error>;

/// Requests from handles to the driver.
pub(crate) enum Command {
    BeginSession {
        config: SessionConfig,
        reply: oneshot::Sender<Result<SessionId, Error>>,
    },
    EndSession {
        session: SessionId,
        error: Option<AmqpError>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Attach {
        session: SessionId,
        config: LinkConfig,
        credit: u32,
        reply: oneshot::Sender<Result<Attached, Error>>,
    },
    Accept {
        link: LinkId,
        acceptance: LinkAcceptance,
        credit: u32,
        reply: oneshot::Sender<Result<Attached, Error>>,
    },
    Refuse {
        link: LinkId,
        error: AmqpError,
    },
    Detach {
        link: LinkId,
        closed: bool,
        error: Option<AmqpError>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Send {
        link: LinkId,
        payload: Bytes,
        format: u32,
        settled: bool,
        reply: oneshot::Sender<SendResult>,
        /// The sender's in-flight slot, freed when the outcome is known (not when the
        /// caller gets around to awaiting it).
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Pre-settled sends in one command (see [`Driver::send_settled_batch`]): a sender that
    /// owes its peer many deliveries at once (the emulator's consumer links) pays one channel
    /// message and one reply per batch instead of per delivery.
    SendSettledBatch {
        link: LinkId,
        payloads: Vec<Bytes>,
        format: u32,
        reply: oneshot::Sender<SendResult>,
    },
    AddCredit {
        link: LinkId,
        credit: u32,
    },
    Drain {
        link: LinkId,
    },
    Settle {
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
    },
    Close {
        error: Option<AmqpError>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// What a receiving link's handle hears.
#[derive(Debug)]
pub(crate) enum LinkMsg {
    Delivery(Delivery),
    /// Consecutive deliveries of one link from one pass over the engine's events (one read
    /// of the socket, typically): one channel message, one wake-up for all of them.
    Deliveries(Vec<Delivery>),
    Detached(Error),
}

/// State a sending link's handle can watch.
#[derive(Clone, Debug, Default)]
pub(crate) struct LinkStatus {
    /// Deliveries the link may start without queueing behind missing credit.
    pub credit: u32,
    /// Set once the link is gone, with the reason.
    pub detached: Option<Error>,
}

/// A link both sides have attached.
pub(crate) struct Attached {
    pub link: LinkId,
    pub remote: Option<Box<Attach>>,
    pub deliveries: Option<mpsc::UnboundedReceiver<LinkMsg>>,
    pub status: watch::Receiver<LinkStatus>,
}

/// A link the peer attached, waiting for the application's decision (server role mostly).
pub(crate) struct IncomingAttach {
    pub link: LinkId,
    pub session: SessionId,
    pub attach: Box<Attach>,
}

#[derive(Default)]
struct Route {
    attach_reply: Option<oneshot::Sender<Result<Attached, Error>>>,
    detach_reply: Option<oneshot::Sender<Result<(), Error>>>,
    deliveries: Option<mpsc::UnboundedSender<LinkMsg>>,
    outcomes: HashMap<u64, (oneshot::Sender<SendResult>, Option<OwnedSemaphorePermit>)>,
    status: Option<watch::Sender<LinkStatus>>,
}

impl Route {
    /// The link is gone: every waiter on it learns why (a pending detach simply completes).
    fn end(&mut self, err: &Error) {
        if let Some(reply) = self.attach_reply.take() {
            let _ = reply.send(Err(err.clone()));
        }
        if let Some(reply) = self.detach_reply.take() {
            let _ = reply.send(Ok(()));
        }
        for (_, (reply, _permit)) in self.outcomes.drain() {
            let _ = reply.send(Err(err.clone()));
        }
        if let Some(tx) = self.deliveries.take() {
            let _ = tx.send(LinkMsg::Detached(err.clone()));
        }
        if let Some(status) = self.status.take() {
            status.send_modify(|s| {
                s.credit = 0;
                s.detached = Some(err.clone());
            });
        }
    }
}

/// A cloneable way to talk to a driver.
#[derive(Clone, Debug)]
pub(crate) struct DriverHandle {
    tx: mpsc::UnboundedSender<Command>,
    /// The most output bytes the driver has held queued for the socket at once.
    queued_peak: Arc<AtomicUsize>,
}

impl DriverHandle {
    /// Sends a command; fails when the driver is gone (connection finished).
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Error> {
        self.tx.send(cmd).map_err(|_| Error::ConnectionClosed(None))
    }

    /// Sends a command and waits for its reply.
    pub(crate) async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.unwrap_or(Err(Error::ConnectionClosed(None)))
    }

    /// True once the driver has stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The most output bytes the driver has held queued for the socket at once.
    pub(crate) fn queued_output_peak(&self) -> usize {
        self.queued_peak.load(Ordering::Relaxed)
    }
}

/// What the driver reports once at start-up, and where it sends peer-initiated links.
pub(crate) struct DriverSetup {
    pub opened: oneshot::Sender<Result<Open, Error>>,
    pub incoming: Option<mpsc::UnboundedSender<IncomingAttach>>,
}

/// Starts the driver task for `engine` over `io`.
pub(crate) fn spawn(engine: Engine, io: BoxedTransport, setup: DriverSetup) -> DriverHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued_peak = Arc::new(AtomicUsize::new(0));
    let driver = Driver {
        engine,
        cmds: rx,
        routes: HashMap::new(),
        begin_replies: HashMap::new(),
        end_replies: HashMap::new(),
        close_replies: Vec::new(),
        opened: Some(setup.opened),
        incoming: setup.incoming,
        failure: None,
    };
    // The driver's logs carry the span of whoever started it (the emulator's names the peer).
    tokio::spawn(tracing::Instrument::instrument(
        driver.run(io, queued_peak.clone()),
        tracing::Span::current(),
    ));
    DriverHandle { tx, queued_peak }
}

struct Driver {
    engine: Engine,
    cmds: mpsc::UnboundedReceiver<Command>,
    routes: HashMap<LinkId, Route>,
    begin_replies: HashMap<SessionId, oneshot::Sender<Result<SessionId, Error>>>,
    end_replies: HashMap<SessionId, oneshot::Sender<Result<(), Error>>>,
    close_replies: Vec<oneshot::Sender<Result<(), Error>>>,
    opened: Option<oneshot::Sender<Result<Open, Error>>>,
    incoming: Option<mpsc::UnboundedSender<IncomingAttach>>,
    /// Why the connection ended, once it has.
    failure: Option<Error>,
}

/// Spare room the engine's input buffer has for every read.
const READ_MIN_ROOM: usize = 16 * 1024;

/// Most room reserved at once for reads (a busy connection's reads fill blocks this large).
const READ_MAX_BLOCK: usize = 256 * 1024;

/// Most buffers handed to one vectored write.
const MAX_WRITE_SLICES: usize = 64;

/// For a transport without vectored writes, chunks shorter than this are copied together
/// (up to [`COALESCE_LIMIT`]) so that a frame header does not go out in a write of its own
/// (a TLS record or WebSocket frame each).
const COALESCE_BELOW: usize = 16 * 1024;

/// See [`COALESCE_BELOW`].
const COALESCE_LIMIT: usize = 64 * 1024;

/// Commands handled per wake-up before output is written, so bursts go out in few writes.
const COMMAND_BATCH: usize = 256;

/// The least time a close forced by a stalled peer gets to reach it.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Driver {
    async fn run(mut self, io: BoxedTransport, queued_peak: Arc<AtomicUsize>) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let vectored = tokio::io::AsyncWrite::is_write_vectored(&wr);
        let mut out = Outbox::default();
        // How much the last read brought: the next read gets room for twice that (within
        // bounds), so a busy connection reads in large blocks and an idle one holds little.
        let mut last_read = 0usize;
        let mut needs_flush = false;
        let mut commands_open = true;
        let limits = self.engine.config().limits.clone();
        // Since when the queued output has been above its bound (the peer is not reading).
        let mut stalled_since: Option<std::time::Instant> = None;
        // After a stall closed the connection: when to stop waiting for the close to go out.
        let mut give_up_at: Option<std::time::Instant> = None;
        let mut peak = 0;
        loop {
            self.route_events();
            while let Some((b, frame_end)) = self.engine.poll_transmit_chunk() {
                out.push(b, frame_end);
            }
            if out.bytes > peak {
                peak = out.bytes;
                queued_peak.store(peak, Ordering::Relaxed);
            }
            if self.failure.is_some() && out.is_empty() {
                break;
            }
            let over = out.bytes > limits.max_queued_output;
            stalled_since = match (over, stalled_since) {
                (false, _) => None,
                (true, None) => Some(now()),
                (true, since) => since,
            };
            let stall_deadline = match (stalled_since, give_up_at) {
                (Some(since), None) => Some(since + limits.output_stall_timeout),
                _ => None,
            };
            let deadline = self.engine.poll_timeout();
            // Backpressure: a peer that does not read what we owe it gets no more of our
            // attention, so what it makes us queue stays near the bound.
            let reading = self.failure.is_none() && !over;
            tokio::select! {
                r = rd.read_buf(self.engine.input_buffer(
                    READ_MIN_ROOM,
                    (last_read * 2).clamp(READ_MIN_ROOM, READ_MAX_BLOCK),
                )), if reading => match r {
                    Ok(0) => self.lost(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "peer closed the socket",
                    )),
                    Ok(n) => {
                        last_read = n;
                        self.engine.handle_input(now());
                    }
                    Err(e) => self.lost(e),
                },
                w = write_or_flush(&mut wr, &mut out, vectored), if !out.is_empty() || needs_flush => match w {
                    Ok(Some(n)) => {
                        needs_flush = true;
                        out.advance(n);
                    }
                    Ok(None) => needs_flush = false,
                    Err(e) => {
                        self.lost(e);
                        out.clear();
                        needs_flush = false;
                    }
                },
                cmd = self.cmds.recv(), if commands_open => match cmd {
                    Some(cmd) => {
                        self.command(cmd);
                        for _ in 0..COMMAND_BATCH {
                            match self.cmds.try_recv() {
                                Ok(cmd) => self.command(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                    // Every handle is gone: nobody can use the connection any more.
                    None => {
                        commands_open = false;
                        self.engine.close(None);
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.engine.handle_timeout(now());
                }
                _ = sleep_until(stall_deadline), if stall_deadline.is_some() => {
                    self.output_stalled(&mut out, &limits);
                    // The close gets the stall's time (at least a few seconds) to go out,
                    // then the socket goes.
                    give_up_at = Some(now() + limits.output_stall_timeout.max(CLOSE_GRACE));
                }
                _ = sleep_until(give_up_at), if give_up_at.is_some() => break,
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
        if let Some(deadline) = give_up_at {
            // Dropping a socket with unread input resets it, and a reset destroys the close
            // still in the peer's buffers: read and discard until the peer hangs up.
            let discard = async {
                let mut rbuf = vec![0u8; 16 * 1024];
                while let Ok(n) = rd.read(&mut rbuf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ =
                tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), discard).await;
        }
    }

    /// The peer left our output unread for too long: what it did not read is dropped (it
    /// has shown it will not), and the connection ends with a close that says why.
    fn output_stalled(&mut self, out: &mut Outbox, limits: &ConnectionLimits) {
        let error = AmqpError::with_description(
            condition::RESOURCE_LIMIT_EXCEEDED,
            format!(
                "max_queued_output ({}) exceeded for {:?}: the peer does not read",
                limits.max_queued_output, limits.output_stall_timeout
            ),
        );
        tracing::warn!(
            conn = %self.engine.config().container_id,
            limit = "max_queued_output",
            queued = out.bytes,
            "peer exceeded a connection limit"
        );
        out.keep_front_only();
        self.engine.close(Some(error.clone()));
        self.fail_all(Error::ConnectionClosed(Some(error)));
    }

    /// The socket failed: the engine cannot say goodbye, so fail everything now.
    fn lost(&mut self, e: std::io::Error) {
        if self.failure.is_none() {
            let config = self.engine.config();
            crate::amqp::engine::frame_event!(loud config.frame_trace, conn = %config.container_id, error = %e, "connection lost");
            self.fail_all(Error::from(e));
        }
    }

    fn command(&mut self, cmd: Command) {
        if let Some(f) = &self.failure {
            reject(cmd, f.clone());
            return;
        }
        match cmd {
            Command::BeginSession { config, reply } => match self.engine.begin_session(config) {
                Ok(id) => {
                    self.begin_replies.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::Amqp(e)));
                }
            },
            Command::EndSession {
                session,
                error,
                reply,
            } => {
                self.end_replies.insert(session, reply);
                self.engine.end_session(session, error);
            }
            Command::Attach {
                session,
                config,
                credit,
                reply,
            } => {
                let role = config.role;
                match self.engine.attach(session, config) {
                    Ok(link) => {
                        let route = self.routes.entry(link).or_default();
                        route.attach_reply = Some(reply);
                        if role == Role::Receiver && credit > 0 {
                            self.engine.add_credit(link, credit);
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Amqp(e)));
                    }
                }
            }
            Command::Accept {
                link,
                acceptance,
                credit,
                reply,
            } => match self.engine.accept_link(link, acceptance) {
                Ok(()) => {
                    let attached = self.attached(link, None);
                    // Credit may have arrived while the link waited for acceptance.
                    self.publish_credit(link);
                    if credit > 0 {
                        self.engine.add_credit(link, credit);
                    }
                    let _ = reply.send(Ok(attached));
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::Amqp(e)));
                }
            },
            Command::Refuse { link, error } => {
                let _ = self.engine.refuse_link(link, error);
            }
            Command::Detach {
                link,
                closed,
                error,
                reply,
            } => match self.routes.get_mut(&link) {
                Some(route) => {
                    route.detach_reply = Some(reply);
                    self.engine.detach(link, closed, error);
                }
                None => {
                    let _ = reply.send(Ok(()));
                }
            },
            Command::Send {
                link,
                payload,
                format,
                settled,
                reply,
                permit,
            } => match self.engine.send(link, payload, format, settled) {
                Ok(token) => {
                    if settled {
                        let _ = reply.send(Ok(None));
                    } else if let Some(route) = self.routes.get_mut(&link) {
                        route.outcomes.insert(token, (reply, permit));
                    }
                    self.publish_credit(link);
                }
                Err(e) => {
                    let _ = reply.send(Err(self.send_error(link, e)));
                }
            },
            Command::SendSettledBatch {
                link,
                payloads,
                format,
                reply,
            } => self.send_settled_batch(link, payloads, format, reply),
            Command::AddCredit { link, credit } => self.engine.add_credit(link, credit),
            Command::Drain { link } => self.engine.drain(link),
            Command::Settle {
                link,
                delivery_id,
                state,
            } => self.engine.settle(link, delivery_id, state),
            Command::Close { error, reply } => {
                self.close_replies.push(reply);
                self.engine.close(error);
            }
        }
    }

    /// Queues every payload as a pre-settled delivery on `link`, in order, then publishes the
    /// link's credit once. The reply comes once all are queued (or at the first refusal,
    /// which leaves the rest unsent): after it the published credit accounts for them all.
    fn send_settled_batch(
        &mut self,
        link: LinkId,
        payloads: Vec<Bytes>,
        format: u32,
        reply: oneshot::Sender<SendResult>,
    ) {
        for payload in payloads {
            if let Err(e) = self.engine.send(link, payload, format, true) {
                let err = self.send_error(link, e);
                self.publish_credit(link);
                let _ = reply.send(Err(err));
                return;
            }
        }
        self.publish_credit(link);
        let _ = reply.send(Ok(None));
    }

    /// Why a send the engine refused failed: the link's detach reason when it has one (more
    /// telling than the engine's "not attached"), else the engine's error.
    fn send_error(&self, link: LinkId, e: AmqpError) -> Error {
        self.routes
            .get(&link)
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.borrow().detached.clone())
            .unwrap_or(Error::Amqp(e))
    }

    /// Creates the handle-side plumbing for a link that is now attached.
    fn attached(&mut self, link: LinkId, remote: Option<Box<Attach>>) -> Attached {
        let route = self.routes.entry(link).or_default();
        let (status_tx, status_rx) = watch::channel(LinkStatus::default());
        route.status = Some(status_tx);
        let deliveries = if self.engine.link_role(link) == Some(Role::Receiver) {
            let (tx, rx) = mpsc::unbounded_channel();
            route.deliveries = Some(tx);
            Some(rx)
        } else {
            None
        };
        Attached {
            link,
            remote,
            deliveries,
            status: status_rx,
        }
    }

    fn publish_credit(&mut self, link: LinkId) {
        let credit = self
            .engine
            .link_credit(link)
            .unwrap_or(0)
            .saturating_sub(self.engine.queued(link) as u32);
        if let Some(status) = self.routes.get(&link).and_then(|r| r.status.as_ref()) {
            status.send_if_modified(|s| {
                let changed = s.credit != credit;
                s.credit = credit;
                changed
            });
        }
    }

    fn route_events(&mut self) {
        // Deliveries of the same link in a row go to its receiver together; any other event
        // hands them off first, so every handle still sees events in the engine's order.
        let mut batch: Option<(LinkId, Vec<Delivery>)> = None;
        while let Some(event) = self.engine.poll_event() {
            if !matches!(event, Event::Delivery { .. }) {
                self.hand_off(batch.take());
            }
            match event {
                Event::Opened { remote } => {
                    if let Some(tx) = self.opened.take() {
                        let _ = tx.send(Ok(*remote));
                    }
                }
                Event::Closed { error, by_peer } => {
                    let graceful = !by_peer && error.is_none();
                    for r in self.close_replies.drain(..) {
                        let _ = r.send(if graceful {
                            Ok(())
                        } else {
                            Err(Error::ConnectionClosed(error.clone()))
                        });
                    }
                    self.fail_all(Error::ConnectionClosed(error));
                }
                Event::SessionBegun { session, .. } => {
                    if let Some(tx) = self.begin_replies.remove(&session) {
                        let _ = tx.send(Ok(session));
                    }
                }
                Event::SessionEnded { session, error, .. } => {
                    if let Some(tx) = self.begin_replies.remove(&session) {
                        let _ = tx.send(Err(Error::SessionEnded(error.clone())));
                    }
                    if let Some(tx) = self.end_replies.remove(&session) {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::LinkAttachRequested {
                    link,
                    session,
                    attach,
                } => match &self.incoming {
                    Some(tx) => {
                        if tx
                            .send(IncomingAttach {
                                link,
                                session,
                                attach,
                            })
                            .is_err()
                        {
                            let _ = self.engine.refuse_link(
                                link,
                                AmqpError::with_description(
                                    crate::amqp::types::error::condition::NOT_ALLOWED,
                                    "this endpoint does not accept links",
                                ),
                            );
                        }
                    }
                    None => {
                        let _ = self.engine.refuse_link(
                            link,
                            AmqpError::with_description(
                                crate::amqp::types::error::condition::NOT_ALLOWED,
                                "this endpoint does not accept links",
                            ),
                        );
                    }
                },
                Event::LinkAttached { link, remote } => {
                    let null_terminus = match remote.role {
                        Role::Sender => remote.source.is_none(),
                        Role::Receiver => remote.target.is_none(),
                    };
                    if null_terminus {
                        // A refusal: the detach with the reason follows and fails the attach.
                        continue;
                    }
                    let reply = self
                        .routes
                        .get_mut(&link)
                        .and_then(|r| r.attach_reply.take());
                    let attached = self.attached(link, Some(remote));
                    self.publish_credit(link);
                    if let Some(reply) = reply {
                        if reply.send(Ok(attached)).is_err() {
                            // The caller gave up waiting: don't leave the link dangling.
                            self.engine.detach(link, true, None);
                        }
                    }
                }
                Event::LinkDetached { link, error, .. } => {
                    let Some(mut route) = self.routes.remove(&link) else {
                        continue;
                    };
                    route.end(&Error::LinkDetached(error));
                }
                Event::Credit { link, .. } => self.publish_credit(link),
                Event::Delivery { link, delivery } => match &mut batch {
                    Some((l, v)) if *l == link => v.push(delivery),
                    _ => {
                        self.hand_off(batch.take());
                        batch = Some((link, vec![delivery]));
                    }
                },
                Event::Outcome {
                    link,
                    delivery,
                    state,
                    settled,
                } => {
                    if settled {
                        if let Some((reply, _permit)) = self
                            .routes
                            .get_mut(&link)
                            .and_then(|r| r.outcomes.remove(&delivery))
                        {
                            let _ = reply.send(Ok(state));
                        }
                    }
                }
                Event::ReceiverFlow { .. } => {}
            }
        }
        self.hand_off(batch);
    }

    /// Gives a run of one link's deliveries to its receiver handle.
    fn hand_off(&mut self, batch: Option<(LinkId, Vec<Delivery>)>) {
        let Some((link, mut deliveries)) = batch else {
            return;
        };
        let msg = if deliveries.len() == 1 {
            match deliveries.pop() {
                Some(d) => LinkMsg::Delivery(d),
                None => return,
            }
        } else {
            LinkMsg::Deliveries(deliveries)
        };
        match self.routes.get(&link).and_then(|r| r.deliveries.as_ref()) {
            Some(tx) => {
                if tx.send(msg).is_err() {
                    // The receiver handle is gone; release what it can't take.
                    self.engine.detach(link, true, None);
                }
            }
            None => tracing::debug!("delivery for a link with no receiver handle"),
        }
    }

    /// The connection is over: every waiter learns why.
    fn fail_all(&mut self, err: Error) {
        self.failure = Some(err.clone());
        if let Some(tx) = self.opened.take() {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, tx) in self.begin_replies.drain() {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, tx) in self.end_replies.drain() {
            let _ = tx.send(Ok(()));
        }
        for tx in self.close_replies.drain(..) {
            let _ = tx.send(Err(err.clone()));
        }
        for (_, mut route) in self.routes.drain() {
            route.end(&err);
        }
        self.incoming = None;
    }
}

/// Answers a command that arrived after the connection ended.
fn reject(cmd: Command, err: Error) {
    match cmd {
        Command::BeginSession { reply, .. } => drop(reply.send(Err(err))),
        Command::EndSession { reply, .. } => drop(reply.send(Ok(()))),
        Command::Attach { reply, .. } | Command::Accept { reply, .. } => drop(reply.send(Err(err))),
        Command::Detach { reply, .. } => drop(reply.send(Ok(()))),
        Command::Send { reply, .. } | Command::SendSettledBatch { reply, .. } => {
            drop(reply.send(Err(err)))
        }
        Command::Close { reply, .. } => drop(reply.send(Ok(()))),
        Command::Refuse { .. }
        | Command::AddCredit { .. }
        | Command::Drain { .. }
        | Command::Settle { .. } => {}
    }
}

/// Output waiting for the socket, with its size kept at hand (the backpressure check is on
/// every turn of the loop, so it must not walk the queue). Each chunk says whether it ends a
/// frame: a large transfer comes as its header and its payload.
#[derive(Default)]
struct Outbox {
    chunks: VecDeque<(Bytes, bool)>,
    bytes: usize,
}

impl Outbox {
    fn push(&mut self, b: Bytes, frame_end: bool) {
        if b.is_empty() {
            return;
        }
        self.bytes += b.len();
        self.chunks.push_back((b, frame_end));
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Drops `n` written bytes from the front.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some((front, _)) = self.chunks.front_mut() else {
                return;
            };
            let k = n.min(front.len());
            front.advance(k);
            self.bytes -= k;
            n -= k;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }

    /// For a transport that writes one buffer at a time: joins short chunks at the front
    /// into one, so that small frames and large transfers' headers share a write.
    fn coalesce_front(&mut self) {
        let short = |c: &(Bytes, bool)| c.0.len() < COALESCE_BELOW;
        if self.chunks.len() < 2 || !self.chunks.front().is_some_and(short) {
            return;
        }
        let mut joined = BytesMut::new();
        let mut frame_end = true;
        while let Some(c) = self.chunks.front() {
            if !joined.is_empty() && joined.len() + c.0.len() > COALESCE_LIMIT {
                break;
            }
            let Some((b, end)) = self.chunks.pop_front() else {
                break;
            };
            joined.extend_from_slice(&b);
            frame_end = end;
        }
        self.chunks.push_front((joined.freeze(), frame_end));
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }

    /// Drops everything after the frame the front chunk belongs to: it may be half written,
    /// and what follows a whole frame on the wire still parses.
    fn keep_front_only(&mut self) {
        let keep = self
            .chunks
            .iter()
            .position(|(_, frame_end)| *frame_end)
            .map_or(self.chunks.len(), |i| i + 1);
        self.chunks.truncate(keep);
        self.bytes = self.chunks.iter().map(|(b, _)| b.len()).sum();
    }
}

/// Writes some of `out` (several chunks at once where the transport takes vectored writes),
/// or flushes when there is nothing left to write (TLS buffers). Returns the bytes written,
/// or `None` for a flush; the caller advances `out`.
async fn write_or_flush<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut Outbox,
    vectored: bool,
) -> std::io::Result<Option<usize>> {
    if out.is_empty() {
        return wr.flush().await.map(|()| None);
    }
    if !vectored {
        out.coalesce_front();
        let Some((front, _)) = out.chunks.front() else {
            return Ok(Some(0));
        };
        return wr.write(front).await.map(Some);
    }
    let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
    let mut n = 0;
    for ((b, _), slot) in out.chunks.iter().zip(slices.iter_mut()) {
        *slot = IoSlice::new(b);
        n += 1;
    }
    wr.write_vectored(&slices[..n]).await.map(Some)
}

/// The time handed to the engine: tokio's clock, so that the engine's timers (idle timeout,
/// heartbeats) follow `tokio::time::pause()` in tests as the driver's sleeps do. Whoever
/// creates an engine for a driver should take its start time from here too.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
