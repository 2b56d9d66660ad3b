//! Typed AMQP 1.0 composites: performatives, SASL frames, message sections, outcomes.

pub mod definitions;
