//! Call destinations: direct, relocated, retpoline and return thunks, and what a call
//! destination does to the call (dead ends, sibling calls, annotated call sites).
//!
//! objtool: `add_call_destinations()`, `add_call_dest()`, `add_retpoline_call()`,
//! `add_return_call()`, `annotate_call_site()`.

use object::elf;

use super::builder::Builder;
use super::program::{AnalysisError, Attr, Step};
use super::sites::{Annotation, Rewrite, RewriteTo, SiteList};
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

/// `annotate_call_site()`'s result: its warning, and the lists it adds the call to and
/// the rewrite it makes.
pub(super) type Annotated = (Option<FindingKind>, Annotation);

/// What adding a call's destination does to it ([`Program::call_effect`]).
pub(super) struct CallEffect {
    attr: Attr,
    /// (boxed: a warning is rare, and a call's effect is written by one thread and read by
    /// another, 200 bytes each unboxed)
    warning: Option<Box<FindingKind>>,
    /// The lists it joins and its rewrite.
    site: Annotation,
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

    /// Applies `change` to a copy of `id`'s attributes, stores it, prints the warning
    /// the change gives and records the site (the changes below read the model and change
    /// only `id`, so they can also be worked out side by side and stored in order).
    pub(super) fn update_attr(
        &mut self,
        id: InsnId,
        f: &mut Findings,
        change: impl FnOnce(&Self, &mut Attr) -> Annotated,
    ) {
        let mut a = self.attrs[id.idx()];
        let (warning, site) = change(self, &mut a);
        self.attrs[id.idx()] = a;
        if let Some(w) = warning {
            self.warn_insn(f, id, w);
        }
        self.sites.record(id, site);
    }

    /// [`Program::add_call_dest`] on `a`, a copy of `id`'s attributes.
    pub(super) fn add_call_dest_to(
        &self,
        id: InsnId,
        a: &mut Attr,
        dest: Option<SymId>,
        sibling: bool,
    ) -> Annotated {
        a.call_dest = PackedSymId::new(dest);
        if dest.is_none() {
            return Annotated::default();
        }
        a.set_ops_removed(true);
        self.annotate_call_site_to(id, a, sibling)
    }

    /// [`Program::add_retpoline_call`] on `a`, a copy of `id`'s attributes.
    pub(super) fn add_retpoline_call_to(&self, id: InsnId, a: &mut Attr) -> Annotated {
        a.kind = match a.kind {
            InsnKind::Call => InsnKind::CallDynamic,
            InsnKind::JumpUnconditional => InsnKind::JumpDynamic,
            InsnKind::JumpConditional => InsnKind::JumpDynamicConditional,
            _ => return Annotated::default(),
        };
        a.set_retpoline_safe(true);
        a.set_ops_removed(true);
        self.annotate_call_site_to(id, a, false)
    }

    /// objtool: `annotate_call_site()` on `a`, a copy of `id`'s attributes; returns its
    /// warning, the list it puts the call on and the rewrite it makes.
    pub(super) fn annotate_call_site_to(
        &self,
        id: InsnId,
        a: &mut Attr,
        sibling: bool,
    ) -> Annotated {
        let none = Annotated::default();
        let sym = match a.call_dest.get() {
            Some(s) => s,
            None => match self.reloc_of(id) {
                Some(r) => r.sym,
                None => return none,
            },
        };
        let sec = self.insns.sec_of(id);
        let sec_name = &self.sec_names[sec.0 as usize];
        if sec_name == ".altinstr_replacement" {
            return none;
        }
        let s = self.syms.get(sym);
        let listed = |list| {
            (
                None,
                Annotation {
                    list: Some(list),
                    rewrite: None,
                },
            )
        };
        if s.static_call_tramp {
            return listed(SiteList::StaticCall);
        }
        if s.retpoline_thunk {
            return listed(SiteList::Retpoline);
        }
        let rewrite = |to| Rewrite {
            insn: id,
            to,
            reloc: self.reloc_slot(id),
        };
        if self.opts.hack_noinstr && self.sec_noinstr[sec.0 as usize] && s.profiling_func {
            a.kind = if sibling {
                InsnKind::Return
            } else {
                InsnKind::Nop
            };
            if sibling {
                a.set_retpoline_safe(true);
            }
            let to = if sibling {
                RewriteTo::Ret
            } else {
                RewriteTo::Nop
            };
            return (
                None,
                Annotation {
                    list: None,
                    rewrite: Some(rewrite(to)),
                },
            );
        }
        if self.opts.mcount && s.fentry {
            let mut site = Annotation {
                list: Some(SiteList::Mcount),
                rewrite: None,
            };
            if self.opts.mnop {
                a.kind = InsnKind::Nop;
                site.rewrite = Some(rewrite(RewriteTo::Nop));
            }
            return (sibling.then_some(FindingKind::TailCallToFentry), site);
        }
        let mut site = Annotation::default();
        // (`.init.text` of vmlinux runs before user space: objtool's `sec->init`)
        if a.kind == InsnKind::Call && (self.opts.module || sec_name != ".init.text") {
            site.list = Some(SiteList::Call);
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
        (None, site)
    }

    /// The relocation objtool's `insn_reloc()` finds for `id`: its relocation section
    /// and its index there.
    pub(super) fn reloc_slot(&self, id: InsnId) -> Option<(SecId, u32)> {
        let i = self.insn(id);
        let t = self.relocs.table(self.insns.sec_of(id))?;
        let k = t.in_range(u64::from(i.offset), u64::from(i.len))?;
        Some((t.rela_sec, k))
    }

    /// objtool: `add_return_call()`: a jump to the return thunk is a return; `add` puts it
    /// on the list of `.return_sites`.
    pub(super) fn add_return_call(&mut self, id: InsnId, add: bool) {
        let a = self.attr_mut(id);
        a.kind = InsnKind::Return;
        a.set_retpoline_safe(true);
        if add {
            self.sites.return_thunks.push(id);
        }
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
                    p.warn_insn(f, id, *w);
                }
                p.sites.record(id, e.site);
                if e.fatal {
                    Err(AnalysisError::Build)
                } else {
                    Ok(())
                }
            },
        )
    }

    /// What adding the destination of call `id` does: its new attributes, the warning it
    /// gives (and whether the analysis stops there), the site lists it joins. Reads the
    /// model, changes nothing.
    pub(super) fn call_effect(&self, id: InsnId, target: CallTarget) -> CallEffect {
        let mut a = self.attrs[id.idx()];
        let effect = |warning: Option<FindingKind>, fatal: bool, a: Attr, site| CallEffect {
            attr: a,
            warning: warning.map(Box::new),
            site,
            fatal,
        };
        let none = Annotation::default();
        if a.kind != InsnKind::Call {
            return effect(None, false, a, none);
        }
        let (warning, site) = match target {
            CallTarget::Direct(dest) => {
                let (w, site) = self.add_call_dest_to(id, &mut a, dest, false);
                if a.ignore() {
                    return effect(w, false, a, site);
                }
                let Some(dest) = a.call_dest.get() else {
                    let w = FindingKind::UnannotatedIntraFunctionCall;
                    return effect(Some(w), true, a, site);
                };
                if self.insn_func(id).is_some() && !self.syms.is_func(dest) {
                    let w = FindingKind::UnsupportedCallToNonFunction;
                    return effect(Some(w), true, a, site);
                }
                (w, site)
            }
            CallTarget::Section(dest) => {
                if dest.is_none() {
                    // (the address again from the relocation, for the message)
                    let (sec, off) = self
                        .reloc_of(id)
                        .map(|r| (self.syms.get(r.sym).sec, (r.addend as u64).wrapping_add(4)))
                        .unwrap_or_default();
                    let at = self.section_offset(sec, off);
                    let w = FindingKind::CantFindCallDestSymbol { at };
                    return effect(Some(w), true, a, none);
                }
                self.add_call_dest_to(id, &mut a, dest, false)
            }
            CallTarget::Retpoline => self.add_retpoline_call_to(id, &mut a),
            CallTarget::Sym(sym) => self.add_call_dest_to(id, &mut a, Some(sym), false),
        };
        effect(warning, false, a, site)
    }
}
