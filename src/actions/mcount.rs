//! `--mcount`: `__mcount_loc`, every call to `__fentry__` (with `--mnop` turned into a NOP).
//! objtool: `create_mcount_loc_sections()`.

use crate::cfg::{AnalysisError, Program};
use crate::edits::Edits;
use crate::options::Options;
use crate::report::Findings;

/// objtool: `create_mcount_loc_sections()` (not built yet).
pub(super) fn sections(
    _program: &Program<'_, '_>,
    _opts: &Options,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
