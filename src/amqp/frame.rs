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

/// The fields of a frame header that passed every check, for a frame of `size` bytes.
struct FrameHeader {
    size: usize,
    body_offset: usize,
    frame_type: u8,
    channel: u16,
}

impl FrameHeader {
    fn raw(&self, body: Bytes) -> RawFrame {
        RawFrame {
            frame_type: self.frame_type,
            channel: self.channel,
            body,
        }
    }
}

/// Reads and checks the frame header at the start of `buf`; `None` until 8 bytes are there.
fn check_frame_header(buf: &[u8], max_frame_size: u32) -> Result<Option<FrameHeader>, FrameError> {
    let Some(h) = buf.get(..FRAME_HEADER_SIZE) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let doff = h[4];
    let frame_type = h[5];
    let channel = u16::from_be_bytes([h[6], h[7]]);
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
    Ok(Some(FrameHeader {
        size: size as usize,
        body_offset: usize::from(doff) * 4,
        frame_type,
        channel,
    }))
}

/// Cuts the next whole frame from `buf`, or returns `None` until enough bytes have arrived.
///
/// The size is checked against `max_frame_size` as soon as the header is readable, so a peer
/// cannot make us buffer more than the limit.
pub fn parse_frame(
    buf: &mut BytesMut,
    max_frame_size: u32,
) -> Result<Option<RawFrame>, FrameError> {
    Ok(cut_frame(buf, max_frame_size)?.map(|(h, mut frame)| {
        frame.advance(h.body_offset);
        h.raw(frame)
    }))
}

/// Splits the next whole frame (header included) off `buf`, with its checked header.
fn cut_frame(
    buf: &mut BytesMut,
    max_frame_size: u32,
) -> Result<Option<(FrameHeader, Bytes)>, FrameError> {
    let Some(h) = check_frame_header(buf, max_frame_size)? else {
        return Ok(None);
    };
    if buf.len() < h.size {
        buf.reserve(h.size - buf.len());
        return Ok(None);
    }
    let frame = buf.split_to(h.size).freeze();
    Ok(Some((h, frame)))
}

/// A frame cut from the stream by [`cut_frame_split`].
#[derive(Debug)]
pub(crate) enum CutFrame {
    /// Not all there yet.
    Incomplete,
    /// A frame without payload, or one whose performative's size could not be read from its
    /// encoding: decode it as usual ([`AmqpFrame::decode`] reports any error).
    Whole(RawFrame),
    /// A frame with payload, its performative's bytes apart from the payload.
    Split {
        /// The channel.
        channel: u16,
        /// The encoded performative.
        performative: Bytes,
        /// The payload, still writable so that a delivery's parts can be joined in place.
        payload: BytesMut,
    },
}

/// Cuts the next whole frame from `buf` like [`parse_frame`], keeping a payload apart from
/// its performative and mutable.
///
/// With `compact` the performative is copied out (it is small) and the payload moved up
/// over the frame's header and performative: it then starts where the frame started, right
/// after the bytes before it in `buf`. A delivery's continuation frame handled this way is
/// joined to the frame before without a copy (`BytesMut::unsplit`), at the cost of moving
/// its own payload, which pays off for the short last frame of a delivery just over the
/// frame size (a 64 KiB event in 64 KiB frames).
pub(crate) fn cut_frame_split(
    buf: &mut BytesMut,
    max_frame_size: u32,
    compact: bool,
) -> Result<CutFrame, FrameError> {
    let Some(h) = check_frame_header(buf, max_frame_size)? else {
        return Ok(CutFrame::Incomplete);
    };
    if buf.len() < h.size {
        buf.reserve(h.size - buf.len());
        return Ok(CutFrame::Incomplete);
    }
    let perf_end = buf
        .get(h.body_offset..h.size)
        .and_then(performative_len)
        .map(|n| h.body_offset + n)
        .filter(|&end| h.frame_type == FRAME_TYPE_AMQP && end < h.size);
    let Some(perf_end) = perf_end else {
        let mut frame = buf.split_to(h.size).freeze();
        frame.advance(h.body_offset);
        return Ok(CutFrame::Whole(h.raw(frame)));
    };
    let mut frame = buf.split_to(h.size);
    let performative = if compact {
        let p = Bytes::copy_from_slice(&frame[h.body_offset..perf_end]);
        frame.copy_within(perf_end.., 0);
        frame.truncate(h.size - perf_end);
        p
    } else {
        let mut head = frame.split_to(perf_end).freeze();
        head.advance(h.body_offset);
        head
    };
    Ok(CutFrame::Split {
        channel: h.channel,
        performative,
        payload: frame,
    })
}

/// The length of the described list at the start of `body` (every performative is one), from
/// its size fields alone; `None` unless it has one of the list encodings and ends in `body`.
fn performative_len(body: &[u8]) -> Option<usize> {
    if *body.first()? != 0x00 {
        return None;
    }
    let descriptor_len = match *body.get(1)? {
        0x53 => 2,
        0x80 => 9,
        0x44 => 1,
        0xa3 => 2 + usize::from(*body.get(2)?),
        0xb3 => {
            let n = body.get(2..6)?;
            (u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize).checked_add(5)?
        }
        _ => return None,
    };
    let list = 1usize.checked_add(descriptor_len)?;
    let value_len = match *body.get(list)? {
        0x45 => 1,
        0xc0 => 2 + usize::from(*body.get(list + 1)?),
        0xd0 => {
            let n = body.get(list + 1..list + 5)?;
            (u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize).checked_add(5)?
        }
        _ => return None,
    };
    let len = list.checked_add(value_len)?;
    (len <= body.len()).then_some(len)
}

/// One unit of an AMQP byte stream: a protocol header or a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// An 8-byte protocol header (`AMQP` and a known protocol id).
    Header(ProtocolHeader),
    /// A frame, body not yet decoded.
    Frame(RawFrame),
}

/// Splits a byte stream, fed in pieces of any size, into protocol headers and frames.
///
/// For code that watches a whole stream from outside (tests, fuzz harnesses, tools) rather
/// than taking part in it: unlike the engine it does not know when a header is due, so eight
/// bytes starting with `AMQP` are read as a header wherever they stand. (A frame whose size
/// field spells `AMQP` would be over a gigabyte, beyond any sane limit.)
///
/// Bounded: a frame's size is checked against the limit as soon as its header is readable,
/// so no more than the limit is ever reserved for a frame still arriving. Errors are sticky:
/// the offending bytes stay at the front, so every later call reports the same error.
#[derive(Clone, Debug)]
pub struct FrameReader {
    buf: BytesMut,
    max_frame_size: u32,
}

impl FrameReader {
    /// A reader that refuses frames larger than `max_frame_size` (never below 512).
    pub fn new(max_frame_size: u32) -> Self {
        FrameReader {
            buf: BytesMut::new(),
            max_frame_size,
        }
    }

    /// Changes the limit for the frames not yet read (e.g. once `open` has been exchanged).
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    /// The current frame size limit.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet returned as a whole header or frame.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The next header or frame, or `None` until enough bytes have arrived.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, FrameError> {
        Ok(self.next_with_bytes()?.map(|(item, _)| item))
    }

    /// [`Self::next_item`], also returning the item's bytes exactly as they stood in the
    /// stream (for tools that copy or measure them).
    pub fn next_with_bytes(&mut self) -> Result<Option<(StreamItem, Bytes)>, FrameError> {
        if self.buf.starts_with(b"AMQP") {
            let Some(h) = self.buf.get(..8) else {
                return Ok(None);
            };
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(h);
            let header = ProtocolHeader::parse(bytes)?;
            let wire = self.buf.split_to(8).freeze();
            return Ok(Some((StreamItem::Header(header), wire)));
        }
        Ok(
            cut_frame(&mut self.buf, self.max_frame_size)?.map(|(h, frame)| {
                let body = frame.slice(h.body_offset..);
                (StreamItem::Frame(h.raw(body)), frame)
            }),
        )
    }
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

/// Writes the start of an AMQP frame whose `payload_len` bytes of payload the caller sends
/// right after it: the header (its size counting the payload) and the performative.
pub fn write_amqp_frame_head<B: BufMut>(
    buf: &mut B,
    channel: u16,
    performative: &impl Encode,
    payload_len: usize,
) {
    let size = frame_len(performative.encoded_len() + payload_len);
    put_header(buf, size, FRAME_TYPE_AMQP, channel);
    performative.encode(buf);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame written by hand: `doff` words of header, then `body`.
    fn frame(doff: u8, frame_type: u8, channel: u16, body: &[u8]) -> Vec<u8> {
        let size = usize::from(doff) * 4 + body.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(size as u32).to_be_bytes());
        v.extend_from_slice(&[doff, frame_type]);
        v.extend_from_slice(&channel.to_be_bytes());
        v.resize(usize::from(doff) * 4, 0xee);
        v.extend_from_slice(body);
        v
    }

    /// A stream as a SASL-then-AMQP client writes it, extended header and heartbeat included.
    fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let units = vec![
            ProtocolHeader::SASL.to_bytes().to_vec(),
            frame(2, FRAME_TYPE_SASL, 0, b"sasl-init"),
            ProtocolHeader::AMQP.to_bytes().to_vec(),
            frame(2, FRAME_TYPE_AMQP, 0, b"open"),
            frame(3, FRAME_TYPE_AMQP, 7, b"extended"),
            frame(2, FRAME_TYPE_AMQP, 0, b""),
            frame(2, FRAME_TYPE_AMQP, 1, &[0x41; 600]),
        ];
        (units.concat(), units)
    }

    fn drain(r: &mut FrameReader, out: &mut Vec<(StreamItem, Bytes)>) -> Result<(), FrameError> {
        while let Some(item) = r.next_with_bytes()? {
            out.push(item);
        }
        Ok(())
    }

    #[test]
    fn splits_headers_and_frames_whatever_the_chunking() {
        let (bytes, units) = stream();
        for chunk in [1, 3, 7, 8, 9, 64, bytes.len()] {
            let mut r = FrameReader::new(65536);
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                r.push(piece);
                drain(&mut r, &mut out).unwrap();
            }
            assert!(r.buffered().is_empty(), "chunk {chunk}");
            let wires: Vec<&[u8]> = out.iter().map(|(_, w)| w.as_ref()).collect();
            let expected: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
            assert_eq!(wires, expected, "chunk {chunk}");
            assert_eq!(out[0].0, StreamItem::Header(ProtocolHeader::SASL));
            assert_eq!(out[2].0, StreamItem::Header(ProtocolHeader::AMQP));
            let StreamItem::Frame(extended) = &out[4].0 else {
                panic!("a frame: {:?}", out[4].0);
            };
            assert_eq!(extended.channel, 7);
            assert_eq!(
                extended.body.as_ref(),
                b"extended",
                "extended header skipped"
            );
            let StreamItem::Frame(heartbeat) = &out[5].0 else {
                panic!("a frame: {:?}", out[5].0);
            };
            assert!(heartbeat.body.is_empty());
        }
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header_alone() {
        let mut r = FrameReader::new(1024);
        r.push(&frame(2, FRAME_TYPE_AMQP, 0, &[0; 1100])[..8]);
        assert_eq!(
            r.next_item(),
            Err(FrameError::FrameTooLarge {
                size: 1108,
                max: 1024
            })
        );
        assert!(r.buf.capacity() < 1024, "nothing reserved for it");
        // Sticky: the same answer again, and the 512-byte floor applies to smaller limits.
        assert!(r.next_item().is_err());
        let mut r = FrameReader::new(0);
        r.push(&frame(2, FRAME_TYPE_AMQP, 0, &[0; 504]));
        assert!(matches!(r.next_item(), Ok(Some(StreamItem::Frame(_)))));
    }

    #[test]
    fn typed_errors_for_hostile_headers() {
        let cases: [(&[u8], FrameError); 4] = [
            (
                b"AMQP\x09\x01\x00\x00",
                FrameError::BadProtocolHeader(*b"AMQP\x09\x01\x00\x00"),
            ),
            (&[0, 0, 0, 7, 2, 0, 0, 0], FrameError::FrameTooSmall(7)),
            (
                &[0, 0, 0, 8, 3, 0, 0, 0],
                FrameError::BadDataOffset { doff: 3, size: 8 },
            ),
            (&[0, 0, 0, 8, 2, 9, 0, 0], FrameError::UnknownFrameType(9)),
        ];
        for (bytes, expected) in cases {
            let mut r = FrameReader::new(u32::MAX);
            r.push(&bytes[..7]);
            assert_eq!(r.next_item(), Ok(None), "{bytes:02x?}: waits for 8 bytes");
            r.push(&bytes[7..]);
            assert_eq!(r.next_item(), Err(expected), "{bytes:02x?}");
        }
    }

    #[test]
    fn a_limit_change_applies_to_the_frames_not_yet_read() {
        let big = frame(2, FRAME_TYPE_AMQP, 0, &[0; 1000]);
        let mut r = FrameReader::new(512);
        r.push(&big);
        assert!(r.next_item().is_err());
        r.set_max_frame_size(4096);
        assert_eq!(r.max_frame_size(), 4096);
        assert!(matches!(r.next_item(), Ok(Some(StreamItem::Frame(_)))));
    }

    fn transfer_frame(tag: &[u8], payload: &[u8]) -> Vec<u8> {
        let t = crate::amqp::types::transport::Transfer {
            delivery_id: Some(3),
            delivery_tag: Some(Bytes::copy_from_slice(tag)),
            more: true,
            ..Default::default()
        };
        let mut out = BytesMut::new();
        write_amqp_frame(&mut out, 1, &Performative::Transfer(t), payload);
        out.to_vec()
    }

    #[test]
    fn the_performative_length_is_read_from_its_encoding() {
        for tag in [&b"t"[..], &[7u8; 32][..]] {
            let f = transfer_frame(tag, b"payload");
            let body = &f[FRAME_HEADER_SIZE..];
            let n = performative_len(body).unwrap();
            assert_eq!(&body[n..], b"payload");
        }
        // Cut short, or not a described list: no length.
        let f = transfer_frame(b"t", b"");
        let body = &f[FRAME_HEADER_SIZE..];
        assert_eq!(performative_len(body), Some(body.len()));
        assert_eq!(performative_len(&body[..body.len() - 1]), None);
        assert_eq!(performative_len(&[0x00, 0x53, 0x14, 0x41]), None);
        assert_eq!(
            performative_len(&[0x00, 0xb3, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(performative_len(&[]), None);
    }

    #[test]
    fn a_compacted_continuation_joins_the_part_before_it_in_place() {
        let first = transfer_frame(b"t", &[1u8; 3000]);
        let second = transfer_frame(b"t", &[2u8; 50]);
        let mut buf = BytesMut::from(&[first.as_slice(), second.as_slice()].concat()[..]);
        let CutFrame::Split {
            channel,
            performative,
            payload: mut joined,
        } = cut_frame_split(&mut buf, 65536, false).unwrap()
        else {
            panic!("a transfer with payload is split");
        };
        assert_eq!(channel, 1);
        let p = AmqpFrame::decode(RawFrame {
            frame_type: FRAME_TYPE_AMQP,
            channel,
            body: performative,
        })
        .unwrap();
        assert!(matches!(p.performative, Some(Performative::Transfer(_))));
        assert!(p.payload.is_empty());
        let CutFrame::Split { payload, .. } = cut_frame_split(&mut buf, 65536, true).unwrap()
        else {
            panic!("split");
        };
        assert_eq!(&payload[..], &[2u8; 50][..]);
        let start = joined.as_ptr();
        assert!(joined.try_unsplit(payload).is_ok(), "contiguous");
        assert_eq!(joined.as_ptr(), start);
        assert_eq!(joined.len(), 3050);
        assert!(buf.is_empty());
        assert!(matches!(
            cut_frame_split(&mut buf, 65536, true),
            Ok(CutFrame::Incomplete)
        ));
        // A frame with no payload (or a heartbeat) stays whole.
        let mut hb = BytesMut::from(&[0u8, 0, 0, 8, 2, 0, 0, 0][..]);
        assert!(matches!(
            cut_frame_split(&mut hb, 65536, true),
            Ok(CutFrame::Whole(_))
        ));
    }

    proptest! {
        /// Hostile bytes in any chunking: no panic, every byte either returned or still
        /// buffered, and what is buffered never exceeds what was pushed.
        #[test]
        fn never_panics_and_accounts_for_every_byte(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            chunk in 1usize..64,
            max in 0u32..4096,
        ) {
            let mut r = FrameReader::new(max);
            let (mut pushed, mut returned) = (0, 0);
            'feed: for piece in bytes.chunks(chunk) {
                r.push(piece);
                pushed += piece.len();
                loop {
                    match r.next_with_bytes() {
                        Ok(Some((_, wire))) => returned += wire.len(),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
            prop_assert_eq!(returned + r.buffered().len(), pushed);
        }

        /// Well-formed streams come back unit for unit, in any chunking.
        #[test]
        fn round_trips_written_frames(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..8),
            chunk in 1usize..128,
        ) {
            let mut units = vec![ProtocolHeader::AMQP.to_bytes().to_vec()];
            for (i, b) in bodies.iter().enumerate() {
                units.push(frame(2 + (i % 3) as u8, FRAME_TYPE_AMQP, i as u16, b));
            }
            let bytes = units.concat();
            let mut r = FrameReader::new(u32::MAX);
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                r.push(piece);
                drain(&mut r, &mut out).unwrap();
            }
            let wires: Vec<Vec<u8>> = out.iter().map(|(_, w)| w.to_vec()).collect();
            prop_assert_eq!(wires, units);
            for ((item, _), body) in out[1..].iter().zip(&bodies) {
                match item {
                    StreamItem::Frame(f) => prop_assert_eq!(f.body.as_ref(), body.as_slice()),
                    other => prop_assert!(false, "not a frame: {:?}", other),
                }
            }
        }
    }
}
