//! A hand-written AMQP 1.0 stack: type system and codec, frames, performatives and messages,
//! a sans-IO engine, the tokio driver, and a small API on top: role-neutral handles
//! ([`Connection`], [`Session`], [`Sender`], [`Receiver`]), dialing ([`ConnectOptions`]) and
//! listening ([`Listener`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), eventhubs::amqp::Error> {
//! use eventhubs::amqp::{Connection, ConnectOptions, SenderOptions};
//! use eventhubs::amqp::types::message::Message;
//! let conn = Connection::connect(ConnectOptions::new("127.0.0.1", 5672).sasl_anonymous()).await?;
//! let session = conn.open_session().await?;
//! let sender = session.attach_sender(SenderOptions::new("/queue/demo")).await?;
//! let outcome = sender.send(&Message::with_data(&b"hello"[..])).await?;
//! println!("{outcome:?}");
//! conn.close().await?;
//! # Ok(()) }
//! ```

pub mod codec;
pub mod engine;
pub mod error;
pub mod frame;
pub mod io;
pub mod types;

mod connection;
mod dial;
mod link;
mod listen;
mod receiver;
mod sender;
mod session;

pub use connection::Connection;
pub use dial::ConnectOptions;
pub use error::Error;
pub use listen::{Incoming, IncomingLink, Listener, ListenerOptions, ServerConnection};
pub use receiver::{ReceivedMessage, Receiver, ReceiverOptions};
pub use sender::{PendingSend, Sender, SenderOptions};
pub use session::Session;
