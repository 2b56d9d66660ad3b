//! A hand-written AMQP 1.0 stack: type system and codec, frames, performatives and messages,
//! and a sans-IO engine.

pub mod codec;
pub mod engine;
pub mod frame;
pub mod types;
