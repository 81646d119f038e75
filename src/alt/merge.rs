//! The seed: how the states of a patch site's alternatives are merged into one array.
//!
//! objtool: `propagate_alt_cfi()`. Every alternative of a site shares one array with a slot
//! per byte of the original; the first instruction to reach a byte offset fills its slot,
//! every later one must bring the same state, otherwise objtool warns "stack layout
//! conflict in alternatives". States are interned, so "the same" is an id comparison.
//!
//! This module depends on [`crate::ids`] only: the walk calls [`record`] and hands the
//! conflicts back as [`AltConflict`] data, which [`super::explain`] renders after the walk.

use crate::ids::{AltGroupId, InsnId, StateId};

/// What [`record`] did with a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The slot was empty: it holds the state now.
    Took,
    /// The slot already held the same state.
    Agreed,
    /// The slot holds another state (left as it was).
    Conflict { previous: StateId },
}

/// objtool: the core of `propagate_alt_cfi()` for one byte offset of a site.
pub fn record(slot: &mut Option<StateId>, state: StateId) -> Merge {
    match *slot {
        None => {
            *slot = Some(state);
            Merge::Took
        }
        Some(previous) if previous == state => Merge::Agreed,
        Some(previous) => Merge::Conflict { previous },
    }
}

/// Two alternatives of a site that need different states at one byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltConflict {
    pub group: AltGroupId,
    /// Byte offset in the site.
    pub offset: u32,
    /// The instruction whose state is in the merged array (when known).
    pub first: Option<InsnId>,
    pub first_state: StateId,
    /// The instruction that disagreed.
    pub second: InsnId,
    pub second_state: StateId,
    /// Whether its warning was shown (objtool prints one warning per function): only
    /// those get an explanation.
    pub shown: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(i: u32) -> StateId {
        StateId::new(i).unwrap()
    }

    #[test]
    fn empty_slot_takes_the_state() {
        let mut slot = None;
        assert_eq!(record(&mut slot, s(3)), Merge::Took);
        assert_eq!(slot, Some(s(3)));
    }

    #[test]
    fn filled_slot_agrees_with_the_same_state() {
        let mut slot = Some(s(3));
        assert_eq!(record(&mut slot, s(3)), Merge::Agreed);
        assert_eq!(slot, Some(s(3)));
    }

    #[test]
    fn filled_slot_reports_a_different_state_and_keeps_its_own() {
        let mut slot = Some(s(3));
        assert_eq!(record(&mut slot, s(4)), Merge::Conflict { previous: s(3) });
        assert_eq!(slot, Some(s(3)));
    }

    #[test]
    fn first_state_wins_over_a_sequence() {
        // the order of arrival decides which state is kept (objtool's visiting order)
        let mut slot = None;
        let results: Vec<_> = [s(1), s(1), s(2), s(1)]
            .into_iter()
            .map(|x| record(&mut slot, x))
            .collect();
        assert_eq!(
            results,
            [
                Merge::Took,
                Merge::Agreed,
                Merge::Conflict { previous: s(1) },
                Merge::Agreed
            ]
        );
    }
}
