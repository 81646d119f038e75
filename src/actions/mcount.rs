//! `--mcount`: `__mcount_loc`, every call to `__fentry__` (with `--mnop` turned into a NOP
//! while the model was built, see [`super::site_section::rewrites`]).
//! objtool: `create_mcount_loc_sections()`.

use object::elf;

use super::site_section::site_list;
use crate::cfg::{AnalysisError, Program};
use crate::edits::{Edits, Step};
use crate::report::Findings;

/// objtool: `create_mcount_loc_sections()`: `__mcount_loc`, one 8-byte `R_X86_64_64` to
/// each call to `__fentry__`, aligned to 8.
pub(super) fn sections(
    program: &Program<'_, '_>,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    let Some(mut sec) = site_list(
        program,
        &program.sites.mcounts,
        "__mcount_loc",
        8,
        "file already has __mcount_loc section, skipping",
        findings,
    ) else {
        return Ok(());
    };
    // (`sh_addralign = addr_size`; `set_reloc_type(…, R_ABS64)` after each text reloc)
    sec.align = 8;
    for r in sec.relocs.iter_mut().flatten() {
        r.r_type = elf::R_X86_64_64;
    }
    edits.steps.push(Step::Section(sec));
    Ok(())
}
