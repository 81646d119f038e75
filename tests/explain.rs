//! `orctool explain FILE FUNC` on assembled rule fixtures: every instruction's state and
//! ORC entry, the alternative groups side by side with their merged entries, jump labels
//! both ways and warnings where they arise.

mod common;

use common::{Scratch, assemble, fixtures, orctool, stdout_ok};

fn explain(fixture: &str, func: &str) -> String {
    let d = Scratch::new(&format!("explain-{fixture}-{func}"));
    let obj = d.path("t.o");
    assemble(&fixtures().join(format!("cfi/{fixture}.S")), &obj);
    stdout_ok(orctool(&["explain", obj.to_str().unwrap(), func]))
}

/// `ALTERNATIVE_2 "pushf; pop %rax", "call native_save_fl", A, "", B`: the original, both
/// replacements (the empty one a padding NOP) and the merged per-byte entries.
#[test]
fn alternative_group() {
    insta::assert_snapshot!(explain("alt_2", "f1"));
}

/// A NOP jump-label site: the out-of-line block is labelled with the site that reaches it.
#[test]
fn jump_label() {
    insta::assert_snapshot!(explain("jump_label", "g1"));
}

/// A conflict between an original and its replacement: the warning, its explanation and
/// backtrace under the instruction it is about.
#[test]
fn warning_under_its_instruction() {
    insta::assert_snapshot!(explain("alt_conflict", "f2"));
}

#[test]
fn unknown_function_is_an_error() {
    let d = Scratch::new("explain-unknown");
    let obj = d.path("t.o");
    assemble(&fixtures().join("cfi/alt_2.S"), &obj);
    let out = orctool(&["explain", obj.to_str().unwrap(), "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).ends_with(": no function named nope\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
