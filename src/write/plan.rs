//! The plan of a write: which input sections stay (with `force`, the old ORC sections and
//! their relocations go), the [`Step`]s replayed in order (section names and symbol names
//! appended to their string tables, symbols created, relocations against section symbols
//! resolved), and the output sections with their contents (`.symtab`, the string tables,
//! the created sections and renumbered relocations and groups new, everything else
//! borrowed from the input).

use std::borrow::Cow;
use std::rc::Rc;

use object::elf;
use object::read::elf::{FileHeader as _, SectionHeader as _};
use object::{U32, U64};

use super::layout::{Layout, OutSection};
use super::records::{
    REL_SIZE, RELA_SIZE, Renumber, SymbolMap, header_of, is_reloc, refers_to_moved, remap_links,
    renumber_group,
};
use super::symbols::{SymSection, Symbols, sym_section};
use super::{ORC_SECTION_NAMES, WriteOptions};
use crate::edits::{NewReloc, NewSection, NewSymbol, RelocTarget, Step};
use crate::elf::output::Recode as _;
use crate::elf::{LE, Object, SecId, Sym};
use crate::error::{BadRow, Error, Result, WriteError};

/// A created section as it will be written: its name's offset in the section name table,
/// and its relocations' symbols as stable ids (the records' other fields are the
/// section's own).
struct Planned<'data> {
    name: u32,
    section: &'data NewSection,
    /// The relocation section's name offset and, per record, its symbol's stable id
    /// ([`EMPTY`]: a record objtool reserved and never filled).
    relocs: Option<(u32, Vec<u32>)>,
}

/// The stable id of an empty relocation record's symbol.
const EMPTY: u32 = u32::MAX;

/// Created relocation sections with at least this many records are encoded on every thread.
const PARALLEL_RELOCS: usize = 1 << 16;

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
    /// `.strtab`, where created symbols' names go (objtool's `elf->strtab`).
    strtab: Option<usize>,
    /// Per input string table (`.shstrtab`, `.strtab`): the bytes appended, in order.
    appended: Vec<(usize, Vec<u8>)>,
    /// The ids of the symbols the steps created, in order ([`RelocTarget::Created`]).
    created: Vec<u32>,
    sections: Vec<Planned<'data>>,
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
        let strtab = (1..n).find(|&i| {
            sec_map[i].is_some()
                && matches!(obj.section_name(SecId(i as u32)), Ok(b".strtab"))
                && matches!(obj.section(SecId(i as u32)), Ok(s) if s.sh_type(LE) == elf::SHT_STRTAB)
        });
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
            strtab,
            appended: Vec::new(),
            created: Vec::new(),
            sections: Vec::new(),
        })
    }

    /// objtool's `elf_add_string()`: `name` and a NUL appended to string table `table`;
    /// returns its offset.
    fn add_string(&mut self, table: usize, name: &[u8]) -> Result<u32> {
        let base = self.obj.section(SecId(table as u32))?.sh_size(LE);
        let k = match self.appended.iter().position(|(t, _)| *t == table) {
            Some(k) => k,
            None => {
                self.appended.push((table, Vec::new()));
                self.appended.len() - 1
            }
        };
        let bytes = &mut self.appended[k].1;
        let offset = u32::try_from(base + bytes.len() as u64)
            .map_err(|_| Error::malformed("string table too large"))?;
        bytes.extend_from_slice(name);
        bytes.push(0);
        Ok(offset)
    }

    /// A created section's name: appended to the section name table (with `force`, the
    /// name of a removed ORC section is used again).
    fn section_name(&mut self, name: &[u8]) -> Result<u32> {
        if let Some(k) = ORC_SECTION_NAMES.iter().position(|&o| o == name)
            && let Some(offset) = self.reused_names[k].take()
        {
            return Ok(offset);
        }
        self.add_string(self.shstrtab, name)
    }

    /// Replays `steps` in order.
    pub(super) fn add_steps(&mut self, steps: &'data [Step]) -> Result<()> {
        for step in steps {
            match step {
                Step::Section(s) => self.add_section(s)?,
                Step::Symbol(s) => self.add_symbol(s)?,
            }
        }
        Ok(())
    }

    fn add_section(&mut self, s: &'data NewSection) -> Result<()> {
        let name = self.section_name(&s.name)?;
        let relocs = match &s.relocs {
            None => None,
            Some(list) => {
                let mut rela_name = b".rela".to_vec();
                rela_name.extend_from_slice(&s.name);
                let rname = self.section_name(&rela_name)?;
                let mut out = Vec::with_capacity(list.len());
                // (section, size, symbol) of the last section symbol found: consecutive
                // records (ORC's) mostly refer to the same section
                let mut last: Option<(SecId, i64, u32)> = None;
                for (index, r) in list.iter().enumerate() {
                    if let (RelocTarget::SectionSymbol(sec), Some((l, size, id))) = (r.target, last)
                        && sec == l
                        && (0..=size).contains(&r.addend)
                    {
                        out.push(id);
                        continue;
                    }
                    let bad = |problem: BadRow| -> Error {
                        WriteError::BadReloc {
                            section: String::from_utf8_lossy(&s.name).into_owned(),
                            index,
                            problem,
                        }
                        .into()
                    };
                    out.push(match r.target {
                        RelocTarget::Empty => EMPTY,
                        RelocTarget::SectionSymbol(sec) => {
                            let id = self.text_section_symbol(sec, r.addend).map_err(bad)?;
                            let size = self.obj.section(sec)?.sh_size(LE);
                            last = Some((sec, size.min(i32::MAX as u64) as i64, id));
                            id
                        }
                        RelocTarget::Symbol(id) => {
                            if id.0 >= self.symbols.input_count {
                                return Err(bad(BadRow::NoSymbol(id.0)));
                            }
                            id.0
                        }
                        RelocTarget::Created(k) => *self
                            .created
                            .get(k)
                            .ok_or_else(|| bad(BadRow::NoCreatedSymbol(k)))?,
                    });
                }
                Some((rname, out))
            }
        };
        self.sections.push(Planned {
            name,
            section: s,
            relocs,
        });
        Ok(())
    }

    /// objtool's `elf_init_reloc_text_sym()`: the section symbol of executable input
    /// section `sec` (created when it has none) for a relocation at `offset` in it.
    fn text_section_symbol(&mut self, sec: SecId, offset: i64) -> std::result::Result<u32, BadRow> {
        let input = sec.0 as usize;
        let header = match self.obj.section(sec) {
            Ok(h) if input != 0 => h,
            _ => return Err(BadRow::NoSection(sec.0)),
        };
        let Some(Some(out)) = self.sec_map.get(input).copied() else {
            return Err(BadRow::BeingReplaced(self.obj.describe(sec)));
        };
        if header.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) == 0 {
            // objtool: "bad call to elf_init_reloc_text_sym() for data symbol".
            return Err(BadRow::NotExecutable(self.obj.describe(sec)));
        }
        if offset < 0 || offset as u64 > header.sh_size(LE) || offset > i64::from(i32::MAX) {
            return Err(BadRow::Outside {
                offset: offset as u64,
                section: self.obj.describe(sec),
                size: header.sh_size(LE),
            });
        }
        match self.section_symbol[out as usize] {
            Some(id) => Ok(id),
            None => {
                let id = self
                    .symbols
                    .add_section_symbol(out)
                    .map_err(|e| BadRow::Symbol(e.to_string()))?;
                self.section_symbol[out as usize] = Some(id);
                Ok(id)
            }
        }
    }

    /// objtool's `elf_create_symbol()`: the name appended to `.strtab`, the symbol to
    /// `.symtab` (a LOCAL one at `sh_info`).
    fn add_symbol(&mut self, s: &NewSymbol) -> Result<()> {
        let strtab = self.strtab.ok_or(WriteError::NoStrtab)?;
        let Some(Some(out)) = self.sec_map.get(s.section.0 as usize).copied() else {
            return Err(WriteError::SymbolSection(self.obj.describe(s.section)).into());
        };
        let name = self.add_string(strtab, &s.name)?;
        let sym = Sym {
            st_name: object::U32::new(LE, name),
            st_info: s.st_info,
            st_other: s.st_other,
            st_shndx: object::U16::new(LE, 0),
            st_value: object::U64::new(LE, s.value),
            st_size: object::U64::new(LE, s.size),
        };
        let id = self.symbols.add_symbol(sym, out)?;
        self.created.push(id);
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
        let symbol_map = Rc::new(SymbolMap {
            final_pos,
            kept: symbols.kept.clone(),
            input_count: symbols.input_count,
        });
        let map_symbol = |old: u32, what: &dyn Fn() -> String| symbol_map.map(old, what);
        let map_section = |old: u32| -> Option<u32> {
            match self.sec_map.get(old as usize) {
                Some(&m) => m,
                None => Some(old), // out of range: left as it is
            }
        };

        let mut out: Vec<OutSection<'data>> = Vec::with_capacity(n + 2 * self.sections.len());
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
                    recode: None,
                });
                continue;
            }
            let mut header = *obj.section(id)?;
            let sh_type = header.sh_type(LE);
            let mut recode = None;
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
            } else if let Some((_, extra)) = self.appended.iter().find(|(t, _)| *t == i) {
                // objtool's elf_add_string(): each string appended at the current size
                let mut table = data.into_owned();
                table.extend_from_slice(extra);
                data = Cow::Owned(table);
            }
            if symbols_moved && is_reloc(&header) && header.sh_link(LE) as usize == self.symtab {
                let entsize = if sh_type == elf::SHT_RELA {
                    RELA_SIZE
                } else {
                    REL_SIZE
                };
                let renumber = Renumber {
                    map: Rc::clone(&symbol_map),
                    entsize,
                    section: describe(),
                };
                if refers_to_moved(&data, entsize, &renumber)? {
                    if let Cow::Owned(bytes) = &mut data {
                        // (a string table that is also a relocation section: hostile)
                        renumber.recode(bytes)?;
                    } else {
                        recode = Some(renumber);
                    }
                }
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
            out.push(OutSection {
                header,
                data,
                recode,
            });
        }

        // The created sections, in creation order, each followed by its relocations.
        let symtab_out = self.sec_map[self.symtab].unwrap_or(0);
        for p in self.sections {
            let s = p.section;
            let index = out.len() as u32;
            out.push(OutSection {
                header: header_of(
                    p.name,
                    s.sh_type,
                    s.flags,
                    s.data.len() as u64,
                    0,
                    0,
                    s.align,
                    s.entsize,
                ),
                data: Cow::Borrowed(&s.data),
                recode: None,
            });
            if let (Some((name, syms)), Some(list)) = (p.relocs, &s.relocs) {
                let relas = encode_relas(list, &syms, &symbol_map)?;
                out.push(OutSection {
                    header: header_of(
                        name,
                        elf::SHT_RELA,
                        u64::from(elf::SHF_INFO_LINK),
                        relas.len() as u64,
                        symtab_out,
                        index,
                        8,
                        RELA_SIZE as u64,
                    ),
                    data: Cow::Owned(relas),
                    recode: None,
                });
            }
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

/// The RELA records of a created relocation section: `list`'s fields with the final
/// position of each record's symbol (`syms`: stable ids). Large sections are encoded on
/// every thread; the error is the first record's, as encoding in order gives.
fn encode_relas(list: &[NewReloc], syms: &[u32], map: &SymbolMap) -> Result<Vec<u8>> {
    use rayon::prelude::*;
    let what = || "a relocation of a created section".to_owned();
    let encode = |out: &mut [u8], r: &NewReloc, id: u32| -> Result<()> {
        if id == EMPTY {
            return Ok(()); // 24 zero bytes
        }
        let sym = if id < map.input_count {
            map.map(id, &what)?
        } else {
            map.final_pos[id as usize]
        };
        out[..8].copy_from_slice(&r.offset.to_le_bytes());
        out[8..16].copy_from_slice(&((u64::from(sym) << 32) | u64::from(r.r_type)).to_le_bytes());
        out[16..].copy_from_slice(&r.addend.to_le_bytes());
        Ok(())
    };
    let mut relas = vec![0u8; list.len() * RELA_SIZE];
    let parallel_ok = list.len() >= PARALLEL_RELOCS
        && (relas
            .par_chunks_exact_mut(RELA_SIZE)
            .zip(list.par_iter().zip(syms)))
        .try_for_each(|(out, (r, &id))| encode(out, r, id))
        .is_ok();
    if !parallel_ok {
        // small, or failed: in order (which failing record rayon met first is not
        // defined; the error is the first one in order)
        for (out, (r, &id)) in relas.chunks_exact_mut(RELA_SIZE).zip(list.iter().zip(syms)) {
            encode(out, r, id)?;
        }
    }
    Ok(relas)
}
