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
pub use crate::orc::row::OrcRow;
use crate::report::Findings;

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

/// Instructions per piece of a section generated on its own.
const PIECE_INSNS: u32 = 1 << 16;

/// One piece of a text section: its rows (deduplicated within the piece, the first always
/// kept), the entry in effect at its end, and the first failure.
struct Piece {
    rows: Vec<OrcRow>,
    last: Option<[u8; 6]>,
    error: Option<(InsnId, String)>,
}

/// objtool: `orc_create()` (the entry list; writing is separate). Sections are cut into
/// pieces generated in parallel and joined in order with objtool's rule (an entry equal to
/// the one before it in the section is dropped), so the rows are the same at any thread
/// count.
pub fn generate(
    p: &Program<'_, '_>,
    w: &Walk,
    abi: OrcAbi,
    f: &mut Findings,
) -> Result<Vec<OrcRow>, OrcError> {
    // every distinct state's entry, once
    let entries: Vec<Result<[u8; 6], String>> = w
        .states
        .states
        .iter()
        .map(|s| entry_for(Some(s), abi))
        .collect();
    let entry = |id: StateId| -> Result<[u8; 6], &str> {
        if id == NO_STATE {
            Ok([0; 6])
        } else {
            entries[id as usize]
                .as_ref()
                .copied()
                .map_err(String::as_str)
        }
    };
    let mut pieces = Vec::new();
    for sec in 0..p.sec_text.len() {
        if !p.sec_text[sec] {
            continue;
        }
        let range = p.insns.section_range(SecId(sec as u32));
        let mut k = range.start;
        while k < range.end {
            // a piece ends at an instruction outside every alternative group
            let mut end = k.saturating_add(PIECE_INSNS).min(range.end);
            while end < range.end && p.alt_group(InsnId(end)).is_some() {
                end += 1;
            }
            pieces.push((SecId(sec as u32), k..end));
            k = end;
        }
    }
    let parallel = p.parallel();
    let run = |(secid, range): &(SecId, std::ops::Range<u32>)| {
        generate_piece(p, w, &entry, *secid, range.clone())
    };
    let done: Vec<Piece> = if parallel {
        use rayon::prelude::*;
        pieces.par_iter().map(run).collect()
    } else {
        pieces.iter().map(run).collect()
    };
    let mut rows = Vec::with_capacity(done.iter().map(|d| d.rows.len()).sum::<usize>() + 64);
    let mut cur_sec = None;
    let mut prev = [0u8; 6];
    let mut empty = true;
    let finish = |rows: &mut Vec<OrcRow>, sec: Option<SecId>, empty: bool| {
        if let (Some(sec), false) = (sec, empty) {
            rows.push(OrcRow {
                section: sec,
                offset: p.sec_size[sec.0 as usize],
                entry: [0; 6],
            });
        }
    };
    for ((secid, _), d) in pieces.iter().zip(done) {
        if let Some((insn, msg)) = d.error {
            p.warn_insn(f, insn, &msg);
            return Err(OrcError);
        }
        if cur_sec != Some(*secid) {
            finish(&mut rows, cur_sec, empty);
            (cur_sec, prev, empty) = (Some(*secid), [0; 6], true);
        }
        let mut it = d.rows.into_iter().peekable();
        if it.peek().is_some_and(|r| r.entry == prev) {
            it.next();
        }
        for r in it {
            rows.push(r);
            empty = false;
        }
        if let Some(last) = d.last {
            prev = last;
        }
    }
    finish(&mut rows, cur_sec, empty);
    Ok(rows)
}

fn generate_piece<'e>(
    p: &Program<'_, '_>,
    w: &Walk,
    entry: &impl Fn(StateId) -> Result<[u8; 6], &'e str>,
    secid: SecId,
    range: std::ops::Range<u32>,
) -> Piece {
    let mut out = Piece {
        rows: Vec::new(),
        last: None,
        error: None,
    };
    let emit = |out: &mut Piece, off: u64, e: [u8; 6]| {
        if out.last != Some(e) {
            out.rows.push(OrcRow {
                section: secid,
                offset: off,
                entry: e,
            });
            out.last = Some(e);
        }
    };
    let mut k = range.start;
    while k < range.end {
        let insn = InsnId(k);
        let i = p.insn(insn);
        match p.alt_group(insn) {
            None => {
                match entry(w.cfi[insn.idx()]) {
                    Ok(e) => emit(&mut out, u64::from(i.offset), e),
                    Err(m) => {
                        out.error = Some((insn, m.to_owned()));
                        return out;
                    }
                }
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
                    match entry(id) {
                        Ok(e) => emit(&mut out, u64::from(i.offset) + off, e),
                        Err(m) => {
                            out.error = Some((insn, m.to_owned()));
                            return out;
                        }
                    }
                }
                k = last.0 + 1;
            }
        }
    }
    out
}
