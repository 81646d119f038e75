//! objtool's actions (`--retpoline`, `--rethunk`, `--static-call`, `--ibt`, `--prefix`,
//! `--mcount`, `--cfi`, `--sls`, `--noinstr`, `--unret`, …), one hand-written `.S` case per
//! rule (tests/fixtures/actions/), against what the real objtool 6.12 did with the same
//! object (recorded by `tests/fixtures/actions/record`): orctool in objtool's place
//! (`orctool objtool ARGS FILE`) must print objtool's stderr exactly, exit with its status
//! and leave the file byte for byte as objtool wrote it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct Case {
    name: String,
    args: Vec<String>,
}

fn cases() -> Vec<Case> {
    fixture_cases("actions")
        .into_iter()
        .map(|(name, args)| Case { name, args })
        .collect()
}

/// The first difference of two files, in words: the section it falls in, per `want`.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    format!(
        "{} bytes expected, {} written; first difference at file offset {at:#x}",
        want.len(),
        got.len()
    )
}

fn run_case(c: &Case, scratch: &Path) -> Result<(), String> {
    let dir = fixtures().join("actions");
    let read = |ext: &str| std::fs::read(dir.join(format!("{}.{ext}", c.name)));
    let input = read("o").map_err(|e| format!("no recorded input: {e}"))?;
    let want_out = read("out").map_err(|e| format!("no recorded output: {e}"))?;
    let want_err = String::from_utf8_lossy(&read("warnings").unwrap_or_default()).into_owned();
    let want_exit: i32 = String::from_utf8_lossy(&read("exit").unwrap_or_default())
        .trim()
        .parse()
        .unwrap_or(0);
    let file = scratch.join("FILE");
    std::fs::write(&file, &input).map_err(|e| e.to_string())?;
    let out = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .current_dir(scratch)
        .arg("objtool")
        .args(&c.args)
        .arg("FILE")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut problems = Vec::new();
    if stderr != want_err {
        problems.push(format!(
            "stderr differs\n--- objtool 6.12\n{want_err}--- orctool\n{stderr}"
        ));
    }
    if out.status.code() != Some(want_exit) {
        problems.push(format!(
            "exit status {:?}, objtool's {want_exit}",
            out.status.code()
        ));
    }
    let got = std::fs::read(&file).map_err(|e| e.to_string())?;
    if got != want_out {
        problems.push(format!(
            "the object differs from objtool's: {} (compare `readelf -aW` of \
             tests/fixtures/actions/{}.out with orctool's)",
            first_difference(&want_out, &got),
            c.name
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn every_action_fixture_matches_objtool() {
    let all = cases();
    let scratch = Scratch::new("actions");
    let mut failed = Vec::new();
    for c in &all {
        if let Err(e) = run_case(c, &scratch.0) {
            failed.push(format!("== {} ({})\n{e}", c.name, c.args.join(" ")));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} action fixtures differ from objtool 6.12:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}
