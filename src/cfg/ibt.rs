//! What `--ibt` needs of the relocations, recorded while they are at hand: every address of
//! an instruction that code or data takes (the actions run after the walk, when the model
//! no longer has the relocations). `actions::ibt` applies objtool's rules to them.
//!
//! objtool: the relocation walks of `validate_ibt_insn()` and `validate_ibt()` (check.c).

use object::elf;

use super::builder::Builder;
use crate::decode::{InsnId, InsnKind};
use crate::elf::SecId;

/// One address of an instruction taken by code: a relocation inside `insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRef {
    pub insn: InsnId,
    /// The instruction the relocation points at.
    pub dest: InsnId,
}

/// One address of an instruction taken by data: a relocation of a data section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRef {
    /// The relocated (data) section and the offset there.
    pub sec: SecId,
    pub offset: u64,
    pub dest: InsnId,
}

/// The addresses of instructions taken, in objtool's order (`validate_ibt()`: every
/// instruction's relocations, then each data section's in file order). Empty unless
/// `--ibt`.
#[derive(Default)]
pub struct IbtRefs {
    pub code: Vec<CodeRef>,
    pub data: Vec<DataRef>,
}

/// Sections whose relocations refer to code without meaning to branch there (objtool's
/// list in `validate_ibt()`).
pub fn skips_data_section(name: &str) -> bool {
    (name.starts_with(".discard") && name != ".discard.ibt_endbr_noseal")
        || name.starts_with(".debug")
        || matches!(
            name,
            ".altinstructions"
                | ".ibt_endbr_seal"
                | ".orc_unwind_ip"
                | ".parainstructions"
                | ".retpoline_sites"
                | ".smp_locks"
                | ".static_call_sites"
                | "_error_injection_whitelist"
                | "_kprobe_blacklist"
                | "__bug_table"
                | "__ex_table"
                | "__jump_table"
                | "__mcount_loc"
                | ".kcfi_traps"
        )
        || name.contains("__patchable_function_entries")
}

/// Branches and NOPs: `validate_ibt_insn()` does not look at their relocations.
fn is_branch_or_nop(kind: InsnKind) -> bool {
    use InsnKind::*;
    matches!(
        kind,
        Call | CallDynamic
            | JumpConditional
            | JumpUnconditional
            | JumpDynamic
            | JumpDynamicConditional
            | Return
            | Nop
    )
}

/// Relocations (or relocated offsets) of a section per parallel task.
const CHUNK: usize = 1 << 16;

impl Builder<'_, '_> {
    /// Records [`IbtRefs`] (after every pass that changes an instruction's kind).
    pub(super) fn record_ibt_refs(&mut self) {
        // (per table, stretches of its relocations side by side)
        let mut code_tasks: Vec<(SecId, usize, usize)> = Vec::new();
        let mut data_tasks: Vec<(SecId, usize, usize)> = Vec::new();
        for sec in 0..self.sec_exec.len() {
            let secid = SecId(sec as u32);
            let Some(t) = self.relocs.table(secid) else {
                continue;
            };
            let (tasks, n) = if self.sec_exec[sec] {
                (&mut code_tasks, t.offsets())
            } else if skips_data_section(&self.sec_names[sec]) {
                continue;
            } else {
                (&mut data_tasks, t.len())
            };
            for start in (0..n).step_by(CHUNK) {
                tasks.push((secid, start, (start + CHUNK).min(n)));
            }
        }
        let code: Vec<Vec<CodeRef>> =
            self.map_all(&code_tasks, 1, |&(sec, a, b)| self.code_refs(sec, a..b));
        let data: Vec<Vec<DataRef>> =
            self.map_all(&data_tasks, 1, |&(sec, a, b)| self.data_refs(sec, a..b));
        self.ibt_refs = IbtRefs {
            code: code.into_iter().flatten().collect(),
            data: data.into_iter().flatten().collect(),
        };
    }

    /// objtool: the relocation loop of `validate_ibt_insn()`, for the relocated offsets
    /// `offsets` (by rank) of executable section `sec`: each instruction's relocations,
    /// lowest offset first (the last in the file among equal offsets), instructions in
    /// order; none of branches and NOPs, none to static call trampolines.
    fn code_refs(&self, sec: SecId, offsets: std::ops::Range<usize>) -> Vec<CodeRef> {
        let mut out = Vec::new();
        let Some(t) = self.relocs.table(sec) else {
            return out;
        };
        let first = self.insns.section_range(sec).start;
        for n in offsets {
            let Some(k) = t.nth_offset(n) else {
                break;
            };
            let r = t.get(k as usize);
            // the instruction containing the relocated offset
            let next = self.insns.first_from(sec, r.offset.saturating_add(1));
            if next.0 <= first {
                continue;
            }
            let id = InsnId(next.0 - 1);
            if r.offset >= self.insn(id).end() || is_branch_or_nop(self.attrs[id.idx()].kind) {
                continue;
            }
            let s = self.syms.get(r.sym);
            if s.static_call_tramp {
                continue;
            }
            let off = if matches!(r.ty, elf::R_X86_64_PC32 | elf::R_X86_64_PLT32) {
                // objtool: arch_dest_reloc_offset() (an int)
                s.offset
                    .wrapping_add((r.addend as i32).wrapping_add(4) as i64 as u64)
            } else {
                s.offset.wrapping_add(r.addend as u64)
            };
            if let Some(dest) = self.insns.at(s.sec, off) {
                out.push(CodeRef { insn: id, dest });
            }
        }
        out
    }

    /// objtool: `validate_ibt()`'s loop over a data section's relocations (`range`, in
    /// file order): those that point at an instruction.
    fn data_refs(&self, sec: SecId, range: std::ops::Range<usize>) -> Vec<DataRef> {
        let Some(t) = self.relocs.table(sec) else {
            return Vec::new();
        };
        range
            .filter_map(|k| {
                let r = t.get(k);
                let (dsec, off) = self.sym_sec_off(&r);
                let dest = self.insns.at(dsec, off)?;
                Some(DataRef {
                    sec,
                    offset: r.offset,
                    dest,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// objtool's list: prefixes, exact names, and `.discard.ibt_endbr_noseal` read despite
    /// its prefix.
    #[test]
    fn data_sections_skipped_as_objtool_skips_them() {
        for skipped in [
            ".discard.func_stack_frame_non_standard",
            ".discard",
            ".debug_info",
            ".debugx",
            "__jump_table",
            "__mcount_loc",
            ".kcfi_traps",
            ".rela__patchable_function_entries",
            "__patchable_function_entries",
        ] {
            assert!(skips_data_section(skipped), "{skipped}");
        }
        for read in [
            ".discard.ibt_endbr_noseal",
            ".data",
            ".rodata",
            "__ksymtab",
            "__jump_table.x",
            ".altinstructions2",
            "__ex_table_x",
        ] {
            assert!(!skips_data_section(read), "{read}");
        }
    }

    #[test]
    fn only_branches_and_nops_are_not_address_loads() {
        use InsnKind::*;
        for k in [
            Call,
            CallDynamic,
            JumpConditional,
            JumpUnconditional,
            JumpDynamic,
            JumpDynamicConditional,
            Return,
            Nop,
        ] {
            assert!(is_branch_or_nop(k), "{k:?}");
        }
        for k in [ContextSwitch, Bug, Stac, Clac, Std, Cld, Trap, Endbr, Other] {
            assert!(!is_branch_or_nop(k), "{k:?}");
        }
    }
}
