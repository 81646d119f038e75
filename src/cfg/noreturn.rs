//! Functions that never return, and the dead ends they make.
//!
//! objtool: `dead_end_function()` / `__dead_end_function()`, `add_dead_ends()`, the global
//! noreturn lists (noreturns.h) and `is_rust_noreturn()`.

use object::elf;

use super::builder::Builder;
use super::calls::CallTarget;
use super::program::{AnalysisError, Step};
use crate::decode::{InsnId, InsnKind};
use crate::ids::SymId;
use crate::report::{FindingKind, Findings};

impl Builder<'_, '_> {
    /// objtool: `__dead_end_function()`.
    pub fn dead_end_function(&self, func: SymId, recursion: u32) -> bool {
        let s = self.syms.get(func);
        if self.opts.rules_6_1 {
            // objtool 6.1: its own list, for global symbols only
            if s.bind == elf::STB_GLOBAL && GLOBAL_NORETURNS_6_1.contains(&&*s.name) {
                return true;
            }
        } else if (s.bind == elf::STB_GLOBAL || s.bind == elf::STB_WEAK)
            && (is_rust_noreturn(&s.name) || GLOBAL_NORETURNS.contains(&&*s.name))
        {
            return true;
        }
        if s.bind == elf::STB_WEAK || s.len == 0 {
            return false;
        }
        let Some(first) = self.insns.at(s.sec, s.offset) else {
            return false;
        };
        if self.insn_func(first).is_none() {
            return false;
        }
        // one pass: any return makes it return; else the first sibling call decides
        let mut any = false;
        let mut first_sibling = None;
        for i in self.func_insns_iter(func) {
            any = true;
            if self.attrs[i.idx()].kind == InsnKind::Return {
                return false;
            }
            if first_sibling.is_none() && self.is_sibling_call(i) {
                first_sibling = Some(i);
            }
        }
        if !any {
            return false;
        }
        if let Some(i) = first_sibling {
            let Some(dest) = self.attrs[i.idx()].jump_dest.get().map(InsnId) else {
                return false;
            };
            if recursion == 5 {
                return false;
            }
            return self
                .insn_func(dest)
                .is_some_and(|d| self.dead_end_function(d, recursion + 1));
        }
        true
    }

    /// Answers "does this function never return" for the call targets of a batch not yet
    /// in the memo, in parallel (`dead_end_function()` reads returns and sibling calls,
    /// which the call step does not change, so answering early is answering the same).
    pub(super) fn precompute_dead_ends(&mut self, calls: &[(InsnId, CallTarget)]) {
        let mut todo: Vec<SymId> = calls
            .iter()
            .filter_map(|&(_, t)| match t {
                CallTarget::Direct(s) | CallTarget::Section(s) => s,
                CallTarget::Sym(s) => Some(s),
                CallTarget::Retpoline => None,
            })
            .filter(|s| !self.dead_end_memo.contains_key(s))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        let answers = self.map_all(&todo, 1, |&s| self.dead_end_function(s, 0));
        self.dead_end_memo.extend(todo.into_iter().zip(answers));
    }

    /// `.discard.reachable` (objtool: `add_dead_ends()`).
    pub(super) fn add_dead_ends(&mut self, f: &mut Findings) -> Step {
        let Some((rname, relocs)) = self.rela_by_name(".rela.discard.reachable") else {
            return Ok(());
        };
        for r in relocs {
            let (sec, off) = self.label_target(&r, &rname, f)?;
            let target = match self.insns.at(sec, off) {
                Some(i) => self.prev_same_sec(i),
                None if off == self.sec_size[sec.0 as usize] => {
                    let found = self.last_insn(sec);
                    if found.is_none() {
                        let at = self.section_offset(sec, off);
                        f.warn(FindingKind::CantFindReachableInsn { at });
                        return Err(AnalysisError::Build);
                    }
                    found
                }
                None => {
                    let at = self.section_offset(sec, off);
                    f.warn(FindingKind::CantFindReachableInsn { at });
                    return Err(AnalysisError::Build);
                }
            };
            if let Some(t) = target {
                self.attrs[t.idx()].set_dead_end(false);
            }
        }
        Ok(())
    }
}

/// objtool: `is_rust_noreturn()`.
fn is_rust_noreturn(name: &str) -> bool {
    if !name.starts_with("_R") {
        return false;
    }
    const ENDS: [&str; 17] = [
        "_4core3num22from_ascii_radix_panic",
        "_4core5sliceSp15copy_from_slice17len_mismatch_fail",
        "_4core6option13expect_failed",
        "_4core6option13unwrap_failed",
        "_4core6result13unwrap_failed",
        "_4core6result13unwrap_failed19unwrap_failed_inner",
        "_4core9panicking5panic",
        "_4core9panicking9panic_fmt",
        "_4core9panicking14panic_explicit",
        "_4core9panicking14panic_nounwind",
        "_4core9panicking18panic_bounds_check",
        "_4core9panicking18panic_nounwind_fmt",
        "_4core9panicking19assert_failed_inner",
        "_4core9panicking30panic_null_pointer_dereference",
        "_4core9panicking32panic_null_reference_constructed",
        "_4core9panicking36panic_misaligned_pointer_dereference",
        "_7___rustc17rust_begin_unwind",
    ];
    ENDS.iter().any(|e| name.ends_with(e))
        || name.contains("_4core9panicking13assert_failed")
        || name.contains("_4core9panicking11panic_const24panic_const_")
        || (name.contains("_4core5slice5index")
            && name.contains("slice_")
            && name.ends_with("_fail"))
}

/// objtool 6.1's `global_noreturns[]`.
pub const GLOBAL_NORETURNS_6_1: [&str; 25] = [
    "__invalid_creds",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__ubsan_handle_builtin_unreachable",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "fortify_panic",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "lbug_with_loc",
    "machine_real_restart",
    "make_task_dead",
    "panic",
    "rewind_stack_and_make_dead",
    "sev_es_terminate",
    "snp_abort",
    "stop_this_cpu",
    "usercopy_abort",
    "xen_start_kernel",
];

/// objtool's noreturns.h (6.12).
pub const GLOBAL_NORETURNS: [&str; 45] = [
    "__fortify_panic",
    "__ia32_sys_exit",
    "__ia32_sys_exit_group",
    "__kunit_abort",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__tdx_hypercall_failed",
    "__ubsan_handle_builtin_unreachable",
    "__x64_sys_exit",
    "__x64_sys_exit_group",
    "arch_cpu_idle_dead",
    "bch2_trans_in_restart_error",
    "bch2_trans_restart_error",
    "bch2_trans_unlocked_error",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "hlt_play_dead",
    "hv_ghcb_terminate",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "machine_real_restart",
    "make_task_dead",
    "mpt_halt_firmware",
    "nmi_panic_self_stop",
    "panic",
    "panic_smp_self_stop",
    "rest_init",
    "rewind_stack_and_make_dead",
    "rust_begin_unwind",
    "rust_helper_BUG",
    "sev_es_terminate",
    "snp_abort",
    "start_kernel",
    "stop_this_cpu",
    "usercopy_abort",
    "x86_64_start_kernel",
    "x86_64_start_reservations",
    "xen_cpu_bringup_again",
    "xen_start_kernel",
];
