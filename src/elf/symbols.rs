//! Symbols by section and address: which function a code offset belongs to.

use object::elf;
use object::read::elf::Sym as _;

use super::{LE, Object, SecId, SymId};
use crate::error::Result;

/// One defined symbol, as placed in its section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    pub id: SymId,
    pub offset: u64,
    pub size: u64,
    pub kind: u8,
}

/// Defined symbols of each section, sorted by offset (then by symbol index).
pub struct SymbolIndex {
    by_section: Vec<Vec<Placed>>,
}

impl SymbolIndex {
    /// Indexes every symbol that is defined in a section (not undefined, absolute or common).
    /// Offsets are section-relative: for a linked image, `st_value - sh_addr`.
    pub fn build(obj: &Object<'_>) -> Result<Self> {
        let mut by_section: Vec<Vec<Placed>> = vec![Vec::new(); obj.section_count()];
        for i in 1..obj.symbol_count() {
            let id = SymId(i as u32);
            let Some(sec) = obj.symbol_section(id)? else {
                continue;
            };
            let sym = obj.symbol(id)?;
            let Some(list) = by_section.get_mut(sec.0 as usize) else {
                continue;
            };
            let base = match obj.kind() {
                super::ObjectKind::Relocatable => 0,
                super::ObjectKind::Linked => obj.section(sec)?.sh_addr.get(LE),
            };
            list.push(Placed {
                id,
                offset: sym.st_value(LE).wrapping_sub(base),
                size: sym.st_size(LE),
                kind: sym.st_type(),
            });
        }
        for list in &mut by_section {
            list.sort_by_key(|p| (p.offset, p.id));
        }
        Ok(SymbolIndex { by_section })
    }

    /// Defined symbols of `sec`, sorted by offset.
    pub fn in_section(&self, sec: SecId) -> &[Placed] {
        self.by_section
            .get(sec.0 as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The STT_FUNC symbol whose `[offset, offset + size)` contains `off`; with several, the
    /// one that starts last.
    pub fn func_containing(&self, sec: SecId, off: u64) -> Option<Placed> {
        let syms = self.in_section(sec);
        let end = syms.partition_point(|p| p.offset <= off);
        syms[..end]
            .iter()
            .rev()
            .find(|p| p.kind == elf::STT_FUNC && off < p.offset.saturating_add(p.size))
            .copied()
    }
}
