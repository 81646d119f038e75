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
//!
//! The parts:
//! - this file, the driver: the roots in objtool's order and the explicit stack;
//! - `path`: one path, one method per kind of step (`validate_branch()`'s body);
//! - `rules`: what calls, sibling calls and returns must satisfy;
//! - `reach`: the unreachable-instruction check after all walks;
//! - `noinstr`: `--noinstr` (the walk of the noinstr sections alone, and where calls
//!   from them may go);
//! - `parallel`: walking functions side by side with the same result (the sequential
//!   semantics above only see its three escape hooks).

mod noinstr;
mod parallel;
mod path;
mod reach;
mod rules;

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering::Relaxed};

use object::elf;
use rayon::prelude::*;

use super::intern::StateTable;
use super::state::*;
use crate::alt::merge::AltConflict;
use crate::cfg::Program;
use crate::elf::SecId;
use crate::ids::SymId;
use crate::ids::{InsnId, StateId};
use crate::report::{FindingKind, Findings, Report};
pub use noinstr::validate_noinstr_sections;
use parallel::{Spec, Tables};

const VISITED_BRANCH: u8 = 0x01;
const VISITED_BRANCH_MASK: u8 = 0x03;

/// What the walk leaves behind for ORC generation and the checks after it.
pub struct Walk {
    pub states: StateTable,
    /// Per instruction: the state on entry (or the hint's).
    pub cfi: Vec<Option<StateId>>,
    pub visited: Vec<u8>,
    /// Per alternative group ([`crate::ids::AltGroupId`]): the shared per-byte state array.
    pub alt_cfi: Vec<Box<[Option<StateId>]>>,
    /// The conflicts found while merging alternative states, in the order of their
    /// warnings.
    pub conflicts: Vec<AltConflict>,
    /// Walks that failed plus missing size annotations (objtool's warning count).
    pub warnings: usize,
}

/// The per-instruction and per-array records, written by walks that may run side by side
/// (each on instructions no other concurrent walk touches; relaxed atomics are plain loads
/// and stores on x86-64). States are kept as [`StateId::to_raw`].
struct Shared {
    cfi: Vec<AtomicU32>,
    visited: Vec<AtomicU8>,
    alt_cfi: Vec<Vec<AtomicU32>>,
    /// Per slot: the instruction that filled it (`u32::MAX`: none).
    alt_setter: Vec<Vec<AtomicU32>>,
    /// Per array: the function all instructions of its groups belong to, if one does.
    alt_owner: Vec<Option<SymId>>,
}

impl Shared {
    fn cfi(&self, i: InsnId) -> Option<StateId> {
        StateId::from_raw(self.cfi[i.idx()].load(Relaxed))
    }
    fn set_cfi(&self, i: InsnId, id: Option<StateId>) {
        self.cfi[i.idx()].store(StateId::to_raw(id), Relaxed);
    }
    fn visited(&self, i: InsnId) -> u8 {
        self.visited[i.idx()].load(Relaxed)
    }
}

#[derive(Clone)]
struct WalkState {
    cfi: CfiState,
    /// The interned id of `cfi`, when known (saves hashing the state at every
    /// instruction that did not change it).
    known: Option<StateId>,
    uaccess: bool,
    uaccess_stack: u32,
    df: bool,
    noinstr: bool,
    instr: i32,
}

impl WalkState {
    /// objtool: `init_insn_state()` with the given CFI (`noinstr`: the noinstr rules
    /// apply to this walk).
    fn new(cfi: CfiState, uaccess: bool, noinstr: bool) -> Self {
        WalkState {
            cfi,
            known: None,
            uaccess,
            uaccess_stack: 0,
            df: false,
            noinstr,
            instr: 0,
        }
    }
}

/// A continuation of `validate_branch()`'s recursion.
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

enum Outcome {
    Ok,
    Fail,
    Push(Frame, Frame),
}

struct Walker<'w, 'a, 'data, R: Report> {
    p: &'w Program<'a, 'data>,
    f: &'w mut R,
    sh: &'w Shared,
    tables: Tables<'w>,
    conflicts: &'w mut Vec<AltConflict>,
    /// Walks that failed (objtool's warning count).
    warnings: usize,
    /// Set for a walk running beside others.
    spec: Option<&'w mut Spec>,
}

/// One step of objtool's `validate_functions()` loop, in its order.
#[derive(Clone, Copy)]
enum Item {
    /// A function symbol without a size.
    MissingSize(SymId),
    /// A function to walk from its first instruction.
    Root(SymId, InsnId),
}

/// Runs the whole validation (functions, then hints, then the unreachable check).
pub fn validate(p: &Program<'_, '_>, f: &mut Findings) -> Walk {
    validate_after(p, f, 0)
}

/// [`validate`] after checks that counted `warned` warnings (objtool's `check()` adds
/// `validate_retpoline()`'s to its count, and with any it skips the unreachable check).
pub fn validate_after(p: &Program<'_, '_>, f: &mut Findings, warned: usize) -> Walk {
    let mut run = Run::new(p);
    run.warnings = warned;
    let all = (0..p.sec_exec.len()).filter(|&sec| p.sec_exec[sec]);
    let items = function_items(p, run.parallel, all);
    run.functions(f, &items);
    let mut w = run.walker(f);
    w.validate_hints(None);
    if w.warnings == 0 {
        w.validate_reachable();
    }
    let warnings = w.warnings;
    run.warnings = warnings;
    run.finish()
}

/// The state of one validation run: the per-instruction records, the state table, the
/// conflicts and the warning count.
struct Run<'w, 'a, 'data> {
    p: &'w Program<'a, 'data>,
    parallel: bool,
    sh: Shared,
    states: StateTable,
    conflicts: Vec<AltConflict>,
    warnings: usize,
}

impl<'w, 'a, 'data> Run<'w, 'a, 'data> {
    /// Empty records, the hints' states recorded.
    fn new(p: &'w Program<'a, 'data>) -> Self {
        let n = p.attrs.len();
        let parallel = p.parallel() && rayon::current_num_threads() > 1;
        let atomics = |len: usize, v: u32| (0..len).map(|_| AtomicU32::new(v)).collect::<Vec<_>>();
        // (the per-instruction arrays of a large object are filled on all threads)
        let (cfi, visited) = if parallel {
            (
                (0..n).into_par_iter().map(|_| AtomicU32::new(0)).collect(),
                (0..n).into_par_iter().map(|_| AtomicU8::new(0)).collect(),
            )
        } else {
            (atomics(n, 0), (0..n).map(|_| AtomicU8::new(0)).collect())
        };
        let sh = Shared {
            cfi,
            visited,
            alt_cfi: p
                .alt_groups
                .values()
                .map(|g| atomics(g.len as usize, 0))
                .collect(),
            alt_setter: p
                .alt_groups
                .values()
                .map(|g| atomics(g.len as usize, u32::MAX))
                .collect(),
            alt_owner: parallel::alt_owners(p),
        };
        let mut states = StateTable::default();
        let hint_cfi = super::hint::hint_states(&p.hints);
        let mut hinted: Vec<_> = hint_cfi.iter().collect();
        hinted.sort_by_key(|(id, _)| **id);
        for (id, h) in hinted {
            sh.set_cfi(*id, Some(states.intern(h)));
        }
        Run {
            p,
            parallel,
            sh,
            states,
            conflicts: Vec::new(),
            warnings: 0,
        }
    }

    /// A walker reporting into `f`, one walk at a time.
    fn walker<'r>(&'r mut self, f: &'r mut Findings) -> Walker<'r, 'a, 'data, Findings> {
        Walker {
            p: self.p,
            f,
            sh: &self.sh,
            tables: Tables::Serial(&mut self.states),
            conflicts: &mut self.conflicts,
            warnings: self.warnings,
            spec: None,
        }
    }

    /// objtool's `validate_functions()` loop over `items` (side by side for a large
    /// object, with objtool's result).
    fn functions(&mut self, f: &mut Findings, items: &[Item]) {
        let p = self.p;
        let (mut results, deferred) = if self.parallel {
            parallel::walk_parallel(p, f, &self.sh, &mut self.states, items)
        } else {
            (Vec::new(), (0..items.len()).map(|_| true).collect())
        };
        // Everything in objtool's order: results of the parallel walks, and the walks that
        // had to wait, run now one at a time.
        results.sort_unstable_by_key(|(k, _)| *k);
        let mut results = results.into_iter().peekable();
        for (k, item) in items.iter().enumerate() {
            match *item {
                Item::MissingSize(s) => {
                    f.warn(FindingKind::MissingSize {
                        function: p.syms.get(s).name.to_string(),
                    });
                    self.warnings += 1;
                }
                Item::Root(s, insn) if deferred[k] => {
                    let mut w = self.walker(f);
                    w.warnings = 0;
                    w.validate_root(s, insn);
                    let n = w.warnings;
                    self.warnings += n;
                }
                Item::Root(..) => {
                    if results.peek().is_some_and(|(j, _)| *j == k) {
                        let (_, r) = results.next().unwrap_or_default();
                        f.absorb(r.findings, &r.warned);
                        self.conflicts.extend(r.conflicts);
                        self.warnings += r.warnings;
                    }
                }
            }
        }
    }

    fn finish(self) -> Walk {
        let ids = |v: Vec<AtomicU32>| {
            v.into_iter()
                .map(|a| StateId::from_raw(a.into_inner()))
                .collect::<Vec<_>>()
        };
        Walk {
            states: self.states,
            cfi: ids(self.sh.cfi),
            visited: self
                .sh
                .visited
                .into_iter()
                .map(AtomicU8::into_inner)
                .collect(),
            alt_cfi: self
                .sh
                .alt_cfi
                .into_iter()
                .map(|v| ids(v).into_boxed_slice())
                .collect(),
            conflicts: self.conflicts,
            warnings: self.warnings,
        }
    }
}

/// objtool's `validate_functions()` loop as a list: every function symbol of the given
/// sections, in symbol-list order.
fn function_items(
    p: &Program<'_, '_>,
    parallel: bool,
    secs: impl Iterator<Item = usize>,
) -> Vec<Item> {
    // the symbol types side by side (the lists are in address order: reading each symbol
    // for its type is a cache miss per symbol)
    let types: Vec<u8> = p.syms.syms.iter().map(|s| s.ty).collect();
    let item = |&s: &SymId| {
        if types[s.index()] != elf::STT_FUNC {
            return None;
        }
        let sym = p.syms.get(s);
        if sym.len == 0 {
            return Some(Item::MissingSize(s));
        }
        if sym.pfunc != Some(s) || sym.alias != s {
            return None;
        }
        p.insns
            .at(sym.sec, sym.offset)
            .map(|insn| Item::Root(s, insn))
    };
    let mut items = Vec::new();
    for sec in secs {
        let list = &p.syms.lists[sec];
        if parallel {
            items.par_extend(list.par_iter().with_min_len(1024).filter_map(item));
        } else {
            items.extend(list.iter().filter_map(item));
        }
    }
    items
}

/// The function (objtool's `pfunc`) an instruction belongs to.
fn owner(p: &Program<'_, '_>, i: InsnId) -> Option<SymId> {
    p.insn_func(i).and_then(|f| p.syms.get(f).pfunc)
}

impl<R: Report> Walker<'_, '_, '_, R> {
    /// One root of objtool's `validate_functions()`.
    fn validate_root(&mut self, s: SymId, insn: InsnId) {
        let p = self.p;
        if p.attr(insn).ignore() || self.sh.visited(insn) != 0 {
            return;
        }
        let sym = p.syms.get(s);
        let state = WalkState::new(
            CfiState::func_entry(),
            p.opts.uaccess && sym.uaccess_safe,
            self.noinstr_state(Some(sym.sec)),
        );
        if !self.walk(p.insn_func(insn), insn, state) {
            self.f.backtrace(p.insn_location(insn), "<=== (sym)");
            self.warnings += 1;
        }
    }

    /// objtool: `validate_unwind_hints()` — of one section, or (`None`) of all.
    fn validate_hints(&mut self, sec: Option<SecId>) {
        let p = self.p;
        if !p.has_hints {
            return;
        }
        let range = match sec {
            Some(sec) => p.insns.section_range(sec),
            None => 0..p.nreal as u32,
        };
        let noinstr = self.noinstr_state(sec);
        // the hinted instructions, found on all threads for a large object (a pass over
        // every instruction's attributes); whether one was visited is asked as the walks
        // before it leave it
        let hinted = p.filter_map_range(range, 1 << 16, |k| {
            let a = p.attr(InsnId(k));
            (a.hint() && !a.ignore()).then_some(k)
        });
        for k in hinted {
            let insn = InsnId(k);
            if self.sh.visited(insn) == 0 {
                let state = WalkState::new(CfiState::blank(), false, noinstr);
                if !self.walk(p.insn_func(insn), insn, state) {
                    self.f.backtrace(p.insn_location(insn), "<=== (hint)");
                    self.warnings += 1;
                }
            }
        }
    }

    /// objtool: `validate_branch()` from `start`; false when the walk failed.
    fn walk(&mut self, func: Option<SymId>, start: InsnId, state: WalkState) -> bool {
        let mut stack = Vec::with_capacity(64);
        stack.push(Frame::Run {
            insn: start,
            state: Box::new(state),
            prev: None,
        });
        while let Some(frame) = stack.pop() {
            let out = match frame {
                Frame::Run { insn, state, prev } => self.run(func, insn, state, prev),
                Frame::AfterBranch { insn, state, prev } => {
                    self.after_branch(func, insn, state, prev)
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
                                self.f.backtrace(self.p.insn_location(*insn), "(alt)")
                            }
                            Frame::AfterBranch { insn, .. } => {
                                self.f.backtrace(self.p.insn_location(*insn), "(branch)")
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
        func: Option<SymId>,
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
        self.effects(func, insn, state, prev)
    }

    fn warn_insn(&mut self, insn: InsnId, what: FindingKind) {
        self.p.warn_insn(self.f, insn, what);
    }
}
