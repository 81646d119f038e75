//! Walking functions side by side with objtool's result.
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
//!
//! The sequential walk sees this layer only through the hooks at the end of this file
//! ([`Walker::escape`] and the questions before it).

use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use super::super::intern::{StateLookup, StateTable, state_hash};
use super::super::state::CfiState;
use super::{Item, Outcome, Shared, Walker, owner};
use crate::alt::merge::AltConflict;
use crate::cfg::Program;
use crate::ids::{AltGroupId, InsnId, StateId, SymId};
use crate::report::{Finding, Findings, Local, Report};

/// Ids of states interned by a parallel chunk carry this bit, the chunk number and the
/// index in the chunk's table; they are renumbered before the walk returns.
const CHUNK_FLAG: u32 = 1 << 31;
const CHUNK_SHIFT: u32 = 20;
const CHUNK_LOCAL_MASK: u32 = (1 << CHUNK_SHIFT) - 1;
/// At most this many chunks (the chunk number fits below the flag).
const MAX_CHUNKS: usize = 1024;
/// Chunks per thread: enough for work stealing to even out large functions.
const CHUNKS_PER_THREAD: usize = 8;

/// The state tables one walk interns into.
pub(super) enum Tables<'t> {
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
    pub(super) fn intern(&mut self, s: &CfiState) -> Option<StateId> {
        match self {
            Tables::Serial(t) => Some(t.intern(s)),
            Tables::Chunk { main, local, chunk } => {
                let hash = state_hash(s);
                if let Some(id) = main.find_hashed(hash, s) {
                    return Some(id);
                }
                let index = local.intern_hashed(hash, s).index() as u32;
                (index < CHUNK_LOCAL_MASK)
                    .then(|| StateId::from_raw(CHUNK_FLAG | (*chunk << CHUNK_SHIFT) | index))
                    .flatten()
            }
        }
    }
}

impl StateLookup for Tables<'_> {
    fn state(&self, id: StateId) -> &CfiState {
        match self {
            Tables::Serial(t) => t.get(id),
            Tables::Chunk { main, local, .. } => {
                let raw = StateId::to_raw(Some(id));
                if raw & CHUNK_FLAG != 0 {
                    &local.states()[(raw & CHUNK_LOCAL_MASK) as usize]
                } else {
                    main.get(id)
                }
            }
        }
    }
}

/// A walk running beside others: it may touch only instructions of its own function, and
/// it records what it wrote so that it can be undone.
#[derive(Default)]
pub(super) struct Spec {
    insns: Vec<InsnId>,
    slots: Vec<(AltGroupId, u32)>,
    escaped: bool,
}

/// What a root's walk run beside others produced.
#[derive(Default)]
pub(super) struct RootResult {
    pub(super) findings: Vec<Finding>,
    pub(super) warned: Vec<SymId>,
    pub(super) conflicts: Vec<AltConflict>,
    pub(super) warnings: usize,
}

/// What a chunk of roots walked beside others produced.
struct ChunkOut {
    table: StateTable,
    /// Results of the roots that reported something, by item index.
    results: Vec<(usize, RootResult)>,
    /// Roots that must run again one at a time, by item index.
    deferred: Vec<usize>,
}

/// Per alternative group: the function every instruction of its streams belongs to, or
/// none when they do not all belong to one (or belong to none).
pub(super) fn alt_owners(p: &Program<'_, '_>) -> Vec<Option<SymId>> {
    // (the outer none: no instruction seen yet)
    let mut owners: Vec<Option<Option<SymId>>> = vec![None; p.alt_groups.len()];
    for stream in p.streams.values() {
        let slot = &mut owners[stream.group.index()];
        for i in p.group_insns(stream) {
            let o = owner(p, i);
            *slot = match *slot {
                Some(s) if s != o => Some(None),
                _ => Some(o),
            };
        }
    }
    owners.into_iter().map(Option::flatten).collect()
}

/// Walks the function roots in parallel chunks. Returns the results of the roots that
/// reported something and, per item, whether it must still run (one at a time).
pub(super) fn walk_parallel(
    p: &Program<'_, '_>,
    f: &Findings,
    sh: &Shared,
    states: &mut StateTable,
    items: &[Item],
) -> (Vec<(usize, RootResult)>, Vec<bool>) {
    let mut deferred = vec![false; items.len()];
    // A function with two roots, or a root outside every function (whose walk may go
    // anywhere, so everything after it waits too), is walked one at a time. (Each root's
    // function is looked up once, on all threads: two cache misses a root.)
    let funcs: Vec<Option<Option<SymId>>> = items
        .par_iter()
        .with_min_len(1024)
        .map(|item| match *item {
            Item::Root(_, insn) => Some(p.insn_func(insn)),
            Item::MissingSize(_) => None,
        })
        .collect();
    let mut roots_of = vec![0u32; p.syms.syms.len()];
    for func in funcs.iter().flatten().flatten() {
        roots_of[func.index()] += 1;
    }
    let mut serial_from = items.len();
    for (k, func) in funcs.iter().enumerate() {
        match *func {
            Some(None) => {
                serial_from = k;
                break;
            }
            Some(Some(func)) => deferred[k] = roots_of[func.index()] > 1,
            None => {}
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
                r.findings = local.findings;
                r.warned = local.warned;
                if !r.findings.is_empty() || !r.conflicts.is_empty() || r.warnings != 0 {
                    out.results.push((k, r));
                }
            }
            out
        })
        .collect();
    // one table: every chunk's states renumbered into the file's, in chunk order
    // (reserved at once: the table grows by the chunks' sizes at most, and doubling it
    // copies every state again)
    states.reserve(outs.iter().map(|o| o.table.len()).sum());
    let remap: Vec<Vec<StateId>> = outs.iter().map(|o| states.intern_all(&o.table)).collect();
    let renumber_raw = |raw: u32| {
        if raw & CHUNK_FLAG != 0 {
            let chunk = ((raw & !CHUNK_FLAG) >> CHUNK_SHIFT) as usize;
            StateId::to_raw(Some(remap[chunk][(raw & CHUNK_LOCAL_MASK) as usize]))
        } else {
            raw
        }
    };
    let renumber =
        |id: StateId| StateId::from_raw(renumber_raw(StateId::to_raw(Some(id)))).unwrap_or(id);
    sh.cfi.par_iter().with_min_len(1 << 16).for_each(|a| {
        a.store(renumber_raw(a.load(Relaxed)), Relaxed);
    });
    for a in sh.alt_cfi.iter().flatten() {
        a.store(renumber_raw(a.load(Relaxed)), Relaxed);
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
            sh.set_cfi(i, None);
        }
    }
    for &(g, off) in &spec.slots {
        sh.alt_cfi[g.index()][off as usize].store(0, Relaxed);
        sh.alt_setter[g.index()][off as usize].store(u32::MAX, Relaxed);
    }
}

/// The hooks the sequential walk calls; for a walk run alone they answer "no" and do
/// nothing.
impl<R: Report> Walker<'_, '_, '_, R> {
    /// Gives up a walk running beside others (it will run again, alone).
    pub(super) fn escape(&mut self) -> Outcome {
        if let Some(spec) = self.spec.as_deref_mut() {
            spec.escaped = true;
        }
        Outcome::Fail
    }

    /// Whether reaching code outside every function must give up this walk.
    pub(super) fn leaves_function(&self) -> bool {
        self.spec.is_some()
    }

    /// Whether a CFI restore hint (which reads back another instruction's record) must
    /// give up this walk.
    pub(super) fn reads_back(&self) -> bool {
        self.spec.is_some()
    }

    /// Whether the merged array of `group` is shared with other functions than `func`, so
    /// that this walk must give up.
    pub(super) fn shares_array(&self, group: AltGroupId, func: Option<SymId>) -> bool {
        self.spec.is_some() && self.sh.alt_owner[group.index()] != func
    }

    /// Notes an instruction this walk visited first (to undo it on escape).
    pub(super) fn touched(&mut self, insn: InsnId) {
        if let Some(spec) = self.spec.as_deref_mut() {
            spec.insns.push(insn);
        }
    }

    /// Notes a merged-array slot this walk filled (to undo it on escape).
    pub(super) fn filled(&mut self, group: AltGroupId, off: usize) {
        if let Some(spec) = self.spec.as_deref_mut() {
            spec.slots.push((group, off as u32));
        }
    }
}
