//! Writing ORC sections into a relocatable object, byte for byte as objtool 6.12 does.
//!
//! objtool: `orc_create()` builds the entry list, then `elf_create_section()` /
//! `elf_create_section_pair()` append `.orc_unwind`, `.orc_unwind_ip` and
//! `.rela.orc_unwind_ip`, `elf_init_reloc_text_sym()` writes one `R_X86_64_PC32` per entry
//! against the STT_SECTION symbol of the instruction's section (creating that symbol when
//! the section has none), and libelf's `elf_update()` lays the file out again.
//!
//! What this module reproduces, all checked against the 6.12 binary (spec §3.1):
//!
//! * The three sections come after every existing section; their names are appended to the
//!   section name string table (no sharing of suffixes). Headers: `.orc_unwind` PROGBITS,
//!   `A`, align 1, entsize 6; `.orc_unwind_ip` PROGBITS, `A`, align 1, entsize 4, zero
//!   bytes; `.rela.orc_unwind_ip` RELA, flags exactly `SHF_INFO_LINK`, align 8, entsize 24,
//!   link `.symtab`, info `.orc_unwind_ip`.
//! * Relocation i: offset 4·i, `R_X86_64_PC32`, the section symbol of the row's section
//!   (the last STT_SECTION symbol of that section in `.symtab`), addend = offset.
//! * A missing section symbol is created (LOCAL, STT_SECTION, name 0, value 0, size 0) at
//!   index `sh_info` of `.symtab`, in row order. The symbol that was there (the first
//!   global) moves to the end of the table, every relocation that referenced it is
//!   renumbered and `sh_info` grows by one. With a `.symtab_shndx`, objtool's
//!   `elf_update_symbol()` stores the moved symbol's section index (or its special index
//!   such as `SHN_ABS`) in that table, and the new symbol's section index too: done here
//!   the same way.
//! * The file layout of libelf (`ELF_C_RDWR` without `ELF_F_LAYOUT`): the ELF header, then
//!   every section in index order at the next multiple of its alignment (no file space for
//!   NOBITS), gaps zero-filled, then the section header table at the next multiple of 8.
//!   An `sh_addralign` of 0 becomes 1, as libelf writes it.
//!
//! With these, our output is the file objtool writes (checked on every module of the
//! corpus by `scripts/parity-write`). One deliberate difference: objtool does not update
//! the signature symbol (`sh_info`) of an `SHT_GROUP` section when that symbol moves, so
//! the COMDAT group ends up named after the new section symbol. We renumber it.
//!
//! `force` (objtool has no such option: it warns "file already has .orc_unwind section,
//! skipping" and writes nothing) removes the old `.orc_unwind`, `.orc_unwind_ip`,
//! `.rela.orc_unwind_ip` (and any other relocation section of a removed section) first,
//! with the section symbols of removed sections; `.orc_header` stays. Later sections move
//! down, so section links, relocation targets, group members, symbol section indices
//! (direct and in `.symtab_shndx`) and `e_shstrndx` are renumbered, and relocations for
//! the symbols after a removed one too.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use object::elf;
use object::read::elf::{FileHeader as _, Rela as _, SectionHeader as _, Sym as _};
use object::write::elf::Writer;
use object::{Endianness, U16, U32, U64};

use crate::elf::{LE, Object, ObjectKind, SecId, SectionHeader, Sym, SymId};
use crate::error::{Error, Result};
use crate::orc::ORC_ENTRY_SIZE;

/// One ORC entry to write: the instruction's section, its offset inside it, and the
/// encoded 6 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrcRow {
    pub section: SecId,
    pub offset: u64,
    pub entry: [u8; ORC_ENTRY_SIZE],
}

/// How [`add_orc`] treats an object that already has ORC sections.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Replace existing ORC sections instead of refusing.
    pub force: bool,
}

/// The sections objtool creates (and `force` removes), in creation order.
const ORC_SECTION_NAMES: [&[u8]; 3] = [b".orc_unwind", b".orc_unwind_ip", b".rela.orc_unwind_ip"];

const RELA_SIZE: usize = 24;
const REL_SIZE: usize = 16;
const SYM_SIZE: usize = 24;

/// Returns the bytes of the new object: `obj` with `.orc_unwind`, `.orc_unwind_ip` and
/// `.rela.orc_unwind_ip` appended as objtool 6.12 does. Empty `rows` give the input back
/// unchanged (objtool writes nothing then, and does not check for existing ORC).
pub fn add_orc(obj: &Object<'_>, rows: &[OrcRow], opts: &WriteOptions) -> Result<Vec<u8>> {
    if rows.is_empty() {
        return Ok(obj.data().to_vec());
    }
    if obj.kind() != ObjectKind::Relocatable {
        return Err(Error::Other(
            "ORC sections can only be added to a relocatable object (ET_REL)".into(),
        ));
    }
    if obj.header().e_phnum(LE) != 0 {
        return Err(Error::malformed("relocatable object with program headers"));
    }
    let mut plan = Plan::new(obj, opts)?;
    plan.add_rows(rows)?;
    plan.finish()
}

/// The ORC rows of an object that has ORC sections (objtool's or the linker's), in table
/// order: the section of each relocation's symbol, the addend (plus the symbol's value for
/// a non-section symbol), the entry bytes. Empty when the object has no `.orc_unwind`.
/// This is what [`add_orc`] needs to write the same table again.
pub fn orc_rows(obj: &Object<'_>) -> Result<Vec<OrcRow>> {
    let Some(orc) = crate::orc::dump::OrcSections::find(obj)? else {
        return Ok(Vec::new());
    };
    let rela = orc.rela.ok_or_else(|| {
        Error::Other("the ORC table has no .rela.orc_unwind_ip (a linked object?)".into())
    })?;
    let relas = obj.rela_records(rela)?;
    let mut rows = Vec::with_capacity(orc.len());
    for (i, rela) in relas.iter().enumerate() {
        let sym_id = obj.rela_symbol(rela)?;
        let sym = obj.symbol(sym_id)?;
        let section = obj.symbol_section(sym_id)?.ok_or_else(|| {
            Error::malformed(format!(
                "ORC relocation {i} refers to symbol {} which has no section",
                sym_id.0
            ))
        })?;
        let value = if sym.st_type() == elf::STT_SECTION {
            0
        } else {
            sym.st_value(LE)
        };
        rows.push(OrcRow {
            section,
            offset: value.wrapping_add(rela.r_addend(LE) as u64),
            entry: orc.entry(i),
        });
    }
    Ok(rows)
}

/// Where a symbol is defined, read the way objtool's `read_symbols()` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SymSection {
    Undefined,
    /// `SHN_ABS`, `SHN_COMMON` and the other reserved indices except `SHN_XINDEX`.
    Special(u16),
    Section(u32),
}

/// One output section: its header (offset filled in at layout) and its bytes.
struct OutSection<'data> {
    header: SectionHeader,
    data: Cow<'data, [u8]>,
}

/// The symbol table being edited. Every symbol has a stable id (its input index, or
/// `input count + k` for the k-th created one); relocations are renumbered from ids to
/// final positions once, at the end.
struct Symbols {
    syms: Vec<Sym>,
    /// `.symtab_shndx`, parallel to `syms`, when the object has one.
    shndx: Option<Vec<u32>>,
    /// Position → stable id.
    id_at: Vec<u32>,
    first_global: u32,
    /// Number of input symbols (ids below this are input indices).
    input_count: u32,
    /// Input index → `None` when `force` removed the symbol.
    kept: Vec<bool>,
}

struct Plan<'data, 'obj> {
    obj: &'obj Object<'data>,
    /// Input section index → output index (`None`: removed by `force`).
    sec_map: Vec<Option<u32>>,
    sections_moved: bool,
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
    fn new(obj: &'obj Object<'data>, opts: &WriteOptions) -> Result<Self> {
        let n = obj.section_count();
        let shstrtab = obj.header().shstrndx(LE, obj.data())? as usize;
        if shstrtab == 0 || shstrtab >= n {
            return Err(Error::malformed("no section name string table"));
        }
        let symtab = (1..n)
            .find(|&i| matches!(obj.section(SecId(i as u32)), Ok(s) if s.sh_type(LE) == elf::SHT_SYMTAB))
            .ok_or_else(|| Error::Other("no .symtab".into()))?;
        let symtab_shndx = (1..n).find(|&i| {
            matches!(obj.section(SecId(i as u32)),
                Ok(s) if s.sh_type(LE) == elf::SHT_SYMTAB_SHNDX && s.sh_link(LE) as usize == symtab)
        });

        // Existing ORC sections: refuse, or (force) remove them with their relocations.
        let mut removed = vec![false; n];
        let mut existing = None;
        for i in 1..n {
            let name = obj.section_name(SecId(i as u32))?;
            if ORC_SECTION_NAMES.contains(&name) {
                existing.get_or_insert(name);
                removed[i] = true;
            }
        }
        if let Some(name) = existing {
            if !opts.force {
                return Err(Error::AlreadyHasOrc(
                    String::from_utf8_lossy(name).into_owned(),
                ));
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
                    return Err(Error::Other(format!(
                        "--force would remove {}, which the object needs",
                        obj.describe(SecId(k as u32))
                    )));
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
            symtab,
            symtab_shndx,
            shstrtab,
            symbols,
            section_symbol,
            relocs: Vec::new(),
            entries: Vec::new(),
        })
    }

    fn add_rows(&mut self, rows: &[OrcRow]) -> Result<()> {
        self.relocs.reserve(rows.len());
        self.entries.reserve(rows.len() * ORC_ENTRY_SIZE);
        for (index, row) in rows.iter().enumerate() {
            let bad = |what: String| Error::BadOrcRow { index, what };
            let input = row.section.0 as usize;
            let header = match self.obj.section(row.section) {
                Ok(h) if input != 0 => h,
                _ => return Err(bad(format!("no section {}", row.section.0))),
            };
            let Some(Some(sec)) = self.sec_map.get(input).copied() else {
                return Err(bad(format!(
                    "{} is one of the ORC sections being replaced",
                    self.obj.describe(row.section)
                )));
            };
            if header.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) == 0 {
                // objtool: "bad call to elf_init_reloc_text_sym() for data symbol".
                return Err(bad(format!(
                    "{} is not executable",
                    self.obj.describe(row.section)
                )));
            }
            if row.offset > header.sh_size(LE) || row.offset > i32::MAX as u64 {
                return Err(bad(format!(
                    "offset {:#x} is outside {} (size {:#x})",
                    row.offset,
                    self.obj.describe(row.section),
                    header.sh_size(LE)
                )));
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

    fn finish(self) -> Result<Vec<u8>> {
        let obj = self.obj;
        let n = obj.section_count();
        let symbols = &self.symbols;
        // Stable id → final position.
        let mut final_pos = vec![u32::MAX; symbols.id_at.len()];
        for (pos, &id) in symbols.id_at.iter().enumerate() {
            if let Some(slot) = final_pos.get_mut(id as usize) {
                *slot = pos as u32;
            }
        }
        let symbols_moved = symbols.kept.iter().all(|&k| k)
            && (0..symbols.input_count).any(|i| final_pos[i as usize] != i)
            || symbols.kept.iter().any(|&k| !k);
        let map_symbol = |old: u32, what: &dyn Fn() -> String| -> Result<u32> {
            if old >= symbols.input_count {
                return Err(Error::malformed(format!(
                    "{}: symbol index {old} out of range ({} symbols)",
                    what(),
                    symbols.input_count
                )));
            }
            if !symbols.kept[old as usize] {
                return Err(Error::Other(format!(
                    "{} refers to symbol {old}, in a section --force removes",
                    what()
                )));
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
        for i in 0..n {
            if self.sec_map[i].is_none() {
                continue;
            }
            let id = SecId(i as u32);
            let mut header = *obj.section(id)?;
            let sh_type = header.sh_type(LE);
            let mut data: Cow<'data, [u8]> = if sh_type == elf::SHT_NOBITS || i == 0 {
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
                let mut names = data.into_owned();
                let mut offsets = [0u32; 3];
                for (slot, name) in offsets.iter_mut().zip(ORC_SECTION_NAMES) {
                    *slot = u32::try_from(names.len())
                        .map_err(|_| Error::malformed("section name table too large"))?;
                    names.extend_from_slice(name);
                    names.push(0);
                }
                data = Cow::Owned(names);
                let base = (n - self.sec_map.iter().filter(|m| m.is_none()).count()) as u32;
                out.push(OutSection { header, data });
                // Remember where the names went; the new headers are made below.
                return self.finish_with(out, i + 1, offsets, base, &final_pos);
            }
            if is_reloc(&header) && header.sh_link(LE) as usize == self.symtab && symbols_moved {
                let entsize = if sh_type == elf::SHT_RELA {
                    RELA_SIZE
                } else {
                    REL_SIZE
                };
                data = Cow::Owned(renumber_relocs(&data, entsize, &|old| {
                    map_symbol(old, &|| obj.describe(id))
                })?);
            }
            if sh_type == elf::SHT_GROUP {
                if symbols_moved && header.sh_link(LE) as usize == self.symtab {
                    let sig = map_symbol(header.sh_info(LE), &|| obj.describe(id))?;
                    header.sh_info = U32::new(LE, sig);
                }
                if self.sections_moved {
                    data = Cow::Owned(renumber_group(&data, &|m| map_section(m), &|| {
                        obj.describe(id)
                    })?);
                }
            }
            if self.sections_moved {
                remap_links(&mut header, &map_section, &|| obj.describe(id))?;
            }
            if sh_type != elf::SHT_NOBITS && i != 0 {
                header.sh_size = U64::new(LE, data.len() as u64);
            }
            out.push(OutSection { header, data });
        }
        // The section name table is always found above (it is never removed).
        Err(Error::malformed("no section name string table"))
    }

    /// Continues [`Self::finish`] after the section name table (index `from` onwards),
    /// then appends the ORC sections and writes the file.
    fn finish_with(
        &self,
        mut out: Vec<OutSection<'data>>,
        from: usize,
        names: [u32; 3],
        base: u32,
        final_pos: &[u32],
    ) -> Result<Vec<u8>> {
        // (Implemented by `copy_sections`; kept separate so the shstrtab special case
        // stays readable.)
        self.copy_sections(&mut out, from, final_pos)?;
        let symtab_out = self.sec_map[self.symtab].unwrap_or(0);
        let count = self.relocs.len();
        let orc_index = base;
        let ip_index = base + 1;
        let _ = orc_index;
        let mut relas = Vec::with_capacity(count * RELA_SIZE);
        for (i, &(id, addend)) in self.relocs.iter().enumerate() {
            let sym = final_pos[id as usize];
            relas.extend_from_slice(&(4 * i as u64).to_le_bytes());
            relas.extend_from_slice(
                &((u64::from(sym) << 32) | u64::from(elf::R_X86_64_PC32)).to_le_bytes(),
            );
            relas.extend_from_slice(&addend.to_le_bytes());
        }
        let new = [
            (
                names[0],
                elf::SHT_PROGBITS,
                elf::SHF_ALLOC,
                0,
                0,
                1,
                6,
                self.entries.clone(),
            ),
            (
                names[1],
                elf::SHT_PROGBITS,
                elf::SHF_ALLOC,
                0,
                0,
                1,
                4,
                vec![0; 4 * count],
            ),
            (
                names[2],
                elf::SHT_RELA,
                elf::SHF_INFO_LINK,
                symtab_out,
                ip_index,
                8,
                RELA_SIZE as u64,
                relas,
            ),
        ];
        for (name, sh_type, flags, link, info, align, entsize, data) in new {
            out.push(OutSection {
                header: SectionHeader {
                    sh_name: U32::new(LE, name),
                    sh_type: U32::new(LE, sh_type),
                    sh_flags: U64::new(LE, u64::from(flags)),
                    sh_addr: U64::new(LE, 0),
                    sh_offset: U64::new(LE, 0),
                    sh_size: U64::new(LE, data.len() as u64),
                    sh_link: U32::new(LE, link),
                    sh_info: U32::new(LE, info),
                    sh_addralign: U64::new(LE, align),
                    sh_entsize: U64::new(LE, entsize),
                },
                data: Cow::Owned(data),
            });
        }
        let shstrndx = self.sec_map[self.shstrtab].unwrap_or(0);
        write_object(self.obj, &mut out, shstrndx)
    }
}
