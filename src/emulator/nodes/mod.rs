//! The emulator's nodes, one per kind of address a link can attach to.

pub(super) mod cbs;
pub(super) mod consume;
pub(super) mod ingest;
pub(super) mod management;
pub(super) mod requests;
