//! `--ibt`: every address taken of code must point at an ENDBR, and `.ibt_endbr_seal` lists
//! the ENDBRs nothing takes the address of. objtool: `validate_ibt()`,
//! `create_ibt_endbr_seal_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::report::Findings;

/// objtool: `validate_ibt()` (not built yet).
pub(super) fn validate(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
) -> Result<(), AnalysisError> {
    Ok(())
}

/// objtool: `create_ibt_endbr_seal_sections()` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
