//! `--cfi`: `.cfi_sites`, the kCFI preamble (`__cfi_*`) of every function. objtool: `create_cfi_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::report::Findings;

/// objtool: `create_cfi_sections()` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
