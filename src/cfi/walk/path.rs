//! One path of the walk: objtool's `validate_branch()` body, one method per kind of step.
//!
//! A path visits an instruction ([`Walker::visit`]: the merge-point check, recording the
//! state, the alternative merge), explores its alternatives, applies its stack operations
//! ([`Walker::apply_ops`]), then what its kind asks ([`Walker::by_kind`]), and goes on with
//! the next instruction ([`Walker::next_to_validate`]).

use std::sync::atomic::Ordering::Relaxed;

use super::super::apply::{OpContext, apply};
use super::super::intern::StateLookup as _;
use super::super::state::*;
use super::{Frame, Outcome, VISITED_BRANCH, VISITED_BRANCH_MASK, WalkState, Walker};
use crate::alt::merge::{self, AltConflict, Merge};
use crate::decode::{InsnKind, Op};
use crate::ids::SymId;
use crate::ids::{InsnId, StateId};
use crate::report::{FindingKind, Report};

/// Where a path resumes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Visit the instruction.
    Visit,
    /// Its alternatives are explored: its own effect.
    Effects,
    /// A jump's target is explored: its fall-through.
    AfterBranch,
    /// Go on to the next instruction.
    Tail,
}

/// What a step asks of the path.
enum Flow {
    /// Go on.
    Go,
    /// The path ends here (`Ok`) or fails (`Fail`).
    Stop(Outcome),
    /// Explore the alternatives first.
    Alts,
    /// Explore a jump's target first.
    Branch(InsnId),
}

const fn stop(ok: bool) -> Flow {
    Flow::Stop(if ok { Outcome::Ok } else { Outcome::Fail })
}

enum Restore {
    Found(Option<StateId>),
    Defer,
    Fail,
}

impl<R: Report> Walker<'_, '_, '_, R> {
    /// A path from `insn`, visiting it first.
    pub(super) fn run(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
    ) -> Outcome {
        self.path(func, insn, state, prev, Phase::Visit)
    }

    /// A path from `insn` once its alternatives are explored.
    pub(super) fn effects(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
    ) -> Outcome {
        self.path(func, insn, state, prev, Phase::Effects)
    }

    /// A path from the jump `insn` once its target is explored.
    pub(super) fn after_branch(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
    ) -> Outcome {
        self.path(func, insn, state, prev, Phase::AfterBranch)
    }

    fn path(
        &mut self,
        func: Option<SymId>,
        mut insn: InsnId,
        mut state: Box<WalkState>,
        mut prev: Option<InsnId>,
        mut phase: Phase,
    ) -> Outcome {
        let p = self.p;
        // the instruction after `insn`, once asked (its effects and the tail both need it)
        let mut after: Option<Option<InsnId>> = None;
        loop {
            let flow = match phase {
                Phase::Visit => self.visit(func, insn, &mut state, prev),
                Phase::Effects => {
                    let next = *after.get_or_insert_with(|| self.next_to_validate(insn));
                    match self.apply_ops(insn, next, &mut state) {
                        Flow::Go => self.by_kind(func, insn, next, &mut state),
                        flow => flow,
                    }
                }
                Phase::AfterBranch => {
                    if p.attr(insn).kind == InsnKind::JumpUnconditional {
                        return Outcome::Ok;
                    }
                    Flow::Go
                }
                Phase::Tail => match self.tail(insn, after.take(), &state) {
                    Ok(next) => {
                        prev = Some(insn);
                        insn = next;
                        phase = Phase::Visit;
                        continue;
                    }
                    Err(out) => return out,
                },
            };
            match flow {
                Flow::Go => {
                    phase = match phase {
                        Phase::Visit => Phase::Effects,
                        _ => Phase::Tail,
                    };
                }
                Flow::Stop(out) => return out,
                Flow::Alts => return self.next_alt(func, insn, state, prev, 0, false),
                Flow::Branch(dest) => {
                    let child = Frame::Run {
                        insn: dest,
                        state: state.clone(),
                        prev: None,
                    };
                    return Outcome::Push(Frame::AfterBranch { insn, state, prev }, child);
                }
            }
        }
    }

    /// Arrival at an instruction: the function boundary, the merge-point check against
    /// the recorded state, recording (or, at a hint, taking) the state, the alternative
    /// merge.
    fn visit(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        state: &mut WalkState,
        prev: Option<InsnId>,
    ) -> Flow {
        let p = self.p;
        let ifunc = p.insn_func(insn);
        if let (Some(func), Some(ifunc)) = (func, ifunc)
            && Some(func) != p.syms.get(ifunc).pfunc
        {
            let fname = &p.syms.get(func).name;
            if fname.starts_with("__cfi_") || fname.starts_with("__pfx_") || p.ignore_unreachables {
                return stop(true);
            }
            self.f.warn(FindingKind::FallsThrough {
                function: fname.to_string(),
                next: p.syms.get(ifunc).name.to_string(),
            });
            return stop(false);
        }
        if ifunc.is_none() && self.leaves_function() {
            return Flow::Stop(self.escape());
        }
        let a = p.attr(insn);
        if func.is_some() && a.ignore() {
            self.warn_insn(insn, FindingKind::ValidatingIgnoredFunction);
            return stop(false);
        }
        let bit = VISITED_BRANCH << u8::from(state.uaccess);
        let visited = self.sh.visited(insn);
        if visited & VISITED_BRANCH_MASK != 0 {
            if !a.hint() {
                let Some(recorded) = self.sh.cfi(insn) else {
                    self.f.warn(FindingKind::CfiMissing);
                    return stop(false);
                };
                if let Some(m) = cfi_match(self.tables.state(recorded), &state.cfi) {
                    self.warn_insn(insn, FindingKind::StackStateMismatch(m));
                    return stop(false);
                }
            }
            if visited & bit != 0 {
                return stop(true);
            }
        }
        if state.noinstr {
            state.instr += i32::from(a.instr);
        }
        if a.hint() {
            if a.restore() {
                if self.reads_back() {
                    return Flow::Stop(self.escape()); // it reads back what others may write
                }
                match self.restore_state(func, insn, prev) {
                    Restore::Found(id) => self.sh.set_cfi(insn, id),
                    Restore::Defer => return stop(true),
                    Restore::Fail => return stop(false),
                }
            }
            if let Some(id) = self.sh.cfi(insn) {
                state.cfi = self.tables.state(id).clone();
                state.known = Some(id);
            }
        } else {
            if state.known.is_none() {
                match self.tables.intern(&state.cfi) {
                    Some(id) => state.known = Some(id),
                    None => return Flow::Stop(self.escape()),
                }
            }
            self.sh.set_cfi(insn, state.known);
        }
        self.sh.visited[insn.idx()].store(visited | bit, Relaxed);
        if visited == 0 {
            self.touched(insn);
        }
        if !self.propagate_alt_cfi(func, insn) {
            return stop(false);
        }
        if !a.ignore_alts() && a.has_alts() {
            return Flow::Alts;
        }
        Flow::Go
    }

    /// The instruction's stack operations (objtool: `handle_insn_ops()`).
    fn apply_ops(&mut self, insn: InsnId, next: Option<InsnId>, state: &mut WalkState) -> Flow {
        let p = self.p;
        let cx = OpContext {
            in_func: p.insn_func(insn).is_some(),
            next_is_hint: next.is_some_and(|n| p.attr(n).hint()),
            stackval: p.opts.stackval,
        };
        let in_group = p.alt_stream(insn).is_some();
        let ops = p.ops(insn);
        if !ops.is_empty() {
            state.known = None;
        }
        for op in ops {
            let op = &op.get();
            if let Err(msg) = apply(&mut state.cfi, op, cx) {
                self.warn_insn(insn, FindingKind::StackOperation(msg));
                return stop(false);
            }
            if !p.opts.uaccess || !in_group {
                continue;
            }
            // PUSHF/POPF save and restore the uaccess flag inside alternatives
            if op.dest == Op::PushF {
                if state.uaccess_stack == 0 {
                    state.uaccess_stack = 1;
                } else if state.uaccess_stack >> 31 != 0 {
                    self.warn_insn(insn, FindingKind::PushfStackExhausted);
                    return stop(false);
                }
                state.uaccess_stack = (state.uaccess_stack << 1) | u32::from(state.uaccess);
            }
            if op.src == Op::PopF && state.uaccess_stack != 0 {
                state.uaccess = state.uaccess_stack & 1 != 0;
                state.uaccess_stack >>= 1;
                if state.uaccess_stack == 1 {
                    state.uaccess_stack = 0;
                }
            }
        }
        Flow::Go
    }

    /// What the instruction's kind asks (the `switch (insn->type)` of `validate_branch()`).
    fn by_kind(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        next: Option<InsnId>,
        state: &mut WalkState,
    ) -> Flow {
        let p = self.p;
        match p.attr(insn).kind {
            InsnKind::Return => stop(self.validate_return(func, insn, state)),
            InsnKind::Call | InsnKind::CallDynamic => self.call_step(func, insn, state),
            InsnKind::JumpConditional | InsnKind::JumpUnconditional => self.jump_step(insn, state),
            InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                self.dynamic_jump_step(insn, state)
            }
            InsnKind::ContextSwitch => {
                if func.is_none() {
                    return stop(true);
                }
                if !next.is_some_and(|n| p.attr(n).hint()) {
                    self.warn_insn(insn, FindingKind::UnsupportedInstructionInCallable);
                    return stop(false);
                }
                Flow::Go
            }
            InsnKind::Stac if p.opts.uaccess => {
                if state.uaccess {
                    self.warn_insn(insn, FindingKind::RecursiveUaccessEnable);
                    return stop(false);
                }
                state.uaccess = true;
                Flow::Go
            }
            InsnKind::Clac if p.opts.uaccess => {
                if !state.uaccess && func.is_some() {
                    self.warn_insn(insn, FindingKind::RedundantUaccessDisable);
                    return stop(false);
                }
                if self.uaccess_safe(func) && state.uaccess_stack == 0 {
                    self.warn_insn(insn, FindingKind::UaccessSafeDisablesUaccess);
                    return stop(false);
                }
                state.uaccess = false;
                Flow::Go
            }
            InsnKind::Std => {
                if state.df {
                    self.warn_insn(insn, FindingKind::RecursiveStd);
                    return stop(false);
                }
                state.df = true;
                Flow::Go
            }
            InsnKind::Cld => {
                if !state.df && func.is_some() {
                    self.warn_insn(insn, FindingKind::RedundantCld);
                    return stop(false);
                }
                state.df = false;
                Flow::Go
            }
            _ => Flow::Go,
        }
    }

    fn call_step(&mut self, func: Option<SymId>, insn: InsnId, state: &WalkState) -> Flow {
        let p = self.p;
        if !self.validate_call(insn, state) {
            return stop(false);
        }
        if p.opts.stackval
            && func.is_some()
            && !self.is_special_call(insn)
            && !state.cfi.has_valid_stack_frame()
        {
            self.warn_insn(insn, FindingKind::CallWithoutFramePointer);
            return stop(false);
        }
        if p.attr(insn).dead_end() {
            return stop(true);
        }
        Flow::Go
    }

    fn jump_step(&mut self, insn: InsnId, state: &WalkState) -> Flow {
        let p = self.p;
        let a = p.attr(insn);
        if p.is_sibling_call(insn) {
            if !self.validate_sibling_call(insn, state) {
                return stop(false);
            }
        } else if let Some(dest) = a.jump_dest.get().map(InsnId) {
            return Flow::Branch(dest);
        }
        if a.kind == InsnKind::JumpUnconditional {
            return stop(true);
        }
        Flow::Go
    }

    fn dynamic_jump_step(&mut self, insn: InsnId, state: &WalkState) -> Flow {
        let p = self.p;
        if p.is_sibling_call(insn) && !self.validate_sibling_call(insn, state) {
            return stop(false);
        }
        if p.attr(insn).kind == InsnKind::JumpDynamic {
            return stop(true);
        }
        Flow::Go
    }

    /// After the instruction: the next one to visit (`after`: it, if already asked), or
    /// the end of the path.
    fn tail(
        &mut self,
        insn: InsnId,
        after: Option<Option<InsnId>>,
        state: &WalkState,
    ) -> Result<InsnId, Outcome> {
        let p = self.p;
        if p.attr(insn).dead_end() {
            return Err(Outcome::Ok);
        }
        let Some(next) = after.unwrap_or_else(|| self.next_to_validate(insn)) else {
            if state.cfi.cfa.base == CFI_UNDEFINED || p.ignore_unreachables {
                return Err(Outcome::Ok);
            }
            let sec = p.insns.sec_of(insn);
            self.f.warn(FindingKind::UnexpectedEndOfSection {
                section: p.sec_names[sec.0 as usize].clone(),
            });
            return Err(Outcome::Fail);
        };
        Ok(next)
    }

    /// objtool: `next_insn_to_validate()` ([`crate::cfg::Program::next_to_validate`]).
    pub(super) fn next_to_validate(&self, insn: InsnId) -> Option<InsnId> {
        self.p.next_to_validate(insn)
    }

    /// objtool: the CFI restore hint — the state of the save hint before it.
    fn restore_state(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        prev: Option<InsnId>,
    ) -> Restore {
        let p = self.p;
        let mut save = None;
        if let Some(func) = func {
            let start = p.syms.get(func).offset;
            let mut cur = p.prev_same_sec(insn);
            while let Some(i) = cur {
                if u64::from(p.insn(i).offset) < start {
                    break;
                }
                if p.attr(i).save() {
                    save = Some(i);
                    break;
                }
                cur = p.prev_same_sec(i);
            }
        }
        let Some(save) = save else {
            self.warn_insn(insn, FindingKind::NoCfiSaveForRestore);
            return Restore::Fail;
        };
        if self.sh.visited(save) == 0 {
            if prev.is_none() {
                return Restore::Defer;
            }
            self.warn_insn(insn, FindingKind::CfiSaveRestoreCombo);
            return Restore::Fail;
        }
        Restore::Found(self.sh.cfi(save))
    }

    /// objtool: `propagate_alt_cfi()` — the seed's rule ([`merge::record`]) on the slot of
    /// the instruction's offset in its site.
    fn propagate_alt_cfi(&mut self, func: Option<SymId>, insn: InsnId) -> bool {
        let p = self.p;
        let Some((stream, site)) = p.alt_site(insn) else {
            return true;
        };
        let Some(cfi) = self.sh.cfi(insn) else {
            self.f.warn(FindingKind::CfiMissing);
            return false;
        };
        let group = stream.group;
        if self.shares_array(group, func) {
            self.escape();
            return false;
        }
        let off = p
            .insn(insn)
            .offset
            .wrapping_sub(p.insn(stream.first).offset) as usize;
        let Some(slot) = self.sh.alt_cfi[group.index()].get(off) else {
            return true; // past the original's length: no address to describe
        };
        let mut merged = StateId::from_raw(slot.load(Relaxed));
        match merge::record(&mut merged, cfi) {
            Merge::Agreed => true,
            Merge::Took => {
                slot.store(StateId::to_raw(merged), Relaxed);
                self.sh.alt_setter[group.index()][off].store(insn.0, Relaxed);
                self.filled(group, off);
                true
            }
            Merge::Conflict { previous } => {
                let orig = p.streams[site.orig].first;
                let setter = self.sh.alt_setter[group.index()][off].load(Relaxed);
                let shown = !self.f.is_warned(p.attr(orig).sym.get());
                self.conflicts.push(AltConflict {
                    group,
                    offset: off as u32,
                    first: (setter != u32::MAX).then_some(InsnId(setter)),
                    first_state: previous,
                    second: insn,
                    second_state: cfi,
                    shown,
                });
                let second = p.insn_location(insn);
                self.warn_insn(orig, FindingKind::StackLayoutConflict { second });
                if shown {
                    // (rendered after the walk: alt::explain)
                    self.f.explain_later(p.insn_location(orig));
                }
                false
            }
        }
    }
}
