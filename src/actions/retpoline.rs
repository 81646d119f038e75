//! `--retpoline`: indirect calls and jumps must go through the retpoline thunks.
//! objtool: `validate_retpoline()`, `create_retpoline_sites_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::report::Findings;

/// objtool: `validate_retpoline()` (not built yet).
pub(super) fn validate(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
) -> Result<(), AnalysisError> {
    Ok(())
}

/// objtool: `create_retpoline_sites_sections()`: `.retpoline_sites` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
