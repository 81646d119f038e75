//! The ORC table as the kernel's unwinder reads it (`arch/x86/kernel/unwind_orc.c`).
//!
//! * Relocatable objects (modules): the loader applies `.rela.orc_unwind_ip`, then
//!   `unwind_module_init()` sorts the table with `orc_sort_cmp()`: by address, and among
//!   entries at the same address the "weak" terminator (6.12: type UNDEFINED; 6.1: sp_reg
//!   UNDEFINED without `end`) first, so the search below prefers the real entry. Sections are
//!   laid out by the loader in an order we do not know, so the search is done per section
//!   (an address before a section's first entry has no entry here, where the kernel would use
//!   the last entry of whatever section the loader put before it).
//! * Linked `vmlinux`: the table is used as sorted at build time (`sorttable`); at boot
//!   `unwind_init()` fills `.orc_lookup` with, for each 256-byte block from `_stext`, the index
//!   of the entry `__orc_find()` gives for the block's first byte, plus one for `_etext`, and
//!   `orc_find()` searches only between `orc_lookup[idx]` and `orc_lookup[idx + 1] + 1` for
//!   addresses in `[_stext, _etext)`, the whole table for the rest (`.init.text`). Both are
//!   emulated here as the kernel does them.
//!
//! `__orc_find()` is a binary search for the rightmost entry whose address is `<=` the one
//! looked up; below the first entry it returns the first entry (`found = first`).
//! `unwind_next_frame()` looks up `ip` itself for an interrupted frame (`state->signal`) and
//! `ip - 1` for a return address, so that a call's own entry is used even when the
//! instruction after it has a different one.

use super::image::{Image, Loc};
use crate::elf::{ObjectKind, SecId};
use crate::orc::dump::OrcSections;
use crate::orc::{OrcAbi, OrcEntry, OrcReg, OrcType};

const LOOKUP_BLOCK_SIZE: u64 = 256;

/// What an entry means to the unwinder, in ABI-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// 6.12 type UNDEFINED; 6.1 sp_reg UNDEFINED without `end`: `goto err`.
    Undefined,
    /// 6.12 type END_OF_STACK; 6.1 sp_reg UNDEFINED with `end`: the last frame.
    End,
    /// A frame the unwinder follows.
    Frame,
}

pub fn meaning(abi: OrcAbi, e: &OrcEntry) -> Meaning {
    match abi {
        OrcAbi::V6_12 => match e.ty {
            OrcType::Undefined => Meaning::Undefined,
            OrcType::EndOfStack => Meaning::End,
            _ => Meaning::Frame,
        },
        OrcAbi::V6_1 => {
            if e.sp_reg == OrcReg::UNDEFINED {
                if e.flag {
                    Meaning::End
                } else {
                    Meaning::Undefined
                }
            } else {
                Meaning::Frame
            }
        }
    }
}

pub struct Table {
    pub abi: OrcAbi,
    kind: ObjectKind,
    /// Relocatable: per section, (offset, entry) sorted as `orc_sort_cmp` sorts.
    per_sec: Vec<Vec<(u64, OrcEntry)>>,
    /// Linked: (address, entry) in file order.
    linked: Vec<(u64, OrcEntry)>,
    /// Linked: the boot-time `.orc_lookup` and the range it covers.
    fast: Option<Fast>,
    pub entries: usize,
}

struct Fast {
    start: u64,
    stop: u64,
    blocks: Vec<u32>,
}

impl Table {
    /// Reads the table; `None` when the file has none.
    pub fn read(img: &Image<'_>, abi: OrcAbi) -> crate::Result<Option<Table>> {
        let obj = img.obj;
        let Some(orc) = OrcSections::find(obj)? else {
            return Ok(None);
        };
        let n = orc.len();
        let mut table = Table {
            abi,
            kind: img.kind,
            per_sec: vec![Vec::new(); obj.section_count()],
            linked: Vec::new(),
            fast: None,
            entries: n,
        };
        let ip_sec = obj.section_by_name(b".orc_unwind_ip").unwrap_or(SecId(0));
        match img.kind {
            ObjectKind::Relocatable => {
                for i in 0..n {
                    let Some(t) = img.rel32(ip_sec, 4 * i as u64, 4 * i as u64, &[]) else {
                        continue;
                    };
                    let Some(loc) = t.loc else { continue };
                    if let Some(list) = table.per_sec.get_mut(loc.sec.0 as usize) {
                        list.push((loc.off, OrcEntry::decode(abi, orc.entry(i))));
                    }
                }
                for list in &mut table.per_sec {
                    // stable: equal keys keep file order, as far as the kernel's sort() is
                    // concerned only the weak-first rule matters
                    list.sort_by_key(|(off, e)| (*off, meaning(abi, e) != Meaning::Undefined));
                }
            }
            ObjectKind::Linked => {
                for i in 0..n {
                    let b = &orc.ips[4 * i..4 * i + 4];
                    let v = i32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
                    let addr = (orc.ip_addr + 4 * i as u64).wrapping_add(v as i64 as u64);
                    table
                        .linked
                        .push((addr, OrcEntry::decode(abi, orc.entry(i))));
                }
                table.fast = Fast::init(img, &table.linked);
            }
        }
        Ok(Some(table))
    }

    /// The entry `orc_find()` returns for `loc` (`None`: the unwinder has none and falls
    /// back to guessing a frame-pointer frame, `orc_fp_entry`, marking the unwind unreliable).
    pub fn find(&self, img: &Image<'_>, loc: Loc) -> Option<OrcEntry> {
        match self.kind {
            ObjectKind::Relocatable => {
                let list = self.per_sec.get(loc.sec.0 as usize)?;
                let i = list.partition_point(|(off, _)| *off <= loc.off);
                // below the section's first entry: layout-dependent, reported as none
                list[..i].last().map(|(_, e)| *e)
            }
            ObjectKind::Linked => {
                let ip = img.addr(loc);
                if ip == 0 {
                    return None;
                }
                if let Some(f) = &self.fast {
                    if ip >= f.start && ip < f.stop {
                        let idx = ((ip - f.start) / LOOKUP_BLOCK_SIZE) as usize;
                        if idx + 1 >= f.blocks.len() {
                            return None; // "bad lookup idx"
                        }
                        let start = f.blocks[idx] as usize;
                        let stop = f.blocks[idx + 1] as usize + 1;
                        if start >= self.linked.len() || stop > self.linked.len() {
                            return None; // "bad lookup value"
                        }
                        return orc_find_in(&self.linked[start..stop], ip).map(|i| {
                            let (_, e) = self.linked[start + i];
                            e
                        });
                    }
                }
                // .init.text and everything else: the whole table
                orc_find_in(&self.linked, ip).map(|i| self.linked[i].1)
            }
        }
    }
}

impl Table {
    /// Whether an entry starts exactly at `loc`.
    pub fn has_entry(&self, img: &Image<'_>, loc: Loc) -> bool {
        match self.kind {
            ObjectKind::Relocatable => self
                .per_sec
                .get(loc.sec.0 as usize)
                .is_some_and(|l| l.binary_search_by_key(&loc.off, |(o, _)| *o).is_ok()),
            ObjectKind::Linked => {
                let a = img.addr(loc);
                let i = self.linked.partition_point(|(x, _)| *x < a);
                self.linked.get(i).is_some_and(|(x, _)| *x == a)
            }
        }
    }

    /// Every entry with the place it names, in address order per section.
    pub fn all(&self, img: &Image<'_>) -> Vec<(Loc, OrcEntry)> {
        match self.kind {
            ObjectKind::Relocatable => self
                .per_sec
                .iter()
                .enumerate()
                .flat_map(|(i, list)| {
                    list.iter().map(move |(off, e)| {
                        (
                            Loc {
                                sec: SecId(i as u32),
                                off: *off,
                            },
                            *e,
                        )
                    })
                })
                .collect(),
            ObjectKind::Linked => self
                .linked
                .iter()
                .filter_map(|(a, e)| Some((img.addr_loc(*a)?, *e)))
                .collect(),
        }
    }
}

/// `__orc_find()`: the index of the rightmost entry at or below `ip`; the first entry when
/// all are above it; `None` for an empty table.
fn orc_find_in(table: &[(u64, OrcEntry)], ip: u64) -> Option<usize> {
    if table.is_empty() {
        return None;
    }
    let i = table.partition_point(|(a, _)| *a <= ip);
    // partition_point assumes sorted; so does the kernel's binary search
    Some(i.saturating_sub(1))
}

impl Fast {
    /// `unwind_init()`: fills the lookup blocks from the sorted table.
    fn init(img: &Image<'_>, table: &[(u64, OrcEntry)]) -> Option<Fast> {
        let start = img.symbol_value(b"_stext")?;
        let stop = img.symbol_value(b"_etext")?;
        let lookup = img.symbol_value(b"orc_lookup")?;
        let lookup_end = img.symbol_value(b"orc_lookup_end")?;
        let num = (lookup_end.checked_sub(lookup)? / 4) as usize;
        // a hostile image could claim any size; the kernel's covers [_stext, _etext)
        if num == 0 || num > (1 << 24) || table.is_empty() || stop <= start {
            return None;
        }
        let mut blocks = Vec::with_capacity(num);
        for i in 0..num - 1 {
            let ip = start + LOOKUP_BLOCK_SIZE * i as u64;
            blocks.push(orc_find_in(table, ip)? as u32);
        }
        blocks.push(orc_find_in(table, stop)? as u32);
        Some(Fast {
            start,
            stop,
            blocks,
        })
    }
}
