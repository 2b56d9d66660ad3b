//! Typed AMQP 1.0 composites: performatives, SASL frames, message sections, outcomes.

pub mod definitions;
pub mod error;
pub mod message;
pub mod messaging;
pub mod sasl;
pub mod section_map;
pub mod transport;
