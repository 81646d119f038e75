//! One object through the library: read, check, print, write. Both command lines (orctool's
//! `check` and objtool's) end here; this is the one place the CLI uses the check and
//! report APIs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::check::{self, Outcome, Stats};
use crate::elf::{LE, Object, ObjectKind, input};
use crate::error::{ReadError, Result};
use crate::options::Options;
use crate::orc::{self, OrcAbi};

/// The name a message starts with: `orctool`, or `objtool` when orctool stands in for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Orctool,
    Objtool,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Orctool => "orctool",
            Tool::Objtool => "objtool",
        }
    }
}

/// What becomes of the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Replace the input file (objtool's way).
    InPlace,
    /// Write the result to this file.
    File(PathBuf),
    /// objtool's `--dry-run`: everything as for writing, then write nothing.
    DryRun,
    /// Validate only: no ORC is written, and an existing table is no reason to warn.
    None,
}

/// How to run one object.
pub struct Job<'a> {
    pub opts: &'a Options,
    pub tool: Tool,
    pub orc_abi: Option<OrcAbi>,
    pub output: Output,
    /// Print the generated table on stdout (implies [`Output::None`]).
    pub print_orc: bool,
    /// Replace ORC sections the object already has.
    pub force: bool,
    pub sync: bool,
    /// Printed before the table (`--print-orc`) and the statistics with several files.
    pub header: Option<String>,
    /// The writer's test hook (`--fault`).
    pub fault: Option<crate::elf::output::Fault>,
    /// How findings are printed (`--format`).
    pub format: super::format::Format,
    /// `--format sarif`: where the findings of all files are collected, to be printed as
    /// one log at the end.
    pub collect: Option<&'a std::cell::RefCell<Vec<super::format::JsonFinding>>>,
    /// Print every warning and only objtool's lines (`check --all`): no flood grouped, no
    /// `no ORC written` line. (objtool's own command line always prints so.)
    pub all: bool,
    /// `check --trace`: `explain`'s listing of every function that warns.
    pub trace: bool,
}

impl<'a> Job<'a> {
    /// A job with nothing beyond the options, the tool's name and the output: the ABI from
    /// the object, no table printed, no `--force`/`--sync`, no header, text findings.
    pub fn new(opts: &'a Options, tool: Tool, output: Output) -> Self {
        Job {
            opts,
            tool,
            orc_abi: None,
            output,
            print_orc: false,
            force: false,
            sync: false,
            header: None,
            fault: None,
            format: Default::default(),
            collect: None,
            all: false,
            trace: false,
        }
    }
}

/// Before reading an object that may be changed in place: objtool's open for writing (its
/// error when the user may not), then what a killed earlier run left beside or inside the
/// file is cleaned up (not for `--dry-run`, which changes nothing).
pub fn prepare_in_place(job: &Job<'_>, path: &Path) -> Result<()> {
    if matches!(job.output, Output::InPlace | Output::DryRun) {
        crate::elf::output::check_writable(path)?;
    }
    if job.output == Output::InPlace {
        crate::elf::output::recover(path)?;
    }
    Ok(())
}

/// An object read from its file, with the time that took (decompression included).
pub struct Loaded {
    pub data: input::Input,
    pub read_time: Duration,
    /// Resident memory after reading, KiB (measured for `--stats` only).
    pub read_rss: u64,
    /// The process's CPU time when reading began (`--stats`; a process checks files one
    /// after another, so each file's figures are differences from this).
    pub cpu_start: Duration,
    /// CPU time the reading took (`--stats`).
    pub read_cpu: Duration,
    pub start: Instant,
}

/// Reads (and decompresses) `path`.
pub fn load(path: &Path, stats: bool) -> Result<Loaded> {
    let start = Instant::now();
    let cpu = || {
        if stats {
            check::cpu_time()
        } else {
            Duration::ZERO
        }
    };
    let cpu_start = cpu();
    let data = input::open(path)?;
    Ok(Loaded {
        data,
        read_time: start.elapsed(),
        read_rss: if stats { check::rss_kib() } else { 0 },
        cpu_start,
        read_cpu: cpu().saturating_sub(cpu_start),
        start,
    })
}

impl Loaded {
    pub fn compressed(&self) -> bool {
        matches!(&self.data, input::Input::Owned(v) if !v.is_empty())
    }
}

/// The object check needs: relocatable (`.o`, `.ko`, `vmlinux.o`), not a linked image.
pub fn parse_relocatable<'d>(data: &'d [u8]) -> Result<Object<'d>> {
    let obj = Object::parse(data)?;
    if obj.kind() != ObjectKind::Relocatable {
        let name = match obj.header().e_type.get(LE) {
            object::elf::ET_EXEC => "ET_EXEC, an executable",
            object::elf::ET_DYN => "ET_DYN, a shared object",
            object::elf::ET_CORE => "ET_CORE, a core file",
            _ => "unknown",
        };
        return Err(ReadError::NotRelocatable(name).into());
    }
    Ok(obj)
}

/// Whether the object has more than one `STT_FILE` symbol: objtool's `has_multiple_files`
/// (a linked object such as `vmlinux.o`).
pub fn has_multiple_files(obj: &Object<'_>) -> bool {
    let mut files = 0;
    for i in 1..obj.symbol_count() {
        if let Ok(sym) = obj.symbol(crate::elf::SymId(i as u32)) {
            if sym.st_type() == object::elf::STT_FILE {
                files += 1;
                if files > 1 {
                    return true;
                }
            }
        }
    }
    false
}

/// Checks one object, prints its findings (stderr), its table (`--print-orc`, stdout) and
/// its statistics, and writes the result. Returns whether it printed warnings.
pub fn run(job: &Job<'_>, path: &Path, loaded: &Loaded, obj: &Object<'_>) -> Result<bool> {
    std::thread::scope(|scope| {
        // (the hook counts the writer's system calls: the prefill's are the first)
        crate::elf::output::inject_fault(job.fault);
        // a large object replaced in place: its unchanged sections copied meanwhile (not
        // when only ORC would change it and it has ORC: objtool refuses to add it again)
        let has_orc = || obj.section_by_name(b".orc_unwind").is_some() && !job.force;
        let prefill = (job.output == Output::InPlace
            && !job.print_orc
            && !loaded.compressed()
            && (job.opts.may_change_object() || (job.opts.orc && !has_orc())))
        .then(|| crate::write::start_prefill(scope, obj, path, &write_options(job)))
        .flatten();
        run_in(job, path, loaded, obj, prefill)
    })
}

fn write_options(job: &Job<'_>) -> crate::write::WriteOptions {
    crate::write::WriteOptions {
        force: job.force,
        sync: job.sync,
    }
}

fn run_in(
    job: &Job<'_>,
    path: &Path,
    loaded: &Loaded,
    obj: &Object<'_>,
    prefill: Option<crate::elf::output::Prefill<'_>>,
) -> Result<bool> {
    let (opts, abi) = object_options(job, obj);
    // orctool's own text output reads the model and the walk after the check: the
    // explanations under the warnings (-v) and the listings of the functions that warn
    let own_text = job.tool == Tool::Orctool && job.format == super::format::Format::Text;
    let mut extra = super::text::Extra::default();
    let mut out = if own_text && (opts.verbose || job.trace) {
        check::check_inspect(obj, &opts, abi, &mut |i| {
            extra = super::text::Extra::collect(
                i,
                obj,
                &path.display().to_string(),
                opts.verbose,
                job.trace,
            );
        })?
    } else {
        check::check_with(obj, &opts, abi, &|| loaded.data.release_pages())?
    };
    out.stats.phases.insert(
        0,
        check::Phase {
            name: read_phase(loaded),
            wall: loaded.read_time,
            cpu: loaded.read_cpu,
            rss_kib: loaded.read_rss,
        },
    );
    let writing = matches!(job.output, Output::InPlace | Output::File(_)) && !job.print_orc;
    // What to write: the ORC rows (objtool refuses an object that already has ORC, after
    // generating it) and the jump-label NOPs.
    let mut rows = None;
    let generated = out.orc.as_ref().map(Vec::len);
    if writing || job.output == Output::DryRun {
        if let Some(r) = out.orc.take().filter(|r| !r.is_empty()) {
            if obj.section_by_name(b".orc_unwind").is_some() && !job.force {
                out.findings
                    .warn(crate::report::FindingKind::OrcAlreadyPresent);
            } else {
                rows = Some(r);
            }
        }
    }
    let no_orc = (own_text
        && !job.all
        && opts.orc
        && (writing || job.output == Output::DryRun)
        && rows.is_none())
    .then(|| {
        super::text::no_orc_reason(job, obj, &out, generated, || {
            let mut why = None;
            check::check_inspect(obj, &opts, abi, &mut |i| {
                why = super::text::first_unexpressed(i);
            })
            .ok()?;
            why
        })
    })
    .flatten();
    print_findings(job, path, obj, &out, &extra);
    if let Some(why) = no_orc {
        eprintln!("{}: no ORC written ({why})", path.display());
    }
    if !extra.traces.is_empty() {
        eprint!("{}", extra.traces);
    }
    if job.print_orc {
        print_table(job, obj, abi, &out)?;
    }
    let changed = rows.is_some() || !out.edits.is_empty();
    let write_it = match &job.output {
        Output::File(_) => writing,
        Output::InPlace => writing && changed,
        _ => false,
    };
    if write_it {
        write(
            job,
            path,
            loaded,
            obj,
            rows.unwrap_or_default(),
            &mut out,
            prefill,
        )?;
    }
    if opts.stats {
        print_stats(job, &out.stats, loaded);
    }
    Ok(out.findings.warning_count() > 0)
}

/// The options and ORC ABI for one object: the job's, with the kernel version's rules.
fn object_options(job: &Job<'_>, obj: &Object<'_>) -> (Options, OrcAbi) {
    let (detected, source) = orc::detect_abi(obj);
    let abi = job.orc_abi.unwrap_or(detected);
    let mut opts = job.opts.clone();
    opts.rules_6_1 = abi == OrcAbi::V6_1;
    opts.alt_abi_6_1 = match source {
        orc::AbiSource::Vermagic(ma, mi) | orc::AbiSource::Banner(ma, mi) => (ma, mi) < (6, 3),
        _ => abi == OrcAbi::V6_1,
    };
    (opts, abi)
}

/// Checks one object as [`run`] does, printing and writing nothing, and hands `inspect`
/// the model and the walk (`orctool explain`). Returns the findings.
pub fn inspect(
    job: &Job<'_>,
    obj: &Object<'_>,
    inspect: &mut dyn FnMut(&check::Inspect<'_, '_, '_>),
) -> Result<crate::report::Findings> {
    let (opts, abi) = object_options(job, obj);
    Ok(check::check_inspect(obj, &opts, abi, inspect)?.findings)
}

fn read_phase(loaded: &Loaded) -> &'static str {
    if loaded.compressed() {
        "decompress"
    } else {
        "open"
    }
}

/// Writes the object changed to where the job says (`-o FILE`, or in place).
fn write(
    job: &Job<'_>,
    path: &Path,
    loaded: &Loaded,
    obj: &Object<'_>,
    rows: Vec<crate::orc::generate::OrcRow>,
    out: &mut Outcome,
    prefill: Option<crate::elf::output::Prefill<'_>>,
) -> Result<()> {
    let target = match &job.output {
        Output::File(p) => p.as_path(),
        _ => path,
    };
    let compressed = loaded.compressed();
    if target == path && compressed {
        return Err(ReadError::CompressedInPlace.into());
    }
    // the input file again, to copy its untouched sections without reading them
    let source = if compressed {
        None
    } else {
        Some(std::fs::File::open(path).map_err(ReadError::Os)?)
    };
    use crate::elf::output::Destination;
    let dest = if target == path {
        Destination::InPlace(path)
    } else if target.as_os_str() == "-" {
        Destination::Stdout
    } else {
        Destination::NewFile(target)
    };
    // objtool's order: the actions' sections and symbols, then ORC
    let mut edits = std::mem::take(&mut out.edits);
    if !rows.is_empty() {
        edits.steps.extend(crate::write::orc_steps(&rows));
    }
    // (the findings printed, the model freed on a thread, the ORC rows made into sections)
    out.stats.lap("prepare", job.opts.stats);
    // (waits for the copy when it is not done yet)
    let prefilled = prefill.and_then(|p| p.take());
    if job.opts.stats
        && let Some(p) = &prefilled
    {
        eprintln!(
            "{}: stats: prefill: {:.1} MiB copied beside the analysis in {:.3} ms",
            job.tool.name(),
            p.copied as f64 / (1 << 20) as f64,
            p.elapsed.as_secs_f64() * 1e3
        );
    }
    let method = crate::write::write_file_prefilled(
        obj,
        &edits,
        &write_options(job),
        source.as_ref(),
        dest,
        prefilled,
    )?;
    if job.opts.stats {
        eprintln!("{}: stats: write method: {method:?}", job.tool.name());
    }
    out.stats.lap("write", job.opts.stats);
    Ok(())
}

/// objtool's `error:` lines, then the warnings, in objtool's layout with the tool's name.
fn print_findings(
    job: &Job<'_>,
    path: &Path,
    obj: &Object<'_>,
    out: &Outcome,
    extra: &super::text::Extra,
) {
    let name = path.display().to_string();
    use super::format::{self, Format};
    if job.format != Format::Text {
        let lines = super::source::Lines::read(obj);
        let items: Vec<_> = out
            .errors
            .iter()
            .map(|e| format::json_error(&name, e))
            .chain(out.findings.findings().iter().map(|f| {
                let mut j = format::json_finding(&name, f);
                j.source = lines
                    .as_ref()
                    .zip(f.at.as_ref())
                    .and_then(|(l, at)| l.find(at.section, at.offset))
                    .map(|s| format::Source {
                        file: s.file.display().to_string(),
                        line: s.line,
                        column: s.column,
                    });
                j
            }))
            .collect();
        match job.collect {
            Some(all) => all.borrow_mut().extend(items),
            None => {
                super::print_stdout(&format::json_lines(&items));
            }
        }
        return;
    }
    let tool = job.tool.name();
    let mut text = String::new();
    for e in &out.errors {
        text.push_str(&format!("error: {tool}: {e}\n"));
    }
    let (backtrace, verbose) = match job.tool {
        Tool::Orctool => (job.opts.backtrace, job.opts.verbose),
        // objtool's --verbose adds the backtraces (and a disassembly by objdump, which
        // orctool does not run)
        Tool::Objtool => (job.opts.backtrace || job.opts.verbose, false),
    };
    if job.tool == Tool::Orctool {
        let group = !job.all;
        text.push_str(&super::text::render(
            &out.findings,
            &name,
            backtrace,
            verbose,
            group,
            &extra.blocks,
        ));
    } else {
        let rendered = out.findings.render(&name, backtrace, verbose);
        let from = format!("{name}: warning: orctool:");
        let to = format!("{name}: warning: objtool:");
        for line in rendered.lines() {
            match line.strip_prefix(&from) {
                Some(rest) => {
                    text.push_str(&to);
                    text.push_str(rest);
                }
                None => text.push_str(line),
            }
            text.push('\n');
        }
    }
    eprint!("{text}");
}

fn print_table(job: &Job<'_>, obj: &Object<'_>, abi: OrcAbi, out: &Outcome) -> Result<()> {
    let mut s = job.header.clone().unwrap_or_default();
    if let Some(rows) = &out.orc {
        for r in rows {
            let sec = String::from_utf8_lossy(obj.section_name(r.section)?).into_owned();
            let e = orc::OrcEntry::decode(abi, r.entry);
            s.push_str(&format!("{sec}+{:x}:{}\n", r.offset, e.dump_text(abi)));
        }
    }
    super::print_stdout(&s);
    Ok(())
}

fn print_stats(job: &Job<'_>, st: &Stats, loaded: &Loaded) {
    let tool = job.tool.name();
    let mut s = String::new();
    if let Some(h) = &job.header {
        s.push_str(&format!("{tool}: stats: {}", h.trim_start()));
    }
    s.push_str(&format!(
        "{tool}: stats: {} instructions, {} visited, {} distinct states\n",
        st.insns, st.visited, st.states
    ));
    for p in &st.phases {
        s.push_str(&format!(
            "{tool}: stats: {:>10}: {:8.3} ms, cpu {:5} ms, resident {:6} MiB\n",
            p.name,
            p.wall.as_secs_f64() * 1e3,
            p.cpu.as_millis(),
            p.rss_kib / 1024
        ));
    }
    s.push_str(&format!(
        "{tool}: stats: {:>10}: {:8.3} ms, cpu {:5} ms, peak     {:6} MiB\n",
        "total",
        loaded.start.elapsed().as_secs_f64() * 1e3,
        check::cpu_time()
            .saturating_sub(loaded.cpu_start)
            .as_millis(),
        check::peak_rss_kib() / 1024
    ));
    eprint!("{s}");
}
