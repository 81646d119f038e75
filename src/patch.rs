//! Code patches objtool makes besides adding sections: `--hacks=jump_label` turns
//! compiler-emitted jump-label `jmp`s into NOPs of the same length and makes their
//! relocation `R_X86_64_NONE` (objtool: `handle_jump_alt()`, `elf_write_insn()`,
//! `set_reloc_type()`); the NOP and `ret; int3` encodings objtool writes (`arch_nop_insn()`,
//! `arch_ret_insn()`).
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

/// objtool's `arch_ret_insn()`: `ret; int3` and a NOP to fill `len` bytes.
pub fn ret_bytes(len: u8) -> Option<&'static [u8]> {
    Some(match len {
        1 => &[0xc3],
        2 => &[0xc3, 0xcc],
        3 => &[0xc3, 0xcc, 0x90],
        4 => &[0xc3, 0xcc, 0x66, 0x90],
        5 => &[0xc3, 0xcc, 0x0f, 0x1f, 0x00],
        _ => return None,
    })
}

/// The relocations of one section ordered for objtool's `find_reloc_by_dest_range()`:
/// (offset, record index), by offset, the last record first among equal offsets.
struct RelocOrder {
    rsec: SecId,
    by_offset: Vec<(u64, std::cmp::Reverse<u32>)>,
}

impl RelocOrder {
    fn new(obj: &Object<'_>, sec: SecId) -> Result<Option<Self>> {
        let Some(rsec) = obj.rela_section_for(sec) else {
            return Ok(None);
        };
        let mut by_offset: Vec<_> = obj
            .rela_records(rsec)?
            .iter()
            .enumerate()
            .map(|(i, r)| (r.r_offset(LE), std::cmp::Reverse(i as u32)))
            .collect();
        by_offset.sort_unstable();
        Ok(Some(RelocOrder { rsec, by_offset }))
    }

    /// objtool's `set_reloc_type()` on the relocation with the lowest offset inside
    /// `[off, off + len)` (the last such record on a tie): the patch that writes `r_type`
    /// into its `r_info`, if there is such a relocation.
    fn type_patch(&self, off: u64, len: u64, r_type: u32) -> Option<Patch> {
        let p = self.by_offset.partition_point(|&(o, _)| o < off);
        let &(o, std::cmp::Reverse(i)) = self.by_offset.get(p)?;
        // r_info is at +8 in an Elf64_Rela; its low 32 bits are the type
        (o < off.saturating_add(len)).then(|| Patch {
            section: self.rsec,
            offset: u64::from(i) * 24 + 8,
            bytes: r_type.to_le_bytes().to_vec(),
        })
    }
}

/// The patches that turn each (section, offset, length) instruction of `obj` into a NOP
/// and set the type of the first relocation inside it to `R_X86_64_NONE`. (Each section's
/// relocations are ordered once: `vmlinux.o` has thousands of jump labels in a `.text`
/// of millions of relocations.)
pub fn nop_patches(obj: &Object<'_>, nops: &[(SecId, u64, u8)]) -> Result<Vec<Patch>> {
    let mut out = Vec::new();
    let mut orders: rustc_hash::FxHashMap<SecId, Option<RelocOrder>> = Default::default();
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
        let order = match orders.entry(sec) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(RelocOrder::new(obj, sec)?),
        };
        out.extend(
            order
                .as_ref()
                .and_then(|o| o.type_patch(off, u64::from(len), 0)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret_bytes_are_ret_int3_and_a_nop_of_the_length() {
        for len in 1..=5u8 {
            let b = ret_bytes(len).unwrap();
            assert_eq!(b.len(), len as usize);
            assert_eq!(&b[..2.min(b.len())], &[0xc3, 0xcc][..2.min(b.len())]);
            if len >= 3 {
                assert_eq!(&b[2..], nop_bytes(len - 2).unwrap());
            }
            assert_eq!(nop_bytes(len).unwrap().len(), len as usize);
        }
        assert_eq!((ret_bytes(0), ret_bytes(6)), (None, None));
        assert_eq!((nop_bytes(0), nop_bytes(6)), (None, None));
    }

    /// The ordered lookup finds what a scan of every relocation finds: the lowest offset
    /// in range, the last record among equal offsets.
    #[test]
    fn type_patch_matches_a_scan() {
        let mut rng = crate::testing::XorShift::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let n = rng.below(40) as usize;
            let offsets: Vec<u64> = (0..n).map(|_| rng.below(64)).collect();
            let mut by_offset: Vec<_> = offsets
                .iter()
                .enumerate()
                .map(|(i, &o)| (o, std::cmp::Reverse(i as u32)))
                .collect();
            by_offset.sort_unstable();
            let order = RelocOrder {
                rsec: SecId(7),
                by_offset,
            };
            for _ in 0..50 {
                let (off, len) = (rng.below(70), rng.below(6));
                let want = (0..n)
                    .filter(|&i| offsets[i] >= off && offsets[i] < off + len)
                    .min_by_key(|&i| (offsets[i], std::cmp::Reverse(i)));
                let got = order.type_patch(off, len, 0);
                assert_eq!(
                    got.map(|p| p.offset),
                    want.map(|i| i as u64 * 24 + 8),
                    "off {off} len {len} in {offsets:?}"
                );
            }
        }
    }
}
