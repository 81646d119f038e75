//! Records the git commit the binary is built from (`orctool --version`): `ORCTOOL_COMMIT`
//! from the environment when set (packaging), else `git rev-parse`, else "unknown" (a
//! source tree without git builds as well).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ORCTOOL_COMMIT");
    let commit = std::env::var("ORCTOOL_COMMIT").ok().or_else(|| {
        let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
        // rebuild when HEAD moves (a commit, a checkout)
        if let Some(path) = git(&["rev-parse", "--git-path", "HEAD"]) {
            println!("cargo:rerun-if-changed={path}");
        }
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(path) = git(&["rev-parse", "--git-path", &r]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
        Some(hash)
    });
    println!(
        "cargo:rustc-env=ORCTOOL_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
