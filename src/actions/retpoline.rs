//! `--retpoline`: indirect calls and jumps must go through the retpoline thunks (and, with
//! `--rethunk`, returns through the return thunk), and `.retpoline_sites` lists every call
//! and jump to a thunk. objtool: `validate_retpoline()`, `create_retpoline_sites_sections()`.

use super::site_section::site_list;
use crate::cfg::{AnalysisError, Program};
use crate::decode::{InsnId, InsnKind};
use crate::edits::{Edits, Step};
use crate::options::Options;
use crate::report::{FindingKind, Findings};

/// Is `sec` objtool's `sec->init`: `.init.text` of vmlinux (it runs before user space, so
/// it needs no retpolines; a module's runs late and does)?
pub(super) fn is_init(program: &Program<'_, '_>, opts: &Options, sec: usize) -> bool {
    !opts.module && program.sec_names[sec] == ".init.text"
}

/// objtool: `validate_retpoline()`: every indirect jump or call (and, with `--rethunk`,
/// every return) not marked safe, outside `.init.text`, is a warning. Returns how many
/// there were (objtool adds them to the count that decides whether the unreachable
/// instructions are checked).
pub(super) fn validate(
    program: &Program<'_, '_>,
    opts: &Options,
    findings: &mut Findings,
) -> Result<usize, AnalysisError> {
    let mut warnings = 0;
    for k in 0..program.nreal {
        let id = InsnId(k as u32);
        let a = program.attr(id);
        let what = match a.kind {
            InsnKind::JumpDynamic => FindingKind::IndirectInRetpolineBuild { jump: true },
            InsnKind::CallDynamic => FindingKind::IndirectInRetpolineBuild { jump: false },
            InsnKind::Return if opts.rethunk => FindingKind::NakedReturn,
            _ => continue,
        };
        if a.retpoline_safe() || is_init(program, opts, program.insns.sec_of(id).0 as usize) {
            continue;
        }
        program.warn_insn(findings, id, what);
        warnings += 1;
    }
    Ok(warnings)
}

/// objtool: `create_retpoline_sites_sections()`: `.retpoline_sites`, one `R_X86_64_PC32`
/// to each call or jump to a retpoline thunk.
pub(super) fn sections(
    program: &Program<'_, '_>,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    if let Some(sec) = site_list(
        program,
        &program.sites.retpolines,
        ".retpoline_sites",
        4,
        "file already has .retpoline_sites, skipping",
        findings,
    ) {
        edits.steps.push(Step::Section(sec));
    }
    Ok(())
}
