//! The `--noinstr` and `--sls` action fixtures (tests/fixtures/actions/noinstr_*,
//! sls_*) through `orctool check` with every parallel stage forced on
//! (`--force-parallel --threads 4`): the walk of functions side by side must give objtool's
//! warnings and object exactly as the one-thread run `tests/actions.rs` checks. (The unret
//! fixtures give --unret without --rethunk, which only objtool's command line accepts; that
//! action runs after the walk, on one thread.)

mod common;

use std::process::Command;

use common::*;

#[test]
fn noinstr_and_sls_fixtures_in_parallel() {
    let dir = fixtures().join("actions");
    let scratch = Scratch::new("noinstr-parallel");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            let stem = name.strip_suffix(".S")?;
            (stem.starts_with("noinstr_") || stem.starts_with("sls_")).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    let mut failed = Vec::new();
    for name in &names {
        let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
        let src = String::from_utf8(read("S")).unwrap();
        let args: Vec<&str> = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# args:"))
            .unwrap()
            .split_whitespace()
            .collect();
        let file = scratch.path("FILE");
        std::fs::write(&file, read("o")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_orctool"))
            .current_dir(&scratch.0)
            .arg("check")
            .args(&args)
            .args([
                "--no-alt-unwind-check",
                "--force-parallel",
                "--threads",
                "4",
            ])
            .arg("FILE")
            .output()
            .unwrap();
        let want = String::from_utf8(read("warnings"))
            .unwrap()
            .replace(": warning: objtool: ", ": warning: orctool: ");
        let got = String::from_utf8_lossy(&out.stderr);
        if got != want {
            failed.push(format!("{name}: stderr\n--- want\n{want}--- got\n{got}"));
        }
        if out.status.code() != Some(0) {
            failed.push(format!("{name}: status {:?}", out.status.code()));
        }
        if std::fs::read(&file).unwrap() != read("out") {
            failed.push(format!("{name}: the object differs from objtool's"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
