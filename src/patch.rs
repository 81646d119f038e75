//! Code patches objtool makes besides ORC: `--hacks=jump_label` turns compiler-emitted
//! jump-label `jmp`s into NOPs of the same length and makes their relocation
//! `R_X86_64_NONE` (objtool: `handle_jump_alt()`, `elf_write_insn()`, `set_reloc_type()`).
//!
//! Patches are applied to the bytes of an output object (the input, or the writer's
//! result, whose existing sections keep their indices), so they work with or without ORC.

use object::read::elf::{Rela as _, SectionHeader as _};

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

/// The byte writes that turn each (section, offset, length) instruction of `obj` into a
/// NOP and set the type of the first relocation inside it to `R_X86_64_NONE`, as (file
/// offset, bytes).
pub fn nop_patches(obj: &Object<'_>, nops: &[(SecId, u64, u8)]) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for &(sec, off, len) in nops {
        let nop = nop_bytes(len).ok_or(WriteError::BadNopSize(len))?;
        let h = obj.section(sec)?;
        let start = h
            .sh_offset(LE)
            .checked_add(off)
            .filter(|&s| s + u64::from(len) <= h.sh_offset(LE) + h.sh_size(LE))
            .ok_or_else(|| Error::malformed("jump label outside its section"))?;
        out.push((start, nop.to_vec()));
        if let Some(rsec) = obj.rela_section_for(sec) {
            let relas = obj.rela_records(rsec)?;
            let rh = obj.section(rsec)?;
            // objtool: the relocation with the lowest offset inside the instruction
            let found = relas
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    let o = r.r_offset(LE);
                    o >= off && o < off + u64::from(len)
                })
                .min_by_key(|(i, r)| (r.r_offset(LE), std::cmp::Reverse(*i)));
            if let Some((i, _)) = found {
                // r_info is at +8 in an Elf64_Rela; its low 32 bits are the type
                out.push((
                    rh.sh_offset(LE) + i as u64 * 24 + 8,
                    0u32.to_le_bytes().to_vec(),
                ));
            }
        }
    }
    Ok(out)
}

/// Applies [`nop_patches`] to the bytes of an object.
pub fn nop_out(bytes: &mut [u8], nops: &[(SecId, u64, u8)]) -> Result<()> {
    if nops.is_empty() {
        return Ok(());
    }
    let patches = nop_patches(&Object::parse(bytes)?, nops)?;
    for (at, b) in patches {
        let at = at as usize;
        bytes[at..at + b.len()].copy_from_slice(&b);
    }
    Ok(())
}

/// Applies [`nop_patches`] to an object file, read back through a map.
pub fn nop_out_file(file: &std::fs::File, nops: &[(SecId, u64, u8)]) -> Result<()> {
    use std::os::unix::fs::FileExt as _;
    if nops.is_empty() {
        return Ok(());
    }
    let patches = {
        let map = crate::elf::input::map_file(file)?;
        nop_patches(&Object::parse(&map)?, nops)?
    };
    for (at, b) in patches {
        file.write_all_at(&b, at)?;
    }
    Ok(())
}
