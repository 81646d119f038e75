//! `--rethunk --hacks=skylake`: `.call_sites`, the direct calls call-depth tracking patches.
//! objtool: `create_direct_call_sections()`.

use super::site_section::site_list;
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
    // (objtool's `--cfi` empties the list when the object already has `.cfi_sites`)
    let sites: &[_] = if opts.cfi && program.obj.section_by_name(b".cfi_sites").is_some() {
        &[]
    } else {
        &program.sites.calls
    };
    if let Some(sec) = site_list(
        program,
        sites,
        ".call_sites",
        4,
        "file already has .call_sites section, skipping",
        findings,
    ) {
        edits.steps.push(Step::Section(sec));
    }
    Ok(())
}
