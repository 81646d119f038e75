//! The unreachable-instruction check after all walks (objtool:
//! `validate_reachable_instructions()` and `ignore_unreachable_insn()`).

use std::sync::atomic::Ordering::Relaxed;

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
        // only what the walks left, so they are asked on all threads); an instruction in
        // a hole between symbols is decided afterwards, see [`resolve_holes`]
        let sh = self.sh;
        let verdicts = p.filter_map_range(0..p.nreal as u32, 1 << 14, |k| {
            if sh.visited[k as usize].load(Relaxed) != 0 {
                return None;
            }
            match ignore_unreachable(p, InsnId(k)) {
                Verdict::Ignore => None,
                v => Some((k, v)),
            }
        });
        let candidates = resolve_holes(p, sh, verdicts);
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

/// What `ignore_unreachable_insn()` says of an instruction no walk visited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Ignore,
    Report,
    /// Outside every function, in a hole between symbols that ends at this offset:
    /// ignored when a visited instruction follows before the end (the first one at or
    /// past the end included), reported otherwise.
    Hole(u64),
}

/// Decides the [`Verdict::Hole`] instructions: the instructions with a verdict, in order,
/// become the ones to report. objtool scans from each instruction of a hole to its end,
/// quadratic in the hole's length; the scan from an instruction goes through the next
/// one of the same hole, so it stops there and takes that one's answer (from the last).
fn resolve_holes(p: &Program<'_, '_>, sh: &Shared, verdicts: Vec<(u32, Verdict)>) -> Vec<u32> {
    let mut ignored = vec![false; verdicts.len()];
    // the hole instruction decided last (the next one in order) and its answer
    let mut later: Option<(InsnId, u64, bool)> = None;
    for (n, &(k, v)) in verdicts.iter().enumerate().rev() {
        let Verdict::Hole(end) = v else {
            continue;
        };
        let insn = InsnId(k);
        let mut found = false;
        let mut cur = p.next_same_sec(insn);
        while let Some(c) = cur {
            if let Some((next, next_end, answer)) = later
                && next == c
                && next_end == end
            {
                found = answer; // (`c` itself is unvisited: it has a verdict)
                break;
            }
            if sh.visited(c) != 0 {
                found = true;
                break;
            }
            if u64::from(p.insn(c).offset) >= end {
                break;
            }
            cur = p.next_same_sec(c);
        }
        ignored[n] = found;
        later = Some((insn, end, found));
    }
    verdicts
        .into_iter()
        .zip(ignored)
        .filter(|&(_, ignored)| !ignored)
        .map(|((k, _), _)| k)
        .collect()
}

/// objtool: `ignore_unreachable_insn()` (it reads only what the walks left), up to the
/// scan of a hole ([`resolve_holes`]).
fn ignore_unreachable(p: &Program<'_, '_>, insn: InsnId) -> Verdict {
    use Verdict::{Ignore, Report};
    let a = p.attr(insn);
    if a.ignore() || a.kind == InsnKind::Nop || a.kind == InsnKind::Trap {
        return Ignore;
    }
    let i = p.insn(insn);
    let sec = p.insns.sec_of(insn);
    let secname = &p.sec_names[sec.0 as usize];
    if secname == ".altinstr_replacement" || secname == ".altinstr_aux" {
        return Ignore;
    }
    let func = p.insn_func(insn);
    if p.opts.link && func.is_none() {
        let size = p.syms.hole_containing(sec, u64::from(i.offset));
        if size == 0 {
            return Report;
        }
        if size < 0 {
            return Ignore;
        }
        return Verdict::Hole(u64::from(i.offset) + size as u64);
    }
    let Some(func) = func else {
        return Report;
    };
    let fsym = p.syms.get(func);
    if fsym.static_call_tramp {
        return Ignore;
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
            return Ignore;
        }
    }
    let mut cur = insn;
    for _ in 0..5 {
        if is_kasan_or_ubsan(p, cur) {
            return Ignore;
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
    Report
}
