//! `eventhubs`: an Azure Event Hubs client with its own AMQP 1.0 stack.
//!
//! The layers, bottom-up: [`amqp::codec`] (the AMQP type system), frames and performatives,
//! a sans-IO engine, the IO driver, then the Event Hubs client, processor and emulator.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amqp;
pub mod auth;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod processor;
