//! Alternatives beyond objtool: describing merge conflicts in full, and checking that every
//! alternative unwinds correctly with the merged table.
//!
//! objtool merges the states of all alternatives of a patch site into one array indexed by
//! byte offset (`propagate_alt_cfi()`), and only compares states that fall on the very same
//! offset. But the kernel's unwinder looks up a *return address* at `ip - 1`: for a `call`
//! in one alternative, that is the call's last byte, where another alternative may have an
//! instruction boundary with a different state. [`unwind_check`] walks every instruction of
//! every alternative and compares the entry the unwinder would use with the instruction's
//! own state.

use std::fmt::Write as _;

use crate::cfg::Program;
use crate::cfi::state::*;
use crate::cfi::walk::{AltConflict, NO_STATE, StateId, StateLookup, Walk};
use crate::decode::{InsnId, InsnKind};
use crate::orc::OrcAbi;
use crate::orc::entry::OrcEntry;
use crate::orc::generate::entry_for;
use crate::report::Findings;

fn reg_name(r: i8) -> String {
    const NAMES: [&str; 17] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "ra",
    ];
    match r {
        CFI_UNDEFINED => "undef".into(),
        CFI_CFA => "cfa".into(),
        CFI_SP_INDIRECT => "(rsp)".into(),
        CFI_BP_INDIRECT => "(rbp)".into(),
        0..=16 => NAMES[r as usize].into(),
        _ => format!("reg{r}"),
    }
}

/// A state in words: `cfa=rsp+16 rbp@cfa-16 rbx@cfa-24 stack=24`.
pub fn describe_state(s: &CfiState) -> String {
    let mut out = String::new();
    if s.cfa.base == CFI_UNDEFINED {
        out.push_str("cfa=undefined");
    } else {
        let _ = write!(out, "cfa={}{:+}", reg_name(s.cfa.base), s.cfa.offset);
    }
    for (i, r) in s.regs.iter().enumerate() {
        if i == CFI_RA as usize || r.base == CFI_UNDEFINED {
            continue;
        }
        let _ = write!(
            out,
            " {}@{}{:+}",
            reg_name(i as i8),
            reg_name(r.base),
            r.offset
        );
    }
    let _ = write!(out, " stack={}", s.stack_size);
    if s.drap {
        let _ = write!(out, " drap={}", reg_name(s.drap_reg));
    }
    if s.ty != UNWIND_HINT_TYPE_CALL {
        let _ = write!(out, " type={}", s.ty);
    }
    out
}

/// "the original" or "alternative 2" for an instruction of a group; alternatives are
/// numbered in `.altinstructions` order.
pub fn stream_label(p: &Program<'_, '_>, insn: InsnId) -> String {
    let Some(g) = p.alt_group(insn) else {
        return "the code".into();
    };
    let Some(og) = p.groups[g as usize].orig_group else {
        return "the original".into();
    };
    let n = p.groups[..g as usize]
        .iter()
        .filter(|x| x.orig_group == Some(og))
        .count()
        + 1;
    format!("alternative {n}")
}

/// [`stream_label`] with, for an alternative, where it starts:
/// "alternative 2 (.altinstr_replacement+0x5)".
pub fn stream_name(p: &Program<'_, '_>, insn: InsnId) -> String {
    let label = stream_label(p, insn);
    match p.alt_group(insn).map(|g| &p.groups[g as usize]) {
        Some(grp) if grp.orig_group.is_some() => format!("{label} ({})", p.insn_loc(grp.first)),
        _ => label,
    }
}

/// The `--verbose` explanation of a `stack layout conflict in alternatives` warning.
pub fn explain_conflict(p: &Program<'_, '_>, states: &dyn StateLookup, c: &AltConflict) -> String {
    let state = |id: StateId| describe_state(states.state(id));
    let first = if c.first.0 == u32::MAX {
        "an earlier alternative".to_owned()
    } else {
        format!("{} ({})", stream_label(p, c.first), p.insn_loc(c.first))
    };
    format!(
        "group offset 0x{:x}: {first} needs {}; {} ({}) needs {}",
        c.offset,
        state(c.first_state),
        stream_label(p, c.second),
        p.insn_loc(c.second),
        state(c.second_state)
    )
}

fn orc_text(e: [u8; 6], abi: OrcAbi) -> String {
    OrcEntry::decode(abi, e).dump_text(abi).to_string()
}

/// Checks every visited instruction of every alternative of every group against the merged
/// table as the unwinder reads it; reports each instruction that would unwind wrongly.
/// Returns the number of findings.
pub fn unwind_check(p: &Program<'_, '_>, w: &Walk, abi: OrcAbi, f: &mut Findings) -> usize {
    let mut found = 0;
    // each original group's replacements, in group order
    let mut replacements: Vec<Vec<u32>> = vec![Vec::new(); p.groups.len()];
    for (i, x) in p.groups.iter().enumerate() {
        if let Some(og) = x.orig_group.filter(|&og| (og as usize) < p.groups.len()) {
            replacements[og as usize].push(i as u32);
        }
    }
    for (g, grp) in p.groups.iter().enumerate() {
        if grp.orig_group.is_some() {
            continue;
        }
        let array = &w.alt_cfi[grp.cfi_array as usize];
        if array.iter().all(|&s| s == NO_STATE) {
            continue;
        }
        // the state the unwinder finds at each offset: the last filled slot at or before it,
        // else whatever is in effect before the group
        let before = p
            .prev_same_sec(grp.first)
            .map(|i| w.cfi[i.idx()])
            .unwrap_or(NO_STATE);
        let mut eff = Vec::with_capacity(array.len());
        let mut cur = (before, None);
        for (k, &s) in array.iter().enumerate() {
            if s != NO_STATE {
                cur = (s, Some(k));
            }
            eff.push(cur);
        }
        let entry = |id: StateId| entry_for((id != NO_STATE).then(|| w.states.get(id)), abi).ok();
        let start = u64::from(p.insn(grp.first).offset);
        // every stream of this site: the original and each replacement
        let streams = std::iter::once(g as u32).chain(replacements[g].iter().copied());
        for sg in streams {
            let s = &p.groups[sg as usize];
            let sstart = u64::from(p.insn(s.first).offset);
            for i in p.group_insns(s) {
                let own = w.cfi[i.idx()];
                if own == NO_STATE
                    || p.attr(i).kind != InsnKind::Call && p.attr(i).kind != InsnKind::CallDynamic
                {
                    continue;
                }
                // a frame returning after this call is looked up at its last byte
                let insn = p.insn(i);
                let k = u64::from(insn.offset) - sstart + u64::from(insn.len) - 1;
                let Some(&(table, slot)) = eff.get(k as usize) else {
                    continue;
                };
                let (Some(want), Some(got)) = (entry(own), entry(table)) else {
                    continue;
                };
                if want != got {
                    let from = slot.map_or_else(
                        || "the entry before the group".to_owned(),
                        |j| format!("the entry at group offset 0x{j:x}"),
                    );
                    f.warn(format!(
                        "{}: alternatives: the return address of the call at {} in {} is unwound with {from} ({}) instead of its own state ({})",
                        p.loc(p.insns.sec_of(grp.first), start),
                        p.insn_loc(i),
                        stream_name(p, i),
                        orc_text(got, abi),
                        orc_text(want, abi),
                    ));
                    found += 1;
                }
            }
        }
    }
    found
}
