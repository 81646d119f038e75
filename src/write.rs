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
use object::write::WritableBuffer as _;
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
    /// Flush the new file and its directory to disk before and after the rename (the
    /// rename alone already makes the replacement atomic for readers and against an
    /// interrupted run; this adds durability across a power loss, at about a millisecond
    /// per file).
    pub sync: bool,
}

/// The sections objtool creates (and `force` removes), in creation order.
const ORC_SECTION_NAMES: [&[u8]; 3] = [b".orc_unwind", b".orc_unwind_ip", b".rela.orc_unwind_ip"];

const RELA_SIZE: usize = 24;
const REL_SIZE: usize = 16;

/// Returns the bytes of the new object: `obj` with `.orc_unwind`, `.orc_unwind_ip` and
/// `.rela.orc_unwind_ip` appended as objtool 6.12 does. Empty `rows` give the input back
/// unchanged (objtool writes nothing then, and does not check for existing ORC).
pub fn add_orc(obj: &Object<'_>, rows: &[OrcRow], opts: &WriteOptions) -> Result<Vec<u8>> {
    if rows.is_empty() {
        return Ok(obj.data().to_vec());
    }
    let layout = plan(obj, rows, opts)?;
    let mut buffer = SparseBuffer::default();
    layout.emit(obj, &mut buffer, None, false)?;
    buffer.into_vec()
}

fn plan<'data>(obj: &Object<'data>, rows: &[OrcRow], opts: &WriteOptions) -> Result<Layout<'data>> {
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
    let layout = plan.finish()?;
    // Only hostile alignments make the output much larger than the input plus the table.
    let limit = obj.data().len().saturating_mul(2).saturating_add(1 << 28);
    if layout.total > limit {
        return Err(Error::malformed(format!(
            "the output would be {} bytes for a {}-byte input (section alignments?)",
            layout.total,
            obj.data().len()
        )));
    }
    Ok(layout)
}

/// Bytes written to the output at an offset from where they are (not through the buffer).
type InPlace<'a> = (usize, &'a [u8]);

/// New section contents at least this large are written to the file from where they are.
const DIRECT_MIN_BYTES: usize = 1 << 16;

/// Objects smaller than this are written from memory rather than copied file to file.
const COPY_MIN_BYTES: usize = 1 << 20;

/// Writes `obj` with the ORC `rows` added (or unchanged, without rows) to `target`, through
/// a temporary file renamed over it (see [`replace_file`]), then applies `patch` to the new
/// file. Sections that stay as they were are copied from `input` — the open input file
/// `obj` was mapped from, when there is one — with `copy_file_range`, so a large object's
/// untouched sections (DWARF, mostly) never pass through memory.
pub fn write_orc_file(
    obj: &Object<'_>,
    rows: &[OrcRow],
    opts: &WriteOptions,
    input: Option<&File>,
    target: &Path,
    patch: &dyn Fn(&mut File) -> Result<()>,
) -> Result<()> {
    let layout = if rows.is_empty() {
        None
    } else {
        Some(plan(obj, rows, opts)?)
    };
    // A small object is written from memory: copying its sections file to file costs
    // more system calls than it saves.
    let input = input.filter(|_| obj.data().len() >= COPY_MIN_BYTES);
    replace_file_with(target, opts.sync, &mut |file: &mut File| {
        let mut buffer = SparseBuffer::default();
        let (copies, direct) = match &layout {
            Some(l) => l.emit(obj, &mut buffer, input.map(|_| obj.data()), true)?,
            None => match input {
                // unchanged: one copy of the whole file
                Some(_) => {
                    buffer.resize(obj.data().len());
                    let all = Copy {
                        to: 0,
                        from: 0,
                        len: obj.data().len(),
                    };
                    (vec![all], Vec::new())
                }
                None => {
                    buffer.write_bytes(obj.data());
                    (Vec::new(), Vec::new())
                }
            },
        };
        buffer.write_to(file, input, &copies, &direct)?;
        patch(file)
    })
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
    /// The id of the next created symbol.
    next_id: u32,
    /// Input index → `None` when `force` removed the symbol.
    kept: Vec<bool>,
}

struct Plan<'data, 'obj> {
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

    fn finish(self) -> Result<Layout<'data>> {
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
                return Err(Error::Other(format!(
                    "{} refers to symbol {old}, defined in a section --force removes",
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
        Layout::new(out, shstrndx)
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

impl Symbols {
    /// Reads `.symtab` (and `.symtab_shndx`); with sections removed by `force`, drops the
    /// section symbols of removed sections and renumbers the section indices of the rest.
    fn read(
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
                        return Err(Error::Other(format!(
                            "symbol '{}' is defined in {}, which --force would remove",
                            String::from_utf8_lossy(obj.symbol_name(&sym).unwrap_or(b"?")),
                            obj.describe(SecId(s))
                        )));
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
    /// section `sec` at index `sh_info`, the symbol there moving to the end. Returns the
    /// new symbol's stable id.
    fn add_section_symbol(&mut self, sec: u32) -> Result<u32> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::malformed("too many symbols"))?;
        let direct = sec < u32::from(elf::SHN_LORESERVE);
        if !direct && self.shndx.is_none() {
            // objtool: "no .symtab_shndx".
            return Err(Error::Other(format!(
                "section {sec} needs an extended section index but there is no .symtab_shndx"
            )));
        }
        let new = Sym {
            st_name: U32::new(LE, 0),
            st_info: (elf::STB_LOCAL << 4) | elf::STT_SECTION,
            st_other: 0,
            st_shndx: U16::new(LE, if direct { sec as u16 } else { elf::SHN_XINDEX }),
            st_value: U64::new(LE, 0),
            st_size: U64::new(LE, 0),
        };
        let pos = self.first_global as usize;
        if pos < self.syms.len() {
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
        self.first_global += 1;
        Ok(id)
    }
}

/// A section header at address 0 and (for now) offset 0.
#[allow(clippy::too_many_arguments)]
fn header_of(
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

fn sym_section(sym: &Sym, shndx_entry: Option<u32>) -> SymSection {
    match sym.st_shndx(LE) {
        elf::SHN_UNDEF => SymSection::Undefined,
        elf::SHN_XINDEX => SymSection::Section(shndx_entry.unwrap_or(0)),
        v if v >= elf::SHN_LORESERVE => SymSection::Special(v),
        v => SymSection::Section(u32::from(v)),
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
            Error::Other(format!(
                "{} is linked to section {link}, which --force removes",
                describe()
            ))
        })?;
        header.sh_link = U32::new(LE, new);
    }
    let info_is_section =
        is_reloc(header) || header.sh_flags(LE) & u64::from(elf::SHF_INFO_LINK) != 0;
    let info = header.sh_info(LE);
    if info_is_section && info != 0 {
        let new = map(info).ok_or_else(|| {
            Error::Other(format!(
                "{} refers to section {info}, which --force removes",
                describe()
            ))
        })?;
        header.sh_info = U32::new(LE, new);
    }
    Ok(())
}

/// Lays the sections out as libelf's `elf_update()` does and writes the file with
/// `object`'s ELF writer. `out[0]` is the null section.
/// The output sections with their final headers and file offsets.
struct Layout<'data> {
    out: Vec<OutSection<'data>>,
    offsets: Vec<usize>,
    total: usize,
    shstrndx: u32,
}

/// A range of the input file to copy into the output file.
#[derive(Clone, Copy, Debug)]
struct Copy {
    to: usize,
    from: usize,
    len: usize,
}

impl<'data> Layout<'data> {
    fn new(mut out: Vec<OutSection<'data>>, shstrndx: u32) -> Result<Self> {
        // The layout first, with checked arithmetic: a hostile alignment must give an
        // error, not an overflow or an allocation failure inside the writer.
        let too_large = || Error::malformed("the output would be larger than the address space");
        let mut offsets = vec![0usize; out.len()];
        let mut end = size_of::<crate::elf::FileHeader>();
        for (i, s) in out.iter_mut().enumerate().skip(1) {
            let align = s.header.sh_addralign(LE).max(1);
            if !align.is_power_of_two() {
                return Err(Error::malformed(format!(
                    "section {i} has alignment {align}, not a power of two"
                )));
            }
            let align = usize::try_from(align).map_err(|_| too_large())?;
            let len = if s.header.sh_type(LE) == elf::SHT_NOBITS {
                0
            } else {
                s.data.len()
            };
            offsets[i] = align_up(end, align).ok_or_else(too_large)?;
            end = offsets[i].checked_add(len).ok_or_else(too_large)?;
            s.header.sh_offset = U64::new(LE, offsets[i] as u64);
            s.header.sh_addralign = U64::new(LE, align as u64);
        }
        let total = align_up(end, 8)
            .and_then(|shoff| shoff.checked_add(out.len().checked_mul(size_of::<SectionHeader>())?))
            .ok_or_else(too_large)?;
        Ok(Layout {
            out,
            offsets,
            total,
            shstrndx,
        })
    }

    /// Writes the file through `object`'s writer into `buffer`. With `source` (the bytes
    /// of the input file), sections whose data is an unchanged slice of it are left as
    /// gaps and returned as ranges to copy. With `direct`, large new section contents are
    /// left as gaps too and returned with their offsets, to be written from where they are
    /// (not copied into the buffer first).
    fn emit<'s>(
        &'s self,
        obj: &Object<'_>,
        buffer: &mut SparseBuffer,
        source: Option<&[u8]>,
        direct: bool,
    ) -> Result<(Vec<Copy>, Vec<InPlace<'s>>)> {
        let out = &self.out;
        let mut copies: Vec<Copy> = Vec::new();
        let mut in_place: Vec<InPlace<'s>> = Vec::new();
        let input = obj.header();
        let mut w = Writer::new(Endianness::Little, true, buffer);
        w.reserve_file_header();
        for i in 1..out.len() {
            if i as u32 == self.shstrndx {
                w.reserve_shstrtab_section_index_with_name(b".shstrtab");
            } else {
                w.reserve_section_index();
            }
        }
        for (i, s) in out.iter().enumerate().skip(1) {
            let len = if s.header.sh_type(LE) == elf::SHT_NOBITS {
                0
            } else {
                s.data.len()
            };
            let at = w.reserve(len, s.header.sh_addralign(LE) as usize);
            debug_assert_eq!(at, self.offsets[i]);
        }
        w.reserve_section_headers();
        debug_assert_eq!(w.reserved_len(), self.total);
        w.write_file_header(&object::write::elf::FileHeader {
            os_abi: input.e_ident.os_abi,
            abi_version: input.e_ident.abi_version,
            e_type: input.e_type(LE),
            e_machine: input.e_machine(LE),
            e_entry: input.e_entry(LE),
            e_flags: input.e_flags(LE),
        })
        .map_err(|e| Error::Other(format!("can't write the ELF header: {e}")))?;
        for (i, s) in out.iter().enumerate().skip(1) {
            if s.header.sh_type(LE) == elf::SHT_NOBITS {
                continue;
            }
            w.pad_until(self.offsets[i]);
            let from = match (&s.data, source) {
                (Cow::Borrowed(d), Some(src)) if !d.is_empty() => {
                    let start = (d.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize);
                    (start <= src.len() && d.len() <= src.len() - start).then_some(start)
                }
                _ => None,
            };
            match from {
                Some(from) => {
                    let to = self.offsets[i];
                    let len = s.data.len();
                    // one copy for neighbours that stay neighbours (fewer system calls)
                    match copies.last_mut() {
                        Some(c) if c.from + c.len == from && c.to + c.len == to => c.len += len,
                        _ => copies.push(Copy { to, from, len }),
                    }
                    w.pad_until(self.offsets[i] + s.data.len());
                }
                None if direct && s.data.len() >= DIRECT_MIN_BYTES => {
                    in_place.push((self.offsets[i], &s.data[..]));
                    w.pad_until(self.offsets[i] + s.data.len());
                }
                None => w.write(&s.data),
            }
        }
        w.write_null_section_header();
        for s in out.iter().skip(1) {
            w.write(object::bytes_of(&s.header));
        }
        Ok((copies, in_place))
    }
}

/// A `WritableBuffer` that keeps the bytes written and leaves zero padding (and the ranges
/// to be copied) as gaps.
#[derive(Default)]
struct SparseBuffer {
    pieces: Vec<(usize, Vec<u8>)>,
    len: usize,
}

impl object::write::WritableBuffer for SparseBuffer {
    fn len(&self) -> usize {
        self.len
    }

    fn reserve(&mut self, _size: usize) -> std::result::Result<(), ()> {
        Ok(())
    }

    fn resize(&mut self, new_len: usize) {
        self.len = self.len.max(new_len);
    }

    fn write_bytes(&mut self, val: &[u8]) {
        // small writes join the piece before them; a large piece is not grown (growing
        // copies it: the section headers after a large ORC table cost 10 ms)
        match self.pieces.last_mut() {
            Some((at, v)) if *at + v.len() == self.len && v.len() < 1 << 16 => {
                v.extend_from_slice(val)
            }
            _ => self.pieces.push((self.len, val.to_vec())),
        }
        self.len += val.len();
    }
}

impl SparseBuffer {
    fn into_vec(self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        v.try_reserve_exact(self.len).map_err(|_| {
            Error::Other(format!("can't allocate {} bytes for the output", self.len))
        })?;
        v.resize(self.len, 0);
        for (at, bytes) in self.pieces {
            v[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(v)
    }

    /// Writes the pieces and the copied ranges into `file` (the gaps read as zeros).
    fn write_to(
        &self,
        file: &mut File,
        input: Option<&File>,
        copies: &[Copy],
        direct: &[InPlace<'_>],
    ) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::FileExt as _;
        let io = |e: std::io::Error| Error::Other(format!("can't write the output: {e}"));
        file.set_len(self.len as u64).map_err(io)?;
        for (at, bytes) in &self.pieces {
            file.write_all_at(bytes, *at as u64).map_err(io)?;
        }
        for (at, bytes) in direct {
            file.write_all_at(bytes, *at as u64).map_err(io)?;
        }
        if let Some(mut src) = input {
            for c in copies {
                src.seek(SeekFrom::Start(c.from as u64)).map_err(io)?;
                file.seek(SeekFrom::Start(c.to as u64)).map_err(io)?;
                let n = std::io::copy(&mut std::io::Read::take(&mut src, c.len as u64), file)
                    .map_err(io)?;
                if n != c.len as u64 {
                    return Err(Error::Other(
                        "the input file changed while being read".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn align_up(offset: usize, align: usize) -> Option<usize> {
    Some(offset.checked_add(align - 1)? & !(align - 1))
}

/// Writes `bytes` to a temporary file in the same directory as `path` (after resolving
/// symbolic links), flushes it to disk, gives it the original file's permissions and
/// renames it over `path`. On any error the original file is untouched and the temporary
/// file removed. (A hard-linked `path` ends up as a new file; objtool writes in place.)
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file_with(path, true, &mut |file: &mut File| {
        file.write_all(bytes)
            .map_err(|e| Error::Other(format!("can't write the output: {e}")))
    })
}

/// [`replace_file`] with the content written by `fill` into the temporary file; `sync`
/// flushes the file and the directory to disk.
pub fn replace_file_with(
    path: &Path,
    sync: bool,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<()> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let target = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(source) => {
            return Err(Error::Write {
                action: "resolve",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "object".into());
    let permissions = fs::metadata(&target).ok().map(|m| m.permissions());
    let (tmp, mut file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.orctool-{}-{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < u32::MAX => continue,
            Err(source) => {
                return Err(Error::Write {
                    action: "create a temporary file in",
                    path: dir,
                    source,
                });
            }
        }
    };
    if let Err(e) = fill(&mut file) {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let result = (|| -> std::result::Result<(), (&'static str, std::io::Error)> {
        if let Some(p) = permissions {
            file.set_permissions(p)
                .map_err(|e| ("set permissions of", e))?;
        }
        if sync {
            file.sync_all().map_err(|e| ("flush", e))?;
        }
        drop(file);
        fs::rename(&tmp, &target).map_err(|e| ("rename over", e))?;
        Ok(())
    })();
    if let Err((action, source)) = result {
        let _ = fs::remove_file(&tmp);
        let path = if action == "rename over" { target } else { tmp };
        return Err(Error::Write {
            action,
            path,
            source,
        });
    }
    // The rename itself is durable once the directory is flushed (best effort).
    if sync {
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
