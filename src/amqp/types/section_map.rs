//! The ordered map behind the map-valued message sections: annotations (symbol or ulong keys)
//! and application properties (string keys) share one API and one codec.

use crate::amqp::codec::{Decode, DecodeError, Decoder, Encode, Value};
use bytes::BufMut;

/// A key type of a [`SectionMap`]: how it compares with a name, and how a map of such keys is
/// read from the wire (which may be laxer than the key type's own [`Decode`]).
pub trait MapKey: Encode + PartialEq + Sized {
    /// True when this key is the name `name`.
    fn is_named(&self, name: &str) -> bool;
    /// Reads a map with keys of this type, `None` for null. A whole map rather than one key,
    /// so that a key type read its own way decodes straight into the entries, with no second
    /// pass over them.
    fn decode_entries(d: &mut Decoder) -> Result<Option<Vec<(Self, Value)>>, DecodeError>;
}

/// An AMQP map kept in wire order, as a list of pairs: sections are small, and a list keeps
/// what a peer sent exactly as it sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct SectionMap<K>(pub Vec<(K, Value)>);

impl<K> Default for SectionMap<K> {
    fn default() -> Self {
        SectionMap(Vec::new())
    }
}

impl<K> From<Vec<(K, Value)>> for SectionMap<K> {
    fn from(entries: Vec<(K, Value)>) -> Self {
        SectionMap(entries)
    }
}

impl<K: MapKey> SectionMap<K> {
    /// An empty map.
    pub fn new() -> Self {
        SectionMap(Vec::new())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k.is_named(key)).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, keeping its position if present; returns the old value.
    pub fn insert(&mut self, key: impl Into<K>, value: impl Into<Value>) -> Option<Value> {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Removes the entry under `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k.is_named(key))?;
        Some(self.0.remove(i).1)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = &(K, Value)> {
        self.0.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: MapKey> Encode for SectionMap<K> {
    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }
    fn encode<B: BufMut>(&self, buf: &mut B) {
        self.0.encode(buf)
    }
}

impl<K: MapKey> Decode for SectionMap<K> {
    /// A null map (seen from lax peers) reads as an empty one.
    fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        Ok(SectionMap(K::decode_entries(d)?.unwrap_or_default()))
    }
}
