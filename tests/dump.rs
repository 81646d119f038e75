//! `orctool dump` against outputs recorded from the real objtool (`--dump=orc`) on the same
//! files: small real modules of Debian's 6.12 and 6.1 kernels, and a hand-made table that
//! holds every value of the two flag bytes of an entry.

mod common;

use common::*;

fn expect_dump(args: &[&str], expected: &std::path::Path) {
    let out = orctool(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(expected).expect("recorded dump");
    let got = String::from_utf8(out.stdout).expect("utf-8 dump");
    assert!(!want.is_empty());
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "dump of {args:?} differs from objtool's at line {}:\n  orctool: {:?}\n  objtool: {:?}",
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}

/// Real modules, compressed as Debian ships them (xz) or recompressed (zstd, gzip) or plain;
/// the ABI is detected from the object (`.orc_header` for 6.12, `vermagic` for 6.1).
#[test]
fn real_modules_match_objtool() {
    let dir = fixtures().join("dump");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.split_once(".ko").map(|(s, _)| s) else {
            continue;
        };
        if name.ends_with(".dump") {
            continue;
        }
        expect_dump(
            &["dump", path.to_str().unwrap()],
            &dir.join(format!("{stem}.ko.dump")),
        );
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} fixture modules");
}

#[test]
fn every_flag_byte_relocatable_and_linked() {
    let dir = Scratch::new("allbits");
    let obj = dir.path("allbits.o");
    assemble(&fixtures().join("dump/allbits.S"), &obj);
    let linked = dir.path("allbits.linked");
    link_at_kernel_base(&obj, &linked);
    for abi in ["6.12", "6.1"] {
        for (file, kind) in [(&obj, "o"), (&linked, "linked")] {
            expect_dump(
                &["dump", "--orc-abi", abi, file.to_str().unwrap()],
                &fixtures().join(format!("dump/allbits.{kind}.{abi}.dump")),
            );
        }
    }
}

/// An object without ORC sections (or without a symbol table) dumps as nothing, like objtool.
#[test]
fn no_orc_prints_nothing() {
    let dir = Scratch::new("noorc");
    let obj = assemble_text(&dir, "plain", ".text\nf: ret\n");
    let out = orctool(&["dump", obj.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn several_files_get_headers() {
    let dir = fixtures().join("dump");
    let a = dir.join("nf_dup_ipv6-6.12.ko.xz");
    let b = dir.join("pcbc-6.1.ko.zst");
    let out = orctool(&["dump", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "{}:\n{}\n{}:\n{}",
        a.display(),
        std::fs::read_to_string(dir.join("nf_dup_ipv6-6.12.ko.dump")).unwrap(),
        b.display(),
        std::fs::read_to_string(dir.join("pcbc-6.1.ko.dump")).unwrap()
    );
    assert_eq!(text, want);
}
