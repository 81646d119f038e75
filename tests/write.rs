//! The ORC writer (`orctool::write`) against the real objtool 6.12.

mod common;

use std::path::Path;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader as _, SectionHeader as _};
use object::{LittleEndian as LE, Object as _, ObjectSection as _};
use orctool::elf::Object;
use orctool::write::{OrcRow, WriteOptions, add_orc, orc_rows};

/// Driver of `scripts/parity-write` (not a test): for each line `REFERENCE INPUT OUTPUT` of
/// the file named by `ORCTOOL_WRITE_JOBS`, reads the ORC rows objtool wrote into REFERENCE,
/// writes them into INPUT with `add_orc`, stores the result in OUTPUT and checks that every
/// section of INPUT is still there with the same bytes (apart from the tables a created
/// section symbol changes) and that the three new section headers equal objtool's. Prints
/// `ok OUTPUT` or `FAIL OUTPUT: why` per line.
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
        match parity_one(Path::new(reference), Path::new(input), Path::new(output)) {
            Ok(()) => println!("ok {output}"),
            Err(e) => println!("FAIL {output}: {e}"),
        }
    }
}

fn parity_one(reference: &Path, input: &Path, output: &Path) -> Result<(), String> {
    let ref_bytes = std::fs::read(reference).map_err(|e| e.to_string())?;
    let in_bytes = std::fs::read(input).map_err(|e| e.to_string())?;
    let ref_obj = Object::parse(&ref_bytes).map_err(|e| format!("objtool's output: {e}"))?;
    let rows = orc_rows(&ref_obj).map_err(|e| format!("objtool's rows: {e}"))?;
    let in_obj = Object::parse(&in_bytes).map_err(|e| format!("input: {e}"))?;
    let ours = add_orc(&in_obj, &rows, &WriteOptions::default()).map_err(|e| e.to_string())?;
    std::fs::write(output, &ours).map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return if ours == in_bytes {
            Ok(())
        } else {
            Err("no rows but the output differs from the input".into())
        };
    }
    check_sections_kept(&in_bytes, &ours)?;
    let theirs = section_headers(&ref_bytes)?;
    let mine = section_headers(&ours)?;
    for name in [".orc_unwind", ".orc_unwind_ip", ".rela.orc_unwind_ip"] {
        let a = theirs.iter().find(|h| h.0 == name);
        let b = mine.iter().find(|h| h.0 == name);
        if a != b {
            return Err(format!("{name} header: objtool {a:?}, ours {b:?}"));
        }
    }
    Ok(())
}

/// (name, index, type, flags, size, link, info, align, entsize) of every section.
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
fn check_sections_kept(input: &[u8], output: &[u8]) -> Result<(), String> {
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
            return Err(format!("{name}: sh_info changed"));
        }
    }
    Ok(())
}

#[allow(dead_code)]
fn row(section: u32, offset: u64, entry: [u8; 6]) -> OrcRow {
    OrcRow {
        section: orctool::elf::SecId(section),
        offset,
        entry,
    }
}
