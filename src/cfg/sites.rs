//! The call sites objtool's actions list, recorded while call and jump destinations are
//! added, in the order objtool adds them to its per-file lists (the jumps of
//! `add_jump_destinations()` first, then the calls of `add_call_destinations()`, each in
//! file order), and the instructions it rewrites on the way.
//!
//! objtool: `annotate_call_site()` and `add_return_call()`, the lists `static_call_list`,
//! `retpoline_call_list`, `mcount_loc_list`, `call_list` and `return_thunk_list` of
//! `struct objtool_file`, and the `elf_write_insn()`/`set_reloc_type(R_NONE)` pairs of
//! `--mnop` and `--hacks=noinstr`.

use crate::decode::InsnId;
use crate::elf::SecId;

/// Which list `annotate_call_site()` put a call on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteList {
    /// A call or tail call to a static call trampoline (`__SCT__*`): `.static_call_sites`.
    StaticCall,
    /// A call or jump to a retpoline thunk (`__x86_indirect_*`): `.retpoline_sites`.
    Retpoline,
    /// A call to `__fentry__`: `__mcount_loc`.
    Mcount,
    /// Any other direct call outside `.init.text`: `.call_sites`.
    Call,
}

/// What an instruction is rewritten to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteTo {
    /// A NOP of the same length (objtool's `arch_nop_insn()`).
    Nop,
    /// `ret; int3` padded with a NOP to the same length (`arch_ret_insn()`): a tail call
    /// to a profiling function in noinstr code.
    Ret,
}

/// An instruction objtool overwrites, and the relocation whose type it sets to
/// `R_X86_64_NONE` (objtool's `insn_reloc()`: the one with the lowest offset inside the
/// instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub insn: InsnId,
    pub to: RewriteTo,
    /// The relocation section and the record's index in it.
    pub reloc: Option<(SecId, u32)>,
}

/// What `annotate_call_site()` decided for one instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Annotation {
    pub list: Option<SiteList>,
    pub rewrite: Option<Rewrite>,
}

/// The lists, in objtool's order.
#[derive(Clone, Debug, Default)]
pub struct Sites {
    pub static_calls: Vec<InsnId>,
    pub retpolines: Vec<InsnId>,
    pub mcounts: Vec<InsnId>,
    pub calls: Vec<InsnId>,
    /// Jumps to the return thunk (`add_return_call(…, true)`): `.return_sites`.
    pub return_thunks: Vec<InsnId>,
    /// The instructions rewritten while the model was built, in that order.
    pub rewrites: Vec<Rewrite>,
}

impl Sites {
    /// Adds what `annotate_call_site()` decided for `id`.
    pub fn record(&mut self, id: InsnId, a: Annotation) {
        if let Some(list) = a.list {
            match list {
                SiteList::StaticCall => &mut self.static_calls,
                SiteList::Retpoline => &mut self.retpolines,
                SiteList::Mcount => &mut self.mcounts,
                SiteList::Call => &mut self.calls,
            }
            .push(id);
        }
        self.rewrites.extend(a.rewrite);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_appends_to_the_chosen_list_and_keeps_rewrites_in_order() {
        let mut s = Sites::default();
        let rw = |i| Rewrite {
            insn: InsnId(i),
            to: RewriteTo::Nop,
            reloc: None,
        };
        s.record(
            InsnId(4),
            Annotation {
                list: Some(SiteList::Mcount),
                rewrite: Some(rw(4)),
            },
        );
        s.record(
            InsnId(2),
            Annotation {
                list: Some(SiteList::Call),
                rewrite: None,
            },
        );
        s.record(
            InsnId(1),
            Annotation {
                list: None,
                rewrite: Some(rw(1)),
            },
        );
        s.record(InsnId(9), Annotation::default());
        assert_eq!(s.mcounts, [InsnId(4)]);
        assert_eq!(s.calls, [InsnId(2)]);
        assert!(s.static_calls.is_empty() && s.retpolines.is_empty());
        assert_eq!(s.rewrites, [rw(4), rw(1)]);
    }
}
