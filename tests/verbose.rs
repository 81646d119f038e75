//! CLI behaviour beyond the rules: orctool's explanations (`--verbose`: what objtool only
//! names, orctool spells out) and exit statuses.

mod common;

use common::*;

/// `stack layout conflict in alternatives` names both alternatives, the offset inside the
/// site and both states, with register names.
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
