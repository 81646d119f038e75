//! The validation walk: every path from every function entry and every unwind hint,
//! tracking the CFI state, recording the state on entry to each instruction, and reporting
//! objtool's warnings.
//!
//! objtool: `validate_branch()`, `validate_functions()`, `validate_unwind_hints()` and
//! `validate_reachable_instructions()`. The recursion of `validate_branch()` is an explicit
//! stack of continuations, so the input never decides how deep the native stack grows;
//! the visiting order is objtool's (alternatives before the instruction's own effect, a
//! jump's target before its fall-through), because the first state to reach an
//! instruction is the one recorded and warnings depend on it.

use object::elf;

use super::apply::{OpContext, apply};
use super::state::*;
use crate::cfg::Program;
use crate::cfg::symbols::{NO_SYM, SymIdx};
use crate::decode::{InsnId, InsnKind, Op};
use crate::report::Findings;

/// Index of an interned state.
pub type StateId = u32;
pub const NO_STATE: StateId = u32::MAX;

/// Interned CFI states: equal states share one id.
#[derive(Default)]
pub struct StateTable {
    pub states: Vec<CfiState>,
    /// Ids hashed by their state (each state is stored once, in `states`).
    index: hashbrown::HashTable<StateId>,
}

fn state_hash(s: &CfiState) -> u64 {
    use std::hash::BuildHasher as _;
    rustc_hash::FxBuildHasher.hash_one(s)
}

impl StateTable {
    pub fn intern(&mut self, s: &CfiState) -> StateId {
        let hash = state_hash(s);
        let states = &self.states;
        if let Some(&id) = self.index.find(hash, |&id| states[id as usize] == *s) {
            return id;
        }
        let id = self.states.len() as StateId;
        self.states.push(s.clone());
        let states = &self.states;
        self.index
            .insert_unique(hash, id, |&id| state_hash(&states[id as usize]));
        id
    }

    pub fn get(&self, id: StateId) -> &CfiState {
        &self.states[id as usize]
    }
}

const VISITED_BRANCH: u8 = 0x01;
const VISITED_BRANCH_MASK: u8 = 0x03;

/// What the walk leaves behind for ORC generation.
pub struct Walk {
    pub states: StateTable,
    /// Per instruction: the state on entry (or the hint's), `NO_STATE` if none.
    pub cfi: Vec<StateId>,
    pub visited: Vec<u8>,
    /// Per original alternative group: the shared per-byte state array.
    pub alt_cfi: Vec<Vec<StateId>>,
    /// Per original alternative group: the instruction that filled each slot.
    pub alt_setter: Vec<Vec<InsnId>>,
    /// The conflicts found while merging alternative states.
    pub conflicts: Vec<AltConflict>,
    /// Walks that failed plus missing size annotations (objtool's warning count).
    pub warnings: usize,
}

#[derive(Clone)]
struct WalkState {
    cfi: CfiState,
    /// The interned id of `cfi`, when known (saves hashing the state at every
    /// instruction that did not change it).
    known: StateId,
    uaccess: bool,
    uaccess_stack: u32,
    df: bool,
    noinstr: bool,
    instr: i32,
}

impl WalkState {
    /// objtool: `init_insn_state()` with the given CFI.
    fn new(cfi: CfiState, uaccess: bool) -> Self {
        WalkState {
            cfi,
            known: NO_STATE,
            uaccess,
            uaccess_stack: 0,
            df: false,
            noinstr: false,
            instr: 0,
        }
    }
}

enum Frame {
    Run {
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
    },
    Alts {
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
        done: usize,
        skip_orig: bool,
    },
    AfterBranch {
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
    },
}

enum Phase {
    Start,
    AfterAlts,
    AfterBranch,
    Tail,
}

enum Outcome {
    Ok,
    Fail,
    Push(Frame, Frame),
}

struct Walker<'p, 'a, 'data> {
    p: &'p Program<'a, 'data>,
    f: &'p mut Findings,
    w: Walk,
}

/// Runs the whole validation (functions, then hints, then the unreachable check).
pub fn validate(p: &Program<'_, '_>, f: &mut Findings) -> Walk {
    let n = p.attrs.len();
    let mut w = Walk {
        states: StateTable::default(),
        cfi: vec![NO_STATE; n],
        visited: vec![0; n],
        alt_cfi: p
            .cfi_arrays
            .iter()
            .map(|&len| vec![NO_STATE; len as usize])
            .collect(),
        alt_setter: p
            .cfi_arrays
            .iter()
            .map(|&len| vec![InsnId(u32::MAX); len as usize])
            .collect(),
        conflicts: Vec::new(),
        warnings: 0,
    };
    let mut hinted: Vec<_> = p.hint_cfi.iter().collect();
    hinted.sort_by_key(|(id, _)| **id);
    for (id, h) in hinted {
        w.cfi[id.idx()] = w.states.intern(h);
    }
    let mut walker = Walker { p, f, w };
    walker.validate_functions();
    walker.validate_hints();
    if walker.w.warnings == 0 {
        walker.validate_reachable();
    }
    walker.w
}

impl Walker<'_, '_, '_> {
    fn validate_functions(&mut self) {
        let p = self.p;
        for sec in 0..p.sec_exec.len() {
            if !p.sec_exec[sec] {
                continue;
            }
            for &s in &p.syms.lists[sec] {
                let sym = p.syms.get(s);
                if sym.ty != elf::STT_FUNC {
                    continue;
                }
                if sym.len == 0 {
                    self.f
                        .warn(format!("{}() is missing an ELF size annotation", sym.name));
                    self.w.warnings += 1;
                    continue;
                }
                if sym.pfunc != s || sym.alias != s {
                    continue;
                }
                let Some(insn) = p.insns.at(sym.sec, sym.offset) else {
                    continue;
                };
                if p.attr(insn).ignore() || self.w.visited[insn.idx()] != 0 {
                    continue;
                }
                let state =
                    WalkState::new(CfiState::func_entry(), p.opts.uaccess && sym.uaccess_safe);
                if !self.walk(p.insn_func(insn), insn, state) {
                    self.f.backtrace(&p.insn_loc(insn), "<=== (sym)");
                    self.w.warnings += 1;
                }
            }
        }
    }

    fn validate_hints(&mut self) {
        let p = self.p;
        if !p.has_hints {
            return;
        }
        for k in 0..p.nreal {
            let insn = InsnId(k as u32);
            let a = p.attr(insn);
            if a.hint() && self.w.visited[k] == 0 && !a.ignore() {
                let state = WalkState::new(CfiState::blank(), false);
                if !self.walk(p.insn_func(insn), insn, state) {
                    self.f.backtrace(&p.insn_loc(insn), "<=== (hint)");
                    self.w.warnings += 1;
                }
            }
        }
    }

    /// objtool: `validate_branch()` from `start`; false when the walk failed.
    fn walk(&mut self, func: SymIdx, start: InsnId, state: WalkState) -> bool {
        let mut stack = vec![Frame::Run {
            insn: start,
            state: Box::new(state),
            prev: None,
        }];
        while let Some(frame) = stack.pop() {
            let out = match frame {
                Frame::Run { insn, state, prev } => {
                    self.exec(func, insn, state, prev, Phase::Start)
                }
                Frame::AfterBranch { insn, state, prev } => {
                    self.exec(func, insn, state, prev, Phase::AfterBranch)
                }
                Frame::Alts {
                    insn,
                    state,
                    prev,
                    done,
                    skip_orig,
                } => self.next_alt(func, insn, state, prev, done, skip_orig),
            };
            match out {
                Outcome::Ok => {}
                Outcome::Fail => {
                    for fr in stack.iter().rev() {
                        match fr {
                            Frame::Alts { insn, .. } => {
                                self.f.backtrace(&self.p.insn_loc(*insn), "(alt)")
                            }
                            Frame::AfterBranch { insn, .. } => {
                                self.f.backtrace(&self.p.insn_loc(*insn), "(branch)")
                            }
                            Frame::Run { .. } => {}
                        }
                    }
                    return false;
                }
                Outcome::Push(cont, child) => {
                    stack.push(cont);
                    stack.push(child);
                }
            }
        }
        true
    }

    /// Explores the alternative number `done` (in objtool's LIFO order), or, when all are
    /// done, goes on with the instruction itself.
    fn next_alt(
        &mut self,
        func: SymIdx,
        insn: InsnId,
        state: Box<WalkState>,
        prev: Option<InsnId>,
        done: usize,
        skip_orig: bool,
    ) -> Outcome {
        let alts = self.p.alts.get(&insn).map(Vec::as_slice).unwrap_or(&[]);
        if done < alts.len() {
            let alt = alts[alts.len() - 1 - done];
            let child = Frame::Run {
                insn: alt.target,
                state: state.clone(),
                prev: None,
            };
            return Outcome::Push(
                Frame::Alts {
                    insn,
                    state,
                    prev,
                    done: done + 1,
                    skip_orig: skip_orig || alt.skip_orig,
                },
                child,
            );
        }
        if skip_orig {
            return Outcome::Ok;
        }
        self.exec(func, insn, state, prev, Phase::AfterAlts)
    }

    /// objtool: `next_insn_to_validate()`.
    fn next_to_validate(&self, insn: InsnId) -> Option<InsnId> {
        let p = self.p;
        if let Some(g) = p.alt_group(insn) {
            let grp = &p.groups[g as usize];
            let next_orig = || {
                let og = &p.groups[grp.orig_group? as usize];
                p.next_same_sec(og.last?)
            };
            if let Some(nop) = grp.nop {
                if Some(insn) == grp.last {
                    return Some(nop);
                }
                if insn == nop {
                    return next_orig();
                }
            }
            if Some(insn) == grp.last && grp.orig_group.is_some() {
                return next_orig();
            }
        }
        p.next_same_sec(insn)
    }

    fn warn_insn(&mut self, insn: InsnId, msg: &str) {
        self.p.warn_insn(self.f, insn, msg);
    }

    fn exec(
        &mut self,
        func: SymIdx,
        mut insn: InsnId,
        mut state: Box<WalkState>,
        mut prev: Option<InsnId>,
        mut phase: Phase,
    ) -> Outcome {
        let p = self.p;
        loop {
            match phase {
                Phase::Start => {
                    let ifunc = p.insn_func(insn);
                    if func != NO_SYM && ifunc != NO_SYM && func != p.syms.get(ifunc).pfunc {
                        let fname = &p.syms.get(func).name;
                        if fname.starts_with("__cfi_")
                            || fname.starts_with("__pfx_")
                            || p.ignore_unreachables
                        {
                            return Outcome::Ok;
                        }
                        self.f.warn(format!(
                            "{fname}() falls through to next function {}()",
                            p.syms.get(ifunc).name
                        ));
                        return Outcome::Fail;
                    }
                    let a = p.attr(insn);
                    if func != NO_SYM && a.ignore() {
                        self.warn_insn(insn, "BUG: why am I validating an ignored function?");
                        return Outcome::Fail;
                    }
                    let bit = VISITED_BRANCH << u8::from(state.uaccess);
                    let visited = self.w.visited[insn.idx()];
                    if visited & VISITED_BRANCH_MASK != 0 {
                        if !a.hint() {
                            let recorded = self.w.cfi[insn.idx()];
                            if recorded == NO_STATE {
                                self.f.warn("CFI missing");
                                return Outcome::Fail;
                            }
                            if let Some(m) = cfi_match(self.w.states.get(recorded), &state.cfi) {
                                self.warn_insn(insn, &format!("stack state mismatch: {m}"));
                                return Outcome::Fail;
                            }
                        }
                        if visited & bit != 0 {
                            return Outcome::Ok;
                        }
                    }
                    if state.noinstr {
                        state.instr += i32::from(a.instr);
                    }
                    if a.hint() {
                        if a.restore() {
                            match self.restore_state(func, insn, prev) {
                                Restore::Found(id) => self.w.cfi[insn.idx()] = id,
                                Restore::Defer => return Outcome::Ok,
                                Restore::Fail => return Outcome::Fail,
                            }
                        }
                        let id = self.w.cfi[insn.idx()];
                        if id != NO_STATE {
                            state.cfi = self.w.states.get(id).clone();
                            state.known = id;
                        }
                    } else {
                        if state.known == NO_STATE {
                            state.known = self.w.states.intern(&state.cfi);
                        }
                        self.w.cfi[insn.idx()] = state.known;
                    }
                    self.w.visited[insn.idx()] |= bit;
                    if !self.propagate_alt_cfi(insn) {
                        return Outcome::Fail;
                    }
                    if !a.ignore_alts() && a.has_alts() {
                        return self.next_alt(func, insn, state, prev, 0, false);
                    }
                    phase = Phase::AfterAlts;
                }
                Phase::AfterAlts => {
                    let next = self.next_to_validate(insn);
                    let cx = OpContext {
                        in_func: p.insn_func(insn) != NO_SYM,
                        next_is_hint: next.is_some_and(|n| p.attr(n).hint()),
                        stackval: p.opts.stackval,
                    };
                    let in_group = p.alt_group(insn).is_some();
                    let ops = p.ops(insn);
                    if !ops.is_empty() {
                        state.known = NO_STATE;
                    }
                    for op in ops {
                        if let Err(msg) = apply(&mut state.cfi, op, cx) {
                            self.warn_insn(insn, msg);
                            return Outcome::Fail;
                        }
                        if !p.opts.uaccess || !in_group {
                            continue;
                        }
                        // objtool: handle_insn_ops() — PUSHF/POPF save and restore the
                        // uaccess flag inside alternatives
                        if op.dest == Op::PushF {
                            if state.uaccess_stack == 0 {
                                state.uaccess_stack = 1;
                            } else if state.uaccess_stack >> 31 != 0 {
                                self.warn_insn(insn, "PUSHF stack exhausted");
                                return Outcome::Fail;
                            }
                            state.uaccess_stack =
                                (state.uaccess_stack << 1) | u32::from(state.uaccess);
                        }
                        if op.src == Op::PopF && state.uaccess_stack != 0 {
                            state.uaccess = state.uaccess_stack & 1 != 0;
                            state.uaccess_stack >>= 1;
                            if state.uaccess_stack == 1 {
                                state.uaccess_stack = 0;
                            }
                        }
                    }
                    let a = p.attr(insn);
                    match a.kind {
                        InsnKind::Return => {
                            return if self.validate_return(func, insn, &state) {
                                Outcome::Ok
                            } else {
                                Outcome::Fail
                            };
                        }
                        InsnKind::Call | InsnKind::CallDynamic => {
                            if !self.validate_call(insn, &state) {
                                return Outcome::Fail;
                            }
                            if p.opts.stackval
                                && func != NO_SYM
                                && !self.is_special_call(insn)
                                && !state.cfi.has_valid_stack_frame()
                            {
                                self.warn_insn(insn, "call without frame pointer save/setup");
                                return Outcome::Fail;
                            }
                            if a.dead_end() {
                                return Outcome::Ok;
                            }
                        }
                        InsnKind::JumpConditional | InsnKind::JumpUnconditional => {
                            if p.is_sibling_call(insn) {
                                if !self.validate_sibling_call(insn, &state) {
                                    return Outcome::Fail;
                                }
                            } else if let Some(dest) = a.jump_dest.get().map(InsnId) {
                                let child = Frame::Run {
                                    insn: dest,
                                    state: state.clone(),
                                    prev: None,
                                };
                                return Outcome::Push(
                                    Frame::AfterBranch { insn, state, prev },
                                    child,
                                );
                            }
                            if a.kind == InsnKind::JumpUnconditional {
                                return Outcome::Ok;
                            }
                        }
                        InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                            if p.is_sibling_call(insn) && !self.validate_sibling_call(insn, &state)
                            {
                                return Outcome::Fail;
                            }
                            if a.kind == InsnKind::JumpDynamic {
                                return Outcome::Ok;
                            }
                        }
                        InsnKind::ContextSwitch => {
                            if func == NO_SYM {
                                return Outcome::Ok;
                            }
                            if !next.is_some_and(|n| p.attr(n).hint()) {
                                self.warn_insn(
                                    insn,
                                    "unsupported instruction in callable function",
                                );
                                return Outcome::Fail;
                            }
                        }
                        InsnKind::Stac if p.opts.uaccess => {
                            if state.uaccess {
                                self.warn_insn(insn, "recursive UACCESS enable");
                                return Outcome::Fail;
                            }
                            state.uaccess = true;
                        }
                        InsnKind::Clac if p.opts.uaccess => {
                            if !state.uaccess && func != NO_SYM {
                                self.warn_insn(insn, "redundant UACCESS disable");
                                return Outcome::Fail;
                            }
                            if self.uaccess_safe(func) && state.uaccess_stack == 0 {
                                self.warn_insn(insn, "UACCESS-safe disables UACCESS");
                                return Outcome::Fail;
                            }
                            state.uaccess = false;
                        }
                        InsnKind::Std => {
                            if state.df {
                                self.warn_insn(insn, "recursive STD");
                                return Outcome::Fail;
                            }
                            state.df = true;
                        }
                        InsnKind::Cld => {
                            if !state.df && func != NO_SYM {
                                self.warn_insn(insn, "redundant CLD");
                                return Outcome::Fail;
                            }
                            state.df = false;
                        }
                        _ => {}
                    }
                    phase = Phase::Tail;
                }
                Phase::AfterBranch => {
                    if p.attr(insn).kind == InsnKind::JumpUnconditional {
                        return Outcome::Ok;
                    }
                    phase = Phase::Tail;
                }
                Phase::Tail => {
                    if p.attr(insn).dead_end() {
                        return Outcome::Ok;
                    }
                    let Some(next) = self.next_to_validate(insn) else {
                        if state.cfi.cfa.base == CFI_UNDEFINED || p.ignore_unreachables {
                            return Outcome::Ok;
                        }
                        let sec = p.insns.sec_of(insn);
                        self.f.warn(format!(
                            "{}: unexpected end of section",
                            p.sec_names[sec.0 as usize]
                        ));
                        return Outcome::Fail;
                    };
                    prev = Some(insn);
                    insn = next;
                    phase = Phase::Start;
                }
            }
        }
    }

    fn restore_state(&mut self, func: SymIdx, insn: InsnId, prev: Option<InsnId>) -> Restore {
        let p = self.p;
        let mut save = None;
        if func != NO_SYM {
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
            self.warn_insn(insn, "no corresponding CFI save for CFI restore");
            return Restore::Fail;
        };
        if self.w.visited[save.idx()] == 0 {
            if prev.is_none() {
                return Restore::Defer;
            }
            self.warn_insn(
                insn,
                "objtool isn't smart enough to handle this CFI save/restore combo",
            );
            return Restore::Fail;
        }
        Restore::Found(self.w.cfi[save.idx()])
    }

    /// objtool: `propagate_alt_cfi()`.
    fn propagate_alt_cfi(&mut self, insn: InsnId) -> bool {
        let p = self.p;
        let Some(g) = p.alt_group(insn) else {
            return true;
        };
        let cfi = self.w.cfi[insn.idx()];
        if cfi == NO_STATE {
            self.f.warn("CFI missing");
            return false;
        }
        let grp = &p.groups[g as usize];
        let off = p.insn(insn).offset.wrapping_sub(p.insn(grp.first).offset) as usize;
        let Some(slot) = self.w.alt_cfi[grp.cfi_array as usize].get_mut(off) else {
            return true; // past the original's length: no address to describe
        };
        if *slot == NO_STATE {
            *slot = cfi;
            self.w.alt_setter[grp.cfi_array as usize][off] = insn;
        } else if *slot != cfi {
            let conflict = AltConflict {
                array: grp.cfi_array,
                offset: off as u32,
                first: self.w.alt_setter[grp.cfi_array as usize][off],
                first_state: *slot,
                second: insn,
                second_state: cfi,
            };
            self.w.conflicts.push(conflict);
            let orig = grp
                .orig_group
                .map_or(grp.first, |og| p.groups[og as usize].first);
            let msg = format!(
                "stack layout conflict in alternatives: {}",
                p.insn_loc(insn)
            );
            let shown = !self.f.is_warned(p.attr(orig).sym);
            self.warn_insn(orig, &msg);
            if shown {
                let text = crate::alt::explain_conflict(p, &self.w.states, &conflict);
                self.f.detail(&p.insn_loc(orig), &text);
            }
            return false;
        }
        true
    }

    fn is_special_call(&self, insn: InsnId) -> bool {
        let p = self.p;
        if p.attr(insn).kind != InsnKind::Call {
            return false;
        }
        let d = p.call_dest(insn);
        d != NO_SYM && (p.syms.get(d).fentry || p.syms.get(d).embedded_insn)
    }

    fn call_dest_name(&self, insn: InsnId) -> String {
        let d = self.p.call_dest(insn);
        if d != NO_SYM {
            self.p.syms.get(d).name.clone()
        } else {
            "{dynamic}".to_owned()
        }
    }

    /// objtool: `func_uaccess_safe()`.
    fn uaccess_safe(&self, func: SymIdx) -> bool {
        func != NO_SYM && self.p.syms.get(func).uaccess_safe
    }

    fn validate_call(&mut self, insn: InsnId, state: &WalkState) -> bool {
        if state.uaccess && !self.uaccess_safe(self.p.call_dest(insn)) {
            let msg = format!(
                "call to {}() with UACCESS enabled",
                self.call_dest_name(insn)
            );
            self.warn_insn(insn, &msg);
            return false;
        }
        if state.df {
            let msg = format!("call to {}() with DF set", self.call_dest_name(insn));
            self.warn_insn(insn, &msg);
            return false;
        }
        true
    }

    fn validate_sibling_call(&mut self, insn: InsnId, state: &WalkState) -> bool {
        if self.p.insn_func(insn) != NO_SYM && state.cfi.has_modified_stack_frame() {
            self.warn_insn(
                insn,
                "sibling call from callable instruction with modified stack frame",
            );
            return false;
        }
        self.validate_call(insn, state)
    }

    fn validate_return(&mut self, func: SymIdx, insn: InsnId, state: &WalkState) -> bool {
        if state.noinstr && state.instr > 0 {
            self.warn_insn(insn, "return with instrumentation enabled");
            return false;
        }
        if state.uaccess && !self.uaccess_safe(func) {
            self.warn_insn(insn, "return with UACCESS enabled");
            return false;
        }
        if !state.uaccess && self.uaccess_safe(func) {
            self.warn_insn(
                insn,
                "return with UACCESS disabled from a UACCESS-safe function",
            );
            return false;
        }
        if state.df {
            self.warn_insn(insn, "return with DF set");
            return false;
        }
        if func != NO_SYM && state.cfi.has_modified_stack_frame() {
            self.warn_insn(insn, "return with modified stack frame");
            return false;
        }
        if state.cfi.bp_scratch {
            self.warn_insn(insn, "BP used as a scratch register");
            return false;
        }
        true
    }

    /// objtool: `validate_reachable_instructions()`.
    fn validate_reachable(&mut self) {
        let p = self.p;
        if p.ignore_unreachables {
            return;
        }
        for k in 0..p.nreal {
            let insn = InsnId(k as u32);
            if self.w.visited[k] != 0 || self.ignore_unreachable(insn) {
                continue;
            }
            // (objtool 6.1 has no such message: everything is "unreachable instruction")
            if let Some(prev) = p.prev_same_sec(insn).filter(|_| !p.opts.rules_6_1) {
                if p.attr(prev).dead_end() {
                    let d = p.call_dest(prev);
                    if d != NO_SYM {
                        let msg = format!(
                            "{}() is missing a __noreturn annotation",
                            p.syms.get(d).name
                        );
                        self.warn_insn(insn, &msg);
                        self.w.warnings += 1;
                        continue;
                    }
                }
            }
            self.warn_insn(insn, "unreachable instruction");
            self.w.warnings += 1;
            if p.opts.rules_6_1 {
                return; // objtool 6.1 reports only the first one
            }
        }
    }

    fn is_kasan_or_ubsan(&self, insn: InsnId) -> bool {
        let p = self.p;
        if p.attr(insn).kind != InsnKind::Call {
            return false;
        }
        let d = p.call_dest(insn);
        d != NO_SYM && {
            let n = &p.syms.get(d).name;
            n == "__asan_handle_no_return" || n == "__ubsan_handle_builtin_unreachable"
        }
    }

    /// objtool: `ignore_unreachable_insn()`.
    fn ignore_unreachable(&mut self, insn: InsnId) -> bool {
        let p = self.p;
        let a = p.attr(insn);
        if a.ignore() || a.kind == InsnKind::Nop || a.kind == InsnKind::Trap {
            return true;
        }
        let i = p.insn(insn);
        let sec = p.insns.sec_of(insn);
        let secname = &p.sec_names[sec.0 as usize];
        if secname == ".altinstr_replacement" || secname == ".altinstr_aux" {
            return true;
        }
        let func = p.insn_func(insn);
        if p.opts.link && func == NO_SYM {
            let size = p.syms.hole_containing(sec, u64::from(i.offset));
            if size == 0 {
                return false;
            }
            if size < 0 {
                return true;
            }
            let end = u64::from(i.offset) + size as u64;
            let mut cur = p.next_same_sec(insn);
            while let Some(c) = cur {
                if self.w.visited[c.idx()] != 0 {
                    return true;
                }
                if u64::from(p.insn(c).offset) >= end {
                    break;
                }
                cur = p.next_same_sec(c);
            }
            return false;
        }
        if func == NO_SYM {
            return false;
        }
        let fsym = p.syms.get(func);
        if fsym.static_call_tramp {
            return true;
        }
        if let Some(prev) = p.prev_same_sec(insn) {
            if p.attr(prev).dead_end()
                && (a.kind == InsnKind::Bug
                    || (a.kind == InsnKind::JumpUnconditional
                        && a.jump_dest
                            .get()
                            .map(InsnId)
                            .is_some_and(|d| p.attr(d).kind == InsnKind::Bug)))
            {
                return true;
            }
        }
        let mut cur = insn;
        for _ in 0..5 {
            if self.is_kasan_or_ubsan(cur) {
                return true;
            }
            let ca = p.attr(cur);
            if ca.kind == InsnKind::JumpUnconditional {
                match ca.jump_dest.get().map(InsnId) {
                    Some(d) if p.insn_func(d) == p.insn_func(cur) => {
                        cur = d;
                        continue;
                    }
                    _ => break,
                }
            }
            let cf = p.insn_func(cur);
            if cf == NO_SYM || p.insn(cur).end() >= p.syms.get(cf).end() {
                break;
            }
            match p.next_same_sec(cur) {
                Some(n) => cur = n,
                None => break,
            }
        }
        false
    }
}

/// Two alternatives that need different states at one byte offset of their group.
#[derive(Clone, Copy, Debug)]
pub struct AltConflict {
    pub array: u32,
    pub offset: u32,
    /// The instruction whose state is in the merged array.
    pub first: InsnId,
    pub first_state: StateId,
    /// The instruction that disagreed.
    pub second: InsnId,
    pub second_state: StateId,
}

enum Restore {
    Found(StateId),
    Defer,
    Fail,
}
