//! Conflicts and alternatives in words: the `--verbose` explanation of a `stack layout
//! conflict in alternatives`, rendered after the walk from its [`AltConflict`] data.

use std::fmt::Write as _;

use super::merge::AltConflict;
use crate::cfg::Program;
use crate::cfi::intern::StateLookup;
use crate::cfi::state::*;
use crate::cfi::walk::Walk;
use crate::ids::{InsnId, StateId};
use crate::report::{FindingKind, Findings};

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
    match p.alt_site(insn) {
        None => "the code".into(),
        Some((s, _)) if s.is_orig() => "the original".into(),
        Some((s, _)) => format!("alternative {}", s.number),
    }
}

/// [`stream_label`] with, for an alternative, where it starts:
/// "alternative 2 (.altinstr_replacement+0x5)".
pub fn stream_name(p: &Program<'_, '_>, insn: InsnId) -> String {
    let label = stream_label(p, insn);
    match p.alt_site(insn) {
        Some((s, _)) if !s.is_orig() => format!("{label} ({})", p.insn_loc(s.first)),
        _ => label,
    }
}

/// The `--verbose` explanation of a `stack layout conflict in alternatives` warning.
pub fn explain_conflict(p: &Program<'_, '_>, states: &impl StateLookup, c: &AltConflict) -> String {
    let state = |id: StateId| describe_state(states.state(id));
    let first = match c.first {
        None => "an earlier alternative".to_owned(),
        Some(first) => format!("{} ({})", stream_label(p, first), p.insn_loc(first)),
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

/// Fills in the explanation of every shown conflict at the place the walk left for it
/// (both are in the walk's order).
pub fn explain_conflicts(p: &Program<'_, '_>, w: &Walk, f: &mut Findings) {
    let mut shown = w.conflicts.iter().filter(|c| c.shown);
    for finding in f
        .findings_mut()
        .iter_mut()
        .filter(|x| x.what == FindingKind::PendingExplanation)
    {
        let Some(c) = shown.next() else {
            break;
        };
        finding.what = FindingKind::Explanation(explain_conflict(p, &w.states, c));
    }
}
