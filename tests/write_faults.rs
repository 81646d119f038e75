//! The writer stopped after each of its system calls (as a kill would), or with each system
//! call failing in turn: the file on disk is at every point the old object or the new one
//! (the same sections, headers and bytes), never a mix and never missing; the next run's
//! recovery makes it the old or the new file byte for byte, and no temporary file stays.
//! For a small object and a large generated one, updated in place and replaced by rename.

mod common;

use std::path::Path;

use common::{Scratch, large_object};
use object::read::elf::{ElfFile64, FileHeader as _, SectionHeader as _};
use object::{LittleEndian as LE, Object as _, ObjectSection as _};
use orctool::edits::{Edits, Patch};
use orctool::elf::Object;
use orctool::elf::output::{Destination, Fault, Method, inject_fault, recover};
use orctool::write::{
    OrcRow, WriteOptions, add_orc, orc_rows, orc_steps, start_prefill, write_file_prefilled,
};

/// What an object means, whatever its layout: the ELF header without `e_shoff`, then each
/// section's name, header fields except `sh_offset`, and bytes.
type Content = (Vec<u8>, Vec<(String, [u64; 7], Vec<u8>)>);

fn content(bytes: &[u8]) -> Option<Content> {
    let file = ElfFile64::<LE>::parse(bytes).ok()?;
    let mut header = bytes.get(..64)?.to_vec();
    header[0x28..0x30].fill(0);
    let mut sections = Vec::new();
    for s in file.sections() {
        let h = s.elf_section_header();
        let fields = [
            u64::from(h.sh_type(LE)),
            h.sh_flags(LE),
            h.sh_size(LE),
            u64::from(h.sh_link(LE)),
            u64::from(h.sh_info(LE)),
            h.sh_addralign(LE),
            h.sh_entsize(LE),
        ];
        let data = s.data().ok()?.to_vec();
        sections.push((s.name().ok()?.to_owned(), fields, data));
    }
    // the section header table must be inside the file
    let shoff = file.elf_header().e_shoff(LE);
    (shoff + 64 * sections.len() as u64 + 64 <= bytes.len() as u64).then_some((header, sections))
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".orctool.tmp"))
        .collect()
}

fn module() -> (Vec<u8>, Vec<OrcRow>) {
    let dir = common::fixtures().join("write");
    let input = std::fs::read(dir.join("relocs.o")).unwrap();
    let reference = std::fs::read(dir.join("relocs.objtool.o")).unwrap();
    let rows = orc_rows(&Object::parse(&reference).unwrap()).unwrap();
    (input, rows)
}

/// How an object is written in a fault run: beside a hard link to it (updated in place
/// rather than split), with `--sync`'s flushes, through a prefill.
#[derive(Clone, Copy, Default)]
struct How {
    hard_link: bool,
    sync: bool,
    prefill: bool,
}

/// Writes `rows` into the object at `path` in place (its bytes are `old`), with `fault`.
/// Returns the result and the number of system calls made.
fn write_in_place(
    path: &Path,
    old: &[u8],
    rows: &[OrcRow],
    patches: &[(u64, Vec<u8>)],
    fault: Option<Fault>,
    how: How,
) -> (orctool::Result<Method>, u32) {
    let How { sync, prefill, .. } = how;
    let file = std::fs::File::open(path).unwrap();
    let map = orctool::elf::input::map_file(&file).unwrap();
    assert_eq!(&map[..], old);
    let obj = Object::parse(&map).unwrap();
    // the patches are at input file offsets inside .text
    let text = obj.section_by_name(b".text").unwrap();
    let text_start = text_at(old);
    let edits = Edits {
        steps: if rows.is_empty() {
            Vec::new()
        } else {
            orc_steps(rows).into()
        },
        patches: patches
            .iter()
            .map(|(at, bytes)| Patch {
                section: text,
                offset: at - text_start,
                bytes: bytes.clone(),
            })
            .collect(),
    };
    let opts = WriteOptions {
        sync,
        ..WriteOptions::default()
    };
    inject_fault(fault);
    let result = std::thread::scope(|scope| {
        // (the prefill's copy, on a thread, makes the first system calls)
        let prefilled = prefill
            .then(|| start_prefill(scope, &obj, path, &opts))
            .flatten()
            .and_then(|p| p.take());
        assert!(
            prefilled.is_some() || !prefill || fault.is_some(),
            "not prefilled"
        );
        write_file_prefilled(
            &obj,
            &edits,
            &opts,
            Some(&file),
            Destination::InPlace(path),
            prefilled,
        )
    });
    (result, inject_fault(None))
}

/// Every stop and every failure, for one object; returns the method of the clean run and
/// the number of system calls it made.
fn every_fault(name: &str, old: &[u8], rows: &[OrcRow], hard_link: bool) -> (Method, u32) {
    let how = How {
        hard_link,
        ..How::default()
    };
    every_fault_patched(name, old, rows, &[], how)
}

/// The offset in `new` of input offset `at`, inside `.text`.
fn text_offset(old: &[u8], new: &[u8], at: u64) -> usize {
    (text_at(new) + at - text_at(old)) as usize
}

/// The file offset of an object's `.text`.
fn text_at(bytes: &[u8]) -> u64 {
    let f = ElfFile64::<LE>::parse(bytes).unwrap();
    f.section_by_name(".text").unwrap().file_range().unwrap().0
}

/// [`every_fault`] with byte patches (at input offsets in `.text`, as jump-label NOPs).
fn every_fault_patched(
    name: &str,
    old: &[u8],
    rows: &[OrcRow],
    patches: &[(u64, Vec<u8>)],
    how: How,
) -> (Method, u32) {
    let hard_link = how.hard_link;
    // the fault hook is one per process
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut new = add_orc(&Object::parse(old).unwrap(), rows, &WriteOptions::default()).unwrap();
    for (at, bytes) in patches {
        let to = text_offset(old, &new, *at);
        new[to..to + bytes.len()].copy_from_slice(bytes);
    }
    assert_ne!(old, &new[..]);
    let (old_content, new_content) = (content(old).unwrap(), content(&new).unwrap());
    let dir = Scratch::new(name);
    let path = dir.path("obj.o");
    let fresh = || {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(dir.path("link.o"));
        std::fs::write(&path, old).unwrap();
        if hard_link {
            std::fs::hard_link(&path, dir.path("link.o")).unwrap();
        }
    };
    fresh();
    let (method, calls) = write_in_place(&path, old, rows, patches, None, how);
    let method = method.expect("clean run");
    assert!(std::fs::read(&path).unwrap() == new, "{name}: clean run");
    assert!(calls > 2, "{name}: only {calls} system calls");
    for n in 1..=calls {
        // stopped after call n, as a kill would
        fresh();
        let _ = write_in_place(&path, old, rows, patches, Some(Fault::StopAfter(n)), how);
        let now =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: stop {n}: file missing: {e}"));
        let c = content(&now);
        assert!(
            c.as_ref() == Some(&old_content) || c.as_ref() == Some(&new_content),
            "{name}: after system call {n} of {calls} the file is neither the old nor the new object"
        );
        recover(&path).unwrap();
        let now = std::fs::read(&path).unwrap();
        assert!(
            now == old || now == new,
            "{name}: stop {n}: recovery gave neither file"
        );
        assert!(
            temporaries(&dir.0).is_empty(),
            "{name}: stop {n}: temporary file left"
        );
        if hard_link {
            assert_eq!(
                std::fs::read(dir.path("link.o")).unwrap(),
                now,
                "{name}: link split"
            );
        }
        // call n fails: the writer undoes itself
        fresh();
        let (result, _) = write_in_place(&path, old, rows, patches, Some(Fault::FailAt(n)), how);
        let now = std::fs::read(&path).unwrap();
        match result {
            Err(_) => assert!(
                now == old || now == new,
                "{name}: failure of call {n}: neither the old nor the new file"
            ),
            Ok(_) => assert_eq!(now, new, "{name}: failure of call {n} ignored, wrong file"),
        }
        // (only a failed unlink of the temporary name may leave it, for the next run)
        let left = temporaries(&dir.0);
        recover(&path).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            now,
            "{name}: failure {n}: a tail was left"
        );
        assert!(
            temporaries(&dir.0).is_empty(),
            "{name}: failure {n}: {left:?} left"
        );
    }
    (method, calls)
}

#[test]
fn module_in_place_every_fault() {
    let (old, rows) = module();
    let (method, _) = every_fault("faults-module-link", &old, &rows, true);
    assert!(matches!(method, Method::InPlace { .. }), "{method:?}");
}

/// Jump-label NOPs early in the file with the ORC sections at its end: both written.
#[test]
fn patched_module_in_place_every_fault() {
    let (old, rows) = module();
    let text = text_at(&old);
    let patches = [(text + 1, vec![0x0f, 0x1f, 0x00])];
    let linked = How {
        hard_link: true,
        ..How::default()
    };
    let (method, _) = every_fault_patched("faults-patched", &old, &rows, &patches, linked);
    assert!(matches!(method, Method::InPlace { .. }), "{method:?}");
    let (method, _) = every_fault_patched(
        "faults-patched-renamed",
        &old,
        &rows,
        &patches,
        How::default(),
    );
    assert_eq!(method, Method::Renamed);
}

/// With `--sync` the writer flushes the file before each switch and at the end: those
/// `fsync`s are system calls of the writer like the others, stopped after and failed in turn.
#[test]
fn synced_module_every_fault() {
    let (old, rows) = module();
    for hard_link in [true, false] {
        let name = format!("faults-synced-{hard_link}");
        let how = How {
            hard_link,
            ..How::default()
        };
        let (plain_method, plain) = every_fault_patched(&name, &old, &rows, &[], how);
        let how = How { sync: true, ..how };
        let (method, synced) = every_fault_patched(&name, &old, &rows, &[], how);
        assert_eq!(method, plain_method);
        assert!(
            synced > plain,
            "{synced} system calls with --sync, {plain} without"
        );
    }
}

#[test]
fn module_renamed_every_fault() {
    let (old, rows) = module();
    let (method, _) = every_fault("faults-module", &old, &rows, false);
    assert_eq!(method, Method::Renamed);
}

#[test]
fn large_object_in_place_every_fault() {
    let (old, rows) = large_object(false, false);
    let (method, calls) = every_fault("faults-large", &old, &rows, false);
    match method {
        // only the end of the file is written: not the 48 MB section
        Method::InPlace { shadowed, written } => {
            assert!(shadowed + written < 1 << 20, "{shadowed} + {written} bytes")
        }
        m => panic!("{m:?}"),
    }
    eprintln!("large object in place: {calls} system calls");
}

/// The moved object's sections copied by a prefill (beside the analysis, in a run) before
/// the write: its system calls, then the write's, stopped after and failed in turn; and
/// with byte patches inside the prefilled ranges.
#[test]
fn large_object_prefilled_every_fault() {
    let (old, rows) = large_object(true, true);
    let prefilled = How {
        prefill: true,
        ..How::default()
    };
    let (method, calls) =
        every_fault_patched("faults-large-prefilled", &old, &rows, &[], prefilled);
    match method {
        // only the end of the file (and the renumbered relocations) written after the analysis
        Method::Prefilled { reused, written } => {
            assert!(
                reused > 48 << 20 && written < 4 << 20,
                "{reused}, {written}"
            )
        }
        m => panic!("{m:?}"),
    }
    eprintln!("large object prefilled: {calls} system calls");
    let text = text_at(&old);
    let patches = [
        (text + 1, vec![0x0f, 0x1f, 0x00]),
        (text + 9, vec![0xcc; 5]),
    ];
    let (method, _) = every_fault_patched(
        "faults-large-prefilled-patched",
        &old,
        &rows,
        &patches,
        prefilled,
    );
    assert!(matches!(method, Method::Prefilled { .. }), "{method:?}");
}

#[test]
fn large_object_moved_every_fault() {
    let (old, rows) = large_object(true, true);
    let (method, calls) = every_fault("faults-large-moved", &old, &rows, false);
    assert_eq!(method, Method::Renamed);
    eprintln!("large object renamed, relocations renumbered: {calls} system calls");
}

/// The renumbered relocations are rewritten in place, read back from their copies.
#[test]
fn large_object_renumbered_in_place_every_fault() {
    let (old, rows) = large_object(false, true);
    let new = add_orc(
        &Object::parse(&old).unwrap(),
        &rows,
        &WriteOptions::default(),
    )
    .unwrap();
    let relocs = |bytes: &[u8]| {
        let (_, sections) = content(bytes).unwrap();
        let s = sections.into_iter().find(|s| s.0 == ".rela.debug_info");
        s.unwrap().2
    };
    let (was, now) = (relocs(&old), relocs(&new));
    assert!(was.len() > 2 << 20 && was.len() == now.len());
    let changed = (was.chunks(24).zip(now.chunks(24))).filter(|(a, b)| a != b);
    assert_eq!(changed.count(), 22_000, "every 5th record renumbered");
    let (method, calls) = every_fault("faults-large-renumbered", &old, &rows, false);
    match method {
        // the relocations (2.6 MB) and the end: not the 48 MB section
        Method::InPlace { shadowed, written } => {
            assert!(shadowed + written < 8 << 20, "{shadowed} + {written} bytes")
        }
        m => panic!("{m:?}"),
    }
    eprintln!("large object in place, relocations renumbered: {calls} system calls");
}
