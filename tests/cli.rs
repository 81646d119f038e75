//! orctool's own command line, one test per finding of "Tried as a new user would" (issue
//! 15) and of issue 13 that concerns it; each fails on the command line before it.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `alias.S` of the rule fixtures: one warning (`return with modified stack frame`).
fn warning_object(d: &Scratch, name: &str) -> PathBuf {
    let obj = d.path(name);
    assemble(&fixtures().join("cfi/alias.S"), &obj);
    obj
}

fn example(d: &Scratch, name: &str) -> PathBuf {
    let p = d.path(name);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alt_unwind_call.o"),
        &p,
    )
    .unwrap();
    p
}

/// `orctool check FILE` validates (objtool's --orc rules) and writes nothing; it used to
/// exit 2 with "at least one of --orc, --stackval, --uaccess is required".
#[test]
fn check_validates_by_default_and_writes_nothing() {
    let d = Scratch::new("cli-default");
    let obj = warning_object(&d, "w.o");
    let before = std::fs::read(&obj).unwrap();
    let out = orctool(&["check", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr).replace(obj.to_str().unwrap(), "FILE");
    insta::assert_snapshot!(stderr, @"FILE: warning: orctool: f2+0x1: return with modified stack frame");
    assert_eq!(
        std::fs::read(&obj).unwrap(),
        before,
        "the object was changed"
    );
    // --werror makes the warning an exit status; --orc writes
    let out = orctool(&["check", "--werror", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let out = orctool(&["check", "--orc", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(std::fs::read(&obj).unwrap(), before, "--orc wrote nothing");
}

/// `--hacks FILE` used to take the file name as the hack list.
#[test]
fn hacks_takes_its_list_only_with_equals() {
    let d = Scratch::new("cli-hacks");
    let obj = example(&d, "a.o");
    let out = orctool(&["check", "--dry-run", "--hacks", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = orctool(&["check", "--hacks=jump_label,bogus", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid value 'bogus' for '--hacks"));
}

/// `--print-orc -o X` and `--dry-run -o X` used to write nothing and say nothing.
#[test]
fn conflicting_options_are_errors() {
    let d = Scratch::new("cli-conflicts");
    let obj = example(&d, "a.o");
    let out_path = d.path("out.o");
    for extra in [["--print-orc"], ["--dry-run"]] {
        let out = orctool(
            &[
                &["check", "--orc"][..],
                &extra,
                &["-o", out_path.to_str().unwrap(), obj.to_str().unwrap()],
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(
            text(&out.stderr).contains("cannot be used with '--output <OUT>'"),
            "{}",
            text(&out.stderr)
        );
        assert!(!out_path.exists());
    }
    let out = orctool(&["check", "--dry-run", "--sync", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = orctool(&["check", "--mnop", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "--mnop without --mcount");
}

/// `check --help` used to leave FILES undescribed and name no exit status.
#[test]
fn help_describes_files_exit_statuses_and_examples() {
    let out = orctool(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for want in [
        "Objects to check (see FILES below)",
        "FILES:",
        "EXIT STATUS:",
        "  2  the command line is wrong",
        "EXAMPLES:",
        "WHAT IS WRITTEN:",
        "--retpoline",
    ] {
        assert!(help.contains(want), "no '{want}' in\n{help}");
    }
}

/// `--version` used to say only `0.1.0`.
#[test]
fn version_names_commit_and_orc_abis() {
    let out = orctool(&["--version"]);
    let v = text(&out.stdout);
    assert!(v.starts_with("orctool 0.1.0 (commit "), "{v}");
    assert!(v.contains("kernel ORC ABIs: 6.12"), "{v}");
    assert!(v.contains("6.1 (kernels before 6.4"), "{v}");
}

/// `--print-orc` and `--stats` on several files used to run together without file names;
/// `--stats` left out the decompression time.
#[test]
fn several_files_get_headers_and_stats_show_decompression() {
    let d = Scratch::new("cli-headers");
    let a = example(&d, "a.o");
    let b = example(&d, "b.o");
    let out = orctool(&[
        "check",
        "--print-orc",
        "--stats",
        "--no-alt-unwind-check",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout).replace(d.0.to_str().unwrap(), "DIR");
    insta::assert_snapshot!(stdout, @r"
    DIR/a.o:
    .text+0:type:call sp:sp+8 bp:(und) signal:0
    .text+1:type:call sp:sp+16 bp:(und) signal:0
    .text+2:type:call sp:sp+24 bp:(und) signal:0
    .text+6:type:call sp:sp+16 bp:(und) signal:0
    .text+8:type:call sp:sp+8 bp:(und) signal:0
    .text+9:type:(und) sp:(und) bp:(und) signal:0

    DIR/b.o:
    .text+0:type:call sp:sp+8 bp:(und) signal:0
    .text+1:type:call sp:sp+16 bp:(und) signal:0
    .text+2:type:call sp:sp+24 bp:(und) signal:0
    .text+6:type:call sp:sp+16 bp:(und) signal:0
    .text+8:type:call sp:sp+8 bp:(und) signal:0
    .text+9:type:(und) sp:(und) bp:(und) signal:0
    ");
    let stderr = text(&out.stderr).replace(d.0.to_str().unwrap(), "DIR");
    let headers: Vec<&str> = stderr.lines().filter(|l| l.ends_with(".o:")).collect();
    assert_eq!(
        headers,
        ["orctool: stats: DIR/a.o:", "orctool: stats: DIR/b.o:"]
    );
    let ko = fixtures().join("dump/xt_rateest-6.12.ko.xz");
    let out = orctool(&["check", "--stats", ko.to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("orctool: stats: decompress:"),
        "{}",
        text(&out.stderr)
    );
    // a written object: every phase from reading to writing, in order (the time between
    // the analysis and the write, the ORC sections made, used to be in no phase)
    let out = orctool(&["check", "--orc", "--stats", a.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    let phases: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" ms, cpu "))
        .filter_map(|l| l.split(':').nth(2).map(str::trim))
        .collect();
    assert_eq!(
        phases,
        [
            "open", "read", "build", "walk", "generate", "prepare", "write", "total"
        ]
    );
}

/// Runs `orctool check FILE` and returns its one error line with FILE for the path.
fn check_error(path: &Path) -> String {
    let out = orctool(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().replace(path.to_str().unwrap(), "FILE")
}

/// The error wording of issue 15: a directory used to be "No such device (os error 19)",
/// OS errors carried "(os error N)", a truncated .ko "Invalid ELF section header
/// offset/size/alignment", an executable "Invalid ELF section index", a truncated .xz
/// "failed to fill whole buffer".
#[test]
fn read_errors_say_what_is_wrong() {
    let d = Scratch::new("cli-errors");
    insta::assert_snapshot!(check_error(&d.0), @"orctool: FILE: is a directory");
    insta::assert_snapshot!(check_error(&d.path("nope.o")), @"orctool: FILE: No such file or directory");
    let packed = std::fs::read(fixtures().join("dump/xt_rateest-6.12.ko.xz")).unwrap();
    let module =
        orctool::elf::input::decompress(orctool::elf::input::Compression::Xz, &packed).unwrap();
    let cut = d.path("cut.ko");
    // (the module's signature follows its section headers)
    std::fs::write(&cut, &module[..14000]).unwrap();
    insta::assert_snapshot!(check_error(&cut), @"orctool: FILE: truncated: the section header table ends at byte 14184 but the file has 14000 bytes");
    let cut = d.path("cut.ko.xz");
    std::fs::write(&cut, &packed[..packed.len() - 40]).unwrap();
    insta::assert_snapshot!(check_error(&cut), @"orctool: FILE: truncated xz data: the compressed stream ends early");
    // an executable: linked by ld from an assembled object
    let src = d.path("e.S");
    std::fs::write(&src, ".text\n.globl _start\n_start: ret\n").unwrap();
    let obj = d.path("e.o");
    assemble(&src, &obj);
    let exe = d.path("a.out");
    let st = std::process::Command::new("ld")
        .arg("-o")
        .arg(&exe)
        .arg(&obj)
        .status()
        .unwrap();
    assert!(st.success());
    insta::assert_snapshot!(check_error(&exe), @"orctool: FILE: not a relocatable object (ELF type ET_EXEC, an executable): check needs a .o, .ko or vmlinux.o");
}

/// objtool's actions (issue 13: `orctool check --retpoline` was "unexpected argument").
#[test]
fn check_knows_objtools_actions() {
    let d = Scratch::new("cli-actions");
    let obj = example(&d, "a.o");
    let out = orctool(&[
        "check",
        "--orc",
        "--noinstr",
        "--sls",
        obj.to_str().unwrap(),
    ]);
    // they run: the example's `ret` has no int3 after it
    let err = text(&out.stderr);
    assert!(
        err.contains("a.o: warning: orctool: f1+0x8: missing int3 after ret"),
        "{err}"
    );
    assert_ne!(out.status.code(), Some(2), "{err}");
}

/// The site-list actions run under `orctool check` too: their sections are written.
#[test]
fn check_writes_the_site_lists() {
    let d = Scratch::new("cli-sites");
    let obj = example(&d, "a.o");
    let out_obj = d.path("out.o");
    let out = orctool(&[
        "check",
        "--orc",
        "--static-call",
        "--retpoline",
        "--rethunk",
        "--cfi",
        "--mcount",
        "--mnop",
        "-o",
        out_obj.to_str().unwrap(),
        obj.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // (the example has none of the sites but kCFI's section, which objtool always makes)
    let sections = std::process::Command::new("readelf")
        .args(["-SW", out_obj.to_str().unwrap()])
        .output()
        .unwrap();
    let sections = text(&sections.stdout);
    assert!(sections.contains(" .cfi_sites "), "{sections}");
    assert!(sections.contains(" .orc_unwind "), "{sections}");
}

/// The man pages and completions come from the clap definition.
#[test]
fn man_pages_and_completions() {
    let d = Scratch::new("cli-man");
    let out = orctool(&["generate", "man", d.0.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(d.path("orctool-check.1")).unwrap();
    assert!(
        page.contains("EXIT STATUS") && page.contains("\\-\\-print\\-orc"),
        "{page}"
    );
    assert!(d.path("orctool.1").exists() && d.path("orctool-dump.1").exists());
    let out = orctool(&["generate", "completions", "bash"]);
    let script = text(&out.stdout);
    assert!(
        script.contains("--print-orc") && script.contains("complete"),
        "{script}"
    );
}

/// orctool's alternative unwind check used to run with only --stackval (frame-pointer
/// kernels have no ORC), adding a finding objtool's --stackval run does not have.
#[test]
fn alt_unwind_check_only_with_orc() {
    let d = Scratch::new("cli-stackval");
    let obj = example(&d, "a.o");
    let out = orctool(&["check", "--stackval", obj.to_str().unwrap()]);
    let stderr = text(&out.stderr).replace(obj.to_str().unwrap(), "FILE");
    // objtool 6.12 --stackval prints the same line
    insta::assert_snapshot!(stderr, @"FILE: warning: orctool: f1+0x1: call without frame pointer save/setup");
    // with ORC it reports the example's alternative
    let out = orctool(&[
        "check",
        "--stackval",
        "--orc",
        "--dry-run",
        obj.to_str().unwrap(),
    ]);
    assert!(text(&out.stderr).contains("alternatives: the return address"));
}

/// `orctool --orc x.o` (issue 13) used to say only "unexpected argument '--orc'".
#[test]
fn options_without_a_command_get_a_hint() {
    let out = orctool(&["--orc", "--module", "x.ko"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(text(&out.stderr), @"orctool: '--orc' needs a command: `orctool check --orc --module x.ko` (orctool's command line) or `orctool objtool --orc --module x.ko` (objtool's)");
    let out = orctool(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
}
