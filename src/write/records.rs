//! Record-level pieces of the writer: section headers, and the copies of relocation and
//! group sections with their indices renumbered.

use object::elf;
use object::read::elf::SectionHeader as _;
use object::{U32, U64};

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

/// A copy of a REL/RELA section's records with each symbol index mapped, or `None` when no
/// index changes.
pub(super) fn renumber_relocs(
    data: &[u8],
    entsize: usize,
    map: &dyn Fn(u32) -> Result<u32>,
) -> Result<Option<Vec<u8>>> {
    if data.len() % entsize != 0 {
        return Err(Error::malformed(format!(
            "relocation section size {:#x} is not a multiple of {entsize}",
            data.len()
        )));
    }
    let symbol_of = |record: &[u8]| {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&record[12..16]);
        u32::from_le_bytes(raw)
    };
    // Most sections refer to no moved symbol: those stay borrowed (no copy in memory).
    let mut first = None;
    for (k, record) in data.chunks_exact(entsize).enumerate() {
        let old = symbol_of(record);
        if map(old)? != old {
            first = Some(k);
            break;
        }
    }
    let Some(first) = first else {
        return Ok(None);
    };
    let mut out = data.to_vec();
    for record in out.chunks_exact_mut(entsize).skip(first) {
        let sym = map(symbol_of(record))?;
        // the symbol index is the high half of r_info (at +8)
        record[12..16].copy_from_slice(&sym.to_le_bytes());
    }
    Ok(Some(out))
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
