//! The plan of a write: which input sections stay (with `force`, the old ORC sections and
//! their relocations go), the rows turned into relocations against section symbols, and
//! the output sections with their contents (`.symtab`, `.shstrtab` and renumbered
//! relocations and groups new, everything else borrowed from the input).

use std::borrow::Cow;

use object::elf;
use object::read::elf::{FileHeader as _, SectionHeader as _};
use object::{U32, U64};

use super::layout::{Layout, OutSection};
use super::symbols::{SymSection, Symbols, sym_section};
use super::{ORC_SECTION_NAMES, WriteOptions};
use crate::elf::{LE, Object, SecId, SectionHeader};
use crate::error::{BadRow, Error, Result, WriteError};
use crate::orc::ORC_ENTRY_SIZE;
use crate::orc::row::OrcRow;

const RELA_SIZE: usize = 24;
const REL_SIZE: usize = 16;

pub(super) struct Plan<'data, 'obj> {
    obj: &'obj Object<'data>,
    /// Input section index → output index (`None`: removed by `force`).
    sec_map: Vec<Option<u32>>,
    sections_moved: bool,
    /// With `force`: the `sh_name` of each removed ORC section, by name.
    reused_names: [Option<u32>; 3],
    symtab: usize,
    symtab_shndx: Option<usize>,
    shstrtab: usize,
    symbols: Symbols,
    /// Output section index → id of its section symbol.
    section_symbol: Vec<Option<u32>>,
    /// For each row: the id of its relocation symbol and the addend.
    relocs: Vec<(u32, i64)>,
    entries: Vec<u8>,
}

impl<'data, 'obj> Plan<'data, 'obj> {
    pub(super) fn new(obj: &'obj Object<'data>, opts: &WriteOptions) -> Result<Self> {
        let n = obj.section_count();
        let shstrtab = obj.header().shstrndx(LE, obj.data())? as usize;
        if shstrtab == 0 || shstrtab >= n {
            return Err(Error::malformed("no section name string table"));
        }
        let symtab = (1..n)
            .find(|&i| matches!(obj.section(SecId(i as u32)), Ok(s) if s.sh_type(LE) == elf::SHT_SYMTAB))
            .ok_or(WriteError::NoSymtab)?;
        let symtab_shndx = (1..n).find(|&i| {
            matches!(obj.section(SecId(i as u32)),
                Ok(s) if s.sh_type(LE) == elf::SHT_SYMTAB_SHNDX && s.sh_link(LE) as usize == symtab)
        });

        // Existing ORC sections: refuse, or (force) remove them with their relocations.
        let mut removed = vec![false; n];
        let mut existing = None;
        let mut reused_names = [None; 3];
        for (i, slot) in removed.iter_mut().enumerate().skip(1) {
            let name = obj.section_name(SecId(i as u32))?;
            if let Some(k) = ORC_SECTION_NAMES.iter().position(|&o| o == name) {
                existing.get_or_insert(name);
                *slot = true;
                reused_names[k] = Some(obj.section(SecId(i as u32))?.sh_name(LE));
            }
        }
        if let Some(name) = existing {
            if !opts.force {
                return Err(
                    WriteError::AlreadyHasOrc(String::from_utf8_lossy(name).into_owned()).into(),
                );
            }
            for i in 1..n {
                let s = obj.section(SecId(i as u32))?;
                let target = s.sh_info(LE) as usize;
                if is_reloc(s) && target < n && removed[target] {
                    removed[i] = true;
                }
            }
            for keep in [Some(symtab), Some(shstrtab), symtab_shndx] {
                if let Some(k) = keep
                    && removed[k]
                {
                    return Err(
                        WriteError::ForceRemovesNeeded(obj.describe(SecId(k as u32))).into(),
                    );
                }
            }
        }
        let mut sec_map = Vec::with_capacity(n);
        let mut next = 0u32;
        for &r in &removed {
            if r {
                sec_map.push(None);
            } else {
                sec_map.push(Some(next));
                next += 1;
            }
        }
        let sections_moved = removed.iter().any(|&r| r);

        let symbols = Symbols::read(obj, symtab, symtab_shndx, &sec_map, sections_moved)?;
        let mut section_symbol = vec![None; next as usize + 3];
        for (pos, sym) in symbols.syms.iter().enumerate() {
            if sym.st_type() != elf::STT_SECTION {
                continue;
            }
            let shndx = symbols.shndx.as_ref().map(|t| t[pos]);
            if let SymSection::Section(s) = sym_section(sym, shndx)
                && s != 0
                && let Some(slot) = section_symbol.get_mut(s as usize)
            {
                // The last one wins, as objtool's `sec->sym = sym` while reading.
                *slot = Some(symbols.id_at[pos]);
            }
        }
        Ok(Plan {
            obj,
            sec_map,
            sections_moved,
            reused_names,
            symtab,
            symtab_shndx,
            shstrtab,
            symbols,
            section_symbol,
            relocs: Vec::new(),
            entries: Vec::new(),
        })
    }

    pub(super) fn add_rows(&mut self, rows: &[OrcRow]) -> Result<()> {
        self.relocs.reserve(rows.len());
        self.entries.reserve(rows.len() * ORC_ENTRY_SIZE);
        for (index, row) in rows.iter().enumerate() {
            let bad =
                |problem: BadRow| -> Error { WriteError::BadOrcRow { index, problem }.into() };
            let input = row.section.0 as usize;
            let header = match self.obj.section(row.section) {
                Ok(h) if input != 0 => h,
                _ => return Err(bad(BadRow::NoSection(row.section.0))),
            };
            let Some(Some(sec)) = self.sec_map.get(input).copied() else {
                return Err(bad(BadRow::BeingReplaced(self.obj.describe(row.section))));
            };
            if header.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) == 0 {
                // objtool: "bad call to elf_init_reloc_text_sym() for data symbol".
                return Err(bad(BadRow::NotExecutable(self.obj.describe(row.section))));
            }
            if row.offset > header.sh_size(LE) || row.offset > i32::MAX as u64 {
                return Err(bad(BadRow::Outside {
                    offset: row.offset,
                    section: self.obj.describe(row.section),
                    size: header.sh_size(LE),
                }));
            }
            let id = match self.section_symbol[sec as usize] {
                Some(id) => id,
                None => {
                    let id = self.symbols.add_section_symbol(sec)?;
                    self.section_symbol[sec as usize] = Some(id);
                    id
                }
            };
            self.relocs.push((id, row.offset as i64));
            self.entries.extend_from_slice(&row.entry);
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Layout<'data>> {
        let obj = self.obj;
        let n = obj.section_count();
        let symbols = &self.symbols;
        // Stable id → final position.
        let mut final_pos = vec![u32::MAX; symbols.next_id as usize];
        for (pos, &id) in symbols.id_at.iter().enumerate() {
            if let Some(slot) = final_pos.get_mut(id as usize) {
                *slot = pos as u32;
            }
        }
        let symbols_moved = symbols.kept.iter().any(|&k| !k)
            || (0..symbols.input_count).any(|i| final_pos[i as usize] != i);
        let map_symbol = |old: u32, what: &dyn Fn() -> String| -> Result<u32> {
            if old >= symbols.input_count {
                return Err(Error::malformed(format!(
                    "{}: symbol index {old} out of range ({} symbols)",
                    what(),
                    symbols.input_count
                )));
            }
            if !symbols.kept[old as usize] {
                return Err(WriteError::RefersToRemovedSymbol {
                    what: what(),
                    index: old,
                }
                .into());
            }
            Ok(final_pos[old as usize])
        };
        let map_section = |old: u32| -> Option<u32> {
            match self.sec_map.get(old as usize) {
                Some(&m) => m,
                None => Some(old), // out of range: left as it is
            }
        };

        let mut out: Vec<OutSection<'data>> = Vec::with_capacity(n + 3);
        let mut names = [0u32; 3];
        for i in 0..n {
            if self.sec_map[i].is_none() {
                continue;
            }
            let id = SecId(i as u32);
            let describe = || obj.describe(id);
            if i == 0 {
                // The writer makes the null section header (with the extended section
                // count and name table index when needed).
                out.push(OutSection {
                    header: header_of(0, 0, 0, 0, 0, 0, 0, 0),
                    data: Cow::Borrowed(&[]),
                });
                continue;
            }
            let mut header = *obj.section(id)?;
            let sh_type = header.sh_type(LE);
            let mut data: Cow<'data, [u8]> = if sh_type == elf::SHT_NOBITS {
                Cow::Borrowed(&[])
            } else {
                Cow::Borrowed(obj.section_data(id)?)
            };
            if i == self.symtab {
                data = Cow::Owned(object::bytes_of_slice(&symbols.syms).to_vec());
                header.sh_info = U32::new(LE, symbols.first_global);
            } else if Some(i) == self.symtab_shndx {
                if let Some(t) = &symbols.shndx {
                    data = Cow::Owned(t.iter().flat_map(|v| v.to_le_bytes()).collect());
                }
            } else if i == self.shstrtab {
                // objtool's elf_add_string(): each name appended at the current size. (With
                // `force`, the names of the removed sections are used again instead.)
                let mut table = data.into_owned();
                for ((slot, name), reuse) in names
                    .iter_mut()
                    .zip(ORC_SECTION_NAMES)
                    .zip(self.reused_names)
                {
                    if let Some(offset) = reuse {
                        *slot = offset;
                        continue;
                    }
                    *slot = u32::try_from(table.len())
                        .map_err(|_| Error::malformed("section name table too large"))?;
                    table.extend_from_slice(name);
                    table.push(0);
                }
                data = Cow::Owned(table);
            }
            if symbols_moved && is_reloc(&header) && header.sh_link(LE) as usize == self.symtab {
                let entsize = if sh_type == elf::SHT_RELA {
                    RELA_SIZE
                } else {
                    REL_SIZE
                };
                data = Cow::Owned(renumber_relocs(&data, entsize, &|old| {
                    map_symbol(old, &describe)
                })?);
            }
            if sh_type == elf::SHT_GROUP {
                // objtool leaves a stale signature index here; we follow the symbol.
                if symbols_moved && header.sh_link(LE) as usize == self.symtab {
                    let signature = map_symbol(header.sh_info(LE), &describe)?;
                    header.sh_info = U32::new(LE, signature);
                }
                if self.sections_moved {
                    data = Cow::Owned(renumber_group(&data, &map_section, &describe)?);
                }
            }
            if self.sections_moved {
                remap_links(&mut header, &map_section, &describe)?;
            }
            if sh_type != elf::SHT_NOBITS {
                header.sh_size = U64::new(LE, data.len() as u64);
            }
            out.push(OutSection { header, data });
        }

        // The three ORC sections, in objtool's order.
        let base = out.len() as u32;
        let symtab_out = self.sec_map[self.symtab].unwrap_or(0);
        let count = self.relocs.len();
        let mut relas = Vec::with_capacity(count * RELA_SIZE);
        for (i, &(id, addend)) in self.relocs.iter().enumerate() {
            let sym = final_pos[id as usize];
            relas.extend_from_slice(&(4 * i as u64).to_le_bytes());
            relas.extend_from_slice(
                &((u64::from(sym) << 32) | u64::from(elf::R_X86_64_PC32)).to_le_bytes(),
            );
            relas.extend_from_slice(&addend.to_le_bytes());
        }
        let new_sections = [
            NewSection {
                name: names[0],
                sh_type: elf::SHT_PROGBITS,
                flags: elf::SHF_ALLOC,
                link: 0,
                info: 0,
                align: 1,
                entsize: ORC_ENTRY_SIZE as u64,
                data: self.entries,
            },
            NewSection {
                name: names[1],
                sh_type: elf::SHT_PROGBITS,
                flags: elf::SHF_ALLOC,
                link: 0,
                info: 0,
                align: 1,
                entsize: 4,
                data: vec![0; 4 * count],
            },
            NewSection {
                name: names[2],
                sh_type: elf::SHT_RELA,
                flags: elf::SHF_INFO_LINK,
                link: symtab_out,
                info: base + 1,
                align: 8,
                entsize: RELA_SIZE as u64,
                data: relas,
            },
        ];
        for s in new_sections {
            out.push(OutSection {
                header: header_of(
                    s.name,
                    s.sh_type,
                    u64::from(s.flags),
                    s.data.len() as u64,
                    s.link,
                    s.info,
                    s.align,
                    s.entsize,
                ),
                data: Cow::Owned(s.data),
            });
        }
        let shstrndx = self.sec_map[self.shstrtab].unwrap_or(0);
        let mut input_offsets = Vec::with_capacity(out.len());
        for i in 0..n {
            if i == 0 {
                input_offsets.push(None);
            } else if self.sec_map[i].is_some() {
                input_offsets.push(obj.section(SecId(i as u32))?.file_range(LE));
            }
        }
        Layout::new(out, shstrndx, &input_offsets)
    }
}

struct NewSection {
    name: u32,
    sh_type: u32,
    flags: u32,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
    data: Vec<u8>,
}

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

fn is_reloc(s: &SectionHeader) -> bool {
    matches!(s.sh_type(LE), elf::SHT_RELA | elf::SHT_REL)
}

/// A copy of a REL/RELA section's records with each symbol index mapped.
fn renumber_relocs(
    data: &[u8],
    entsize: usize,
    map: &dyn Fn(u32) -> Result<u32>,
) -> Result<Vec<u8>> {
    if data.len() % entsize != 0 {
        return Err(Error::malformed(format!(
            "relocation section size {:#x} is not a multiple of {entsize}",
            data.len()
        )));
    }
    let mut out = data.to_vec();
    for record in out.chunks_exact_mut(entsize) {
        let info_bytes = &mut record[8..16];
        let mut raw = [0u8; 8];
        raw.copy_from_slice(info_bytes);
        let info = u64::from_le_bytes(raw);
        let sym = map((info >> 32) as u32)?;
        let info = (u64::from(sym) << 32) | (info & 0xffff_ffff);
        info_bytes.copy_from_slice(&info.to_le_bytes());
    }
    Ok(out)
}

/// A copy of an SHT_GROUP section with its member indices mapped (removed members left out).
fn renumber_group(
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
fn remap_links(
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
