//! `--prefix=N`: a `__pfx_FUNC` symbol over the N bytes of NOP padding before each function,
//! and the function's entry state for that padding (so it gets ORC). objtool:
//! `add_prefix_symbols()`, `add_prefix_symbol()`, `elf_create_prefix_symbol()`.

use crate::cfg::{AnalysisError, Program};
use crate::cfi::walk::Walk;
use crate::edits::Edits;
use crate::report::Findings;

/// objtool: `add_prefix_symbols()` (not built yet).
pub(super) fn symbols(
    _program: &Program<'_, '_>,
    _walk: Option<&mut Walk>,
    _size: u32,
    _findings: &mut Findings,
    _edits: &mut Edits,
) -> Result<(), AnalysisError> {
    Ok(())
}
