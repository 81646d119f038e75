//! Code patches objtool makes besides adding sections: `--hacks=jump_label` turns
//! compiler-emitted jump-label `jmp`s into NOPs of the same length and makes their
//! relocation `R_X86_64_NONE` (objtool: `handle_jump_alt()`, `elf_write_insn()`,
//! `set_reloc_type()`).
//!
//! Patches are [`edits::Patch`]es at offsets of input sections; the writer places them in
//! the output object (whose existing sections keep their contents), with or without new
//! sections.

use object::read::elf::{Rela as _, SectionHeader as _};

use crate::edits::Patch;
use crate::elf::{LE, Object, SecId};
use crate::error::{Error, Result, WriteError};

/// objtool's NOP encodings (`arch_nop_insn()`).
pub fn nop_bytes(len: u8) -> Option<&'static [u8]> {
    Some(match len {
        1 => &[0x90],
        2 => &[0x66, 0x90],
        3 => &[0x0f, 0x1f, 0x00],
        4 => &[0x0f, 0x1f, 0x40, 0x00],
        5 => &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        _ => return None,
    })
}

/// objtool's `set_reloc_type()` on the relocation with the lowest offset inside
/// `[off, off + len)` of section `sec` (the first such record on a tie): the patch that
/// writes `r_type` into its `r_info`, if there is such a relocation.
pub fn reloc_type_patch(
    obj: &Object<'_>,
    sec: SecId,
    off: u64,
    len: u64,
    r_type: u32,
) -> Result<Option<Patch>> {
    let Some(rsec) = obj.rela_section_for(sec) else {
        return Ok(None);
    };
    let relas = obj.rela_records(rsec)?;
    let found = relas
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let o = r.r_offset(LE);
            o >= off && o < off + len
        })
        .min_by_key(|(i, r)| (r.r_offset(LE), std::cmp::Reverse(*i)));
    // r_info is at +8 in an Elf64_Rela; its low 32 bits are the type
    Ok(found.map(|(i, _)| Patch {
        section: rsec,
        offset: i as u64 * 24 + 8,
        bytes: r_type.to_le_bytes().to_vec(),
    }))
}

/// The patches that turn each (section, offset, length) instruction of `obj` into a NOP
/// and set the type of the first relocation inside it to `R_X86_64_NONE`.
pub fn nop_patches(obj: &Object<'_>, nops: &[(SecId, u64, u8)]) -> Result<Vec<Patch>> {
    let mut out = Vec::new();
    for &(sec, off, len) in nops {
        let nop = nop_bytes(len).ok_or(WriteError::BadNopSize(len))?;
        let h = obj.section(sec)?;
        if off
            .checked_add(u64::from(len))
            .is_none_or(|end| end > h.sh_size(LE))
        {
            return Err(Error::malformed("jump label outside its section"));
        }
        out.push(Patch {
            section: sec,
            offset: off,
            bytes: nop.to_vec(),
        });
        out.extend(reloc_type_patch(obj, sec, off, u64::from(len), 0)?);
    }
    Ok(out)
}
