//! `orctool dump`: each object's ORC table as `objtool --dump=orc` prints it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::elf::{Object, input};
use crate::orc::{self, OrcAbi};

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// ORC ABI to read the entries with (default: detected from the object).
    #[arg(long, value_name = "6.1|6.12")]
    orc_abi: Option<OrcAbi>,
    /// Objects: .o, .ko, vmlinux.o, vmlinux; .ko.xz/.ko.zst/.ko.gz are decompressed.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: &DumpArgs) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let several = args.files.len() > 1;
    for (n, path) in args.files.iter().enumerate() {
        match dump_one(args.orc_abi, path) {
            Ok(text) => {
                let header = if several {
                    format!("{}{}:\n", if n > 0 { "\n" } else { "" }, path.display())
                } else {
                    String::new()
                };
                if !super::print_stdout(&(header + &text)) {
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

/// The dump of one object (the whole table, as text).
pub fn dump_one(orc_abi: Option<OrcAbi>, path: &Path) -> crate::Result<String> {
    let data = input::open(path)?;
    let obj = Object::parse(&data)?;
    let abi = orc_abi.unwrap_or_else(|| orc::detect_abi(&obj).0);
    let mut text = String::new();
    orc::dump::dump(&obj, abi, &mut text)?;
    Ok(text)
}
