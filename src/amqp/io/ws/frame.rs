//! RFC 6455 data framing, our own: what the AMQP byte stream needs and no more.
//!
//! Why not the library's: a WebSocket library hands out whole messages, so every byte the
//! peer sends is copied into its read buffer (zero-filled first), unmasked, and then copied
//! again into ours; every byte we send is copied into a message and then again, masked, into
//! its write buffer. Here the stream is the product: a peer's payload is unmasked straight
//! into the caller's buffer (or read there directly and unmasked in place), and ours is masked
//! in the one copy that builds the frame. Messages are never reassembled, so no message-size
//! limit is needed to bound memory: a frame's length only counts down.
//!
//! Hardening of peer bytes: the header is parsed from at most [`MAX_HEADER`] bytes that must
//! be present first; reserved bits, unknown opcodes, text frames, masking in the wrong
//! direction, fragmented or long control frames, stray continuations and frames over
//! [`MAX_FRAME`] are errors; a control payload (at most 125 bytes) is collected inline; no
//! allocation depends on anything the peer says. Nothing here indexes past a checked length.

/// The longest frame header: 2 bytes, an 8-byte extended length and a 4-byte mask.
pub const MAX_HEADER: usize = 14;

/// The largest frame payload we accept from a peer: far above any AMQP frame we allow
/// (payloads stream through, so this is a sanity bound, not a buffer size).
pub const MAX_FRAME: u64 = 4 << 20;

/// The largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL: usize = 125;

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame (refused: AMQP is binary).
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xa;

/// Which end of the connection we are: clients mask what they send, servers must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We opened the connection (we mask, the peer must not).
    Client,
    /// We accepted it (the peer masks, we do not).
    Server,
}

/// How a peer's frames broke RFC 6455 (or the AMQP binding's use of it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV1–3 set: no extension was negotiated.
    #[error("reserved header bits set, but no extension was negotiated")]
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A text frame: the AMQP binding carries binary messages only.
    #[error("text message on an AMQP stream")]
    Text,
    /// A control frame that is fragmented or longer than 125 bytes.
    #[error("control frame fragmented or over 125 bytes")]
    BadControl,
    /// A close frame whose body is one byte (a status code takes two).
    #[error("close frame with a 1-byte body")]
    BadClose,
    /// A frame longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes, over the limit of {MAX_FRAME}")]
    TooLarge(u64),
    /// A server got an unmasked frame.
    #[error("unmasked frame from a client")]
    Unmasked,
    /// A client got a masked frame.
    #[error("masked frame from a server")]
    Masked,
    /// A continuation frame with no message to continue.
    #[error("continuation frame outside a message")]
    StrayContinuation,
    /// A new binary message before the previous one's final frame.
    #[error("new message before the previous one ended")]
    Unfinished,
}

/// The payload of a control frame, held inline (at most 125 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ControlPayload {
    len: u8,
    bytes: [u8; MAX_CONTROL],
}

impl ControlPayload {
    /// An empty payload.
    pub const EMPTY: ControlPayload = ControlPayload {
        len: 0,
        bytes: [0; MAX_CONTROL],
    };

    /// A payload of `data`, cut at 125 bytes.
    pub fn new(data: &[u8]) -> Self {
        let mut p = Self::EMPTY;
        let n = data.len().min(MAX_CONTROL);
        p.bytes[..n].copy_from_slice(&data[..n]);
        p.len = n as u8;
        p
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(MAX_CONTROL)]
    }
}

impl std::fmt::Debug for ControlPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlPayload({:02x?})", self.as_slice())
    }
}

/// A control frame the peer sent, for the stream to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Ping: answer with a pong carrying the same payload.
    Ping(ControlPayload),
    /// Pong: nothing to do.
    Pong,
    /// Close, with its status code when it had one: answer with a close, then stop.
    Close(Option<u16>),
}

/// What one [`Deframer::decode`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used.
    pub consumed: usize,
    /// Payload bytes written to the output.
    pub produced: usize,
    /// A control frame completed (decoding stops after one, so it is handled in order).
    pub control: Option<Control>,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Between frames.
    Header,
    /// Inside a data frame's payload.
    Data {
        remaining: u64,
        mask: Option<[u8; 4]>,
        /// Payload bytes already seen: where in the mask the next byte falls.
        phase: usize,
        fin: bool,
    },
    /// Inside a control frame's payload.
    Control {
        opcode: u8,
        len: u8,
        mask: Option<[u8; 4]>,
        got: ControlPayload,
    },
    /// The peer's close has been read: nothing after it counts.
    Closed,
}

/// Turns a peer's frames back into the byte stream they carry.
#[derive(Clone, Debug)]
pub struct Deframer {
    role: Role,
    state: State,
    /// A binary message has started and its final frame has not been seen.
    in_message: bool,
    /// Binary messages completed (for tests and the fuzz targets).
    messages: u64,
    /// The peer broke the protocol: every later call says so.
    failed: Option<FrameError>,
}

impl Deframer {
    /// A deframer for our side of the connection.
    pub fn new(role: Role) -> Self {
        Deframer {
            role,
            state: State::Header,
            in_message: false,
            messages: 0,
            failed: None,
        }
    }

    /// Binary messages whose final frame has been read.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// How the peer broke the protocol, once it has.
    pub fn failure(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// True once the peer's close frame has been read.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Decodes frames from `input`, writing their payload to `out`, until the input runs out
    /// (or ends in a partial header, left unconsumed), `out` is full, or a control frame
    /// completes.
    ///
    /// The payload before a broken frame is still handed out; the error comes with the next
    /// call (and every one after it).
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Decoded, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut d = Decoded::default();
        match self.decode_some(input, out, &mut d) {
            Err(e) => {
                self.failed = Some(e.clone());
                if d == Decoded::default() {
                    Err(e)
                } else {
                    Ok(d)
                }
            }
            Ok(()) => Ok(d),
        }
    }

    /// [`Deframer::decode`], its progress in `d` even when it fails.
    fn decode_some(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        d: &mut Decoded,
    ) -> Result<(), FrameError> {
        loop {
            let rest = input.get(d.consumed..).unwrap_or_default();
            match self.state {
                State::Closed => {
                    d.consumed = input.len();
                    return Ok(());
                }
                State::Header => match self.parse_header(rest) {
                    Ok(Some(used)) => d.consumed += used,
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e),
                },
                State::Data {
                    remaining,
                    mask,
                    phase,
                    fin,
                } => {
                    let room = out.len().saturating_sub(d.produced);
                    let n = clamp(remaining, rest.len().min(room));
                    if remaining > 0 && n == 0 {
                        return Ok(());
                    }
                    let (Some(src), Some(dst)) =
                        (rest.get(..n), out.get_mut(d.produced..d.produced + n))
                    else {
                        return Ok(());
                    };
                    match mask {
                        Some(m) => xor_copy(dst, src, m, phase),
                        None => dst.copy_from_slice(src),
                    }
                    d.consumed += n;
                    d.produced += n;
                    self.advance_data(n, remaining, mask, phase, fin);
                }
                State::Control {
                    opcode,
                    len,
                    mask,
                    mut got,
                } => {
                    let want = usize::from(len).saturating_sub(usize::from(got.len));
                    let n = want.min(rest.len());
                    let start = usize::from(got.len);
                    if let (Some(dst), Some(src)) =
                        (got.bytes.get_mut(start..start + n), rest.get(..n))
                    {
                        dst.copy_from_slice(src);
                        got.len += n as u8;
                    }
                    d.consumed += n;
                    if got.len < len {
                        self.state = State::Control {
                            opcode,
                            len,
                            mask,
                            got,
                        };
                        return Ok(());
                    }
                    if let Some(m) = mask {
                        let l = usize::from(got.len).min(MAX_CONTROL);
                        xor_in_place(&mut got.bytes[..l], m, 0);
                    }
                    let control = match opcode {
                        OP_PING => Control::Ping(got),
                        OP_PONG => Control::Pong,
                        _ => match got.as_slice() {
                            [] => Control::Close(None),
                            [a, b, ..] => Control::Close(Some(u16::from_be_bytes([*a, *b]))),
                            [_] => return Err(FrameError::BadClose),
                        },
                    };
                    self.state = if opcode == OP_CLOSE {
                        State::Closed
                    } else {
                        State::Header
                    };
                    d.control = Some(control);
                    return Ok(());
                }
            }
        }
    }

    /// How many payload bytes of the current data frame are still to come: what may be read
    /// straight into the caller's buffer and passed to [`Deframer::unmask_direct`].
    pub fn direct_room(&self) -> usize {
        match self.state {
            State::Data { remaining, .. } => clamp(remaining, usize::MAX),
            _ => 0,
        }
    }

    /// Takes `data`, read straight from the transport, as the next payload bytes of the
    /// current data frame and unmasks it in place. Bytes beyond [`Deframer::direct_room`]
    /// are left alone (the caller never reads more).
    pub fn unmask_direct(&mut self, data: &mut [u8]) {
        if let State::Data {
            remaining,
            mask,
            phase,
            fin,
        } = self.state
        {
            let n = clamp(remaining, data.len());
            if let (Some(m), Some(part)) = (mask, data.get_mut(..n)) {
                xor_in_place(part, m, phase);
            }
            self.advance_data(n, remaining, mask, phase, fin);
        }
    }

    fn advance_data(
        &mut self,
        n: usize,
        remaining: u64,
        mask: Option<[u8; 4]>,
        phase: usize,
        fin: bool,
    ) {
        let remaining = remaining.saturating_sub(n as u64);
        if remaining == 0 {
            self.end_data_frame(fin);
        } else {
            self.state = State::Data {
                remaining,
                mask,
                phase: (phase + n) & 3,
                fin,
            };
        }
    }

    fn end_data_frame(&mut self, fin: bool) {
        if fin {
            self.in_message = false;
            self.messages += 1;
        }
        self.state = State::Header;
    }

    /// Parses one header from the front of `input`: the bytes it took, or `None` when the
    /// header is not all there yet.
    fn parse_header(&mut self, input: &[u8]) -> Result<Option<usize>, FrameError> {
        let [b0, b1, rest @ ..] = input else {
            return Ok(None);
        };
        let (fin, rsv, opcode) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0f);
        let masked = b1 & 0x80 != 0;
        let (len, mut used) = match b1 & 0x7f {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
                _ => return Ok(None),
            },
            127 => match rest.get(..8) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    (u64::from_be_bytes(be), 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            let Some(m) = input.get(used..used + 4) else {
                return Ok(None);
            };
            used += 4;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        if rsv != 0 {
            return Err(FrameError::ReservedBits);
        }
        match (self.role, masked) {
            (Role::Server, false) => return Err(FrameError::Unmasked),
            (Role::Client, true) => return Err(FrameError::Masked),
            _ => {}
        }
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > MAX_CONTROL as u64 {
                    return Err(FrameError::BadControl);
                }
                self.state = State::Control {
                    opcode,
                    len: len as u8,
                    mask,
                    got: ControlPayload::EMPTY,
                };
                return Ok(Some(used));
            }
            OP_TEXT => return Err(FrameError::Text),
            OP_BINARY if self.in_message => return Err(FrameError::Unfinished),
            OP_CONTINUATION if !self.in_message => return Err(FrameError::StrayContinuation),
            OP_BINARY | OP_CONTINUATION => {}
            other => return Err(FrameError::UnknownOpcode(other)),
        }
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        self.in_message = true;
        if len == 0 {
            self.end_data_frame(fin);
        } else {
            self.state = State::Data {
                remaining: len,
                mask,
                phase: 0,
                fin,
            };
        }
        Ok(Some(used))
    }
}

/// `min(a, b)` for a frame's remaining length against a buffer size.
fn clamp(a: u64, b: usize) -> usize {
    usize::try_from(a).map_or(b, |a| a.min(b))
}

/// Writes a frame header for a final frame of `opcode` with `len` payload bytes into `out`,
/// masked with `mask` when given; returns its length.
pub fn write_header(
    out: &mut [u8; MAX_HEADER],
    opcode: u8,
    len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = 0x80 | (opcode & 0x0f);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut used = match len {
        0..=125 => {
            out[1] = mask_bit | len as u8;
            2
        }
        126..=0xffff => {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    if let Some(m) = mask {
        out[used..used + 4].copy_from_slice(&m);
        used += 4;
    }
    used
}

/// The mask as a word, turned so that its first byte applies to payload byte `phase`.
fn mask_word(mask: [u8; 4], phase: usize) -> u64 {
    let turned = [
        mask[phase & 3],
        mask[(phase + 1) & 3],
        mask[(phase + 2) & 3],
        mask[(phase + 3) & 3],
    ];
    let w = u64::from(u32::from_ne_bytes(turned));
    w | (w << 32)
}

/// `dst = src ^ mask`, the mask's first byte falling on payload byte `phase`: masking fused
/// into the copy, a word at a time. `dst` and `src` have the same length.
pub fn xor_copy(dst: &mut [u8], src: &[u8], mask: [u8; 4], phase: usize) {
    let m = mask_word(mask, phase);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        let mut w = [0u8; 8];
        w.copy_from_slice(s8);
        d8.copy_from_slice(&(u64::from_ne_bytes(w) ^ m).to_ne_bytes());
    }
    let mb = m.to_ne_bytes();
    for ((d1, s1), m1) in d.into_remainder().iter_mut().zip(s.remainder()).zip(mb) {
        *d1 = s1 ^ m1;
    }
}

/// `buf ^= mask`, the mask's first byte falling on payload byte `phase`.
pub fn xor_in_place(buf: &mut [u8], mask: [u8; 4], phase: usize) {
    let m = mask_word(mask, phase);
    let mut c = buf.chunks_exact_mut(8);
    for b8 in &mut c {
        let mut w = [0u8; 8];
        w.copy_from_slice(b8);
        b8.copy_from_slice(&(u64::from_ne_bytes(w) ^ m).to_ne_bytes());
    }
    for (b, m1) in c.into_remainder().iter_mut().zip(m.to_ne_bytes()) {
        *b ^= m1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame as a peer would send it, with any header bits.
    fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut h = [0u8; MAX_HEADER];
        let n = write_header(&mut h, 0, payload.len(), mask);
        let mut out = h[..n].to_vec();
        out[0] = b0;
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(m) = mask {
            xor_in_place(&mut out[start..], m, 0);
        }
        out
    }

    const M: Option<[u8; 4]> = Some([0xa1, 0xb2, 0xc3, 0xd4]);

    /// Decodes all of `input` fed `step` bytes at a time into outputs of `room` bytes.
    fn run(
        role: Role,
        input: &[u8],
        step: usize,
        room: usize,
    ) -> (Vec<u8>, Vec<Control>, Result<(), FrameError>) {
        let mut d = Deframer::new(role);
        let (mut bytes, mut controls) = (Vec::new(), Vec::new());
        let mut pending: Vec<u8> = Vec::new();
        let mut fed = 0;
        loop {
            let mut out = vec![0u8; room];
            let r = match d.decode(&pending, &mut out) {
                Ok(r) => r,
                Err(e) => return (bytes, controls, Err(e)),
            };
            bytes.extend_from_slice(&out[..r.produced]);
            controls.extend(r.control);
            pending.drain(..r.consumed);
            if r == Decoded::default() {
                if fed == input.len() {
                    return (bytes, controls, Ok(()));
                }
                let end = (fed + step).min(input.len());
                pending.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }

    #[test]
    fn masked_frames_decode_to_their_payload() {
        let mut input = frame(0x82, b"\x00AMQP", M);
        input.extend(frame(0x82, &[7u8; 300], M));
        let (bytes, controls, r) = run(Role::Server, &input, input.len(), 4096);
        assert_eq!(r, Ok(()));
        assert!(controls.is_empty());
        assert_eq!(&bytes[..5], b"\x00AMQP");
        assert_eq!(&bytes[5..], &[7u8; 300][..]);
    }

    #[test]
    fn fragments_and_controls_between_them() {
        let mut input = frame(0x02, b"abc", None);
        input.extend(frame(0x89, b"hi", None));
        input.extend(frame(0x00, b"", None));
        input.extend(frame(0x80, b"def", None));
        input.extend(frame(0x8a, b"", None));
        input.extend(frame(0x88, &1000u16.to_be_bytes(), None));
        input.extend(frame(0x82, b"after close", None));
        let (bytes, controls, r) = run(Role::Client, &input, 1, 2);
        assert_eq!(r, Ok(()));
        assert_eq!(bytes, b"abcdef");
        assert_eq!(
            controls,
            vec![
                Control::Ping(ControlPayload::new(b"hi")),
                Control::Pong,
                Control::Close(Some(1000))
            ]
        );
    }

    #[test]
    fn broken_frames_are_refused() {
        let cases: Vec<(Role, Vec<u8>, FrameError)> = vec![
            (Role::Server, frame(0x82, b"x", None), FrameError::Unmasked),
            (Role::Client, frame(0x82, b"x", M), FrameError::Masked),
            (
                Role::Client,
                frame(0xc2, b"x", None),
                FrameError::ReservedBits,
            ),
            (Role::Client, frame(0x81, b"x", None), FrameError::Text),
            (
                Role::Client,
                frame(0x83, b"x", None),
                FrameError::UnknownOpcode(3),
            ),
            (
                Role::Client,
                frame(0x80, b"x", None),
                FrameError::StrayContinuation,
            ),
            (
                Role::Client,
                frame(0x09, b"x", None),
                FrameError::BadControl,
            ),
            (
                Role::Client,
                frame(0x89, &[0; 126], None),
                FrameError::BadControl,
            ),
            (Role::Client, frame(0x88, b"x", None), FrameError::BadClose),
            (
                Role::Client,
                [frame(0x02, b"x", None), frame(0x82, b"y", None)].concat(),
                FrameError::Unfinished,
            ),
        ];
        for (role, input, want) in cases {
            assert_eq!(run(role, &input, 1, 16).2, Err(want.clone()), "{want}");
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header() {
        let mut input = vec![0x82, 0x7f];
        input.extend((1u64 << 62).to_be_bytes());
        assert_eq!(
            run(Role::Client, &input, input.len(), 16).2,
            Err(FrameError::TooLarge(1 << 62))
        );
        let mut input = vec![0x82, 0xff];
        input.extend((MAX_FRAME + 1).to_be_bytes());
        input.extend([1, 2, 3, 4]);
        assert_eq!(
            run(Role::Server, &input, 3, 16).2,
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
    }

    #[test]
    fn direct_reads_unmask_in_place() {
        let payload: Vec<u8> = (0..=255).collect();
        let f = frame(0x82, &payload, M);
        let mut d = Deframer::new(Role::Server);
        // The header and 3 payload bytes through the buffer, the rest "read" in place.
        let mut out = [0u8; 3];
        // 2 + 2 length bytes + 4 mask bytes of header.
        let r = d.decode(&f[..11], &mut out).unwrap();
        assert_eq!((r.consumed, r.produced), (11, 3));
        assert_eq!(d.direct_room(), 253);
        let mut rest = f[11..].to_vec();
        rest.extend([0xee; 4]);
        d.unmask_direct(&mut rest[..100]);
        d.unmask_direct(&mut rest[100..]);
        assert_eq!(d.direct_room(), 0);
        assert_eq!(&out, &payload[..3]);
        assert_eq!(&rest[..253], &payload[3..]);
        assert_eq!(&rest[253..], &[0xee; 4]);
        assert_eq!(d.messages(), 1);
    }

    #[test]
    fn headers_use_the_shortest_length() {
        let mut h = [0u8; MAX_HEADER];
        assert_eq!(write_header(&mut h, OP_BINARY, 125, None), 2);
        assert_eq!(write_header(&mut h, OP_BINARY, 126, None), 4);
        assert_eq!(&h[..4], &[0x82, 126, 0, 126]);
        assert_eq!(write_header(&mut h, OP_BINARY, 65536, M), 14);
        assert_eq!(h[1], 0xff);
    }

    proptest! {
        #[test]
        fn xor_copy_matches_the_bytewise_mask(
            data in proptest::collection::vec(any::<u8>(), 0..100),
            mask in any::<[u8; 4]>(),
            phase in 0usize..8,
        ) {
            let mut fused = vec![0u8; data.len()];
            xor_copy(&mut fused, &data, mask, phase);
            let plain: Vec<u8> =
                data.iter().enumerate().map(|(i, b)| b ^ mask[(i + phase) % 4]).collect();
            prop_assert_eq!(&fused, &plain);
            let mut inplace = data.clone();
            xor_in_place(&mut inplace, mask, phase);
            prop_assert_eq!(&inplace, &plain);
        }

        /// Any split into frames (fragmented or not, pings between), any read pattern and any
        /// output size give back the same stream.
        #[test]
        fn frames_give_back_the_stream_in_any_pattern(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
            fragment in any::<bool>(),
            server in any::<bool>(),
            step in 1usize..300,
            room in 1usize..500,
            mask in any::<[u8; 4]>(),
        ) {
            let (role, m) = if server { (Role::Server, Some(mask)) } else { (Role::Client, None) };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut input = Vec::new();
            let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            for (i, piece) in pieces.iter().enumerate() {
                let b0 = match (fragment, i == 0, i + 1 == pieces.len()) {
                    (false, _, _) => 0x82,
                    (true, first, last) => {
                        (if first { OP_BINARY } else { OP_CONTINUATION }) | if last { 0x80 } else { 0 }
                    }
                };
                input.extend(frame(b0, piece, m));
                input.extend(frame(0x89, b"p", m));
            }
            let (bytes, controls, r) = run(role, &input, step, room);
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(&bytes, &data);
            prop_assert_eq!(controls.len(), pieces.len());
        }

        /// Any bytes at all: no panic, no more payload out than bytes in, and the same
        /// outcome whatever the read pattern.
        #[test]
        fn any_input_is_safe(
            input in proptest::collection::vec(any::<u8>(), 0..400),
            server in any::<bool>(),
            step in 1usize..50,
        ) {
            let role = if server { Role::Server } else { Role::Client };
            let whole = run(role, &input, input.len().max(1), 1024);
            let split = run(role, &input, step, 7);
            prop_assert!(whole.0.len() <= input.len());
            prop_assert_eq!(whole, split);
        }
    }
}
