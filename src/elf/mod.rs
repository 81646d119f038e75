//! The object model: a borrowed, zero-copy view of an ELF64 x86-64 file.
//!
//! Built on `object::read::elf`: section headers, symbols and relocations stay slices of the
//! input; the only tables built eagerly are small indexes (section → its RELA section).
//! Every number taken from the file is bounds-checked; nothing here panics on hostile input.

pub mod input;
pub mod output;

use object::LittleEndian;
use object::elf;
use object::read::elf::{FileHeader as _, SectionHeader as _, SectionTable, Sym as _, SymbolTable};

use crate::error::{Error, ReadError, Result};

pub type FileHeader = elf::FileHeader64<LittleEndian>;
pub type SectionHeader = elf::SectionHeader64<LittleEndian>;
pub type Sym = elf::Sym64<LittleEndian>;
pub type Rela = elf::Rela64<LittleEndian>;
pub const LE: LittleEndian = LittleEndian;

pub use crate::ids::{SecId, SymId};

/// What kind of ELF file this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `ET_REL`: a `.o`, a `.ko` or `vmlinux.o`.
    Relocatable,
    /// `ET_EXEC` (or `ET_DYN`): a linked image such as `vmlinux`.
    Linked,
}

/// A parsed ELF64 little-endian x86-64 object.
pub struct Object<'data> {
    data: &'data [u8],
    header: &'data FileHeader,
    sections: SectionTable<'data, FileHeader>,
    symbols: SymbolTable<'data, FileHeader>,
    /// For each section, the SHT_RELA section that applies to it (the last one, if several).
    rela_for: Vec<Option<SecId>>,
}

impl<'data> Object<'data> {
    /// Parses the ELF header, the section table and the symbol table.
    pub fn parse(data: &'data [u8]) -> Result<Self> {
        check_ident(data)?;
        let header = FileHeader::parse(data)?;
        let machine = header.e_machine(LE);
        if machine != elf::EM_X86_64 {
            return Err(ReadError::WrongMachine(machine).into());
        }
        check_section_table(header, data)?;
        let sections = header.sections(LE, data)?;
        let symbols = sections.symbols(LE, data, elf::SHT_SYMTAB)?;
        let mut rela_for = vec![None; sections.len()];
        for (i, s) in sections.iter().enumerate() {
            if s.sh_type(LE) == elf::SHT_RELA {
                let target = s.sh_info(LE) as usize;
                if let Some(slot) = rela_for.get_mut(target) {
                    *slot = Some(SecId(i as u32));
                }
            }
        }
        Ok(Object {
            data,
            header,
            sections,
            symbols,
            rela_for,
        })
    }

    pub fn data(&self) -> &'data [u8] {
        self.data
    }

    pub fn header(&self) -> &'data FileHeader {
        self.header
    }

    pub fn kind(&self) -> ObjectKind {
        if self.header.e_type(LE) == elf::ET_REL {
            ObjectKind::Relocatable
        } else {
            ObjectKind::Linked
        }
    }

    /// Number of entries in the section header table, including the null section.
    pub fn section_count(&self) -> usize {
        self.sections.len()
    }

    pub fn section_ids(&self) -> impl Iterator<Item = SecId> + use<> {
        (0..self.sections.len() as u32).map(SecId)
    }

    pub fn section(&self, id: SecId) -> Result<&'data SectionHeader> {
        Ok(self.sections.section(object::SectionIndex(id.0 as usize))?)
    }

    pub fn section_name(&self, id: SecId) -> Result<&'data [u8]> {
        Ok(self.sections.section_name(LE, self.section(id)?)?)
    }

    /// The section's name for messages (empty when unreadable).
    pub fn section_name_lossy(&self, id: SecId) -> String {
        self.section_name(id)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    }

    /// The section called `name`; with several, the last one, as objtool's lookups by name
    /// in its dump do.
    pub fn section_by_name(&self, name: &[u8]) -> Option<SecId> {
        let mut found = None;
        for (i, s) in self.sections.iter().enumerate() {
            if self.sections.section_name(LE, s).ok() == Some(name) {
                found = Some(SecId(i as u32));
            }
        }
        found
    }

    /// `section 17 (.orc_unwind)`, for messages; the name is left out when unreadable.
    pub fn describe(&self, id: SecId) -> String {
        match self.section_name(id) {
            Ok(name) => format!("section {} ({})", id.0, String::from_utf8_lossy(name)),
            Err(_) => format!("section {}", id.0),
        }
    }

    /// The bytes of a section (empty for SHT_NOBITS).
    pub fn section_data(&self, id: SecId) -> Result<&'data [u8]> {
        let s = self.section(id)?;
        s.data(LE, self.data).map_err(|_| {
            let end = s.sh_offset(LE).saturating_add(s.sh_size(LE));
            let size = self.data.len() as u64;
            if end > size && s.sh_offset(LE) / 2 <= size {
                ReadError::Truncated {
                    what: format!("the data of {}", self.describe(id)),
                    end,
                    size,
                }
                .into()
            } else {
                Error::malformed(format!("{} data lies outside the file", self.describe(id)))
            }
        })
    }

    /// The section's data as entries of `entsize` bytes; its size must be a multiple.
    pub fn section_entries(&self, id: SecId, entsize: u64) -> Result<&'data [u8]> {
        let data = self.section_data(id)?;
        if data.len() as u64 % entsize != 0 {
            return Err(ReadError::BadSectionSize {
                section: String::from_utf8_lossy(self.section_name(id)?).into_owned(),
                size: data.len() as u64,
                entsize,
            }
            .into());
        }
        Ok(data)
    }

    /// The relocation records of a SHT_RELA section.
    pub fn rela_records(&self, rela_sec: SecId) -> Result<&'data [Rela]> {
        let s = self.section(rela_sec)?;
        match s.rela(LE, self.data) {
            Ok(Some((relas, _))) => Ok(relas),
            Ok(None) => Err(Error::malformed(format!(
                "{} is not a RELA section",
                self.describe(rela_sec)
            ))),
            Err(_) => Err(Error::malformed(format!(
                "{} lies outside the file or has a bad size",
                self.describe(rela_sec)
            ))),
        }
    }

    /// The RELA section that relocates `target`, if any.
    pub fn rela_section_for(&self, target: SecId) -> Option<SecId> {
        self.rela_for.get(target.0 as usize).copied().flatten()
    }

    /// Number of entries in `.symtab` (0 when there is none).
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    pub fn has_symtab(&self) -> bool {
        !self.symbols.is_empty()
    }

    pub fn symbol(&self, id: SymId) -> Result<&'data Sym> {
        self.symbols
            .symbols()
            .get(id.0 as usize)
            .ok_or_else(|| Error::malformed(format!("symbol index {} out of range", id.0)))
    }

    pub fn symbol_name(&self, sym: &Sym) -> Result<&'data [u8]> {
        Ok(sym.name(LE, self.symbols.strings())?)
    }

    /// The section a symbol is defined in (handles SHN_XINDEX); `None` for undefined,
    /// absolute and common symbols.
    pub fn symbol_section(&self, id: SymId) -> Result<Option<SecId>> {
        let sym = self.symbol(id)?;
        if id.0 == 0 {
            return Ok(None);
        }
        let idx = self
            .symbols
            .symbol_section(LE, sym, object::SymbolIndex(id.0 as usize))?;
        Ok(idx.map(|i| SecId(i.0 as u32)))
    }

    /// The symbol of a relocation record, checked against the symbol table.
    pub fn rela_symbol(&self, rela: &Rela) -> Result<SymId> {
        let idx = rela.r_sym(LE, false);
        if idx as usize >= self.symbols.len() {
            return Err(Error::malformed(format!(
                "relocation symbol index {idx} out of range ({} symbols)",
                self.symbols.len()
            )));
        }
        Ok(SymId(idx))
    }
}

/// A section header table that does not fit in the file: a truncated file, most often
/// (objects keep their section headers at the end), else a corrupt header.
fn check_section_table(header: &FileHeader, data: &[u8]) -> Result<()> {
    let shoff = header.e_shoff(LE);
    let mut shnum = u64::from(header.e_shnum(LE));
    if shoff != 0 && shnum == 0 {
        // more than 0xff00 sections: the count is in section 0's sh_size; its header must fit
        shnum = 1;
    }
    let end = shoff.saturating_add(shnum.saturating_mul(u64::from(header.e_shentsize(LE))));
    let size = data.len() as u64;
    // an offset within twice the file's size is taken for a file cut short; further out,
    // for a corrupt header
    if shoff != 0 && end > size && shoff / 2 > size {
        return Err(Error::malformed(format!(
            "the section header table (at byte {shoff}) lies outside the file ({size} bytes)"
        )));
    }
    if shoff != 0 && end > size {
        return Err(ReadError::Truncated {
            what: "the section header table".into(),
            end,
            size,
        }
        .into());
    }
    Ok(())
}

/// Checks `e_ident` first so that the common mistakes get a precise message.
fn check_ident(data: &[u8]) -> Result<()> {
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        return Err(ReadError::NotElf.into());
    }
    if data.len() < size_of::<FileHeader>() {
        return Err(ReadError::TruncatedHeader(data.len()).into());
    }
    let class = data[4];
    if class != elf::ELFCLASS64 {
        return Err(ReadError::NotElf64(class).into());
    }
    let encoding = data[5];
    if encoding != elf::ELFDATA2LSB {
        return Err(ReadError::NotLittleEndian(encoding).into());
    }
    Ok(())
}
