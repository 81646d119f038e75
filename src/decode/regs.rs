//! Register numbers as objtool numbers them: the hardware encoding (AX 0 … R15 15) plus RA
//! 16, and the pseudo-bases of a CFI location. The stack operations of decoded instructions
//! name registers by these numbers; the CFI state ([`crate::cfi::state`]) uses them too.
//! They appear in objtool's warnings (`cfa1=4+8`), so they are plain integers.

pub const CFI_AX: i8 = 0;
pub const CFI_CX: i8 = 1;
pub const CFI_DX: i8 = 2;
pub const CFI_BX: i8 = 3;
pub const CFI_SP: i8 = 4;
pub const CFI_BP: i8 = 5;
pub const CFI_SI: i8 = 6;
pub const CFI_DI: i8 = 7;
pub const CFI_R10: i8 = 10;
pub const CFI_R12: i8 = 12;
pub const CFI_R13: i8 = 13;
pub const CFI_R14: i8 = 14;
pub const CFI_R15: i8 = 15;
pub const CFI_RA: i8 = 16;
pub const CFI_NUM_REGS: usize = 17;

/// Pseudo-bases: not saved / unknown.
pub const CFI_UNDEFINED: i8 = -1;
/// Relative to the canonical frame address.
pub const CFI_CFA: i8 = -2;
/// CFA = `[SP]` + offset (stack swizzle).
pub const CFI_SP_INDIRECT: i8 = -3;
/// CFA = [BP + offset] (DRAP register spilled to the frame).
pub const CFI_BP_INDIRECT: i8 = -4;
