//! The ORC writer (`orctool::write`) against the real objtool 6.12.
//!
//! Hermetic: the inputs are fixtures (`tests/fixtures/write/*.o`, assembled from the `.S`
//! beside them, and a real module of `tests/fixtures/dump/`) or assembled here with `as`;
//! every expected value was recorded from objtool 6.12 (Debian's `objtool.real-x86` of
//! linux-kbuild-6.12.117) run on the same input: `*.objtool.o` is its output file, and the
//! numbers in the assertions were read from those files with readelf.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Scratch, assemble_text, fixtures, link_at_kernel_base};

use object::elf;
use object::read::elf::{ElfFile64, FileHeader as _, SectionHeader as _};
use object::{LittleEndian as LE, Object as _, ObjectSection as _, ObjectSymbol as _};
use orctool::Error;
use orctool::elf::{Object, SecId};
use orctool::write::{BadRow, OrcRow, WriteError, WriteOptions, add_orc, orc_rows, replace_file};

/// Driver of `scripts/parity-write` (not a test): for each line `REFERENCE INPUT OUTPUT` of
/// the file named by `ORCTOOL_WRITE_JOBS`, reads the ORC rows objtool wrote into REFERENCE,
/// writes them into INPUT with `add_orc`, stores the result in OUTPUT and checks that every
/// section of INPUT is still there with the same bytes (apart from the tables a created
/// section symbol changes) and that the three new section headers equal objtool's. Prints
/// `parity-write: ok OUTPUT` or `parity-write: FAIL OUTPUT: why` per line. With
/// `ORCTOOL_WRITE_FORCE` set, INPUT has ORC already: its own rows are written into it with
/// `force` (see [`check_forced`]).
#[test]
#[ignore]
fn parity_driver() {
    let Ok(jobs) = std::env::var("ORCTOOL_WRITE_JOBS") else {
        return;
    };
    let jobs = std::fs::read_to_string(jobs).expect("job file");
    for line in jobs.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        let [reference, input, output] = parts[..] else {
            panic!("bad job line {line:?}");
        };
        let force = std::env::var_os("ORCTOOL_WRITE_FORCE").is_some();
        let result = if force {
            force_one(Path::new(input), Path::new(output)).map(|()| 0)
        } else {
            parity_one(Path::new(reference), Path::new(input), Path::new(output))
        };
        match result {
            // On a line of its own: libtest prints "test parity_driver ... " before.
            Ok(0) => println!("\nparity-write: ok {output}"),
            Ok(added) => println!("\nparity-write: ok {output} symbols-added={added}"),
            Err(e) => println!("\nparity-write: FAIL {output}: {e}"),
        }
    }
}

/// Returns the number of symbols `add_orc` created.
fn parity_one(reference: &Path, input: &Path, output: &Path) -> Result<usize, String> {
    let ref_bytes = std::fs::read(reference).map_err(|e| e.to_string())?;
    let in_bytes = std::fs::read(input).map_err(|e| e.to_string())?;
    let ref_obj = Object::parse(&ref_bytes).map_err(|e| format!("objtool's output: {e}"))?;
    let rows = orc_rows(&ref_obj).map_err(|e| format!("objtool's rows: {e}"))?;
    let in_obj = Object::parse(&in_bytes).map_err(|e| format!("input: {e}"))?;
    let ours = add_orc(&in_obj, &rows, &WriteOptions::default()).map_err(|e| e.to_string())?;
    std::fs::write(output, &ours).map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return if ours == in_bytes {
            Ok(0)
        } else {
            Err("no rows but the output differs from the input".into())
        };
    }
    let added = check_sections_kept(&in_bytes, &ours)?;
    let theirs = section_headers(&ref_bytes)?;
    let mine = section_headers(&ours)?;
    for name in [".orc_unwind", ".orc_unwind_ip", ".rela.orc_unwind_ip"] {
        let a = theirs.iter().find(|h| h.0 == name);
        let b = mine.iter().find(|h| h.0 == name);
        if a != b {
            return Err(format!("{name} header: objtool {a:?}, ours {b:?}"));
        }
    }
    Ok(added)
}

fn force_one(input: &Path, output: &Path) -> Result<(), String> {
    let in_bytes = std::fs::read(input).map_err(|e| e.to_string())?;
    let in_obj = Object::parse(&in_bytes).map_err(|e| format!("input: {e}"))?;
    let rows = orc_rows(&in_obj).map_err(|e| format!("rows: {e}"))?;
    let force = WriteOptions {
        force: true,
        sync: false,
    };
    let ours = add_orc(&in_obj, &rows, &force).map_err(|e| e.to_string())?;
    std::fs::write(output, &ours).map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(());
    }
    check_forced(&in_bytes, &ours)?;
    let again = Object::parse(&ours).map_err(|e| format!("our output: {e}"))?;
    if orc_rows(&again).map_err(|e| format!("our rows: {e}"))? != rows {
        return Err("rows read back differ".into());
    }
    if add_orc(&again, &rows, &force).map_err(|e| e.to_string())? != ours {
        return Err("forcing again changes the file".into());
    }
    Ok(())
}

/// `output` is `input` with its ORC sections moved to the end: the other sections in the
/// same order with the same bytes (`.symtab` aside: section indices), links and relocation
/// targets naming the same sections, every symbol in the same-named section.
fn check_forced(input: &[u8], output: &[u8]) -> Result<(), String> {
    let before = section_headers(input)?;
    let after = section_headers(output)?;
    let orc_names = [".orc_unwind", ".orc_unwind_ip", ".rela.orc_unwind_ip"];
    let kept: Vec<&Header> = before
        .iter()
        .filter(|h| !orc_names.contains(&h.0.as_str()))
        .collect();
    let n = after.len();
    if n != kept.len() + 3 || after[n - 3..].iter().map(|h| h.0.as_str()).ne(orc_names) {
        return Err("the ORC sections are not exactly the last three".into());
    }
    let name_of = |hs: &[Header], i: u32| {
        hs.iter()
            .find(|h| h.1 == i as usize)
            .map(|h| h.0.clone())
            .unwrap_or_default()
    };
    let a = ElfFile64::<LE>::parse(input).map_err(|e| e.to_string())?;
    let b = ElfFile64::<LE>::parse(output).map_err(|e| e.to_string())?;
    for (old, new) in kept.iter().zip(&after) {
        if old.0 != new.0 {
            return Err(format!("section order: {} became {}", old.0, new.0));
        }
        if old.5 != 0 && name_of(&before, old.5) != name_of(&after, new.5) {
            return Err(format!("{}: sh_link names another section", old.0));
        }
        if old.2 == RELA && name_of(&before, old.6) != name_of(&after, new.6) {
            return Err(format!("{}: relocates another section", old.0));
        }
        if (old.2, old.3, old.4, old.7, old.8) != (new.2, new.3, new.4, new.7, new.8) {
            return Err(format!("{}: header changed", old.0));
        }
        let da = a.section_by_index(object::SectionIndex(old.1));
        let db = b.section_by_index(object::SectionIndex(new.1));
        let (Ok(da), Ok(db)) = (da, db) else {
            return Err(format!("{}: missing", old.0));
        };
        if old.0 != ".symtab" && da.data().ok() != db.data().ok() {
            return Err(format!("{}: bytes changed", old.0));
        }
    }
    let new_rela = &after[n - 1];
    if name_of(&after, new_rela.5) != ".symtab" || new_rela.6 as usize != n - 1 {
        return Err(".rela.orc_unwind_ip: wrong link or info".into());
    }
    // Every symbol in the same-named section, in the same order.
    let symbol_sections = |f: &ElfFile64<LE>| -> Vec<(String, String)> {
        f.symbols()
            .map(|s| {
                let sec = s
                    .section_index()
                    .and_then(|i| f.section_by_index(i).ok())
                    .and_then(|s| s.name().ok().map(str::to_owned))
                    .unwrap_or_default();
                (s.name().unwrap_or("").to_owned(), sec)
            })
            .collect()
    };
    if symbol_sections(&a) != symbol_sections(&b) {
        return Err("a symbol changed section".into());
    }
    Ok(())
}

/// (name, index, type, flags, size, link, info, align, entsize) of every section but the
/// null one.
type Header = (String, usize, u32, u64, u64, u32, u32, u64, u64);

fn section_headers(bytes: &[u8]) -> Result<Vec<Header>, String> {
    let file = ElfFile64::<LE>::parse(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in file.sections() {
        let h = s.elf_section_header();
        out.push((
            s.name().map_err(|e| e.to_string())?.to_owned(),
            s.index().0,
            h.sh_type(LE),
            h.sh_flags(LE),
            h.sh_size(LE),
            h.sh_link(LE),
            h.sh_info(LE),
            h.sh_addralign(LE),
            h.sh_entsize(LE),
        ));
    }
    Ok(out)
}

/// Every section of `input` is in `output` at the same index with the same name, header
/// (offset aside) and bytes; `.symtab`, `.symtab_shndx`, relocation sections and group
/// sections may differ only when section symbols were added, and `.shstrtab` only by the
/// appended names.
/// Returns the number of symbols added.
fn check_sections_kept(input: &[u8], output: &[u8]) -> Result<usize, String> {
    let a = ElfFile64::<LE>::parse(input).map_err(|e| e.to_string())?;
    let b = ElfFile64::<LE>::parse(output).map_err(|e| format!("our output: {e}"))?;
    let added = b.elf_symbol_table().len() - a.elf_symbol_table().len();
    let shstrndx = a
        .elf_header()
        .shstrndx(LE, input)
        .map_err(|e| e.to_string())? as usize;
    if b.sections().count() != a.sections().count() + 3 {
        return Err("not exactly three sections added".into());
    }
    for (sa, sb) in a.sections().zip(b.sections()) {
        let (ha, hb) = (sa.elf_section_header(), sb.elf_section_header());
        let name = sa.name().unwrap_or("?").to_owned();
        if sa.name().ok() != sb.name().ok() {
            return Err(format!("section {} renamed", sa.index().0));
        }
        let same_header = ha.sh_type(LE) == hb.sh_type(LE)
            && ha.sh_flags(LE) == hb.sh_flags(LE)
            && ha.sh_addr(LE) == hb.sh_addr(LE)
            && ha.sh_link(LE) == hb.sh_link(LE)
            && ha.sh_addralign(LE).max(1) == hb.sh_addralign(LE)
            && ha.sh_entsize(LE) == hb.sh_entsize(LE);
        if !same_header {
            return Err(format!("{name}: header changed"));
        }
        let (da, db) = (
            sa.data().map_err(|e| e.to_string())?,
            sb.data().map_err(|e| e.to_string())?,
        );
        let sh_type = ha.sh_type(LE);
        let may_change = added > 0
            && matches!(
                sh_type,
                elf::SHT_SYMTAB | elf::SHT_SYMTAB_SHNDX | elf::SHT_RELA | elf::SHT_REL
            );
        if sa.index().0 == shstrndx {
            if !db.starts_with(da)
                || &db[da.len()..] != b".orc_unwind\0.orc_unwind_ip\0.rela.orc_unwind_ip\0"
            {
                return Err(format!("{name}: not the input plus the three names"));
            }
        } else if da != db && !may_change {
            return Err(format!("{name}: bytes changed"));
        } else if ha.sh_info(LE) != hb.sh_info(LE) && sh_type != elf::SHT_SYMTAB {
            // A group's signature symbol may move; it must stay the same symbol.
            let signature = |f: &ElfFile64<LE>, h: &elf::SectionHeader64<LE>| {
                f.symbol_by_index(object::SymbolIndex(h.sh_info(LE) as usize))
                    .ok()
                    .and_then(|s| s.name().ok().map(str::to_owned))
            };
            if sh_type != elf::SHT_GROUP || added == 0 || signature(&a, ha) != signature(&b, hb) {
                return Err(format!("{name}: sh_info changed"));
            }
        }
    }
    Ok(added)
}

// ---------------------------------------------------------------------------------------
// Helpers

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("write").join(name)).expect("fixture")
}

/// The rows objtool wrote into `objtool_output`.
fn rows_of(objtool_output: &[u8]) -> Vec<OrcRow> {
    orc_rows(&Object::parse(objtool_output).expect("parse")).expect("rows")
}

fn write(input: &[u8], rows: &[OrcRow], force: bool) -> orctool::Result<Vec<u8>> {
    add_orc(
        &Object::parse(input)?,
        rows,
        &WriteOptions { force, sync: false },
    )
}

fn headers(bytes: &[u8]) -> Vec<Header> {
    section_headers(bytes).expect("section headers")
}

fn header<'a>(headers: &'a [Header], name: &str) -> &'a Header {
    headers
        .iter()
        .find(|h| h.0 == name)
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// (offset, type, symbol index, addend) of each record of the RELA section `name`.
fn relocs(bytes: &[u8], name: &str) -> Vec<(u64, u32, u32, i64)> {
    let file = ElfFile64::<LE>::parse(bytes).expect("parse");
    let section = file.section_by_name(name).expect("rela section");
    let data = section.data().expect("data");
    data.chunks_exact(24)
        .map(|r| {
            let word = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap());
            let info = word(8);
            (word(0), info as u32, (info >> 32) as u32, word(16) as i64)
        })
        .collect()
}

/// (name, or the section's name for a section symbol; st_info; st_shndx) of every symbol.
fn symbols(bytes: &[u8]) -> Vec<(String, u8, u16)> {
    let file = ElfFile64::<LE>::parse(bytes).expect("parse");
    let table = file.elf_symbol_table();
    let mut out = vec![(String::new(), 0, 0)];
    for i in 1..table.len() {
        let sym = table.symbol(object::SymbolIndex(i)).expect("symbol");
        let name = if sym.st_info & 0xf == elf::STT_SECTION {
            match table.symbol_section(LE, sym, object::SymbolIndex(i)) {
                Ok(Some(s)) => file
                    .section_by_index(s)
                    .and_then(|s| s.name().map(str::to_owned))
                    .unwrap_or_default(),
                _ => String::new(),
            }
        } else {
            String::from_utf8_lossy(table.symbol_name(LE, sym).expect("name")).into_owned()
        };
        out.push((name, sym.st_info, sym.st_shndx.get(LE)));
    }
    out
}

fn names(symbols: &[(String, u8, u16)]) -> Vec<&str> {
    symbols.iter().map(|s| s.0.as_str()).collect()
}

/// `readelf -a -W` prints nothing on stderr and `ld -r` accepts the file.
fn binutils_accept(bytes: &[u8], dir: &Scratch, name: &str) {
    let path = dir.path(name);
    std::fs::write(&path, bytes).expect("write");
    let readelf = Command::new("readelf")
        .args(["-a", "-W"])
        .arg(&path)
        .output()
        .expect("run readelf");
    assert!(readelf.status.success(), "readelf failed on {name}");
    assert!(
        readelf.stderr.is_empty(),
        "readelf on {name}: {}",
        String::from_utf8_lossy(&readelf.stderr)
    );
    let ld = Command::new("ld")
        .arg("-r")
        .arg("-o")
        .arg(dir.path(&format!("{name}.ld.o")))
        .arg(&path)
        .output()
        .expect("run ld");
    assert!(
        ld.status.success(),
        "ld -r on {name}: {}",
        String::from_utf8_lossy(&ld.stderr)
    );
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// Section header fields as recorded from objtool 6.12 (readelf -SW of its output).
const PROGBITS: u32 = elf::SHT_PROGBITS;
const RELA: u32 = elf::SHT_RELA;
const ALLOC: u64 = elf::SHF_ALLOC as u64;
const INFO_LINK: u64 = elf::SHF_INFO_LINK as u64;
const PC32: u32 = elf::R_X86_64_PC32;

// ---------------------------------------------------------------------------------------
// The file objtool writes

/// simple.S: the three sections, their headers and names, byte for byte objtool's file.
#[test]
fn new_sections_as_objtool_writes_them() {
    let input = fixture("simple.o");
    let expected = fixture("simple.objtool.o");
    let ours = write(&input, &rows_of(&expected), false).expect("add_orc");
    assert!(ours == expected, "output differs from objtool's file");

    // Recorded from objtool 6.12 (readelf -SW simple.objtool.o):
    // [ 9] .orc_unwind PROGBITS size 0x24 ES 6 A Lk 0 Inf 0 Al 1
    // [10] .orc_unwind_ip PROGBITS size 0x18 ES 4 A Lk 0 Inf 0 Al 1
    // [11] .rela.orc_unwind_ip RELA size 0x90 ES 0x18 I Lk 6 Inf 10 Al 8
    let h = headers(&ours);
    assert_eq!(h.len(), 11);
    let orc = header(&h, ".orc_unwind");
    assert_eq!((orc.1, orc.2, orc.3, orc.4), (9, PROGBITS, ALLOC, 0x24));
    assert_eq!((orc.5, orc.6, orc.7, orc.8), (0, 0, 1, 6));
    let ip = header(&h, ".orc_unwind_ip");
    assert_eq!((ip.1, ip.2, ip.3, ip.4), (10, PROGBITS, ALLOC, 0x18));
    assert_eq!((ip.5, ip.6, ip.7, ip.8), (0, 0, 1, 4));
    let rela = header(&h, ".rela.orc_unwind_ip");
    assert_eq!(
        (rela.1, rela.2, rela.3, rela.4),
        (11, RELA, INFO_LINK, 0x90)
    );
    assert_eq!((rela.5, rela.6, rela.7, rela.8), (6, 10, 8, 24));
    assert_eq!(header(&h, ".symtab").1, 6);

    let file = ElfFile64::<LE>::parse(&*ours).unwrap();
    let ip_data = file
        .section_by_name(".orc_unwind_ip")
        .unwrap()
        .data()
        .unwrap();
    assert!(ip_data.iter().all(|&b| b == 0), "objtool writes zero bytes");
    let orc_data = file.section_by_name(".orc_unwind").unwrap().data().unwrap();
    let entries: Vec<u8> = rows_of(&expected).iter().flat_map(|r| r.entry).collect();
    assert_eq!(orc_data, &entries[..]);
    // The names are appended to .shstrtab, nothing shared with existing names.
    let shstrtab = file.section_by_name(".shstrtab").unwrap().data().unwrap();
    assert!(shstrtab.ends_with(b"\0.orc_unwind\0.orc_unwind_ip\0.rela.orc_unwind_ip\0"));
    let before = ElfFile64::<LE>::parse(&*input).unwrap();
    let old = before.section_by_name(".shstrtab").unwrap().data().unwrap();
    assert_eq!(shstrtab.len(), old.len() + 47);
}

/// Relocation i: offset 4·i, R_X86_64_PC32, the section symbol, addend = the offset.
#[test]
fn relocations_are_pc32_against_section_symbols() {
    let expected = fixture("simple.objtool.o");
    let ours = write(&fixture("simple.o"), &rows_of(&expected), false).unwrap();
    // Recorded from objtool 6.12 (readelf -rW simple.objtool.o): .text+0..3, .text.other+0..1,
    // symbols 1 (.text) and 2 (.text.other).
    let want = vec![
        (0, PC32, 1, 0),
        (4, PC32, 1, 1),
        (8, PC32, 1, 2),
        (12, PC32, 1, 3),
        (16, PC32, 2, 0),
        (20, PC32, 2, 1),
    ];
    assert_eq!(relocs(&ours, ".rela.orc_unwind_ip"), want);
    assert_eq!(relocs(&expected, ".rela.orc_unwind_ip"), want);
    let rows = rows_of(&ours);
    assert_eq!(rows, rows_of(&expected));
    assert_eq!(rows[4].section, SecId(4));
    assert_eq!(rows[5].offset, 1);
}

/// relocs.S: section symbols are created in row order at `sh_info`; the globals there move to
/// the end and every relocation that used them is renumbered.
#[test]
fn created_section_symbols_move_globals_and_renumber_relocations() {
    let input = fixture("relocs.o");
    let expected = fixture("relocs.objtool.o");
    assert_eq!(
        names(&symbols(&input)),
        ["", "f", "g", "h", "foo"],
        "fixture input as assembled"
    );
    let ours = write(&input, &rows_of(&expected), false).unwrap();
    assert!(ours == expected, "output differs from objtool's file");

    // Recorded from objtool 6.12 (readelf -sW / -rW relocs.objtool.o).
    let syms = symbols(&ours);
    assert_eq!(
        names(&syms),
        [
            "",
            ".text",
            ".text.foo",
            ".text.other",
            "foo",
            "f",
            "g",
            "h"
        ]
    );
    let section_sym = (elf::STB_LOCAL << 4) | elf::STT_SECTION;
    assert_eq!(syms[1], (".text".into(), section_sym, 2));
    assert_eq!(syms[2], (".text.foo".into(), section_sym, 7));
    assert_eq!(syms[3], (".text.other".into(), section_sym, 9));
    assert_eq!(
        header(&headers(&ours), ".symtab").6,
        4,
        "sh_info: first global"
    );
    let plt = elf::R_X86_64_PLT32;
    let abs = elf::R_X86_64_64;
    assert_eq!(
        relocs(&ours, ".rela.text"),
        [(1, plt, 6, -4), (6, plt, 7, -4)]
    );
    assert_eq!(
        relocs(&ours, ".rela.data"),
        [(0, abs, 5, 0), (8, abs, 6, 0), (16, abs, 4, 0)]
    );
    assert_eq!(relocs(&ours, ".rela.text.foo"), [(1, plt, 5, -4)]);
    assert_eq!(
        relocs(&ours, ".rela.orc_unwind_ip")
            .iter()
            .map(|r| (r.2, r.3))
            .collect::<Vec<_>>(),
        [(1, 0), (1, 0xb), (2, 0), (2, 6), (3, 0), (3, 1)]
    );
    let dir = Scratch::new("write-relocs");
    binutils_accept(&ours, &dir, "relocs.o");
}

/// comdat.S: an SHT_GROUP keeps its flag word and members, and its signature stays the same
/// symbol. Here objtool 6.12 differs on purpose: it leaves sh_info at the old index (1, now
/// the .text section symbol); we point it at foo's new index (3). Nothing else differs.
#[test]
fn group_sections_are_preserved() {
    let input = fixture("comdat.o");
    let expected = fixture("comdat.objtool.o");
    let ours = write(&input, &rows_of(&expected), false).unwrap();

    let file = ElfFile64::<LE>::parse(&*ours).unwrap();
    let group = file.section_by_name(".group").unwrap();
    let old = ElfFile64::<LE>::parse(&*input).unwrap();
    let old_group = old.section_by_name(".group").unwrap();
    assert_eq!(group.data().unwrap(), old_group.data().unwrap());
    assert_eq!(group.data().unwrap(), [1, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0]);
    let h = headers(&ours);
    assert_eq!(header(&h, ".group").6, 3);
    assert_eq!(symbols(&ours)[3].0, "foo");
    assert_eq!(header(&headers(&input), ".group").6, 1);
    assert_eq!(symbols(&input)[1].0, "foo");
    assert_eq!(
        header(&headers(&expected), ".group").6,
        1,
        "objtool's stale index"
    );

    // Apart from those 4 bytes (sh_info of section 1 in the header table), objtool's file.
    let shoff = file.elf_header().e_shoff.get(LE) as usize;
    let at = shoff + 64 + 44;
    assert_eq!(&ours[at..at + 4], &3u32.to_le_bytes());
    let mut patched = ours.clone();
    patched[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
    assert!(patched == expected, "differs from objtool's file elsewhere");

    let dir = Scratch::new("write-comdat");
    binutils_accept(&ours, &dir, "comdat.o");
    let groups = Command::new("readelf")
        .arg("-gW")
        .arg(dir.path("comdat.o"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&groups.stdout);
    assert!(text.contains("[foo] contains 2 sections"), "{text}");
}

/// The same with an object assembled here (whatever `as` is installed): rows written by hand.
#[test]
fn group_sections_are_preserved_fresh_assembly() {
    let dir = Scratch::new("write-comdat-fresh");
    let source = std::fs::read_to_string(fixtures().join("write/comdat.S")).unwrap();
    let obj = assemble_text(&dir, "comdat", &source);
    let input = std::fs::read(&obj).unwrap();
    let file = ElfFile64::<LE>::parse(&*input).unwrap();
    let index = |name: &str| SecId(file.section_by_name(name).unwrap().index().0 as u32);
    let rows = [
        (index(".text.foo"), 0, [8, 0, 0, 0, 0x05, 0x02]),
        (index(".text.foo"), 6, [0; 6]),
        (index(".text"), 0, [8, 0, 0, 0, 0x05, 0x02]),
        (index(".text"), 6, [0; 6]),
    ]
    .map(|(section, offset, entry)| OrcRow {
        section,
        offset,
        entry,
    });
    let ours = write(&input, &rows, false).unwrap();
    let out = ElfFile64::<LE>::parse(&*ours).unwrap();
    let group = out.section_by_name(".group").unwrap();
    assert_eq!(
        group.data().unwrap(),
        file.section_by_name(".group").unwrap().data().unwrap()
    );
    let sig = header(&headers(&ours), ".group").6 as usize;
    assert_eq!(symbols(&ours)[sig].0, "foo");
    // Section symbols created in row order: .text.foo first.
    assert_eq!(names(&symbols(&ours))[1..3], [".text.foo", ".text"]);
    binutils_accept(&ours, &dir, "out.o");
}

// ---------------------------------------------------------------------------------------
// Existing ORC

#[test]
fn existing_orc_is_refused_unless_forced() {
    let objtool = fixture("simple.objtool.o");
    let rows = rows_of(&objtool);
    let err = write(&objtool, &rows, false).unwrap_err();
    assert!(matches!(err, Error::Write(WriteError::AlreadyHasOrc(ref s)) if s == ".orc_unwind"));
    assert_eq!(
        err.to_string(),
        "file already has .orc_unwind section (--force replaces it)"
    );
    // objtool does nothing (and checks nothing) without entries; neither do we.
    assert!(write(&objtool, &[], false).unwrap() == objtool);
    // Forced on objtool's own output with the same rows: objtool's file again (the section
    // symbols it created are kept, the three sections are made anew).
    assert!(write(&objtool, &rows, true).unwrap() == objtool);
    // Other rows replace the table.
    let fewer = &rows[..4];
    let replaced = write(&objtool, fewer, true).unwrap();
    assert_eq!(rows_of(&replaced), fewer);
    assert_eq!(headers(&replaced).len(), 11);
}

/// A real module, whose ORC sections (put there by ld) sit in the middle: --force removes
/// them, renumbers everything after them and appends the new ones; `.orc_header` stays.
#[test]
fn force_replaces_orc_in_the_middle_of_a_module() {
    let path = fixtures().join("dump/xt_rateest-6.12.ko.xz");
    let module = orctool::elf::input::open(&path).expect("module").to_vec();
    let rows = rows_of(&module);
    assert_eq!(rows.len(), 35);
    assert!(matches!(
        write(&module, &rows, false),
        Err(Error::Write(WriteError::AlreadyHasOrc(_)))
    ));
    let ours = write(&module, &rows, true).expect("forced");

    // The dump is objtool's (recorded in tests/fixtures/dump).
    let obj = Object::parse(&ours).unwrap();
    let mut dump = String::new();
    orctool::orc::dump::dump(&obj, orctool::orc::OrcAbi::V6_12, &mut dump).unwrap();
    let want = std::fs::read_to_string(fixtures().join("dump/xt_rateest-6.12.ko.dump")).unwrap();
    assert_eq!(dump, want);

    check_forced(&module, &ours).unwrap();
    let after = headers(&ours);
    assert!(after.iter().any(|h| h.0 == ".orc_header"));
    assert!(
        headers(&module)[..after.len() - 3]
            .iter()
            .any(|h| h.0 == ".orc_unwind"),
        "the fixture's ORC is not at the end"
    );

    let dir = Scratch::new("write-force");
    binutils_accept(&ours, &dir, "xt_rateest.ko");
    // Forcing again with the same rows changes nothing.
    assert!(write(&ours, &rows, true).unwrap() == ours);
}

/// oldorc.S: --force drops the section symbol of a removed section, shifts the later
/// sections and symbols down, and then creates section symbols as objtool does.
#[test]
fn force_drops_symbols_of_removed_sections() {
    let input = fixture("oldorc.o");
    let h = headers(&input);
    assert_eq!(header(&h, ".text").1, 1, "fixture as assembled");
    assert_eq!(header(&h, ".text.g").1, 9);
    assert_eq!(names(&symbols(&input)), ["", ".orc_unwind", "f", "g"]);
    let entry = [8, 0, 0, 0, 0x05, 0x02];
    let rows = [(1, 0, entry), (1, 6, [0; 6]), (9, 0, entry), (9, 1, [0; 6])].map(
        |(section, offset, entry)| OrcRow {
            section: SecId(section),
            offset,
            entry,
        },
    );
    assert!(matches!(
        write(&input, &rows, false),
        Err(Error::Write(WriteError::AlreadyHasOrc(_)))
    ));
    let ours = write(&input, &rows, true).unwrap();

    let h = headers(&ours);
    let order: Vec<&str> = h.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        order,
        [
            ".text",
            ".rela.text",
            ".data",
            ".rela.data",
            ".bss",
            ".text.g",
            ".symtab",
            ".strtab",
            ".shstrtab",
            ".orc_unwind",
            ".orc_unwind_ip",
            ".rela.orc_unwind_ip"
        ]
    );
    // (link, info) of the relocation sections; .symtab is now 7, .text.g 6.
    assert_eq!((h[1].5, h[1].6), (7, 1));
    assert_eq!((h[3].5, h[3].6), (7, 3));
    assert_eq!((h[11].5, h[11].6), (7, 11));
    assert_eq!((h[6].5, h[6].6), (8, 3), ".symtab: strtab link, 3 locals");
    let syms = symbols(&ours);
    assert_eq!(names(&syms), ["", ".text", ".text.g", "f", "g"]);
    assert_eq!((syms[1].2, syms[2].2, syms[3].2, syms[4].2), (1, 6, 1, 6));
    let plt = elf::R_X86_64_PLT32;
    let abs = elf::R_X86_64_64;
    assert_eq!(relocs(&ours, ".rela.text"), [(1, plt, 4, -4)]);
    assert_eq!(
        relocs(&ours, ".rela.data"),
        [(0, abs, 3, 0), (8, abs, 4, 0)]
    );
    assert_eq!(
        relocs(&ours, ".rela.orc_unwind_ip"),
        [
            (0, PC32, 1, 0),
            (4, PC32, 1, 6),
            (8, PC32, 2, 0),
            (12, PC32, 2, 1)
        ]
    );
    // The rows read back name the shifted section.
    let back = rows_of(&ours);
    assert_eq!(back[2].section, SecId(6));
    assert_eq!(
        back.iter().map(|r| r.entry).collect::<Vec<_>>(),
        rows.map(|r| r.entry)
    );
    // The old names are used again: .shstrtab is unchanged.
    let file = |b: &[u8]| {
        ElfFile64::<LE>::parse(b)
            .unwrap()
            .section_by_name(".shstrtab")
            .unwrap()
            .data()
            .unwrap()
            .to_vec()
    };
    assert_eq!(file(&ours), file(&input));
    let dir = Scratch::new("write-oldorc");
    binutils_accept(&ours, &dir, "oldorc.o");
    assert!(write(&ours, &back, true).unwrap() == ours);
}

// ---------------------------------------------------------------------------------------
// Extended section indices

/// 65300 one-function sections: section symbols beyond SHN_LORESERVE get SHN_XINDEX and a
/// `.symtab_shndx` entry. objtool 6.12 also rewrites the `.symtab_shndx` entry of each moved
/// global to its section index (gas wrote 0 for direct indices); we do the same. The
/// expected output is identified by the FNV-1a hash of objtool's output file for this input
/// (assembled by binutils 2.40, Debian 12); another `as` gives another input, and then only
/// the structural checks run.
#[test]
fn extended_section_indices() {
    const SECTIONS: usize = 65300;
    const INPUT_FNV: u64 = 0x7cfe_9601_c911_bfd4; // as 2.40 output, 7096288 bytes
    const OBJTOOL_FNV: u64 = 0xe404_950d_fb33_e02d; // objtool 6.12 output, 13365320 bytes
    let mut source = String::new();
    for i in 0..SECTIONS {
        source.push_str(&format!(
            ".section .t.{i},\"ax\"\n.globl f{i}\n.type f{i},@function\nf{i}:\n ret\n.size f{i},.-f{i}\n"
        ));
    }
    source.push_str(".data\n.quad f0\n.quad f65299\n");
    let dir = Scratch::new("write-xindex");
    let input = std::fs::read(assemble_text(&dir, "big", &source)).unwrap();
    let file = ElfFile64::<LE>::parse(&*input).unwrap();
    // objtool's rows for this object: each function's `ret` (CALL, sp+8) and the terminator.
    let mut rows = Vec::new();
    for s in file.sections() {
        if s.name().unwrap().starts_with(".t.") {
            let section = SecId(s.index().0 as u32);
            rows.push(OrcRow {
                section,
                offset: 0,
                entry: [8, 0, 0, 0, 0x05, 0x02],
            });
            rows.push(OrcRow {
                section,
                offset: 1,
                entry: [0; 6],
            });
        }
    }
    let ours = write(&input, &rows, false).unwrap();
    if fnv1a(&input) == INPUT_FNV {
        assert_eq!(ours.len(), 13365320);
        assert_eq!(fnv1a(&ours), OBJTOOL_FNV, "differs from objtool's file");
    } else {
        eprintln!("extended_section_indices: another `as`; structural checks only");
    }
    let out = ElfFile64::<LE>::parse(&*ours).unwrap();
    let symtab = out.elf_symbol_table();
    assert_eq!(symtab.len(), 1 + 2 * SECTIONS);
    assert_eq!(
        header(&headers(&ours), ".symtab").6 as usize,
        1 + SECTIONS,
        "sh_info"
    );
    let shndx = out
        .section_by_name(".symtab_shndx")
        .unwrap()
        .data()
        .unwrap();
    let entry = |i: usize| u32::from_le_bytes(shndx[4 * i..4 * i + 4].try_into().unwrap());
    let last_section = out.section_by_name(".t.65299").unwrap().index().0 as u32;
    let first_section = out.section_by_name(".t.0").unwrap().index().0 as u32;
    // The last section symbol: SHN_XINDEX and its index in .symtab_shndx.
    let sym = symtab.symbol(object::SymbolIndex(SECTIONS)).unwrap();
    assert_eq!(sym.st_info, (elf::STB_LOCAL << 4) | elf::STT_SECTION);
    assert_eq!(sym.st_shndx.get(LE), elf::SHN_XINDEX);
    assert_eq!(entry(SECTIONS), last_section);
    // The first section symbol: a direct index, which objtool also stores in .symtab_shndx.
    let sym = symtab.symbol(object::SymbolIndex(1)).unwrap();
    assert_eq!(sym.st_shndx.get(LE) as u32, first_section);
    assert_eq!(entry(1), first_section);
    // The moved globals: f0 at 65301 (direct; its .symtab_shndx entry now set, as objtool
    // does), f65299 last (extended).
    let f0 = symtab.symbol(object::SymbolIndex(SECTIONS + 1)).unwrap();
    assert_eq!(symtab.symbol_name(LE, f0).unwrap(), b"f0");
    assert_eq!(f0.st_shndx.get(LE) as u32, first_section);
    assert_eq!(entry(SECTIONS + 1), first_section);
    let last = symtab.symbol(object::SymbolIndex(2 * SECTIONS)).unwrap();
    assert_eq!(symtab.symbol_name(LE, last).unwrap(), b"f65299");
    assert_eq!(last.st_shndx.get(LE), elf::SHN_XINDEX);
    assert_eq!(entry(2 * SECTIONS), last_section);
    // The relocations of .data follow f0 and f65299.
    let data_relocs = relocs(&ours, ".rela.data");
    assert_eq!(data_relocs[0].2 as usize, SECTIONS + 1);
    assert_eq!(data_relocs[1].2 as usize, 2 * SECTIONS);
    assert_eq!(rows_of(&ours), rows);
}

// ---------------------------------------------------------------------------------------
// Bad calls and bad input

#[test]
fn bad_rows_are_errors() {
    let input = fixture("simple.o");
    let row = |section: u32, offset: u64| OrcRow {
        section: SecId(section),
        offset,
        entry: [0; 6],
    };
    let bad = |rows: &[OrcRow]| match write(&input, rows, false) {
        Err(Error::Write(WriteError::BadReloc { index, problem, .. })) => (index, problem),
        other => panic!("expected BadReloc, got {:?}", other.map(|v| v.len())),
    };
    // .data (2) is not executable: objtool "bad call to elf_init_reloc_text_sym()".
    assert_eq!(bad(&[row(1, 0), row(2, 0)]).0, 1);
    assert!(matches!(bad(&[row(2, 0)]).1, BadRow::NotExecutable(_)));
    // .text is 3 bytes: offset 3 (the terminator) is fine, 4 is not.
    assert!(write(&input, &[row(1, 3)], false).is_ok());
    assert!(matches!(
        bad(&[row(1, 4)]).1,
        BadRow::Outside { offset: 4, .. }
    ));
    assert!(matches!(bad(&[row(0, 0)]).1, BadRow::NoSection(0)));
    assert!(matches!(bad(&[row(99, 0)]).1, BadRow::NoSection(99)));
    // A linked file is not written.
    let dir = Scratch::new("write-linked");
    let obj = dir.path("simple.o");
    std::fs::write(&obj, &input).unwrap();
    let linked = dir.path("simple.linked");
    link_at_kernel_base(&obj, &linked);
    let linked = std::fs::read(&linked).unwrap();
    assert!(matches!(
        write(&linked, &[row(1, 0)], false),
        Err(Error::Write(WriteError::NotRelocatable))
    ));
}

/// Every byte of two small objects flipped in three ways: `add_orc` returns, never panics.
#[test]
fn mutated_objects_never_panic() {
    let rows = [
        OrcRow {
            section: SecId(1),
            offset: 0,
            entry: [8, 0, 0, 0, 0x05, 0x02],
        },
        OrcRow {
            section: SecId(4),
            offset: 1,
            entry: [0; 6],
        },
    ];
    let mut written = 0;
    for name in ["simple.o", "simple.objtool.o", "comdat.objtool.o"] {
        let original = fixture(name);
        for at in 0..original.len() {
            for mask in [0xff, 0x80, 0x01] {
                let mut data = original.clone();
                data[at] ^= mask;
                let Ok(obj) = Object::parse(&data) else {
                    continue;
                };
                for force in [false, true] {
                    if add_orc(&obj, &rows, &WriteOptions { force, sync: false }).is_ok() {
                        written += 1;
                    }
                }
            }
        }
    }
    assert!(written > 1000, "only {written} mutated objects written");
}

// ---------------------------------------------------------------------------------------
// replace_file

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".orctool.tmp"))
        .collect()
}

#[test]
fn replace_file_replaces_and_keeps_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Scratch::new("write-replace");
    let path = dir.path("a.o");
    std::fs::write(&path, b"old contents").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    replace_file(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(temp_files(&dir.0).is_empty());
    // Through a symbolic link: the link stays, its target is replaced.
    let link = dir.path("link.o");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    replace_file(&link, b"newer").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"newer");
    assert!(temp_files(&dir.0).is_empty());
}

#[test]
fn replace_file_failures_leave_everything_as_it_was() {
    let dir = Scratch::new("write-replace-fail");
    // The directory does not exist: nothing can be created.
    let missing = dir.path("no/such/dir/a.o");
    let err = replace_file(&missing, b"x").unwrap_err();
    assert!(matches!(err, Error::Write(WriteError::Io { .. })), "{err}");
    assert!(!dir.path("no").exists());

    // The target is a (non-empty) directory: not a regular file, nothing is written.
    let target = dir.path("subdir");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"keep").unwrap();
    let err = replace_file(&target, b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Write(WriteError::NotRegularFile {
                kind: "a directory",
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep");
    assert!(temp_files(&dir.0).is_empty(), "temporary file left behind");

    // The file itself cannot be replaced: a read-only directory (ordinary user), or, for
    // root (who ignores directory permissions), an immutable file (chattr +i).
    let sub = dir.path("ro");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("a.o");
    let original = fixture("simple.o");
    std::fs::write(&path, &original).unwrap();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if is_root {
        let chattr = Command::new("chattr").arg("+i").arg(&path).status();
        if !matches!(chattr, Ok(s) if s.success()) {
            eprintln!("replace_file: chattr +i not possible here; skipping that case");
            return;
        }
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let result = replace_file(&path, b"new bytes");
    if is_root {
        let _ = Command::new("chattr").arg("-i").arg(&path).status();
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(
        result.is_err(),
        "replace_file succeeded on a protected file"
    );
    assert_eq!(std::fs::read(&path).unwrap(), original, "original changed");
    assert!(temp_files(&sub).is_empty(), "temporary file left behind");
}

// ---------------------------------------------------------------------------------------
// Created symbols and sections other than ORC (the actions' `Edits`)

/// A LOCAL symbol and a section with relocations to it, to an input symbol and to a section
/// symbol that has to be created: the LOCAL symbols go at `sh_info` with the first globals
/// moving to the end, every old relocation still names its symbol, the names are appended
/// to `.strtab` and `.shstrtab`, and the `.rela` section follows its section.
#[test]
fn created_symbols_and_sections() {
    use orctool::edits::{Edits, NewReloc, NewSection, NewSymbol, RelocTarget, Step};
    use orctool::elf::SymId;
    let input = fixture("relocs.o");
    let obj = Object::parse(&input).unwrap();
    let text = obj.section_by_name(b".text").unwrap();
    let pc32 = |offset: u64, target: RelocTarget, addend: i64| NewReloc {
        offset,
        r_type: elf::R_X86_64_PC32,
        target,
        addend,
    };
    let edits = Edits {
        steps: vec![
            Step::Symbol(NewSymbol {
                name: b"__pfx_local".to_vec(),
                st_info: (elf::STB_LOCAL << 4) | elf::STT_FUNC,
                st_other: 0,
                section: text,
                value: 1,
                size: 2,
            }),
            Step::Section(NewSection::new(
                b".test_sites",
                4,
                vec![0; 16],
                Some(vec![
                    pc32(0, RelocTarget::SectionSymbol(text), 5),
                    pc32(4, RelocTarget::Created(0), 0),
                    pc32(8, RelocTarget::Symbol(SymId(3)), -4),
                    pc32(0, RelocTarget::Empty, 0),
                ]),
            )),
        ],
        patches: Vec::new(),
    };
    let out = orctool::write::apply(&obj, &edits, &WriteOptions::default()).unwrap();
    let old = ElfFile64::<LE>::parse(&input[..]).unwrap();
    let new = ElfFile64::<LE>::parse(&out[..]).unwrap();
    // the symbol table: two LOCAL symbols at 1 and 2, each taking the place of the first
    // global, which moves to the end
    let names: Vec<(&str, bool)> = new
        .symbols()
        .map(|s| (s.name().unwrap(), s.is_local()))
        .collect();
    assert_eq!(
        names,
        [
            ("__pfx_local", true),
            ("", true),
            ("h", false),
            ("foo", false),
            ("f", false),
            ("g", false)
        ]
    );
    let symtab = new.section_by_name(".symtab").unwrap();
    assert_eq!(symtab.elf_section_header().sh_info(LE), 3);
    // every old relocation names the same symbol as before
    let reloc_names = |f: &ElfFile64<LE>, sec: &str| -> Vec<String> {
        f.section_by_name(sec)
            .unwrap()
            .relocations()
            .map(|(_, r)| match r.target() {
                object::RelocationTarget::Symbol(i) => {
                    f.symbol_by_index(i).unwrap().name().unwrap().to_owned()
                }
                _ => String::new(),
            })
            .collect()
    };
    for sec in [".text", ".data", ".text.foo"] {
        assert_eq!(reloc_names(&old, sec), reloc_names(&new, sec), "{sec}");
    }
    // the new section, then its relocations
    let sites = new.section_by_name(".test_sites").unwrap();
    let rela = new.section_by_name(".rela.test_sites").unwrap();
    assert_eq!(rela.index().0, sites.index().0 + 1);
    let rh = rela.elf_section_header();
    assert_eq!(rh.sh_info(LE) as usize, sites.index().0);
    assert_eq!(rh.sh_link(LE) as usize, symtab.index().0);
    assert_eq!(rh.sh_flags(LE), u64::from(elf::SHF_INFO_LINK));
    assert_eq!(rh.sh_size(LE), 4 * 24);
    let targets: Vec<(u64, String, i64)> = sites
        .relocations()
        .map(|(at, r)| {
            let name = match r.target() {
                object::RelocationTarget::Symbol(i) => {
                    let s = new.symbol_by_index(i).unwrap();
                    if s.kind() == object::SymbolKind::Section {
                        format!("section {}", s.section_index().unwrap().0)
                    } else {
                        s.name().unwrap().to_owned()
                    }
                }
                _ => "none".to_owned(),
            };
            (at, name, r.addend())
        })
        .collect();
    assert_eq!(
        targets,
        [
            (0, format!("section {}", text.0), 5),
            (4, "__pfx_local".to_owned(), 0),
            (8, "h".to_owned(), -4),
            (0, "none".to_owned(), 0),
        ]
    );
    // the names were appended to the string tables
    let strtab = new.section_by_name(".strtab").unwrap().data().unwrap();
    let old_strtab = old.section_by_name(".strtab").unwrap().data().unwrap();
    assert_eq!(&strtab[..old_strtab.len()], old_strtab);
    assert_eq!(&strtab[old_strtab.len()..], b"__pfx_local\0");
    let shstrtab = new.section_by_name(".shstrtab").unwrap().data().unwrap();
    assert!(shstrtab.ends_with(b".test_sites\0.rela.test_sites\0"));
}
