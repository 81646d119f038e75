//! What the site-list actions share: objtool's "file already has …" test and a section of
//! one text relocation per site (`.retpoline_sites`, `.return_sites`, `.call_sites`,
//! `.cfi_sites`, `__mcount_loc`), and the byte rewrites of the calls objtool NOPs.

use object::elf;

use crate::cfg::Program;
use crate::cfg::sites::RewriteTo;
use crate::decode::InsnId;
use crate::edits::{Edits, NewReloc, NewSection, Patch, RelocTarget};
use crate::elf::SecId;
use crate::error::WriteError;
use crate::patch::{nop_bytes, ret_bytes};
use crate::report::{FindingKind, Findings};

/// objtool's `find_section_by_name()` before it creates `name`: when the object already
/// has it, warns `message` and says so (the action then skips).
pub(super) fn already_has(
    program: &Program<'_, '_>,
    name: &str,
    message: &'static str,
    findings: &mut Findings,
) -> bool {
    let found = program.obj.section_by_name(name.as_bytes()).is_some();
    if found {
        findings.warn(FindingKind::SiteSectionPresent(message));
    }
    found
}

/// objtool's `elf_init_reloc_text_sym()` for the record at `offset`: `R_X86_64_PC32` to
/// the section symbol of `sec`, the addend the offset there.
pub(super) fn text_reloc(offset: u64, sec: SecId, at: u64) -> NewReloc {
    NewReloc {
        offset,
        r_type: elf::R_X86_64_PC32,
        target: RelocTarget::SectionSymbol(sec),
        // (objtool: `int addend = insn_off`)
        addend: i64::from(at as i32),
    }
}

/// The location of each instruction as (section, offset).
pub(super) fn insn_places<'p>(
    program: &'p Program<'_, '_>,
    insns: &'p [InsnId],
) -> impl Iterator<Item = (SecId, u64)> + 'p {
    insns
        .iter()
        .map(|&i| (program.insns.sec_of(i), u64::from(program.insn(i).offset)))
}

/// A site-list section as each `create_*_sections()` makes it: objtool's "file already
/// has" warning (`message`) and nothing when the object has `name` already, nothing for an
/// empty list, else [`text_site_section`] over `sites`.
pub(super) fn site_list(
    program: &Program<'_, '_>,
    sites: &[InsnId],
    name: &str,
    entsize: u64,
    message: &'static str,
    findings: &mut Findings,
) -> Option<NewSection> {
    if already_has(program, name, message, findings) || sites.is_empty() {
        return None;
    }
    let places = insn_places(program, sites).collect::<Vec<_>>();
    Some(text_site_section(name, entsize, places.into_iter()))
}

/// objtool's `elf_create_section_pair(name, entsize, nr, nr)` filled by
/// `elf_init_reloc_text_sym()`, record i pointing at the i-th place (zeroed data).
pub(super) fn text_site_section(
    name: &str,
    entsize: u64,
    places: impl ExactSizeIterator<Item = (SecId, u64)>,
) -> NewSection {
    let n = places.len() as u64;
    let relocs = places
        .enumerate()
        .map(|(i, (sec, off))| text_reloc(i as u64 * entsize, sec, off))
        .collect();
    NewSection::new(
        name.as_bytes(),
        entsize,
        vec![0; (n * entsize) as usize],
        Some(relocs),
    )
}

/// The bytes objtool wrote while the model was built (`annotate_call_site()` with `--mnop`
/// or `--hacks=noinstr`): each instruction overwritten, and the type of its relocation
/// set to `R_X86_64_NONE` (the low word of `r_info`, at +8 in an `Elf64_Rela`).
pub(super) fn rewrites(program: &Program<'_, '_>, edits: &mut Edits) -> Result<(), WriteError> {
    for rw in &program.sites.rewrites {
        let insn = program.insn(rw.insn);
        let bytes = match rw.to {
            RewriteTo::Nop => nop_bytes(insn.len),
            RewriteTo::Ret => ret_bytes(insn.len),
        };
        // (objtool prints "invalid NOP size" and crashes on a longer instruction)
        let bytes = bytes.ok_or(WriteError::BadNopSize(insn.len))?;
        if let Some((rela, k)) = rw.reloc {
            edits.patches.push(Patch {
                section: rela,
                offset: u64::from(k) * 24 + 8,
                bytes: elf::R_X86_64_NONE.to_le_bytes().to_vec(),
            });
        }
        edits.patches.push(Patch {
            section: program.insns.sec_of(rw.insn),
            offset: u64::from(insn.offset),
            bytes: bytes.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_site_section_has_one_pc32_per_place_at_entsize_steps() {
        let s = text_site_section(
            ".return_sites",
            4,
            [(SecId(2), 0x10), (SecId(5), 0x7fff_fff0)].into_iter(),
        );
        assert_eq!(s.name, b".return_sites");
        assert_eq!((s.entsize, s.align, s.data.len()), (4, 1, 8));
        assert_eq!(s.flags, u64::from(elf::SHF_ALLOC));
        let r = s.relocs.unwrap();
        assert_eq!(
            r,
            vec![
                text_reloc(0, SecId(2), 0x10),
                text_reloc(4, SecId(5), 0x7fff_fff0)
            ]
        );
        assert_eq!(r[1].target, RelocTarget::SectionSymbol(SecId(5)));
        assert_eq!(r[1].addend, 0x7fff_fff0);
        assert_eq!(r[0].r_type, elf::R_X86_64_PC32);
    }
}
