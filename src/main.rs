//! The `orctool` command line: options → library → output and exit status. No analysis here.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orctool::elf::{Object, input};
use orctool::orc::{self, OrcAbi};

#[derive(Parser)]
#[command(
    name = "orctool",
    version,
    about = "ORC unwind tables and stack validation for x86-64 kernel objects"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate stack state (and with --orc generate ORC), as `objtool --orc` / `--stackval`.
    Check(CheckArgs),
    /// Print the ORC table of each object exactly as `objtool --dump=orc` does.
    Dump {
        /// ORC ABI to read the entries with (default: detected from the object).
        #[arg(long, value_name = "6.1|6.12")]
        orc_abi: Option<OrcAbi>,
        /// Objects: .o, .ko, vmlinux.o, vmlinux; .ko.xz/.ko.zst/.ko.gz are decompressed.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prove that an object's ORC table unwinds every instruction (independent analysis).
    Verify(orctool::verify::VerifyArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Generate ORC (and run the stack validation it needs).
    #[arg(long)]
    orc: bool,
    /// Validate frame-pointer rules too.
    #[arg(long)]
    stackval: bool,
    /// Validate uaccess (SMAP) rules.
    #[arg(long)]
    uaccess: bool,
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
    /// Backtraces plus orctool's explanation of each warning (e.g. both states of an
    /// alternatives conflict).
    #[arg(short, long)]
    verbose: bool,
    /// Skip orctool's own check that every alternative unwinds correctly with the merged
    /// ORC table (objtool has no such check).
    #[arg(long)]
    no_alt_unwind_check: bool,
    /// objtool's toolchain hacks: jump_label, noinstr, skylake (all when no list is given).
    #[arg(long, num_args = 0..=1, default_missing_value = "jump_label,noinstr,skylake", value_name = "LIST")]
    hacks: Vec<String>,
    /// Validate IBT rules (affects sibling-call detection past ENDBR).
    #[arg(long)]
    ibt: bool,
    /// Exit with status 1 when there are warnings.
    #[arg(long)]
    werror: bool,
    /// ORC ABI of the entries to generate (default: detected from the object).
    #[arg(long, value_name = "6.1|6.12")]
    orc_abi: Option<OrcAbi>,
    /// Print the generated ORC table (in `dump` format) on stdout instead of writing it.
    #[arg(long)]
    print_orc: bool,
    /// Print counts and phase times on stderr.
    #[arg(long)]
    stats: bool,
    /// Worker threads (default: all cores). The output is the same for any number.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Run every parallel stage even for small objects (for testing the parallel paths).
    #[arg(long, hide = true)]
    force_parallel: bool,
    /// Write the result to OUT instead of changing FILE in place (one FILE only).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Replace ORC sections the object already has (objtool refuses such objects).
    #[arg(long)]
    force: bool,
    /// Check (and generate) but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Flush the written object to disk (fsync) before replacing the original.
    #[arg(long)]
    sync: bool,
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    // `check` decodes: the decoder's tables (half a millisecond to build, as long as the
    // rest of a small module's check) are built beside the argument parsing and reading
    if std::env::args_os().nth(1).is_some_and(|a| a == "check") {
        std::thread::spawn(orctool::decode::warm_up);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Dump { orc_abi, files } => dump(orc_abi, &files),
        Command::Check(args) => check(&args),
        Command::Verify(args) => orctool::verify::run(&args),
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let mut opts = orctool::options::Options {
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
        force_parallel: args.force_parallel,
        stats: args.stats,
        ..Default::default()
    };
    for list in &args.hacks {
        for h in list.split(',') {
            match h {
                "jump_label" => opts.hack_jump_label = true,
                "noinstr" => opts.hack_noinstr = true,
                "skylake" => opts.hack_skylake = true,
                _ => {
                    eprintln!(
                        "orctool: unknown --hacks value '{h}' (expected jump_label, noinstr, skylake)"
                    );
                    return ExitCode::from(2);
                }
            }
        }
    }
    if !(opts.orc || opts.stackval || opts.uaccess) {
        eprintln!("orctool: check: at least one of --orc, --stackval, --uaccess is required");
        return ExitCode::from(2);
    }
    if let Some(n) = args.threads {
        if rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .is_err()
        {
            eprintln!("orctool: can't set up {n} threads");
            return ExitCode::from(2);
        }
    }
    if args.output.is_some() && args.files.len() > 1 {
        eprintln!("orctool: check: -o/--output takes exactly one FILE");
        return ExitCode::from(2);
    }
    let mut status = ExitCode::SUCCESS;
    for path in &args.files {
        match check_one(args, &opts, path) {
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
    status
}

/// Checks one object; returns whether it printed warnings.
fn check_one(
    args: &CheckArgs,
    opts: &orctool::options::Options,
    path: &Path,
) -> orctool::Result<bool> {
    let data = input::open(path)?;
    let obj = Object::parse(&data)?;
    let (detected, source) = orc::detect_abi(&obj);
    let abi = args.orc_abi.unwrap_or(detected);
    let mut opts = opts.clone();
    opts.rules_6_1 = abi == OrcAbi::V6_1;
    opts.alt_abi_6_1 = match source {
        orc::AbiSource::Vermagic(ma, mi) | orc::AbiSource::Banner(ma, mi) => (ma, mi) < (6, 3),
        _ => abi == OrcAbi::V6_1,
    };
    let t0 = std::time::Instant::now();
    let mut out = orctool::check::check_with(&obj, &opts, abi, &|| data.release_pages())?;
    // What to write: the ORC rows (objtool refuses an object that already has ORC, after
    // generating it) and the jump-label NOPs.
    let mut rows = None;
    if !args.print_orc {
        if let Some(r) = out.orc.take().filter(|r| !r.is_empty()) {
            if obj.section_by_name(b".orc_unwind").is_some() && !args.force {
                out.findings
                    .warn("file already has .orc_unwind section, skipping");
            } else {
                rows = Some(r);
            }
        }
    }
    let name = path.display().to_string();
    let mut text = String::new();
    for e in &out.errors {
        text.push_str(&format!("error: orctool: {e}\n"));
    }
    text.push_str(&out.findings.render(&name, opts.backtrace, opts.verbose));
    eprint!("{text}");
    if args.print_orc {
        if let Some(rows) = &out.orc {
            let mut s = String::new();
            for r in rows {
                let sec = String::from_utf8_lossy(obj.section_name(r.section)?).into_owned();
                let e = orc::OrcEntry::decode(abi, r.entry);
                s.push_str(&format!("{sec}+{:x}:{}\n", r.offset, e.dump_text(abi)));
            }
            print!("{s}");
        }
        if args.stats {
            print_stats(&out.stats, t0);
        }
        return Ok(out.findings.warning_count() > 0);
    }
    let changed = rows.is_some() || !out.nopped.is_empty();
    if !args.dry_run && (changed || args.output.is_some()) {
        let target = args.output.as_deref().unwrap_or(path);
        let compressed = matches!(&data, input::Input::Owned(v) if !v.is_empty());
        if args.output.is_none() && compressed {
            return Err(orctool::Error::Other(
                "is compressed: give -o OUT to write the result".into(),
            ));
        }
        // the input file again, to copy its untouched sections without reading them
        let source = if compressed {
            None
        } else {
            Some(std::fs::File::open(path)?)
        };
        let rows = rows.unwrap_or_default();
        let nopped = &out.nopped;
        let t = std::time::Instant::now();
        orctool::write::write_orc_file(
            &obj,
            &rows,
            &orctool::write::WriteOptions {
                force: args.force,
                sync: args.sync,
            },
            source.as_ref(),
            target,
            &|file| orctool::patch::nop_out_file(file, nopped),
        )?;
        let rss = if args.stats {
            orctool::check::rss_kib()
        } else {
            0
        };
        out.stats.phases.push(("write", t.elapsed(), rss));
    }
    if args.stats {
        print_stats(&out.stats, t0);
    }
    Ok(out.findings.warning_count() > 0)
}

fn dump(orc_abi: Option<OrcAbi>, files: &[PathBuf]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let stdout = std::io::stdout();
    for (n, path) in files.iter().enumerate() {
        match dump_one(orc_abi, path) {
            Ok(text) => {
                let mut out = stdout.lock();
                let header = if files.len() > 1 {
                    format!("{}{}:\n", if n > 0 { "\n" } else { "" }, path.display())
                } else {
                    String::new()
                };
                if out
                    .write_all(header.as_bytes())
                    .and_then(|()| out.write_all(text.as_bytes()))
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // stdout closed (e.g. `| head`): nothing more to say.
                    return status;
                }
            }
            Err(e) => {
                eprintln!("orctool: {}: {e}", path.display());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

fn dump_one(orc_abi: Option<OrcAbi>, path: &Path) -> orctool::Result<String> {
    let data = input::open(path)?;
    let obj = Object::parse(&data)?;
    let abi = orc_abi.unwrap_or_else(|| orc::detect_abi(&obj).0);
    let mut text = String::new();
    orc::dump::dump(&obj, abi, &mut text)?;
    Ok(text)
}

fn print_stats(st: &orctool::check::Stats, t0: std::time::Instant) {
    eprintln!(
        "orctool: stats: {} instructions, {} visited, {} distinct states",
        st.insns, st.visited, st.states
    );
    for (name, d, rss) in &st.phases {
        eprintln!(
            "orctool: stats: {name:>9}: {:8.3} ms, resident {:6} MiB",
            d.as_secs_f64() * 1e3,
            rss / 1024
        );
    }
    eprintln!(
        "orctool: stats: {:>9}: {:8.3} ms, peak     {:6} MiB",
        "total",
        t0.elapsed().as_secs_f64() * 1e3,
        orctool::check::peak_rss_kib() / 1024
    );
}
