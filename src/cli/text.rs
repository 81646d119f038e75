//! orctool's own text output of `check` (objtool's command line prints objtool's lines
//! only): floods of one warning in one function said once with a count (`--all` prints
//! each), the explanations under the warnings (`--verbose`, [`super::verbose`]), the
//! listings of the functions that warn (`--trace`, [`super::explain`]) and
//! `FILE: no ORC written (why)`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::run::Job;
use crate::check::{Inspect, Outcome};
use crate::elf::Object;
use crate::report::{Finding, FindingKind, Findings, Kind};

/// A function (or a section, outside functions) getting more than this many warnings with
/// the same message gets one line with the count.
pub const FLOOD: usize = 3;

/// What orctool prints beyond the warnings, read from the model and the walk.
#[derive(Default)]
pub struct Extra {
    /// Per warning (index in the findings): the explanation printed under it (`-v`).
    pub blocks: HashMap<usize, String>,
    /// `--trace`: the listings of the functions that warn.
    pub traces: String,
}

impl Extra {
    pub fn collect(
        i: &Inspect<'_, '_, '_>,
        obj: &Object<'_>,
        file: &str,
        verbose: bool,
        trace: bool,
    ) -> Extra {
        let mut x = Extra::default();
        if verbose {
            let lines = super::source::Lines::read(obj);
            x.blocks = super::verbose::notes(i, lines.as_ref());
        }
        if trace {
            let mut seen = HashSet::new();
            for f in i.findings.findings() {
                let Some(func) = f.at.as_ref().and_then(|a| a.function.as_ref()) else {
                    continue;
                };
                if f.kind != Kind::Warning || !seen.insert(func.name.clone()) {
                    continue;
                }
                if let Ok(text) = super::explain::explain(i, &func.name) {
                    let _ = write!(x.traces, "{file}: trace of {}:\n{text}\n", func.name);
                }
            }
        }
        x
    }
}

/// What a flood is counted by: the message and the function symbol (or, outside
/// functions, the section) it is in; with the place's name. (Functions of one name, such as
/// the static copies of one inline function in a module, are counted apart.)
fn flood_key(f: &Finding) -> Option<(String, Result<u32, u32>, String)> {
    let at = f.at.as_ref()?;
    let (place, name) = match &at.function {
        Some(s) => (Ok(s.id.0), s.name.clone()),
        None => (Err(at.section.0), at.section_name.clone()),
    };
    Some((f.what.to_string(), place, name))
}

/// The findings of `file` in objtool's layout; with `group`, a message repeated more than
/// [`FLOOD`] times in one function is printed once with the count (its backtraces and
/// explanations with it). `blocks` are printed under their warnings.
pub fn render(
    findings: &Findings,
    file: &str,
    backtrace: bool,
    verbose: bool,
    group: bool,
    blocks: &HashMap<usize, String>,
) -> String {
    let all = findings.findings();
    let mut floods: HashMap<_, (usize, String)> = HashMap::new();
    if group {
        for f in all.iter().filter(|f| f.kind == Kind::Warning) {
            if let (Some(key), Some(at)) = (flood_key(f), &f.at) {
                let e = floods.entry(key).or_insert((0, String::new()));
                e.0 += 1;
                e.1 = at.to_string();
            }
        }
        floods.retain(|_, (n, _)| *n > FLOOD);
    }
    let mut said = HashSet::new();
    let mut out = String::new();
    let mut skip = false;
    let mut pending: Option<&String> = None;
    for (k, l) in all.iter().enumerate() {
        match l.kind {
            Kind::Warning => {
                if let Some(b) = pending.take() {
                    out.push_str(b);
                }
                let flood = flood_key(l).and_then(|key| Some((floods.get(&key)?, key)));
                skip = false;
                match flood {
                    Some(((n, last), key)) => {
                        if !said.insert(key.clone()) {
                            skip = true;
                            continue;
                        }
                        let _ = writeln!(
                            out,
                            "{file}: warning: orctool: {l} (and {} more in {}, the last at {last}; --all prints each)",
                            n - 1,
                            key.2
                        );
                    }
                    None => {
                        let _ = writeln!(out, "{file}: warning: orctool: {l}");
                    }
                }
                pending = blocks.get(&k);
            }
            _ if skip => {}
            Kind::Backtrace if backtrace || verbose => {
                let _ = writeln!(out, "{file}: warning: orctool:   {l}");
            }
            Kind::Detail if verbose => {
                let _ = writeln!(out, "{file}: warning: orctool:   {l}");
            }
            Kind::Backtrace | Kind::Detail => {}
        }
    }
    if let Some(b) = pending {
        out.push_str(b);
    }
    out
}

/// Why an object that was to get ORC (`--orc`, written or `--dry-run`) ends with none, or
/// `None` when that is no surprise (no code at all; objtool's "already has ORC" warning
/// said it). `generated`: how many rows generation made (`None`: it failed or never ran);
/// `unexpressed`: the first state ORC cannot express, looked for again when generation
/// failed without a printed warning.
pub fn no_orc_reason(
    job: &Job<'_>,
    obj: &Object<'_>,
    out: &Outcome,
    generated: Option<usize>,
    unexpressed: impl FnOnce() -> Option<String>,
) -> Option<String> {
    if out.fatal {
        return Some(if out.findings.warning_count() > 0 {
            "the analysis stopped at the warning above".into()
        } else {
            "the analysis stopped".into()
        });
    }
    if obj.section_by_name(b".orc_unwind").is_some() && !job.force {
        return None;
    }
    match generated {
        Some(0) if out.stats.insns > 0 => {
            Some("no instruction of an executable section has a stack state".into())
        }
        Some(_) => None,
        None => {
            let failed = out.findings.findings().iter().find(|f| {
                matches!(
                    f.what,
                    FindingKind::UnknownCfaBase(_)
                        | FindingKind::UnknownBpBase(_)
                        | FindingKind::UnknownHintType(_)
                )
            });
            Some(match failed {
                Some(f) => format!("a state ORC cannot express: {f}"),
                None if out.stats.insns == 0 => return None,
                // the warning of generation was not printed (one warning per function)
                None => unexpressed().unwrap_or_else(|| "ORC generation failed".into()),
            })
        }
    }
}

/// The first instruction whose state ORC cannot express, with why (`init_orc_entry()`'s
/// warning, which objtool prints only when the function has no warning yet).
pub fn first_unexpressed(i: &Inspect<'_, '_, '_>) -> Option<String> {
    let p = i.program;
    let w = i.walk?;
    for k in 0..p.insns.insns.len() {
        let id = crate::ids::InsnId(k as u32);
        let Some(s) = w.cfi.get(k).copied().flatten() else {
            continue;
        };
        let state = w.states.states().get(s.index());
        if let Err(e) = crate::orc::generate::entry_for(state, i.abi) {
            let what = FindingKind::from(e);
            return Some(format!(
                "the state at {} ({}) has no ORC form: {what}",
                p.insn_location(id),
                super::explain::state_words(state)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SecId, SymId};
    use crate::report::{LocatedSymbol, Location};

    fn at(sym: u32, name: &str, off: u64) -> Location {
        Location {
            section: SecId(2),
            section_name: ".text".into(),
            offset: off,
            function: Some(LocatedSymbol {
                id: SymId(sym),
                name: name.into(),
                offset: off,
            }),
            sec_address: false,
        }
    }

    fn render_all(f: &Findings, group: bool) -> String {
        render(f, "F", false, false, group, &HashMap::new())
    }

    /// More than three of one message in one function symbol: one line with the count;
    /// two functions of one name are counted apart; three are printed as they are.
    #[test]
    fn floods_are_counted_per_function_symbol() {
        let mut f = Findings::new(8);
        f.dedup = false;
        for off in [1, 2, 3, 4] {
            f.warn_at(at(1, "p", off), FindingKind::UnreachableInstruction);
        }
        for off in [1, 2, 3] {
            f.warn_at(at(2, "p", off), FindingKind::UnreachableInstruction);
        }
        f.warn_at(at(1, "p", 9), FindingKind::ReturnWithModifiedFrame);
        assert_eq!(
            render_all(&f, true),
            "F: warning: orctool: p+0x1: unreachable instruction (and 3 more in p, the last at p+0x4; --all prints each)\n\
             F: warning: orctool: p+0x1: unreachable instruction\n\
             F: warning: orctool: p+0x2: unreachable instruction\n\
             F: warning: orctool: p+0x3: unreachable instruction\n\
             F: warning: orctool: p+0x9: return with modified stack frame\n"
        );
        assert_eq!(render_all(&f, false), f.render("F", false, false));
        assert_eq!(render_all(&f, false).lines().count(), 8);
    }
}
