//! `--rethunk`: `.return_sites`, every jump to the return thunk (the naked-return warning is
//! part of `--retpoline`'s validation). objtool: `create_return_sites_sections()`.

use super::site_section::{already_has, insn_places, text_site_section};
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
    let sites = &program.sites.return_thunks;
    if already_has(
        program,
        ".return_sites",
        "file already has .return_sites, skipping",
        findings,
    ) || sites.is_empty()
    {
        return Ok(());
    }
    let places = insn_places(program, sites).collect::<Vec<_>>();
    edits.steps.push(Step::Section(text_site_section(
        ".return_sites",
        4,
        places.into_iter(),
    )));
    Ok(())
}
