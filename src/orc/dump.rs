//! `--dump=orc`: the ORC table of an object as text, byte for byte as objtool prints it.
//!
//! objtool: `orc_dump()`. For each entry i of `.orc_unwind`, in file order:
//! the address (relocatable file: relocation record i of `.rela.orc_unwind_ip`, printed as
//! `<section or symbol name>+<addend in hex>`; linked file: the absolute address
//! `sh_addr + 4·i + value[i]` in hex), a colon, and the entry text of
//! [`OrcEntry::dump_text`]. A file without `.symtab`, `.strtab`, `.orc_unwind` or
//! `.orc_unwind_ip` prints nothing.

use std::fmt::Write as _;

use object::elf;
use object::read::elf::{Rela as _, SectionHeader as _};

use super::entry::{ORC_ENTRY_SIZE, OrcAbi, OrcEntry};
use crate::elf::{LE, Object, SecId};
use crate::error::{Error, Result};

/// The ORC sections of an object, checked for consistency.
pub struct OrcSections<'data> {
    pub entries: &'data [u8],
    pub ips: &'data [u8],
    pub ip_addr: u64,
    pub rela: Option<SecId>,
}

impl<'data> OrcSections<'data> {
    /// Finds the ORC sections the way objtool's dump does (by name, the last of a name
    /// winning); `None` when the object has no ORC table to dump.
    pub fn find(obj: &Object<'data>) -> Result<Option<Self>> {
        let (Some(_), Some(_), Some(orc), Some(ip)) = (
            obj.section_by_name(b".symtab"),
            obj.section_by_name(b".strtab"),
            obj.section_by_name(b".orc_unwind"),
            obj.section_by_name(b".orc_unwind_ip"),
        ) else {
            return Ok(None);
        };
        let entries = obj.section_entries(orc, ORC_ENTRY_SIZE as u64)?;
        let ips = obj.section_entries(ip, 4)?;
        let n = entries.len() / ORC_ENTRY_SIZE;
        if ips.len() / 4 != n {
            return Err(Error::OrcCountMismatch {
                entries: n as u64,
                ips: ips.len() as u64 / 4,
            });
        }
        let rela = obj.section_by_name(b".rela.orc_unwind_ip");
        if let Some(rela) = rela {
            let relocs = obj.rela_records(rela)?.len();
            if relocs != n {
                return Err(Error::OrcRelocCountMismatch {
                    entries: n as u64,
                    relocs: relocs as u64,
                });
            }
        }
        Ok(Some(OrcSections {
            entries,
            ips,
            ip_addr: obj.section(ip)?.sh_addr(LE),
            rela,
        }))
    }

    pub fn len(&self) -> usize {
        self.entries.len() / ORC_ENTRY_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The raw bytes of entry `i`.
    pub fn entry(&self, i: usize) -> [u8; ORC_ENTRY_SIZE] {
        let mut b = [0; ORC_ENTRY_SIZE];
        b.copy_from_slice(&self.entries[i * ORC_ENTRY_SIZE..][..ORC_ENTRY_SIZE]);
        b
    }
}

/// Appends the dump of `obj`'s ORC table, read with `abi`, to `out`. On error, `out` may
/// hold the lines before the bad entry; callers print nothing of it.
pub fn dump(obj: &Object<'_>, abi: OrcAbi, out: &mut String) -> Result<()> {
    let Some(orc) = OrcSections::find(obj)? else {
        return Ok(());
    };
    let relas = match orc.rela {
        Some(sec) => Some(obj.rela_records(sec)?),
        None => None,
    };
    for i in 0..orc.len() {
        match relas {
            Some(relas) => {
                let rela = &relas[i];
                let sym_id = obj.rela_symbol(rela)?;
                let sym = obj.symbol(sym_id)?;
                let name = if sym.st_type() == elf::STT_SECTION {
                    let sec = obj.symbol_section(sym_id)?.ok_or_else(|| {
                        Error::malformed(format!("section symbol {} has no section", sym_id.0))
                    })?;
                    obj.section_name(sec)?
                } else {
                    obj.symbol_name(sym)?
                };
                out.push_str(&String::from_utf8_lossy(name));
                let _ = write!(out, "+{:x}:", rela.r_addend(LE) as u64);
            }
            None => {
                let value = i32::from_le_bytes(orc.ips[i * 4..][..4].try_into().unwrap_or([0; 4]));
                let addr = orc
                    .ip_addr
                    .wrapping_add(4 * i as u64)
                    .wrapping_add(i64::from(value) as u64);
                let _ = write!(out, "{addr:x}:");
            }
        }
        let entry = OrcEntry::decode(abi, orc.entry(i));
        let _ = writeln!(out, "{}", entry.dump_text(abi));
    }
    Ok(())
}
