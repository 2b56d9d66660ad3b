//! A hand-written AMQP 1.0 stack: type system and codec, frames, performatives and messages,
//! a sans-IO engine, the tokio driver, and a small client/server API on top.
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

pub mod client;
pub mod codec;
pub mod engine;
pub mod error;
pub mod frame;
pub mod io;
pub mod server;
pub mod types;

pub use client::{
    ConnectOptions, Connection, PendingSend, ReceivedMessage, Receiver, ReceiverOptions, Sender,
    SenderOptions, Session,
};
pub use error::Error;
pub use server::{IncomingLink, Listener, ListenerOptions, ServerConnection};
