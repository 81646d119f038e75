//! `--unret`: every path from an entry point marked `VALIDATE_UNRET_BEGIN`
//! (`.discard.validate_unret`) must untrain the return predictor before it returns: it must
//! reach `VALIDATE_UNRET_END` (a retpoline-safe NOP) or a call (a call that comes back saw
//! the untraining) before any `ret` or indirect branch. objtool: `validate_unrets()`,
//! `validate_unret()`.
//!
//! `validate_unret()` recurses into alternatives, jump targets and callees; here the
//! recursion is an explicit stack of where each level resumes, in objtool's order (so the
//! same instructions are marked visited and the same warnings and backtraces come out).

use crate::cfg::{AnalysisError, Program};
use crate::cfi::walk::Walk;
use crate::decode::{InsnId, InsnKind};
use crate::report::{FindingKind, Findings};

/// objtool: `validate_unrets()` — each marked instruction in file order; a path that cannot
/// be followed (objtool's `-1`) stops the action and everything after it.
pub(super) fn validate(
    program: &Program<'_, '_>,
    _walk: Option<&Walk>,
    findings: &mut Findings,
) -> Result<(), AnalysisError> {
    let p = program;
    // objtool's VISITED_UNRET bit: shared by all entry points
    let mut v = Unret {
        p,
        f: findings,
        visited: vec![false; p.attrs.len()],
        stack: Vec::new(),
    };
    for k in 0..p.nreal {
        let insn = InsnId(k as u32);
        if !p.attr(insn).unret() {
            continue;
        }
        if v.validate_unret(insn) == Ret::Fatal {
            p.warn_insn(v.f, insn, FindingKind::FailedUnretValidation);
            return Err(AnalysisError::Build);
        }
    }
    Ok(())
}

/// What a level of `validate_unret()` returns: 0, 1 (warned) or -1 (cannot go on).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ret {
    Ok,
    Warned,
    Fatal,
}

/// Where a level of the recursion resumes when the level below returns 0.
enum Frame {
    /// Exploring the alternatives of `insn`: `done` of them explored.
    Alts {
        insn: InsnId,
        done: usize,
        skip_orig: bool,
    },
    /// The jump `insn`'s target explored.
    Branch { insn: InsnId },
    /// The callee of `insn` explored (the path ends there).
    Call { insn: InsnId },
}

/// Where [`Unret::body`] starts in the loop of `validate_unret()`.
#[derive(Clone, Copy)]
enum Phase {
    Visit,
    Alts { done: usize, skip_orig: bool },
    Tail,
}

/// What the loop does next: descend into an instruction or return.
enum Step {
    Descend(InsnId),
    Return(Ret),
}

struct Unret<'u, 'a, 'd> {
    p: &'u Program<'a, 'd>,
    f: &'u mut Findings,
    visited: Vec<bool>,
    stack: Vec<Frame>,
}

impl Unret<'_, '_, '_> {
    /// objtool: `validate_unret()` from `start`.
    fn validate_unret(&mut self, start: InsnId) -> Ret {
        self.stack.clear();
        let mut step = self.body(start, Phase::Visit);
        loop {
            let mut r = match step {
                Step::Descend(insn) => {
                    step = self.body(insn, Phase::Visit);
                    continue;
                }
                Step::Return(r) => r,
            };
            // return `r` to the levels above until one goes on
            loop {
                let Some(frame) = self.stack.pop() else {
                    return r;
                };
                if r != Ret::Ok {
                    self.backtrace(&frame);
                    continue;
                }
                match frame {
                    Frame::Alts {
                        insn,
                        done,
                        skip_orig,
                    } => {
                        step = self.body(insn, Phase::Alts { done, skip_orig });
                        break;
                    }
                    Frame::Branch { insn } => {
                        if self.p.attr(insn).kind == InsnKind::JumpUnconditional {
                            r = Ret::Ok;
                            continue;
                        }
                        step = self.body(insn, Phase::Tail);
                        break;
                    }
                    // a call that returns without error has seen the untraining
                    Frame::Call { .. } => r = Ret::Ok,
                }
            }
        }
    }

    /// objtool's `BT_INSN()` of a level a failure passes through.
    fn backtrace(&mut self, frame: &Frame) {
        let p = self.p;
        let (insn, what) = match *frame {
            Frame::Alts { insn, .. } => (insn, "(alt)"),
            Frame::Branch { insn } if p.attr(insn).kind == InsnKind::JumpConditional => {
                (insn, "(branch-cond)")
            }
            Frame::Branch { insn } => (insn, "(branch)"),
            Frame::Call { insn } => (insn, "(call)"),
        };
        self.f.backtrace(p.insn_location(insn), what);
    }

    /// The loop of `validate_unret()` from `insn` at `phase`, until it returns or
    /// descends (after pushing where it resumes).
    fn body(&mut self, mut insn: InsnId, mut phase: Phase) -> Step {
        let p = self.p;
        loop {
            match phase {
                Phase::Visit => {
                    if self.visited[insn.idx()] {
                        return Step::Return(Ret::Ok);
                    }
                    self.visited[insn.idx()] = true;
                    phase = Phase::Alts {
                        done: 0,
                        skip_orig: false,
                    };
                }
                Phase::Alts { done, skip_orig } => {
                    let a = p.attr(insn);
                    let alts = match p.alts.get(&insn) {
                        Some(alts) if !a.ignore_alts() && a.has_alts() => alts.as_slice(),
                        _ => &[],
                    };
                    // (objtool's list is the reverse of the vector)
                    if let Some(alt) = alts.len().checked_sub(done + 1).map(|k| alts[k]) {
                        self.stack.push(Frame::Alts {
                            insn,
                            done: done + 1,
                            skip_orig: skip_orig || alt.skip_orig,
                        });
                        return Step::Descend(alt.target);
                    }
                    if skip_orig {
                        return Step::Return(Ret::Ok);
                    }
                    if let Some(step) = self.by_kind(insn) {
                        return step;
                    }
                    phase = Phase::Tail;
                }
                Phase::Tail => {
                    if p.attr(insn).dead_end() {
                        return Step::Return(Ret::Ok);
                    }
                    let Some(next) = p.next_to_validate(insn) else {
                        p.warn_insn(self.f, insn, FindingKind::UnretEndOfSection);
                        return Step::Return(Ret::Fatal);
                    };
                    insn = next;
                    phase = Phase::Visit;
                }
            }
        }
    }

    /// The `switch (insn->type)` of `validate_unret()`: `None` goes on to the next
    /// instruction.
    fn by_kind(&mut self, insn: InsnId) -> Option<Step> {
        let p = self.p;
        let a = p.attr(insn);
        let warn = |f: &mut Findings, what, r| {
            p.warn_insn(f, insn, what);
            Some(Step::Return(r))
        };
        match a.kind {
            InsnKind::CallDynamic | InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                warn(self.f, FindingKind::EarlyIndirectCall, Ret::Warned)
            }
            InsnKind::JumpUnconditional | InsnKind::JumpConditional if !p.is_sibling_call(insn) => {
                let Some(dest) = a.jump_dest.get().map(InsnId) else {
                    return warn(self.f, FindingKind::UnresolvedJumpTarget, Ret::Fatal);
                };
                self.stack.push(Frame::Branch { insn });
                Some(Step::Descend(dest))
            }
            InsnKind::JumpUnconditional | InsnKind::JumpConditional | InsnKind::Call => {
                // (a call without a destination: objtool would crash)
                let d = p.syms.get(p.call_dest(insn)?);
                let Some(dest) = p.insns.at(d.sec, d.offset) else {
                    self.f.warn(FindingKind::UnresolvedFunction {
                        name: d.name.to_string(),
                    });
                    return Some(Step::Return(Ret::Fatal));
                };
                self.stack.push(Frame::Call { insn });
                Some(Step::Descend(dest))
            }
            InsnKind::Return => warn(self.f, FindingKind::RetBeforeUntrain, Ret::Warned),
            InsnKind::ContextSwitch if p.insn_func(insn).is_none() => Some(Step::Return(Ret::Ok)),
            InsnKind::Nop if a.retpoline_safe() => Some(Step::Return(Ret::Ok)),
            _ => None,
        }
    }
}
