//! `--cfi`: `.cfi_sites`, the kCFI preamble (`__cfi_*`) of every function. objtool:
//! `create_cfi_sections()`.

use object::elf;

use super::site_section::{already_has, text_site_section};
use crate::cfg::{AnalysisError, Program};
use crate::edits::{Edits, Step};
use crate::report::Findings;

/// objtool: `create_cfi_sections()`: `.cfi_sites`, one `R_X86_64_PC32` to each `STT_FUNC`
/// symbol named `__cfi_*`, in objtool's symbol order (by section, then its symbol list);
/// created even when there is none.
pub(super) fn sections(
    program: &Program<'_, '_>,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    if already_has(
        program,
        ".cfi_sites",
        "file already has .cfi_sites section, skipping",
        findings,
    ) {
        return Ok(());
    }
    // (a preamble outside code, which objtool refuses, does not occur: compilers emit
    // them in the function's section)
    let syms = &program.syms;
    let places = syms
        .lists
        .iter()
        .flatten()
        .map(|&id| syms.get(id))
        .filter(|s| s.ty == elf::STT_FUNC && s.name.starts_with("__cfi_"))
        .map(|s| (s.sec, s.offset))
        .collect::<Vec<_>>();
    edits.steps.push(Step::Section(text_site_section(
        ".cfi_sites",
        4,
        places.into_iter(),
    )));
    Ok(())
}
