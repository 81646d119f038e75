//! The symbol table being edited: objtool's `elf_create_section_symbol()` inserts a section
//! symbol at `sh_info` and moves the first global to the end; with `force`, the section
//! symbols of removed sections go.

use object::elf;
use object::read::elf::{SectionHeader as _, Sym as _};
use object::{U16, U32, U64};

use crate::elf::{LE, Object, SecId, Sym, SymId};
use crate::error::{Error, Result, WriteError};

/// Where a symbol is defined, read the way objtool's `read_symbols()` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SymSection {
    Undefined,
    /// `SHN_ABS`, `SHN_COMMON` and the other reserved indices except `SHN_XINDEX`.
    Special(u16),
    Section(u32),
}

/// The symbol table being edited. Every symbol has a stable id (its input index, or
/// `input count + k` for the k-th created one); relocations are renumbered from ids to
/// final positions once, at the end.
pub(super) struct Symbols {
    pub(super) syms: Vec<Sym>,
    /// `.symtab_shndx`, parallel to `syms`, when the object has one.
    pub(super) shndx: Option<Vec<u32>>,
    /// Position → stable id.
    pub(super) id_at: Vec<u32>,
    pub(super) first_global: u32,
    /// Number of input symbols (ids below this are input indices).
    pub(super) input_count: u32,
    /// The id of the next created symbol.
    pub(super) next_id: u32,
    /// Input index → `None` when `force` removed the symbol.
    pub(super) kept: Vec<bool>,
}

impl Symbols {
    /// Reads `.symtab` (and `.symtab_shndx`); with sections removed by `force`, drops the
    /// section symbols of removed sections and renumbers the section indices of the rest.
    pub(super) fn read(
        obj: &Object<'_>,
        symtab: usize,
        symtab_shndx: Option<usize>,
        sec_map: &[Option<u32>],
        sections_moved: bool,
    ) -> Result<Self> {
        let count = obj.symbol_count();
        let input_count = u32::try_from(count).map_err(|_| Error::malformed("too many symbols"))?;
        let header = obj.section(SecId(symtab as u32))?;
        let first_global = header.sh_info(LE);
        if first_global as usize > count {
            return Err(Error::malformed(format!(
                ".symtab sh_info {first_global} is beyond its {count} symbols"
            )));
        }
        let shndx_in: Option<Vec<u32>> = match symtab_shndx {
            None => None,
            Some(s) => {
                let data = obj.section_data(SecId(s as u32))?;
                if data.len() != count * 4 {
                    return Err(Error::malformed(format!(
                        ".symtab_shndx has {} bytes for {count} symbols",
                        data.len()
                    )));
                }
                Some(
                    data.chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            }
        };
        let n = sec_map.len();
        let mut syms = Vec::with_capacity(count + 16);
        let mut shndx = shndx_in.as_ref().map(|_| Vec::with_capacity(count + 16));
        let mut id_at = Vec::with_capacity(count + 16);
        let mut kept = vec![true; count];
        let mut dropped_locals = 0u32;
        for i in 0..count {
            let mut sym = *obj.symbol(SymId(i as u32))?;
            let mut entry = shndx_in.as_ref().map(|t| t[i]);
            let place = sym_section(&sym, entry);
            if sym.st_shndx(LE) == elf::SHN_XINDEX && entry.is_none() {
                return Err(Error::malformed(format!(
                    "symbol {i} uses SHN_XINDEX but there is no .symtab_shndx"
                )));
            }
            if let SymSection::Section(s) = place {
                let Some(&new) = sec_map.get(s as usize) else {
                    return Err(Error::malformed(format!(
                        "symbol {i} is in section {s}, out of range ({n} sections)"
                    )));
                };
                match new {
                    None if sym.st_type() == elf::STT_SECTION => {
                        kept[i] = false;
                        if (i as u32) < first_global {
                            dropped_locals += 1;
                        }
                        continue;
                    }
                    None => {
                        return Err(WriteError::SymbolInRemovedSection {
                            name: String::from_utf8_lossy(obj.symbol_name(&sym).unwrap_or(b"?"))
                                .into_owned(),
                            section: obj.describe(SecId(s)),
                        }
                        .into());
                    }
                    Some(new) if sections_moved => {
                        if sym.st_shndx(LE) == elf::SHN_XINDEX {
                            entry = Some(new);
                        } else {
                            // Indices only go down: a direct index stays direct.
                            sym.st_shndx = U16::new(LE, new as u16);
                        }
                    }
                    Some(_) => {}
                }
            }
            syms.push(sym);
            if let (Some(t), Some(e)) = (shndx.as_mut(), entry) {
                t.push(e);
            }
            id_at.push(i as u32);
        }
        Ok(Symbols {
            syms,
            shndx,
            id_at,
            first_global: first_global - dropped_locals,
            input_count,
            next_id: input_count,
            kept,
        })
    }

    /// objtool's `elf_create_section_symbol()`: a LOCAL STT_SECTION symbol for output
    /// section `sec`. Returns the new symbol's stable id.
    pub(super) fn add_section_symbol(&mut self, sec: u32) -> Result<u32> {
        let new = Sym {
            st_name: U32::new(LE, 0),
            st_info: (elf::STB_LOCAL << 4) | elf::STT_SECTION,
            st_other: 0,
            st_shndx: U16::new(LE, 0),
            st_value: U64::new(LE, 0),
            st_size: U64::new(LE, 0),
        };
        self.add_symbol(new, sec)
    }

    /// objtool's `__elf_create_symbol()` with `elf_update_symbol()`: `new` defined in
    /// output section `sec` (its `st_shndx` is set here). A LOCAL symbol goes at index
    /// `sh_info`, the symbol there (the first global) moving to the end, and `sh_info`
    /// grows by one; any other goes at the end. Returns the new symbol's stable id.
    pub(super) fn add_symbol(&mut self, mut new: Sym, sec: u32) -> Result<u32> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::malformed("too many symbols"))?;
        let direct = sec < u32::from(elf::SHN_LORESERVE);
        if !direct && self.shndx.is_none() {
            // objtool: "no .symtab_shndx".
            return Err(WriteError::NoSymtabShndx(sec).into());
        }
        new.st_shndx = U16::new(LE, if direct { sec as u16 } else { elf::SHN_XINDEX });
        let local = new.st_bind() == elf::STB_LOCAL;
        let pos = self.first_global as usize;
        if local && pos < self.syms.len() {
            // elf_update_symbol() on the moved symbol: st_shndx and the .symtab_shndx entry
            // are written from its section (or its special index) again.
            let mut moved = self.syms[pos];
            let entry = self.shndx.as_ref().map(|t| t[pos]);
            let value = match sym_section(&moved, entry) {
                SymSection::Undefined => 0,
                SymSection::Special(v) => u32::from(v),
                SymSection::Section(s) => s,
            };
            if value < u32::from(elf::SHN_LORESERVE)
                || matches!(sym_section(&moved, entry), SymSection::Special(_))
            {
                moved.st_shndx = U16::new(LE, value as u16);
            } else {
                moved.st_shndx = U16::new(LE, elf::SHN_XINDEX);
            }
            self.syms.push(moved);
            self.syms[pos] = new;
            let moved_id = self.id_at[pos];
            self.id_at.push(moved_id);
            self.id_at[pos] = id;
            if let Some(t) = self.shndx.as_mut() {
                t.push(value);
                t[pos] = sec;
            }
        } else {
            self.syms.push(new);
            self.id_at.push(id);
            if let Some(t) = self.shndx.as_mut() {
                t.push(sec);
            }
        }
        if local {
            self.first_global += 1;
        }
        Ok(id)
    }
}

pub(super) fn sym_section(sym: &Sym, shndx_entry: Option<u32>) -> SymSection {
    match sym.st_shndx(LE) {
        elf::SHN_UNDEF => SymSection::Undefined,
        elf::SHN_XINDEX => SymSection::Section(shndx_entry.unwrap_or(0)),
        v if v >= elf::SHN_LORESERVE => SymSection::Special(v),
        v => SymSection::Section(u32::from(v)),
    }
}
