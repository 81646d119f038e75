//! `--static-call`: `.static_call_sites`, each call or tail call to a static call
//! trampoline with its key. objtool: `create_static_call_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::options::Options;
use crate::report::Findings;

/// objtool: `create_static_call_sections()` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _opts: &Options,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
