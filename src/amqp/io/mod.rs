//! The one place that touches sockets: TCP, TLS and WebSocket streams, HTTP CONNECT tunnels, and the task that drives an engine
//! over one.

pub(crate) mod driver;
pub mod proxy;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "websockets")]
pub mod ws;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream the driver can run a connection over (TCP, TLS, or an in-memory pipe).
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed transport.
pub type BoxedTransport = Box<dyn Transport>;
