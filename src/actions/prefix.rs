//! `--prefix=N`: a `__pfx_FUNC` symbol over the N bytes of NOP padding before each function,
//! and the function's entry state for that padding (so it gets ORC). objtool:
//! `add_prefix_symbols()`, `add_prefix_symbol()`, `elf_create_prefix_symbol()`.
//!
//! What objtool's later passes see of it: the symbols go into the section's symbol list
//! before the function that caused them (so this loop never visits one), and nothing after
//! it looks symbols up but the warnings' locations (`.ibt_endbr_seal` uses the ENDBR list
//! and owners of decoding; ORC reads only the states). In `.symtab`, a LOCAL one takes
//! `sh_info`'s place, a GLOBAL or WEAK one goes at the end: the writer replays that.

use object::read::elf::Sym as _;

use crate::cfg::{AnalysisError, Program};
use crate::cfi::walk::Walk;
use crate::decode::{InsnId, InsnKind};
use crate::edits::{Edits, NewSymbol, Step};
use crate::elf::LE;
use crate::ids::SymId;
use crate::report::Findings;

/// objtool: `add_prefix_symbols()`: every STT_FUNC of every executable section, in
/// section order and then symbol-list order (aliases included).
pub(super) fn symbols(
    p: &Program<'_, '_>,
    mut walk: Option<&mut Walk>,
    size: u32,
    _findings: &mut Findings,
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
