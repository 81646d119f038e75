//! orctool called `objtool` (and `orctool objtool ARGS…`) against objtool 6.12's recorded
//! behaviour: for each command line of tests/fixtures/objtool-cli/cases, the same stdout,
//! stderr and exit status as `expected` (recorded from the real objtool by `record`); and
//! every CFI rule fixture run through objtool's command line prints objtool's exact
//! warnings (with `objtool:`) and exits as objtool did.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

struct Case {
    line: String,
    exit: i32,
    stdout: String,
    stderr: String,
}

/// Parses `expected`: `=== case: LINE`, `=== exit: N`, `=== stdout:` TEXT `=== stderr:` TEXT.
fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("objtool-cli/expected")).unwrap();
    let mut out = Vec::new();
    for rec in text.split("=== case: ").skip(1) {
        let (line, rest) = rec.split_once('\n').unwrap();
        let rest = rest.strip_prefix("=== exit: ").unwrap();
        let (exit, rest) = rest.split_once('\n').unwrap();
        let rest = rest.strip_prefix("=== stdout:\n").unwrap();
        let (stdout, stderr) = rest.split_once("=== stderr:\n").unwrap();
        out.push(Case {
            line: line.to_owned(),
            exit: exit.parse().unwrap(),
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
        });
    }
    out
}

/// The environment and arguments of a case line (as `record` splits it).
fn split(line: &str) -> (Vec<(String, String)>, Vec<String>) {
    if line == "(none)" {
        return (vec![], vec![]);
    }
    if let Some(v) = line.strip_prefix("OBJTOOL_ARGS=") {
        let (value, file) = v.rsplit_once(' ').unwrap();
        return (
            vec![("OBJTOOL_ARGS".into(), value.into())],
            vec![file.into()],
        );
    }
    let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let mut env = vec![];
    if let Some(v) = words[0].strip_prefix("OBJTOOL_VERBOSE=") {
        env.push(("OBJTOOL_VERBOSE".into(), v.into()));
        words.remove(0);
    }
    (env, words)
}

/// The run directory of the cases: a.o, ro.o, t.txt, d/, empty.o, multi.o, c.ko.xz.
fn setup(dir: &Path, multi: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("d")).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alt_unwind_call.o");
    std::fs::copy(&example, dir.join("a.o")).unwrap();
    std::fs::copy(&example, dir.join("ro.o")).unwrap();
    let mut perm = std::fs::metadata(dir.join("ro.o")).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(dir.join("ro.o"), perm).unwrap();
    std::fs::write(dir.join("t.txt"), "hi\n").unwrap();
    std::fs::write(dir.join("empty.o"), "").unwrap();
    std::fs::copy(multi, dir.join("multi.o")).unwrap();
    std::fs::copy(
        fixtures().join("dump/xt_rateest-6.12.ko.xz"),
        dir.join("c.ko.xz"),
    )
    .unwrap();
}

/// An object with two `STT_FILE` symbols (objtool's "linked object").
fn multi_object(scratch: &Scratch) -> PathBuf {
    let mut objs = vec![];
    for (n, f) in [("m1", "a.c"), ("m2", "b.c")] {
        let src = scratch.path(&format!("{n}.S"));
        std::fs::write(
            &src,
            format!(
                ".file \"{f}\"\n.text\n.globl {n}\n.type {n},@function\n{n}: ret\n.size {n},.-{n}\n"
            ),
        )
        .unwrap();
        let obj = scratch.path(&format!("{n}.o"));
        assemble(&src, &obj);
        objs.push(obj);
    }
    let multi = scratch.path("multi.o");
    let st = Command::new("ld")
        .arg("-r")
        .arg("-o")
        .arg(&multi)
        .args(&objs)
        .status()
        .unwrap();
    assert!(st.success());
    multi
}

/// A directory holding a symlink named `objtool` to the orctool binary.
fn objtool_link(scratch: &Scratch) -> PathBuf {
    let bin = scratch.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("objtool");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_orctool"), &link).unwrap();
    link
}

fn run_in(
    dir: &Path,
    program: &Path,
    pre: &[&str],
    env: &[(String, String)],
    args: &[String],
) -> Output {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env_remove("OBJTOOL_ARGS")
        .env_remove("OBJTOOL_VERBOSE")
        .args(pre)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn compare(what: &str, c: &Case, out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(c.exit) && stdout == c.stdout && stderr == c.stderr {
        return None;
    }
    Some(format!(
        "== {what} `{}`: exit {:?} (objtool {})\n-- stdout:\n{stdout}-- objtool's:\n{}-- stderr:\n{stderr}-- objtool's:\n{}",
        c.line,
        out.status.code(),
        c.exit,
        c.stdout,
        c.stderr
    ))
}

#[test]
fn objtool_command_line_as_recorded() {
    let scratch = Scratch::new("objtool-cli");
    let multi = multi_object(&scratch);
    let objtool = objtool_link(&scratch);
    let orctool = PathBuf::from(env!("CARGO_BIN_EXE_orctool"));
    let dir = scratch.path("run");
    let mut failures = vec![];
    let all = cases();
    assert!(all.len() > 70, "{} cases", all.len());
    for c in &all {
        let (env, args) = split(&c.line);
        setup(&dir, &multi);
        let out = run_in(&dir, &objtool, &[], &env, &args);
        failures.extend(compare("objtool", c, &out));
        setup(&dir, &multi);
        let out = run_in(&dir, &orctool, &["objtool"], &env, &args);
        failures.extend(compare("orctool objtool", c, &out));
    }
    assert!(
        failures.is_empty(),
        "{}\n{} failures",
        failures.join("\n"),
        failures.len()
    );
}

/// Kbuild's whole objtool line runs (issue 13: every action was refused before). The
/// expected lines and statuses were recorded from objtool 6.12 on the same inputs; the
/// output bytes of each action are pinned by tests/actions.rs.
#[test]
fn kbuild_lines_run() {
    let scratch = Scratch::new("objtool-kbuild");
    let objtool = objtool_link(&scratch);
    let multi = multi_object(&scratch);
    let dir = scratch.path("run");
    setup(&dir, &multi);
    let line = "--hacks=jump_label --hacks=noinstr --hacks=skylake --ibt --orc --retpoline --rethunk --sls --static-call --uaccess --prefix=16 --link --module a.o";
    let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
    let out = run_in(&dir, &objtool, &[], &[], &args);
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @"a.o: warning: objtool: f1+0x8: 'naked' return found in MITIGATION_RETHUNK build");
    assert_eq!(out.status.code(), Some(0));
    // the object was written (ORC at least)
    let a = std::fs::read(dir.join("a.o")).unwrap();
    let example =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alt_unwind_call.o"))
            .unwrap();
    assert_ne!(a, example);
    // a linked object is detected first, as objtool does, then the actions run
    let out = run_in(
        &dir,
        &objtool,
        &[],
        &[],
        &[
            "--static-call".into(),
            "--orc".into(),
            "--sls".into(),
            "multi.o".into(),
        ],
    );
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
    error: objtool: Linked object detected, forcing --link
    multi.o: warning: objtool: m1+0x0: missing int3 after ret
    multi.o: warning: objtool: m2+0x0: missing int3 after ret
    ");
    assert_eq!(out.status.code(), Some(0));
}

/// Every CFI rule fixture through objtool's command line: objtool's warnings exactly (with
/// `objtool:`, without orctool's own findings) and objtool's exit status.
#[test]
fn rule_fixtures_through_objtool_command_line() {
    let scratch = Scratch::new("objtool-rules");
    let objtool = objtool_link(&scratch);
    let dir = fixtures().join("cfi");
    let mut failures = vec![];
    let mut n = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "S"))
        .collect();
    names.sort();
    for src in names {
        let name = src.file_stem().unwrap().to_str().unwrap().to_owned();
        let first = std::fs::read_to_string(&src).unwrap();
        let args: Vec<String> = first
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# args:")
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let want = std::fs::read_to_string(dir.join(format!("{name}.warnings"))).unwrap();
        let exit: i32 = std::fs::read_to_string(dir.join(format!("{name}.exit")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let work = scratch.path(&name);
        std::fs::create_dir_all(&work).unwrap();
        assemble(&src, &work.join("FILE"));
        let mut all = args.clone();
        all.push("FILE".into());
        let out = run_in(&work, &objtool, &[], &[], &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr != want || out.status.code() != Some(exit) {
            failures.push(format!(
                "== {name} ({}): exit {:?} (objtool {exit})\n{stderr}-- objtool's:\n{want}",
                args.join(" "),
                out.status.code()
            ));
        }
        n += 1;
    }
    assert!(n > 80, "{n} fixtures");
    assert!(
        failures.is_empty(),
        "{}\n{} of {n} differ",
        failures.join("\n"),
        failures.len()
    );
}
