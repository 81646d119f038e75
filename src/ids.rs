//! One newtype per index, and a table keyed by one: the vocabulary every stage shares.
//!
//! In the spirit of cranelift's entities: an id is a `u32` into a table, never a pointer.
//! "None" is an `Option`; the ids kept per instruction have a `NonZeroU32` inside so
//! that an optional one stays 4 bytes (`Option<StateId>`, and [`PackedSymId`] for a
//! symbol; asserted below).

use std::marker::PhantomData;
use std::num::NonZeroU32;

/// Index of a section in the section header table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecId(pub u32);

/// Index of a symbol in `.symtab` (the same numbers everywhere: the ELF reader, the
/// symbol model and the findings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymId(pub u32);

/// An optional [`SymId`] in 4 bytes, for the records kept per instruction: the index + 1,
/// 0 for none (`u32::MAX`, which no symbol table reaches, is none too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PackedSymId(Option<NonZeroU32>);

impl PackedSymId {
    pub const NONE: PackedSymId = PackedSymId(None);

    pub fn new(id: Option<SymId>) -> PackedSymId {
        PackedSymId(id.and_then(|s| NonZeroU32::new(s.0.wrapping_add(1))))
    }

    pub fn get(self) -> Option<SymId> {
        self.0.map(|n| SymId(n.get() - 1))
    }
}

const _: () = assert!(size_of::<PackedSymId>() == 4);

/// Index of an instruction in the decoded instruction table; a section's instructions
/// have consecutive ids in offset order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InsnId(pub u32);

impl InsnId {
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

/// An interned CFI state (objtool's `cfi_hash` entry): equal states have equal ids.
/// Stored as index + 1, so that `Option<StateId>` is 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateId(NonZeroU32);

impl StateId {
    /// The id of the state at `index` of its table (`None` for `u32::MAX`, which no
    /// table reaches).
    pub fn new(index: u32) -> Option<StateId> {
        index.checked_add(1).and_then(NonZeroU32::new).map(StateId)
    }

    pub fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    /// The id as one `u32`, `0` for none (the walk keeps its records in atomics).
    pub fn to_raw(id: Option<StateId>) -> u32 {
        id.map_or(0, |s| s.0.get())
    }

    /// The inverse of [`StateId::to_raw`].
    pub fn from_raw(raw: u32) -> Option<StateId> {
        NonZeroU32::new(raw).map(StateId)
    }
}

const _: () = assert!(size_of::<Option<StateId>>() == 4);

/// One patch site of `.altinstructions` (objtool's original `alt_group` with the
/// replacements sharing its `cfi` array).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AltGroupId(pub u32);

/// One instruction stream of a patch site: its original or one replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u32);

/// An id usable as a [`Table`] key.
pub trait EntityId: Copy {
    fn from_index(i: usize) -> Self;
    fn index(self) -> usize;
}

macro_rules! entity {
    ($($t:ident),*) => {$(
        impl $t {
            /// The id as an index into its table.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl EntityId for $t {
            fn from_index(i: usize) -> Self {
                $t(i as u32)
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}

entity!(SecId, SymId, InsnId, AltGroupId, StreamId);

/// A table that owns its entries and hands out their ids (cranelift's `PrimaryMap`).
#[derive(Clone, Debug)]
pub struct Table<I, T> {
    items: Vec<T>,
    _id: PhantomData<fn(I) -> I>,
}

impl<I, T> Default for Table<I, T> {
    fn default() -> Self {
        Table {
            items: Vec::new(),
            _id: PhantomData,
        }
    }
}

impl<I: EntityId, T> Table<I, T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; returns its id.
    pub fn push(&mut self, item: T) -> I {
        self.items.push(item);
        I::from_index(self.items.len() - 1)
    }

    /// The id the next [`Table::push`] returns.
    pub fn next_id(&self) -> I {
        I::from_index(self.items.len())
    }

    pub fn get(&self, id: I) -> Option<&T> {
        self.items.get(id.index())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Entries in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (I, &T)> + '_ {
        self.items
            .iter()
            .enumerate()
            .map(|(i, t)| (I::from_index(i), t))
    }

    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub fn ids(&self) -> impl ExactSizeIterator<Item = I> + use<I, T> {
        (0..self.items.len()).map(I::from_index)
    }
}

impl<I: EntityId, T> std::ops::Index<I> for Table<I, T> {
    type Output = T;
    fn index(&self, id: I) -> &T {
        &self.items[id.index()]
    }
}

impl<I: EntityId, T> std::ops::IndexMut<I> for Table<I, T> {
    fn index_mut(&mut self, id: I) -> &mut T {
        &mut self.items[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_id_keeps_option_in_four_bytes_and_round_trips() {
        assert_eq!(size_of::<Option<StateId>>(), 4);
        let s = StateId::new(0).unwrap();
        assert_eq!(s.index(), 0);
        assert_eq!(StateId::to_raw(Some(s)), 1);
        assert_eq!(StateId::to_raw(None), 0);
        assert_eq!(StateId::from_raw(1), Some(s));
        assert_eq!(StateId::from_raw(0), None);
        assert_eq!(StateId::new(u32::MAX), None);
        assert_eq!(StateId::new(41).unwrap().index(), 41);
    }

    #[test]
    fn packed_sym_id_is_an_option_in_four_bytes() {
        assert_eq!(size_of::<PackedSymId>(), 4);
        assert_eq!(PackedSymId::NONE.get(), None);
        assert_eq!(PackedSymId::default(), PackedSymId::NONE);
        assert_eq!(PackedSymId::new(None).get(), None);
        for i in [0, 1, 7, u32::MAX - 1] {
            assert_eq!(PackedSymId::new(Some(SymId(i))).get(), Some(SymId(i)));
        }
        assert_ne!(PackedSymId::new(Some(SymId(0))), PackedSymId::NONE);
        // u32::MAX was the old `NO_SYM` and is none still
        assert_eq!(PackedSymId::new(Some(SymId(u32::MAX))).get(), None);
    }

    #[test]
    fn table_hands_out_ids_in_order() {
        let mut t: Table<AltGroupId, &str> = Table::new();
        assert_eq!(t.next_id(), AltGroupId(0));
        let a = t.push("a");
        let b = t.push("b");
        assert_eq!((a, b), (AltGroupId(0), AltGroupId(1)));
        assert_eq!(t[b], "b");
        t[a] = "z";
        assert_eq!(t.get(a), Some(&"z"));
        assert_eq!(t.get(AltGroupId(2)), None);
        let ids: Vec<_> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(ids, [a, b]);
    }
}
