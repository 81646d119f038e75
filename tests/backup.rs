//! `--backup` (objtool's `objtool_create_backup()`): FILE.orig holds the object as it was
//! before the run, whether or not the run writes; made with mode 0644 (less the umask)
//! unless it exists; when it cannot be made, objtool's two messages and status 1, and the
//! object is left alone. `tests/actions.rs` checks FILE itself (fixture `backup_orc`).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use common::*;

fn input() -> Vec<u8> {
    std::fs::read(fixtures().join("actions/backup_orc.o")).unwrap()
}

fn objtool(dir: &Scratch, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orctool"))
        .current_dir(&dir.0)
        .arg("objtool")
        .args(args)
        .arg("FILE")
        .output()
        .unwrap()
}

#[test]
fn the_backup_is_the_object_before_the_run() {
    let dir = Scratch::new("backup-orc");
    std::fs::write(dir.path("FILE"), input()).unwrap();
    let out = objtool(&dir, &["--orc", "--backup"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(dir.path("FILE.orig")).unwrap(), input());
    let want = std::fs::read(fixtures().join("actions/backup_orc.out")).unwrap();
    assert_eq!(std::fs::read(dir.path("FILE")).unwrap(), want);
    // created 0644 less the umask (the test runs with the usual 022 or stricter)
    let mode = std::fs::metadata(dir.path("FILE.orig"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7133, 0, "mode {mode:o}");
}

#[test]
fn a_backup_is_made_when_nothing_is_written_and_keeps_its_mode() {
    let dir = Scratch::new("backup-dry");
    std::fs::write(dir.path("FILE"), input()).unwrap();
    std::fs::write(
        dir.path("FILE.orig"),
        b"an older backup, longer than nothing",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path("FILE.orig"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = objtool(&dir, &["--sls", "--dry-run", "--backup"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(dir.path("FILE.orig")).unwrap(), input());
    let mode = std::fs::metadata(dir.path("FILE.orig"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(std::fs::read(dir.path("FILE")).unwrap(), input());
}

#[test]
fn no_backup_no_run() {
    let dir = Scratch::new("backup-fail");
    std::fs::write(dir.path("FILE"), input()).unwrap();
    std::fs::create_dir(dir.path("FILE.orig")).unwrap();
    let out = objtool(&dir, &["--orc", "--backup"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "failed to create backup file: Is a directory\n\
         FILE: warning: objtool: can't create backup file\n"
    );
    assert_eq!(std::fs::read(dir.path("FILE")).unwrap(), input());
}

#[test]
fn the_backup_comes_before_the_option_checks_after_opening() {
    // objtool makes it before "--mnop requires --mcount"
    let dir = Scratch::new("backup-mnop");
    std::fs::write(dir.path("FILE"), input()).unwrap();
    let out = objtool(&dir, &["--sls", "--mnop", "--backup"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: objtool: --mnop requires --mcount\n"
    );
    assert_eq!(std::fs::read(dir.path("FILE.orig")).unwrap(), input());
}

#[test]
fn orctool_check_backs_up_before_writing_in_place() {
    let dir = Scratch::new("backup-check");
    std::fs::write(dir.path("FILE"), input()).unwrap();
    let out = orctool(&[
        "check",
        "--orc",
        "--backup",
        dir.path("FILE").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(dir.path("FILE.orig")).unwrap(), input());
    assert_ne!(std::fs::read(dir.path("FILE")).unwrap(), input());
}
