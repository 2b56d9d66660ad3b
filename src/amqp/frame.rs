//! Protocol headers and frames: incremental parsing with the size limit enforced up front.

use super::codec::{DecodeError, Decoder, Encode};
use super::types::transport::Performative;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The smallest max-frame-size a peer may announce, and the limit before `open` is exchanged.
pub const MIN_MAX_FRAME_SIZE: u32 = 512;
/// Size of the fixed frame header.
pub const FRAME_HEADER_SIZE: usize = 8;
/// Frame type of AMQP frames.
pub const FRAME_TYPE_AMQP: u8 = 0x00;
/// Frame type of SASL frames.
pub const FRAME_TYPE_SASL: u8 = 0x01;

/// Which protocol a protocol header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    /// Plain AMQP (id 0).
    Amqp,
    /// A TLS tunnel (id 2).
    Tls,
    /// The SASL security layer (id 3).
    Sasl,
}

/// The 8-byte header `AMQP <id> <major> <minor> <revision>` that starts each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProtocolHeader {
    /// The protocol.
    pub id: ProtocolId,
    /// Major version (1).
    pub major: u8,
    /// Minor version (0).
    pub minor: u8,
    /// Revision (0).
    pub revision: u8,
}

impl ProtocolHeader {
    /// `AMQP 0 1 0 0`.
    pub const AMQP: ProtocolHeader = ProtocolHeader::v1_0(ProtocolId::Amqp);
    /// `AMQP 3 1 0 0`.
    pub const SASL: ProtocolHeader = ProtocolHeader::v1_0(ProtocolId::Sasl);
    /// `AMQP 2 1 0 0`.
    pub const TLS: ProtocolHeader = ProtocolHeader::v1_0(ProtocolId::Tls);

    const fn v1_0(id: ProtocolId) -> Self {
        ProtocolHeader {
            id,
            major: 1,
            minor: 0,
            revision: 0,
        }
    }

    /// The header's eight bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        let id = match self.id {
            ProtocolId::Amqp => 0,
            ProtocolId::Tls => 2,
            ProtocolId::Sasl => 3,
        };
        [
            b'A',
            b'M',
            b'Q',
            b'P',
            id,
            self.major,
            self.minor,
            self.revision,
        ]
    }

    /// Parses eight bytes; anything not `AMQP` with a known id is an error carrying the bytes.
    pub fn parse(bytes: [u8; 8]) -> Result<Self, FrameError> {
        if &bytes[..4] != b"AMQP" {
            return Err(FrameError::BadProtocolHeader(bytes));
        }
        let id = match bytes[4] {
            0 => ProtocolId::Amqp,
            2 => ProtocolId::Tls,
            3 => ProtocolId::Sasl,
            _ => return Err(FrameError::BadProtocolHeader(bytes)),
        };
        Ok(ProtocolHeader {
            id,
            major: bytes[5],
            minor: bytes[6],
            revision: bytes[7],
        })
    }

    /// True for version 1.0.0, the only one we speak.
    pub fn is_v1_0(&self) -> bool {
        (self.major, self.minor, self.revision) == (1, 0, 0)
    }
}

/// Why bytes could not be framed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer's protocol header is not one we know.
    #[error("bad protocol header {0:02x?}")]
    BadProtocolHeader([u8; 8]),
    /// A frame's size field is below the 8-byte header.
    #[error("frame size {0} is smaller than the 8-byte frame header")]
    FrameTooSmall(u32),
    /// A frame is larger than the max-frame-size we announced.
    #[error("frame size {size} exceeds the negotiated max-frame-size {max}")]
    FrameTooLarge {
        /// The frame's size field.
        size: u32,
        /// Our limit.
        max: u32,
    },
    /// The data offset is below 2 or points past the frame.
    #[error("frame data offset {doff} is invalid for a frame of {size} bytes")]
    BadDataOffset {
        /// The DOFF byte.
        doff: u8,
        /// The frame's size.
        size: u32,
    },
    /// A frame type other than AMQP or SASL.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    /// The frame body did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// A frame cut from the byte stream, body not yet decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// [`FRAME_TYPE_AMQP`] or [`FRAME_TYPE_SASL`].
    pub frame_type: u8,
    /// Channel (AMQP frames; ignored for SASL).
    pub channel: u16,
    /// Body after the (extended) header; empty for a heartbeat.
    pub body: Bytes,
}

/// Cuts the next whole frame from `buf`, or returns `None` until enough bytes have arrived.
///
/// The size is checked against `max_frame_size` as soon as the header is readable, so a peer
/// cannot make us buffer more than the limit.
pub fn parse_frame(
    buf: &mut BytesMut,
    max_frame_size: u32,
) -> Result<Option<RawFrame>, FrameError> {
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let doff = buf[4];
    let frame_type = buf[5];
    let channel = u16::from_be_bytes([buf[6], buf[7]]);
    if (size as usize) < FRAME_HEADER_SIZE {
        return Err(FrameError::FrameTooSmall(size));
    }
    if size > max_frame_size.max(MIN_MAX_FRAME_SIZE) {
        return Err(FrameError::FrameTooLarge {
            size,
            max: max_frame_size,
        });
    }
    if doff < 2 || u32::from(doff) * 4 > size {
        return Err(FrameError::BadDataOffset { doff, size });
    }
    if frame_type != FRAME_TYPE_AMQP && frame_type != FRAME_TYPE_SASL {
        return Err(FrameError::UnknownFrameType(frame_type));
    }
    if buf.len() < size as usize {
        buf.reserve(size as usize - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(size as usize).freeze();
    frame.advance(usize::from(doff) * 4);
    Ok(Some(RawFrame {
        frame_type,
        channel,
        body: frame,
    }))
}

/// A decoded AMQP frame: a performative (or none, for a heartbeat) and the payload after it.
#[derive(Clone, Debug, PartialEq)]
pub struct AmqpFrame {
    /// The channel.
    pub channel: u16,
    /// The performative; `None` for an empty (heartbeat) frame.
    pub performative: Option<Performative>,
    /// Bytes after the performative: the message bytes of a transfer (a slice, not a copy).
    pub payload: Bytes,
}

impl AmqpFrame {
    /// Decodes the body of a raw AMQP frame.
    pub fn decode(raw: RawFrame) -> Result<AmqpFrame, FrameError> {
        if raw.body.is_empty() {
            return Ok(AmqpFrame {
                channel: raw.channel,
                performative: None,
                payload: Bytes::new(),
            });
        }
        let mut d = Decoder::new(raw.body);
        let performative = <Performative as super::codec::Decode>::decode(&mut d)?;
        Ok(AmqpFrame {
            channel: raw.channel,
            performative: Some(performative),
            payload: d.take_rest(),
        })
    }
}

/// Size of a frame carrying `body_len` bytes of performative and payload.
pub fn frame_len(body_len: usize) -> usize {
    FRAME_HEADER_SIZE + body_len
}

fn put_header(buf: &mut impl BufMut, size: usize, frame_type: u8, channel: u16) {
    buf.put_u32(size as u32);
    buf.put_u8(2);
    buf.put_u8(frame_type);
    buf.put_u16(channel);
}

/// Writes an AMQP frame: header, performative, then `payload` (a transfer's message bytes).
pub fn write_amqp_frame<B: BufMut>(
    buf: &mut B,
    channel: u16,
    performative: &impl Encode,
    payload: &[u8],
) {
    let size = frame_len(performative.encoded_len() + payload.len());
    put_header(buf, size, FRAME_TYPE_AMQP, channel);
    performative.encode(buf);
    buf.put_slice(payload);
}

/// Writes a SASL frame carrying one SASL performative.
pub fn write_sasl_frame<B: BufMut>(buf: &mut B, body: &impl Encode) {
    put_header(buf, frame_len(body.encoded_len()), FRAME_TYPE_SASL, 0);
    body.encode(buf);
}

/// Writes an empty AMQP frame (a heartbeat) on channel 0.
pub fn write_empty_frame<B: BufMut>(buf: &mut B) {
    put_header(buf, FRAME_HEADER_SIZE, FRAME_TYPE_AMQP, 0);
}
