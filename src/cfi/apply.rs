//! Applying one stack operation to the CFI state.
//!
//! objtool: `update_cfi_state()` and `update_cfi_state_regs()` (check.c); the rules are
//! listed in the behaviour spec, cfi-validation.md §7.7. An `Err` carries objtool's warning
//! text; the walk reports it at the instruction and abandons the path.

use super::state::*;
use crate::decode::{Op, StackOp};

/// What the rules need to know about the instruction besides the state.
#[derive(Clone, Copy, Debug)]
pub struct OpContext {
    /// The instruction belongs to a function (objtool's `insn_func(insn)`).
    pub in_func: bool,
    /// The next instruction to validate carries an unwind hint.
    pub next_is_hint: bool,
    /// `--stackval` (tracks BP used as a scratch register).
    pub stackval: bool,
}

fn save_reg(cfi: &mut CfiState, reg: i8, base: i8, offset: i32) {
    if is_callee_saved(reg) && cfi.regs[reg as usize].base == CFI_UNDEFINED {
        cfi.regs[reg as usize] = Loc::new(base, offset);
    }
}

fn restore_reg(cfi: &mut CfiState, reg: i8) {
    cfi.regs[reg as usize] = CfiState::initial_reg(reg as usize);
}

/// The regs-frame rule: inside REGS / REGS_PARTIAL frames only SP-relative CFA offsets move.
fn update_regs_frame(cfi: &mut CfiState, op: &StackOp) {
    if cfi.cfa.base != CFI_SP && cfi.cfa.base != CFI_SP_INDIRECT {
        return;
    }
    if matches!(op.dest, Op::Push | Op::PushF) {
        cfi.cfa.offset = cfi.cfa.offset.wrapping_add(8);
    }
    if matches!(op.src, Op::Pop | Op::PopF) {
        cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
    }
    if let (Op::Reg(CFI_SP), Op::Add(CFI_SP, k)) = (op.dest, op.src) {
        cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(k);
    }
}

/// Applies `op`; `Err(text)` is a warning that ends the path.
pub fn apply(cfi: &mut CfiState, op: &StackOp, cx: OpContext) -> Result<(), &'static str> {
    if cfi.force_undefined {
        return Ok(());
    }
    if cfi.cfa.base == CFI_UNDEFINED {
        return if cx.in_func {
            Err("undefined stack state")
        } else {
            Ok(())
        };
    }
    if cfi.ty == UNWIND_HINT_TYPE_REGS || cfi.ty == UNWIND_HINT_TYPE_REGS_PARTIAL {
        update_regs_frame(cfi, op);
        return Ok(());
    }
    match op.dest {
        Op::Reg(d) => apply_to_reg(cfi, d, op.src, cx),
        Op::Push | Op::PushF => {
            cfi.stack_size = cfi.stack_size.wrapping_add(8);
            if cfi.cfa.base == CFI_SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_add(8);
            }
            let Op::Reg(s) = op.src else {
                return Ok(());
            };
            if cfi.drap {
                if s == cfi.cfa.base && s == cfi.drap_reg {
                    cfi.cfa = Loc::new(CFI_BP_INDIRECT, cfi.stack_size.wrapping_neg());
                    cfi.drap_offset = cfi.stack_size.wrapping_neg();
                } else if s == CFI_BP && cfi.cfa.base == cfi.drap_reg {
                    cfi.stack_size = 0;
                } else {
                    let off = cfi.stack_size.wrapping_neg();
                    save_reg(cfi, s, CFI_BP, off);
                }
            } else {
                let off = cfi.stack_size.wrapping_neg();
                save_reg(cfi, s, CFI_CFA, off);
            }
            if cx.stackval && cx.in_func && s == CFI_BP && cfi.cfa.base != CFI_BP {
                cfi.bp_scratch = true;
            }
            Ok(())
        }
        Op::RegIndirect(b, k) => {
            let Op::Reg(s) = op.src else {
                return Ok(());
            };
            if cfi.drap {
                if s == cfi.cfa.base && s == cfi.drap_reg {
                    cfi.cfa = Loc::new(CFI_BP_INDIRECT, k);
                    cfi.drap_offset = k;
                } else {
                    save_reg(cfi, s, CFI_BP, k);
                }
            } else if b == cfi.cfa.base {
                let off = k.wrapping_sub(cfi.cfa.offset);
                save_reg(cfi, s, CFI_CFA, off);
            } else if b == CFI_SP {
                let off = k.wrapping_sub(cfi.stack_size);
                save_reg(cfi, s, CFI_CFA, off);
            } else if s == CFI_SP && k == 0 {
                cfi.vals[b as usize] = Loc::new(CFI_SP_INDIRECT, cfi.cfa.offset);
            }
            Ok(())
        }
        Op::Mem => {
            if !matches!(op.src, Op::Pop | Op::PopF) {
                return Err("unknown stack-related memory operation");
            }
            cfi.stack_size = cfi.stack_size.wrapping_sub(8);
            if cfi.cfa.base == CFI_SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
            }
            Ok(())
        }
        _ => Err("unknown stack-related instruction"),
    }
}

fn apply_to_reg(cfi: &mut CfiState, d: i8, src: Op, cx: OpContext) -> Result<(), &'static str> {
    let bp_frame_pos = |cfi: &CfiState| {
        cfi.regs[CFI_BP as usize] == Loc::new(CFI_CFA, cfi.cfa.offset.wrapping_neg())
    };
    match src {
        Op::Reg(s) => {
            if s == CFI_SP && d == CFI_BP && cfi.cfa.base == CFI_SP && bp_frame_pos(cfi) {
                // mov %rsp, %rbp after push %rbp
                cfi.cfa.base = d;
                cfi.bp_scratch = false;
            } else if s == CFI_SP && d == CFI_BP && cfi.drap {
                cfi.regs[CFI_BP as usize] = Loc::new(CFI_BP, cfi.stack_size.wrapping_neg());
                cfi.bp_scratch = false;
            } else if s == CFI_SP && cfi.cfa.base == CFI_SP {
                cfi.vals[d as usize] = Loc::new(CFI_CFA, cfi.stack_size.wrapping_neg());
            } else if s == CFI_BP
                && d == CFI_SP
                && (cfi.cfa.base == CFI_BP || cfi.cfa.base == cfi.drap_reg)
            {
                cfi.stack_size = cfi.regs[CFI_BP as usize].offset.wrapping_neg();
            } else if d == cfi.cfa.base {
                let v = cfi.vals[s as usize];
                if cfi.cfa.base == CFI_SP && v.base == CFI_CFA {
                    cfi.cfa.offset = v.offset.wrapping_neg();
                    cfi.stack_size = cfi.cfa.offset;
                } else if cfi.cfa.base == CFI_SP
                    && v.base == CFI_SP_INDIRECT
                    && v.offset == cfi.cfa.offset
                {
                    cfi.cfa.base = CFI_SP_INDIRECT;
                } else {
                    cfi.cfa = Loc::UNDEFINED;
                }
            } else if d == CFI_SP
                && cfi.vals[s as usize].base == CFI_SP_INDIRECT
                && cfi.vals[s as usize].offset == cfi.cfa.offset
            {
                cfi.stack_size = cfi.stack_size.wrapping_add(8);
            } else if cfi.vals[s as usize].base == CFI_CFA {
                cfi.vals[d as usize] = Loc::new(CFI_CFA, cfi.vals[s as usize].offset);
            }
            Ok(())
        }
        Op::Add(s, k) => {
            if d == CFI_SP && s == CFI_SP {
                cfi.stack_size = cfi.stack_size.wrapping_sub(k);
                if cfi.cfa.base == CFI_SP {
                    cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(k);
                }
                return Ok(());
            }
            // (the LoongArch frame-pointer case never applies on x86)
            if d == CFI_SP && s == CFI_BP {
                if !(cfi.cfa.base == CFI_BP && cfi.cfa.offset == 0) {
                    cfi.stack_size = k
                        .wrapping_add(cfi.regs[CFI_BP as usize].offset)
                        .wrapping_neg();
                }
                return Ok(());
            }
            if s == CFI_SP && cfi.cfa.base == CFI_SP {
                // lea disp(%rsp), %reg
                cfi.drap_reg = d;
                cfi.vals[d as usize] =
                    Loc::new(CFI_CFA, cfi.stack_size.wrapping_neg().wrapping_add(k));
                return Ok(());
            }
            if cfi.drap && d == CFI_SP && s == cfi.drap_reg {
                // lea disp(%drap), %rsp
                cfi.cfa = Loc::new(CFI_SP, k.wrapping_neg());
                cfi.stack_size = k.wrapping_neg();
                cfi.drap_reg = CFI_UNDEFINED;
                cfi.drap = false;
                return Ok(());
            }
            if d == cfi.cfa.base && !cx.next_is_hint {
                return Err("unsupported stack register modification");
            }
            Ok(())
        }
        Op::And(_, _) => {
            if d != CFI_SP
                || (cfi.drap_reg != CFI_UNDEFINED && cfi.cfa.base != CFI_SP)
                || (cfi.drap_reg == CFI_UNDEFINED && cfi.cfa.base != CFI_BP)
            {
                return Err("unsupported stack pointer realignment");
            }
            if cfi.drap_reg != CFI_UNDEFINED {
                cfi.cfa = Loc::new(cfi.drap_reg, 0);
                cfi.stack_size = 0;
                cfi.drap = true;
            }
            Ok(())
        }
        Op::Pop | Op::PopF => {
            if d == CFI_SP && cfi.cfa.base == CFI_SP_INDIRECT {
                cfi.cfa.base = CFI_SP;
                return Ok(());
            }
            if !cfi.drap && d == cfi.cfa.base {
                cfi.cfa.base = CFI_SP;
            }
            if cfi.drap
                && cfi.cfa.base == CFI_BP_INDIRECT
                && d == cfi.drap_reg
                && cfi.drap_offset == cfi.stack_size.wrapping_neg()
            {
                cfi.cfa = Loc::new(cfi.drap_reg, 0);
                cfi.drap_offset = -1;
            } else if cfi.stack_size == cfi.regs[d as usize].offset.wrapping_neg() {
                restore_reg(cfi, d);
            }
            cfi.stack_size = cfi.stack_size.wrapping_sub(8);
            if cfi.cfa.base == CFI_SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
            }
            Ok(())
        }
        Op::RegIndirect(s, k) => {
            if !cfi.drap && d == cfi.cfa.base && d == CFI_BP {
                cfi.cfa = Loc::new(CFI_SP, cfi.stack_size);
            }
            if cfi.drap && s == CFI_BP && k == cfi.drap_offset {
                cfi.cfa = Loc::new(cfi.drap_reg, 0);
                cfi.drap_offset = -1;
            }
            let rd = cfi.regs[d as usize].offset;
            if (cfi.drap && s == CFI_BP && k == rd)
                || (s == cfi.cfa.base && k == rd.wrapping_add(cfi.cfa.offset))
                || (s == CFI_SP && k == rd.wrapping_add(cfi.stack_size))
            {
                restore_reg(cfi, d);
            }
            Ok(())
        }
        _ => Err("unknown stack-related instruction"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CX: OpContext = OpContext {
        in_func: true,
        next_is_hint: false,
        stackval: false,
    };

    fn run(ops: &[StackOp]) -> Result<CfiState, &'static str> {
        let mut s = CfiState::func_entry();
        for op in ops {
            apply(&mut s, op, CX)?;
        }
        Ok(s)
    }

    const PUSH_BP: StackOp = StackOp {
        dest: Op::Push,
        src: Op::Reg(CFI_BP),
    };
    const MOV_SP_BP: StackOp = StackOp {
        dest: Op::Reg(CFI_BP),
        src: Op::Reg(CFI_SP),
    };
    const POP_BP: StackOp = StackOp {
        dest: Op::Reg(CFI_BP),
        src: Op::Pop,
    };

    /// objtool's `update_cfi_state()` on a frame-pointer prologue and epilogue.
    #[test]
    fn frame_pointer_prologue_and_epilogue() {
        let s = run(&[PUSH_BP]).unwrap();
        assert_eq!(s.cfa, Loc::new(CFI_SP, 16));
        assert_eq!(s.stack_size, 16);
        assert_eq!(s.regs[CFI_BP as usize], Loc::new(CFI_CFA, -16));
        let s = run(&[PUSH_BP, MOV_SP_BP]).unwrap();
        assert_eq!(s.cfa, Loc::new(CFI_BP, 16));
        assert!(s.has_valid_stack_frame());
        let leave = StackOp {
            dest: Op::Reg(CFI_SP),
            src: Op::Reg(CFI_BP),
        };
        let s = run(&[PUSH_BP, MOV_SP_BP, leave, POP_BP]).unwrap();
        assert_eq!(s.cfa, Loc::new(CFI_SP, 8));
        assert!(!s.has_modified_stack_frame());
    }

    #[test]
    fn stack_adjustment_moves_the_cfa() {
        let sub = StackOp {
            dest: Op::Reg(CFI_SP),
            src: Op::Add(CFI_SP, -0x18),
        };
        let s = run(&[sub]).unwrap();
        assert_eq!(s.cfa, Loc::new(CFI_SP, 8 + 0x18));
        assert_eq!(s.stack_size, 8 + 0x18);
    }

    #[test]
    fn undefined_state_in_a_function_is_an_error() {
        let mut s = CfiState::blank();
        assert_eq!(apply(&mut s, &PUSH_BP, CX), Err("undefined stack state"));
        let outside = OpContext {
            in_func: false,
            ..CX
        };
        assert_eq!(apply(&mut s, &PUSH_BP, outside), Ok(()));
    }
}
