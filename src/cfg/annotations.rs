//! Annotations: `.discard.annotate_insn` (6.13+) and the older per-kind sections
//! (`.discard.retpoline_safe`, `.discard.instr_begin`/`_end`, `.discard.validate_unret`,
//! `.discard.noendbr`, `.discard.ignore_alts`, `.discard.intra_function_calls`), and the
//! relocation-to-label rule they share.
//!
//! objtool: `read_annotate()`, `__annotate_early()`, `__annotate_ifc()`, `__annotate_late()`,
//! `read_retpoline_hints()`, `read_instr_hints()`, `read_validate_unret_hints()`,
//! `read_noendbr_hints()`, `add_ignore_alternatives()`, `read_intra_function_calls()`.

use object::elf;

use super::builder::Builder;
use super::program::{AnalysisError, Packed, Step};
use super::relocs::Reloc;
use crate::decode::{InsnId, InsnKind};
use crate::elf::SecId;
use crate::report::{FindingKind, Findings};

/// `.discard.annotate_insn` types (include/linux/objtool_types.h of 6.13+); 9 and above
/// mean different things in different kernels and are ignored.
const ANNOTYPE_NOENDBR: u32 = 1;
const ANNOTYPE_RETPOLINE_SAFE: u32 = 2;
const ANNOTYPE_INSTR_BEGIN: u32 = 3;
const ANNOTYPE_INSTR_END: u32 = 4;
const ANNOTYPE_IGNORE_ALTS: u32 = 6;
const ANNOTYPE_INTRA_FUNCTION_CALL: u32 = 7;
const ANNOTYPE_REACHABLE: u32 = 8;

/// When an annotation of `.discard.annotate_insn` takes effect (objtool's
/// `__annotate_early`, `__annotate_ifc`, `__annotate_late`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Early,
    IntraFunctionCalls,
    Late,
}

impl Builder<'_, '_> {
    /// objtool (6.13+): `read_annotate()` — (type, instruction) of each entry, 8 bytes
    /// each: `.long insn - .` (relocated) and the type; REACHABLE names the instruction
    /// after the dead end, so it resolves to the one before.
    pub(super) fn read_annotate_insn(
        &self,
        f: &mut Findings,
    ) -> Result<Vec<(u32, InsnId)>, AnalysisError> {
        let Some(sec) = self.obj.section_by_name(b".discard.annotate_insn") else {
            return Ok(Vec::new());
        };
        let Some(t) = self.relocs.table(sec) else {
            return Ok(Vec::new());
        };
        let data = self.obj.section_data(sec).unwrap_or(&[]);
        let mut out = Vec::new();
        for (idx, r) in t.iter().enumerate() {
            let at = idx * 8 + 4;
            let ty = data
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let (rsec, off) = self.sym_sec_off(&r);
            let mut insn = self.insns.at(rsec, off);
            if ty == ANNOTYPE_REACHABLE {
                insn = match insn {
                    Some(i) => self.prev_same_sec(i),
                    None if off == self.sec_size[rsec.0 as usize] => self.last_insn(rsec),
                    None => None,
                };
            }
            let Some(insn) = insn else {
                f.warn(FindingKind::BadAnnotateInsnEntry { index: idx, ty });
                return Err(AnalysisError::Build);
            };
            out.push((ty, insn));
        }
        Ok(out)
    }

    /// The last instruction that starts within the last 10 bytes of a section
    /// (objtool: `find_last_insn()`).
    pub(super) fn last_insn(&self, sec: SecId) -> Option<InsnId> {
        let size = self.sec_size[sec.0 as usize];
        let end = size.saturating_sub(10);
        let mut o = size.checked_sub(1)?;
        loop {
            if let Some(i) = self.insns.at(sec, o) {
                return Some(i);
            }
            if o == 0 || o <= end {
                return None;
            }
            o -= 1;
        }
    }

    pub(super) fn annotate(
        &mut self,
        entries: &[(u32, InsnId)],
        phase: Phase,
        f: &mut Findings,
    ) -> Step {
        for &(ty, id) in entries {
            match (phase, ty) {
                (Phase::Early, ANNOTYPE_IGNORE_ALTS) => self.attrs[id.idx()].set_ignore_alts(true),
                (Phase::Early, ANNOTYPE_NOENDBR) => self.attrs[id.idx()].set_noendbr(true),
                (Phase::IntraFunctionCalls, ANNOTYPE_INTRA_FUNCTION_CALL) => {
                    self.intra_function_call(id, f)?
                }
                (Phase::Late, ANNOTYPE_RETPOLINE_SAFE) => {
                    if !matches!(
                        self.attrs[id.idx()].kind,
                        InsnKind::JumpDynamic
                            | InsnKind::CallDynamic
                            | InsnKind::Return
                            | InsnKind::Nop
                    ) {
                        self.warn_insn(f, id, FindingKind::RetpolineSafeNotIndirect);
                        return Err(AnalysisError::Build);
                    }
                    self.attrs[id.idx()].set_retpoline_safe(true);
                }
                (Phase::Late, ANNOTYPE_INSTR_BEGIN) => {
                    let a = &mut self.attrs[id.idx()];
                    a.instr = a.instr.wrapping_add(1);
                }
                (Phase::Late, ANNOTYPE_INSTR_END) => {
                    let a = &mut self.attrs[id.idx()];
                    a.instr = a.instr.wrapping_sub(1);
                }
                (Phase::Late, ANNOTYPE_REACHABLE) => self.attrs[id.idx()].set_dead_end(false),
                _ => {}
            }
        }
        Ok(())
    }

    /// objtool: the body of `read_intra_function_calls()`: the call becomes a jump that
    /// keeps its push.
    pub(super) fn intra_function_call(&mut self, id: InsnId, f: &mut Findings) -> Step {
        if self.attrs[id.idx()].kind != InsnKind::Call {
            self.warn_insn(f, id, FindingKind::IntraFunctionCallNotDirect);
            return Err(AnalysisError::Build);
        }
        self.attrs[id.idx()].kind = InsnKind::JumpUnconditional;
        let sec = self.insns.sec_of(id);
        let dest_off = self.jump_target_off(id);
        match self.insns.at(sec, dest_off) {
            Some(d) => {
                self.attrs[id.idx()].jump_dest = Packed::some(d.0);
                Ok(())
            }
            None => {
                let at = self.section_offset(sec, dest_off);
                self.warn_insn(f, id, FindingKind::CantFindCallDest { at });
                Err(AnalysisError::Build)
            }
        }
    }

    /// Where a hint's or an annotation's relocation points: a section symbol plus addend,
    /// or a local label (`.L…`) itself; any other symbol is objtool's fatal error.
    pub(super) fn label_target(
        &self,
        r: &Reloc,
        rname: &str,
        f: &mut Findings,
    ) -> Result<(SecId, u64), AnalysisError> {
        let s = self.syms.get(r.sym);
        if s.ty == elf::STT_SECTION {
            Ok((s.sec, r.addend as u64))
        } else if s.local_label {
            Ok((s.sec, s.offset))
        } else {
            f.warn(FindingKind::UnexpectedRelocSymbolType {
                rela_section: rname.to_owned(),
                ty: None,
            });
            Err(AnalysisError::Build)
        }
    }

    /// objtool: `read_unwind_hints()`.
    /// The instructions an annotation section's relocations point at (section symbol +
    /// addend, as objtool requires); `bad` is objtool's message for one that points
    /// nowhere.
    pub(super) fn read_section_annotations(
        &self,
        name: &str,
        bad: &'static str,
        f: &mut Findings,
    ) -> Result<Vec<InsnId>, AnalysisError> {
        let Some((rname, relocs)) = self.rela_by_name(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in relocs {
            let s = self.syms.get(r.sym);
            if s.ty != elf::STT_SECTION {
                f.warn(FindingKind::UnexpectedRelocSymbolType {
                    rela_section: rname,
                    ty: None,
                });
                return Err(AnalysisError::Build);
            }
            match self.insns.at(s.sec, r.addend as u64) {
                Some(i) => out.push(i),
                None => {
                    f.warn(FindingKind::AnnotationWithoutInstruction(bad));
                    return Err(AnalysisError::Build);
                }
            }
        }
        Ok(out)
    }

    pub(super) fn read_retpoline_hints(&mut self, f: &mut Findings) -> Step {
        for id in self.read_section_annotations(
            ".rela.discard.retpoline_safe",
            "bad .discard.retpoline_safe entry",
            f,
        )? {
            if !matches!(
                self.attrs[id.idx()].kind,
                InsnKind::JumpDynamic | InsnKind::CallDynamic | InsnKind::Return | InsnKind::Nop
            ) {
                self.warn_insn(f, id, FindingKind::RetpolineSafeNotIndirect);
                return Err(AnalysisError::Build);
            }
            self.attrs[id.idx()].set_retpoline_safe(true);
        }
        Ok(())
    }

    pub(super) fn read_instr_hints(&mut self, f: &mut Findings) -> Step {
        if self
            .obj
            .section_by_name(b".rela.discard.instr_end")
            .is_none()
        {
            return Ok(());
        }
        for id in self.read_section_annotations(
            ".rela.discard.instr_end",
            "bad .discard.instr_end entry",
            f,
        )? {
            self.attrs[id.idx()].instr = self.attrs[id.idx()].instr.wrapping_sub(1);
        }
        for id in self.read_section_annotations(
            ".rela.discard.instr_begin",
            "bad .discard.instr_begin entry",
            f,
        )? {
            self.attrs[id.idx()].instr = self.attrs[id.idx()].instr.wrapping_add(1);
        }
        Ok(())
    }

    pub(super) fn read_validate_unret_hints(&mut self, f: &mut Findings) -> Step {
        for id in self.read_section_annotations(
            ".rela.discard.validate_unret",
            "bad .discard.instr_end entry", // (sic: objtool's text)
            f,
        )? {
            self.attrs[id.idx()].set_unret(true);
        }
        Ok(())
    }

    pub(super) fn read_noendbr_hints(&mut self, f: &mut Findings) -> Step {
        let Some((_, relocs)) = self.rela_by_name(".rela.discard.noendbr") else {
            return Ok(());
        };
        for r in relocs {
            let (sec, off) = self.sym_sec_off(&r);
            let Some(i) = self.insns.at(sec, off) else {
                f.warn(FindingKind::BadNoendbrEntry);
                return Err(AnalysisError::Build);
            };
            self.attrs[i.idx()].set_noendbr(true);
        }
        Ok(())
    }

    pub(super) fn add_ignore_alternatives(&mut self, f: &mut Findings) -> Step {
        let bad = "bad .discard.ignore_alts entry";
        for i in self.read_section_annotations(".rela.discard.ignore_alts", bad, f)? {
            self.attrs[i.idx()].set_ignore_alts(true);
        }
        Ok(())
    }

    pub(super) fn read_intra_function_calls(&mut self, f: &mut Findings) -> Step {
        let bad = "bad .discard.intra_function_call entry";
        for id in self.read_section_annotations(".rela.discard.intra_function_calls", bad, f)? {
            self.intra_function_call(id, f)?;
        }
        Ok(())
    }
}
