//! What calls, sibling calls and returns must satisfy on a path (objtool:
//! `validate_call()`, `validate_sibling_call()`, `validate_return()`: the noinstr, uaccess
//! and direction-flag rules), and the uaccess rule they share (`func_uaccess_safe()`).

use super::{WalkState, Walker};
use crate::decode::InsnKind;
use crate::ids::InsnId;
use crate::ids::SymId;
use crate::report::{FindingKind, Report};

impl<R: Report> Walker<'_, '_, '_, R> {
    /// objtool: `is_special_call()` — calls that need no frame (`__fentry__`, embedded
    /// instructions).
    pub(super) fn is_special_call(&self, insn: InsnId) -> bool {
        let p = self.p;
        if p.attr(insn).kind != InsnKind::Call {
            return false;
        }
        p.call_dest(insn).is_some_and(|d| {
            let d = p.syms.get(d);
            d.fentry || d.embedded_insn
        })
    }

    /// objtool: `call_dest_name()` (`None`: `{dynamic}`).
    fn call_dest_name(&self, insn: InsnId) -> Option<String> {
        let d = self.p.call_dest(insn)?;
        Some(self.p.syms.get(d).name.to_string())
    }

    /// objtool: `func_uaccess_safe()`.
    pub(super) fn uaccess_safe(&self, func: Option<SymId>) -> bool {
        func.is_some_and(|f| self.p.syms.get(f).uaccess_safe)
    }

    /// objtool: `validate_call()`.
    pub(super) fn validate_call(&mut self, insn: InsnId, state: &WalkState) -> bool {
        if state.noinstr && state.instr <= 0 && !self.noinstr_call_dest(insn) {
            let dest = self.call_dest_name(insn);
            self.warn_insn(insn, FindingKind::CallLeavesNoinstr { dest });
            return false;
        }
        if state.uaccess && !self.uaccess_safe(self.p.call_dest(insn)) {
            let dest = self.call_dest_name(insn);
            self.warn_insn(insn, FindingKind::CallWithUaccess { dest });
            return false;
        }
        if state.df {
            let dest = self.call_dest_name(insn);
            self.warn_insn(insn, FindingKind::CallWithDf { dest });
            return false;
        }
        true
    }

    /// objtool: `validate_sibling_call()`.
    pub(super) fn validate_sibling_call(&mut self, insn: InsnId, state: &WalkState) -> bool {
        if self.p.insn_func(insn).is_some() && state.cfi.has_modified_stack_frame() {
            self.warn_insn(insn, FindingKind::SiblingCallWithModifiedFrame);
            return false;
        }
        self.validate_call(insn, state)
    }

    /// objtool: `validate_return()`.
    pub(super) fn validate_return(
        &mut self,
        func: Option<SymId>,
        insn: InsnId,
        state: &WalkState,
    ) -> bool {
        if state.noinstr && state.instr > 0 {
            self.warn_insn(insn, FindingKind::ReturnWithInstrumentation);
            return false;
        }
        if state.uaccess && !self.uaccess_safe(func) {
            self.warn_insn(insn, FindingKind::ReturnWithUaccess);
            return false;
        }
        if !state.uaccess && self.uaccess_safe(func) {
            self.warn_insn(insn, FindingKind::ReturnWithoutUaccessFromSafe);
            return false;
        }
        if state.df {
            self.warn_insn(insn, FindingKind::ReturnWithDf);
            return false;
        }
        if func.is_some() && state.cfi.has_modified_stack_frame() {
            self.warn_insn(insn, FindingKind::ReturnWithModifiedFrame);
            return false;
        }
        if state.cfi.bp_scratch {
            self.warn_insn(insn, FindingKind::BpScratch);
            return false;
        }
        true
    }
}
