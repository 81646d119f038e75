//! `orctool verify`: does a shipped ORC table unwind every instruction that can run?
//!
//! For every instruction of every function — in every alternative, with each jump label both
//! ways, into exception fixups — the entry the kernel's unwinder would use ([`lookup`]: the IP
//! of an interrupted frame, the return address − 1 of a caller's frame, `.orc_lookup` on a
//! linked vmlinux, undefined and end entries in the 6.1 and 6.12 ABIs) is compared with the
//! truth from an independent analysis: a second decoder (`yaxpeax-x86`) driving a small
//! abstract machine of its own ([`machine`]) over the function's paths ([`paths`]).
//!
//! **Independence.** None of `check`'s analysis is used: not its decoder (iced-x86) or
//! stack-operation rules (`decode`), not its control-flow graph, alternative, jump-label,
//! exception-table or hint readers (`cfg`), not its CFI walk or rules (`cfi`, `alt`). Reusing
//! them would verify nothing. What is shared: reading the ELF file (`crate::elf`) and the ORC
//! entry format and ABI detection (`crate::orc`), which are the definition being checked,
//! not the analysis. The tables (`.altinstructions`, `__jump_table`, `__ex_table`) are read
//! again in [`special`].
//!
//! Where the truth cannot be known the instruction is *unprovable*, with the reason
//! ([`report::Unprovable`]). With `--dwarf`, the compiler's CFI ([`dwarf`]) is compared too.

pub mod dwarf;
pub mod image;
pub mod lookup;
pub mod machine;
pub mod paths;
pub mod report;
pub mod special;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use rayon::prelude::*;

use crate::elf::{Object, input};
use crate::orc::{self, AbiSource, OrcAbi};
use image::Image;
use paths::{Ctx, Group};
use report::Tally;

/// `orctool verify` options.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Also compare the table with the compiler's DWARF CFI (.debug_frame / .eh_frame).
    #[arg(long)]
    pub dwarf: bool,
    /// ORC ABI to read the entries with (default: detected from the object).
    #[arg(long, value_name = "6.1|6.12")]
    pub orc_abi: Option<OrcAbi>,
    /// Print only each file's summary line, not every wrong instruction.
    #[arg(short, long)]
    pub quiet: bool,
    /// Also list every unprovable instruction with its reason.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print a total over all files at the end.
    #[arg(long)]
    pub total: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Also verify the files listed in FILE, one path a line.
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Objects with ORC: .o, .ko (.ko.xz/.zst/.gz), vmlinux.
    #[arg(required_unless_present = "list")]
    pub files: Vec<PathBuf>,
}

/// The result of verifying one file.
pub struct FileReport {
    pub tally: Tally,
    pub dwarf: Option<dwarf::DwarfTally>,
    /// The report text (findings and summary lines).
    pub text: String,
}

/// Runs `orctool verify`: exit status 1 when any instruction is wrong or a file cannot be
/// read, else 0.
pub fn run(args: &VerifyArgs) -> ExitCode {
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
    let mut status = ExitCode::SUCCESS;
    let mut total = Tally::default();
    let mut total_dwarf = dwarf::DwarfTally::default();
    let t0 = Instant::now();
    let mut files = args.files.clone();
    if let Some(list) = &args.list {
        match std::fs::read_to_string(list) {
            Ok(text) => files.extend(text.lines().filter(|l| !l.is_empty()).map(PathBuf::from)),
            Err(e) => {
                eprintln!("orctool: {}: {e}", list.display());
                return ExitCode::FAILURE;
            }
        }
    }
    for path in &files {
        match verify_path(path, args) {
            Ok(r) => {
                let text = if args.quiet {
                    r.text.lines().filter(|l| !l.contains(": wrong: ")).fold(
                        String::new(),
                        |mut s, l| {
                            s.push_str(l);
                            s.push('\n');
                            s
                        },
                    )
                } else {
                    r.text
                };
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // stdout closed (e.g. `| head`): nothing more to say
                    return status;
                }
                if r.tally.wrong > 0 {
                    status = ExitCode::FAILURE;
                }
                total.merge(Tally {
                    findings: Vec::new(),
                    notes: Vec::new(),
                    truth: Vec::new(),
                    ..r.tally
                });
                if let Some(d) = r.dwarf {
                    total_dwarf.merge(&d);
                }
            }
            Err(e) => {
                eprintln!("orctool: {}: {e}", path.display());
                status = ExitCode::FAILURE;
            }
        }
    }
    if args.total {
        println!(
            "total ({} files, {:.2} s): {}",
            files.len(),
            t0.elapsed().as_secs_f64(),
            total.summary()
        );
        if args.dwarf {
            println!("total dwarf: {}", total_dwarf.summary());
        }
    }
    status
}

/// Verifies one file.
pub fn verify_path(path: &Path, args: &VerifyArgs) -> crate::Result<FileReport> {
    let data = input::open(path)?;
    let obj = Object::parse(&data)?;
    verify_object(&obj, &path.display().to_string(), args)
}

/// Verifies a parsed object; `name` prefixes the report lines.
pub fn verify_object(obj: &Object<'_>, name: &str, args: &VerifyArgs) -> crate::Result<FileReport> {
    let (detected, source) = orc::detect_abi(obj);
    let abi = args.orc_abi.unwrap_or(detected);
    let img = Image::new(obj);
    let Some(table) = lookup::Table::read(&img, abi)? else {
        // no table (a module of data only, or code objtool is not run on): nothing to verify
        let text = if img.funcs.is_empty() {
            report::render(name, &img, &Tally::default())
        } else {
            format!("{name}: no ORC table: not verified\n")
        };
        return Ok(FileReport {
            tally: Tally::default(),
            dwarf: None,
            text,
        });
    };
    let alt_size = match source {
        AbiSource::Vermagic(ma, mi) | AbiSource::Banner(ma, mi) if (ma, mi) < (6, 3) => 12,
        AbiSource::Default | AbiSource::Option if abi == OrcAbi::V6_1 => 12,
        _ => 14,
    };
    let special = special::Special::read(&img, alt_size);
    let groups = groups(&img);
    let asm = match img.kind {
        crate::elf::ObjectKind::Linked => {
            let entries: Vec<_> = groups.iter().map(|g| g.entry).collect();
            dwarf::uncovered(&img, &entries)
        }
        crate::elf::ObjectKind::Relocatable => Default::default(),
    };
    let ctx = Ctx {
        img: &img,
        special: &special,
        table: &table,
        verbose: args.verbose,
        keep_truth: args.dwarf,
        asm,
    };
    let mut tally = groups
        .par_iter()
        .fold(Tally::default, |mut t, g| {
            paths::verify_group(&ctx, g, &mut t);
            t
        })
        .reduce(Tally::default, |mut a, b| {
            a.merge(b);
            a
        });
    let dwarf = if args.dwarf {
        let truth = std::mem::take(&mut tally.truth);
        Some(dwarf::compare(&img, &table, &special, truth))
    } else {
        None
    };
    let mut text = report::render(name, &img, &tally);
    if let Some(d) = &dwarf {
        if args.verbose {
            for x in &d.examples {
                text.push_str(&format!("{name}: dwarf: {x}\n"));
            }
        }
        text.push_str(&format!("{name}: dwarf: {}\n", d.summary()));
    }
    Ok(FileReport { tally, dwarf, text })
}

/// Functions with their `.cold` parts (`foo.cold` belongs to every `foo`).
fn groups(img: &Image<'_>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_name: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut cold = Vec::new();
    for f in &img.funcs {
        match memchr::memmem::find(f.name, b".cold") {
            Some(i) => cold.push((&f.name[..i], f.start, f.size)),
            None => {
                by_name.entry(f.name).or_default().push(groups.len());
                groups.push(Group {
                    entry: f.start,
                    parts: vec![(f.start, f.size)],
                });
            }
        }
    }
    for (parent, start, size) in cold {
        for &g in by_name.get(parent).map(Vec::as_slice).unwrap_or(&[]) {
            groups[g].parts.push((start, size));
        }
    }
    groups
}
