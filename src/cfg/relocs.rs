//! Relocations by target section and offset.
//!
//! objtool: `find_reloc_by_dest()` / `find_reloc_by_dest_range()`. Only the relocation
//! sections the analysis reads are indexed (never `.rela.debug_*`).

use object::read::elf::Rela as _;

use super::symbols::SymIdx;
use crate::elf::{LE, Object, SecId};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    pub offset: u64,
    pub sym: SymIdx,
    pub ty: u32,
    pub addend: i64,
}

/// The relocations of one section, in file order, with an offset index.
pub struct RelocTable {
    pub rela_sec: SecId,
    pub relocs: Vec<Reloc>,
    /// Indices into `relocs`, sorted by (offset, index descending).
    by_offset: Vec<u32>,
}

impl RelocTable {
    /// The relocation at exactly `off` (the last one in the file, when several).
    pub fn at(&self, off: u64) -> Option<u32> {
        self.in_range(off, 1)
    }

    /// The relocation with the lowest offset inside `[off, off + len)`.
    pub fn in_range(&self, off: u64, len: u64) -> Option<u32> {
        let i = self
            .by_offset
            .partition_point(|&k| self.relocs[k as usize].offset < off);
        let k = *self.by_offset.get(i)?;
        (self.relocs[k as usize].offset < off.saturating_add(len)).then_some(k)
    }
}

#[derive(Default)]
pub struct Relocs {
    per_sec: Vec<Option<RelocTable>>,
}

impl Relocs {
    pub fn read(obj: &Object<'_>, nsyms: usize) -> Result<Self> {
        let mut per_sec: Vec<Option<RelocTable>> = (0..obj.section_count()).map(|_| None).collect();
        for target in obj.section_ids() {
            let Some(rela_sec) = obj.rela_section_for(target) else {
                continue;
            };
            let name = obj.section_name(target)?;
            if name.starts_with(b".debug") {
                continue;
            }
            let records = obj.rela_records(rela_sec)?;
            let mut relocs = Vec::with_capacity(records.len());
            for r in records {
                let sym = r.r_sym(LE, false);
                if sym as usize >= nsyms {
                    return Err(crate::Error::malformed(format!(
                        "relocation symbol index {sym} out of range ({nsyms} symbols)"
                    )));
                }
                relocs.push(Reloc {
                    offset: r.r_offset(LE),
                    sym,
                    ty: r.r_type(LE, false),
                    addend: r.r_addend(LE),
                });
            }
            let mut by_offset: Vec<u32> = (0..relocs.len() as u32).collect();
            by_offset.sort_by_key(|&k| (relocs[k as usize].offset, std::cmp::Reverse(k)));
            per_sec[target.0 as usize] = Some(RelocTable {
                rela_sec,
                relocs,
                by_offset,
            });
        }
        Ok(Relocs { per_sec })
    }

    pub fn table(&self, sec: SecId) -> Option<&RelocTable> {
        self.per_sec.get(sec.0 as usize)?.as_ref()
    }

    pub fn at(&self, sec: SecId, off: u64) -> Option<Reloc> {
        let t = self.table(sec)?;
        t.at(off).map(|k| t.relocs[k as usize])
    }

    pub fn in_range(&self, sec: SecId, off: u64, len: u64) -> Option<Reloc> {
        let t = self.table(sec)?;
        t.in_range(off, len).map(|k| t.relocs[k as usize])
    }
}
