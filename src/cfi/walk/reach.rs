//! The unreachable-instruction check after all walks (objtool:
//! `validate_reachable_instructions()` and `ignore_unreachable_insn()`).

use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use super::{Shared, Walker};
use crate::cfg::Program;
use crate::decode::InsnKind;
use crate::ids::InsnId;
use crate::report::{FindingKind, Report};

impl<R: Report> Walker<'_, '_, '_, R> {
    /// objtool: `validate_reachable_instructions()`.
    pub(super) fn validate_reachable(&mut self) {
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
                    if let Some(d) = p.call_dest(prev) {
                        let function = p.syms.get(d).name.to_string();
                        self.warn_insn(insn, FindingKind::MissingNoreturn { function });
                        self.warnings += 1;
                        continue;
                    }
                }
            }
            self.warn_insn(insn, FindingKind::UnreachableInstruction);
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
    p.call_dest(insn).is_some_and(|d| {
        let n = &p.syms.get(d).name;
        n == "__asan_handle_no_return" || n == "__ubsan_handle_builtin_unreachable"
    })
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
    if p.opts.link && func.is_none() {
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
    let Some(func) = func else {
        return false;
    };
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
        let Some(cf) = p.insn_func(cur) else {
            break;
        };
        if p.insn(cur).end() >= p.syms.get(cf).end() {
            break;
        }
        match p.next_same_sec(cur) {
            Some(n) => cur = n,
            None => break,
        }
    }
    false
}
