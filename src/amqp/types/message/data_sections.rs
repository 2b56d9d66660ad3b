//! The `data` sections of a body, kept without a heap allocation in the usual case of one.

use bytes::Bytes;

/// The `data` sections of a [`super::Body::Data`] body, in order.
///
/// One section (every Event Hubs event) is held inline, so decoding an event allocates no list
/// for it; more sections (a batch envelope) live in a `Vec`. It reads as a slice of [`Bytes`].
#[derive(Clone, Default)]
pub struct DataSections(Repr);

#[derive(Clone)]
enum Repr {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Many(Vec::new())
    }
}

impl DataSections {
    /// No sections.
    pub fn new() -> Self {
        DataSections::default()
    }

    /// Exactly one section.
    pub fn one(data: Bytes) -> Self {
        DataSections(Repr::One(data))
    }

    /// The sections as a slice.
    pub fn as_slice(&self) -> &[Bytes] {
        match &self.0 {
            Repr::One(b) => std::slice::from_ref(b),
            Repr::Many(v) => v,
        }
    }

    /// Appends a section.
    pub fn push(&mut self, data: Bytes) {
        match &mut self.0 {
            Repr::Many(v) if v.is_empty() => self.0 = Repr::One(data),
            Repr::Many(v) => v.push(data),
            Repr::One(first) => {
                let first = std::mem::take(first);
                self.0 = Repr::Many(vec![first, data]);
            }
        }
    }

    /// The sections as a `Vec` (allocates for a single inline section).
    pub fn into_vec(self) -> Vec<Bytes> {
        match self.0 {
            Repr::One(b) => vec![b],
            Repr::Many(v) => v,
        }
    }
}

impl std::ops::Deref for DataSections {
    type Target = [Bytes];
    fn deref(&self) -> &[Bytes] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for DataSections {
    fn deref_mut(&mut self) -> &mut [Bytes] {
        match &mut self.0 {
            Repr::One(b) => std::slice::from_mut(b),
            Repr::Many(v) => v,
        }
    }
}

impl std::fmt::Debug for DataSections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Equal when the sections are, however they are held.
impl PartialEq for DataSections {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Vec<Bytes>> for DataSections {
    fn eq(&self, other: &Vec<Bytes>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl From<Vec<Bytes>> for DataSections {
    fn from(mut v: Vec<Bytes>) -> Self {
        if v.len() == 1 {
            if let Some(b) = v.pop() {
                return DataSections::one(b);
            }
        }
        DataSections(Repr::Many(v))
    }
}

impl From<Bytes> for DataSections {
    fn from(b: Bytes) -> Self {
        DataSections::one(b)
    }
}

impl FromIterator<Bytes> for DataSections {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut s = DataSections::new();
        for b in iter {
            s.push(b);
        }
        s
    }
}

impl<'a> IntoIterator for &'a DataSections {
    type Item = &'a Bytes;
    type IntoIter = std::slice::Iter<'a, Bytes>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// Iterator over owned sections (see [`DataSections`]'s `IntoIterator`).
pub struct IntoIter(IterRepr);

enum IterRepr {
    One(Option<Bytes>),
    Many(std::vec::IntoIter<Bytes>),
}

impl Iterator for IntoIter {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            IterRepr::One(b) => b.take(),
            IterRepr::Many(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::One(b) => usize::from(b.is_some()),
            IterRepr::Many(i) => i.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for DataSections {
    type Item = Bytes;
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter(match self.0 {
            Repr::One(b) => IterRepr::One(Some(b)),
            Repr::Many(v) => IterRepr::Many(v.into_iter()),
        })
    }
}
