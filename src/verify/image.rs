//! The verifier's view of a file: executable sections, functions, relocations, and where a
//! relative reference in a table points.
//!
//! Addresses are `(section, offset)` pairs ([`Loc`]) in both kinds of file: in a relocatable
//! object a reference is resolved through its relocation record, in a linked image through
//! the section table (`sh_addr`). Only `crate::elf` (reading the ELF structures) is shared
//! with `check`; symbols, relocations and tables are read here again on purpose.

use std::collections::HashMap;

use object::elf;
use object::read::elf::{Rela as _, SectionHeader as _, Sym as _};

use crate::elf::{LE, Object, ObjectKind, SecId, SymId};

/// A place in the file: section and offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub sec: SecId,
    pub off: u64,
}

/// What a relocation (or a linked reference) names.
#[derive(Clone, Copy, Debug)]
pub struct Target<'d> {
    /// Where it points, when the symbol is defined in this file.
    pub loc: Option<Loc>,
    /// The symbol's name (empty for section symbols and linked references).
    pub name: &'d [u8],
}

/// A function symbol (STT_FUNC) with a size.
#[derive(Clone, Debug)]
pub struct Func<'d> {
    pub name: &'d [u8],
    pub start: Loc,
    pub size: u64,
}

/// One relocation record of an executable or table section.
#[derive(Clone, Copy, Debug)]
pub struct Reloc {
    pub off: u64,
    pub sym: SymId,
    pub addend: i64,
    pub ty: u32,
}

pub struct Image<'d> {
    pub obj: &'d Object<'d>,
    pub kind: ObjectKind,
    /// Executable sections with data, sorted by address (linked) or index.
    pub text: Vec<SecId>,
    pub funcs: Vec<Func<'d>>,
    /// Relocations per relocated section, sorted by offset.
    relocs: HashMap<SecId, Vec<Reloc>>,
    /// Linked: (start, end, section) of every allocated section, sorted.
    ranges: Vec<(u64, u64, SecId)>,
    /// Where named symbols (not sections or files) point.
    symbols_at: std::collections::HashSet<Loc>,
}

impl<'d> Image<'d> {
    pub fn new(obj: &'d Object<'d>) -> Self {
        let kind = obj.kind();
        let mut text = Vec::new();
        let mut ranges = Vec::new();
        for id in obj.section_ids() {
            let Ok(h) = obj.section(id) else { continue };
            let flags = h.sh_flags(LE);
            if flags & u64::from(elf::SHF_ALLOC) != 0 && h.sh_size(LE) > 0 {
                ranges.push((h.sh_addr(LE), h.sh_addr(LE) + h.sh_size(LE), id));
            }
            if flags & u64::from(elf::SHF_EXECINSTR) != 0 && h.sh_type(LE) == elf::SHT_PROGBITS {
                text.push(id);
            }
        }
        ranges.sort_unstable_by_key(|r| (r.0, r.1));
        let mut relocs: HashMap<SecId, Vec<Reloc>> = HashMap::new();
        if kind == ObjectKind::Relocatable {
            for id in obj.section_ids() {
                let Ok(h) = obj.section(id) else { continue };
                if h.sh_type(LE) != elf::SHT_RELA {
                    continue;
                }
                let target = SecId(h.sh_info(LE));
                let Ok(records) = obj.rela_records(id) else {
                    continue;
                };
                let list = relocs.entry(target).or_default();
                for r in records {
                    let Ok(sym) = obj.rela_symbol(r) else {
                        continue;
                    };
                    list.push(Reloc {
                        off: r.r_offset(LE),
                        sym,
                        addend: r.r_addend(LE),
                        ty: r.r_type(LE, false),
                    });
                }
            }
            for list in relocs.values_mut() {
                list.sort_by_key(|r| r.off);
            }
        }
        let mut image = Image {
            obj,
            kind,
            text,
            funcs: Vec::new(),
            relocs,
            ranges,
            symbols_at: Default::default(),
        };
        image.funcs = image.read_funcs();
        image.symbols_at = image.read_symbol_locs();
        image
    }

    fn read_symbol_locs(&self) -> std::collections::HashSet<Loc> {
        (1..self.obj.symbol_count())
            .filter_map(|i| {
                let id = SymId(i as u32);
                let sym = self.obj.symbol(id).ok()?;
                let named = matches!(sym.st_type(), elf::STT_NOTYPE | elf::STT_FUNC)
                    && sym.st_name(LE) != 0
                    && !self.obj.symbol_name(sym).ok()?.starts_with(b".L");
                if named { self.symbol_loc(id) } else { None }
            })
            .collect()
    }

    /// Whether a named symbol points at `loc`.
    pub fn is_symbol(&self, loc: Loc) -> bool {
        self.symbols_at.contains(&loc)
    }

    fn read_funcs(&self) -> Vec<Func<'d>> {
        let mut funcs = Vec::new();
        for i in 1..self.obj.symbol_count() {
            let id = SymId(i as u32);
            let Ok(sym) = self.obj.symbol(id) else {
                continue;
            };
            if sym.st_type() != elf::STT_FUNC || sym.st_size(LE) == 0 {
                continue;
            }
            let Some(start) = self.symbol_loc(id) else {
                continue;
            };
            if !self.text.contains(&start.sec) {
                continue;
            }
            let name = self.obj.symbol_name(sym).unwrap_or(b"");
            funcs.push(Func {
                name,
                start,
                size: sym.st_size(LE),
            });
        }
        funcs.sort_by_key(|f| (f.start, f.size));
        // aliases: one function per start
        funcs.dedup_by(|b, a| a.start == b.start);
        funcs
    }

    /// Where a defined symbol lies.
    pub fn symbol_loc(&self, id: SymId) -> Option<Loc> {
        let sym = self.obj.symbol(id).ok()?;
        let sec = self.obj.symbol_section(id).ok()??;
        let value = sym.st_value(LE);
        match self.kind {
            ObjectKind::Relocatable => Some(Loc { sec, off: value }),
            ObjectKind::Linked => self.addr_loc(value),
        }
    }

    /// The section and offset of a linked address (the innermost allocated section).
    pub fn addr_loc(&self, addr: u64) -> Option<Loc> {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        self.ranges[..i]
            .iter()
            .rev()
            .take(8)
            .find(|r| addr < r.1)
            .map(|r| Loc {
                sec: r.2,
                off: addr - r.0,
            })
    }

    /// The linked address of a location (its offset in a relocatable object).
    pub fn addr(&self, loc: Loc) -> u64 {
        match self.kind {
            ObjectKind::Relocatable => loc.off,
            ObjectKind::Linked => {
                self.obj
                    .section(loc.sec)
                    .map(|h| h.sh_addr(LE))
                    .unwrap_or(0)
                    + loc.off
            }
        }
    }

    /// The relocation at exactly `off` in `sec`.
    fn reloc_at(&self, sec: SecId, off: u64) -> Option<Reloc> {
        let list = self.relocs.get(&sec)?;
        let i = list.partition_point(|r| r.off < off);
        list.get(i).filter(|r| r.off == off).copied()
    }

    /// Whether a relocation applies to a byte in `[off, off + len)` of `sec`.
    pub fn has_reloc_in(&self, sec: SecId, off: u64, len: u64) -> bool {
        self.relocs.get(&sec).is_some_and(|list| {
            let i = list.partition_point(|r| r.off < off);
            list.get(i).is_some_and(|r| r.off < off + len)
        })
    }

    fn reloc_target(&self, r: Reloc, bias: i64) -> Target<'d> {
        let sym = self.obj.symbol(r.sym).ok();
        let name = sym
            .and_then(|s| self.obj.symbol_name(s).ok())
            .unwrap_or(b"");
        let loc = self.symbol_loc(r.sym).map(|l| Loc {
            sec: l.sec,
            off: l.off.wrapping_add((r.addend + bias) as u64),
        });
        Target { loc, name }
    }

    /// The target of a PC-relative 32-bit field at `field` of `sec` that the CPU adds to
    /// `next` (the end of the instruction, or the field itself for table entries
    /// `.long sym - .`, where `next == field`).
    pub fn rel32(&self, sec: SecId, field: u64, next: u64, data: &[u8]) -> Option<Target<'d>> {
        match self.kind {
            ObjectKind::Relocatable => {
                let r = self.reloc_at(sec, field)?;
                // S + A - P at P = field; the CPU adds it to `next`.
                Some(self.reloc_target(r, (next - field) as i64))
            }
            ObjectKind::Linked => {
                let b = data.get(field as usize..field as usize + 4)?;
                let disp = i32::from_le_bytes(b.try_into().ok()?) as i64;
                let base = self.addr(Loc { sec, off: next });
                let loc = self.addr_loc(base.wrapping_add(disp as u64));
                Some(Target { loc, name: b"" })
            }
        }
    }

    /// The relocation records of `sec`, sorted by offset (relocatable objects).
    pub fn relocs_of(&self, sec: SecId) -> &[Reloc] {
        self.relocs.get(&sec).map(Vec::as_slice).unwrap_or(&[])
    }

    /// What every relocation record of `sec` names (S + A).
    pub fn reloc_targets(&self, sec: SecId) -> Vec<Target<'d>> {
        self.relocs
            .get(&sec)
            .map(|list| list.iter().map(|r| self.reloc_target(*r, 0)).collect())
            .unwrap_or_default()
    }

    /// The symbol at the start of `loc` (for messages): name and offset from its start.
    pub fn func_at(&self, loc: Loc) -> Option<(&Func<'d>, u64)> {
        let i = self.funcs.partition_point(|f| f.start <= loc);
        let f = self.funcs[..i].last()?;
        (f.start.sec == loc.sec && loc.off < f.start.off + f.size.max(1))
            .then(|| (f, loc.off - f.start.off))
    }

    /// `func+0xoff`, or `section+0xoff` outside functions.
    pub fn describe(&self, loc: Loc) -> String {
        match self.func_at(loc) {
            Some((f, off)) => format!("{}+0x{off:x}", String::from_utf8_lossy(f.name)),
            None => format!("{}+0x{:x}", self.obj.section_name_lossy(loc.sec), loc.off),
        }
    }

    /// The section bytes (empty on error).
    pub fn data(&self, sec: SecId) -> &'d [u8] {
        self.obj.section_data(sec).unwrap_or(&[])
    }

    /// The symbol called `name` (linked images: kernel symbols such as `_stext`).
    pub fn symbol_value(&self, name: &[u8]) -> Option<u64> {
        (1..self.obj.symbol_count()).find_map(|i| {
            let sym = self.obj.symbol(SymId(i as u32)).ok()?;
            (self.obj.symbol_name(sym).ok()? == name).then(|| sym.st_value(LE))
        })
    }
}
