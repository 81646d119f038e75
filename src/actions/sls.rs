//! `--sls`: a return or indirect jump must be followed by `int3`. objtool: `validate_sls()`.

use crate::cfg::{AnalysisError, Program};
use crate::report::Findings;

/// objtool: `validate_sls()` (not built yet).
pub(super) fn validate(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
) -> Result<(), AnalysisError> {
    Ok(())
}
