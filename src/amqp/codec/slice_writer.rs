//! A writer over a fixed byte slice, for encoding the small head of a message in one pass.
//!
//! Writing through [`bytes::BufMut`] checks for growth on every write and copies every short
//! string with a library call; a map written that way must be sized before its header can go
//! out. Into a slice of known room, a write is a bounds check and a few stores, and a map's
//! header is written as a placeholder and patched once its entries are in. When the room runs
//! out the writer says so ([`SliceWriter::is_full`]) rather than panicking, and the caller
//! falls back to the sized path.

use super::format_code as fc;
use super::Encode;

/// Writes encodings into a fixed slice, flagging (never panicking) when it runs out of room.
///
/// Once full, the written bytes are not an encoding of anything and must be discarded.
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    full: bool,
}

/// Where a map opened by [`SliceWriter::begin_map`] starts, for [`SliceWriter::end_map`].
#[derive(Clone, Copy, Debug)]
pub struct MapStart(usize);

/// Bytes of a map8 header: constructor, size, count.
const MAP8_HEADER: usize = 3;
/// What a map32 header needs beyond a map8's.
const MAP32_EXTRA: usize = 6;

impl<'a> SliceWriter<'a> {
    /// A writer that fills `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            buf,
            pos: 0,
            full: false,
        }
    }

    /// True once a write did not fit: what was written must be discarded.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or_default()
    }

    /// The next `n` bytes of room, taken; `None` (and the writer full) when they do not fit.
    #[inline]
    fn take(&mut self, n: usize) -> Option<&mut [u8]> {
        let end = self.pos.checked_add(n)?;
        match self.buf.get_mut(self.pos..end) {
            Some(room) => {
                self.pos = end;
                Some(room)
            }
            None => {
                self.full = true;
                None
            }
        }
    }

    /// Writes one byte.
    #[inline]
    pub fn put_u8(&mut self, b: u8) {
        match self.buf.get_mut(self.pos) {
            Some(slot) => {
                *slot = b;
                self.pos += 1;
            }
            None => self.full = true,
        }
    }

    /// Writes a fixed number of bytes (a constructor with its fixed-width data).
    #[inline]
    pub fn put_array<const N: usize>(&mut self, bytes: [u8; N]) {
        if let Some(room) = self.take(N) {
            room.copy_from_slice(&bytes);
        }
    }

    /// Writes `bytes`; short ones (up to 32 bytes: nearly every key and string) are copied
    /// with fixed-size moves instead of a library call.
    #[inline]
    pub fn put_slice(&mut self, bytes: &[u8]) {
        if let Some(room) = self.take(bytes.len()) {
            copy_short(room, bytes);
        }
    }

    /// Writes a binary, string or symbol with the smallest of its two constructors.
    #[inline]
    pub fn put_variable(&mut self, small: u8, large: u8, bytes: &[u8]) {
        let Ok(n) = u8::try_from(bytes.len()) else {
            self.put_variable_header(small, large, bytes.len());
            self.put_slice(bytes);
            return;
        };
        // Constructor, length and content in one reservation.
        if let Some([code, len, content @ ..]) = self.take(2 + bytes.len()) {
            *code = small;
            *len = n;
            copy_short(content, bytes);
        }
    }

    /// Writes the constructor and length of a binary, string or symbol of `len` bytes whose
    /// content the caller writes elsewhere (a body that goes out after the head).
    #[inline]
    pub fn put_variable_header(&mut self, small: u8, large: u8, len: usize) {
        match u8::try_from(len) {
            Ok(n) => self.put_array([small, n]),
            Err(_) => match u32::try_from(len) {
                Ok(n) => {
                    let n = n.to_be_bytes();
                    self.put_array([large, n[0], n[1], n[2], n[3]]);
                }
                // No AMQP value is that long: a writer cannot hold it either.
                Err(_) => self.full = true,
            },
        }
    }

    /// Writes any value through its sized encoding: for the types that do not write
    /// themselves into a slice (composites, lists, arrays).
    pub fn put_encoded<T: Encode + ?Sized>(&mut self, value: &T) {
        if let Some(mut room) = self.take(value.encoded_len()) {
            // `encoded_len` is exact, so the encoding fills the room it was given.
            value.encode(&mut room);
        }
    }

    /// Opens a map whose entries follow: a map8 header with its size and count left to
    /// [`SliceWriter::end_map`].
    #[inline]
    pub fn begin_map(&mut self) -> MapStart {
        let start = MapStart(self.pos);
        self.put_array([fc::MAP8, 0, 0]);
        start
    }

    /// Closes a map opened at `start` holding `pairs` entries: its header gets the size and
    /// count, and when they do not fit a map8 the entries move up to make room for a map32's.
    #[inline]
    pub fn end_map(&mut self, start: MapStart, pairs: usize) {
        if self.full {
            return;
        }
        let MapStart(start) = start;
        let content = self.pos.saturating_sub(start + MAP8_HEADER);
        let count = pairs.saturating_mul(2);
        // The size byte counts the count byte and the entries (as `Encode` sizes a map8).
        if let (Ok(size), Ok(count)) = (u8::try_from(content + 1), u8::try_from(count)) {
            if let Some(header) = self.buf.get_mut(start..start + MAP8_HEADER) {
                header.copy_from_slice(&[fc::MAP8, size, count]);
            }
            return;
        }
        self.widen_map(start, content, count);
    }

    /// The rare large map: its entries move up by the six bytes a map32 header adds.
    #[cold]
    fn widen_map(&mut self, start: usize, content: usize, count: usize) {
        let entries = start + MAP8_HEADER..self.pos;
        if self.take(MAP32_EXTRA).is_none() {
            return;
        }
        self.buf
            .copy_within(entries.clone(), entries.start + MAP32_EXTRA);
        let size = u32::try_from(content + 4).unwrap_or(u32::MAX).to_be_bytes();
        let count = u32::try_from(count).unwrap_or(u32::MAX).to_be_bytes();
        if let Some(header) = self.buf.get_mut(start..start + MAP8_HEADER + MAP32_EXTRA) {
            header.copy_from_slice(&[
                fc::MAP32,
                size[0],
                size[1],
                size[2],
                size[3],
                count[0],
                count[1],
                count[2],
                count[3],
            ]);
        }
    }
}

/// Copies `src` into `dst` (of the same length). Up to 32 bytes it uses two overlapping
/// fixed-size moves, which compile to a few register loads and stores.
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 32 || dst.len() != n {
        dst.copy_from_slice(src);
    } else if n >= 16 {
        overlapping::<16>(dst, src);
    } else if n >= 8 {
        overlapping::<8>(dst, src);
    } else if n >= 4 {
        overlapping::<4>(dst, src);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// Copies `src` (between `N` and `2N` bytes) as its first and its last `N` bytes.
#[inline]
fn overlapping<const N: usize>(dst: &mut [u8], src: &[u8]) {
    let tail = src.len().saturating_sub(N);
    let (Some(head), Some(last)) = (src.get(..N), src.get(tail..)) else {
        return;
    };
    let (Ok(head), Ok(last)) = (<[u8; N]>::try_from(head), <[u8; N]>::try_from(last)) else {
        return;
    };
    if let Some(d) = dst.get_mut(..N) {
        d.copy_from_slice(&head);
    }
    if let Some(d) = dst.get_mut(tail..) {
        if d.len() == N {
            d.copy_from_slice(&last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_copies_are_exact_at_every_length() {
        let src: Vec<u8> = (0..80u8).collect();
        for n in 0..=80 {
            let mut dst = vec![0xee; n];
            copy_short(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }

    #[test]
    fn a_write_that_does_not_fit_flags_the_writer() {
        let mut room = [0u8; 4];
        let mut w = SliceWriter::new(&mut room);
        w.put_array([1, 2, 3]);
        assert!(!w.is_full());
        w.put_slice(&[4, 5]);
        assert!(w.is_full());
        assert_eq!(w.written(), &[1, 2, 3]);
    }

    #[test]
    fn a_map_too_large_for_map8_is_moved_up_under_a_map32_header() {
        let mut room = vec![0u8; 400];
        let mut w = SliceWriter::new(&mut room);
        let start = w.begin_map();
        w.put_variable(fc::STR8, fc::STR32, &[b'k'; 253]);
        w.put_array([fc::NULL]);
        w.end_map(start, 1);
        let out = w.written();
        assert_eq!(out.len(), 9 + 2 + 253 + 1);
        assert_eq!(out[0], fc::MAP32);
        assert_eq!(&out[1..5], &(4 + 256u32).to_be_bytes());
        assert_eq!(&out[5..9], &2u32.to_be_bytes());
        assert_eq!(&out[9..11], &[fc::STR8, 253]);
        assert_eq!(out[out.len() - 1], fc::NULL);
    }
}
