//! What `--ibt` needs of the relocations, recorded while they are at hand: every address of
//! an instruction that code or data takes (the actions run after the walk, when the model
//! no longer has the relocations). `actions::ibt` applies objtool's rules to them.
//!
//! objtool: the relocation walks of `validate_ibt_insn()` and `validate_ibt()` (check.c).

use object::elf;

use super::builder::Builder;
use super::program::LOOKUP_MIN_TASK;
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

/// Relocations of a data section per parallel task.
const DATA_CHUNK: usize = 1 << 16;

impl Builder<'_, '_> {
    /// Records [`IbtRefs`] (after every pass that changes an instruction's kind).
    pub(super) fn record_ibt_refs(&mut self) {
        let n = self.nreal as u32;
        let step = LOOKUP_MIN_TASK as u32;
        let ranges: Vec<(u32, u32)> = (0..n)
            .step_by(step as usize)
            .map(|a| (a, n.min(a + step)))
            .collect();
        let code: Vec<Vec<CodeRef>> = self.map_all(&ranges, 1, |&(a, b)| {
            let mut out = Vec::new();
            for k in a..b {
                self.code_refs(InsnId(k), &mut out);
            }
            out
        });
        let mut chunks: Vec<(SecId, usize, usize)> = Vec::new();
        for sec in 0..self.sec_exec.len() {
            let secid = SecId(sec as u32);
            if self.sec_exec[sec] || skips_data_section(&self.sec_names[sec]) {
                continue;
            }
            let Some(t) = self.relocs.table(secid) else {
                continue;
            };
            for start in (0..t.len()).step_by(DATA_CHUNK) {
                chunks.push((secid, start, (start + DATA_CHUNK).min(t.len())));
            }
        }
        let data: Vec<Vec<DataRef>> = self.map_all(&chunks, 1, |&(sec, a, b)| {
            let Some(t) = self.relocs.table(sec) else {
                return Vec::new();
            };
            (a..b)
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
        });
        self.ibt_refs = IbtRefs {
            code: code.into_iter().flatten().collect(),
            data: data.into_iter().flatten().collect(),
        };
    }

    /// objtool: the relocation loop of `validate_ibt_insn()` — each relocation inside the
    /// instruction, lowest offset first (the last in the file among equal offsets),
    /// except to static call trampolines.
    fn code_refs(&self, id: InsnId, out: &mut Vec<CodeRef>) {
        if is_branch_or_nop(self.attrs[id.idx()].kind) {
            return;
        }
        let i = self.insn(id);
        let sec = self.insns.sec_of(id);
        let Some(t) = self.relocs.table(sec) else {
            return;
        };
        let (start, end) = (u64::from(i.offset), i.end());
        let mut from = start;
        while from < end {
            let Some(k) = t.in_range(from, end - from) else {
                break;
            };
            let r = t.get(k as usize);
            from = r.offset.saturating_add(1);
            let s = self.syms.get(r.sym);
            if s.static_call_tramp {
                continue;
            }
            let mut off = s.offset;
            if matches!(r.ty, elf::R_X86_64_PC32 | elf::R_X86_64_PLT32) {
                // objtool: arch_dest_reloc_offset()
                // (an int in objtool)
                off = off.wrapping_add((r.addend as i32).wrapping_add(4) as i64 as u64);
            } else {
                off = off.wrapping_add(r.addend as u64);
            }
            if let Some(dest) = self.insns.at(s.sec, off) {
                out.push(CodeRef { insn: id, dest });
            }
        }
    }
}
