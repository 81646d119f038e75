//! `--dwarf`: the compiler's CFI (`.debug_frame`, else `.eh_frame`, read with `gimli`)
//! compared with the ORC table at every entry where both speak.
//!
//! In a relocatable object the CFI's addresses are relocations: the section is copied and
//! its RELA records applied, with the sections laid out one after another at synthetic
//! addresses (the CFI section itself at 0, so CIE pointers stay offsets and PC-relative
//! pointers come out right). In a linked image the addresses are the real ones.
//!
//! Per ORC entry (at its address): the CFA rule (rsp/rbp + offset) and the caller's rbp rule
//! (unchanged, or saved at CFA + offset). A disagreement is classified:
//! * **alternative**: the address lies in an `.altinstructions` site — the table describes a
//!   replacement the compiler never saw (the paravirt `pushf; pop`);
//! * **DWARF blind**: the verifier's machine agrees with ORC — an inline-asm stack change
//!   the compiler was not told about (`iret_to_self`, `pushf` in `native_save_fl`);
//! * **ORC wrong**: the machine agrees with DWARF;
//! * **ORC regs frame / no truth / unexplained**: the entry comes from a hint, or the machine
//!   has no state there, or neither agrees.
//!
//! Entries without CFI ("no DWARF": `__pfx_` padding, assembly) and the table's undefined
//! entries are counted apart.

use std::collections::HashMap;
use std::fmt::Write as _;

use gimli::{CfaRule, CieOrFde, RegisterRule, UnwindSection};
use object::read::elf::{SectionHeader as _, Sym as _};

use super::image::{Image, Loc};
use super::lookup::{Meaning, Table, meaning};
use super::machine::State;
use super::paths::judge;
use super::report::Verdict;
use super::special::Special;
use crate::elf::{LE, ObjectKind, SecId};
use crate::orc::{OrcEntry, OrcReg, OrcType};

#[derive(Clone, Debug, Default)]
pub struct DwarfTally {
    /// ORC entries with a frame (not undefined/end).
    pub entries: u64,
    /// … of which the CFI covers.
    pub both: u64,
    pub agree: u64,
    pub alternative: u64,
    pub dwarf_blind: u64,
    pub orc_wrong: u64,
    pub orc_regs: u64,
    pub no_truth: u64,
    pub unexplained: u64,
    pub no_dwarf: u64,
    /// Each disagreement, described (printed with `--verbose`).
    pub examples: Vec<String>,
    /// The CFI section used (empty: none).
    pub source: &'static str,
}

impl DwarfTally {
    pub fn merge(&mut self, o: &DwarfTally) {
        self.entries += o.entries;
        self.both += o.both;
        self.agree += o.agree;
        self.alternative += o.alternative;
        self.dwarf_blind += o.dwarf_blind;
        self.orc_wrong += o.orc_wrong;
        self.orc_regs += o.orc_regs;
        self.no_truth += o.no_truth;
        self.unexplained += o.unexplained;
        self.no_dwarf += o.no_dwarf;
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let pct = if self.both > 0 {
            100.0 * self.agree as f64 / self.both as f64
        } else {
            0.0
        };
        let _ = write!(
            s,
            "{}entries {}, both speak {}, agree {} ({pct:.2} %), disagree {} (alternative {}, DWARF blind {}, ORC wrong {}, ORC regs frame {}, no truth {}, unexplained {}), no DWARF {}",
            if self.source.is_empty() {
                String::new()
            } else {
                format!("{}: ", self.source)
            },
            self.entries,
            self.both,
            self.agree,
            self.both - self.agree,
            self.alternative,
            self.dwarf_blind,
            self.orc_wrong,
            self.orc_regs,
            self.no_truth,
            self.unexplained,
            self.no_dwarf
        );
        s
    }
}

/// The compiler's CFA rule, in the terms ORC can express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cfa {
    /// CFA = reg + offset (DWARF register numbers: 7 rsp, 6 rbp, 10 r10, 13 r13, 5 rdi, 1 rdx).
    Reg(u16, i64),
    /// CFA = *(reg + offset) (`DW_OP_bregN off; DW_OP_deref`: DRAP's saved pointer).
    Deref(u16, i64),
    Other,
}

/// The compiler's rule for the caller's rbp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BpRule {
    /// Same value (or undefined, or not mentioned).
    Same,
    /// Saved at CFA + n.
    AtCfa(i64),
    /// Saved at reg + n (`DW_CFA_expression: DW_OP_bregN n`).
    AtReg(u16, i64),
    Other,
}

/// The compiler's rules over one address range.
#[derive(Clone, Copy, Debug)]
struct Row {
    start: u64,
    end: u64,
    cfa: Cfa,
    bp: BpRule,
}

impl Row {
    fn text(&self) -> String {
        let cfa = match self.cfa {
            Cfa::Reg(r, o) => format!("r{r}{o:+}"),
            Cfa::Deref(r, o) => format!("*(r{r}{o:+})"),
            Cfa::Other => "expr".into(),
        };
        let bp = match self.bp {
            BpRule::Same => "same".into(),
            BpRule::AtCfa(n) => format!("cfa{n:+}"),
            BpRule::AtReg(r, n) => format!("r{r}{n:+}"),
            BpRule::Other => "other".into(),
        };
        format!("cfa {cfa} bp {bp}")
    }
}

/// Reads the CFI rows, sorted by start address (linked addresses, or synthetic ones).
fn read_rows(img: &Image<'_>, layout: &[u64]) -> (Vec<Row>, &'static str) {
    let obj = img.obj;
    for (name, eh) in [(".debug_frame", false), (".eh_frame", true)] {
        let Some(sec) = obj.section_by_name(name.as_bytes()) else {
            continue;
        };
        let mut data = img.data(sec).to_vec();
        if data.is_empty() {
            continue;
        }
        let mut bases = gimli::BaseAddresses::default();
        match img.kind {
            ObjectKind::Relocatable => {
                // the CFI section at 0: PC-relative pointers come out as S + A
                apply_relocs(img, layout, sec, &mut data);
                bases = bases.set_eh_frame(0);
            }
            ObjectKind::Linked => {
                bases = bases.set_eh_frame(img.addr(Loc { sec, off: 0 }));
            }
        }
        let rows = if eh {
            let s = gimli::EhFrame::new(&data, gimli::LittleEndian);
            collect(&s, &bases, &data)
        } else {
            let mut s = gimli::DebugFrame::new(&data, gimli::LittleEndian);
            s.set_address_size(8);
            collect(&s, &bases, &data)
        };
        let mut rows = rows;
        rows.sort_by_key(|r| r.start);
        return (rows, if eh { ".eh_frame" } else { ".debug_frame" });
    }
    (Vec::new(), "")
}

/// `DW_OP_bregN sleb [DW_OP_deref]`: (N, offset, deref).
fn breg(expr: &[u8]) -> Option<(u16, i64, bool)> {
    let (&op, rest) = expr.split_first()?;
    if !(0x70..=0x8f).contains(&op) {
        return None;
    }
    let mut r = gimli::EndianSlice::new(rest, gimli::LittleEndian);
    let off = gimli::Reader::read_sleb128(&mut r).ok()?;
    let tail: &[u8] = r.slice();
    let deref = match tail {
        [] => false,
        [0x06] => true,
        _ => return None,
    };
    Some((u16::from(op - 0x70), off, deref))
}

fn collect<'a, S: UnwindSection<gimli::EndianSlice<'a, gimli::LittleEndian>>>(
    section: &S,
    bases: &gimli::BaseAddresses,
    data: &[u8],
) -> Vec<Row> {
    let expr =
        |e: &gimli::UnwindExpression<usize>| data.get(e.offset..e.offset + e.length).and_then(breg);
    let mut rows = Vec::new();
    let mut ctx = gimli::UnwindContext::new();
    let mut entries = section.entries(bases);
    loop {
        let entry = match entries.next() {
            Ok(Some(e)) => e,
            Ok(None) | Err(_) => break,
        };
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let Ok(fde) = partial.parse(|s, b, o| s.cie_from_offset(b, o)) else {
            continue;
        };
        let Ok(mut table) = fde.rows(section, bases, &mut ctx) else {
            continue;
        };
        while let Ok(Some(row)) = table.next_row() {
            let cfa = match row.cfa() {
                CfaRule::RegisterAndOffset { register, offset } => Cfa::Reg(register.0, *offset),
                CfaRule::Expression(e) => match expr(e) {
                    Some((r, o, true)) => Cfa::Deref(r, o),
                    Some((r, o, false)) => Cfa::Reg(r, o),
                    None => Cfa::Other,
                },
            };
            let bp = match row.register(gimli::X86_64::RBP) {
                RegisterRule::Undefined | RegisterRule::SameValue => BpRule::Same,
                RegisterRule::Offset(n) => BpRule::AtCfa(n),
                RegisterRule::Expression(e) => match expr(&e) {
                    Some((r, o, false)) => BpRule::AtReg(r, o),
                    _ => BpRule::Other,
                },
                _ => BpRule::Other,
            };
            rows.push(Row {
                start: row.start_address(),
                end: row.end_address(),
                cfa,
                bp,
            });
        }
    }
    rows
}

/// Applies the RELA records of a relocatable object's CFI section (R_X86_64_64, _32, _32S,
/// _PC32, _PC64) with synthetic section addresses.
fn apply_relocs(img: &Image<'_>, bases: &[u64], sec: SecId, data: &mut [u8]) {
    for r in img.relocs_of(sec) {
        let Some(loc) = img.symbol_loc(r.sym).or_else(|| {
            // a section symbol: its section at offset 0
            let sym = img.obj.symbol(r.sym).ok()?;
            let s = img.obj.symbol_section(r.sym).ok()??;
            Some(Loc {
                sec: s,
                off: sym.st_value(LE),
            })
        }) else {
            continue;
        };
        let base = |s: SecId| {
            if s == sec {
                0
            } else {
                bases.get(s.0 as usize).copied().unwrap_or(0)
            }
        };
        let sa = (base(loc.sec) + loc.off).wrapping_add(r.addend as u64);
        let p = r.off;
        let (value, width): (u64, usize) = match r.ty {
            1 => (sa, 8),                  // R_X86_64_64
            10 | 11 => (sa, 4),            // R_X86_64_32, _32S
            2 => (sa.wrapping_sub(p), 4),  // R_X86_64_PC32
            24 => (sa.wrapping_sub(p), 8), // R_X86_64_PC64
            _ => continue,
        };
        if let Some(dst) = data.get_mut(p as usize..p as usize + width) {
            dst.copy_from_slice(&value.to_le_bytes()[..width]);
        }
    }
}

/// A relocatable object's sections laid out one after the other from 16 MiB (each at a
/// 16-byte boundary after the previous one's end): addresses that PC-relative 32-bit fields
/// can hold. Indexed by section.
fn layout(img: &Image<'_>) -> Vec<u64> {
    let mut base = 16 << 20;
    img.obj
        .section_ids()
        .map(|id| {
            let here = base;
            let size = img.obj.section(id).map(|h| h.sh_size(LE)).unwrap_or(0);
            base = (base + size + 15) & !15;
            here
        })
        .collect()
}

/// The address the rows use for `loc`.
fn row_addr(img: &Image<'_>, bases: &[u64], loc: Loc) -> u64 {
    match img.kind {
        ObjectKind::Relocatable => bases.get(loc.sec.0 as usize).copied().unwrap_or(0) + loc.off,
        ObjectKind::Linked => img.addr(loc),
    }
}

fn find(rows: &[Row], addr: u64) -> Option<&Row> {
    let i = rows.partition_point(|r| r.start <= addr);
    rows[..i].last().filter(|r| addr < r.end)
}

/// The DWARF number of an ORC base register.
fn dwarf_reg(r: OrcReg) -> Option<u16> {
    Some(match r {
        OrcReg::SP => 7,
        OrcReg::BP => 6,
        OrcReg::R10 => 10,
        OrcReg::R13 => 13,
        OrcReg::DI => 5,
        OrcReg::DX => 1,
        _ => return None,
    })
}

/// Whether the compiler's row and the ORC entry say the same.
fn agree(row: &Row, e: &OrcEntry) -> bool {
    let sp_off = i64::from(e.sp_offset);
    let cfa = match (row.cfa, e.sp_reg) {
        (Cfa::Deref(6, off), OrcReg::BP_INDIRECT) => off == sp_off,
        (Cfa::Reg(r, off), reg) => dwarf_reg(reg) == Some(r) && off == sp_off,
        _ => false,
    };
    let bp_off = i64::from(e.bp_offset);
    let bp = match (row.bp, e.bp_reg) {
        (BpRule::Same, OrcReg::UNDEFINED) => true,
        (BpRule::AtCfa(n), OrcReg::PREV_SP) => n == bp_off,
        (BpRule::AtReg(6, n), OrcReg::BP) => n == bp_off,
        _ => false,
    };
    cfa && bp
}

/// Whether the compiler's row describes the machine's state.
fn row_is_truth(row: &Row, s: &State) -> bool {
    let cfa = match row.cfa {
        Cfa::Reg(7, off) => s.sp.map(i64::from) == Some(off),
        Cfa::Reg(6, off) => s.bp == super::machine::Bp::Frame(off as i32),
        _ => false,
    };
    let bp = match row.bp {
        BpRule::Same => s.bp == super::machine::Bp::Caller,
        BpRule::AtCfa(n) => s.saved_bp.map(|k| -i64::from(k)) == Some(n),
        _ => false,
    };
    cfa && bp
}

/// The function entries (of `entries`) no CFI row covers: assembly, in a file whose
/// compiled code has CFI.
pub fn uncovered(img: &Image<'_>, entries: &[Loc]) -> std::collections::HashSet<Loc> {
    let bases = layout(img);
    let (rows, _) = read_rows(img, &bases);
    if rows.is_empty() {
        return Default::default();
    }
    entries
        .iter()
        .copied()
        .filter(|l| find(&rows, row_addr(img, &bases, *l)).is_none())
        .collect()
}

pub fn compare(
    img: &Image<'_>,
    table: &Table,
    special: &Special,
    truth: Vec<(Loc, State)>,
) -> DwarfTally {
    let bases = layout(img);
    let (rows, source) = read_rows(img, &bases);
    let truth: HashMap<Loc, State> = truth.into_iter().collect();
    let mut t = DwarfTally {
        source,
        ..Default::default()
    };
    let abi = table.abi;
    // sites, for "inside an alternative"
    let mut sites: Vec<(Loc, u64)> = special.alts.iter().map(|a| (a.site, a.orig_len)).collect();
    sites.sort();
    let in_site = |l: Loc| {
        let i = sites.partition_point(|(s, _)| *s <= l);
        sites[..i]
            .iter()
            .rev()
            .take(4)
            .any(|(s, n)| s.sec == l.sec && l.off < s.off + n)
    };
    for (loc, e) in table.all(img) {
        if meaning(abi, &e) != Meaning::Frame {
            continue;
        }
        t.entries += 1;
        let Some(row) = find(&rows, row_addr(img, &bases, loc)) else {
            t.no_dwarf += 1;
            continue;
        };
        t.both += 1;
        if agree(row, &e) {
            t.agree += 1;
            continue;
        }
        let (class, name) = if in_site(loc) {
            (&mut t.alternative, "alternative")
        } else if e.sp_reg == OrcReg::SP_INDIRECT {
            // call_on_stack()/run_on_irqstack: an inline-asm stack switch gcc does not see
            (&mut t.dwarf_blind, "DWARF blind (stack switch)")
        } else if matches!(e.ty, OrcType::Regs | OrcType::RegsPartial) {
            (&mut t.orc_regs, "ORC regs frame")
        } else {
            match truth.get(&loc) {
                None => (&mut t.no_truth, "no truth"),
                Some(s) if judge(abi, Some(e), s) == Verdict::Right => {
                    (&mut t.dwarf_blind, "DWARF blind")
                }
                Some(s) if row_is_truth(row, s) => (&mut t.orc_wrong, "ORC wrong"),
                Some(_) => (&mut t.unexplained, "unexplained"),
            }
        };
        *class += 1;
        t.examples.push(format!(
            "{} [0x{:x}]: {name}: DWARF {}, ORC {}",
            img.describe(loc),
            img.addr(loc),
            row.text(),
            e.dump_text(abi).to_string().trim()
        ));
    }
    t
}
