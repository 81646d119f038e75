//! Code patches objtool makes besides adding sections: `--hacks=jump_label` turns
//! compiler-emitted jump-label `jmp`s into NOPs of the same length and makes their
//! relocation `R_X86_64_NONE` (objtool: `handle_jump_alt()`, `elf_write_insn()`,
//! `set_reloc_type()`).
//!
//! Patches are [`edits::Patch`]es at offsets of input sections; the writer places them in
//! the output object (whose existing sections keep their contents), with or without new
//! sections.

use object::read::elf::{Rela as _, SectionHeader as _};

use crate::cfg::Program;
use crate::decode::{InsnId, InsnKind};
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

/// The relocations of one section by offset: (offset, record index), sorted by offset
/// and, at one offset, the last record first (objtool's lookups find the newest).
struct RelaIndex {
    rsec: SecId,
    sorted: Vec<(u64, usize)>,
}

impl RelaIndex {
    fn new(obj: &Object<'_>, sec: SecId) -> Result<Option<Self>> {
        let Some(rsec) = obj.rela_section_for(sec) else {
            return Ok(None);
        };
        let mut sorted: Vec<(u64, usize)> = obj
            .rela_records(rsec)?
            .iter()
            .enumerate()
            .map(|(i, r)| (r.r_offset(LE), i))
            .collect();
        sorted.sort_unstable_by_key(|&(o, i)| (o, std::cmp::Reverse(i)));
        Ok(Some(RelaIndex { rsec, sorted }))
    }

    /// objtool's `set_reloc_type()` on the relocation with the lowest offset inside
    /// `[off, off + len)`: the patch that writes `r_type` into its `r_info`, if any.
    fn type_patch(&self, off: u64, len: u64, r_type: u32) -> Option<Patch> {
        let k = self.sorted.partition_point(|&(o, _)| o < off);
        let &(o, i) = self.sorted.get(k)?;
        // r_info is at +8 in an Elf64_Rela; its low 32 bits are the type
        (o < off.saturating_add(len)).then(|| Patch {
            section: self.rsec,
            offset: i as u64 * 24 + 8,
            bytes: r_type.to_le_bytes().to_vec(),
        })
    }
}

/// objtool's `set_reloc_type()` on the relocation with the lowest offset inside
/// `[off, off + len)` of section `sec` (the last such record on a tie): the patch that
/// writes `r_type` into its `r_info`, if there is such a relocation.
pub fn reloc_type_patch(
    obj: &Object<'_>,
    sec: SecId,
    off: u64,
    len: u64,
    r_type: u32,
) -> Result<Option<Patch>> {
    Ok(RelaIndex::new(obj, sec)?.and_then(|x| x.type_patch(off, len, r_type)))
}

/// The patches that turn each (section, offset, length) instruction of `obj` into a NOP
/// and set the type of the first relocation inside it to `R_X86_64_NONE`.
pub fn nop_patches(obj: &Object<'_>, nops: &[(SecId, u64, u8)]) -> Result<Vec<Patch>> {
    let mut out = Vec::new();
    // (one index per section: a vmlinux.o has thousands of jump labels in a section of
    // a million relocations)
    let mut index: rustc_hash::FxHashMap<SecId, Option<RelaIndex>> = Default::default();
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
        let x = match index.entry(sec) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(RelaIndex::new(obj, sec)?),
        };
        out.extend(
            x.as_ref()
                .and_then(|x| x.type_patch(off, u64::from(len), 0)),
        );
    }
    Ok(out)
}

/// objtool: `arch_ret_insn()` — `ret; int3` then a NOP filling the instruction.
fn ret_bytes(len: u8) -> Option<Vec<u8>> {
    let mut b = match len {
        1 => vec![0xc3],
        2..=5 => vec![0xc3, 0xcc],
        _ => return None,
    };
    if len > 2 {
        b.extend_from_slice(nop_bytes(len - 2)?);
    }
    Some(b)
}

/// `--hacks=noinstr` (objtool: that case of `annotate_call_site()`): the KCOV/TSAN hook
/// calls the build made NOPs (a tail call a `ret; int3`) in noinstr code, written into the
/// object — the instruction's bytes (`arch_nop_insn()`/`arch_ret_insn()`) and its
/// relocation's type, `R_X86_64_NONE` — in file order.
pub fn noinstr_hook_patches(p: &Program<'_, '_>) -> Vec<Patch> {
    let mut out = Vec::new();
    if !p.opts.hack_noinstr {
        return out;
    }
    for k in 0..p.nreal {
        let id = InsnId(k as u32);
        let sec = p.insns.sec_of(id);
        if !p.sec_noinstr[sec.0 as usize] {
            continue;
        }
        let (insn, a) = (p.insn(id), p.attr(id));
        if insn.kind == a.kind || !matches!(a.kind, InsnKind::Nop | InsnKind::Return) {
            continue;
        }
        let Some(dest) = a.call_dest.get() else {
            continue;
        };
        if !p.syms.get(dest).profiling_func {
            continue;
        }
        let bytes = match a.kind {
            InsnKind::Return => ret_bytes(insn.len),
            _ => nop_bytes(insn.len).map(<[u8]>::to_vec),
        };
        let Some(bytes) = bytes else {
            continue;
        };
        let off = u64::from(insn.offset);
        if let Ok(Some(r)) = reloc_type_patch(p.obj, sec, off, u64::from(insn.len), 0) {
            out.push(r);
        }
        out.push(Patch {
            section: sec,
            offset: off,
            bytes,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret_then_int3_then_a_nop() {
        assert_eq!(ret_bytes(1), Some(vec![0xc3]));
        assert_eq!(ret_bytes(2), Some(vec![0xc3, 0xcc]));
        assert_eq!(ret_bytes(5), Some(vec![0xc3, 0xcc, 0x0f, 0x1f, 0x00]));
        assert_eq!(ret_bytes(6), None);
    }
}
