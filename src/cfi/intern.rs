//! The state interner: equal CFI states share one [`StateId`], so "same state" is a `u32`
//! comparison (the alternative merge, ORC generation, de-duplication).
//!
//! objtool: `cfi_hash_find_or_add()` and its `cfi_hash` table.

use super::state::CfiState;
use crate::ids::StateId;

/// Interned CFI states: equal states share one id.
#[derive(Default)]
pub struct StateTable {
    states: Vec<CfiState>,
    /// Each state's [`state_hash`] (the index grows without hashing the states again, and
    /// another table takes them over without hashing them at all).
    hashes: Vec<u64>,
    /// Ids hashed by their state (each state is stored once, in `states`).
    index: hashbrown::HashTable<StateId>,
}

/// The hash the interner files a state under.
pub fn state_hash(s: &CfiState) -> u64 {
    use std::hash::BuildHasher as _;
    rustc_hash::FxBuildHasher.hash_one(s)
}

impl StateTable {
    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &CfiState) -> StateId {
        self.intern_hashed(state_hash(s), s)
    }

    /// The id of `s` if it is interned (`hash` is [`state_hash`] of it).
    pub fn find_hashed(&self, hash: u64, s: &CfiState) -> Option<StateId> {
        let states = &self.states;
        self.index
            .find(hash, |&id| states[id.index()] == *s)
            .copied()
    }

    /// [`StateTable::intern`] with the hash already computed.
    pub fn intern_hashed(&mut self, hash: u64, s: &CfiState) -> StateId {
        if let Some(id) = self.find_hashed(hash, s) {
            return id;
        }
        let Some(id) = StateId::new(self.states.len() as u32) else {
            unreachable!("more than 4G states"); // one per instruction at most
        };
        self.states.push(s.clone());
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.index.insert_unique(hash, id, |&id| hashes[id.index()]);
        id
    }

    /// The states of `other`, in order, interned here: their ids in this table.
    pub fn intern_all(&mut self, other: &StateTable) -> Vec<StateId> {
        (other.states.iter().zip(&other.hashes))
            .map(|(s, &hash)| self.intern_hashed(hash, s))
            .collect()
    }

    /// Room for `n` more states.
    pub fn reserve(&mut self, n: usize) {
        self.states.reserve(n);
        self.hashes.reserve(n);
        let hashes = &self.hashes;
        self.index.reserve(n, |&id| hashes[id.index()]);
    }

    pub fn get(&self, id: StateId) -> &CfiState {
        &self.states[id.index()]
    }

    /// Number of distinct states.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The states in id order.
    pub fn states(&self) -> &[CfiState] {
        &self.states
    }
}

/// Reads interned states by id.
pub trait StateLookup {
    fn state(&self, id: StateId) -> &CfiState;
}

impl StateLookup for StateTable {
    fn state(&self, id: StateId) -> &CfiState {
        self.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_states_share_an_id_and_different_ones_do_not() {
        let mut t = StateTable::default();
        let a = t.intern(&CfiState::func_entry());
        let b = t.intern(&CfiState::blank());
        assert_ne!(a, b);
        assert_eq!(t.intern(&CfiState::func_entry()), a);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(b), &CfiState::blank());
        let mut c = CfiState::func_entry();
        c.stack_size += 8;
        assert_ne!(t.intern(&c), a);
        assert_eq!(t.len(), 3);
    }
}
