//! `--static-call`: `.static_call_sites`, each call or tail call to a static call
//! trampoline with its key. objtool: `create_static_call_sections()`.

use object::elf;
use rustc_hash::FxHashMap;

use super::site_section::{already_has, text_reloc};
use crate::cfg::{AnalysisError, Program};
use crate::edits::{Edits, NewReloc, NewSection, RelocTarget, Step};
use crate::ids::SymId;
use crate::options::Options;
use crate::report::{FindingKind, Findings};

/// `STATIC_CALL_TRAMP_PREFIX_STR` and `STATIC_CALL_KEY_PREFIX_STR`
/// (include/linux/static_call_types.h).
const TRAMP_PREFIX: &str = "__SCT__";
const KEY_PREFIX: &str = "__SCK__";
/// `STATIC_CALL_SITE_TAIL`: the low bit of the key's addend marks a tail call.
const SITE_TAIL: i64 = 1;
/// `sizeof(struct static_call_site)`: two `s32` offsets, to the call and to the key.
const SITE_SIZE: u64 = 8;

/// The key of the trampoline called `tramp`: `__SCT__name` → `__SCK__name` (`None` for a
/// name without the trampoline prefix).
fn key_name(tramp: &str) -> Option<String> {
    tramp
        .strip_prefix(TRAMP_PREFIX)
        .map(|rest| format!("{KEY_PREFIX}{rest}"))
}

/// objtool: `create_static_call_sections()`: `.static_call_sites` (writable: modules
/// change the low bits of the key), per site an `R_X86_64_PC32` to the call and one to
/// the key `__SCK__name` of the trampoline `__SCT__name` called (the addend
/// `STATIC_CALL_SITE_TAIL` for a tail call). A module may call a trampoline whose key is
/// not exported: the key is then the trampoline. A missing key elsewhere stops the
/// analysis, with the section as far as objtool got.
pub(super) fn sections(
    program: &Program<'_, '_>,
    opts: &Options,
    findings: &mut Findings,
    edits: &mut Edits,
) -> Result<(), AnalysisError> {
    let sites = &program.sites.static_calls;
    if already_has(
        program,
        ".static_call_sites",
        "file already has .static_call_sites section, skipping",
        findings,
    ) || sites.is_empty()
    {
        return Ok(());
    }
    // objtool's `find_symbol_by_name()`: the last symbol of that name (its hash chains
    // put the newest first); only keys are asked for
    let mut keys: FxHashMap<&str, SymId> = FxHashMap::default();
    for (i, s) in program.syms.syms.iter().enumerate() {
        if s.name.starts_with(KEY_PREFIX) {
            keys.insert(&s.name, SymId(i as u32));
        }
    }
    let n = sites.len() as u64;
    let mut relocs = vec![
        NewReloc {
            offset: 0,
            r_type: 0,
            target: RelocTarget::Empty,
            addend: 0,
        };
        2 * sites.len()
    ];
    let mut failed = None;
    for (k, &id) in sites.iter().enumerate() {
        let at = k as u64 * SITE_SIZE;
        let sec = program.insns.sec_of(id);
        relocs[2 * k] = text_reloc(at, sec, u64::from(program.insn(id).offset));
        // (a site is a call or jump with a trampoline as destination)
        let Some(tramp) = program.call_dest(id) else {
            continue;
        };
        let tramp_name = &program.syms.get(tramp).name;
        let Some(key_name) = key_name(tramp_name) else {
            failed = Some(FindingKind::StaticCallTrampolineMalformed(
                tramp_name.to_string(),
            ));
            break;
        };
        let key = match keys.get(key_name.as_str()) {
            Some(&key) => key,
            None if opts.module => tramp,
            None => {
                failed = Some(FindingKind::StaticCallKeyMissing(key_name));
                break;
            }
        };
        relocs[2 * k + 1] = NewReloc {
            offset: at + 4,
            r_type: elf::R_X86_64_PC32,
            target: RelocTarget::Symbol(key),
            addend: if program.is_sibling_call(id) {
                SITE_TAIL
            } else {
                0
            },
        };
    }
    let mut sec = NewSection::new(
        b".static_call_sites",
        SITE_SIZE,
        vec![0; (n * SITE_SIZE) as usize],
        Some(relocs),
    );
    sec.flags |= u64::from(elf::SHF_WRITE);
    edits.steps.push(Step::Section(sec));
    match failed {
        None => Ok(()),
        Some(what) => {
            findings.warn(what);
            Err(AnalysisError::Build)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_of_a_trampoline_swaps_the_prefix() {
        assert_eq!(
            key_name("__SCT__pv_sched_clock").as_deref(),
            Some("__SCK__pv_sched_clock")
        );
        assert_eq!(key_name("__SCT__").as_deref(), Some("__SCK__"));
        assert_eq!(key_name("__SCK__x"), None);
        assert_eq!(key_name("x__SCT__y"), None);
    }
}
