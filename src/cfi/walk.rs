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
//! # Walking functions side by side
//!
//! objtool walks functions one after another, and the first walk to reach an instruction
//! decides what is recorded there. orctool walks them in parallel with the same result by
//! relying on a property of the walk: a walk started in function F stops, with a warning
//! and without touching anything, at an instruction of another function (objtool's "falls
//! through to next function"). So walks of different functions touch disjoint instructions
//! and may run in any order, as long as each touches only instructions that belong to its
//! own function. A walk run beside others checks that as it goes; when it would touch
//! anything else (code outside every function, a merged alternative array shared with other
//! functions, a CFI restore hint that reads back), it undoes its writes and is run again
//! later, one at a time in objtool's order, after the parallel part. Findings are appended in
//! objtool's order whatever ran first; states are interned in per-chunk tables and renumbered
//! into one table afterwards, so output does not depend on the thread count.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering::Relaxed};

use object::elf;
use rayon::prelude::*;

use super::apply::{OpContext, apply};
use super::state::*;
use crate::cfg::Program;
use crate::cfg::symbols::{NO_SYM, SymIdx};
use crate::decode::{InsnId, InsnKind, Op};
use crate::report::{Findings, Line, Local, Report};

/// Index of an interned state.
pub type StateId = u32;
pub const NO_STATE: StateId = u32::MAX;

/// Ids of states interned by a parallel chunk carry this bit, the chunk number and the
/// index in the chunk's table; they are renumbered before the walk returns.
const CHUNK_FLAG: u32 = 1 << 31;
const CHUNK_SHIFT: u32 = 20;
const CHUNK_LOCAL_MASK: u32 = (1 << CHUNK_SHIFT) - 1;
/// At most this many chunks (ids stay below `NO_STATE`).
const MAX_CHUNKS: usize = 1024;
/// Chunks per thread: enough for work stealing to even out large functions.
const CHUNKS_PER_THREAD: usize = 8;

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
        self.intern_hashed(state_hash(s), s)
    }

    fn find_hashed(&self, hash: u64, s: &CfiState) -> Option<StateId> {
        let states = &self.states;
        self.index
            .find(hash, |&id| states[id as usize] == *s)
            .copied()
    }

    fn intern_hashed(&mut self, hash: u64, s: &CfiState) -> StateId {
        if let Some(id) = self.find_hashed(hash, s) {
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

/// Reads interned states by id.
pub trait StateLookup {
    fn state(&self, id: StateId) -> &CfiState;
}

impl StateLookup for StateTable {
    fn state(&self, id: StateId) -> &CfiState {
        self.get(id)
    }
}

/// The state tables one walk interns into.
enum Tables<'t> {
    /// The file's table (walks run one at a time).
    Serial(&'t mut StateTable),
    /// A parallel chunk: states already in the (frozen) file table keep their ids, so
    /// equal states always have equal ids; new ones go to the chunk's own table.
    Chunk {
        main: &'t StateTable,
        local: &'t mut StateTable,
        chunk: u32,
    },
}

impl Tables<'_> {
    /// `None` when a chunk's table is full (the walk then runs again serially).
    fn intern(&mut self, s: &CfiState) -> Option<StateId> {
        match self {
            Tables::Serial(t) => Some(t.intern(s)),
            Tables::Chunk { main, local, chunk } => {
                let hash = state_hash(s);
                if let Some(id) = main.find_hashed(hash, s) {
                    return Some(id);
                }
                let id = local.intern_hashed(hash, s);
                (id < CHUNK_LOCAL_MASK).then_some(CHUNK_FLAG | (*chunk << CHUNK_SHIFT) | id)
            }
        }
    }
}

impl StateLookup for Tables<'_> {
    fn state(&self, id: StateId) -> &CfiState {
        match self {
            Tables::Serial(t) => t.get(id),
            Tables::Chunk { main, local, .. } => {
                if id & CHUNK_FLAG != 0 {
                    local.get(id & CHUNK_LOCAL_MASK)
                } else {
                    main.get(id)
                }
            }
        }
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

/// The per-instruction and per-array records, written by walks that may run side by side
/// (each on instructions no other concurrent walk touches; relaxed atomics are plain loads
/// and stores on x86-64).
struct Shared {
    cfi: Vec<AtomicU32>,
    visited: Vec<AtomicU8>,
    alt_cfi: Vec<Vec<AtomicU32>>,
    alt_setter: Vec<Vec<AtomicU32>>,
    /// Per array: the function all instructions of its groups belong to, if one does.
    alt_owner: Vec<SymIdx>,
}

impl Shared {
    fn cfi(&self, i: InsnId) -> StateId {
        self.cfi[i.idx()].load(Relaxed)
    }
    fn set_cfi(&self, i: InsnId, id: StateId) {
        self.cfi[i.idx()].store(id, Relaxed);
    }
    fn visited(&self, i: InsnId) -> u8 {
        self.visited[i.idx()].load(Relaxed)
    }
}

/// A walk running beside others: it may touch only instructions of its own function, and
/// it records what it wrote so that it can be undone.
#[derive(Default)]
struct Spec {
    insns: Vec<InsnId>,
    slots: Vec<(u32, u32)>,
    escaped: bool,
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
    MissingSize(SymIdx),
    /// A function to walk from its first instruction.
    Root(SymIdx, InsnId),
}

/// What a root's walk run beside others produced.
#[derive(Default)]
struct RootResult {
    lines: Vec<Line>,
    warned: Vec<SymIdx>,
    conflicts: Vec<AltConflict>,
    warnings: usize,
}

/// What a chunk of roots walked beside others produced.
struct ChunkOut {
    table: StateTable,
    /// Results of the roots that reported something, by item index.
    results: Vec<(usize, RootResult)>,
    /// Roots that must run again one at a time, by item index.
    deferred: Vec<usize>,
}

/// Runs the whole validation (functions, then hints, then the unreachable check).
pub fn validate(p: &Program<'_, '_>, f: &mut Findings) -> Walk {
    let n = p.attrs.len();
    let parallel = p.parallel() && rayon::current_num_threads() > 1;
    let atomics = |len: usize, v: u32| (0..len).map(|_| AtomicU32::new(v)).collect::<Vec<_>>();
    // (the per-instruction arrays of a large object are filled on all threads)
    let (cfi, visited) = if parallel {
        (
            (0..n)
                .into_par_iter()
                .map(|_| AtomicU32::new(NO_STATE))
                .collect(),
            (0..n).into_par_iter().map(|_| AtomicU8::new(0)).collect(),
        )
    } else {
        (
            atomics(n, NO_STATE),
            (0..n).map(|_| AtomicU8::new(0)).collect(),
        )
    };
    let sh = Shared {
        cfi,
        visited,
        alt_cfi: p
            .cfi_arrays
            .iter()
            .map(|&len| atomics(len as usize, NO_STATE))
            .collect(),
        alt_setter: p
            .cfi_arrays
            .iter()
            .map(|&len| atomics(len as usize, u32::MAX))
            .collect(),
        alt_owner: alt_owners(p),
    };
    let mut states = StateTable::default();
    let mut hinted: Vec<_> = p.hint_cfi.iter().collect();
    hinted.sort_by_key(|(id, _)| **id);
    for (id, h) in hinted {
        sh.set_cfi(*id, states.intern(h));
    }
    let mut conflicts = Vec::new();
    let mut warnings = 0;

    let items = function_items(p, parallel);
    let (mut results, deferred) = if parallel {
        walk_parallel(p, f, &sh, &mut states, &items)
    } else {
        (Vec::new(), (0..items.len()).map(|_| true).collect())
    };
    // Everything in objtool's order: results of the parallel walks, and the walks that had
    // to wait, run now one at a time.
    results.sort_unstable_by_key(|(k, _)| *k);
    let mut results = results.into_iter().peekable();
    for (k, item) in items.iter().enumerate() {
        match *item {
            Item::MissingSize(s) => {
                f.warn(format!(
                    "{}() is missing an ELF size annotation",
                    p.syms.get(s).name
                ));
                warnings += 1;
            }
            Item::Root(s, insn) if deferred[k] => {
                let mut w = Walker {
                    p,
                    f: &mut *f,
                    sh: &sh,
                    tables: Tables::Serial(&mut states),
                    conflicts: &mut conflicts,
                    warnings: 0,
                    spec: None,
                };
                w.validate_root(s, insn);
                warnings += w.warnings;
            }
            Item::Root(..) => {
                if results.peek().is_some_and(|(j, _)| *j == k) {
                    let (_, r) = results.next().unwrap_or_default();
                    f.absorb(r.lines, &r.warned);
                    conflicts.extend(r.conflicts);
                    warnings += r.warnings;
                }
            }
        }
    }
    let mut w = Walker {
        p,
        f,
        sh: &sh,
        tables: Tables::Serial(&mut states),
        conflicts: &mut conflicts,
        warnings,
        spec: None,
    };
    w.validate_hints();
    if w.warnings == 0 {
        w.validate_reachable();
    }
    let warnings = w.warnings;
    let plain = |v: Vec<AtomicU32>| v.into_iter().map(AtomicU32::into_inner).collect::<Vec<_>>();
    Walk {
        states,
        cfi: plain(sh.cfi),
        visited: sh.visited.into_iter().map(AtomicU8::into_inner).collect(),
        alt_cfi: sh.alt_cfi.into_iter().map(plain).collect(),
        alt_setter: sh
            .alt_setter
            .into_iter()
            .map(|v| plain(v).into_iter().map(InsnId).collect())
            .collect(),
        conflicts,
        warnings,
    }
}

/// objtool's `validate_functions()` loop as a list: every function symbol of every
/// executable section, in symbol-list order.
fn function_items(p: &Program<'_, '_>, parallel: bool) -> Vec<Item> {
    // the symbol types side by side (the lists are in address order: reading each symbol
    // for its type is a cache miss per symbol)
    let types: Vec<u8> = p.syms.syms.iter().map(|s| s.ty).collect();
    let item = |&s: &SymIdx| {
        if types[s as usize] != elf::STT_FUNC {
            return None;
        }
        let sym = p.syms.get(s);
        if sym.len == 0 {
            return Some(Item::MissingSize(s));
        }
        if sym.pfunc != s || sym.alias != s {
            return None;
        }
        p.insns
            .at(sym.sec, sym.offset)
            .map(|insn| Item::Root(s, insn))
    };
    let mut items = Vec::new();
    for sec in 0..p.sec_exec.len() {
        if !p.sec_exec[sec] {
            continue;
        }
        let list = &p.syms.lists[sec];
        if parallel {
            items.par_extend(list.par_iter().with_min_len(1024).filter_map(item));
        } else {
            items.extend(list.iter().filter_map(item));
        }
    }
    items
}

/// The function (objtool's `pfunc`) an instruction belongs to, or `NO_SYM`.
fn owner(p: &Program<'_, '_>, i: InsnId) -> SymIdx {
    match p.insn_func(i) {
        NO_SYM => NO_SYM,
        f => p.syms.get(f).pfunc,
    }
}

/// Per merged alternative array: the function every instruction of its groups belongs to,
/// or `NO_SYM` when they do not all belong to one.
fn alt_owners(p: &Program<'_, '_>) -> Vec<SymIdx> {
    const UNSET: SymIdx = NO_SYM - 1;
    let mut owners = vec![UNSET; p.cfi_arrays.len()];
    for grp in &p.groups {
        let slot = &mut owners[grp.cfi_array as usize];
        for i in p.group_insns(grp) {
            let o = owner(p, i);
            *slot = if *slot == UNSET || *slot == o {
                o
            } else {
                NO_SYM
            };
        }
    }
    owners
        .into_iter()
        .map(|o| if o == UNSET { NO_SYM } else { o })
        .collect()
}

/// Walks the function roots in parallel chunks. Returns the results of the roots that
/// reported something and, per item, whether it must still run (one at a time).
fn walk_parallel(
    p: &Program<'_, '_>,
    f: &Findings,
    sh: &Shared,
    states: &mut StateTable,
    items: &[Item],
) -> (Vec<(usize, RootResult)>, Vec<bool>) {
    let mut deferred = vec![false; items.len()];
    // A function with two roots, or a root outside every function (whose walk may go
    // anywhere, so everything after it waits too), is walked one at a time.
    let mut roots_of = rustc_hash::FxHashMap::<SymIdx, u32>::default();
    for item in items {
        if let Item::Root(_, insn) = *item {
            *roots_of.entry(p.insn_func(insn)).or_default() += 1;
        }
    }
    let mut serial_from = items.len();
    for (k, item) in items.iter().enumerate() {
        if let Item::Root(_, insn) = *item {
            let func = p.insn_func(insn);
            if func == NO_SYM {
                serial_from = k;
                break;
            }
            deferred[k] = roots_of[&func] > 1;
        }
    }
    for d in &mut deferred[serial_from..] {
        *d = true;
    }
    // contiguous chunks of about equal size in bytes of code
    let weight = |item: &Item| match *item {
        Item::Root(s, _) => p.syms.get(s).len.max(1),
        Item::MissingSize(_) => 0,
    };
    let total: u64 = items[..serial_from].iter().map(weight).sum();
    let nchunks = (rayon::current_num_threads() * CHUNKS_PER_THREAD).min(MAX_CHUNKS);
    let per_chunk = total.div_ceil(nchunks as u64).max(1);
    let mut chunks = Vec::new();
    let (mut start, mut acc) = (0, 0);
    for (k, item) in items[..serial_from].iter().enumerate() {
        acc += weight(item);
        if acc >= per_chunk && chunks.len() + 1 < MAX_CHUNKS {
            chunks.push(start..k + 1);
            (start, acc) = (k + 1, 0);
        }
    }
    if start < serial_from {
        chunks.push(start..serial_from);
    }
    let main: &StateTable = states;
    let outs: Vec<ChunkOut> = chunks
        .into_par_iter()
        .enumerate()
        .map(|(c, range)| {
            let mut out = ChunkOut {
                table: StateTable::default(),
                results: Vec::new(),
                deferred: Vec::new(),
            };
            let mut spec = Spec::default();
            for k in range {
                let Item::Root(s, insn) = items[k] else {
                    continue;
                };
                if deferred[k] {
                    continue;
                }
                let mut local = Local::new(f);
                let mut r = RootResult::default();
                spec.insns.clear();
                spec.slots.clear();
                spec.escaped = false;
                let mut w = Walker {
                    p,
                    f: &mut local,
                    sh,
                    tables: Tables::Chunk {
                        main,
                        local: &mut out.table,
                        chunk: c as u32,
                    },
                    conflicts: &mut r.conflicts,
                    warnings: 0,
                    spec: Some(&mut spec),
                };
                w.validate_root(s, insn);
                r.warnings = w.warnings;
                if spec.escaped {
                    undo(p, sh, &spec);
                    out.deferred.push(k);
                    continue;
                }
                r.lines = local.lines;
                r.warned = local.warned;
                if !r.lines.is_empty() || !r.conflicts.is_empty() || r.warnings != 0 {
                    out.results.push((k, r));
                }
            }
            out
        })
        .collect();
    // one table: every chunk's states renumbered into the file's, in chunk order
    let remap: Vec<Vec<StateId>> = outs
        .iter()
        .map(|o| o.table.states.iter().map(|s| states.intern(s)).collect())
        .collect();
    let renumber = |id: StateId| {
        if id != NO_STATE && id & CHUNK_FLAG != 0 {
            remap[((id & !CHUNK_FLAG) >> CHUNK_SHIFT) as usize][(id & CHUNK_LOCAL_MASK) as usize]
        } else {
            id
        }
    };
    sh.cfi.par_iter().with_min_len(1 << 16).for_each(|a| {
        a.store(renumber(a.load(Relaxed)), Relaxed);
    });
    for a in sh.alt_cfi.iter().flatten() {
        a.store(renumber(a.load(Relaxed)), Relaxed);
    }
    let mut results = Vec::new();
    for o in outs {
        for k in o.deferred {
            deferred[k] = true;
        }
        for (k, mut r) in o.results {
            for c in &mut r.conflicts {
                c.first_state = renumber(c.first_state);
                c.second_state = renumber(c.second_state);
            }
            results.push((k, r));
        }
    }
    (results, deferred)
}

/// Undoes what an escaped parallel walk wrote.
fn undo(p: &Program<'_, '_>, sh: &Shared, spec: &Spec) {
    for &i in &spec.insns {
        sh.visited[i.idx()].store(0, Relaxed);
        if !p.attr(i).hint() {
            sh.set_cfi(i, NO_STATE);
        }
    }
    for &(a, off) in &spec.slots {
        sh.alt_cfi[a as usize][off as usize].store(NO_STATE, Relaxed);
        sh.alt_setter[a as usize][off as usize].store(u32::MAX, Relaxed);
    }
}

impl<R: Report> Walker<'_, '_, '_, R> {
    /// One root of objtool's `validate_functions()`.
    fn validate_root(&mut self, s: SymIdx, insn: InsnId) {
        let p = self.p;
        if p.attr(insn).ignore() || self.sh.visited(insn) != 0 {
            return;
        }
        let sym = p.syms.get(s);
        let state = WalkState::new(CfiState::func_entry(), p.opts.uaccess && sym.uaccess_safe);
        if !self.walk(p.insn_func(insn), insn, state) {
            self.f.backtrace(&p.insn_loc(insn), "<=== (sym)");
            self.warnings += 1;
        }
    }

    /// Gives up a walk running beside others (it will run again, alone).
    fn escape(&mut self) -> Outcome {
        if let Some(spec) = self.spec.as_deref_mut() {
            spec.escaped = true;
        }
        Outcome::Fail
    }

    fn validate_hints(&mut self) {
        let p = self.p;
        if !p.has_hints {
            return;
        }
        for k in 0..p.nreal {
            let insn = InsnId(k as u32);
            let a = p.attr(insn);
            if a.hint() && self.sh.visited(insn) == 0 && !a.ignore() {
                let state = WalkState::new(CfiState::blank(), false);
                if !self.walk(p.insn_func(insn), insn, state) {
                    self.f.backtrace(&p.insn_loc(insn), "<=== (hint)");
                    self.warnings += 1;
                }
            }
        }
    }

    /// objtool: `validate_branch()` from `start`; false when the walk failed.
    fn walk(&mut self, func: SymIdx, start: InsnId, state: WalkState) -> bool {
        let mut stack = Vec::with_capacity(64);
        stack.push(Frame::Run {
            insn: start,
            state: Box::new(state),
            prev: None,
        });
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
                    if ifunc == NO_SYM && self.spec.is_some() {
                        return self.escape();
                    }
                    let a = p.attr(insn);
                    if func != NO_SYM && a.ignore() {
                        self.warn_insn(insn, "BUG: why am I validating an ignored function?");
                        return Outcome::Fail;
                    }
                    let bit = VISITED_BRANCH << u8::from(state.uaccess);
                    let visited = self.sh.visited(insn);
                    if visited & VISITED_BRANCH_MASK != 0 {
                        if !a.hint() {
                            let recorded = self.sh.cfi(insn);
                            if recorded == NO_STATE {
                                self.f.warn("CFI missing".to_owned());
                                return Outcome::Fail;
                            }
                            if let Some(m) = cfi_match(self.tables.state(recorded), &state.cfi) {
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
                            if self.spec.is_some() {
                                return self.escape(); // it reads back what others may write
                            }
                            match self.restore_state(func, insn, prev) {
                                Restore::Found(id) => self.sh.set_cfi(insn, id),
                                Restore::Defer => return Outcome::Ok,
                                Restore::Fail => return Outcome::Fail,
                            }
                        }
                        let id = self.sh.cfi(insn);
                        if id != NO_STATE {
                            state.cfi = self.tables.state(id).clone();
                            state.known = id;
                        }
                    } else {
                        if state.known == NO_STATE {
                            match self.tables.intern(&state.cfi) {
                                Some(id) => state.known = id,
                                None => return self.escape(),
                            }
                        }
                        self.sh.set_cfi(insn, state.known);
                    }
                    self.sh.visited[insn.idx()].store(visited | bit, Relaxed);
                    if visited == 0 {
                        if let Some(spec) = self.spec.as_deref_mut() {
                            spec.insns.push(insn);
                        }
                    }
                    if !self.propagate_alt_cfi(func, insn) {
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
                        let op = &op.get();
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
        if self.sh.visited(save) == 0 {
            if prev.is_none() {
                return Restore::Defer;
            }
            self.warn_insn(
                insn,
                "objtool isn't smart enough to handle this CFI save/restore combo",
            );
            return Restore::Fail;
        }
        Restore::Found(self.sh.cfi(save))
    }

    /// objtool: `propagate_alt_cfi()`.
    /// (A walk running beside others gives up on an array other functions share.)
    fn propagate_alt_cfi(&mut self, func: SymIdx, insn: InsnId) -> bool {
        let p = self.p;
        let Some(g) = p.alt_group(insn) else {
            return true;
        };
        let cfi = self.sh.cfi(insn);
        if cfi == NO_STATE {
            self.f.warn("CFI missing".to_owned());
            return false;
        }
        let grp = &p.groups[g as usize];
        let array = grp.cfi_array as usize;
        if self.spec.is_some() && self.sh.alt_owner[array] != func {
            self.escape();
            return false;
        }
        let off = p.insn(insn).offset.wrapping_sub(p.insn(grp.first).offset) as usize;
        let Some(slot) = self.sh.alt_cfi[array].get(off) else {
            return true; // past the original's length: no address to describe
        };
        let filled = slot.load(Relaxed);
        if filled == NO_STATE {
            slot.store(cfi, Relaxed);
            self.sh.alt_setter[array][off].store(insn.0, Relaxed);
            if let Some(spec) = self.spec.as_deref_mut() {
                spec.slots.push((array as u32, off as u32));
            }
        } else if filled != cfi {
            let conflict = AltConflict {
                array: grp.cfi_array,
                offset: off as u32,
                first: InsnId(self.sh.alt_setter[array][off].load(Relaxed)),
                first_state: filled,
                second: insn,
                second_state: cfi,
            };
            self.conflicts.push(conflict);
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
                let text = crate::alt::explain_conflict(p, &self.tables, &conflict);
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
            self.p.syms.get(d).name.to_string()
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
        // the instructions no walk visited and no rule ignores, in order (the rules read
        // only what the walks left, so they are asked on all threads)
        let sh = self.sh;
        let candidate = |k: usize| {
            sh.visited[k].load(Relaxed) == 0 && !ignore_unreachable(p, sh, InsnId(k as u32))
        };
        let candidates: Vec<u32> = if p.parallel() {
            (0..p.nreal)
                .into_par_iter()
                .with_min_len(1 << 14)
                .filter(|&k| candidate(k))
                .map(|k| k as u32)
                .collect()
        } else {
            (0..p.nreal)
                .filter(|&k| candidate(k))
                .map(|k| k as u32)
                .collect()
        };
        for k in candidates {
            let insn = InsnId(k);
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
                        self.warnings += 1;
                        continue;
                    }
                }
            }
            self.warn_insn(insn, "unreachable instruction");
            self.warnings += 1;
            if p.opts.rules_6_1 {
                return; // objtool 6.1 reports only the first one
            }
        }
    }
}

fn is_kasan_or_ubsan(p: &Program<'_, '_>, insn: InsnId) -> bool {
    if p.attr(insn).kind != InsnKind::Call {
        return false;
    }
    let d = p.call_dest(insn);
    d != NO_SYM && {
        let n = &p.syms.get(d).name;
        n == "__asan_handle_no_return" || n == "__ubsan_handle_builtin_unreachable"
    }
}

/// objtool: `ignore_unreachable_insn()` (it reads only what the walks left).
fn ignore_unreachable(p: &Program<'_, '_>, sh: &Shared, insn: InsnId) -> bool {
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
            if sh.visited(c) != 0 {
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
        if is_kasan_or_ubsan(p, cur) {
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
