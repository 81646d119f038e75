//! ORC generation: the recorded CFI of every instruction of every text section → ORC rows.
//!
//! objtool: `orc_create()` (orc_gen.c) and `init_orc_entry()` (arch/x86/orc.c). Rows come in
//! section order, then offset order; an entry equal to the previous one of the same section
//! is dropped; alternative groups are read from their merged per-byte array, skipping empty
//! slots; every section that produced an entry ends with an undefined terminator at its size.

use super::entry::{OrcAbi, OrcEntry, OrcReg, OrcType};
use crate::cfg::{AnalysisError, Program};
use crate::cfi::state::*;
use crate::cfi::walk::Walk;
use crate::edits::Edits;
use crate::ids::{InsnId, SecId, StateId};
pub use crate::orc::row::OrcRow;
use crate::report::{FindingKind, Findings};

/// A state ORC cannot express (objtool's `init_orc_entry()` warnings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    UnknownHintType(u8),
    UnknownCfaBase(i8),
    UnknownBpBase(i8),
}

impl From<EntryError> for FindingKind {
    fn from(e: EntryError) -> Self {
        match e {
            EntryError::UnknownHintType(t) => FindingKind::UnknownHintType(t),
            EntryError::UnknownCfaBase(b) => FindingKind::UnknownCfaBase(b),
            EntryError::UnknownBpBase(b) => FindingKind::UnknownBpBase(b),
        }
    }
}

/// objtool: `init_orc_entry()`; `Err` is the warning.
pub fn entry_for(cfi: Option<&CfiState>, abi: OrcAbi) -> Result<[u8; 6], EntryError> {
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
        t => return Err(EntryError::UnknownHintType(t)),
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
        b => return Err(EntryError::UnknownCfaBase(b)),
    };
    let bp = cfi.regs[CFI_BP as usize];
    let bp_reg = match bp.base {
        CFI_UNDEFINED => OrcReg::UNDEFINED,
        CFI_CFA => OrcReg::PREV_SP,
        CFI_BP => OrcReg::BP,
        b => return Err(EntryError::UnknownBpBase(b)),
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
    error: Option<(InsnId, EntryError)>,
}

/// objtool: `orc_create()` (the entry list; writing is separate). Sections are cut into
/// pieces generated in parallel and joined in order with objtool's rule (an entry equal to
/// the one before it in the section is dropped), so the rows are the same at any thread
/// count. `edits`: what the actions made before, whose symbols (`__pfx_`) name the place
/// of a state ORC cannot encode, as in objtool.
pub fn generate(
    p: &Program<'_, '_>,
    w: &Walk,
    abi: OrcAbi,
    edits: &Edits,
    f: &mut Findings,
) -> Result<Vec<OrcRow>, AnalysisError> {
    // every distinct state's entry, once
    let entries: Vec<Result<[u8; 6], EntryError>> = w
        .states
        .states()
        .iter()
        .map(|s| entry_for(Some(s), abi))
        .collect();
    let entry = |id: Option<StateId>| -> Result<[u8; 6], EntryError> {
        match id {
            None => Ok([0; 6]),
            Some(id) => entries[id.index()],
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
            while end < range.end && p.alt_stream(InsnId(end)).is_some() {
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
            let at = crate::actions::insn_location(p, insn, edits);
            f.warn_insn(p.attrs[insn.idx()].sym.get(), at, msg.into());
            return Err(AnalysisError::Orc);
        }
        if cur_sec != Some(*secid) {
            finish(&mut rows, cur_sec, empty);
            (cur_sec, prev, empty) = (Some(*secid), [0; 6], true);
        }
        let skip = usize::from(d.rows.first().is_some_and(|r| r.entry == prev));
        let new = &d.rows[skip..];
        rows.extend_from_slice(new);
        empty &= new.is_empty();
        if let Some(last) = d.last {
            prev = last;
        }
    }
    finish(&mut rows, cur_sec, empty);
    Ok(rows)
}

fn generate_piece(
    p: &Program<'_, '_>,
    w: &Walk,
    entry: &impl Fn(Option<StateId>) -> Result<[u8; 6], EntryError>,
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
    // the state of the instruction before, outside every group (its entry is `out.last`)
    let mut prev_state = None;
    while k < range.end {
        let insn = InsnId(k);
        let site = p.alt_site(insn);
        if site.is_none() {
            // the same state as the instruction before: the same entry, no row
            let state = w.cfi[insn.idx()];
            if prev_state == Some(state) {
                k += 1;
                continue;
            }
            prev_state = Some(state);
        } else {
            prev_state = None;
        }
        let i = p.insn(insn);
        match site {
            None => {
                match entry(w.cfi[insn.idx()]) {
                    Ok(e) => emit(&mut out, u64::from(i.offset), e),
                    Err(m) => {
                        out.error = Some((insn, m));
                        return out;
                    }
                }
                k += 1;
            }
            Some((stream, _)) => {
                let last = stream.last.unwrap_or(stream.first);
                let len = p.stream_bytes(stream);
                let array = &w.alt_cfi[stream.group.index()];
                for off in 0..len {
                    let Some(&slot) = array.get(off as usize) else {
                        break;
                    };
                    if slot.is_none() {
                        continue;
                    }
                    match entry(slot) {
                        Ok(e) => emit(&mut out, u64::from(i.offset) + off, e),
                        Err(m) => {
                            out.error = Some((insn, m));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// objtool's `init_orc_entry()` on the states the walk records.
    #[test]
    fn entries_from_states() {
        let abi = OrcAbi::V6_12;
        let decode = |e: [u8; 6]| OrcEntry::decode(abi, e);
        // no state and UNDEFINED: all zero
        assert_eq!(entry_for(None, abi), Ok([0; 6]));
        assert_eq!(entry_for(Some(&CfiState::blank()), abi), Ok([0; 6]));
        // a function entry: sp+8, bp undefined, call frame
        let e = decode(entry_for(Some(&CfiState::func_entry()), abi).unwrap());
        assert_eq!((e.sp_reg, e.sp_offset), (OrcReg::SP, 8));
        assert_eq!(e.bp_reg, OrcReg::UNDEFINED);
        assert_eq!(e.ty, OrcType::Call);
        // a frame-pointer frame: bp+16, bp saved at prev_sp-16
        let mut s = CfiState::func_entry();
        s.cfa = Loc::new(CFI_BP, 16);
        s.regs[CFI_BP as usize] = Loc::new(CFI_CFA, -16);
        let e = decode(entry_for(Some(&s), abi).unwrap());
        assert_eq!((e.sp_reg, e.sp_offset), (OrcReg::BP, 16));
        assert_eq!((e.bp_reg, e.bp_offset), (OrcReg::PREV_SP, -16));
        // END_OF_STACK differs between the ABIs
        let mut end = CfiState::blank();
        end.ty = UNWIND_HINT_TYPE_END_OF_STACK;
        assert_eq!(entry_for(Some(&end), OrcAbi::V6_12), Ok([0, 0, 0, 0, 0, 1]));
        assert_eq!(entry_for(Some(&end), OrcAbi::V6_1), Ok([0, 0, 0, 0, 0, 4]));
    }

    #[test]
    fn states_orc_cannot_express_are_warnings() {
        let mut s = CfiState::func_entry();
        s.cfa = Loc::new(CFI_BX, 8);
        assert_eq!(
            entry_for(Some(&s), OrcAbi::V6_12),
            Err(EntryError::UnknownCfaBase(3))
        );
        let mut s = CfiState::func_entry();
        s.ty = 9;
        assert_eq!(
            entry_for(Some(&s), OrcAbi::V6_12),
            Err(EntryError::UnknownHintType(9))
        );
    }
}
