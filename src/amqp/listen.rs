//! Listening: a listener that accepts connections and hands out the links peers attach, for
//! the application (the emulator) to accept or refuse.

use super::connection::Connection;
use super::dial::fresh_container_id;
use super::engine::{Connection as Engine, ConnectionConfig, LinkAcceptance, LinkId, SessionId};
use super::error::Error;
use super::io::driver::{self, Command, DriverHandle, DriverSetup, IncomingAttach};
use super::io::BoxedTransport;
use super::receiver::Receiver;
use super::sender::Sender;
use super::types::definitions::Role;
use super::types::error::AmqpError;
use super::types::transport::{Attach, Open};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};

/// Settings for accepted connections.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// Engine settings; set `sasl_server` to require SASL.
    pub config: ConnectionConfig,
    /// TLS for every accepted connection; `None` for plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<super::io::tls::TlsServerOptions>,
    /// Limit for the TLS handshake and the open exchange of a new connection.
    pub handshake_timeout: Duration,
    /// Serve AMQP inside WebSockets (subprotocol `AMQPWSB10`, any path), over TLS when
    /// `tls` is set.
    #[cfg(feature = "websockets")]
    pub websocket: bool,
}

/// Builder-style setters (the struct is `#[non_exhaustive]`: build it from its default or
/// constructor and these).
impl ListenerOptions {
    /// Sets `config`: engine settings; set `sasl_server` to require SASL.
    pub fn with_config(mut self, value: ConnectionConfig) -> Self {
        self.config = value;
        self
    }

    /// Serves TLS with these server settings (`amqps://`).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, value: super::io::tls::TlsServerOptions) -> Self {
        self.tls = Some(value);
        self
    }

    /// Serves AMQP inside WebSockets.
    #[cfg(feature = "websockets")]
    pub fn with_websocket(mut self, value: bool) -> Self {
        self.websocket = value;
        self
    }

    /// Sets `handshake_timeout`: limit for the TLS handshake and the open exchange of a new connection.
    pub fn with_handshake_timeout(mut self, value: Duration) -> Self {
        self.handshake_timeout = value;
        self
    }
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            config: ConnectionConfig {
                container_id: fresh_container_id("eventhubs-server"),
                ..ConnectionConfig::default()
            },
            #[cfg(feature = "tls")]
            tls: None,
            handshake_timeout: Duration::from_secs(30),
            #[cfg(feature = "websockets")]
            websocket: false,
        }
    }
}

/// Accepts AMQP connections on a TCP port.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    options: ListenerOptions,
}

impl Listener {
    /// Binds to `addr`.
    pub async fn bind(addr: impl ToSocketAddrs, options: ListenerOptions) -> Result<Self, Error> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(Listener { tcp, options })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.tcp.local_addr()?)
    }

    /// Waits for the next TCP connection. Finish it with [`Incoming::handshake`], preferably
    /// in its own task so one slow client does not hold up the accept loop.
    pub async fn accept(&self) -> Result<Incoming, Error> {
        let (tcp, peer) = self.tcp.accept().await?;
        tcp.set_nodelay(true)?;
        Ok(Incoming {
            tcp,
            peer,
            options: self.options.clone(),
        })
    }
}

/// A TCP connection whose TLS/SASL/open handshake has not run yet.
#[derive(Debug)]
pub struct Incoming {
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    options: ListenerOptions,
}

impl Incoming {
    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Runs TLS (if configured), the WebSocket upgrade (if configured), SASL and the open
    /// exchange.
    pub async fn handshake(self) -> Result<ServerConnection, Error> {
        let limit = self.options.handshake_timeout;
        // The driver inherits this span, so its logs (a limit the peer hit, a lost socket)
        // name the peer. Error level, so that it is there whenever any log line is.
        let span = tracing::error_span!("connection", peer = %self.peer);
        let work = async move {
            #[cfg(feature = "tls")]
            let io: BoxedTransport = match &self.options.tls {
                Some(tls) => tls.accept(self.tcp).await?,
                None => Box::new(self.tcp),
            };
            #[cfg(not(feature = "tls"))]
            let io: BoxedTransport = Box::new(self.tcp);
            #[cfg(feature = "websockets")]
            let io = if self.options.websocket {
                super::io::ws::accept(io).await?
            } else {
                io
            };
            ServerConnection::serve(io, self.options.config).await
        };
        tokio::time::timeout(limit, tracing::Instrument::instrument(work, span))
            .await
            .unwrap_or(Err(Error::Timeout))
    }
}

/// An accepted connection: yields the links its peer attaches.
#[derive(Debug)]
pub struct ServerConnection {
    handle: DriverHandle,
    remote: Open,
    incoming: mpsc::UnboundedReceiver<IncomingAttach>,
}

impl ServerConnection {
    /// Serves AMQP over an established transport.
    pub async fn serve(io: BoxedTransport, config: ConnectionConfig) -> Result<Self, Error> {
        let engine = Engine::server(config, Instant::now());
        let (opened_tx, opened_rx) = oneshot::channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let handle = driver::spawn(
            engine,
            io,
            DriverSetup {
                opened: opened_tx,
                incoming: Some(in_tx),
            },
        );
        let remote = opened_rx
            .await
            .unwrap_or(Err(Error::ConnectionClosed(None)))?;
        Ok(ServerConnection {
            handle,
            remote,
            incoming: in_rx,
        })
    }

    /// The client's `open`.
    pub fn remote_open(&self) -> &Open {
        &self.remote
    }

    /// A client-style handle on this connection (to open sessions towards the peer).
    pub fn connection(&self) -> Connection {
        Connection::from_parts(self.handle.clone(), self.remote.clone())
    }

    /// The next link the peer attaches; `None` once the connection is gone.
    pub async fn next_link(&mut self) -> Option<IncomingLink> {
        let a = self.incoming.recv().await?;
        Some(IncomingLink {
            handle: self.handle.clone(),
            link: a.link,
            session: a.session,
            attach: a.attach,
        })
    }

    /// Closes the connection, optionally with an error.
    pub async fn close(&self, error: Option<AmqpError>) -> Result<(), Error> {
        let r = self
            .handle
            .call(|reply| Command::Close { error, reply })
            .await;
        match r {
            Err(Error::ConnectionClosed(_)) => Ok(()),
            other => other,
        }
    }
}

/// A link the peer attached; accept it as a receiver or sender, or refuse it.
#[derive(Debug)]
pub struct IncomingLink {
    handle: DriverHandle,
    link: LinkId,
    session: SessionId,
    attach: Box<Attach>,
}

impl IncomingLink {
    /// The peer's attach (address, filters, properties, ...).
    pub fn attach(&self) -> &Attach {
        &self.attach
    }

    /// The session the link is on.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// True when the peer sends on this link (so we receive).
    pub fn peer_is_sender(&self) -> bool {
        self.attach.role == Role::Sender
    }

    /// Fills a terminus the acceptance leaves out with the peer's: some clients (the official
    /// Python one) treat an attach answer without source or target as a refusal.
    fn echo_termini(&self, mut acceptance: LinkAcceptance) -> LinkAcceptance {
        if acceptance.source.is_none() {
            acceptance.source = self.attach.source.as_deref().cloned();
        }
        if acceptance.target.is_none() {
            acceptance.target = self.attach.target.as_deref().cloned();
        }
        acceptance
    }

    /// Accepts a link the peer sends on, granting `prefetch` credit (0: manual credit).
    /// A terminus left out of `acceptance` is echoed from the peer's attach.
    pub async fn accept_receiver(
        self,
        acceptance: LinkAcceptance,
        prefetch: u32,
    ) -> Result<Receiver, Error> {
        let acceptance = self.echo_termini(acceptance);
        let link = self.link;
        let attached = self
            .handle
            .call(|reply| Command::Accept {
                link,
                acceptance,
                credit: prefetch,
                reply,
            })
            .await?;
        Receiver::new(self.handle, attached, prefetch)
    }

    /// Accepts a link the peer receives on; we send with at most `max_in_flight` unsettled.
    /// A terminus left out of `acceptance` is echoed from the peer's attach.
    pub async fn accept_sender(
        self,
        acceptance: LinkAcceptance,
        max_in_flight: usize,
    ) -> Result<Sender, Error> {
        let acceptance = self.echo_termini(acceptance);
        let link = self.link;
        let attached = self
            .handle
            .call(|reply| Command::Accept {
                link,
                acceptance,
                credit: 0,
                reply,
            })
            .await?;
        Ok(Sender::new(self.handle, attached, max_in_flight))
    }

    /// Refuses the link: null terminus, then a closing detach with `error`.
    pub fn refuse(self, error: AmqpError) {
        let _ = self.handle.send(Command::Refuse {
            link: self.link,
            error,
        });
    }
}
