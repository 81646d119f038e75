//! Unwind hints: `.discard.unwind_hints` read into [`Hint`]s, in file order.
//!
//! objtool: `read_unwind_hints()`. The CFI states they stand for are made by the walk
//! (`cfi::hint`): objtool builds each hint's state from the one before, and that is a rule
//! of the state model, not of reading the section.

use object::elf;

use super::builder::Builder;
use super::{AnalysisError, Step};
use crate::decode::InsnKind;
use crate::decode::regs::{
    CFI_BP, CFI_DI, CFI_DX, CFI_R10, CFI_R13, CFI_SP, CFI_SP_INDIRECT, CFI_UNDEFINED,
};
use crate::report::{FindingKind, Findings};

/// UNWIND_HINT_TYPE_* (6.12 numbering), also the ORC type of a state.
pub const UNWIND_HINT_TYPE_UNDEFINED: u8 = 0;
pub const UNWIND_HINT_TYPE_END_OF_STACK: u8 = 1;
pub const UNWIND_HINT_TYPE_CALL: u8 = 2;
pub const UNWIND_HINT_TYPE_REGS: u8 = 3;
pub const UNWIND_HINT_TYPE_REGS_PARTIAL: u8 = 4;
pub const UNWIND_HINT_TYPE_FUNC: u8 = 5;
pub const UNWIND_HINT_TYPE_SAVE: u8 = 6;
pub const UNWIND_HINT_TYPE_RESTORE: u8 = 7;

/// What an unwind hint says about the state at its instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// `UNWIND_HINT_TYPE_UNDEFINED`: no state (forced undefined).
    Undefined,
    /// `UNWIND_HINT_TYPE_FUNC`: a function's entry state.
    Func,
    /// Any other type: the CFA at `base + offset`, the hint's type and signal flag.
    Regs {
        base: i8,
        offset: i32,
        ty: u8,
        signal: bool,
    },
}

impl Builder<'_, '_> {
    /// objtool: `read_unwind_hints()`.
    pub(super) fn read_unwind_hints(&mut self, f: &mut Findings) -> Step {
        let Some(sec) = self.obj.section_by_name(b".discard.unwind_hints") else {
            return Ok(());
        };
        let Some(t) = self.relocs.table(sec) else {
            f.warn(FindingKind::MissingUnwindHintsRela);
            return Err(AnalysisError::Build);
        };
        let rname = self.sec_names[t.rela_sec.0 as usize].clone();
        let data = self.obj.section_data(sec).unwrap_or(&[]);
        if data.len() % 12 != 0 {
            f.warn(FindingKind::UnwindHintSizeMismatch);
            return Err(AnalysisError::Build);
        }
        self.has_hints = true;
        for (i, h) in data.chunks_exact(12).enumerate() {
            let Some(r) = self.relocs.at(sec, i as u64 * 12) else {
                f.warn(FindingKind::UnwindHintWithoutReloc { index: i });
                return Err(AnalysisError::Build);
            };
            let (target_sec, off) = self.label_target(&r, &rname, f)?;
            let Some(id) = self.insns.at(target_sec, off) else {
                f.warn(FindingKind::UnwindHintWithoutInstruction { index: i });
                return Err(AnalysisError::Build);
            };
            let sp_offset = i16::from_le_bytes([h[4], h[5]]);
            let sp_reg = h[6];
            let ty = h[7];
            let signal = h[8] != 0;
            self.attrs[id.idx()].set_hint(true);
            match ty {
                UNWIND_HINT_TYPE_UNDEFINED => {
                    self.hints.push((id, Hint::Undefined));
                    continue;
                }
                UNWIND_HINT_TYPE_SAVE => {
                    let a = &mut self.attrs[id.idx()];
                    a.set_hint(false);
                    a.set_save(true);
                    continue;
                }
                UNWIND_HINT_TYPE_RESTORE => {
                    self.attrs[id.idx()].set_restore(true);
                    continue;
                }
                _ => {}
            }
            if ty == UNWIND_HINT_TYPE_REGS_PARTIAL && self.opts.ibt {
                let i = *self.insn(id);
                if let Some(s) = self
                    .syms
                    .by_offset(self.insns.sec_of(id), u64::from(i.offset))
                {
                    if self.syms.get(s).bind == elf::STB_GLOBAL
                        && self.attrs[id.idx()].kind != InsnKind::Endbr
                        && !self.attrs[id.idx()].noendbr()
                    {
                        self.warn_insn(f, id, FindingKind::IretRegsWithoutEndbr);
                    }
                }
            }
            if ty == UNWIND_HINT_TYPE_FUNC {
                self.hints.push((id, Hint::Func));
                continue;
            }
            let base = match sp_reg {
                0 => CFI_UNDEFINED,
                5 => CFI_SP,
                4 => CFI_BP,
                9 => CFI_SP_INDIRECT,
                6 => CFI_R10,
                7 => CFI_R13,
                3 => CFI_DI,
                2 => CFI_DX,
                _ => {
                    self.warn_insn(f, id, FindingKind::UnsupportedHintSpReg { reg: sp_reg });
                    return Err(AnalysisError::Build);
                }
            };
            self.hints.push((
                id,
                Hint::Regs {
                    base,
                    offset: i32::from(sp_offset),
                    ty,
                    signal,
                },
            ));
        }
        Ok(())
    }
}
