//! The session handle, and the link attaches made on it.

use super::dial::fresh_container_id;
use super::engine::{LinkConfig, SessionId};
use super::error::Error;
use super::io::driver::{Command, DriverHandle};
use super::receiver::{Receiver, ReceiverOptions};
use super::sender::{Sender, SenderOptions};
use super::types::definitions::Role;
use std::sync::atomic::{AtomicU64, Ordering};

/// A session: a pair of channels carrying links.
#[derive(Clone, Debug)]
pub struct Session {
    handle: DriverHandle,
    id: SessionId,
}

static LINK_SEQ: AtomicU64 = AtomicU64::new(0);

/// A link name unique in this process (`sender-…`, `receiver-…`).
pub(crate) fn link_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        fresh_container_id(&LINK_SEQ.fetch_add(1, Ordering::Relaxed).to_string())
    )
}

impl Session {
    pub(crate) fn new(handle: DriverHandle, id: SessionId) -> Self {
        Session { handle, id }
    }

    /// Attaches a sending link and waits for the peer's attach.
    pub async fn attach_sender(&self, options: SenderOptions) -> Result<Sender, Error> {
        let config = LinkConfig {
            name: options.name.clone().unwrap_or_else(|| link_name("sender")),
            role: Role::Sender,
            source: options.source.clone(),
            target: Some(options.target.clone()),
            snd_settle_mode: options.snd_settle_mode,
            rcv_settle_mode: options.rcv_settle_mode,
            max_message_size: None,
            properties: options.properties.clone(),
            offered_capabilities: None,
            desired_capabilities: options.desired_capabilities.clone(),
        };
        let session = self.id;
        let attached = self
            .handle
            .call(|reply| Command::Attach {
                session,
                config,
                credit: 0,
                reply,
            })
            .await?;
        Ok(Sender::new(
            self.handle.clone(),
            attached,
            options.max_in_flight,
        ))
    }

    /// Attaches a receiving link, grants its prefetch credit, and waits for the peer's attach.
    pub async fn attach_receiver(&self, options: ReceiverOptions) -> Result<Receiver, Error> {
        let config = LinkConfig {
            name: options
                .name
                .clone()
                .unwrap_or_else(|| link_name("receiver")),
            role: Role::Receiver,
            source: Some(options.source.clone()),
            target: options.target.clone(),
            snd_settle_mode: options.snd_settle_mode,
            rcv_settle_mode: options.rcv_settle_mode,
            max_message_size: options.max_message_size,
            properties: options.properties.clone(),
            offered_capabilities: None,
            desired_capabilities: options.desired_capabilities.clone(),
        };
        let session = self.id;
        let credit = options.prefetch;
        let attached = self
            .handle
            .call(|reply| Command::Attach {
                session,
                config,
                credit,
                reply,
            })
            .await?;
        Receiver::new(self.handle.clone(), attached, options.prefetch)
    }

    /// Ends the session and waits for the peer's end.
    pub async fn end(&self) -> Result<(), Error> {
        let session = self.id;
        self.handle
            .call(|reply| Command::EndSession {
                session,
                error: None,
                reply,
            })
            .await
    }
}
