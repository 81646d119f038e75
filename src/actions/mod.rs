//! objtool's actions besides stack validation and ORC: the checks and the sections of
//! `--retpoline`, `--rethunk` (with `--hacks=skylake`), `--unret`, `--sls`, `--ibt`,
//! `--static-call`, `--cfi`, `--mcount`/`--mnop` and `--prefix`, in the order objtool 6.12's
//! `check()` runs them. Input: the program model and the walk; output: findings and the
//! [`Edits`] the writer applies (the ORC sections are added after these, by `check`).
//!
//! One file per action; each names its objtool counterpart.

use crate::cfg::{AnalysisError, Program};
use crate::cfi::walk::Walk;
use crate::edits::Edits;
use crate::error::WriteError;
use crate::options::Options;
use crate::report::Findings;

mod call_sites;
mod cfi_sites;
mod ibt;
mod mcount;
mod prefix;
mod rethunk;
mod retpoline;
mod site_section;
mod sls;
mod static_call;
mod unret;

pub use prefix::insn_location;

/// The bytes objtool wrote while it built the model (`handle_jump_alt()` with
/// `--hacks=jump_label`, `annotate_call_site()` with `--mnop` or `--hacks=noinstr`), as
/// patches.
pub fn rewrites(program: &Program<'_, '_>, edits: &mut Edits) -> Result<(), WriteError> {
    site_section::rewrites(program, edits)
}

/// The actions objtool runs before it validates functions (`check()`: `validate_retpoline()`).
/// Returns the number of warnings objtool counts (with any, the walk does not look for
/// unreachable instructions).
pub fn before_walk(
    program: &Program<'_, '_>,
    opts: &Options,
    findings: &mut Findings,
) -> Result<usize, AnalysisError> {
    let mut warnings = 0;
    if opts.retpoline {
        warnings += retpoline::validate(program, opts, findings)?;
    }
    Ok(warnings)
}

/// The actions objtool runs after the walk (`walk` is `None` when no walk ran), in
/// `check()`'s order, adding to `edits` (which keeps what was added before an error:
/// objtool writes what it did up to the error). `walk` may be changed (`--prefix` gives
/// the padding before a function the function's entry state, which ORC generation then
/// reads).
pub fn after_walk(
    program: &Program<'_, '_>,
    walk: Option<&mut Walk>,
    opts: &Options,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    if opts.unret {
        unret::validate(program, walk.as_deref(), findings)?;
    }
    let ibt_used = if opts.ibt {
        Some(ibt::validate(program, findings)?)
    } else {
        None
    };
    if opts.sls {
        sls::validate(program, findings)?;
    }
    if opts.static_call {
        static_call::sections(program, opts, findings, edits)?;
    }
    if opts.retpoline {
        retpoline::sections(program, findings, edits)?;
    }
    if opts.cfi {
        cfi_sites::sections(program, findings, edits)?;
    }
    if opts.rethunk {
        rethunk::sections(program, findings, edits)?;
        if opts.hack_skylake {
            call_sites::sections(program, opts, findings, edits)?;
        }
    }
    if opts.mcount {
        mcount::sections(program, findings, edits)?;
    }
    if let Some(size) = opts.prefix {
        prefix::symbols(program, walk, size, edits)?;
    }
    if let Some(used) = &ibt_used {
        ibt::sections(program, used, findings, edits)?;
    }
    Ok(())
}
