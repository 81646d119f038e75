//! The command lines: orctool's own (`check`, `dump`, `generate`; clap) and objtool's
//! (when the binary is called `objtool`, or `orctool objtool ARGS…`). Options in, library
//! calls, output and exit status out; no analysis here. `main.rs` holds the subcommand
//! enum and dispatches to the `run` functions of these modules.

pub mod check;
pub mod dump;
pub mod explain;
pub mod format;
pub mod generate;
pub mod objtool;
pub mod objtool_args;
mod objtool_usage;
pub mod run;
mod source;
mod text;
mod verbose;

use std::ffi::OsString;
use std::io::Write as _;

/// Writes `text` to stdout; a closed stdout (`| head`) is not an error worth a message.
/// Returns false when stdout is closed.
pub fn print_stdout(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// `orctool --version`: the release, the commit it was built from and the ORC ABIs.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ORCTOOL_COMMIT"),
    ")\nkernel ORC ABIs: 6.12 (kernels 6.4 and later: 3-bit type, `signal`), ",
    "6.1 (kernels before 6.4: 2-bit type, `end`)\n",
    "objtool command line: 6.12"
);

/// Text after `orctool --help`.
pub const AFTER_HELP: &str = "\
Called as `objtool` (a symlink or copy named objtool, or `orctool objtool ARGS...`), orctool
takes objtool 6.12's command line, messages and exit statuses.

Run `orctool help check` for the options of a check, its exit statuses and examples.";

/// `orctool --orc x.o`: objtool's options without a subcommand. The hint names the two
/// command lines that take them (clap would only say "unexpected argument").
pub fn misplaced_options(args: &[OsString]) -> Option<String> {
    let first = args.first()?.to_str()?;
    if !first.starts_with('-') || matches!(first, "-h" | "--help" | "-V" | "--version") {
        return None;
    }
    let line = args
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    Some(format!(
        "orctool: '{first}' needs a command: `orctool check {line}` (orctool's command line) \
         or `orctool objtool {line}` (objtool's)"
    ))
}
