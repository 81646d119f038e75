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
    /// Print the ORC table of each object exactly as `objtool --dump=orc` does.
    Dump {
        /// ORC ABI to read the entries with (default: detected from the object).
        #[arg(long, value_name = "6.1|6.12")]
        orc_abi: Option<OrcAbi>,
        /// Objects: .o, .ko, vmlinux.o, vmlinux; .ko.xz/.ko.zst/.ko.gz are decompressed.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dump { orc_abi, files } => dump(orc_abi, &files),
    }
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
