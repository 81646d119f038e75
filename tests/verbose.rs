//! orctool's explanations (`--verbose`): what objtool only names, orctool spells out.

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
