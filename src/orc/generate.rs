//! ORC generation: the recorded CFI of every instruction of every text section → ORC rows.
//!
//! objtool: `orc_create()` (orc_gen.c) and `init_orc_entry()` (arch/x86/orc.c). Rows come in
//! section order, then offset order; an entry equal to the previous one of the same section
//! is dropped; alternative groups are read from their merged per-byte array, skipping empty
//! slots; every section that produced an entry ends with an undefined terminator at its size.

use super::entry::{OrcAbi, OrcEntry, OrcReg, OrcType};
use crate::cfg::Program;
use crate::cfi::state::*;
use crate::cfi::walk::{NO_STATE, StateId, Walk};
use crate::decode::InsnId;
use crate::elf::SecId;
use crate::report::Findings;
pub use crate::write::OrcRow;

/// ORC generation failed (the warning is already reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrcError;

/// objtool: `init_orc_entry()`; `Err(text)` is the warning.
pub fn entry_for(cfi: Option<&CfiState>, abi: OrcAbi) -> Result<[u8; 6], String> {
    let Some(cfi) = cfi else {
        return Ok([0; 6]);
    };
    let ty = match cfi.ty {
        UNWIND_HINT_TYPE_UNDEFINED => return Ok([0; 6]),
        UNWIND_HINT_TYPE_END_OF_STACK => {
            return Ok(match abi {
                OrcAbi::V6_12 => [0, 0, 0, 0, 0, 1],
                // 6.1: "end" = sp undefined with the end bit
                OrcAbi::V6_1 => [0, 0, 0, 0, 0, 4],
            });
        }
        UNWIND_HINT_TYPE_CALL => OrcType::Call,
        UNWIND_HINT_TYPE_REGS => OrcType::Regs,
        UNWIND_HINT_TYPE_REGS_PARTIAL => OrcType::RegsPartial,
        t => return Err(format!("unknown unwind hint type {t}")),
    };
    let sp_reg = match cfi.cfa.base {
        CFI_SP => OrcReg::SP,
        CFI_SP_INDIRECT => OrcReg::SP_INDIRECT,
        CFI_BP => OrcReg::BP,
        CFI_BP_INDIRECT => OrcReg::BP_INDIRECT,
        CFI_R10 => OrcReg::R10,
        CFI_R13 => OrcReg::R13,
        CFI_DI => OrcReg::DI,
        CFI_DX => OrcReg::DX,
        b => return Err(format!("unknown CFA base reg {b}")),
    };
    let bp = cfi.regs[CFI_BP as usize];
    let bp_reg = match bp.base {
        CFI_UNDEFINED => OrcReg::UNDEFINED,
        CFI_CFA => OrcReg::PREV_SP,
        CFI_BP => OrcReg::BP,
        b => return Err(format!("unknown BP base reg {b}")),
    };
    let e = OrcEntry {
        sp_offset: cfi.cfa.offset as i16,
        bp_offset: bp.offset as i16,
        sp_reg,
        bp_reg,
        ty,
        flag: match abi {
            OrcAbi::V6_12 => cfi.signal,
            OrcAbi::V6_1 => cfi.end,
        },
        spare: 0,
    };
    Ok(e.encode(abi).unwrap_or([0; 6]))
}

/// objtool: `orc_create()` (the entry list; writing is separate).
pub fn generate(
    p: &Program<'_, '_>,
    w: &Walk,
    abi: OrcAbi,
    f: &mut Findings,
) -> Result<Vec<OrcRow>, OrcError> {
    let mut rows = Vec::new();
    let state = |id: StateId| (id != NO_STATE).then(|| w.states.get(id));
    for sec in 0..p.sec_text.len() {
        if !p.sec_text[sec] {
            continue;
        }
        let secid = SecId(sec as u32);
        let mut prev = [0u8; 6];
        let mut empty = true;
        let range = p.insns.section_range(secid);
        let mut k = range.start;
        while k < range.end {
            let insn = InsnId(k);
            let i = p.insn(insn);
            let mut emit = |off: u64, entry: [u8; 6]| {
                if entry != prev {
                    rows.push(OrcRow {
                        section: secid,
                        offset: off,
                        entry,
                    });
                    prev = entry;
                    empty = false;
                }
            };
            match p.alt_group(insn) {
                None => {
                    let e = entry_for(state(w.cfi[insn.idx()]), abi).map_err(|m| {
                        p.warn_insn(f, insn, &m);
                        OrcError
                    })?;
                    emit(u64::from(i.offset), e);
                    k += 1;
                }
                Some(g) => {
                    let grp = &p.groups[g as usize];
                    let last = grp.last.unwrap_or(grp.first);
                    let len = p.insn(last).end() - u64::from(p.insn(grp.first).offset);
                    let array = &w.alt_cfi[grp.cfi_array as usize];
                    for off in 0..len {
                        let Some(&id) = array.get(off as usize) else {
                            break;
                        };
                        if id == NO_STATE {
                            continue;
                        }
                        let e = entry_for(Some(w.states.get(id)), abi).map_err(|m| {
                            p.warn_insn(f, insn, &m);
                            OrcError
                        })?;
                        emit(u64::from(i.offset) + off, e);
                    }
                    k = last.0 + 1;
                }
            }
        }
        if !empty {
            rows.push(OrcRow {
                section: secid,
                offset: p.sec_size[sec],
                entry: [0; 6],
            });
        }
    }
    Ok(rows)
}
