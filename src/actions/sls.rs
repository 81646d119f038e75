//! `--sls`: a return or indirect jump must be followed by `int3`, so that the CPU does not
//! speculate straight past it. objtool: `validate_sls()`.

use crate::cfg::{AnalysisError, Program};
use crate::decode::{InsnId, InsnKind};
use crate::report::{FindingKind, Findings};

/// objtool: `validate_sls()` — every decoded instruction in file order; one annotated
/// retpoline-safe is exempt (also a sibling call `--hacks=noinstr` made a return).
pub(super) fn validate(
    program: &Program<'_, '_>,
    findings: &mut Findings,
) -> Result<(), AnalysisError> {
    let p = program;
    for k in 0..p.nreal {
        let insn = InsnId(k as u32);
        let a = p.attr(insn);
        if a.retpoline_safe() {
            continue;
        }
        let what = match a.kind {
            InsnKind::Return => FindingKind::MissingInt3AfterRet,
            InsnKind::JumpDynamic => FindingKind::MissingInt3AfterIndirectJump,
            _ => continue,
        };
        let trapped = p
            .next_same_sec(insn)
            .is_some_and(|n| p.attr(n).kind == InsnKind::Trap);
        if !trapped {
            p.warn_insn(findings, insn, what);
        }
    }
    Ok(())
}
