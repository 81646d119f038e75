//! Jump destinations: direct jumps inside and between functions, jumps to thunks, sibling
//! calls, and the link between a function and its `.cold` part.
//!
//! objtool: `add_jump_destinations()`.

use object::elf;

use super::builder::Builder;
use super::calls::CallTarget;
use super::program::{AnalysisError, Packed, Step};
use crate::decode::{InsnId, InsnKind};
use crate::elf::SecId;
use crate::ids::SymId;
use crate::report::{FindingKind, Findings};

/// A direct jump's destination as found by [`Program::jump_target`].
#[derive(Clone, Copy)]
pub(super) enum JumpTarget {
    /// Nothing to resolve.
    None,
    /// A jump to a retpoline thunk: an indirect jump.
    Retpoline,
    /// A jump to the return thunk: a return.
    Return,
    /// A relocation to a symbol from inside a function: a sibling call to it.
    Sibling(SymId),
    /// An address, and what is known of the instruction there if there is one.
    Addr(SecId, u64, Option<Dest>),
}

/// What a direct jump's destination instruction is, from data this step does not change.
#[derive(Clone, Copy)]
pub(super) struct Dest {
    insn: InsnId,
    /// The destination starts a retpoline thunk or the return thunk.
    thunk: Option<Thunk>,
    /// The function of the destination.
    dfunc: Option<SymId>,
    /// The jump goes from a function into a `.cold` part: objtool links them.
    cold_link: bool,
    /// The symbols of the jump and of its destination when the jump is a sibling call
    /// unless both have the same parent function (none otherwise).
    sibling: Option<(SymId, SymId)>,
}

#[derive(Clone, Copy)]
pub(super) enum Thunk {
    Retpoline,
    Return,
}

impl Builder<'_, '_> {
    /// objtool: `is_first_func_insn()`, for `id` at `offset`.
    pub(super) fn is_first_func_insn(&self, id: InsnId, offset: u64, sym: SymId) -> bool {
        let s = self.syms.get(sym);
        if offset == s.offset {
            return true;
        }
        if self.opts.ibt {
            let i = self.insn(id);
            if let Some(prev) = self.prev_same_sec(id) {
                // (objtool: prev_insn_same_sym(), which compares insn_func())
                if self.insn_func(prev) == self.insn_func(id)
                    && self.attrs[prev.idx()].kind == InsnKind::Endbr
                    && u64::from(i.offset) == s.offset + u64::from(self.insn(prev).len)
                {
                    return true;
                }
            }
        }
        false
    }

    /// Where a direct jump goes, from its relocation or its displacement.
    pub(super) fn jump_target(&self, id: InsnId) -> JumpTarget {
        let func = self.insn_func(id);
        let (sec, off) = match self.reloc_of(id) {
            None => (self.insns.sec_of(id), self.jump_target_off(id)),
            Some(r) => {
                let s = self.syms.get(r.sym);
                if s.ty == elf::STT_SECTION {
                    (s.sec, (r.addend as u64).wrapping_add(4))
                } else if s.retpoline_thunk {
                    return JumpTarget::Retpoline;
                } else if s.return_thunk {
                    return JumpTarget::Return;
                } else if func.is_some() {
                    return JumpTarget::Sibling(r.sym);
                } else if s.sec.0 != 0 {
                    (
                        s.sec,
                        s.offset.wrapping_add((r.addend as u64).wrapping_add(4)),
                    )
                } else {
                    return JumpTarget::None;
                }
            }
        };
        // (the destination starts at `off`: its record is not read)
        let dest = self.insns.at(sec, off).map(|dest| {
            let dsym = self.attrs[dest.idx()].sym.get();
            let thunk = match dsym.map(|d| self.syms.get(d)) {
                Some(ds) if off == ds.offset => {
                    if ds.retpoline_thunk {
                        Some(Thunk::Retpoline)
                    } else if ds.return_thunk {
                        Some(Thunk::Return)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let dfunc = self.insn_func(dest);
            let cold_link = match (func, dfunc) {
                (Some(func), Some(dfunc)) => {
                    func != dfunc
                        && !self.syms.get(func).name.contains(".cold")
                        && self.syms.get(dfunc).name.contains(".cold")
                }
                _ => false,
            };
            // objtool: `jump_is_sibling_call()` up to its parent comparison
            let sibling = match (self.attrs[id.idx()].sym.get(), dsym) {
                (Some(fs), Some(ts))
                    if self.is_first_func_insn(dest, off, ts)
                        && self.syms.get(ts).ty != elf::STT_NOTYPE =>
                {
                    Some((fs, ts))
                }
                _ => None,
            };
            Dest {
                insn: dest,
                thunk,
                dfunc,
                cold_link,
                sibling,
            }
        });
        JumpTarget::Addr(sec, off, dest)
    }

    /// objtool: `add_jump_destinations()`. The destinations are looked up in parallel and
    /// applied in order. The call destinations are looked up in the same pass (they read
    /// nothing the analysis changes, and the lookup of an instruction is mostly the cache
    /// misses of reaching it) and returned, in order, for [`Program::add_call_destinations`].
    pub(super) fn add_jump_destinations(
        &mut self,
        f: &mut Findings,
    ) -> Result<Vec<(InsnId, CallTarget)>, AnalysisError> {
        enum Target {
            Jump(JumpTarget),
            Call(CallTarget),
            Neither,
        }
        let branches = std::mem::take(&mut self.insns.branches);
        let lookup = |p: &Self, id: InsnId| {
            let a = &p.attrs[id.idx()];
            if a.kind == InsnKind::Call {
                Target::Call(p.call_target(id))
            } else if a.jump_dest.get().is_some() || !a.kind.is_static_jump() {
                Target::Neither
            } else {
                Target::Jump(p.jump_target(id))
            }
        };
        // the parent functions, which this step changes, kept compact for the sibling test
        let mut pfunc: Vec<Option<SymId>> = self.syms.syms.iter().map(|s| s.pfunc).collect();
        // (at most one per branch: reserved at once, as it grows by doubling otherwise)
        let mut calls = Vec::with_capacity(branches.len());
        let r = self.lookups(
            &branches,
            |_, _| {},
            lookup,
            |p, id, target| match target {
                Target::Jump(t) => p.add_jump_destination(id, t, &mut pfunc, f),
                Target::Call(t) => {
                    calls.push((id, t));
                    Ok(())
                }
                Target::Neither => Ok(()),
            },
        );
        self.insns.branches = branches;
        r.map(|()| calls)
    }

    pub(super) fn add_jump_destination(
        &mut self,
        id: InsnId,
        target: JumpTarget,
        pfunc: &mut [Option<SymId>],
        f: &mut Findings,
    ) -> Step {
        let k = id.idx();
        let func = self.insn_func(id);
        if self.attrs[k].jump_dest.get().is_some() || !self.attrs[k].kind.is_static_jump() {
            return Ok(());
        }
        let (dest_sec, dest_off, dest) = match target {
            JumpTarget::None => return Ok(()),
            JumpTarget::Retpoline => {
                self.add_retpoline_call(id, f);
                return Ok(());
            }
            JumpTarget::Return => {
                self.add_return_call(id, true);
                return Ok(());
            }
            JumpTarget::Sibling(sym) => {
                self.add_call_dest(id, Some(sym), true, f);
                return Ok(());
            }
            JumpTarget::Addr(sec, off, dest) => (sec, off, dest),
        };
        let Some(dest) = dest else {
            if let Some(s) = self.syms.by_offset(dest_sec, dest_off) {
                if self.syms.get(s).embedded_insn {
                    self.add_return_call(id, false);
                    return Ok(());
                }
            }
            if self.ignore_unreachables
                && dest_sec == self.insns.sec_of(id)
                && func.is_some_and(|func| dest_off == self.syms.get(func).end())
            {
                return Ok(());
            }
            let at = self.section_offset(dest_sec, dest_off);
            self.warn_insn(f, id, FindingKind::CantFindJumpDest { at });
            return Err(AnalysisError::Build);
        };
        match dest.thunk {
            Some(Thunk::Retpoline) => {
                self.add_retpoline_call(id, f);
                return Ok(());
            }
            Some(Thunk::Return) => {
                self.add_return_call(id, true);
                return Ok(());
            }
            None => {}
        }
        let dfunc = dest.dfunc;
        if let (true, Some(func), Some(dfunc)) = (dest.cold_link, func, dfunc) {
            self.syms.syms[func.index()].cfunc = Some(dfunc);
            self.syms.syms[dfunc.index()].pfunc = Some(func);
            pfunc[dfunc.index()] = Some(func);
        }
        if dest
            .sibling
            .is_some_and(|(fs, ts)| pfunc[fs.index()] != pfunc[ts.index()])
        {
            self.add_call_dest(id, dfunc, true, f);
            return Ok(());
        }
        self.attrs[k].jump_dest = Packed::some(dest.insn.0);
        Ok(())
    }
}
