//! Helpers shared by the integration tests: run the binary, assemble `.S` files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the `orctool` binary with `args`.
pub fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(args)
        .output()
        .expect("run orctool")
}

/// The standard output of a command that must have succeeded (else the test fails with
/// its standard error).
pub fn stdout_ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("orctool-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assembles `src` (GNU as syntax, x86-64) into `out`.
/// Assembles `src` into `out`; `.include` files are found next to `src` (the rule fixtures
/// share tests/fixtures/cfi/kernel-macros.inc).
pub fn assemble(src: &Path, out: &Path) {
    let dir = src.parent().unwrap_or(Path::new("."));
    run(Command::new("as")
        .arg("-I")
        .arg(dir)
        .arg("-o")
        .arg(out)
        .arg(src));
}

/// Assembles assembly text into `dir/name.o`.
pub fn assemble_text(dir: &Scratch, name: &str, text: &str) -> PathBuf {
    let src = dir.path(&format!("{name}.S"));
    std::fs::write(&src, text).expect("write .S");
    let obj = dir.path(&format!("{name}.o"));
    assemble(&src, &obj);
    obj
}

/// Links `obj` into an executable image with its text at the kernel's usual address.
pub fn link_at_kernel_base(obj: &Path, out: &Path) {
    run(Command::new("ld")
        .arg("-Ttext=0xffffffff81000000")
        .args(["-e", "0", "-o"])
        .arg(out)
        .arg(obj));
}

/// The `.S` fixtures of `tests/fixtures/SET`, sorted by name: each one's name and the
/// objtool arguments of its first line (`# args: …`).
pub fn fixture_cases(set: &str) -> Vec<(String, Vec<String>)> {
    let dir = fixtures().join(set);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("S") {
            continue;
        }
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        let src = std::fs::read_to_string(&p).unwrap();
        let first = src.lines().next().unwrap_or("");
        let args = first
            .strip_prefix("# args:")
            .unwrap_or_else(|| panic!("{name}.S: first line must be '# args: …'"))
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        out.push((name, args));
    }
    out.sort();
    out
}
