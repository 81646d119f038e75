//! x86-64 instruction classification: the bytes of one instruction → its kind, its
//! immediate and its stack operations, in objtool's vocabulary.
//!
//! objtool: `arch_decode_instruction()` (tools/objtool/arch/x86/decode.c). The rules are
//! about encodings (`89` and `8b` differ, `41 90` is a NOP), so they are applied to the raw
//! prefix/REX/opcode/ModRM/SIB bytes; iced-x86 supplies the length, the encoding kind and
//! the branch displacement. `classify` is a pure function of the bytes; the one rule that
//! needs the symbol table (`iret` inside a function) is applied by the caller.

use super::regs::{CFI_BP, CFI_SP};
use super::{InsnKind, Op, StackOp};

/// Diagnostics objtool prints while decoding (never counted as warnings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeNote {
    InvalidLea,
    Enqcmd,
    NotrackPrefix,
}

/// The classification of one instruction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classified {
    pub kind: InsnKind,
    /// The immediate operand (sign-extended), or 0: for relative branches the displacement.
    pub immediate: i64,
    pub ops: [Option<StackOp>; 2],
    pub note: Option<DecodeNote>,
    /// `cf` (iret): becomes `add $40,%rsp` inside a function, CONTEXT_SWITCH elsewhere.
    pub is_iret: bool,
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x66 | 0x67
    )
}

#[derive(Default)]
struct ModRm {
    present: bool,
    byte: u8,
    md: u8,
    reg: i8,
    rm: i8,
    sib: Option<(i8, i8)>, // (index, base)
    disp: i64,
}

impl ModRm {
    fn is_reg(&self) -> bool {
        self.md == 3
    }
    fn is_rip(&self) -> bool {
        (self.rm & 7) == CFI_BP && self.md == 0
    }
    fn have_sib(&self) -> bool {
        (self.rm & 7) == CFI_SP && self.md != 3
    }
    fn rm_is(&self, reg: i8) -> bool {
        match self.sib {
            Some((index, base)) if self.have_sib() => {
                base == reg && index == CFI_SP && (base != CFI_BP || self.md != 0)
            }
            _ => self.rm == reg,
        }
    }
    fn rm_is_mem(&self, reg: i8) -> bool {
        self.md != 3 && !self.is_rip() && self.rm_is(reg)
    }
    fn rm_is_reg(&self, reg: i8) -> bool {
        self.md == 3 && self.rm == reg
    }
    /// The base register of a memory operand without an index ("skip nontrivial SIB").
    fn simple_base(&self) -> Option<i8> {
        if self.is_rip() {
            return None;
        }
        match self.sib {
            Some((index, base)) if self.have_sib() => (index == CFI_SP).then_some(base),
            _ => Some(self.rm),
        }
    }
}

/// Opcode bytes that are followed by a ModRM byte among those the rules look at.
fn has_modrm(op1: u8, op2: u8) -> bool {
    match op1 {
        0x01 | 0x29 | 0x80..=0x83 | 0x88 | 0x89 | 0x8b | 0x8d | 0x8f | 0xff => true,
        0x0f => matches!(op2, 0x01 | 0x1e | 0x1f | 0x0d | 0xb9),
        _ => false,
    }
}

fn reg_op(reg: i8) -> Op {
    Op::Reg(reg)
}

/// Classifies one instruction. `bytes` are exactly its bytes; `legacy` is false for
/// VEX/EVEX/XOP-encoded instructions (which have no stack effect); `branch_disp` is the
/// displacement of a relative branch as decoded.
pub fn classify(bytes: &[u8], legacy: bool, immediate: i64) -> Classified {
    let mut c = Classified {
        immediate,
        ..Default::default()
    };
    if !legacy {
        return c;
    }
    let mut i = 0;
    let mut first_prefix = 0u8;
    let mut last_prefix = 0u8;
    let mut notrack = false;
    let mut nprefixes = 0;
    while i < bytes.len() && is_legacy_prefix(bytes[i]) {
        if nprefixes == 0 {
            first_prefix = bytes[i];
        }
        last_prefix = bytes[i];
        notrack |= bytes[i] == 0x3e;
        nprefixes += 1;
        i += 1;
    }
    let (mut rex_w, mut rex_r, mut rex_x, mut rex_b) = (false, 0i8, 0i8, 0i8);
    if i < bytes.len() && bytes[i] & 0xf0 == 0x40 {
        let rex = bytes[i];
        rex_w = rex & 8 != 0;
        rex_r = ((rex >> 2) & 1) as i8;
        rex_x = ((rex >> 1) & 1) as i8;
        rex_b = (rex & 1) as i8;
        i += 1;
    }
    let Some(&op1) = bytes.get(i) else {
        return c;
    };
    i += 1;
    let (mut op2, mut op3) = (0u8, 0u8);
    if op1 == 0x0f {
        op2 = bytes.get(i).copied().unwrap_or(0);
        i += 1;
        if op2 == 0x38 || op2 == 0x3a {
            op3 = bytes.get(i).copied().unwrap_or(0);
            i += 1;
        }
    }
    let mut m = ModRm::default();
    if has_modrm(op1, op2) {
        if let Some(&b) = bytes.get(i) {
            i += 1;
            m.present = true;
            m.byte = b;
            m.md = b >> 6;
            m.reg = ((b >> 3) & 7) as i8 + 8 * rex_r;
            m.rm = (b & 7) as i8 + 8 * rex_b;
            if m.have_sib() {
                if let Some(&s) = bytes.get(i) {
                    i += 1;
                    m.sib = Some((((s >> 3) & 7) as i8 + 8 * rex_x, (s & 7) as i8 + 8 * rex_b));
                }
            }
            let sib_base_low = m.sib.map(|(_, b)| b & 7);
            let disp_len = match m.md {
                1 => 1,
                2 => 4,
                0 if (m.rm & 7) == 5 || (m.have_sib() && sib_base_low == Some(5)) => 4,
                _ => 0,
            };
            m.disp = match disp_len {
                1 => bytes.get(i).map_or(0, |&b| i64::from(b as i8)),
                4 => bytes.get(i..i + 4).map_or(0, |b| {
                    i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }),
                _ => 0,
            };
        }
    }
    let push = |src: Op| {
        Some(StackOp {
            dest: Op::Push,
            src,
        })
    };
    let pop_to = |dest: Op| Some(StackOp { dest, src: Op::Pop });
    let mut ops: [Option<StackOp>; 2] = [None, None];
    let kind = &mut c.kind;

    match op1 {
        0x01 | 0x29 if rex_w && m.rm_is_reg(CFI_SP) => {
            ops[0] = Some(StackOp {
                dest: Op::Reg(CFI_SP),
                src: Op::Add(m.reg, 0),
            });
        }
        0x50..=0x57 => ops[0] = push(reg_op((op1 & 7) as i8 + 8 * rex_b)),
        0x58..=0x5f => ops[0] = pop_to(reg_op((op1 & 7) as i8 + 8 * rex_b)),
        0x68 | 0x6a => ops[0] = push(Op::Const),
        0x70..=0x7f | 0xe0..=0xe3 => *kind = InsnKind::JumpConditional,
        0x80..=0x83 if rex_w && m.rm_is_reg(CFI_SP) => {
            // The immediate is the instruction's last 1 (80, 82, 83) or 4 (81) bytes.
            let imm = if op1 == 0x81 {
                bytes
                    .len()
                    .checked_sub(4)
                    .and_then(|s| bytes.get(s..))
                    .map_or(0, |b| {
                        i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    })
            } else {
                bytes.last().map_or(0, |&b| i64::from(b as i8))
            };
            match m.reg & 7 {
                0 | 5 => {
                    let k = if m.reg & 7 == 5 {
                        imm.wrapping_neg()
                    } else {
                        imm
                    };
                    ops[0] = Some(StackOp {
                        dest: Op::Reg(CFI_SP),
                        src: Op::Add(CFI_SP, k as i32),
                    });
                }
                4 => {
                    ops[0] = Some(StackOp {
                        dest: Op::Reg(CFI_SP),
                        src: Op::And(CFI_SP, imm as i32),
                    })
                }
                _ => {}
            }
        }
        0x89 if rex_w => {
            if m.is_reg() {
                ops[0] = Some(StackOp {
                    dest: Op::Reg(m.rm),
                    src: Op::Reg(m.reg),
                });
            } else if let Some(base) = m.simple_base() {
                // objtool re-tests the base after replacing rm with the SIB base: a base
                // with low bits 101 and mod 0 means "no base".
                let has_base = !((base & 7) == 5 && m.md == 0);
                let store = |b: i8| {
                    Some(StackOp {
                        dest: Op::RegIndirect(b, m.disp as i32),
                        src: Op::Reg(m.reg),
                    })
                };
                if m.reg == CFI_SP {
                    ops[0] = Some(StackOp {
                        dest: Op::RegIndirect(base, m.disp as i32),
                        src: Op::Reg(CFI_SP),
                    });
                } else if has_base && base == CFI_BP {
                    ops[0] = store(CFI_BP);
                } else if has_base && base == CFI_SP {
                    ops[0] = store(CFI_SP);
                }
            }
        }
        0x88 if rex_w => {
            for base in [CFI_BP, CFI_SP] {
                if m.rm_is_mem(base) {
                    ops[0] = Some(StackOp {
                        dest: Op::RegIndirect(base, m.disp as i32),
                        src: Op::Reg(m.reg),
                    });
                    break;
                }
            }
        }
        0x8b if rex_w => {
            for base in [CFI_BP, CFI_SP] {
                if m.rm_is_mem(base) {
                    ops[0] = Some(StackOp {
                        dest: Op::Reg(m.reg),
                        src: Op::RegIndirect(base, m.disp as i32),
                    });
                    break;
                }
            }
        }
        0x8d => {
            if m.is_reg() {
                c.note = Some(DecodeNote::InvalidLea);
            } else if rex_w {
                if let Some(base) = m.simple_base() {
                    let src = if m.disp == 0 {
                        Op::Reg(base)
                    } else {
                        Op::Add(base, m.disp as i32)
                    };
                    ops[0] = Some(StackOp {
                        dest: Op::Reg(m.reg),
                        src,
                    });
                }
            }
        }
        0x8f => {
            ops[0] = Some(StackOp {
                dest: Op::Mem,
                src: Op::Pop,
            })
        }
        0x90 => *kind = InsnKind::Nop,
        0x9c => {
            ops[0] = Some(StackOp {
                dest: Op::PushF,
                src: Op::Const,
            })
        }
        0x9d => {
            ops[0] = Some(StackOp {
                dest: Op::Mem,
                src: Op::PopF,
            })
        }
        0x0f => match op2 {
            0x01 if m.present => {
                if last_prefix == 0xf3 || last_prefix == 0xf2 {
                    if m.byte == 0xca {
                        *kind = InsnKind::ContextSwitch; // eretu / erets
                    }
                } else if m.byte == 0xca {
                    *kind = InsnKind::Clac;
                } else if m.byte == 0xcb {
                    *kind = InsnKind::Stac;
                }
            }
            0x80..=0x8f => *kind = InsnKind::JumpConditional,
            0x05 | 0x07 | 0x34 | 0x35 => *kind = InsnKind::ContextSwitch,
            0x0b | 0xb9 => *kind = InsnKind::Bug,
            0x0d | 0x1f => *kind = InsnKind::Nop,
            0x1e if first_prefix == 0xf3 && m.present && (m.byte == 0xfa || m.byte == 0xfb) => {
                *kind = InsnKind::Endbr;
            }
            0x38 if op3 == 0xf8 && nprefixes == 1 && first_prefix == 0xf2 => {
                c.note = Some(DecodeNote::Enqcmd);
            }
            0xa0 | 0xa8 => ops[0] = push(Op::Const),
            0xa1 | 0xa9 => {
                ops[0] = Some(StackOp {
                    dest: Op::Mem,
                    src: Op::Pop,
                })
            }
            _ => {}
        },
        0xc9 => {
            ops[0] = Some(StackOp {
                dest: Op::Reg(CFI_SP),
                src: Op::Reg(CFI_BP),
            });
            ops[1] = pop_to(Op::Reg(CFI_BP));
        }
        0xcc => *kind = InsnKind::Trap,
        0xe9 | 0xeb => *kind = InsnKind::JumpUnconditional,
        0xc2 | 0xc3 => *kind = InsnKind::Return,
        0xcf => {
            c.is_iret = true;
            *kind = InsnKind::ContextSwitch;
        }
        0xca | 0xcb => *kind = InsnKind::ContextSwitch,
        0xe8 => {
            *kind = InsnKind::Call;
            ops[0] = push(Op::Const);
        }
        0xfc => *kind = InsnKind::Cld,
        0xfd => *kind = InsnKind::Std,
        0xff if m.present => match m.reg {
            2 | 3 => {
                *kind = InsnKind::CallDynamic;
                if notrack {
                    c.note = Some(DecodeNote::NotrackPrefix);
                }
            }
            4 => {
                *kind = InsnKind::JumpDynamic;
                if notrack {
                    c.note = Some(DecodeNote::NotrackPrefix);
                }
            }
            5 => *kind = InsnKind::ContextSwitch,
            6 => ops[0] = push(Op::Const),
            _ => {}
        },
        _ => {}
    }
    c.ops = ops;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::regs::{CFI_BP, CFI_BX, CFI_SP};

    fn kind(bytes: &[u8]) -> InsnKind {
        classify(bytes, true, 0).kind
    }

    fn ops(bytes: &[u8]) -> Vec<StackOp> {
        classify(bytes, true, 0).ops.into_iter().flatten().collect()
    }

    /// One row per instruction type of objtool's `arch_decode_instruction()`.
    #[test]
    fn instruction_types() {
        assert_eq!(kind(&[0xc3]), InsnKind::Return);
        assert_eq!(kind(&[0xe8, 0, 0, 0, 0]), InsnKind::Call);
        assert_eq!(kind(&[0xff, 0xd0]), InsnKind::CallDynamic); // call *%rax
        assert_eq!(kind(&[0xff, 0xe0]), InsnKind::JumpDynamic); // jmp *%rax
        assert_eq!(kind(&[0xe9, 0, 0, 0, 0]), InsnKind::JumpUnconditional);
        assert_eq!(kind(&[0xeb, 0]), InsnKind::JumpUnconditional);
        assert_eq!(kind(&[0x74, 0]), InsnKind::JumpConditional);
        assert_eq!(kind(&[0x0f, 0x84, 0, 0, 0, 0]), InsnKind::JumpConditional);
        assert_eq!(kind(&[0x90]), InsnKind::Nop);
        assert_eq!(kind(&[0x0f, 0x1f, 0x00]), InsnKind::Nop);
        assert_eq!(kind(&[0x0f, 0x0b]), InsnKind::Bug); // ud2
        assert_eq!(kind(&[0xcc]), InsnKind::Trap);
        assert_eq!(kind(&[0x0f, 0x05]), InsnKind::ContextSwitch); // syscall
        assert_eq!(kind(&[0x0f, 0x01, 0xca]), InsnKind::Clac);
        assert_eq!(kind(&[0x0f, 0x01, 0xcb]), InsnKind::Stac);
        assert_eq!(kind(&[0xfc]), InsnKind::Cld);
        assert_eq!(kind(&[0xfd]), InsnKind::Std);
        assert_eq!(kind(&[0xf3, 0x0f, 0x1e, 0xfa]), InsnKind::Endbr);
        // VEX-encoded instructions have no stack effect
        assert_eq!(classify(&[0xc3], false, 0).kind, InsnKind::Other);
    }

    #[test]
    fn stack_operations() {
        // push %rbp; pop %rbx
        assert_eq!(
            ops(&[0x55]),
            [StackOp {
                dest: Op::Push,
                src: Op::Reg(CFI_BP)
            }]
        );
        assert_eq!(
            ops(&[0x5b]),
            [StackOp {
                dest: Op::Reg(CFI_BX),
                src: Op::Pop
            }]
        );
        // sub $0x18,%rsp: rsp = rsp + (-0x18)
        assert_eq!(
            ops(&[0x48, 0x83, 0xec, 0x18]),
            [StackOp {
                dest: Op::Reg(CFI_SP),
                src: Op::Add(CFI_SP, -0x18)
            }]
        );
        // mov %rsp,%rbp
        assert_eq!(
            ops(&[0x48, 0x89, 0xe5]),
            [StackOp {
                dest: Op::Reg(CFI_BP),
                src: Op::Reg(CFI_SP)
            }]
        );
        // leave: mov %rbp,%rsp; pop %rbp
        assert_eq!(
            ops(&[0xc9]),
            [
                StackOp {
                    dest: Op::Reg(CFI_SP),
                    src: Op::Reg(CFI_BP)
                },
                StackOp {
                    dest: Op::Reg(CFI_BP),
                    src: Op::Pop
                }
            ]
        );
        // pushf / popf
        assert_eq!(ops(&[0x9c])[0].dest, Op::PushF);
        assert_eq!(ops(&[0x9d])[0].src, Op::PopF);
        // an add that does not touch %rsp has none
        assert!(ops(&[0x48, 0x01, 0xc3]).is_empty());
    }
}
