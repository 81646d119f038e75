//! The stack-validation rules, one hand-written `.S` case each (tests/fixtures/cfi/), against
//! what the real objtool 6.12 printed and generated for the same object (recorded next to
//! each case by `tests/fixtures/cfi/record`): the warnings, word for word with `orctool` in
//! objtool's place, and the ORC table. Where orctool finds more than objtool (its check that
//! every alternative unwinds correctly with the merged table), the extra lines are in
//! `NAME.orctool`, with the reasoning in the case's comment.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct Case {
    name: String,
    args: Vec<String>,
    warnings: String,
    orc: String,
    exit: i32,
    /// orctool's own findings beyond objtool's (`NAME.orctool`), printed after them.
    extra: String,
}

fn cases(set: &str) -> Vec<Case> {
    let dir = fixtures().join(set);
    fixture_cases(set)
        .into_iter()
        .map(|(name, args)| {
            let read = |ext: &str| {
                std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap_or_default()
            };
            Case {
                args,
                warnings: read("warnings"),
                orc: read("orc"),
                exit: read("exit").trim().parse().unwrap_or(0),
                extra: read("orctool"),
                name,
            }
        })
        .collect()
}

/// objtool's lines with orctool's name in the prefix (message texts stay as they are).
fn as_orctool(text: &str) -> String {
    text.lines()
        .map(|l| {
            l.replacen(": warning: objtool: ", ": warning: orctool: ", 1)
                .replacen("error: objtool: ", "error: orctool: ", 1)
        })
        .map(|l| l + "\n")
        .collect()
}

fn run_case(set: &str, c: &Case, scratch: &Path) -> Result<(), String> {
    let src = fixtures().join(set).join(format!("{}.S", c.name));
    let obj = scratch.join("FILE");
    assemble(&src, &obj);
    // once as a small object is run (one thread), once with every parallel stage forced on
    for parallel in [false, true] {
        run_mode(c, scratch, parallel)
            .map_err(|e| format!("{}{e}", if parallel { "(--force-parallel) " } else { "" }))?;
    }
    Ok(())
}

fn run_mode(c: &Case, scratch: &Path, parallel: bool) -> Result<(), String> {
    let extra: &[&str] = if parallel {
        &["--force-parallel", "--threads", "4"]
    } else {
        &[]
    };
    let out = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .current_dir(scratch)
        .arg("check")
        // objtool's lines exactly: no flood grouped, no `no ORC written`
        .arg("--all")
        .args(&c.args)
        .args(extra)
        .arg("--print-orc")
        .arg("FILE")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if c.exit != 0 {
        // objtool refuses the file; orctool names the same problem in its error line
        let msg = c.warnings.trim().rsplit(": objtool: ").next().unwrap_or("");
        if out.status.success() || !stderr.contains(msg) {
            return Err(format!(
                "expected a refusal with '{msg}', got status {:?}: {stderr}",
                out.status.code()
            ));
        }
        return Ok(());
    }
    let want = as_orctool(&c.warnings) + &c.extra;
    if stderr != want {
        return Err(format!(
            "warnings differ\n--- objtool 6.12\n{want}--- orctool\n{stderr}"
        ));
    }
    if stdout != c.orc {
        return Err(format!(
            "ORC differs\n--- objtool 6.12\n{}--- orctool\n{stdout}",
            c.orc
        ));
    }
    Ok(())
}

fn run_set(set: &str, min_cases: usize) {
    let cases = cases(set);
    assert!(cases.len() >= min_cases, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let scratch = Scratch::new(&format!("{set}-{}", c.name));
        if let Err(e) = run_case(set, c, &scratch.0) {
            failures.push(format!("== {} ({})\n{e}", c.name, c.args.join(" ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases of {set} differ from objtool:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_rule_matches_objtool() {
    run_set("cfi", 40);
}

/// Objects of Linux 6.1, against objtool 6.1.
#[test]
fn objtool_6_1_rules() {
    run_set("cfi-6.1", 1);
}

/// The output does not depend on the number of threads: a real module checked with 1 and
/// with 4 threads (every parallel stage forced on) gives the same warnings and the same bytes.
#[test]
fn same_output_at_any_thread_count() {
    let scratch = Scratch::new("threads");
    let module = fixtures().join("dump/nf_nat_irc-6.12.ko.xz");
    let mut results = Vec::new();
    for threads in ["1", "4"] {
        let out_path = scratch.path(&format!("out-{threads}.ko"));
        let out = orctool(&[
            "check",
            "--orc",
            "--module",
            "--force",
            "--threads",
            threads,
            "--force-parallel",
            "-o",
            out_path.to_str().unwrap(),
            module.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
        results.push((warnings, std::fs::read(&out_path).unwrap()));
    }
    assert!(!results[0].1.is_empty());
    assert_eq!(results[0], results[1]);
}
