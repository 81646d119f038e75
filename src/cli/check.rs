//! `orctool check`: its options, their rules, and the loop over the files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::run::{self, Job, Output, Tool};
use crate::options::Options;
use crate::orc::OrcAbi;

const AFTER_LONG_HELP: &str = "\
FILES:
  Relocatable x86-64 ELF objects: a compiler's .o, a module's .ko (also .ko.xz, .ko.zst,
  .ko.gz: decompressed in memory; they need -o OUT to be written) or a vmlinux.o. An
  executable or shared object is refused: check needs a relocatable object.

WHAT IS WRITTEN:
  Without an action (--orc, --stackval, --uaccess, --hacks=jump_label, --hacks=noinstr),
  check validates the stack state with objtool's --orc rules and writes nothing. With --orc
  it writes the generated .orc_unwind, .orc_unwind_ip and .rela.orc_unwind_ip into FILE
  (in place, or into -o OUT); --hacks=jump_label also NOPs compiler jump-label jumps, as
  objtool does. --dry-run writes nothing; --print-orc prints the table instead of writing.
  -o OUT alone writes the object with its generated ORC table.

WHAT IS PRINTED:
  objtool's warnings on stderr (FILE: warning: orctool: FUNC+0xOFF: message). More than
  three with one message in one function are printed once with the count; --all prints
  each, and only objtool's lines. An object that was to get ORC and gets none is named:
  FILE: no ORC written (why). -v explains each warning: its cause, path, states and
  source line (from the object's DWARF line info); --trace lists the functions that warn.

EXIT STATUS:
  0  every file was checked (warnings were printed, or none)
  1  a file could not be read or written, or (with --werror) a file got warnings
  2  the command line is wrong (unknown or conflicting options, an action orctool does
     not implement yet)

EXAMPLES:
  orctool check kernel/fork.o
      validate, write nothing
  orctool check --orc --module drivers/net/dummy.ko
      validate and add ORC to a module object, in place (what objtool --orc --module does)
  orctool check --print-orc --stats fs/*.o
      validate several objects; print each one's ORC table and statistics under its name
  orctool check -v --trace arch/x86/entry/entry_64.o
      explain each warning with its cause and source line, and list each warning function
  orctool check --orc -o out.ko dummy.ko.xz
      read a compressed module, write the result uncompressed to out.ko";

/// objtool's toolchain hacks (`--hacks=LIST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Hack {
    /// NOP out compiler jump-label jumps (asm goto).
    JumpLabel,
    /// Allow instrumentation calls in noinstr code that the compiler added.
    Noinstr,
    /// Skylake call-depth tracking (with --rethunk: `.call_sites`).
    Skylake,
}

#[derive(Args, Debug)]
#[command(
    after_help = "--help describes FILES, what is written, the exit statuses, with examples.",
    after_long_help = AFTER_LONG_HELP
)]
pub struct CheckArgs {
    /// Generate ORC and write it into the object (and run the validation it needs).
    #[arg(long, help_heading = "Actions")]
    orc: bool,
    /// Validate frame-pointer rules too.
    #[arg(long, help_heading = "Actions")]
    stackval: bool,
    /// Validate uaccess (SMAP) rules.
    #[arg(long, help_heading = "Actions")]
    uaccess: bool,
    /// objtool's toolchain hacks; all three when no list is given (the list needs `=`:
    /// `--hacks=jump_label,noinstr`).
    #[arg(
        long,
        help_heading = "Actions",
        value_name = "LIST",
        num_args = 0..=1,
        require_equals = true,
        value_delimiter = ',',
        default_missing_value = "jump_label,noinstr,skylake"
    )]
    hacks: Vec<Hack>,
    /// Validate IBT: addresses taken must point at ENDBR; list the rest in .ibt_endbr_seal.
    #[arg(long, help_heading = "Actions")]
    ibt: bool,
    /// Validate straight-line-speculation mitigations (int3 after ret and indirect jumps).
    #[arg(long, help_heading = "Actions")]
    sls: bool,
    /// Annotate mcount/fentry calls for ftrace (`__mcount_loc`).
    #[arg(long, help_heading = "Actions")]
    mcount: bool,
    /// Validate noinstr rules (with --link: calls out of the noinstr sections).
    #[arg(long, help_heading = "Actions")]
    noinstr: bool,
    /// Validate and annotate retpoline usage (`.retpoline_sites`).
    #[arg(long, help_heading = "Actions")]
    retpoline: bool,
    /// Validate and annotate rethunk usage (`.return_sites`; with `--hacks=skylake`, `.call_sites`).
    #[arg(long, help_heading = "Actions")]
    rethunk: bool,
    /// Validate entry unret placement (with --rethunk).
    #[arg(long, help_heading = "Actions", requires = "rethunk")]
    unret: bool,
    /// Generate __pfx_ symbols over the N bytes of NOP padding before functions.
    #[arg(long, help_heading = "Actions", value_name = "N")]
    prefix: Option<i32>,
    /// Annotate static calls (`.static_call_sites`).
    #[arg(long, help_heading = "Actions")]
    static_call: bool,
    /// Annotate kCFI function preambles (`.cfi_sites`).
    #[arg(long, help_heading = "Actions")]
    cfi: bool,
    /// NOP out mcount call sites (with --mcount).
    #[arg(long, help_heading = "Actions", requires = "mcount")]
    mnop: bool,
    /// The object is part of a kernel module.
    #[arg(long)]
    module: bool,
    /// The object is linked (vmlinux.o).
    #[arg(long)]
    link: bool,
    /// Skip 'unreachable instruction' warnings.
    #[arg(long)]
    no_unreachable: bool,
    /// Print section addresses in warnings.
    #[arg(long)]
    sec_address: bool,
    /// Print a backtrace of the path that failed.
    #[arg(long)]
    backtrace: bool,
    /// Backtraces plus orctool's explanation under each warning: the instruction that made
    /// the state wrong, the path that led there, the states in words, the site a
    /// replacement patches, and the source line (from the object's DWARF line info).
    #[arg(short, long)]
    verbose: bool,
    /// Print every warning and only the lines objtool prints: a flood of one warning in one
    /// function is not said once with a count, and no `FILE: no ORC written (why)` line.
    #[arg(long)]
    all: bool,
    /// After the warnings, `orctool explain`'s listing of every function that warns.
    #[arg(long)]
    trace: bool,
    /// Skip orctool's own check that every alternative unwinds correctly with the merged
    /// ORC table (objtool has no such check; it runs only where ORC is generated).
    #[arg(long)]
    no_alt_unwind_check: bool,
    /// Exit with status 1 when there are warnings.
    #[arg(long)]
    werror: bool,
    /// ORC ABI of the entries to generate (default: detected from the object).
    #[arg(long, value_name = "6.1|6.12")]
    orc_abi: Option<OrcAbi>,
    /// Print the generated ORC table (in `dump` format) on stdout instead of writing it.
    #[arg(long, help_heading = "Output", conflicts_with_all = ["output", "sync"])]
    print_orc: bool,
    /// Write the result to OUT instead of changing FILE in place (one FILE only; `-` for
    /// standard output).
    #[arg(short, long, value_name = "OUT", help_heading = "Output")]
    output: Option<PathBuf>,
    /// Replace ORC sections the object already has (objtool refuses such objects).
    #[arg(long, help_heading = "Output")]
    force: bool,
    /// Check (and generate) but write nothing.
    #[arg(long, help_heading = "Output", conflicts_with_all = ["output", "sync"])]
    dry_run: bool,
    /// Flush the written object to disk (fsync) before replacing the original.
    #[arg(long, help_heading = "Output")]
    sync: bool,
    /// Create FILE.orig, a copy of FILE, before changing it in place.
    #[arg(long, help_heading = "Output")]
    backup: bool,
    /// Print counts, each phase's time (reading and decompressing included) and resident
    /// memory on stderr.
    #[arg(long)]
    stats: bool,
    /// Worker threads (default: all cores). The output is the same for any number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Run every parallel stage even for small objects (for testing the parallel paths).
    #[arg(long, hide = true)]
    force_parallel: bool,
    /// Test hook: fail, stop after, or raise a signal before the writer's Nth system call
    /// (`fail:N`, `stop:N`, `signal:N:SIG`).
    #[arg(long, hide = true, value_name = "SPEC", value_parser = parse_fault)]
    fault: Option<crate::elf::output::Fault>,
    /// How findings are printed: `text` (objtool's lines on stderr), `json` (one object
    /// per finding and line on stdout) or `sarif` (one SARIF 2.1.0 log on stdout).
    #[arg(long, value_enum, default_value_t = super::format::Format::Text, help_heading = "Output")]
    format: super::format::Format,
    /// Objects to check (see FILES below).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn parse_fault(text: &str) -> Result<crate::elf::output::Fault, String> {
    crate::elf::output::Fault::parse(text).ok_or_else(|| format!("bad fault spec '{text}'"))
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("orctool: check: {msg}");
    ExitCode::from(2)
}

pub fn run(args: &CheckArgs) -> ExitCode {
    if args.output.is_some() && args.files.len() > 1 {
        return usage_error("-o/--output takes exactly one FILE");
    }
    let mut opts = Options {
        stackval: args.stackval,
        orc: args.orc,
        uaccess: args.uaccess,
        module: args.module,
        link: args.link,
        no_unreachable: args.no_unreachable,
        sec_address: args.sec_address,
        backtrace: args.backtrace,
        verbose: args.verbose,
        alt_unwind_check: !args.no_alt_unwind_check,
        ibt: args.ibt,
        mcount: args.mcount,
        mnop: args.mnop,
        noinstr: args.noinstr,
        retpoline: args.retpoline,
        rethunk: args.rethunk,
        unret: args.unret,
        sls: args.sls,
        static_call: args.static_call,
        cfi: args.cfi,
        backup: args.backup,
        prefix: args.prefix.filter(|&n| n != 0).map(|n| n as u32),
        force_parallel: args.force_parallel,
        stats: args.stats,
        ..Default::default()
    };
    for h in &args.hacks {
        match h {
            Hack::JumpLabel => opts.hack_jump_label = true,
            Hack::Noinstr => opts.hack_noinstr = true,
            Hack::Skylake => opts.hack_skylake = true,
        }
    }
    // an action of objtool's (`opts_valid`); without one, validate as --orc does
    let action =
        opts.orc || opts.stackval || opts.uaccess || opts.hack_jump_label || opts.hack_noinstr;
    let action = action
        || opts.retpoline
        || opts.rethunk
        || opts.static_call
        || opts.mcount
        || opts.noinstr
        || opts.sls;
    let output = match &args.output {
        Some(out) => Output::File(out.clone()),
        None if args.print_orc => Output::None,
        None if args.dry_run => Output::DryRun,
        None if !action => Output::None,
        None => Output::InPlace,
    };
    // (-o OUT alone: validate as --orc does, and write)
    if !action || args.print_orc {
        opts.orc = true;
    }
    // the alternative unwind check is about the ORC table: a frame-pointer kernel
    // (--stackval alone) has none
    opts.alt_unwind_check &= opts.orc;
    if let Some(n) = args.threads {
        if rayon::ThreadPoolBuilder::new()
            .num_threads(usize::from(n))
            .build_global()
            .is_err()
        {
            eprintln!("orctool: can't set up {n} threads");
            return ExitCode::from(2);
        }
    }
    let several = args.files.len() > 1;
    let mut status = ExitCode::SUCCESS;
    let collected = std::cell::RefCell::new(Vec::new());
    for (n, path) in args.files.iter().enumerate() {
        let job = Job {
            opts: &opts,
            tool: Tool::Orctool,
            orc_abi: args.orc_abi,
            output: output.clone(),
            print_orc: args.print_orc,
            force: args.force,
            sync: args.sync,
            header: several
                .then(|| format!("{}{}:\n", if n > 0 { "\n" } else { "" }, path.display())),
            fault: args.fault,
            format: args.format,
            collect: (args.format == super::format::Format::Sarif).then_some(&collected),
            all: args.all,
            trace: args.trace,
        };
        let result = run::prepare_in_place(&job, path)
            .and_then(|()| run::load(path, args.stats))
            .and_then(|loaded| {
                let obj = run::parse_relocatable(&loaded.data)?;
                // (objtool's --backup: FILE.orig before anything is written in place)
                if args.backup && job.output == Output::InPlace {
                    crate::elf::output::backup(path)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                }
                run::run(&job, path, &loaded, &obj)
            });
        match result {
            Ok(warned) => {
                if warned && args.werror {
                    status = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("orctool: {}: {e}", path.display());
                status = ExitCode::FAILURE;
            }
        }
    }
    if args.format == super::format::Format::Sarif {
        super::print_stdout(&super::format::sarif(&collected.into_inner()));
    }
    status
}
