//! The kernel's run-time code tables, read here independently of `check`:
//!
//! * `.altinstructions` (`struct alt_instr`: `instr_offset`, `repl_offset` as `.long x - .`,
//!   then 4 bytes of feature/flags (6.3 and later) or 2 (before), `instrlen`,
//!   `replacementlen`): at boot `apply_alternatives()` copies the replacement over the
//!   original site and fills the rest with NOPs, so every alternative runs at the site's
//!   addresses;
//! * `__jump_table` (`struct jump_entry`: `code`, `target` as `.long x - .`, `key`): the
//!   jump-label site is a NOP or a JMP to `target`, switched at run time — both ways run;
//! * `__ex_table` (`struct exception_table_entry`: `insn`, `fixup`, `data`): a fault at
//!   `insn` resumes at `fixup` with the same stack;
//! * `.discard.unwind_hints` (relocatable objects only: the linker drops it from vmlinux):
//!   where a hint, not the code, sets the state;
//! * `.discard.func_stack_frame_non_standard`: functions objtool is told to skip.

use std::collections::{HashMap, HashSet};

use super::image::{Image, Loc};
use crate::elf::{ObjectKind, SecId};

/// Where a table lies: its section, or in a linked image (where the linker script may put
/// it inside `.data`, as `__jump_table`) between `__start_NAME` and `__stop_NAME`.
fn table(img: &Image<'_>, name: &[u8]) -> Option<(SecId, u64, u64)> {
    if let Some(sec) = img.obj.section_by_name(name) {
        return Some((sec, 0, img.data(sec).len() as u64));
    }
    if img.kind != ObjectKind::Linked {
        return None;
    }
    let start = img.symbol_value(&[b"__start_", name].concat())?;
    let stop = img.symbol_value(&[b"__stop_", name].concat())?;
    let loc = img.addr_loc(start)?;
    let len = stop.checked_sub(start)?;
    Some((loc.sec, loc.off, loc.off + len))
}

/// One `.altinstructions` entry.
#[derive(Clone, Copy, Debug)]
pub struct Alt {
    pub site: Loc,
    pub orig_len: u64,
    pub repl: Loc,
    pub repl_len: u64,
}

#[derive(Default)]
pub struct Special {
    pub alts: Vec<Alt>,
    /// Site → indexes into `alts`.
    pub alts_at: HashMap<Loc, Vec<u32>>,
    /// Jump-label site → target.
    pub jump_labels: HashMap<Loc, Loc>,
    /// Faulting instruction → fixup.
    pub ex_fixups: HashMap<Loc, Vec<Loc>>,
    pub hints: HashSet<Loc>,
    pub non_standard: HashSet<Loc>,
    /// NOPs of an original site that follow another NOP: at boot `optimize_nops()` turns
    /// each run of NOPs into one instruction, so these are no instruction boundaries at run
    /// time (and the table may describe a replacement there).
    pub vanishing: HashSet<Loc>,
}

impl Special {
    /// `alt_size`: 14 (6.3 and later) or 12 bytes per `.altinstructions` entry.
    pub fn read(img: &Image<'_>, alt_size: u64) -> Special {
        let mut s = Special::default();
        let obj = img.obj;
        let two = |sec: SecId, off: u64, data: &[u8]| -> Option<(Loc, Loc)> {
            let a = img.rel32(sec, off, off, data)?.loc?;
            let b = img.rel32(sec, off + 4, off + 4, data)?.loc?;
            Some((a, b))
        };
        if let Some(sec) = obj.section_by_name(b".altinstructions") {
            let data = img.data(sec);
            let n = data.len() as u64 / alt_size;
            for i in 0..n {
                let off = i * alt_size;
                let Some((site, repl)) = two(sec, off, data) else {
                    continue;
                };
                let orig_len = data[(off + alt_size - 2) as usize] as u64;
                let repl_len = data[(off + alt_size - 1) as usize] as u64;
                s.alts_at.entry(site).or_default().push(s.alts.len() as u32);
                s.alts.push(Alt {
                    site,
                    orig_len,
                    repl,
                    repl_len,
                });
            }
        }
        if let Some((sec, start, end)) = table(img, b"__jump_table") {
            let data = img.data(sec);
            for off in (start..end).step_by(16) {
                if let Some((code, target)) = two(sec, off, data) {
                    s.jump_labels.insert(code, target);
                }
            }
        }
        if let Some((sec, start, end)) = table(img, b"__ex_table") {
            let data = img.data(sec);
            for off in (start..end).step_by(12) {
                if let Some((insn, fixup)) = two(sec, off, data) {
                    s.ex_fixups.entry(insn).or_default().push(fixup);
                }
            }
        }
        for a in &s.alts {
            let data = img.data(a.site.sec);
            let mut off = a.site.off;
            let mut prev_nop = false;
            while off < a.site.off + a.orig_len {
                let Some(d) = data.get(off as usize..).and_then(super::machine::decode) else {
                    break;
                };
                let nop = d.inst.opcode() == yaxpeax_x86::long_mode::Opcode::NOP;
                if nop && prev_nop {
                    s.vanishing.insert(Loc {
                        sec: a.site.sec,
                        off,
                    });
                }
                prev_nop = nop;
                off += d.len;
            }
        }
        if img.kind == ObjectKind::Relocatable {
            // every record names a place (S + A), whatever the entry layout around it
            if let Some(sec) = obj.section_by_name(b".discard.unwind_hints") {
                s.hints
                    .extend(img.reloc_targets(sec).into_iter().filter_map(|t| t.loc));
            }
            if let Some(sec) = obj.section_by_name(b".discard.func_stack_frame_non_standard") {
                s.non_standard
                    .extend(img.reloc_targets(sec).into_iter().filter_map(|t| t.loc));
            }
        }
        s
    }
}
