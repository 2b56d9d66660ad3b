//! A hand-written AMQP 1.0 stack: type system and codec, frames, performatives and messages.

pub mod codec;
pub mod types;
