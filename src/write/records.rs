//! Record-level pieces of the writer: section headers, relocation sections with their
//! symbol indices renumbered (recoded as they are written), and copies of group sections
//! with their member indices renumbered.

use std::rc::Rc;

use object::elf;
use object::read::elf::SectionHeader as _;
use object::{U32, U64};

use crate::elf::output::Recode;
use crate::elf::{LE, SectionHeader};
use crate::error::{Error, Result, WriteError};

pub(super) const RELA_SIZE: usize = 24;
pub(super) const REL_SIZE: usize = 16;

/// A section header at address 0 and (for now) offset 0.
#[allow(clippy::too_many_arguments)]
pub(super) fn header_of(
    name: u32,
    sh_type: u32,
    flags: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
) -> SectionHeader {
    SectionHeader {
        sh_name: U32::new(LE, name),
        sh_type: U32::new(LE, sh_type),
        sh_flags: U64::new(LE, flags),
        sh_addr: U64::new(LE, 0),
        sh_offset: U64::new(LE, 0),
        sh_size: U64::new(LE, size),
        sh_link: U32::new(LE, link),
        sh_info: U32::new(LE, info),
        sh_addralign: U64::new(LE, align),
        sh_entsize: U64::new(LE, entsize),
    }
}

pub(super) fn is_reloc(s: &SectionHeader) -> bool {
    matches!(s.sh_type(LE), elf::SHT_RELA | elf::SHT_REL)
}

/// Input symbol index → output position, once the steps have been replayed.
pub(super) struct SymbolMap {
    /// By input index (or created id): the final position.
    pub(super) final_pos: Vec<u32>,
    /// Input index → false when `force` removed the symbol.
    pub(super) kept: Vec<bool>,
    /// Number of input symbols.
    pub(super) input_count: u32,
}

impl SymbolMap {
    /// The output position of input symbol `old`, referred to by `what`.
    pub(super) fn map(&self, old: u32, what: &dyn Fn() -> String) -> Result<u32> {
        if old >= self.input_count {
            return Err(Error::malformed(format!(
                "{}: symbol index {old} out of range ({} symbols)",
                what(),
                self.input_count
            )));
        }
        if !self.kept[old as usize] {
            return Err(WriteError::RefersToRemovedSymbol {
                what: what(),
                index: old,
            }
            .into());
        }
        Ok(self.final_pos[old as usize])
    }
}

/// The symbol index of a REL/RELA record: the high half of `r_info` (at +8).
fn symbol_of(record: &[u8]) -> u32 {
    u32::from_le_bytes([record[12], record[13], record[14], record[15]])
}

/// Whether a REL/RELA section's records refer to a symbol that moves (the records up to the
/// first that does are checked; the others are when [`Renumber`] recodes them).
pub(super) fn refers_to_moved(data: &[u8], entsize: usize, map: &Renumber) -> Result<bool> {
    if data.len() % entsize != 0 {
        return Err(Error::malformed(format!(
            "relocation section size {:#x} is not a multiple of {entsize}",
            data.len()
        )));
    }
    for record in data.chunks_exact(entsize) {
        let old = symbol_of(record);
        if map.symbol(old)? != old {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The records of a REL/RELA section with each symbol index mapped: most sections refer to
/// no moved symbol and are copied as they are; the others are recoded on their way to the
/// file (`Source::Recoded`), in chunks, never whole in memory.
#[derive(Clone)]
pub(super) struct Renumber {
    pub(super) map: Rc<SymbolMap>,
    pub(super) entsize: usize,
    /// The section, for errors.
    pub(super) section: String,
}

impl Renumber {
    fn symbol(&self, old: u32) -> Result<u32> {
        self.map.map(old, &|| self.section.clone())
    }
}

impl std::fmt::Debug for Renumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Renumber({}, {})", self.section, self.entsize)
    }
}

impl Recode for Renumber {
    fn record_len(&self) -> usize {
        self.entsize
    }

    fn recode(&self, records: &mut [u8]) -> Result<()> {
        for record in records.chunks_exact_mut(self.entsize) {
            let sym = self.symbol(symbol_of(record))?;
            record[12..16].copy_from_slice(&sym.to_le_bytes());
        }
        Ok(())
    }
}

/// A copy of an SHT_GROUP section with its member indices mapped (removed members left out).
pub(super) fn renumber_group(
    data: &[u8],
    map: &dyn Fn(u32) -> Option<u32>,
    describe: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    if data.len() % 4 != 0 || data.is_empty() {
        return Err(Error::malformed(format!(
            "{} has size {:#x}, not a flag word and 4-byte members",
            describe(),
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..4]);
    for member in data[4..].chunks_exact(4) {
        let old = u32::from_le_bytes([member[0], member[1], member[2], member[3]]);
        if let Some(new) = map(old) {
            out.extend_from_slice(&new.to_le_bytes());
        }
    }
    Ok(out)
}

/// Renumbers `sh_link` (a section index whenever it is not 0) and, for relocation
/// sections and `SHF_INFO_LINK`, `sh_info` after sections were removed.
pub(super) fn remap_links(
    header: &mut SectionHeader,
    map: &dyn Fn(u32) -> Option<u32>,
    describe: &dyn Fn() -> String,
) -> Result<()> {
    let link = header.sh_link(LE);
    if link != 0 {
        let new = map(link).ok_or_else(|| {
            Error::from(WriteError::LinkRemoved {
                section: describe(),
                link,
            })
        })?;
        header.sh_link = U32::new(LE, new);
    }
    let info_is_section =
        is_reloc(header) || header.sh_flags(LE) & u64::from(elf::SHF_INFO_LINK) != 0;
    let info = header.sh_info(LE);
    if info_is_section && info != 0 {
        let new = map(info).ok_or_else(|| {
            Error::from(WriteError::InfoRemoved {
                section: describe(),
                info,
            })
        })?;
        header.sh_info = U32::new(LE, new);
    }
    Ok(())
}
