//! `--noinstr`: code in the noinstr sections (`.noinstr.text`, `.entry.text`,
//! `.cpuidle.text`, `.text..__x86.*`) may only call code that is itself noinstr, unless
//! the path is inside `instrumentation_begin()`/`_end()` (the `instr` count each
//! annotation adds to its instruction, summed along the path); and it must not return
//! with instrumentation enabled ([`super::rules`]).
//!
//! objtool: `validate_noinstr_sections()` (the walk when neither `--stackval`, `--orc` nor
//! `--uaccess` asks for the whole one), `noinstr_call_dest()`, `pv_call_dest()`, and the
//! `noinstr` part of `init_insn_state()`.

use super::{Item, Run, Walk, Walker, function_items};
use crate::cfg::Program;
use crate::elf::SecId;
use crate::ids::InsnId;
use crate::report::{FindingKind, Findings, Report};

/// The sections `validate_noinstr_sections()` walks, in its order (each the last section
/// of its name, as objtool's lookup by name finds it).
const NOINSTR_SECTIONS: [&str; 3] = [".noinstr.text", ".entry.text", ".cpuidle.text"];

/// objtool: `validate_noinstr_sections()` — each noinstr section's functions, then the
/// unwind hints in it, walked with the noinstr rules on; nothing else is walked.
pub fn validate_noinstr_sections(p: &Program<'_, '_>, f: &mut Findings) -> Walk {
    let mut run = Run::new(p);
    for name in NOINSTR_SECTIONS {
        let Some(sec) = p.obj.section_by_name(name.as_bytes()) else {
            continue;
        };
        let items: Vec<Item> = function_items(p, run.parallel, std::iter::once(sec.0 as usize));
        run.functions(f, &items);
        let mut w = run.walker(f);
        w.validate_hints(Some(sec));
        let warnings = w.warnings;
        run.warnings = warnings;
    }
    run.finish()
}

impl<R: Report> Walker<'_, '_, '_, R> {
    /// objtool: the `noinstr` flag of `init_insn_state()` for a walk started in `sec`:
    /// only a linked object (`--link`) knows where every callee lives.
    pub(super) fn noinstr_state(&self, sec: Option<SecId>) -> bool {
        let p = self.p;
        p.opts.link
            && p.opts.noinstr
            && sec.is_some_and(|s| p.sec_noinstr.get(s.0 as usize).copied().unwrap_or(false))
    }

    /// objtool: `noinstr_call_dest()` — may noinstr code call where `insn` goes?
    pub(super) fn noinstr_call_dest(&mut self, insn: InsnId) -> bool {
        let p = self.p;
        let Some(dest) = p.call_dest(insn) else {
            // an indirect call: only a paravirt call whose targets are all noinstr
            return self.pv_call_dest(insn);
        };
        let d = p.syms.get(dest);
        if p.sec_noinstr
            .get(d.sec.0 as usize)
            .copied()
            .unwrap_or(false)
        {
            return true;
        }
        // a static call's trampoline cannot be told; UBSAN's handlers only run when
        // something went wrong, and may
        d.static_call_tramp || d.name.starts_with("__ubsan_handle_")
    }

    /// objtool: `pv_call_dest()` — a call through `pv_ops[N]` is noinstr when every
    /// function assigned to that slot is; each one that is not is named, every time.
    fn pv_call_dest(&mut self, insn: InsnId) -> bool {
        let p = self.p;
        let Some(pv) = p.pv_ops.as_ref() else {
            return false;
        };
        let Some(&index) = pv.calls.get(&insn) else {
            return false;
        };
        let Some(targets) = pv.targets.get(index as usize) else {
            return true; // (past the table: objtool reads beyond it)
        };
        let mut clean = true;
        for &t in targets {
            let s = p.syms.get(t);
            if !p
                .sec_noinstr
                .get(s.sec.0 as usize)
                .copied()
                .unwrap_or(false)
            {
                self.f.warn(FindingKind::PvOpsTarget {
                    index,
                    target: s.name.to_string(),
                });
                clean = false;
            }
        }
        clean
    }
}
