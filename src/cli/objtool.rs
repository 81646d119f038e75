//! orctool as `objtool`: objtool 6.12's command line (see [`super::objtool_args`]), its
//! checks of the options and their order, its messages (`objtool:`) and exit statuses,
//! then the same analysis as `orctool check` with objtool's output only (no orctool
//! findings of its own). objtool's `objtool_run()` is the reference.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use super::objtool_args;
use super::run::{self, Job, Output, Tool};
use crate::error::{Error, ReadError, os_message};
use crate::options::Options;

/// objtool's `ERROR()`.
fn error(msg: &str) -> ExitCode {
    eprintln!("error: objtool: {msg}");
    ExitCode::FAILURE
}

/// Runs objtool's command line `args` (without the program name).
pub fn run(args: &[OsString]) -> ExitCode {
    let parsed = match objtool_args::parse(
        args,
        std::env::var_os("OBJTOOL_ARGS").as_deref(),
        std::env::var_os("OBJTOOL_VERBOSE").as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => {
            super::print_stdout(&e.stdout);
            eprint!("{}", e.stderr);
            return ExitCode::from(e.code);
        }
    };
    let mut o = parsed.opts;
    let path = Path::new(&parsed.file);
    // opts_valid()
    let action = o.hack_jump_label
        || o.hack_noinstr
        || o.ibt
        || o.mcount
        || o.noinstr
        || o.orc
        || o.retpoline
        || o.rethunk
        || o.sls
        || o.stackval
        || o.static_call
        || o.uaccess;
    if action {
        if o.dump_orc {
            return error("--dump can't be combined with other actions");
        }
    } else if o.unret && !o.rethunk {
        return error("--unret requires --rethunk");
    } else if !o.dump_orc {
        return error("At least one action required");
    }
    if o.dump_orc {
        return dump(path);
    }
    // objtool opens the object for reading and writing, whatever the options
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        eprintln!(
            "objtool: Can't open '{}': {}",
            path.display(),
            os_message(&e)
        );
        return ExitCode::FAILURE;
    }
    let loaded = match run::load(path, o.stats) {
        // objtool reads ELF only (orctool check decompresses)
        Ok(l) if l.compressed() => {
            return read_error(path, &ReadError::NotElf.into(), "gelf_getehdr");
        }
        Ok(l) => l,
        Err(e) => return read_error(path, &e, "gelf_getehdr"),
    };
    let obj = match run::parse_relocatable(&loaded.data) {
        Ok(obj) => obj,
        Err(e) => return read_error(path, &e, "gelf_getehdr"),
    };
    // objtool_open_read(): the backup right after the object is read
    if o.backup {
        if let Err(e) = crate::elf::output::backup(path) {
            eprintln!("{e}");
            eprintln!(
                "{}: warning: objtool: can't create backup file",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    if o.mnop && !o.mcount {
        return error("--mnop requires --mcount");
    }
    // link_opts_valid()
    if !o.link {
        if run::has_multiple_files(&obj) {
            eprintln!("error: objtool: Linked object detected, forcing --link");
            o.link = true;
        } else if o.noinstr {
            return error("--noinstr requires --link");
        } else if o.ibt {
            return error("--ibt requires --link");
        } else if o.unret {
            return error("--unret requires --link");
        }
    }
    let opts = Options {
        stackval: o.stackval,
        orc: o.orc,
        uaccess: o.uaccess,
        module: o.module,
        link: o.link,
        ibt: o.ibt,
        mcount: o.mcount,
        mnop: o.mnop,
        noinstr: o.noinstr,
        retpoline: o.retpoline,
        rethunk: o.rethunk,
        unret: o.unret,
        sls: o.sls,
        static_call: o.static_call,
        cfi: o.cfi,
        backup: o.backup,
        prefix: (o.prefix != 0).then_some(o.prefix as u32),
        hack_jump_label: o.hack_jump_label,
        hack_noinstr: o.hack_noinstr,
        hack_skylake: o.hack_skylake,
        no_unreachable: o.no_unreachable,
        sec_address: o.sec_address,
        backtrace: o.backtrace,
        verbose: o.verbose,
        // objtool's output only
        alt_unwind_check: false,
        stats: o.stats,
        ..Default::default()
    };
    let output = if o.dry_run {
        Output::DryRun
    } else {
        Output::InPlace
    };
    let job = Job::new(&opts, Tool::Objtool, output);
    if job.output == Output::InPlace {
        if let Err(e) = crate::elf::output::recover(path) {
            eprintln!("{}: warning: objtool: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    match run::run(&job, path, &loaded, &obj) {
        // objtool 6.12 does not fail the build on warnings
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: warning: objtool: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// A file objtool's libelf cannot read: its message for a file that is not ELF (the
/// common case), orctool's words for the rest, in objtool's `WARN` layout; status 1.
fn read_error(path: &Path, e: &Error, elf_call: &str) -> ExitCode {
    let file = path.display();
    match e {
        Error::Read(ReadError::NotElf) => {
            eprintln!("{file}: warning: objtool: {elf_call}: invalid `Elf' handle");
        }
        e => eprintln!("{file}: warning: objtool: {e}"),
    }
    ExitCode::FAILURE
}

/// `objtool --dump`: the table (orctool reads the ORC ABI from the object); objtool's
/// messages and status 255 when the file cannot be read.
fn dump(path: &Path) -> ExitCode {
    let mut head = [0u8; 6];
    match std::fs::File::open(path) {
        Err(e) => {
            eprintln!("open: {}", os_message(&e));
            return ExitCode::from(255);
        }
        Ok(mut f) => {
            let _ = std::io::Read::read(&mut f, &mut head);
        }
    }
    // objtool reads ELF only (orctool dump decompresses)
    if crate::elf::input::Compression::detect(&head).is_some() {
        read_error(path, &ReadError::NotElf.into(), "elf64_getehdr");
        return ExitCode::from(255);
    }
    match super::dump::dump_one(None, path) {
        Ok(text) => {
            super::print_stdout(&text);
            ExitCode::SUCCESS
        }
        Err(Error::Read(ReadError::IsDirectory)) => {
            eprintln!(
                "{}: warning: objtool: elf_begin: invalid file descriptor",
                path.display()
            );
            ExitCode::from(255)
        }
        Err(e) => {
            read_error(path, &e, "elf64_getehdr");
            ExitCode::from(255)
        }
    }
}
