//! Switch tables of indirect jumps and the alternatives they add.
//!
//! objtool: `add_jump_table_alts()`, `find_jump_table()`, `find_switch_table()`,
//! `add_jump_table()`.

use object::elf;

use super::builder::Builder;
use super::program::{Alt, AnalysisError, Step};
use super::relocs::Reloc;
use crate::decode::{InsnId, InsnKind};
use crate::elf::SecId;
use crate::ids::SymId;
use crate::report::{FindingKind, Findings};

impl Builder<'_, '_> {
    /// objtool: `arch_find_switch_table()`.
    pub(super) fn find_switch_table(&mut self, id: InsnId) -> Option<(SecId, u32)> {
        let text = self.reloc_of(id)?;
        let s = self.syms.get(text.sym);
        if s.ty != elf::STT_SECTION || !self.sec_rodata[s.sec.0 as usize] {
            return None;
        }
        let table_sec = s.sec;
        let mut table_off = text.addend as u64;
        if text.ty == elf::R_X86_64_PC32 {
            table_off = table_off.wrapping_add(4);
        }
        if self.syms.containing(table_sec, table_off).is_some()
            && self.sec_names[table_sec.0 as usize] != ".data.rel.ro.c_jump_table"
        {
            return None;
        }
        let t = self.relocs.table(table_sec)?;
        let k = t.at(table_off)?;
        if text.ty == elf::R_X86_64_PC32 {
            self.ignore_unreachables = true;
        }
        Some((table_sec, k))
    }

    pub(super) fn table_reloc(&self, t: (SecId, u32)) -> Reloc {
        self.relocs
            .table(t.0)
            .map(|tt| tt.get(t.1 as usize))
            .unwrap_or(Reloc {
                offset: 0,
                sym: SymId(0),
                ty: 0,
                addend: 0,
            })
    }

    /// objtool: `find_jump_table()`.
    pub(super) fn find_jump_table(&mut self, func: SymId, jump: InsnId) -> Option<(SecId, u32)> {
        let mut cur = Some(jump);
        let mut steps = 0usize;
        while let Some(id) = cur {
            let Some(f) = self.insn_func(id) else {
                break;
            };
            if self.syms.get(f).pfunc != Some(func) {
                break;
            }
            steps += 1;
            if steps > self.insns.insns.len() {
                break;
            }
            let a = &self.attrs[id.idx()];
            if id != jump && a.kind == InsnKind::JumpDynamic {
                break;
            }
            if a.kind == InsnKind::JumpUnconditional {
                if let Some(d) = a.jump_dest.get().map(InsnId) {
                    let doff = self.insn(d).offset;
                    if doff <= self.insn(id).offset || doff > self.insn(jump).offset {
                        break;
                    }
                }
            }
            let next = match self.first_jump_src.get(&id).copied() {
                Some(src) => Some(src),
                None => self
                    .prev_same_sec(id)
                    .filter(|&p| self.insn_func(p) == self.insn_func(id)),
            };
            if let Some(table) = self.find_switch_table(id) {
                let r = self.table_reloc(table);
                let (sec, off) = (self.syms.get(r.sym).sec, r.addend as u64);
                if let Some(d) = self.insns.at(sec, off) {
                    let df = self.insn_func(d);
                    if df.is_some_and(|df| self.syms.get(df).pfunc == Some(func)) {
                        return Some(table);
                    }
                }
            }
            cur = next;
        }
        None
    }

    pub(super) fn add_jump_table(
        &mut self,
        jump: InsnId,
        next_table: Option<(SecId, u32)>,
        f: &mut Findings,
    ) -> Step {
        // (a jump table's jump is in a function: the caller found the table from it)
        let Some(pfunc) = self.insn_func(jump).and_then(|f| self.syms.get(f).pfunc) else {
            return Ok(());
        };
        let (psec, poff, pend) = {
            let p = self.syms.get(pfunc);
            (p.sec, p.offset, p.end())
        };
        let Some(table) = self.jump_table(jump) else {
            return Ok(());
        };
        let Some(t) = self.relocs.table(table.0) else {
            return Ok(());
        };
        let mut prev_offset = 0u64;
        let mut targets = Vec::new();
        for k in table.1..t.len() as u32 {
            let r = t.get(k as usize);
            if k != table.1 && Some((table.0, k)) == next_table {
                break;
            }
            if prev_offset != 0 && r.offset != prev_offset + 8 {
                break;
            }
            let rs = self.syms.get(r.sym);
            if rs.sec == psec && r.addend as u64 == poff {
                break;
            }
            if rs.sec == psec && r.addend as u64 == pend {
                prev_offset = r.offset;
                continue;
            }
            let Some(d) = self.insns.at(rs.sec, r.addend as u64) else {
                break;
            };
            let Some(df) = self.insn_func(d) else {
                break;
            };
            if self.syms.get(df).pfunc != Some(pfunc) {
                break;
            }
            targets.push(Alt {
                target: d,
                skip_orig: false,
            });
            prev_offset = r.offset;
        }
        if prev_offset == 0 {
            self.warn_insn(f, jump, FindingKind::NoSwitchJumpTable);
            return Err(AnalysisError::Build);
        }
        if !targets.is_empty() {
            self.attrs[jump.idx()].set_has_alts(true);
            self.alts.entry(jump).or_default().extend(targets);
        }
        Ok(())
    }

    /// objtool: `add_jump_table_alts()` (with `mark_func_jump_tables()`).
    ///
    /// objtool walks every function in symbol-list order, leaving on each forward jump's
    /// destination a back-pointer to the jump (the first one stays) and, at each dynamic
    /// jump, backtracking through those back-pointers to find its switch table. Only a
    /// function whose walk can meet a dynamic jump searches, and a search reads only
    /// back-pointers inside its own family ([`JumpTableScope`]). So only those functions
    /// are walked here in full, in order; every other function replays, at its turn, the
    /// back-pointers it leaves inside such families, collected beforehand on all threads.
    /// Every back-pointer a search can read is written in objtool's order.
    pub(super) fn add_jump_table_alts(&mut self, f: &mut Findings) -> Step {
        if !self.has_rodata {
            return Ok(());
        }
        // the functions in walk order
        let order: Vec<SymId> = self
            .syms
            .lists
            .iter()
            .flatten()
            .copied()
            .filter(|&s| self.syms.is_func(s))
            .collect();
        let scope = JumpTableScope::new(self);
        let replay = |p: &Self, func: SymId| -> Vec<(InsnId, InsnId)> {
            if scope.search[func.index()] || !scope.writes_into_searched(p, func) {
                return Vec::new();
            }
            let run = p.insns.section_range(p.syms.get(func).sec);
            p.func_insns_iter(func)
                .filter_map(|id| {
                    let d = p.forward_dest(&run, id)?;
                    scope.readable(p, d).then_some((d, id))
                })
                .collect()
        };
        let replays = self.map_all(&order, 1, |&func| replay(self, func));
        let mut dynamic = Vec::new();
        for (&func, writes) in order.iter().zip(replays) {
            if !scope.search[func.index()] {
                // (no dynamic jump, so no table for pass 2 either)
                for (d, src) in writes {
                    self.first_jump_src.entry(d).or_insert(src);
                }
                continue;
            }
            // pass 1: back-pointers and table discovery (and the dynamic branches, the
            // only instructions that can have a table)
            dynamic.clear();
            let fs = self.syms.get(func);
            let mut cur = self.insns.at(fs.sec, fs.offset);
            let run = self.insns.section_range(fs.sec);
            let mut n = 0;
            while let Some(id) = cur {
                n += 1;
                if n > self.insns.insns.len() + 1 {
                    break; // a cold-part cycle in hostile input
                }
                cur = self.next_same_func(id);
                if let Some(d) = self.forward_dest(&run, id) {
                    self.first_jump_src.entry(d).or_insert(id);
                }
                match self.attrs[id.idx()].kind {
                    InsnKind::JumpDynamic => {}
                    InsnKind::CallDynamic => {
                        dynamic.push(id);
                        continue;
                    }
                    _ => continue,
                }
                dynamic.push(id);
                if let Some(t) = self.find_jump_table(func, id) {
                    self.jump_tables.insert(id, t);
                }
            }
            // pass 2: table contents
            let jumps: Vec<InsnId> = dynamic
                .iter()
                .copied()
                .filter(|&i| self.jump_table(i).is_some())
                .collect();
            for (n, &j) in jumps.iter().enumerate() {
                let next = jumps.get(n + 1).and_then(|&nj| self.jump_table(nj));
                self.add_jump_table(j, next, f)?;
            }
        }
        Ok(())
    }

    /// The destination of `id` if it is a forward jump: the back-pointer the jump-table
    /// walk of a function in the section whose instructions are `run` leaves.
    pub(super) fn forward_dest(&self, run: &std::ops::Range<u32>, id: InsnId) -> Option<InsnId> {
        let d = self.attrs[id.idx()].jump_dest.get().map(InsnId)?;
        // a later offset: within one section, a later id (no lookup of `d`)
        let same_sec = run.contains(&id.0) && run.contains(&d.0);
        let later = if self.is_real(id) && self.is_real(d) && same_sec {
            d.0 > id.0
        } else {
            self.insn(d).offset > self.insn(id).offset
        };
        later.then_some(d)
    }

    /// Whether the instructions a function's walk visits (`func_for_each_insn`: from its
    /// first instruction through its owner's run, then each `.cold` part's) may include
    /// one that `insn` says yes to, or one owned by a symbol `owner` says yes to. Errs
    /// on the side of yes: an owner stands for all its instructions, and a long chain of
    /// parts (hostile input) is a yes.
    pub(super) fn func_walk_may_meet(
        &self,
        func: SymId,
        insn: impl Fn(InsnId) -> bool,
        owner: impl Fn(SymId) -> bool,
    ) -> bool {
        let f = self.syms.get(func);
        let mut cur = self.insns.at(f.sec, f.offset);
        for _ in 0..JUMP_TABLE_CHAIN_LIMIT {
            let Some(id) = cur else { return false };
            if insn(id) {
                return true;
            }
            let Some(o) = self.insn_func(id) else {
                return false;
            };
            if owner(o) {
                return true;
            }
            let Some(c) = self.syms.get(o).cfunc else {
                return false;
            };
            if c == o {
                return false;
            }
            let cs = self.syms.get(c);
            cur = self.insns.at(cs.sec, cs.offset);
        }
        true
    }
}

/// Longest chain of `.cold` parts [`Program::func_walk_may_meet`] follows before it
/// answers yes.
const JUMP_TABLE_CHAIN_LIMIT: usize = 32;

/// Which functions' jump-table walks matter (see [`Program::add_jump_table_alts`]).
pub(super) struct JumpTableScope {
    /// Per symbol: a function whose walk may meet a dynamic jump, and so searches for
    /// switch tables.
    search: Vec<bool>,
    /// Per symbol: its instructions may be visited by a search (its parent function
    /// searches: a search stays among instructions whose function's parent is the
    /// searching function).
    readable: Vec<bool>,
    /// Per symbol: owns a jump whose destination is readable.
    writes: Vec<bool>,
}

impl JumpTableScope {
    fn new(p: &Builder<'_, '_>) -> Self {
        let n = p.syms.syms.len();
        let func_of = |id: InsnId| p.insn_func(id);
        // One look at each instruction that can matter: a dynamic jump is an indirect jump
        // as decoded or a jump to a retpoline thunk (a branch), and only branches have a
        // jump destination. Kept: the dynamic jumps, and the jumps into another symbol's
        // instructions.
        let is_dynamic = |id: InsnId| p.attrs[id.idx()].kind == InsnKind::JumpDynamic;
        let jumps_across = |id: InsnId| {
            let a = &p.attrs[id.idx()];
            a.jump_dest
                .get()
                .is_some_and(|d| p.attrs[d as usize].sym != a.sym)
        };
        let look = |&id: &InsnId| (is_dynamic(id) || jumps_across(id)).then_some(id);
        let ids = [&p.insns.indirect_jumps[..], &p.insns.branches[..]];
        let seen: Vec<InsnId> = if p.parallel() {
            use rayon::prelude::*;
            ids.par_iter()
                .flat_map(|list| list.par_iter().filter_map(look))
                .collect()
        } else {
            ids.iter()
                .flat_map(|list| list.iter().filter_map(look))
                .collect()
        };
        let mut has_dynamic = vec![false; n];
        for &id in &seen {
            if let Some(o) = func_of(id).filter(|_| is_dynamic(id)) {
                has_dynamic[o.index()] = true;
            }
        }
        let searches = |s: SymId| {
            p.syms.is_func(s) && p.func_walk_may_meet(s, is_dynamic, |o| has_dynamic[o.index()])
        };
        let search: Vec<bool> = if p.parallel() {
            use rayon::prelude::*;
            (0..n as u32)
                .into_par_iter()
                .map(|s| searches(SymId(s)))
                .collect()
        } else {
            (0..n as u32).map(|s| searches(SymId(s))).collect()
        };
        // (with the function test folded in)
        let readable: Vec<bool> = p
            .syms
            .syms
            .iter()
            .enumerate()
            .map(|(i, s)| {
                p.syms.is_func(SymId(i as u32)) && s.pfunc.is_some_and(|f| search[f.index()])
            })
            .collect();
        let mut scope = JumpTableScope {
            search,
            readable,
            writes: Vec::new(),
        };
        // a jump into its own symbol's instructions writes where they are readable
        let mut writes = scope.readable.clone();
        for &id in &seen {
            let Some(d) = p.attrs[id.idx()].jump_dest.get() else {
                continue;
            };
            if let Some(o) = func_of(id).filter(|_| scope.readable(p, InsnId(d))) {
                writes[o.index()] = true;
            }
        }
        scope.writes = writes;
        scope
    }

    /// Whether a search may visit `id`.
    fn readable(&self, p: &Builder<'_, '_>, id: InsnId) -> bool {
        p.attrs[id.idx()]
            .sym
            .get()
            .is_some_and(|o| self.readable[o.index()])
    }

    /// Whether the walk of `func` may leave a back-pointer a search can read.
    fn writes_into_searched(&self, p: &Builder<'_, '_>, func: SymId) -> bool {
        let jumps_in = |id: InsnId| {
            p.attrs[id.idx()]
                .jump_dest
                .get()
                .is_some_and(|d| self.readable(p, InsnId(d)))
        };
        p.func_walk_may_meet(func, jumps_in, |o| self.writes[o.index()])
    }
}
