//! Code patches objtool makes besides ORC: `--hacks=jump_label` turns compiler-emitted
//! jump-label `jmp`s into NOPs of the same length and makes their relocation
//! `R_X86_64_NONE` (objtool: `handle_jump_alt()`, `elf_write_insn()`, `set_reloc_type()`).
//!
//! Patches are applied to the bytes of an output object (the input, or the writer's
//! result, whose existing sections keep their indices), so they work with or without ORC.

use object::read::elf::{Rela as _, SectionHeader as _};

use crate::elf::{LE, Object, SecId};
use crate::error::{Error, Result};

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

/// Turns each (section, offset, length) instruction into a NOP and sets the type of the
/// first relocation inside it to `R_X86_64_NONE`.
pub fn nop_out(bytes: &mut [u8], nops: &[(SecId, u64, u8)]) -> Result<()> {
    if nops.is_empty() {
        return Ok(());
    }
    // Where to write, computed on an immutable view first.
    let mut writes: Vec<(usize, &'static [u8])> = Vec::new();
    let mut reloc_types: Vec<usize> = Vec::new();
    {
        let obj = Object::parse(bytes)?;
        for &(sec, off, len) in nops {
            let nop =
                nop_bytes(len).ok_or_else(|| Error::Other(format!("invalid NOP size: {len}")))?;
            let h = obj.section(sec)?;
            let start = h
                .sh_offset(LE)
                .checked_add(off)
                .filter(|&s| s + u64::from(len) <= h.sh_offset(LE) + h.sh_size(LE))
                .ok_or_else(|| Error::malformed("jump label outside its section"))?;
            writes.push((start as usize, nop));
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
                    reloc_types.push(rh.sh_offset(LE) as usize + i * 24 + 8);
                }
            }
        }
    }
    for (at, nop) in writes {
        bytes[at..at + nop.len()].copy_from_slice(nop);
    }
    for at in reloc_types {
        bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    }
    Ok(())
}
