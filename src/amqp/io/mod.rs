//! The one place that touches sockets: TCP and TLS streams, and the task that drives an engine
//! over one.

pub(crate) mod driver;
#[cfg(feature = "tls")]
pub mod tls;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream the driver can run a connection over (TCP, TLS, or an in-memory pipe).
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed transport.
pub type BoxedTransport = Box<dyn Transport>;
