//! The ordered map behind the map-valued message sections: annotations (symbol or ulong keys)
//! and application properties (string keys) share one API and one codec.
//!
//! A decoded map is checked whole when its message is decoded (every key of the right type,
//! every value well formed) but its entries are built only when first read: a receiver that
//! reads the body and one annotation of one event in a batch builds nothing for the others,
//! and a relay that forwards a message unchanged writes the map's bytes back as they came.

use crate::amqp::codec::format_code as fc;
use crate::amqp::codec::{Decode, DecodeError, Decoder, Encode, SliceWriter, Value};
use bytes::{BufMut, Bytes};
use std::fmt;
use std::sync::OnceLock;

/// A key type of a [`SectionMap`]: how it compares with a name, and how a map of such keys is
/// read from the wire (which may be laxer than the key type's own [`Decode`]).
pub trait MapKey: Encode + PartialEq + Sized {
    /// What a wrong key is called in an error (`"annotation key (symbol or ulong)"`).
    const EXPECTED: &'static str;
    /// True when this key is the name `name`.
    fn is_named(&self, name: &str) -> bool;
    /// True for a key constructor this key type's encoding writes itself (so a map of only
    /// such keys is kept as it came); a map with any other key is read by
    /// [`MapKey::decode_entries`], which accepts or refuses it.
    fn is_own_key_code(code: u8) -> bool;
    /// True for every key constructor [`MapKey::decode_entries`] accepts (a key of such a
    /// constructor may still be refused for its content, as invalid UTF-8).
    fn is_accepted_key_code(code: u8) -> bool {
        Self::is_own_key_code(code)
    }
    /// Reads a map with keys of this type, `None` for null. A whole map rather than one key,
    /// so that a key type read its own way decodes straight into the entries, with no second
    /// pass over them.
    fn decode_entries(d: &mut Decoder) -> Result<Option<Vec<(Self, Value)>>, DecodeError>;
}

/// An AMQP map kept in wire order, as a list of pairs: sections are small, and a list keeps
/// what a peer sent exactly as it sent it. See the module docs for when entries are built.
pub struct SectionMap<K> {
    /// The entries of a map made here or changed.
    entries: Vec<(K, Value)>,
    /// A decoded map not changed since: its encoding, and its entries once read.
    decoded: Option<Decoded<K>>,
}

/// A decoded map's encoding (map constructor onward, checked when decoded) and its entries,
/// built on first read.
struct Decoded<K> {
    raw: Bytes,
    built: OnceLock<Vec<(K, Value)>>,
}

impl<K> SectionMap<K> {
    fn built(entries: Vec<(K, Value)>) -> Self {
        SectionMap {
            entries,
            decoded: None,
        }
    }
}

impl<K> Default for SectionMap<K> {
    fn default() -> Self {
        SectionMap::built(Vec::new())
    }
}

impl<K> From<Vec<(K, Value)>> for SectionMap<K> {
    fn from(entries: Vec<(K, Value)>) -> Self {
        SectionMap::built(entries)
    }
}

impl<K: Clone> Clone for SectionMap<K> {
    fn clone(&self) -> Self {
        SectionMap {
            entries: self.entries.clone(),
            decoded: self.decoded.as_ref().map(|d| Decoded {
                raw: d.raw.clone(),
                built: d.built.clone(),
            }),
        }
    }
}

impl<K: MapKey> SectionMap<K> {
    /// An empty map.
    pub fn new() -> Self {
        SectionMap::built(Vec::new())
    }

    /// The entries in wire order (built now if the map was decoded and not read yet).
    pub fn entries(&self) -> &[(K, Value)] {
        match &self.decoded {
            None => &self.entries,
            Some(d) => d.built.get_or_init(|| build(&d.raw)),
        }
    }

    /// The entries for changing; the map is written from them from now on.
    pub fn entries_mut(&mut self) -> &mut Vec<(K, Value)> {
        if let Some(d) = self.decoded.take() {
            self.entries = d.built.into_inner().unwrap_or_else(|| build(&d.raw));
        }
        &mut self.entries
    }

    /// The entries, taken out.
    pub fn into_entries(mut self) -> Vec<(K, Value)> {
        std::mem::take(self.entries_mut())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries()
            .iter()
            .find(|(k, _)| k.is_named(key))
            .map(|(_, v)| v)
    }

    /// The string or symbol under `key`. A decoded map not read yet is searched in place,
    /// building nothing.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.unbuilt() {
            Some(raw) => {
                let mut d = Decoder::new(raw.clone());
                if !d.seek_map_key(key) {
                    return None;
                }
                // Checked when decoded; checked again rather than trusted.
                std::str::from_utf8(raw.get(d.text_range()?)?).ok()
            }
            None => self.get(key).and_then(Value::as_str),
        }
    }

    /// The value under `key` when it holds no shared bytes (a number, a timestamp, a boolean,
    /// a uuid, a null...); `None` for strings, binaries and compounds. A decoded map not read
    /// yet is searched in place, building nothing.
    pub fn get_scalar(&self, key: &str) -> Option<Value> {
        let scalar = |v: &Value| {
            !matches!(
                v,
                Value::String(_)
                    | Value::Symbol(_)
                    | Value::Binary(_)
                    | Value::List(_)
                    | Value::Map(_)
                    | Value::Array(_)
                    | Value::Described(_)
            )
        };
        match self.unbuilt() {
            Some(raw) => {
                let mut d = Decoder::new(raw.clone());
                if !d.seek_map_key(key) || !d.at_fixed_width() {
                    return None;
                }
                d.read_value().ok().filter(scalar)
            }
            None => self.get(key).filter(|v| scalar(v)).cloned(),
        }
    }

    /// True when some entry's key is one of `keys` (searched in place when not built).
    pub fn contains_any_key(&self, keys: &[&str]) -> bool {
        match self.unbuilt() {
            Some(raw) => Decoder::new(raw.clone()).seek_map_key_of(keys).is_some(),
            None => keys.iter().any(|k| self.get(k).is_some()),
        }
    }

    /// For a decoded map not changed since: its entries' encoding (what follows the map's
    /// size and count) and the number of keys and values, for a writer that appends entries
    /// to the map as it came.
    pub fn raw_entries(&self) -> Option<(&[u8], usize)> {
        match self.decoded.as_ref()?.raw.as_ref() {
            [fc::MAP8, _, count, rest @ ..] => Some((rest, usize::from(*count))),
            [fc::MAP32, _, _, _, _, a, b, c, d, rest @ ..] => {
                Some((rest, u32::from_be_bytes([*a, *b, *c, *d]) as usize))
            }
            _ => None,
        }
    }

    /// A decoded map's encoding while its entries are not built.
    fn unbuilt(&self) -> Option<&Bytes> {
        self.decoded
            .as_ref()
            .filter(|d| d.built.get().is_none())
            .map(|d| &d.raw)
    }

    /// Sets `key` to `value`, keeping its position if present; returns the old value.
    pub fn insert(&mut self, key: impl Into<K>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        let entries = self.entries_mut();
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, value)),
            None => {
                entries.push((key, value));
                None
            }
        }
    }

    /// Removes the entry under `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let entries = self.entries_mut();
        let i = entries.iter().position(|(k, _)| k.is_named(key))?;
        Some(entries.remove(i).1)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = &(K, Value)> {
        self.entries().iter()
    }

    /// Number of entries (read from the map's header when not built).
    pub fn len(&self) -> usize {
        match self.raw_entries() {
            Some((_, count)) => count / 2,
            None => self.entries().len(),
        }
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The entries of a map checked when decoded. The check refuses everything
/// [`MapKey::decode_entries`] refuses (both read keys of [`MapKey::is_own_key_code`] and
/// values by the same rules; the fuzz targets and property tests hold them to it), so the
/// empty fallback is never taken.
fn build<K: MapKey>(raw: &Bytes) -> Vec<(K, Value)> {
    K::decode_entries(&mut Decoder::new(raw.clone()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

impl<K: MapKey> IntoIterator for SectionMap<K> {
    type Item = (K, Value);
    type IntoIter = std::vec::IntoIter<(K, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_entries().into_iter()
    }
}

impl<K: MapKey + fmt::Debug> fmt::Debug for SectionMap<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SectionMap").field(&self.entries()).finish()
    }
}

impl<K: MapKey> PartialEq for SectionMap<K> {
    fn eq(&self, other: &Self) -> bool {
        self.entries() == other.entries()
    }
}

impl<K: MapKey> Encode for SectionMap<K> {
    fn encoded_len(&self) -> usize {
        match &self.decoded {
            Some(d) => d.raw.len(),
            None => self.entries.encoded_len(),
        }
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match &self.decoded {
            Some(d) => buf.put_slice(&d.raw),
            None => self.entries.encode(buf),
        }
    }
    #[inline]
    fn write_to(&self, w: &mut SliceWriter<'_>) {
        match &self.decoded {
            Some(d) => w.put_slice(&d.raw),
            None => self.entries.write_to(w),
        }
    }
}

impl<K: MapKey> Decode for SectionMap<K> {
    /// A null map (seen from lax peers) reads as an empty one.
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        match d.take_checked_map(K::is_own_key_code, K::EXPECTED) {
            Ok(None) => Ok(SectionMap::new()),
            Ok(Some(raw)) => Ok(SectionMap {
                entries: Vec::new(),
                decoded: Some(Decoded {
                    raw,
                    built: OnceLock::new(),
                }),
            }),
            // A key of another type (a lax peer's) or a malformed map: the full reader
            // accepts the one and names the other's error.
            Err(_) => Ok(SectionMap::built(K::decode_entries(d)?.unwrap_or_default())),
        }
    }
}

/// Checks the equivalence [`build`] relies on, for one encoded map: `None` when the map is
/// refused by both the check and the full reader, `Some(entries)` when both accept it, and an
/// error naming the disagreement otherwise. For fuzz targets and property tests.
#[doc(hidden)]
pub fn check_lazy_map<K: MapKey + fmt::Debug>(
    bytes: Bytes,
) -> Result<Option<Vec<(K, Value)>>, String> {
    let checked = Decoder::new(bytes.clone()).take_checked_map(K::is_own_key_code, K::EXPECTED);
    let mut d = Decoder::new(bytes);
    let full = K::decode_entries(&mut d);
    match (checked, full) {
        (Ok(_), Err(e)) => Err(format!("the check accepts a map the reader refuses: {e}")),
        (Ok(Some(raw)), Ok(entries)) => {
            let built = build::<K>(&raw);
            let entries = entries.unwrap_or_default();
            if built == entries {
                Ok(Some(entries))
            } else {
                Err(format!("built {built:?} but read {entries:?}"))
            }
        }
        (_, Ok(entries)) => Ok(Some(entries.unwrap_or_default())),
        (Err(_), Err(_)) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use crate::amqp::codec::{Decode, Decoder, Encode};
    use crate::amqp::codec::{Str, Timestamp, Value};
    use crate::amqp::types::message::{Annotations, PropertyMap};
    use bytes::{Bytes, BytesMut};

    fn annotations() -> Annotations {
        let mut a = Annotations::new();
        a.insert(7u64, "numeric key");
        a.insert("x-opt-offset", "98765432");
        a.insert("x-opt-sequence-number", 1_234_567i64);
        a.insert("x-opt-enqueued-time", Timestamp(1_700_000_000_000));
        a.insert("x-opt-list", Value::List(vec![Value::Int(1)]));
        a.insert("x-opt-offset", "replaced in place");
        a
    }

    fn decoded<T: Encode + Decode>(v: &T) -> T {
        let mut buf = BytesMut::new();
        v.encode(&mut buf);
        T::decode(&mut Decoder::new(buf.freeze())).unwrap()
    }

    #[test]
    fn in_place_lookups_answer_as_the_built_entries_do_and_build_nothing() {
        let built = annotations();
        let lazy = decoded(&built);
        assert!(lazy.unbuilt().is_some());
        for key in [
            "x-opt-offset",
            "x-opt-sequence-number",
            "x-opt-enqueued-time",
            "x-opt-list",
            "missing",
            "",
        ] {
            assert_eq!(lazy.get_str(key), built.get_str(key), "{key}");
            assert_eq!(lazy.get_scalar(key), built.get_scalar(key), "{key}");
        }
        assert_eq!(lazy.get_str("x-opt-offset"), Some("replaced in place"));
        assert_eq!(
            lazy.get_scalar("x-opt-sequence-number"),
            Some(Value::Long(1_234_567))
        );
        assert_eq!(
            lazy.get_scalar("x-opt-offset"),
            None,
            "a string is not a scalar"
        );
        assert_eq!(lazy.get_str("x-opt-sequence-number"), None);
        assert!(lazy.unbuilt().is_some(), "lookups built the entries");
        // Read whole, the same entries; from then on lookups use them.
        assert_eq!(lazy, built);
        assert!(lazy.unbuilt().is_none());
        assert_eq!(lazy.get_str("x-opt-offset"), Some("replaced in place"));
    }

    #[test]
    fn a_decoded_map_is_written_back_as_it_came_until_changed() {
        // map32 with one entry, which we would write as map8.
        let wire: &[u8] = &[
            0xd1, 0, 0, 0, 0x0a, 0, 0, 0, 2, 0xa1, 1, b'k', 0xa1, 1, b'v',
        ];
        let mut m = PropertyMap::decode(&mut Decoder::new(Bytes::from_static(wire))).unwrap();
        assert_eq!(m.encoded_len(), wire.len());
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..], wire);
        m.insert(Str::from("k2"), 1i32);
        assert_eq!(m.len(), 2);
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(out[0], 0xc1, "rewritten from the entries");
        assert_eq!(decoded(&m), m);
    }

    #[test]
    fn symbol_keys_of_application_properties_are_read_as_strings_and_rewritten() {
        let wire: &[u8] = &[0xc1, 7, 2, 0xa3, 1, b'k', 0xa1, 1, b'v'];
        let m = PropertyMap::decode(&mut Decoder::new(Bytes::from_static(wire))).unwrap();
        assert!(m.unbuilt().is_none(), "a lax key is built at once");
        assert_eq!(m.get_str("k"), Some("v"));
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..], &[0xc1, 7, 2, 0xa1, 1, b'k', 0xa1, 1, b'v']);
    }
}
