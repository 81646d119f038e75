//! `--rethunk`: `.return_sites`, every jump to the return thunk (the naked-return warning is
//! part of `--retpoline`'s validation). objtool: `create_return_sites_sections()`.

use super::site_section::site_list;
use crate::cfg::{AnalysisError, Program};
use crate::edits::{Edits, Step};
use crate::report::Findings;

/// objtool: `create_return_sites_sections()`: `.return_sites`, one `R_X86_64_PC32` to each
/// jump to `__x86_return_thunk`.
pub(super) fn sections(
    program: &Program<'_, '_>,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    if let Some(sec) = site_list(
        program,
        &program.sites.return_thunks,
        ".return_sites",
        4,
        "file already has .return_sites, skipping",
        findings,
    ) {
        edits.steps.push(Step::Section(sec));
    }
    Ok(())
}
