//! Source lines of instructions, from the object's DWARF line table (`addr2line` on `gimli`),
//! for `check --verbose`.
//!
//! In a relocatable object the line table's addresses are relocations against the text
//! sections: each debug section is copied and its RELA records applied, with every allocated
//! section at a synthetic address of its own (one after the other from 16 MiB, so that
//! `.text` and `.text.foo` do not overlap) and every other section at 0 (references into
//! `.debug_line`, `.debug_str`, … are offsets). A linked object's addresses are its own.

use std::borrow::Cow;
use std::path::PathBuf;

use object::read::elf::{SectionHeader as _, Sym as _};

use crate::elf::{LE, Object, ObjectKind, SecId};

type Reader = gimli::EndianRcSlice<gimli::LittleEndian>;

/// A source position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub file: PathBuf,
    pub line: u32,
    pub column: Option<u32>,
}

/// The line table of one object.
pub struct Lines {
    /// Per section: its address in the table's terms.
    bases: Vec<u64>,
    ctx: addr2line::Context<Reader>,
}

impl Lines {
    /// `None` when the object has no line table (no `.debug_line`) or it cannot be read.
    pub fn read(obj: &Object<'_>) -> Option<Lines> {
        obj.section_by_name(b".debug_line")?;
        let linked = obj.kind() != ObjectKind::Relocatable;
        let bases = layout(obj, linked);
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let data = obj
                .section_by_name(id.name().as_bytes())
                .map(|sec| section_bytes(obj, sec, &bases, linked))
                .unwrap_or_default();
            Ok(gimli::EndianRcSlice::new(
                std::rc::Rc::from(data.into_boxed_slice()),
                gimli::LittleEndian,
            ))
        };
        let dwarf = gimli::Dwarf::load(load).ok()?;
        let ctx = addr2line::Context::from_dwarf(dwarf).ok()?;
        Some(Lines { bases, ctx })
    }

    /// The source line of the instruction at `off` in `sec`.
    pub fn find(&self, sec: SecId, off: u64) -> Option<SourceLine> {
        let addr = self.bases.get(sec.0 as usize)? + off;
        let loc = self.ctx.find_location(addr).ok()??;
        Some(SourceLine {
            file: PathBuf::from(loc.file?),
            line: loc.line?,
            // (0: the line table does not say)
            column: loc.column.filter(|&c| c > 0),
        })
    }
}

/// Synthetic addresses: allocated sections one after the other from 16 MiB, others at 0
/// (a linked object: every section at 0, its addresses are real).
fn layout(obj: &Object<'_>, linked: bool) -> Vec<u64> {
    let mut base = 16 << 20;
    obj.section_ids()
        .map(|id| {
            let Ok(h) = obj.section(id) else {
                return 0;
            };
            if linked || h.sh_flags(LE) & u64::from(object::elf::SHF_ALLOC) == 0 {
                return 0;
            }
            let here = base;
            base = (base + h.sh_size(LE) + 15) & !15;
            here
        })
        .collect()
}

/// The bytes of `sec` with its relocations applied (R_X86_64_64, _32, _32S; others are left
/// as they are).
fn section_bytes(obj: &Object<'_>, sec: SecId, bases: &[u64], linked: bool) -> Vec<u8> {
    let mut data: Vec<u8> = obj
        .section_data(sec)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if linked {
        return data;
    }
    let Some(rela) = obj.rela_section_for(sec) else {
        return data;
    };
    for r in obj.rela_records(rela).unwrap_or(&[]) {
        let ty = r.r_type(LE, false);
        let Ok(sym_id) = obj.rela_symbol(r) else {
            continue;
        };
        let Ok(sym) = obj.symbol(sym_id) else {
            continue;
        };
        let target = match obj.symbol_section(sym_id) {
            Ok(Some(s)) => bases.get(s.0 as usize).copied().unwrap_or(0),
            _ => 0,
        };
        let value = target
            .wrapping_add(sym.st_value(LE))
            .wrapping_add(r.r_addend.get(LE) as u64);
        let width = match ty {
            object::elf::R_X86_64_64 => 8,
            object::elf::R_X86_64_32 | object::elf::R_X86_64_32S => 4,
            _ => continue,
        };
        let at = r.r_offset.get(LE) as usize;
        if let Some(dst) = data.get_mut(at..at + width) {
            dst.copy_from_slice(&value.to_le_bytes()[..width]);
        }
    }
    data
}

/// The text of line `line` (1-based) of `file`, read relative to the current directory
/// when the path is relative; `None` when the file cannot be read.
pub fn line_text(file: &std::path::Path, line: u32) -> Option<Cow<'static, str>> {
    let text = std::fs::read_to_string(file).ok()?;
    let l = text.lines().nth((line as usize).checked_sub(1)?)?;
    Some(Cow::Owned(l.to_owned()))
}
