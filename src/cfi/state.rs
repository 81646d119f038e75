//! The CFI state: where the caller's frame is and where its registers were saved.
//!
//! objtool: `struct cfi_state` (tools/objtool/include/objtool/cfi.h). Register numbers are
//! the hardware encoding (AX 0 … R15 15) plus RA 16; bases may also be the pseudo-registers
//! below. The numbers appear in objtool's warnings (`cfa1=4+8`), so they are kept as plain
//! integers with named constants rather than an enum.

use std::fmt;

pub use crate::cfg::hints::{
    UNWIND_HINT_TYPE_CALL, UNWIND_HINT_TYPE_END_OF_STACK, UNWIND_HINT_TYPE_FUNC,
    UNWIND_HINT_TYPE_REGS, UNWIND_HINT_TYPE_REGS_PARTIAL, UNWIND_HINT_TYPE_RESTORE,
    UNWIND_HINT_TYPE_SAVE, UNWIND_HINT_TYPE_UNDEFINED,
};
pub use crate::decode::regs::*;
use crate::report::StateMismatch;

/// A location: `base` (a register number or a pseudo-base) plus `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Loc {
    pub base: i8,
    pub offset: i32,
}

impl Loc {
    pub const UNDEFINED: Loc = Loc {
        base: CFI_UNDEFINED,
        offset: 0,
    };

    pub const fn new(base: i8, offset: i32) -> Self {
        Loc { base, offset }
    }
}

impl fmt::Display for Loc {
    /// `4+8`, `-1+0`, `-2-16`: objtool's `%d%+d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:+}", self.base, self.offset)
    }
}

/// The full CFI state. `Eq`/`Hash` compare every field: that is objtool's `cficmp`, used
/// for interning and for the alternative-group arrays; the merge-point comparison is the
/// narrower [`cfi_match`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfiState {
    pub cfa: Loc,
    pub regs: [Loc; CFI_NUM_REGS],
    pub vals: [Loc; CFI_NUM_REGS],
    pub stack_size: i32,
    pub drap_reg: i8,
    pub drap_offset: i32,
    pub ty: u8,
    pub bp_scratch: bool,
    pub drap: bool,
    pub signal: bool,
    pub end: bool,
    pub force_undefined: bool,
}

/// Hashes every field like a derived `Hash` would, but two locations per 64-bit word (the
/// interner hashes a state at every instruction that changed it; a derived hash writes 70
/// small values). Equal states hash equally; the folding only costs collisions between
/// states with very large offsets.
impl std::hash::Hash for CfiState {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let pack = |a: &Loc, b: &Loc| {
            u64::from(a.base as u8)
                | u64::from(b.base as u8) << 8
                | u64::from(a.offset as u32) << 16 ^ u64::from(b.offset as u32) << 40
        };
        for (a, b) in self.regs.iter().zip(&self.vals) {
            h.write_u64(pack(a, b));
        }
        h.write_u64(pack(&self.cfa, &Loc::new(self.drap_reg, self.drap_offset)));
        h.write_u64(
            u64::from(self.stack_size as u32)
                | u64::from(self.ty) << 32
                | u64::from(self.bp_scratch) << 40
                | u64::from(self.drap) << 41
                | u64::from(self.signal) << 42
                | u64::from(self.end) << 43
                | u64::from(self.force_undefined) << 44,
        );
    }
}

/// Registers whose saves are tracked.
pub fn is_callee_saved(reg: i8) -> bool {
    matches!(reg, CFI_BP | CFI_BX | CFI_R12 | CFI_R13 | CFI_R14 | CFI_R15)
}

impl CfiState {
    /// objtool's `init_cfi_state`: everything undefined.
    pub const fn blank() -> Self {
        CfiState {
            cfa: Loc::UNDEFINED,
            regs: [Loc::UNDEFINED; CFI_NUM_REGS],
            vals: [Loc::UNDEFINED; CFI_NUM_REGS],
            stack_size: 0,
            drap_reg: CFI_UNDEFINED,
            drap_offset: -1,
            ty: UNWIND_HINT_TYPE_UNDEFINED,
            bp_scratch: false,
            drap: false,
            signal: false,
            end: false,
            force_undefined: false,
        }
    }

    /// The state on function entry: CFA = SP + 8, return address at CFA − 8.
    pub const fn func_entry() -> Self {
        let mut s = CfiState::blank();
        s.cfa = Loc::new(CFI_SP, 8);
        s.regs[CFI_RA as usize] = Loc::new(CFI_CFA, -8);
        s.stack_size = 8;
        s.ty = UNWIND_HINT_TYPE_CALL;
        s
    }

    /// The UNWIND_HINT_UNDEFINED state.
    pub const fn force_undefined() -> Self {
        let mut s = CfiState::blank();
        s.force_undefined = true;
        s
    }

    /// The reference register rules of a function entry (`initial_func_cfi.regs`).
    pub const fn initial_reg(reg: usize) -> Loc {
        if reg == CFI_RA as usize {
            Loc::new(CFI_CFA, -8)
        } else {
            Loc::UNDEFINED
        }
    }

    /// objtool: `has_modified_stack_frame()`.
    pub fn has_modified_stack_frame(&self) -> bool {
        if self.cfa.base != CFI_SP || self.cfa.offset != 8 || self.drap || self.stack_size != 8 {
            return true;
        }
        (0..CFI_NUM_REGS).any(|i| self.regs[i] != Self::initial_reg(i))
    }

    /// objtool: `has_valid_stack_frame()`.
    pub fn has_valid_stack_frame(&self) -> bool {
        let bp = self.regs[CFI_BP as usize];
        let ra = self.regs[CFI_RA as usize];
        (self.cfa.base == CFI_BP
            && bp == Loc::new(CFI_CFA, self.cfa.offset.wrapping_neg())
            && ra == Loc::new(CFI_CFA, self.cfa.offset.wrapping_neg().wrapping_add(8)))
            || (self.drap && bp.base == CFI_BP)
    }
}

impl From<Loc> for crate::report::CfiLoc {
    fn from(l: Loc) -> Self {
        crate::report::CfiLoc {
            base: l.base,
            offset: l.offset,
        }
    }
}

/// objtool: `insn_cfi_match()` — the comparison at a merge point: cfa, then the register
/// rules (lowest index first), then type, then DRAP. `stack_size`, `vals` and the flags are
/// not compared.
pub fn cfi_match(recorded: &CfiState, incoming: &CfiState) -> Option<StateMismatch> {
    if recorded.cfa != incoming.cfa {
        return Some(StateMismatch::Cfa(recorded.cfa.into(), incoming.cfa.into()));
    }
    if let Some(i) = (0..CFI_NUM_REGS).find(|&i| recorded.regs[i] != incoming.regs[i]) {
        return Some(StateMismatch::Reg(
            i,
            recorded.regs[i].into(),
            incoming.regs[i].into(),
        ));
    }
    if recorded.ty != incoming.ty {
        return Some(StateMismatch::Type(recorded.ty, incoming.ty));
    }
    if recorded.drap != incoming.drap
        || (recorded.drap
            && (recorded.drap_reg != incoming.drap_reg
                || recorded.drap_offset != incoming.drap_offset))
    {
        return Some(StateMismatch::Drap(
            (recorded.drap, recorded.drap_reg, recorded.drap_offset),
            (incoming.drap, incoming.drap_reg, incoming.drap_offset),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_texts() {
        let a = CfiState::func_entry();
        let mut b = a.clone();
        b.cfa.offset = 16;
        assert_eq!(cfi_match(&a, &b).unwrap().to_string(), "cfa1=4+8 cfa2=4+16");
        let mut b = a.clone();
        b.regs[CFI_BX as usize] = Loc::new(CFI_CFA, -16);
        assert_eq!(
            cfi_match(&a, &b).unwrap().to_string(),
            "reg1[3]=-1+0 reg2[3]=-2-16"
        );
        let mut b = a.clone();
        b.ty = 3;
        assert_eq!(cfi_match(&a, &b).unwrap().to_string(), "type1=2 type2=3");
        let mut b = a.clone();
        b.stack_size = 99;
        b.vals[3] = Loc::new(CFI_CFA, 0);
        assert_eq!(cfi_match(&a, &b), None);
        assert_ne!(a, b);
    }

    #[test]
    fn frames() {
        let s = CfiState::func_entry();
        assert!(!s.has_modified_stack_frame());
        assert!(!s.has_valid_stack_frame());
        let mut f = s.clone();
        f.cfa = Loc::new(CFI_BP, 16);
        f.regs[CFI_BP as usize] = Loc::new(CFI_CFA, -16);
        f.stack_size = 16;
        assert!(f.has_modified_stack_frame());
        assert!(f.has_valid_stack_frame());
    }
}
