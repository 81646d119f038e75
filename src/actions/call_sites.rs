//! `--rethunk --hacks=skylake`: `.call_sites`, the direct calls call-depth tracking patches.
//! objtool: `create_direct_call_sections()`.

use super::site_section::{already_has, insn_places, text_site_section};
use crate::cfg::{AnalysisError, Program};
use crate::edits::{Edits, Step};
use crate::options::Options;
use crate::report::Findings;

/// objtool: `create_direct_call_sections()`: `.call_sites`, one `R_X86_64_PC32` to each
/// direct call outside `.init.text` (of vmlinux) that no other list took. objtool's
/// `--cfi` empties the list when the object already has `.cfi_sites`.
pub(super) fn sections(
    program: &Program<'_, '_>,
    opts: &Options,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    let sites = &program.sites.calls;
    if already_has(
        program,
        ".call_sites",
        "file already has .call_sites section, skipping",
        findings,
    ) || sites.is_empty()
        || (opts.cfi && program.obj.section_by_name(b".cfi_sites").is_some())
    {
        return Ok(());
    }
    let places = insn_places(program, sites).collect::<Vec<_>>();
    edits.steps.push(Step::Section(text_site_section(
        ".call_sites",
        4,
        places.into_iter(),
    )));
    Ok(())
}
