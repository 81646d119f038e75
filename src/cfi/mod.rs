//! CFI: the stack state model, its update rules, the state interner and the walk.

pub mod apply;
pub mod hint;
pub mod intern;
pub mod state;
pub mod walk;
