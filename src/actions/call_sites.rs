//! `--rethunk --hacks=skylake`: `.call_sites`, the direct calls call-depth tracking patches. objtool: `create_direct_call_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::report::Findings;

/// objtool: `create_direct_call_sections()` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
