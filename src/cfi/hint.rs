//! The CFI states unwind hints give their instructions.
//!
//! objtool: the state part of `read_unwind_hints()`. objtool fills one scratch state hint
//! after hint: a hint of another type than FUNC or UNDEFINED sets the CFA, type and signal
//! of the state of the previous such hint (or of an earlier hint at the same instruction)
//! and keeps its other fields. Replayed here in file order, so the states are objtool's.

use rustc_hash::FxHashMap as HashMap;

use super::state::CfiState;
use crate::cfg::hints::Hint;
use crate::ids::InsnId;

/// The state of each hinted instruction (the last hint at an instruction wins).
pub fn hint_states(hints: &[(InsnId, Hint)]) -> HashMap<InsnId, CfiState> {
    let mut states = HashMap::default();
    let mut scratch = CfiState::blank();
    for &(id, hint) in hints {
        match hint {
            Hint::Undefined => {
                states.insert(id, CfiState::force_undefined());
            }
            Hint::Func => {
                states.insert(id, CfiState::func_entry());
            }
            Hint::Regs {
                base,
                offset,
                ty,
                signal,
            } => {
                if let Some(c) = states.get(&id) {
                    scratch = CfiState::clone(c);
                }
                scratch.cfa.base = base;
                scratch.cfa.offset = offset;
                scratch.ty = ty;
                scratch.signal = signal;
                states.insert(id, scratch.clone());
            }
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfi::state::{CFI_BP, CFI_SP, UNWIND_HINT_TYPE_CALL, UNWIND_HINT_TYPE_REGS};

    fn regs(base: i8, offset: i32, ty: u8) -> Hint {
        Hint::Regs {
            base,
            offset,
            ty,
            signal: false,
        }
    }

    #[test]
    fn a_regs_hint_keeps_the_previous_hints_other_fields() {
        let a = InsnId(1);
        let b = InsnId(7);
        let hints = [
            (a, regs(CFI_SP, 8, UNWIND_HINT_TYPE_REGS)),
            (b, regs(CFI_BP, 16, UNWIND_HINT_TYPE_CALL)),
        ];
        let mut first = CfiState::blank();
        first.cfa.base = CFI_SP;
        first.cfa.offset = 8;
        first.ty = UNWIND_HINT_TYPE_REGS;
        let states = hint_states(&hints);
        assert_eq!(states[&a], first);
        let mut second = first.clone();
        second.cfa.base = CFI_BP;
        second.cfa.offset = 16;
        second.ty = UNWIND_HINT_TYPE_CALL;
        assert_eq!(states[&b], second);
    }

    #[test]
    fn a_second_hint_at_an_instruction_starts_from_its_first() {
        let a = InsnId(3);
        let states = hint_states(&[
            (a, Hint::Func),
            (a, regs(CFI_SP, 24, UNWIND_HINT_TYPE_CALL)),
        ]);
        let mut want = CfiState::func_entry();
        want.cfa.offset = 24;
        assert_eq!(states[&a], want);
        assert_eq!(
            hint_states(&[(a, Hint::Undefined)])[&a],
            CfiState::force_undefined()
        );
    }
}
