//! Alternatives beyond objtool: the seed's merge rule ([`merge`]) and conflicts in words
//! ([`explain`]).
//!
//! objtool merges the states of all alternatives of a patch site into one array indexed by
//! byte offset (`propagate_alt_cfi()`), and only compares states that fall on the very same
//! offset. The check that every alternative also unwinds correctly with the merged table is
//! `orc::unwind_check` (it reads ORC entries).

pub mod explain;
pub mod merge;
