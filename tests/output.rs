//! Where `orctool check --orc` writes, as a user meets it: only regular files are replaced
//! (`-o` onto a FIFO, a device or a pipe is an error), `-o -` is standard output, symbolic
//! links are followed, a file the user may not write gets objtool's "Permission denied",
//! owner, group, mode, extended attributes and hard links stay, and signals or a kill leave
//! no temporary file and no half-written object.

mod common;

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Scratch;

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("write").join(name)
}

/// The input object and the file objtool 6.12 writes from it (`objtool --orc`).
fn input_and_reference() -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(fixture("relocs.o")).unwrap(),
        std::fs::read(fixture("relocs.objtool.o")).unwrap(),
    )
}

fn check(args: &[&Path]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["check".as_ref(), "--orc".as_ref()];
    all.extend(args.iter().map(|p| p.as_os_str()));
    Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(all)
        .output()
        .expect("run orctool")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".orctool.tmp"))
        .collect()
}

fn ends_with_recovery_tail(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.ends_with(&orctool::elf::output::RECOVERY_MAGIC)
}

#[test]
fn output_onto_a_fifo_is_an_error_and_the_fifo_stays() {
    let dir = Scratch::new("out-fifo");
    let (input, _) = input_and_reference();
    let obj = dir.path("a.o");
    std::fs::write(&obj, &input).unwrap();
    let fifo = dir.path("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let out = check(&[&obj, "-o".as_ref(), &fifo]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("it is a FIFO, not a regular file"),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(std::fs::read(&obj).unwrap(), input);
    assert!(leftovers(&dir.0).is_empty());
}

/// `-o /dev/null` run as root replaced the device with a regular file; a device node made
/// here (the null device's numbers) stands for it.
#[test]
fn output_onto_a_device_is_an_error_and_the_device_stays() {
    if !is_root() {
        eprintln!("not root: no device node can be made; skipped");
        return;
    }
    let dir = Scratch::new("out-dev");
    let (input, _) = input_and_reference();
    let obj = dir.path("a.o");
    std::fs::write(&obj, &input).unwrap();
    let null = dir.path("null");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &null,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let out = check(&[&obj, "-o".as_ref(), &null]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a character device"),
        "{}",
        stderr(&out)
    );
    let meta = std::fs::symlink_metadata(&null).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
    assert!(leftovers(&dir.0).is_empty());
}

/// `-o /dev/stdout` (a link to `/proc/self/fd/1`, here a pipe) replaced the link with an
/// empty regular file; now it is an error and the link stays. A link made here to the same
/// place stands for /dev/stdout.
#[test]
fn output_onto_a_pipe_through_a_link_is_an_error() {
    let dir = Scratch::new("out-stdout");
    let (input, _) = input_and_reference();
    let obj = dir.path("a.o");
    std::fs::write(&obj, &input).unwrap();
    let stdout = dir.path("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &stdout).unwrap();
    let out = check(&[&obj, "-o".as_ref(), &stdout]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    assert!(
        std::fs::symlink_metadata(&stdout)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(leftovers(&dir.0).is_empty());
}

#[test]
fn output_dash_is_standard_output() {
    let dir = Scratch::new("out-dash");
    let (input, reference) = input_and_reference();
    let obj = dir.path("a.o");
    std::fs::write(&obj, &input).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .current_dir(&dir.0)
        .args(["check", "--orc", "a.o", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        out.stdout == reference,
        "standard output is not objtool's file"
    );
    assert!(!dir.path("-").exists(), "a file named '-' was created");
    assert_eq!(std::fs::read(&obj).unwrap(), input, "the input changed");
}

#[test]
fn symbolic_links_are_followed() {
    let dir = Scratch::new("out-symlink");
    let (input, reference) = input_and_reference();
    let real = dir.path("real.o");
    std::fs::write(&real, &input).unwrap();
    let link = dir.path("link.o");
    std::os::unix::fs::symlink("real.o", &link).unwrap();
    let out = check(&[&link]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read(&real).unwrap() == reference);
    // -o through a link to an existing file: the file is replaced, the link stays
    let other = dir.path("other.o");
    std::fs::write(&other, b"old").unwrap();
    let out_link = dir.path("out-link.o");
    std::os::unix::fs::symlink("other.o", &out_link).unwrap();
    std::fs::write(&real, &input).unwrap();
    let out = check(&[&real, "-o".as_ref(), &out_link]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&out_link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read(&other).unwrap() == reference);
    assert!(leftovers(&dir.0).is_empty());
}

/// objtool opens the object for writing first: "objtool: Can't open 'FILE': Permission
/// denied", exit 1, nothing changed. orctool rewrote the file through a rename (and, run by
/// another user, made it theirs).
#[test]
fn a_file_the_user_may_not_write_is_refused() {
    let dir = Scratch::new("out-perm");
    let (input, _) = input_and_reference();
    let obj = dir.path("a.o");
    std::fs::write(&obj, &input).unwrap();
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = if is_root() {
        // as an ordinary user (nobody), in a directory that user may write
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let Ok(out) = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_orctool"))
            .args(["check", "--orc"])
            .arg(&obj)
            .output()
        else {
            eprintln!("no setpriv: skipped");
            return;
        };
        out
    } else {
        check(&[&obj])
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let want = format!("Can't open '{}': Permission denied", obj.display());
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert_eq!(std::fs::read(&obj).unwrap(), input);
    let meta = std::fs::metadata(&obj).unwrap();
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(meta.mode() & 0o777, 0o444);
    assert!(leftovers(&dir.0).is_empty());
}

/// Mode, owner, group and extended attributes stay, written in place (a hard link) or
/// through a rename; a hard link stays one file.
#[test]
fn owner_group_mode_xattrs_and_hard_links_are_kept() {
    let dir = Scratch::new("out-meta");
    let (input, reference) = input_and_reference();
    for hard_link in [false, true] {
        let obj = dir.path("a.o");
        let other = dir.path("b.o");
        let _ = std::fs::remove_file(&obj);
        let _ = std::fs::remove_file(&other);
        std::fs::write(&obj, &input).unwrap();
        if hard_link {
            std::fs::hard_link(&obj, &other).unwrap();
        }
        let (uid, gid) = if is_root() {
            (65534, 65534)
        } else {
            let m = std::fs::metadata(&obj).unwrap();
            (m.uid(), m.gid())
        };
        std::os::unix::fs::chown(&obj, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o640)).unwrap();
        let file = std::fs::File::open(&obj).unwrap();
        let xattr = rustix::fs::fsetxattr(
            &file,
            "user.orctool-test",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        drop(file);
        let before = std::fs::metadata(&obj).unwrap();
        let out = check(&[&obj]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(std::fs::read(&obj).unwrap() == reference);
        let after = std::fs::metadata(&obj).unwrap();
        assert_eq!(
            (after.uid(), after.gid()),
            (uid, gid),
            "owner (hard link: {hard_link})"
        );
        assert_eq!(
            after.mode() & 0o7777,
            0o640,
            "mode (hard link: {hard_link})"
        );
        if xattr {
            let file = std::fs::File::open(&obj).unwrap();
            let mut value = [0u8; 16];
            let n = rustix::fs::fgetxattr(&file, "user.orctool-test", &mut value[..]);
            assert_eq!(n.ok().map(|n| &value[..n]), Some(&b"kept"[..]), "xattr");
        } else {
            eprintln!("no user extended attributes here: that part skipped");
        }
        if hard_link {
            assert_eq!(after.ino(), before.ino(), "the object is a new file");
            assert_eq!(after.nlink(), 2);
            assert!(
                std::fs::read(&other).unwrap() == reference,
                "the other name kept the old bytes"
            );
        }
        assert!(leftovers(&dir.0).is_empty());
    }
}

/// SIGTERM before each system call of the writer (SIGINT and SIGHUP before one): the
/// process dies of the signal, the object is the old one (the new one once the switch was
/// made), no temporary file and no tail.
#[test]
fn signals_leave_the_old_object_and_nothing_else() {
    let dir = Scratch::new("out-signal");
    let (input, reference) = input_and_reference();
    let obj = dir.path("a.o");
    // Runs with `sig` raised before system call `n`; returns whether the run finished.
    let run = |n: u32, sig: i32, hard_link: bool| -> bool {
        let _ = std::fs::remove_file(&obj);
        let _ = std::fs::remove_file(dir.path("b.o"));
        std::fs::write(&obj, &input).unwrap();
        if hard_link {
            std::fs::hard_link(&obj, dir.path("b.o")).unwrap();
        }
        let spec = format!("signal:{n}:{sig}");
        let out = check(&[&obj, "--fault".as_ref(), spec.as_ref()]);
        let now = std::fs::read(&obj).unwrap();
        assert!(leftovers(&dir.0).is_empty(), "{spec}: temporary file left");
        assert!(!ends_with_recovery_tail(&obj), "{spec}: tail left");
        if out.status.success() {
            assert!(now == reference, "{spec}: finished, but not objtool's file");
            return true;
        }
        assert_eq!(out.status.signal(), Some(sig), "{spec}: {}", stderr(&out));
        // before the switch to the new object, the old one; after it (the signal came
        // while the temporary name was removed), the new one
        let switched = now == reference;
        assert!(
            switched || now == input,
            "{spec}: neither the old nor the new object"
        );
        assert!(!switched || n > 3, "{spec}: switched before writing");
        false
    };
    for hard_link in [false, true] {
        let mut n = 1;
        while !run(n, 15, hard_link) {
            n += 1;
        }
        assert!(n > 3, "only {n} system calls");
        assert!(!run(2, 2, hard_link));
        assert!(!run(3, 1, hard_link));
    }
}

/// A large object changed in place is copied to its temporary file while it is analysed
/// (the prefill): SIGTERM before each system call of that copy and of the write after it
/// (SIGINT and SIGHUP before one): the process dies of the signal, the object is the old one
/// (the new one once switched), and no temporary file stays.
#[test]
fn signals_during_a_prefill_leave_the_old_object_and_nothing_else() {
    let dir = Scratch::new("out-signal-prefill");
    let (input, _) = common::large_object(true, false);
    let obj = dir.path("big.o");
    std::fs::write(&obj, &input).unwrap();
    // the reference: the same run written to a new file (no prefill)
    let reference_path = dir.path("reference.o");
    let made = check(&[&obj, "-o".as_ref(), &reference_path]);
    assert!(made.status.success(), "{}", stderr(&made));
    let reference = std::fs::read(&reference_path).unwrap();
    std::fs::remove_file(&reference_path).unwrap();
    assert_ne!(reference, input);
    let run = |n: u32, sig: i32| -> bool {
        std::fs::write(&obj, &input).unwrap();
        let spec = format!("signal:{n}:{sig}");
        let out = check(&[&obj, "--stats".as_ref(), "--fault".as_ref(), spec.as_ref()]);
        let now = std::fs::read(&obj).unwrap();
        assert!(leftovers(&dir.0).is_empty(), "{spec}: temporary file left");
        if out.status.success() {
            assert!(now == reference, "{spec}: finished, but not the file");
            assert!(
                stderr(&out).contains("write method: Prefilled"),
                "{spec}: not prefilled"
            );
            return true;
        }
        assert_eq!(out.status.signal(), Some(sig), "{spec}: {}", stderr(&out));
        assert!(now == input || now == reference, "{spec}: neither object");
        false
    };
    let mut n = 1;
    while !run(n, 15) {
        n += 1;
        assert!(n < 1000, "the writer never finished");
    }
    assert!(
        n > 40,
        "only {n} system calls: the 48 MB were not copied in chunks"
    );
    assert!(!run(2, 2));
    assert!(!run(n / 2, 1));
}

/// SIGKILL before each system call of a prefilled run (the copy beside the analysis, then
/// the write): the temporary file is anonymous until it is named for the switch, so only a
/// kill between its naming and its removal (the last two system calls) leaves a file
/// behind, which the next run removes.
#[test]
fn a_kill_before_the_switch_leaves_nothing() {
    let dir = Scratch::new("out-kill-prefill");
    let (input, _) = common::large_object(true, false);
    let obj = dir.path("big.o");
    let mut left = Vec::new();
    let mut n = 1;
    let calls = loop {
        std::fs::write(&obj, &input).unwrap();
        let spec = format!("signal:{n}:9");
        let out = check(&[&obj, "--stats".as_ref(), "--fault".as_ref(), spec.as_ref()]);
        if out.status.success() {
            assert!(
                stderr(&out).contains("write method: Prefilled"),
                "not prefilled"
            );
            break n - 1;
        }
        assert_eq!(out.status.signal(), Some(9), "{spec}: {}", stderr(&out));
        if !leftovers(&dir.0).is_empty() {
            left.push(n);
            // the next run cleans it and writes the object
            let again = check(&[&obj]);
            assert!(again.status.success(), "{spec}: {}", stderr(&again));
            assert!(
                leftovers(&dir.0).is_empty(),
                "{spec}: left after the next run"
            );
        }
        n += 1;
        assert!(n < 1000, "the writer never finished");
    };
    assert!(calls > 40, "only {calls} system calls");
    assert!(
        left.iter().all(|&k| k + 1 >= calls),
        "a kill before system call {left:?} of {calls} left a file"
    );
}

/// A run stopped after each system call (as SIGKILL would stop it): the file is a whole
/// object, and the next run on it cleans what was left and writes objtool's file.
#[test]
fn the_next_run_cleans_what_a_killed_run_left() {
    let dir = Scratch::new("out-kill");
    let (input, reference) = input_and_reference();
    for hard_link in [false, true] {
        let mut n = 1;
        loop {
            let obj = dir.path("a.o");
            let _ = std::fs::remove_file(&obj);
            let _ = std::fs::remove_file(dir.path("b.o"));
            std::fs::write(&obj, &input).unwrap();
            if hard_link {
                std::fs::hard_link(&obj, dir.path("b.o")).unwrap();
            }
            let spec = format!("stop:{n}");
            let first = check(&[&obj, "--fault".as_ref(), spec.as_ref()]);
            let stopped = std::fs::read(&obj).unwrap();
            assert!(
                orctool::elf::Object::parse(&stopped).is_ok(),
                "{spec}: not an object"
            );
            let again = check(&[&obj]);
            assert!(again.status.success(), "{spec}: {}", stderr(&again));
            assert!(
                std::fs::read(&obj).unwrap() == reference,
                "{spec}: not objtool's file"
            );
            assert!(leftovers(&dir.0).is_empty(), "{spec}: temporary file left");
            if first.status.success() {
                assert!(n > 3);
                break;
            }
            assert!(n < 200, "the writer never finished");
            n += 1;
        }
    }
}
