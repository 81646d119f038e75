//! Relocations by target section and offset.
//!
//! objtool: `find_reloc_by_dest()` / `find_reloc_by_dest_range()`. Only the relocation
//! sections the analysis reads are indexed (never `.rela.debug_*`).

use object::read::elf::Rela as _;

use crate::elf::{LE, Object, Rela, SecId};
use crate::error::Result;
use crate::ids::SymId;
use crate::offsets::OffsetIndex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    pub offset: u64,
    pub sym: SymId,
    pub ty: u32,
    pub addend: i64,
}

/// Where a table's relocations are: the object's own records, read in place (or, in unit
/// tests, a list made by hand).
enum Records<'data> {
    Mapped(&'data [Rela]),
    #[cfg(test)]
    Owned(Vec<Reloc>),
}

/// The relocations of one section, in file order, with an offset index. The records are
/// read where they are in the object (not copied).
pub struct RelocTable<'data> {
    pub rela_sec: SecId,
    records: Records<'data>,
    /// For each offset with relocations, in offset order: the last of them in the file
    /// (the one objtool's lookups find).
    by_offset: Vec<u32>,
    /// The offsets of `by_offset`, indexed; none when they are too sparse for it to pay
    /// (then lookups binary-search `by_offset`).
    index: Option<OffsetIndex>,
}

impl<'data> RelocTable<'data> {
    fn new(rela_sec: SecId, records: Records<'data>) -> Self {
        let mut t = RelocTable {
            rela_sec,
            records,
            by_offset: Vec::new(),
            index: None,
        };
        let offset = |k: u32| t.offset(k as usize);
        let n = t.len();
        let mut by_offset: Vec<u32> = (0..n as u32).collect();
        by_offset.sort_by_key(|&k| (offset(k), std::cmp::Reverse(k)));
        by_offset.dedup_by_key(|&mut k| offset(k));
        let size = by_offset.last().map_or(0, |&k| offset(k).saturating_add(1));
        // (a hostile offset far out must not make the index huge)
        if size / 256 <= 4 * n as u64 + 1024 {
            let index = OffsetIndex::new(by_offset.len(), |p| offset(by_offset[p]), size);
            t.index = Some(index);
        }
        t.by_offset = by_offset;
        t
    }

    /// How many relocations the table has.
    pub fn len(&self) -> usize {
        match &self.records {
            Records::Mapped(r) => r.len(),
            #[cfg(test)]
            Records::Owned(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Relocation `k` in file order.
    pub fn get(&self, k: usize) -> Reloc {
        match &self.records {
            Records::Mapped(r) => {
                let r = &r[k];
                Reloc {
                    offset: r.r_offset(LE),
                    sym: SymId(r.r_sym(LE, false)),
                    ty: r.r_type(LE, false),
                    addend: r.r_addend(LE),
                }
            }
            #[cfg(test)]
            Records::Owned(r) => r[k],
        }
    }

    fn offset(&self, k: usize) -> u64 {
        match &self.records {
            Records::Mapped(r) => r[k].r_offset(LE),
            #[cfg(test)]
            Records::Owned(r) => r[k].offset,
        }
    }

    /// The relocations in file order.
    pub fn iter(&self) -> impl Iterator<Item = Reloc> + '_ {
        (0..self.len()).map(|k| self.get(k))
    }

    /// How many offsets have relocations.
    pub fn offsets(&self) -> usize {
        self.by_offset.len()
    }

    /// The relocation of the `n`-th offset with relocations, in offset order (the one the
    /// lookups find: the last in the file).
    pub fn nth_offset(&self, n: usize) -> Option<u32> {
        self.by_offset.get(n).copied()
    }

    /// The relocation at exactly `off` (the last one in the file, when several).
    pub fn at(&self, off: u64) -> Option<u32> {
        self.in_range(off, 1)
    }

    /// The relocation with the lowest offset inside `[off, off + len)`.
    pub fn in_range(&self, off: u64, len: u64) -> Option<u32> {
        let pos = match &self.index {
            Some(index) => index.first_in(off, len)? as usize,
            None => {
                let pos = self
                    .by_offset
                    .partition_point(|&k| self.offset(k as usize) < off);
                let k = *self.by_offset.get(pos)?;
                if self.offset(k as usize) >= off.saturating_add(len) {
                    return None;
                }
                pos
            }
        };
        Some(self.by_offset[pos])
    }
}

#[derive(Default)]
pub struct Relocs<'data> {
    per_sec: Vec<Option<RelocTable<'data>>>,
}

impl<'data> Relocs<'data> {
    pub fn read(obj: &Object<'data>, nsyms: usize) -> Result<Self> {
        let mut per_sec: Vec<Option<RelocTable<'data>>> =
            (0..obj.section_count()).map(|_| None).collect();
        for target in obj.section_ids() {
            let Some(rela_sec) = obj.rela_section_for(target) else {
                continue;
            };
            let name = obj.section_name(target)?;
            if name.starts_with(b".debug") {
                continue;
            }
            let records = obj.rela_records(rela_sec)?;
            if let Some(sym) = records
                .iter()
                .map(|r| r.r_sym(LE, false))
                .find(|&sym| sym as usize >= nsyms)
            {
                return Err(crate::Error::malformed(format!(
                    "relocation symbol index {sym} out of range ({nsyms} symbols)"
                )));
            }
            per_sec[target.0 as usize] = Some(RelocTable::new(rela_sec, Records::Mapped(records)));
        }
        Ok(Relocs { per_sec })
    }

    pub fn table(&self, sec: SecId) -> Option<&RelocTable<'data>> {
        self.per_sec.get(sec.0 as usize)?.as_ref()
    }

    pub fn at(&self, sec: SecId, off: u64) -> Option<Reloc> {
        let t = self.table(sec)?;
        t.at(off).map(|k| t.get(k as usize))
    }

    pub fn in_range(&self, sec: SecId, off: u64, len: u64) -> Option<Reloc> {
        let t = self.table(sec)?;
        t.in_range(off, len).map(|k| t.get(k as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexed lookup answers as a scan of all relocations does.
    #[test]
    fn in_range_matches_a_scan() {
        let mut rng = crate::testing::XorShift::new(0x2545_f491_4f6c_dd1du64);
        let mut rand = move |n: u64| rng.below(n);
        for round in 0..200 {
            let n = rand(60) as usize;
            let spread = [16, 300, 5000, 1 << 40][round % 4];
            let relocs: Vec<Reloc> = (0..n)
                .map(|_| Reloc {
                    offset: rand(spread),
                    sym: SymId(0),
                    ty: 0,
                    addend: 0,
                })
                .collect();
            let t = RelocTable::new(SecId(1), Records::Owned(relocs.clone()));
            for _ in 0..200 {
                let off = if n > 0 && rand(2) == 0 {
                    relocs[rand(n as u64) as usize]
                        .offset
                        .saturating_sub(rand(3))
                } else {
                    rand(spread + 600)
                };
                let len = rand(20);
                // the lowest offset in range; among equal offsets the last in the file
                let want = (0..n)
                    .filter(|&k| relocs[k].offset >= off && relocs[k].offset < off + len)
                    .min_by_key(|&k| (relocs[k].offset, std::cmp::Reverse(k)))
                    .map(|k| k as u32);
                assert_eq!(
                    t.in_range(off, len),
                    want,
                    "off {off} len {len} in {relocs:?}"
                );
            }
        }
    }
}
