//! Deliveries: messages cut into transfer frames on the way out, reassembled from them on the
//! way in, and the settlement between the two ends.

mod outgoing;
mod reassembly;
mod unsettled;

pub(crate) use outgoing::Outgoing;
pub(crate) use reassembly::Reassembly;
pub(crate) use unsettled::Unsettled;
