//! `--unret`: every path from an entry point must untrain the return predictor before it
//! returns. objtool: `validate_unrets()`, `validate_unret()`.

use crate::cfg::{AnalysisError, Program};
use crate::cfi::walk::Walk;
use crate::report::Findings;

/// objtool: `validate_unrets()` (not built yet).
pub(super) fn validate(
    _program: &Program<'_, '_>,
    _walk: Option<&Walk>,
    _findings: &mut Findings,
) -> Result<(), AnalysisError> {
    Ok(())
}
