//! `orctool generate man DIR | completions SHELL`: the man pages and shell completions,
//! made from the clap definition of the command line (hidden; for packaging and
//! installing, see README).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use clap_complete::Shell;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Write orctool.1 and one page per subcommand (orctool-check.1, …) into DIR.
    Man { dir: PathBuf },
    /// Print the completion script for SHELL on stdout.
    Completions { shell: Shell },
}

/// `cmd` is the whole command line's definition (`Cli::command()` of main).
pub fn run(args: &GenerateArgs, mut cmd: clap::Command) -> ExitCode {
    match &args.what {
        What::Completions { shell } => {
            let name = cmd.get_name().to_owned();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut cmd, name, &mut out);
            super::print_stdout(&String::from_utf8_lossy(&out));
            ExitCode::SUCCESS
        }
        What::Man { dir } => match write_pages(cmd, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "orctool: {}: {}",
                    dir.display(),
                    crate::error::os_message(&e)
                );
                ExitCode::FAILURE
            }
        },
    }
}

/// orctool.1 and `orctool-SUB.1` for each visible subcommand.
fn write_pages(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = vec![(cmd.get_name().to_owned(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{}-{}", cmd.get_name(), sub.get_name());
        pages.push((name, sub.clone()));
    }
    for (name, page) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.to_uppercase())
            .render(&mut out)?;
        std::fs::write(dir.join(format!("{name}.1")), out)?;
    }
    Ok(())
}
