//! `--ibt`: every address of code that code or data takes must point at an ENDBR (or be
//! annotated), and `.ibt_endbr_seal` lists the ENDBRs at function starts whose address
//! nothing takes (the kernel seals them: turns them into NOPs). objtool: `validate_ibt()`,
//! `validate_ibt_insn()`, `validate_ibt_data_reloc()`, `noendbr_range()`,
//! `create_ibt_endbr_seal_sections()` and the `endbr_list` of `decode_instructions()`.
//!
//! The relocations are read while the model is built ([`crate::cfg::ibt::IbtRefs`]); the
//! rules here run after the walk, so that an instruction warning respects the functions
//! the walk already warned about (objtool's `WARN_INSN()`).

use object::elf;
use rustc_hash::FxHashSet;

use crate::cfg::{AnalysisError, Program};
use crate::decode::{InsnId, InsnKind};
use crate::edits::{Edits, NewReloc, NewSection, RelocTarget, Step};
use crate::elf::SecId;
use crate::report::{FindingKind, Findings};

/// What [`validate`] leaves for [`sections`]: the ENDBRs whose address is taken (objtool
/// removes them from `endbr_list`: `mark_endbr_used()`).
#[derive(Default)]
pub(super) struct Used(FxHashSet<InsnId>);

/// objtool: `validate_ibt()`: the relocations of every instruction but branches and NOPs,
/// then those of every data section but the ones that only record code addresses.
pub(super) fn validate(p: &Program<'_, '_>, f: &mut Findings) -> Result<Used, AnalysisError> {
    let mut used = Used::default();
    for r in &p.ibt_refs.code {
        // validate_ibt_insn()
        if p.attr(r.dest).kind == InsnKind::Endbr {
            used.0.insert(r.dest);
            continue;
        }
        // from a function to itself: _THIS_IP_ or IRET-to-self
        if let (Some(d), Some(i)) = (p.insn_func(r.dest), p.insn_func(r.insn)) {
            if p.syms.get(d).pfunc == p.syms.get(i).pfunc {
                continue;
            }
        }
        if p.attr(r.dest).noendbr() || noendbr_range(p, r.dest) {
            continue;
        }
        let dest = p.insn_location(r.dest);
        p.warn_insn(f, r.insn, FindingKind::RelocationToNoEndbr { dest });
    }
    for r in &p.ibt_refs.data {
        // validate_ibt_data_reloc()
        if p.attr(r.dest).kind == InsnKind::Endbr {
            used.0.insert(r.dest);
            continue;
        }
        if p.attr(r.dest).noendbr() {
            continue;
        }
        let dest = p.insn_location(r.dest);
        f.warn_at(
            p.location(r.sec, r.offset),
            FindingKind::DataRelocationToNoEndbr { dest },
        );
    }
    Ok(used)
}

/// objtool: `noendbr_range()` — `insn` is the end of a symbol that starts with an ENDBR
/// or is annotated NOENDBR (a code range: `_end` labels and the like).
fn noendbr_range(p: &Program<'_, '_>, insn: InsnId) -> bool {
    let sec = p.insns.sec_of(insn);
    let off = u64::from(p.insn(insn).offset);
    let Some(s) = p.syms.containing(sec, off.wrapping_sub(1)) else {
        return false;
    };
    let sym = p.syms.get(s);
    let Some(first) = p.insns.at(sym.sec, sym.offset) else {
        return false;
    };
    if p.attr(first).kind != InsnKind::Endbr && !p.attr(first).noendbr() {
        return false;
    }
    off == sym.end()
}

/// objtool's `endbr_list` as `decode_instructions()` fills it: the ENDBR at the start of
/// each function with a size (aliases and embedded-instruction symbols aside), once, in
/// section order and then symbol-list order.
fn endbr_list(p: &Program<'_, '_>) -> Vec<InsnId> {
    let mut seen = FxHashSet::default();
    let mut out = Vec::new();
    for (sec, list) in p.syms.lists.iter().enumerate() {
        if !p.sec_exec.get(sec).copied().unwrap_or(false) {
            continue;
        }
        for &s in list {
            let sym = p.syms.get(s);
            if !sym.is_func() || sym.embedded_insn || sym.alias != s || sym.len == 0 {
                continue;
            }
            let Some(insn) = p.insns.at(SecId(sec as u32), sym.offset) else {
                continue;
            };
            if p.attr(insn).kind == InsnKind::Endbr && seen.insert(insn) {
                out.push(insn);
            }
        }
    }
    out
}

/// objtool: `create_ibt_endbr_seal_sections()`: `.ibt_endbr_seal`, one PC32 relocation
/// (to the section symbol, the ENDBR's offset as addend) per ENDBR of `endbr_list` whose
/// address nothing takes.
pub(super) fn sections(
    p: &Program<'_, '_>,
    used: &Used,
    f: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    if p.obj.section_by_name(b".ibt_endbr_seal").is_some() {
        f.warn(FindingKind::IbtSealAlreadyPresent);
        return Ok(());
    }
    let seal: Vec<InsnId> = endbr_list(p)
        .into_iter()
        .filter(|i| !used.0.contains(i))
        .collect();
    if seal.is_empty() {
        return Ok(());
    }
    let mut relocs = Vec::with_capacity(seal.len());
    for (idx, &insn) in seal.iter().enumerate() {
        let off = u64::from(p.insn(insn).offset);
        if p.opts.module {
            if let Some(s) = p.attr(insn).sym.get() {
                let sym = p.syms.get(s);
                if sym.is_func()
                    && off == sym.offset
                    && matches!(&*sym.name, "init_module" | "cleanup_module")
                {
                    f.warn(FindingKind::NotIndirectCallTarget {
                        function: sym.name.to_string(),
                    });
                }
            }
        }
        relocs.push(NewReloc {
            offset: idx as u64 * 4,
            r_type: elf::R_X86_64_PC32,
            target: RelocTarget::SectionSymbol(p.insns.sec_of(insn)),
            // (an int in objtool's elf_init_reloc_text_sym())
            addend: i64::from(off as i32),
        });
    }
    edits.steps.push(Step::Section(NewSection::new(
        b".ibt_endbr_seal",
        4,
        vec![0; seal.len() * 4],
        Some(relocs),
    )));
    Ok(())
}
