//! CFI: the stack state model, its update rules and the validation walk.

pub mod apply;
pub mod state;
pub mod walk;
