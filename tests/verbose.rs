//! CLI behaviour beyond the rules: orctool's explanations (`--verbose`: what objtool only
//! names, orctool spells out) and exit statuses.

mod common;

use common::*;

/// `stack layout conflict in alternatives` names both alternatives, the offset inside the
/// site and both states, with register names (the detail line, then the block of -v: both
/// states in `explain`'s words and the site the replacement patches).
#[test]
fn alternatives_conflict_explained() {
    let d = Scratch::new("verbose-alt");
    let obj = d.path("FILE");
    assemble(&fixtures().join("cfi/alt_conflict.S"), &obj);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orctool"))
        .current_dir(&d.0)
        .args(["check", "--orc", "--dry-run", "--verbose", "FILE"])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    FILE: warning: orctool: f2+0x0: stack layout conflict in alternatives: f2+0x1
    FILE: warning: orctool:   f2+0x0: group offset 0x1: alternative 1 (.altinstr_replacement+0x3) needs cfa=rsp+8 stack=8; the original (f2+0x1) needs cfa=rsp+16 stack=16
    FILE: warning: orctool:   f2+0x0: <=== (sym)
    warning: f2+0x0: stack layout conflict in alternatives: f2+0x1
      |
      = note: at group offset 0x1, .altinstr_replacement+0x3 needs: CFA = rsp+8
      = note: f2+0x1 needs: CFA = rsp+16
      = note: .altinstr_replacement+0x3 is replacement 1 of the alternative at f2+0x0 (.text+0x8), +0x1 into the replacement
    ");
}

/// Warnings alone exit 0, as objtool does; `--werror` makes them exit 1.
#[test]
fn werror_turns_warnings_into_failure() {
    let d = Scratch::new("werror");
    let obj = d.path("FILE");
    assemble(&fixtures().join("cfi/ret_modified.S"), &obj);
    let run = |extra: &[&str]| {
        let mut args = vec!["check", "--orc", "--dry-run"];
        args.extend_from_slice(extra);
        args.push(obj.to_str().unwrap());
        orctool(&args)
    };
    let plain = run(&[]);
    assert_eq!(plain.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("return with modified stack frame"));
    assert_eq!(run(&["--werror"]).status.code(), Some(1));
    // a clean object stays 0 with --werror
    let clean = d.path("CLEAN");
    assemble(&fixtures().join("cfi/frame_pointer.S"), &clean);
    let out = orctool(&[
        "check",
        "--orc",
        "--dry-run",
        "--werror",
        clean.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assembles tests/fixtures/verbose/NAME.S with `as -g` inside `d` (the line table names
/// `d/NAME.S`, which is there to be shown), into `d/FILE`.
fn assemble_g(d: &Scratch, name: &str) {
    for f in [format!("verbose/{name}.S"), "cfi/kernel-macros.inc".into()] {
        let from = fixtures().join(&f);
        std::fs::copy(&from, d.path(from.file_name().unwrap().to_str().unwrap())).unwrap();
    }
    let out = std::process::Command::new("as")
        .current_dir(&d.0)
        .args(["-g", "-o", "FILE", &format!("{name}.S")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_in(d: &Scratch, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_orctool"))
        .current_dir(&d.0)
        .args(args)
        .output()
        .unwrap()
}

/// `-v` on an object with line info: under each warning the source line, the instruction
/// that made the state wrong (the push for a return with a modified frame, not only the ret),
/// the path of branches, both states in words, and for code in a replacement the site it
/// patches (with the site's source line: `as` gives replacements none).
#[test]
fn verbose_cause_path_states_and_source() {
    let d = Scratch::new("verbose-cause");
    assemble_g(&d, "cause");
    let out = check_in(&d, &["check", "-v", "FILE"]);
    assert!(out.status.success());
    let dir = d.0.canonicalize().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).replace(dir.to_str().unwrap(), "[DIR]");
    insta::assert_snapshot!("verbose_cause", text);
    // objtool's lines are unchanged, and without -v nothing else is printed
    let plain = check_in(&d, &["check", "FILE"]);
    let plain = String::from_utf8_lossy(&plain.stderr).into_owned();
    assert_eq!(plain.lines().count(), 3, "{plain}");
    for l in plain.lines() {
        assert!(text.contains(l), "{l}");
    }
}

/// Without the source file the block still names the file and line (and says the rest).
#[test]
fn verbose_without_the_source_file() {
    let d = Scratch::new("verbose-nosrc");
    assemble_g(&d, "cause");
    std::fs::remove_file(d.path("cause.S")).unwrap();
    let out = check_in(&d, &["check", "-v", "FILE"]);
    let dir = d.0.canonicalize().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).replace(dir.to_str().unwrap(), "[DIR]");
    assert!(text.contains(" --> [DIR]/cause.S:15\n"), "{text}");
    assert!(!text.contains("push %rbx        #"), "{text}");
    assert!(
        text.contains("= note: caused by frame+0x0: push %rbx (53)"),
        "{text}"
    );
}

/// A flood of one warning in one place is said once with a count; `--all` and objtool's
/// command line print each line exactly as objtool 6.12 does (recorded in flood.warnings).
#[test]
fn flood_said_once_with_a_count() {
    let d = Scratch::new("verbose-flood");
    assemble(&fixtures().join("verbose/flood.S"), &d.path("FILE"));
    let objtool = std::fs::read_to_string(fixtures().join("verbose/flood.warnings")).unwrap();
    let grouped = check_in(&d, &["check", "FILE"]);
    assert_eq!(
        String::from_utf8_lossy(&grouped.stderr),
        "FILE: warning: orctool: .text+0x1: unreachable instruction (and 5 more in .text, the last at .text+0x10; --all prints each)\n\
         FILE: warning: orctool: g+0x1: unreachable instruction\n"
    );
    let all = check_in(&d, &["check", "--all", "FILE"]);
    assert_eq!(
        String::from_utf8_lossy(&all.stderr),
        objtool.replace(": objtool: ", ": orctool: ")
    );
    let as_objtool = check_in(&d, &["objtool", "--orc", "FILE"]);
    assert_eq!(String::from_utf8_lossy(&as_objtool.stderr), objtool);
}

/// `--trace` lists every function that warns as `explain` does, and no other.
#[test]
fn trace_lists_the_functions_that_warn() {
    let d = Scratch::new("verbose-trace");
    assemble(&fixtures().join("cfi/ret_modified.S"), &d.path("FILE"));
    let out = check_in(&d, &["check", "--trace", "FILE"]);
    let text = String::from_utf8_lossy(&out.stderr);
    for f in ["f1", "f2"] {
        let explain = check_in(&d, &["explain", "FILE", f]);
        let listing = String::from_utf8_lossy(&explain.stdout);
        assert!(listing.contains("state: CFA = rsp+8"), "{listing}");
        assert!(
            text.contains(&format!("FILE: trace of {f}:\n{listing}")),
            "{text}"
        );
    }
    assert!(!text.contains("trace of f3"), "{text}");
    assert!(text.starts_with("FILE: warning: orctool: f1+0x1: return with modified stack frame\n"));
}

/// An object that ends with no ORC although --orc was asked says so and why, on orctool's
/// own command line only (not with --all, not as objtool, not when nothing is to be written).
#[test]
fn no_orc_written_says_why() {
    let d = Scratch::new("verbose-noorc");
    assemble(&fixtures().join("verbose/no_orc.S"), &d.path("FILE"));
    let warning = "FILE: warning: orctool: f+0x8: return with modified stack frame\n";
    for args in [
        &["check", "--orc", "FILE"][..],
        &["check", "--dry-run", "FILE"],
    ] {
        let out = check_in(&d, args);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "{warning}FILE: no ORC written (the state at f+0x3 (CFA = undefined) has no ORC form: unknown CFA base reg -1)\n"
            ),
            "{args:?}"
        );
    }
    let all = check_in(&d, &["check", "--orc", "--all", "FILE"]);
    assert_eq!(String::from_utf8_lossy(&all.stderr), warning);
    let validate = check_in(&d, &["check", "FILE"]);
    assert_eq!(String::from_utf8_lossy(&validate.stderr), warning);
    let objtool = check_in(&d, &["objtool", "--orc", "FILE"]);
    assert_eq!(
        String::from_utf8_lossy(&objtool.stderr),
        warning.replace("orctool", "objtool")
    );
    // a fatal warning stops the analysis before any ORC
    assemble(
        &fixtures().join("cfi/jump_table_missing.S"),
        &d.path("FATAL"),
    );
    let fatal = check_in(&d, &["check", "--orc", "--dry-run", "FATAL"]);
    let text = String::from_utf8_lossy(&fatal.stderr);
    assert!(
        text.ends_with(
            "can't find switch jump table\nFATAL: no ORC written (the analysis stopped at the warning above)\n"
        ),
        "{text}"
    );
    // an object with ORC says nothing of the kind
    assemble(&fixtures().join("cfi/frame_pointer.S"), &d.path("GOOD"));
    let good = check_in(&d, &["check", "--orc", "GOOD"]);
    assert!(
        good.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

/// `-v` on an unreachable instruction says what it is and what ends the path before it.
#[test]
fn verbose_unreachable_names_the_dead_end() {
    let d = Scratch::new("verbose-unreachable");
    assemble(&fixtures().join("cfi/unreachable.S"), &d.path("FILE"));
    let out = check_in(&d, &["check", "-v", "FILE"]);
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    FILE: warning: orctool: f1+0x1: unreachable instruction
    warning: f1+0x1: unreachable instruction
      |
      = note: no path reaches f1+0x1: mov %rax,%rbx; the instruction before it, f1+0x0: ret, does not go on to it, and no branch, jump table, alternative or hint leads here

    FILE: warning: orctool: f3+0x3: unreachable instruction
    warning: f3+0x3: unreachable instruction
      |
      = note: no path reaches f3+0x3: ud2; the instruction before it, f3+0x2: int3, does not go on to it, and no branch, jump table, alternative or hint leads here
    ");
}
