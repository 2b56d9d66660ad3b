//! What the sending and receiving link handles share: taking the link down.

use super::engine::LinkId;
use super::error::Error;
use super::io::driver::{Command, DriverHandle};
use super::types::error::AmqpError;
use tokio::sync::oneshot;

/// Detaches a link whose handle was dropped without `close`, so the peer frees it (an
/// Event Hubs reader slot, say) now rather than when the connection ends.
pub(super) fn detach_on_drop(handle: &DriverHandle, link: LinkId) {
    let (reply, _) = oneshot::channel();
    let _ = handle.send(Command::Detach {
        link,
        closed: true,
        error: None,
        reply,
    });
}

pub(super) async fn close_link(
    handle: &DriverHandle,
    link: LinkId,
    error: Option<AmqpError>,
) -> Result<(), Error> {
    let r = handle
        .call(|reply| Command::Detach {
            link,
            closed: true,
            error,
            reply,
        })
        .await;
    match r {
        Err(Error::ConnectionClosed(_)) => Ok(()),
        other => other,
    }
}
