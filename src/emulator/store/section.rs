//! The message-annotations section the service writes on every stored event (sequence
//! number, offset as text, enqueued time, partition key), encoded straight from the values,
//! and the offset's decimal text kept up to date as offsets grow: the two costs the store pays
//! per event, so both are made cheap here and checked against the general encoder in tests.

use crate::amqp::codec::Timestamp;
use crate::wire::annotations as annotation;
use bytes::{BufMut, BytesMut};

/// A non-negative number's decimal digits, made without allocating.
pub(super) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    /// How many digits `n` has.
    pub(super) fn len_of(n: i64) -> usize {
        n.unsigned_abs()
            .checked_ilog10()
            .map_or(1, |l| l as usize + 1)
    }

    pub(super) fn new(n: i64) -> Self {
        let mut digits = [b'0'; 20];
        let mut n = n.unsigned_abs();
        // Up to 16 digits (every offset a partition reaches) are made in a register and
        // stored at once: written byte by byte they would be read back, a moment later, by
        // a wider load that cannot be forwarded from those stores, a stall on every event.
        let mut word = 0u128;
        let mut len = 0;
        while len < 16 {
            word |= u128::from(b'0' + (n % 10) as u8) << (8 * len);
            n /= 10;
            len += 1;
            if n == 0 {
                digits[4..].copy_from_slice(&word.to_be_bytes());
                return Decimal {
                    digits,
                    start: 20 - len,
                };
            }
        }
        digits[4..].copy_from_slice(&word.to_be_bytes());
        let mut start = 4;
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 || start == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// Sixteen bytes of 246 each: added to packed digits, a byte of 10 or more carries out of it.
const CARRY_BIAS: u128 = u128::from_ne_bytes([246; 16]);
/// The low bit of every byte.
const LOW_BITS: u128 = u128::from_ne_bytes([1; 16]);
/// `'0'` in every byte: packed digit values become their ASCII text.
const ASCII_ZEROS: u128 = u128::from_ne_bytes([b'0'; 16]);
/// The first offset with 17 digits, past which [`OffsetText`] divides as [`Decimal::new`].
const SIXTEEN_DIGITS: i64 = 10_000_000_000_000_000;

/// An offset and its decimal text, advanced event by event: the store writes the text of
/// every stored event's offset, and adding an event's size to sixteen packed decimal digits
/// is a few word operations where making the text from the number divides once per digit.
pub(super) struct OffsetText {
    value: i64,
    /// `value`'s digits (`value` < 10^16), one per byte, the least significant in the low
    /// byte.
    packed: u128,
    /// The last size added and its packed digits: a batch's events are often one size.
    step: (u64, u128),
}

impl OffsetText {
    /// The text of `value` (not negative).
    pub(super) fn new(value: i64) -> Self {
        let value = value.max(0);
        OffsetText {
            value,
            packed: if value < SIXTEEN_DIGITS {
                pack(value.unsigned_abs())
            } else {
                0
            },
            step: (0, 0),
        }
    }

    /// The offset.
    pub(super) fn value(&self) -> i64 {
        self.value
    }

    /// Moves on by `n` bytes.
    pub(super) fn advance(&mut self, n: usize) {
        let n = n as u64;
        let Some(next) = i64::try_from(n)
            .ok()
            .and_then(|n| self.value.checked_add(n))
        else {
            self.value = i64::MAX;
            return;
        };
        self.value = next;
        if next >= SIXTEEN_DIGITS {
            return;
        }
        if self.step.0 != n {
            self.step = (n, pack(n));
        }
        // Each byte holds at most 9 + 9; biased by 246 a byte of 10 or more overflows into
        // the next, which is the decimal carry, and keeps the sum less 10. A byte that did
        // not overflow has its high bit set, and loses the bias again.
        let sum = self
            .packed
            .wrapping_add(self.step.1)
            .wrapping_add(CARRY_BIAS);
        let unbiased = (sum >> 7) & LOW_BITS;
        self.packed = sum - unbiased * 246;
    }

    /// The offset's text.
    pub(super) fn text(&self) -> Decimal {
        if self.value >= SIXTEEN_DIGITS {
            return Decimal::new(self.value);
        }
        let used = (128 - self.packed.leading_zeros()).div_ceil(8).max(1) as usize;
        let mut digits = [b'0'; 20];
        digits[4..].copy_from_slice(&(self.packed | ASCII_ZEROS).to_be_bytes());
        Decimal {
            digits,
            start: 20 - used,
        }
    }
}

/// How many digits an offset that only grows has, counted without a logarithm per event.
pub(super) struct DigitCount {
    digits: usize,
    /// The first value with one digit more.
    next: u64,
}

impl DigitCount {
    /// Counts from `value` (not negative) on.
    pub(super) fn new(value: i64) -> Self {
        let digits = Decimal::len_of(value);
        DigitCount {
            digits,
            next: 10u64.checked_pow(digits as u32).unwrap_or(u64::MAX),
        }
    }

    /// The digits of `value`, which is not less than any value asked before.
    pub(super) fn of(&mut self, value: i64) -> usize {
        while value.unsigned_abs() >= self.next {
            self.digits += 1;
            self.next = self.next.saturating_mul(10);
        }
        self.digits
    }
}

/// `n`'s decimal digits (`n` < 10^16), one per byte, the least significant in the low byte.
fn pack(mut n: u64) -> u128 {
    let mut packed = 0u128;
    let mut shift = 0;
    while n != 0 && shift < 128 {
        packed |= u128::from((n % 10) as u8) << shift;
        n /= 10;
        shift += 8;
    }
    packed
}

/// The message-annotations section the service gives an event with no annotations of its
/// own: sequence number, offset (as text), enqueued time and, when the batch had one, the
/// partition key; encoded straight from the values (a map of `Value`s would be built, sized
/// and encoded for every event).
pub(super) struct ServiceSection<'a> {
    pub(super) now: Timestamp,
    pub(super) key: Option<&'a [u8]>,
    /// The event's own annotations as they came (their entries' encoding and the number of
    /// keys and values), written first; none of them is a key the service writes.
    pub(super) own: (&'a [u8], usize),
}

/// `0x00 0x53 0x72`: a described section, descriptor smallulong 0x72 (message-annotations).
const MESSAGE_ANNOTATIONS_PREFIX: [u8; 3] = [0x00, 0x53, 0x72];

impl<'a> ServiceSection<'a> {
    fn key_len(k: &str) -> usize {
        2 + k.len()
    }

    fn str_len(n: usize) -> usize {
        if n <= 0xff {
            2 + n
        } else {
            5 + n
        }
    }

    /// Bytes of the map's pairs.
    fn pairs_len(&self, offset_digits: usize) -> usize {
        let mut n = self.own.0.len()
            + Self::key_len(annotation::SEQUENCE_NUMBER)
            + 9
            + Self::key_len(annotation::OFFSET)
            + Self::str_len(offset_digits)
            + Self::key_len(annotation::ENQUEUED_TIME)
            + 9;
        if let Some(k) = self.key {
            n += Self::key_len(annotation::PARTITION_KEY) + Self::str_len(k.len());
        }
        n
    }

    fn count(&self) -> usize {
        self.own.1 + if self.key.is_some() { 8 } else { 6 }
    }

    /// The same section for an event whose own annotations are `own` (see the field).
    pub(super) fn with_own<'b>(&self, own: (&'b [u8], usize)) -> ServiceSection<'b>
    where
        'a: 'b,
    {
        ServiceSection {
            now: self.now,
            key: self.key,
            own,
        }
    }

    /// The whole section's size.
    pub(super) fn len(&self, offset_digits: usize) -> usize {
        let pairs = self.pairs_len(offset_digits);
        MESSAGE_ANNOTATIONS_PREFIX.len() + if pairs < 0xff { 3 + pairs } else { 9 + pairs }
    }

    /// Where, in the section [`ServiceSection::write`] writes with `offset_digits` digits,
    /// the sequence number's 8 bytes and the offset's digits are.
    pub(super) fn places(&self, offset_digits: usize) -> (usize, usize) {
        let header = if self.pairs_len(offset_digits) < 0xff {
            3
        } else {
            9
        };
        let seq_at = MESSAGE_ANNOTATIONS_PREFIX.len()
            + header
            + self.own.0.len()
            + Self::key_len(annotation::SEQUENCE_NUMBER)
            + 1;
        let digits_at =
            seq_at + 8 + Self::key_len(annotation::OFFSET) + Self::str_len(offset_digits)
                - offset_digits;
        (seq_at, digits_at)
    }

    pub(super) fn write<B: BufMut>(&self, buf: &mut B, seq: i64, offset: &Decimal) {
        fn key<B: BufMut>(buf: &mut B, k: &str) {
            buf.put_u8(0xa3);
            buf.put_u8(k.len() as u8);
            buf.put_slice(k.as_bytes());
        }
        fn string<B: BufMut>(buf: &mut B, s: &[u8]) {
            if s.len() <= 0xff {
                buf.put_u8(0xa1);
                buf.put_u8(s.len() as u8);
            } else {
                buf.put_u8(0xb1);
                buf.put_u32(s.len() as u32);
            }
            buf.put_slice(s);
        }
        let pairs = self.pairs_len(offset.as_bytes().len());
        buf.put_slice(&MESSAGE_ANNOTATIONS_PREFIX);
        if pairs < 0xff {
            buf.put_u8(0xc1);
            buf.put_u8((pairs + 1) as u8);
            buf.put_u8(self.count() as u8);
        } else {
            buf.put_u8(0xd1);
            buf.put_u32((pairs + 4) as u32);
            buf.put_u32(self.count() as u32);
        }
        buf.put_slice(self.own.0);
        key(buf, annotation::SEQUENCE_NUMBER);
        buf.put_u8(0x81);
        buf.put_i64(seq);
        key(buf, annotation::OFFSET);
        string(buf, offset.as_bytes());
        key(buf, annotation::ENQUEUED_TIME);
        buf.put_u8(0x83);
        buf.put_i64(self.now.0);
        if let Some(k) = self.key {
            key(buf, annotation::PARTITION_KEY);
            string(buf, k);
        }
    }
}

/// The service's section for a batch's events that have no annotations of their own, made
/// once and patched per event (sequence number and offset digits) rather than written field
/// by field: one copy per event instead of a dozen small writes.
#[derive(Default)]
pub(super) struct SectionTemplate {
    bytes: Vec<u8>,
    /// How many offset digits `bytes` has room for (0: not made yet).
    digits: usize,
    seq_at: usize,
    digits_at: usize,
}

impl SectionTemplate {
    /// Makes the template for offsets of `digits` digits (once per batch, and again when
    /// the offsets gain a digit).
    #[cold]
    fn make(&mut self, section: &ServiceSection, digits: usize) {
        self.bytes.clear();
        let zeros = Decimal {
            digits: [b'0'; 20],
            start: 20 - digits.min(20),
        };
        section.write(&mut self.bytes, 0, &zeros);
        self.digits = digits;
        (self.seq_at, self.digits_at) = section.places(digits);
    }

    /// Writes `section` (with no own entries) for an event with sequence number `seq` and
    /// offset text `offset`, as [`ServiceSection::write`] would.
    pub(super) fn write(
        &mut self,
        section: &ServiceSection,
        buf: &mut BytesMut,
        seq: i64,
        offset: &Decimal,
    ) {
        let digits = offset.as_bytes();
        if digits.len() != self.digits {
            self.make(section, digits.len());
        }
        let start = buf.len();
        buf.extend_from_slice(&self.bytes);
        // Patched where it was written: patched in the template and then copied, the fresh
        // bytes would be read back at once by the copy's wide loads, which the processor
        // cannot serve from its store buffer (a stall on every event).
        let (seq_at, digits_at) = (start + self.seq_at, start + self.digits_at);
        let patched = match buf.get_mut(seq_at..digits_at + digits.len()) {
            Some(place) if digits_at >= seq_at + 8 => {
                let (seq_bytes, rest) = place.split_at_mut(8);
                seq_bytes.copy_from_slice(&seq.to_be_bytes());
                rest.get_mut(digits_at - seq_at - 8..)
                    .map(|d| d.copy_from_slice(digits))
                    .is_some()
            }
            _ => false,
        };
        if !patched {
            // Not reached: `places` matches `write`, as a test checks.
            buf.truncate(start);
            section.write(buf, seq, offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::codec::{Str, Value};
    use crate::amqp::types::message::Annotations;

    #[test]
    fn the_direct_service_section_decodes_as_the_map_would() {
        use crate::amqp::codec::{Decode, Decoder, Encode};
        use crate::amqp::types::message::MessageAnnotations;
        let long_key = "k".repeat(300);
        // An event's own annotations, as they came: written first, as they are.
        let mut own = Annotations::default();
        own.insert("x-opt-producer-id", Value::Long(12));
        own.insert(7u64, Value::String(Str::from("v".repeat(250))));
        let mut own_wire = BytesMut::new();
        own.encode(&mut own_wire);
        let own_decoded = Annotations::decode(&mut Decoder::new(own_wire.freeze())).unwrap();
        let owns = [None, Some(&own_decoded)];
        for (key, own) in [None, Some("pk"), Some(long_key.as_str())]
            .into_iter()
            .flat_map(|k| owns.iter().map(move |o| (k, *o)))
        {
            for (seq, offset) in [
                (0i64, 0i64),
                (7, 123_456),
                (8, 9_999_999_999_999_999),
                (9, 10_000_000_000_000_000),
                (i64::MAX, i64::MAX),
            ] {
                let section = ServiceSection {
                    now: Timestamp(1_700_000_000_123),
                    key: key.map(str::as_bytes),
                    own: own.map_or((&[], 0), |o| o.raw_entries().unwrap()),
                };
                let text = Decimal::new(offset);
                assert_eq!(text.as_bytes(), offset.to_string().as_bytes());
                let mut buf = BytesMut::new();
                section.write(&mut buf, seq, &text);
                assert_eq!(
                    buf.len(),
                    section.len(Decimal::len_of(offset)),
                    "{key:?} {offset}"
                );
                let mut d = Decoder::new(buf.freeze());
                let a = MessageAnnotations::decode(&mut d).unwrap();
                assert!(d.is_empty());
                let mut want = own.cloned().unwrap_or_default();
                want.insert(annotation::SEQUENCE_NUMBER, Value::Long(seq));
                want.insert(
                    annotation::OFFSET,
                    Value::String(Str::from(offset.to_string())),
                );
                want.insert(
                    annotation::ENQUEUED_TIME,
                    Value::Timestamp(Timestamp(1_700_000_000_123)),
                );
                if let Some(k) = key {
                    want.insert(annotation::PARTITION_KEY, Value::String(Str::from(k)));
                }
                assert_eq!(a.0, want, "{key:?} {offset}");
            }
        }
    }

    /// Offsets advanced by event sizes read as the numbers do, across carries, digit-count
    /// changes and the 16-digit boundary past which the text is made by division.
    #[test]
    fn offset_text_follows_the_offset() {
        for (start, steps) in [
            (0i64, vec![0usize, 1, 9, 90, 900, 197, 197, 197, 1 << 20]),
            (9_999_999_999_999_000, vec![500, 499, 1, 2, 197]),
            (i64::MAX - 3, vec![1, 5]),
            (999, vec![1]),
        ] {
            let mut text = OffsetText::new(start);
            assert_eq!(text.text().as_bytes(), start.to_string().as_bytes());
            let mut want = start;
            for n in steps {
                text.advance(n);
                want = want.saturating_add(n as i64);
                assert_eq!(text.value(), want);
                assert_eq!(
                    text.text().as_bytes(),
                    want.to_string().as_bytes(),
                    "{start} + .. + {n}"
                );
            }
        }
    }

    #[test]
    fn digit_counts_follow_a_growing_offset() {
        for start in [0i64, 9, 10, 999_999, i64::MAX - 5] {
            let mut count = DigitCount::new(start);
            let mut value = start;
            for step in [0i64, 1, 7, 90, 900, 123_456, 1 << 40, 2] {
                value = value.saturating_add(step);
                assert_eq!(count.of(value), value.to_string().len(), "{value}");
            }
            assert_eq!(count.of(i64::MAX), 19);
        }
    }

    proptest::proptest! {
        #[test]
        fn offset_text_matches_to_string(start in 0i64..20_000_000_000_000_000, steps in proptest::collection::vec(0usize..3_000_000, 1..40)) {
            let mut text = OffsetText::new(start);
            let mut want = start;
            for n in steps {
                text.advance(n);
                want += n as i64;
                let (got, expected) = (text.text(), want.to_string());
                proptest::prop_assert_eq!(got.as_bytes(), expected.as_bytes());
            }
        }
    }

    /// The template writes what the section writes, for every digit count it meets (its
    /// patch places are where `write` puts the sequence number and the digits).
    #[test]
    fn the_template_writes_what_the_section_writes() {
        let long_key = "k".repeat(300);
        for key in [None, Some("pk"), Some(long_key.as_str())] {
            let section = ServiceSection {
                now: Timestamp(1_700_000_000_123),
                key: key.map(str::as_bytes),
                own: (&[], 0),
            };
            let mut template = SectionTemplate::default();
            for (seq, offset) in [
                (0i64, 0i64),
                (1, 7),
                (2, 99),
                (3, 100),
                (9, 123_456),
                (10, 123_999),
                (11, i64::MAX),
            ] {
                let text = Decimal::new(offset);
                let mut want = BytesMut::new();
                section.write(&mut want, seq, &text);
                let mut got = BytesMut::new();
                template.write(&section, &mut got, seq, &text);
                assert_eq!(got, want, "{key:?} {seq} {offset}");
            }
        }
    }
}
