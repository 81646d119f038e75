//! Call destinations: direct, relocated, retpoline and return thunks, and what a call
//! destination does to the call (dead ends, sibling calls, annotated call sites).
//!
//! objtool: `add_call_destinations()`, `add_call_dest()`, `add_retpoline_call()`,
//! `add_return_call()`, `annotate_call_site()`.

use object::elf;

use super::builder::Builder;
use super::program::{AnalysisError, Attr, Step};
use crate::decode::{InsnId, InsnKind};
use crate::elf::SecId;
use crate::ids::{PackedSymId, SymId};
use crate::report::{FindingKind, Findings};

/// A call's destination as found by [`Program::call_target`].
#[derive(Clone, Copy)]
pub(super) enum CallTarget {
    /// No relocation: the function at the displacement's target (or none).
    Direct(Option<SymId>),
    /// A section-relative relocation: the function there (or none).
    Section(Option<SymId>),
    Retpoline,
    Sym(SymId),
}

/// What adding a call's destination does to it ([`Program::call_effect`]).
pub(super) struct CallEffect {
    attr: Attr,
    warning: Option<FindingKind>,
    /// The analysis stops after the warning.
    fatal: bool,
}

impl Builder<'_, '_> {
    /// objtool: `add_call_dest()` — set the destination, drop the call's push, and do the
    /// call-site bookkeeping that matters for validation (dead ends, NOPed calls).
    pub(super) fn add_call_dest(
        &mut self,
        id: InsnId,
        dest: Option<SymId>,
        sibling: bool,
        f: &mut Findings,
    ) {
        self.update_attr(id, f, |p, a| p.add_call_dest_to(id, a, dest, sibling));
    }

    pub(super) fn add_retpoline_call(&mut self, id: InsnId, f: &mut Findings) {
        self.update_attr(id, f, |p, a| p.add_retpoline_call_to(id, a));
    }

    /// Applies `change` to a copy of `id`'s attributes, stores it, and prints the warning
    /// the change gives (the changes below read the model and change only `id`, so they
    /// can also be worked out side by side and stored in order).
    pub(super) fn update_attr(
        &mut self,
        id: InsnId,
        f: &mut Findings,
        change: impl FnOnce(&Self, &mut Attr) -> Option<FindingKind>,
    ) {
        let mut a = self.attrs[id.idx()];
        let warning = change(self, &mut a);
        self.attrs[id.idx()] = a;
        if let Some(w) = warning {
            self.warn_insn(f, id, w);
        }
    }

    /// [`Program::add_call_dest`] on `a`, a copy of `id`'s attributes.
    pub(super) fn add_call_dest_to(
        &self,
        id: InsnId,
        a: &mut Attr,
        dest: Option<SymId>,
        sibling: bool,
    ) -> Option<FindingKind> {
        a.call_dest = PackedSymId::new(dest);
        a.call_dest.get()?;
        a.set_ops_removed(true);
        self.annotate_call_site_to(id, a, sibling)
    }

    /// [`Program::add_retpoline_call`] on `a`, a copy of `id`'s attributes.
    pub(super) fn add_retpoline_call_to(&self, id: InsnId, a: &mut Attr) -> Option<FindingKind> {
        a.kind = match a.kind {
            InsnKind::Call => InsnKind::CallDynamic,
            InsnKind::JumpUnconditional => InsnKind::JumpDynamic,
            InsnKind::JumpConditional => InsnKind::JumpDynamicConditional,
            _ => return None,
        };
        a.set_retpoline_safe(true);
        a.set_ops_removed(true);
        self.annotate_call_site_to(id, a, false)
    }

    /// objtool: `annotate_call_site()` on `a`, a copy of `id`'s attributes; returns its
    /// warning.
    pub(super) fn annotate_call_site_to(
        &self,
        id: InsnId,
        a: &mut Attr,
        sibling: bool,
    ) -> Option<FindingKind> {
        let sym = match a.call_dest.get() {
            Some(s) => s,
            None => self.reloc_of(id)?.sym,
        };
        let sec = self.insns.sec_of(id);
        if self.sec_names[sec.0 as usize] == ".altinstr_replacement" {
            return None;
        }
        let s = self.syms.get(sym);
        if s.static_call_tramp || s.retpoline_thunk {
            return None;
        }
        if self.opts.hack_noinstr && self.sec_noinstr[sec.0 as usize] && s.profiling_func {
            a.kind = if sibling {
                InsnKind::Return
            } else {
                InsnKind::Nop
            };
            if sibling {
                a.set_retpoline_safe(true);
            }
            return None;
        }
        if self.opts.mcount && s.fentry {
            if self.opts.mnop {
                a.kind = InsnKind::Nop;
            }
            return sibling.then_some(FindingKind::TailCallToFentry);
        }
        if !sibling {
            let dead = match self.dead_end_memo.get(&sym) {
                Some(&d) => d,
                None => self.dead_end_function(sym, 0),
            };
            if dead {
                a.set_dead_end(true);
            }
        }
        None
    }

    pub(super) fn add_return_call(&mut self, id: InsnId) {
        let a = self.attr_mut(id);
        a.kind = InsnKind::Return;
        a.set_retpoline_safe(true);
    }

    pub(super) fn find_call_destination(&self, sec: SecId, off: u64) -> Option<SymId> {
        self.syms
            .func_by_offset(sec, off)
            .or_else(|| self.syms.by_offset(sec, off))
    }

    /// Where a call goes, from its relocation or its displacement.
    pub(super) fn call_target(&self, id: InsnId) -> CallTarget {
        match self.reloc_of(id) {
            None => {
                let sec = self.insns.sec_of(id);
                CallTarget::Direct(self.find_call_destination(sec, self.jump_target_off(id)))
            }
            Some(r) => {
                let s = self.syms.get(r.sym);
                if s.ty == elf::STT_SECTION {
                    let off = (r.addend as u64).wrapping_add(4);
                    CallTarget::Section(self.find_call_destination(s.sec, off))
                } else if s.retpoline_thunk {
                    CallTarget::Retpoline
                } else {
                    CallTarget::Sym(r.sym)
                }
            }
        }
    }

    /// objtool: `add_call_destinations()`, with the destinations [`Program::add_jump_destinations`]
    /// looked up. Whether each called function returns is answered once per function (in
    /// parallel) before the calls are annotated in order (it depends on returns and sibling
    /// calls only, which this step does not change).
    pub(super) fn add_call_destinations(
        &mut self,
        calls: Vec<(InsnId, CallTarget)>,
        f: &mut Findings,
    ) -> Step {
        // each call's effect reads the model and changes only that call
        self.lookups(
            &calls,
            |p, batch| p.precompute_dead_ends(batch),
            |p, (id, target)| p.call_effect(id, target),
            |p, (id, _), e| {
                p.attrs[id.idx()] = e.attr;
                if let Some(w) = e.warning {
                    p.warn_insn(f, id, w);
                }
                if e.fatal {
                    Err(AnalysisError::Build)
                } else {
                    Ok(())
                }
            },
        )
    }

    /// What adding the destination of call `id` does: its new attributes, and the warning
    /// it gives (and whether the analysis stops there). Reads the model, changes nothing.
    pub(super) fn call_effect(&self, id: InsnId, target: CallTarget) -> CallEffect {
        let mut a = self.attrs[id.idx()];
        let effect = |warning: Option<FindingKind>, fatal: bool, a: Attr| CallEffect {
            attr: a,
            warning,
            fatal,
        };
        if a.kind != InsnKind::Call {
            return effect(None, false, a);
        }
        let warning = match target {
            CallTarget::Direct(dest) => {
                let w = self.add_call_dest_to(id, &mut a, dest, false);
                if a.ignore() {
                    return effect(w, false, a);
                }
                let Some(dest) = a.call_dest.get() else {
                    return effect(Some(FindingKind::UnannotatedIntraFunctionCall), true, a);
                };
                if self.insn_func(id).is_some() && !self.syms.is_func(dest) {
                    return effect(Some(FindingKind::UnsupportedCallToNonFunction), true, a);
                }
                w
            }
            CallTarget::Section(dest) => {
                if dest.is_none() {
                    // (the address again from the relocation, for the message)
                    let (sec, off) = self
                        .reloc_of(id)
                        .map(|r| (self.syms.get(r.sym).sec, (r.addend as u64).wrapping_add(4)))
                        .unwrap_or_default();
                    let at = self.section_offset(sec, off);
                    return effect(Some(FindingKind::CantFindCallDestSymbol { at }), true, a);
                }
                self.add_call_dest_to(id, &mut a, dest, false)
            }
            CallTarget::Retpoline => self.add_retpoline_call_to(id, &mut a),
            CallTarget::Sym(sym) => self.add_call_dest_to(id, &mut a, Some(sym), false),
        };
        effect(warning, false, a)
    }
}
