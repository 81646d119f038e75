//! `--rethunk`: `.return_sites`, every return through the return thunk. objtool: `create_return_sites_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::report::Findings;

/// objtool: `create_return_sites_sections()` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
