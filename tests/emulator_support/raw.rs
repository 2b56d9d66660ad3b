//! A hand-driven AMQP peer over a raw socket: frames written one by one, for the cases our
//! client refuses to produce (e.g. a message larger than the link's max-message-size, which
//! our sender stops locally).

use bytes::Bytes;
use eventhubs::amqp::codec::Str;
use eventhubs::amqp::frame::{
    write_amqp_frame, AmqpFrame, FrameReader, ProtocolHeader, StreamItem,
};
use eventhubs::amqp::types::definitions::{ReceiverSettleMode, Role, SenderSettleMode};
use eventhubs::amqp::types::messaging::{Source, Target};
use eventhubs::amqp::types::transport::{Attach, Begin, Open, Performative, Transfer};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawPeer {
    tcp: TcpStream,
    frames: FrameReader,
}

impl RawPeer {
    /// Connects without SASL and exchanges open and begin.
    pub async fn connect(port: u16) -> RawPeer {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(&ProtocolHeader::AMQP.to_bytes())
            .await
            .unwrap();
        let mut peer = RawPeer {
            tcp,
            frames: FrameReader::new(1 << 20),
        };
        match peer.next_item(Duration::from_secs(5)).await {
            Some(StreamItem::Header(h)) => assert_eq!(h, ProtocolHeader::AMQP),
            other => panic!("expected the AMQP protocol header, got {other:?}"),
        }
        peer.write(Open {
            container_id: Str::from("raw-peer"),
            max_frame_size: 65536,
            ..Open::default()
        })
        .await;
        peer.write(Begin {
            remote_channel: None,
            next_outgoing_id: 0,
            incoming_window: 5000,
            outgoing_window: 5000,
            handle_max: 255,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        })
        .await;
        peer
    }

    pub async fn write(&mut self, p: impl Into<Performative>) {
        self.write_with(p.into(), &[]).await;
    }

    pub async fn write_with(&mut self, p: Performative, payload: &[u8]) {
        let mut out = Vec::new();
        write_amqp_frame(&mut out, 0, &p, payload);
        self.tcp.write_all(&out).await.unwrap();
    }

    /// The next performative (heartbeats skipped); `None` at end of stream or after `d`.
    pub async fn next(&mut self, d: Duration) -> Option<(Performative, Bytes)> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match self.next_item_until(deadline).await? {
                StreamItem::Frame(raw) => {
                    let f = AmqpFrame::decode(raw).unwrap();
                    if let Some(p) = f.performative {
                        return Some((p, f.payload));
                    }
                }
                StreamItem::Header(h) => panic!("protocol header {h:?} after the open"),
            }
        }
    }

    async fn next_item(&mut self, d: Duration) -> Option<StreamItem> {
        self.next_item_until(tokio::time::Instant::now() + d).await
    }

    /// The next header or frame; `None` at end of stream or at `deadline`.
    async fn next_item_until(&mut self, deadline: tokio::time::Instant) -> Option<StreamItem> {
        loop {
            if let Some(item) = self.frames.next_item().unwrap() {
                return Some(item);
            }
            let mut chunk = [0u8; 65536];
            let n = match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => n,
            };
            self.frames.push(&chunk[..n]);
        }
    }

    /// Attaches a sending link (handle 0) to `address` and waits for the peer's attach and
    /// credit. Returns the peer's attach.
    pub async fn attach_sender(&mut self, address: &str) -> Attach {
        self.write(Attach {
            name: Str::from("raw-sender"),
            handle: 0,
            role: Role::Sender,
            snd_settle_mode: SenderSettleMode::Unsettled,
            rcv_settle_mode: ReceiverSettleMode::First,
            source: Some(Box::new(Source::new("raw"))),
            target: Some(Box::new(Target::new(address))),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: Some(0),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        })
        .await;
        let mut attach = None;
        let mut credit = false;
        while attach.is_none() || !credit {
            match self.next(Duration::from_secs(5)).await {
                Some((Performative::Attach(a), _)) => attach = Some(a),
                Some((Performative::Flow(f), _)) => {
                    credit |= f.handle == Some(0) && f.link_credit.unwrap_or(0) > 0
                }
                Some(_) => {}
                None => panic!("no attach and credit from the emulator"),
            }
        }
        attach.unwrap()
    }

    /// Sends one unsettled delivery of `payload`, split into frames of at most `chunk` bytes.
    pub async fn transfer(&mut self, payload: &[u8], chunk: usize) {
        let pieces: Vec<&[u8]> = payload.chunks(chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let first = i == 0;
            let t = Transfer {
                handle: 0,
                delivery_id: first.then_some(0),
                delivery_tag: first.then(|| Bytes::from_static(b"t0")),
                message_format: first.then_some(0),
                settled: first.then_some(false),
                more: i + 1 < pieces.len(),
                ..Transfer::default()
            };
            self.write_with(Performative::Transfer(t), piece).await;
        }
    }
}
