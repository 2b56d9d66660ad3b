//! The request/response plumbing shared by the `$cbs` and `$management` nodes: a receiving
//! link takes requests, each answer goes back on the connection's reply link.

use super::cbs::put_token;
use super::management::management;
use crate::amqp::engine::LinkAcceptance;
use crate::amqp::types::definitions::ReceiverSettleMode;
use crate::amqp::types::message::{Message, Properties};
use crate::amqp::IncomingLink;
use crate::amqp::Receiver;
use crate::emulator::routing::{Conn, Node};
use crate::wire::rpc::Status;
use std::sync::Arc;

pub(crate) async fn accept_requests(link: IncomingLink) -> Option<Receiver> {
    let acceptance = LinkAcceptance {
        target: link.attach().target.as_deref().cloned(),
        rcv_settle_mode: Some(ReceiverSettleMode::First),
        ..Default::default()
    };
    link.accept_receiver(acceptance, 100).await.ok()
}

pub(crate) async fn serve_requests(conn: Arc<Conn>, mut rx: Receiver, node: Node) {
    while let Ok(delivery) = rx.recv().await {
        let _ = rx.accept(&delivery);
        let Ok(request) = delivery.message() else {
            continue;
        };
        let (status, description, body) = match node {
            Node::Cbs => put_token(&conn, &request),
            _ => management(&conn, &request),
        };
        let mut reply = Message {
            body,
            ..Default::default()
        };
        Status::new(status.into(), description).write_to(&mut reply);
        let request_props = request.properties.clone().unwrap_or_default();
        reply.properties = Some(Properties {
            correlation_id: request_props.message_id.clone(),
            to: request_props.reply_to.clone(),
            ..Default::default()
        });
        let reply_to = request_props.reply_to.map(|r| r.as_str().to_owned());
        conn.replies
            .deliver(&node, reply_to.as_deref(), reply.to_bytes())
            .await;
    }
}
