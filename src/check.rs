//! The pipeline on one screen: load → decode → symbols and relocations → program model →
//! walk → ORC rows.

use crate::cfg::symbols::Symbols;
use crate::cfg::{self, Program, relocs::Relocs};
use crate::cfi::walk::{self, Walk};
use crate::decode::{self, x86::DecodeNote};
use crate::edits::Edits;
use crate::elf::Object;
use crate::error::Result;
use crate::options::Options;
use crate::orc::OrcAbi;
use crate::orc::generate::{self, OrcRow};
use crate::report::{FindingKind, Findings};

/// Objects smaller than this are read on one thread.
const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// Everything a check run produces.
pub struct Outcome {
    pub findings: Findings,
    /// Lines objtool prints as `error: objtool: …` (not warnings).
    pub errors: Vec<String>,
    /// The ORC rows, when `--orc` was asked and generation succeeded.
    pub orc: Option<Vec<OrcRow>>,
    /// What the run changes in the object besides ORC: the bytes rewritten while the model
    /// was built (jump labels, `--mnop`, `--hacks=noinstr`) and what the actions add
    /// (`--static-call`, `--retpoline`, `--prefix`, …), in objtool's order; the ORC sections
    /// come after these.
    pub edits: Edits,
    /// The analysis stopped at a fatal error.
    pub fatal: bool,
    pub stats: Stats,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub insns: usize,
    pub states: usize,
    pub visited: usize,
    /// The phases in order (filled only with `--stats`, except their wall times).
    pub phases: Vec<Phase>,
    /// [`cpu_time`] at the end of the last phase.
    pub cpu_mark: std::time::Duration,
    /// When the last phase ended (or the first began).
    pub last_end: Option<std::time::Instant>,
}

/// One phase of a run as `--stats` reports it.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub name: &'static str,
    pub wall: std::time::Duration,
    /// CPU time of every thread of the process during the phase (zero without `--stats`):
    /// beside `wall` it shows how much of the phase ran in parallel.
    pub cpu: std::time::Duration,
    /// Resident memory at the phase's end (KiB; zero without `--stats`).
    pub rss_kib: u64,
}

/// CPU time (user and system, all threads) this process has used so far (zero where /proc
/// is not available), in the kernel's clock ticks (10 ms).
pub fn cpu_time() -> std::time::Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // after the command name in parentheses: state is field 3, utime 14, stime 15
            let rest = &s[s.rfind(')')? + 1..];
            let mut f = rest.split_whitespace().skip(11);
            Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
        });
    std::time::Duration::from_millis(ticks.unwrap_or(0) * 10)
}

/// Resident set size of this process in KiB (0 where /proc is not available).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// Peak resident set size of this process in KiB (`VmHWM`; 0 where /proc is not available).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}

impl Stats {
    /// Starts the first phase's clock (`measure`: its CPU time too, for `--stats`).
    fn start(&mut self, measure: bool) {
        self.last_end = Some(std::time::Instant::now());
        if measure {
            self.cpu_mark = cpu_time();
        }
    }

    /// Records a phase from the end of the last one (or the start) to now; `measure`:
    /// its CPU time and the resident memory too (reading /proc costs a small module's run
    /// a noticeable part).
    pub fn lap(&mut self, name: &'static str, measure: bool) {
        let now = std::time::Instant::now();
        let wall = self.last_end.map_or(std::time::Duration::ZERO, |t| now - t);
        let (rss_kib, cpu) = if measure {
            let now = cpu_time();
            let cpu = now.saturating_sub(self.cpu_mark);
            self.cpu_mark = now;
            (rss_kib(), cpu)
        } else {
            (0, std::time::Duration::ZERO)
        };
        self.phases.push(Phase {
            name,
            wall,
            cpu,
            rss_kib,
        });
        self.last_end = Some(now);
    }
}

/// Runs the checks objtool runs with the given options.
pub fn check(obj: &Object<'_>, opts: &Options, abi: OrcAbi) -> Result<Outcome> {
    check_with(obj, opts, abi, &|| {})
}

/// [`check`], calling `release` once the object's bytes are no longer needed in memory
/// (after the program model is built: the walk and ORC generation read only the model).
/// The command line releases the pages of its memory map there.
pub fn check_with(
    obj: &Object<'_>,
    opts: &Options,
    abi: OrcAbi,
    release: &dyn Fn(),
) -> Result<Outcome> {
    run(obj, opts, abi, release, None)
}

/// What a check leaves for a reader that asks for it (`orctool explain`), read-only: the
/// program model, the walk's records (none when nothing was walked), the ORC rows and the
/// findings so far.
pub struct Inspect<'r, 'a, 'd> {
    pub program: &'r Program<'a, 'd>,
    pub walk: Option<&'r Walk>,
    pub orc: Option<&'r [OrcRow]>,
    pub findings: &'r Findings,
    pub abi: OrcAbi,
}

/// [`check`], handing `inspect` the model and the walk before they are dropped (called
/// once, unless the analysis stopped before the model was built).
pub fn check_inspect(
    obj: &Object<'_>,
    opts: &Options,
    abi: OrcAbi,
    inspect: &mut dyn FnMut(&Inspect<'_, '_, '_>),
) -> Result<Outcome> {
    run(obj, opts, abi, &|| {}, Some(inspect))
}

fn run(
    obj: &Object<'_>,
    opts: &Options,
    abi: OrcAbi,
    release: &dyn Fn(),
    inspect: Option<&mut dyn FnMut(&Inspect<'_, '_, '_>)>,
) -> Result<Outcome> {
    let mut stats = Stats::default();
    stats.start(opts.stats);
    // The three reads are independent: side by side for a large object (for a small
    // module, starting the thread pool costs more than it saves).
    // (decoding itself splits large sections into pieces)
    let ((syms, decoded), relocs) = if obj.data().len() > PARALLEL_MIN_BYTES || opts.force_parallel
    {
        rayon::join(
            || {
                rayon::join(
                    || Symbols::read(obj),
                    || {
                        decode::decode(
                            obj,
                            if opts.force_parallel {
                                decode::Threads::Forced
                            } else {
                                decode::Threads::Large
                            },
                        )
                    },
                )
            },
            || Relocs::read(obj, obj.symbol_count()),
        )
    } else {
        // (decoding last gives a decoder warm-up running beside, see
        // [`decode::warm_up`], the most time)
        let syms = Symbols::read(obj);
        let relocs = Relocs::read(obj, obj.symbol_count());
        ((syms, decode::decode(obj, decode::Threads::One)), relocs)
    };
    let syms = syms?;
    stats.lap("read", opts.stats);
    let mut opts = opts.clone();
    let mut errors = Vec::new();
    if syms.num_files > 1 && !opts.link {
        errors.push("Linked object detected, forcing --link".to_owned());
        opts.link = true;
    }
    let mut findings = Findings::new(syms.syms.len());
    findings.dedup = !opts.rules_6_1;
    let mut out = Outcome {
        findings,
        errors,
        orc: None,
        edits: Edits::default(),
        fatal: false,
        stats,
    };
    let insns = match decoded {
        Ok(t) => t,
        Err(e) => {
            out.findings.warn(FindingKind::CantDecode {
                section: obj.section_name_lossy(e.sec),
                offset: e.offset,
            });
            out.fatal = true;
            return Ok(out);
        }
    };
    for n in &insns.notes {
        let (section, offset) = (obj.section_name_lossy(n.sec), u64::from(n.offset));
        out.findings.warn(match n.note {
            DecodeNote::InvalidLea => FindingKind::InvalidLea { section, offset },
            DecodeNote::Enqcmd => FindingKind::Enqcmd { section, offset },
            DecodeNote::NotrackPrefix => FindingKind::NotrackPrefix { section, offset },
        });
    }
    out.stats.insns = insns.insns.len();
    let relocs = relocs?;
    let (program, built) = cfg::build(obj, &opts, insns, syms, relocs, &mut out.findings);
    release();
    out.stats.lap("build", opts.stats);
    // the bytes objtool rewrote while it built the model (jump labels, --mnop,
    // --hacks=noinstr), written even when the build or a later stage stops
    crate::actions::rewrites(&program, &mut out.edits)?;
    if built.is_err() {
        out.fatal = true;
        return Ok(out);
    }
    // objtool: nothing more without instructions
    let walked = if program.nreal == 0 {
        None
    } else {
        match analyse(&program, &opts, abi, &mut out) {
            Ok(w) => w,
            Err(_) => {
                out.fatal = true;
                return Ok(out);
            }
        }
    };
    if opts.orc
        && let Some(w) = &walked
    {
        out.orc = generate::generate(&program, w, abi, &out.edits, &mut out.findings).ok();
        out.stats.lap("generate", opts.stats);
    }
    if let Some(inspect) = inspect {
        inspect(&Inspect {
            program: &program,
            walk: walked.as_ref(),
            orc: out.orc.as_deref(),
            findings: &out.findings,
            abi,
        });
    }
    if obj.data().len() > PARALLEL_MIN_BYTES {
        release_in_background(program, walked);
    }
    Ok(out)
}

/// Frees the model's and the walk's large tables on a thread of their own: returning their
/// memory to the system (hundreds of MB for a `vmlinux.o`) then overlaps with what the
/// caller does next (writing the object) instead of delaying it.
fn release_in_background(program: Program<'_, '_>, walked: Option<Walk>) {
    let Program {
        insns,
        attrs,
        alts,
        jump_tables,
        ..
    } = program;
    let tables = (insns, attrs, alts, jump_tables, walked);
    // (if no thread can be started, the tables are freed here when the closure is dropped)
    let _ = std::thread::Builder::new()
        .name("orctool-free".into())
        .spawn(move || drop(tables));
}

/// objtool's `check()` after `decode_sections()`: the actions before the walk, the walk
/// (or the noinstr sections alone), the actions after it (their [`Edits`] into `out`).
/// Returns the walk, if one ran; `Err` when an action stopped the analysis.
fn analyse(
    program: &Program<'_, '_>,
    opts: &Options,
    abi: OrcAbi,
    out: &mut Outcome,
) -> std::result::Result<Option<Walk>, cfg::AnalysisError> {
    let walking = opts.stackval || opts.orc || opts.uaccess;
    let warned = crate::actions::before_walk(program, opts, &mut out.findings)?;
    let mut walked: Option<Walk> = None;
    if !walking && opts.noinstr {
        // objtool: the noinstr sections alone (no ORC, no unreachable check)
        walked = Some(walk::validate_noinstr_sections(program, &mut out.findings));
    }
    if walking {
        let w = walk::validate_after(program, &mut out.findings, warned);
        crate::alt::explain::explain_conflicts(program, &w, &mut out.findings);
        if opts.alt_unwind_check {
            crate::orc::unwind_check::unwind_check(program, &w, abi, &mut out.findings);
        }
        walked = Some(w);
    }
    if let Some(w) = &walked {
        out.stats.lap("walk", opts.stats);
        out.stats.states = w.states.len();
        out.stats.visited = w.visited.iter().filter(|&&v| v != 0).count();
    }
    crate::actions::after_walk(
        program,
        walked.as_mut(),
        opts,
        &mut out.findings,
        &mut out.edits,
    )?;
    if opts.any_action_besides_orc() {
        out.stats.lap("actions", opts.stats);
    }
    Ok(walked)
}
