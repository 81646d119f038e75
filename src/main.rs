//! The `orctool` binary: picks the command line (objtool's when called `objtool`) and
//! hands the parsed arguments to the library's `cli` modules. A subcommand defined in the
//! library plugs in with one variant of [`Command`] and one arm in `main`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use orctool::cli;

/// Large tables in transparent huge pages: see [`orctool::alloc`].
#[global_allocator]
static ALLOC: orctool::alloc::HugePages = orctool::alloc::HugePages;

#[derive(Parser)]
#[command(
    name = "orctool",
    version,
    long_version = cli::LONG_VERSION,
    about = "ORC unwind tables and stack validation for x86-64 kernel objects",
    after_help = cli::AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate stack state (and with --orc generate and write ORC), as objtool does.
    Check(cli::check::CheckArgs),
    /// Print the ORC table of each object exactly as `objtool --dump=orc` does.
    Dump(cli::dump::DumpArgs),
    /// Explain one function: disassembly, CFI state and ORC entry per instruction,
    /// alternatives side by side, jump labels and warnings where they arise.
    Explain(cli::explain::ExplainArgs),
    /// Run objtool 6.12's command line (`orctool objtool --orc --module x.ko`), as a copy
    /// of orctool named `objtool` does.
    #[command(disable_help_flag = true)]
    Objtool {
        /// objtool's actions, options and file.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Prove that an object's ORC table unwinds every instruction (independent analysis).
    Verify(orctool::verify::VerifyArgs),
    /// Write the man pages or print shell completions (see README).
    #[command(hide = true)]
    Generate(cli::generate::GenerateArgs),
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let first = args.next();
    // checking decodes: the decoder's tables (half a millisecond to build, as long as the
    // rest of a small module's check) are built beside the argument parsing and reading
    let objtool = Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == "objtool");
    if objtool || first.as_ref().is_some_and(|a| a == "check") {
        std::thread::spawn(orctool::decode::warm_up);
    }
    if objtool {
        let all: Vec<OsString> = first.into_iter().chain(args).collect();
        return cli::objtool::run(&all);
    }
    if first.as_ref().is_some_and(|a| a == "objtool") {
        std::thread::spawn(orctool::decode::warm_up);
        return cli::objtool::run(&args.collect::<Vec<_>>());
    }
    if let Some(hint) = cli::misplaced_options(&std::env::args_os().skip(1).collect::<Vec<_>>()) {
        eprintln!("{hint}");
        return ExitCode::from(2);
    }
    match Cli::parse().command {
        Command::Check(args) => cli::check::run(&args),
        Command::Dump(args) => cli::dump::run(&args),
        Command::Explain(args) => cli::explain::run(&args),
        Command::Objtool { args } => cli::objtool::run(&args),
        Command::Verify(args) => orctool::verify::run(&args),
        Command::Generate(args) => cli::generate::run(&args, Cli::command()),
    }
}
