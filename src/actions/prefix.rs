//! `--prefix=N`: a `__pfx_FUNC` symbol over the N bytes of NOP padding before each function,
//! and the function's entry state for that padding (so it gets ORC). objtool:
//! `add_prefix_symbols()`, `add_prefix_symbol()`, `elf_create_prefix_symbol()`.
//!
//! What objtool's later passes see of it: the symbols go into the section's symbol list
//! before the function that caused them (so this loop never visits one), and nothing after
//! it looks symbols up but the warnings' locations (`.ibt_endbr_seal` uses the ENDBR list
//! and owners of decoding; ORC reads only the states, but names a state it cannot encode
//! after the symbol containing it: [`insn_location`]). In `.symtab`, a LOCAL one takes
//! `sh_info`'s place, a GLOBAL or WEAK one goes at the end: the writer replays that.

use object::elf;
use object::read::elf::Sym as _;

use crate::cfg::{AnalysisError, Program};
use crate::cfi::walk::Walk;
use crate::decode::{InsnId, InsnKind};
use crate::edits::{Edits, NewSymbol, Step};
use crate::elf::LE;
use crate::ids::SymId;
use crate::report::{LocatedSymbol, Location};

/// objtool: `add_prefix_symbols()`: every STT_FUNC of every executable section, in
/// section order and then symbol-list order (aliases included).
pub(super) fn symbols(
    p: &Program<'_, '_>,
    mut walk: Option<&mut Walk>,
    size: u32,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    for (sec, list) in p.syms.lists.iter().enumerate() {
        if !p.sec_exec.get(sec).copied().unwrap_or(false) {
            continue;
        }
        for &s in list {
            if !p.syms.is_func(s) {
                continue;
            }
            let Some((first, entry)) = padding(p, s, u64::from(size)) else {
                continue;
            };
            if let Some(sym) = prefix_symbol(p, s, size) {
                edits.steps.push(Step::Symbol(sym));
            }
            // propagate the entry's state to the padding (none when the function was not
            // walked: no stack validation, or STACK_FRAME_NON_STANDARD)
            if let Some(w) = walk.as_deref_mut() {
                if let Some(state) = w.cfi.get(entry.idx()).copied().flatten() {
                    for k in first.0..entry.0 {
                        w.cfi[k as usize] = Some(state);
                    }
                }
            }
        }
    }
    Ok(())
}

/// objtool's `offstr()` once `add_prefix_symbols()` has run: [`Program::insn_location`],
/// the functions added to `edits` (`__pfx_` symbols) being in objtool's symbol tree too,
/// so the padding before a function is `__pfx_FUNC+0x…` where it was `.text+0x…`. An added
/// function is found after a function of the object that starts no later (objtool's tree
/// returns the lowest start first, at an equal start the symbol inserted first), before a
/// symbol of the object that is no function. It has no index in the object: its `id` is
/// the one it would have were the added symbols appended, in order.
pub fn insn_location(p: &Program<'_, '_>, id: InsnId, edits: &Edits) -> Location {
    let mut at = p.insn_location(id);
    if !p
        .sec_exec
        .get(at.section.0 as usize)
        .copied()
        .unwrap_or(false)
    {
        return at;
    }
    let (sec, off) = (at.section, at.offset);
    let added = edits
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Symbol(sym) => Some(sym),
            _ => None,
        })
        .enumerate()
        .filter(|(_, s)| {
            s.section == sec
                && s.st_info & 0xf == elf::STT_FUNC
                && s.value <= off
                && off - s.value < s.size
        })
        // (the first of the lowest start)
        .min_by_key(|(_, s)| s.value);
    let Some((k, sym)) = added else {
        return at;
    };
    let found = at
        .function
        .as_ref()
        .map(|f| (f.id, off.wrapping_sub(f.offset)));
    if let Some((fid, start)) = found
        && p.syms.is_func(fid)
        && start <= sym.value
    {
        return at;
    }
    at.function = Some(LocatedSymbol {
        id: SymId((p.syms.syms.len() + k) as u32),
        name: String::from_utf8_lossy(&sym.name).into_owned(),
        offset: off - sym.value,
    });
    at
}

/// objtool: `add_prefix_symbol()`'s search: the function's first instruction and the
/// instruction `size` bytes before it, when every instruction from there to the function
/// is a NOP.
fn padding(p: &Program<'_, '_>, func: SymId, size: u64) -> Option<(InsnId, InsnId)> {
    let sym = p.syms.get(func);
    let entry = p.insns.at(sym.sec, sym.offset)?;
    let mut prev = p.prev_same_sec(entry);
    while let Some(k) = prev {
        if p.attr(k).kind != InsnKind::Nop {
            return None;
        }
        let offset = sym.offset.wrapping_sub(u64::from(p.insn(k).offset));
        if offset > size {
            return None;
        }
        if offset == size {
            return Some((k, entry));
        }
        prev = p.prev_same_sec(k);
    }
    None
}

/// objtool: `elf_create_prefix_symbol()`: `__pfx_` + the name, the function's `st_info`,
/// `st_other` 0, its value minus `size`, size `size`.
fn prefix_symbol(p: &Program<'_, '_>, func: SymId, size: u32) -> Option<NewSymbol> {
    let raw = p.obj.symbol(func).ok()?;
    let mut name = b"__pfx_".to_vec();
    name.extend_from_slice(p.obj.symbol_name(raw).ok()?);
    Some(NewSymbol {
        name,
        st_info: raw.st_info(),
        st_other: 0,
        section: p.syms.get(func).sec,
        value: raw.st_value(LE).wrapping_sub(u64::from(size)),
        size: u64::from(size),
    })
}
