//! Who owns each instruction: the symbol around it, `iret` inside functions, and the
//! functions objtool ignores.
//!
//! objtool: the owner part of `decode_instructions()`, the `iret` fix-up of
//! `arch_decode_instruction()`, `add_ignores()`.

use object::elf;

use super::builder::Builder;
use super::program::{AnalysisError, Attr, OWNER_STRETCHES, Step};
use crate::decode::regs::CFI_SP;
use crate::decode::{InsnId, InsnKind, StackOp};
use crate::elf::SecId;
use crate::ids::{PackedSymId, SymId};
use crate::report::{FindingKind, Findings};

impl Builder<'_, '_> {
    /// objtool: the owner loop of `decode_instructions()`.
    pub(super) fn assign_owners(&mut self, f: &mut Findings) -> Step {
        // the symbol types side by side (the lists are in address order: reading each
        // symbol for its type is a cache miss per symbol)
        let types: Vec<u8> = self.syms.syms.iter().map(|s| s.ty).collect();
        for sec in 0..self.sec_exec.len() {
            if !self.sec_exec[sec] {
                continue;
            }
            let secid = SecId(sec as u32);
            // each owner's instructions, in list order (a later symbol takes the
            // instructions of an earlier one it overlaps)
            let mut owners: Vec<(SymId, std::ops::Range<u32>)> = Vec::new();
            for &s in &self.syms.lists[sec] {
                if !matches!(types[s.index()], elf::STT_NOTYPE | elf::STT_FUNC) {
                    continue;
                }
                let sym = self.syms.get(s);
                if sym.offset == self.sec_size[sec] {
                    if sym.ty == elf::STT_NOTYPE {
                        continue;
                    }
                    f.warn(FindingKind::FuncAtEndOfSection {
                        function: sym.name.to_string(),
                    });
                    return Err(AnalysisError::Build);
                }
                if sym.embedded_insn || sym.alias != s {
                    continue;
                }
                if self.insns.at(secid, sym.offset).is_none() {
                    f.warn(FindingKind::NoStartingInstruction {
                        function: sym.name.to_string(),
                    });
                    return Err(AnalysisError::Build);
                }
                owners.push((s, self.sym_range(s)));
            }
            let run = self.insns.section_range(secid);
            let parallel = self.parallel();
            let attrs = &mut self.attrs[run.start as usize..run.end as usize];
            // (in list order within each stretch of the section: the stretches side by
            // side for a large one)
            let paint = |first: u32, stretch: &mut [Attr]| {
                let end = first + stretch.len() as u32;
                for (s, r) in &owners {
                    let (a, b) = (r.start.max(first), r.end.min(end));
                    if a < b {
                        let s = PackedSymId::new(Some(*s));
                        for attr in &mut stretch[(a - first) as usize..(b - first) as usize] {
                            attr.sym = s;
                        }
                    }
                }
            };
            if parallel {
                use rayon::prelude::*;
                let len = attrs.len().div_ceil(OWNER_STRETCHES).max(1);
                attrs
                    .par_chunks_mut(len)
                    .enumerate()
                    .for_each(|(k, stretch)| paint(run.start + (k * len) as u32, stretch));
            } else {
                paint(run.start, attrs);
            }
        }
        Ok(())
    }

    /// `iret` inside a function is sync_core()'s IRET-to-self: `add $40,%rsp`.
    pub(super) fn fix_iret(&mut self) {
        for n in 0..self.insns.irets.len() {
            let k = self.insns.irets[n].idx();
            let i = self.insns.insns[k];
            let sec = self.insns.sec_of(InsnId(k as u32));
            if let Some(s) = self.syms.containing(sec, u64::from(i.offset)) {
                if self.syms.is_func(s) {
                    self.attrs[k].kind = InsnKind::Other;
                    self.attrs[k].set_ops_removed(false);
                    self.insns.insns[k].ops_start = self.insns.ops.len() as u32;
                    self.insns.insns[k].ops_len = 1;
                    self.insns.ops.push(
                        StackOp {
                            dest: crate::decode::Op::Reg(CFI_SP),
                            src: crate::decode::Op::Add(CFI_SP, 40),
                        }
                        .into(),
                    );
                }
            }
        }
    }

    /// STACK_FRAME_NON_STANDARD (objtool: `add_ignores()`).
    pub(super) fn add_ignores(&mut self, f: &mut Findings) {
        let Some((rname, relocs)) =
            self.rela_by_name(".rela.discard.func_stack_frame_non_standard")
        else {
            return;
        };
        for r in relocs {
            let s = self.syms.get(r.sym);
            let func = match s.ty {
                elf::STT_FUNC => r.sym,
                elf::STT_SECTION => match self.syms.func_by_offset(s.sec, r.addend as u64) {
                    Some(func) => func,
                    None => continue,
                },
                t => {
                    f.warn(FindingKind::UnexpectedRelocSymbolType {
                        rela_section: rname.clone(),
                        ty: Some(t),
                    });
                    continue;
                }
            };
            for i in self.func_insns(func) {
                self.attrs[i.idx()].set_ignore(true);
            }
        }
    }
}
