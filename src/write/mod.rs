//! Writing what a run adds to a relocatable object ([`Edits`]: sections with their
//! relocations, symbols, byte patches), byte for byte as objtool 6.12 does. ORC is two of
//! those steps ([`orc_steps`]); the other actions (`crate::actions`) add theirs before it.
//!
//! objtool: `orc_create()` builds the entry list, then `elf_create_section()` /
//! `elf_create_section_pair()` append `.orc_unwind`, `.orc_unwind_ip` and
//! `.rela.orc_unwind_ip`, `elf_init_reloc_text_sym()` writes one `R_X86_64_PC32` per entry
//! against the STT_SECTION symbol of the instruction's section (creating that symbol when
//! the section has none), and libelf's `elf_update()` lays the file out again.
//!
//! What this module reproduces, all checked against the 6.12 binary (spec §3.1):
//!
//! * The three sections come after every existing section; their names are appended to the
//!   section name string table (no sharing of suffixes). Headers: `.orc_unwind` PROGBITS,
//!   `A`, align 1, entsize 6; `.orc_unwind_ip` PROGBITS, `A`, align 1, entsize 4, zero
//!   bytes; `.rela.orc_unwind_ip` RELA, flags exactly `SHF_INFO_LINK`, align 8, entsize 24,
//!   link `.symtab`, info `.orc_unwind_ip`.
//! * Relocation i: offset 4·i, `R_X86_64_PC32`, the section symbol of the row's section
//!   (the last STT_SECTION symbol of that section in `.symtab`), addend = offset.
//! * A missing section symbol is created (LOCAL, STT_SECTION, name 0, value 0, size 0) at
//!   index `sh_info` of `.symtab`, in row order. The symbol that was there (the first
//!   global) moves to the end of the table, every relocation that referenced it is
//!   renumbered and `sh_info` grows by one. With a `.symtab_shndx`, objtool's
//!   `elf_update_symbol()` stores the moved symbol's section index (or its special index
//!   such as `SHN_ABS`) in that table, and the new symbol's section index too: done here
//!   the same way.
//! * The file layout of libelf (`ELF_C_RDWR` without `ELF_F_LAYOUT`): the ELF header, then
//!   every section in index order at the next multiple of its alignment (no file space for
//!   NOBITS), gaps zero-filled, then the section header table at the next multiple of 8.
//!   An `sh_addralign` of 0 becomes 1, as libelf writes it.
//!
//! The parts: `plan` (which sections stay, the rows as relocations, the output
//! sections), `symbols` (the symbol table being edited), `layout` (libelf's offsets and
//! the file through `object`'s writer), `ranges` (the file as pieces in memory and ranges
//! of the input). `elf::output` puts the result on disk.
//!
//! With these, our output is the file objtool writes (checked on every module of the
//! corpus by `scripts/parity-write`). One deliberate difference: objtool does not update
//! the signature symbol (`sh_info`) of an `SHT_GROUP` section when that symbol moves, so
//! the COMDAT group ends up named after the new section symbol. We renumber it.
//!
//! `force` (objtool has no such option: it warns "file already has .orc_unwind section,
//! skipping" and writes nothing) removes the old `.orc_unwind`, `.orc_unwind_ip`,
//! `.rela.orc_unwind_ip` (and any other relocation section of a removed section) first,
//! with the section symbols of removed sections; `.orc_header` stays. Later sections move
//! down, so section links, relocation targets, group members, symbol section indices
//! (direct and in `.symtab_shndx`) and `e_shstrndx` are renumbered, and relocations for
//! the symbols after a removed one too.

use std::fs::File;
use std::path::Path;

use object::elf;
use object::read::elf::{FileHeader as _, Rela as _, SectionHeader as _, Sym as _};

use crate::edits::{Edits, NewReloc, NewSection, RelocTarget, Step};
use crate::elf::output::{self, Destination, Image, Method, WriteSettings};
use crate::elf::{LE, Object, ObjectKind};
pub use crate::error::{BadRow, WriteError};
use crate::error::{Error, Result};
pub use crate::orc::row::OrcRow;

mod layout;
mod plan;
mod ranges;
mod records;
mod symbols;

use layout::Layout;
use ranges::SparseBuffer;

/// How [`add_orc`] treats an object that already has ORC sections, and how the file is
/// written.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Replace existing ORC sections instead of refusing.
    pub force: bool,
    /// Flush the file to disk before each switch from the old object to the new one (the
    /// update is already atomic for readers and against an interrupted run; this adds
    /// durability across a power loss).
    pub sync: bool,
}

/// The sections objtool creates (and `force` removes), in creation order.
const ORC_SECTION_NAMES: [&[u8]; 3] = [b".orc_unwind", b".orc_unwind_ip", b".rela.orc_unwind_ip"];

/// objtool's `orc_create()` as steps: `.orc_unwind` (the entries) and `.orc_unwind_ip` with
/// its `.rela.orc_unwind_ip` (one `R_X86_64_PC32` per row against the section symbol of the
/// row's section, addend = offset).
pub fn orc_steps(rows: &[OrcRow]) -> [Step; 2] {
    use rayon::prelude::*;
    let reloc = |(i, row): (usize, &OrcRow)| NewReloc {
        offset: 4 * i as u64,
        r_type: elf::R_X86_64_PC32,
        target: RelocTarget::SectionSymbol(row.section),
        addend: row.offset as i64,
    };
    let size = crate::orc::ORC_ENTRY_SIZE;
    let mut entries = vec![0; rows.len() * size];
    let mut relocs = Vec::with_capacity(rows.len());
    let fill = |(e, row): (&mut [u8], &OrcRow)| e.copy_from_slice(&row.entry);
    // (a vmlinux.o has half a million rows: filled on every thread)
    if rows.len() >= 1 << 16 {
        (entries.par_chunks_exact_mut(size).zip(rows)).for_each(fill);
        (rows.par_iter().enumerate().map(reloc)).collect_into_vec(&mut relocs);
    } else {
        (entries.chunks_exact_mut(size).zip(rows)).for_each(fill);
        relocs.extend(rows.iter().enumerate().map(reloc));
    }
    [
        Step::Section(NewSection::new(
            ORC_SECTION_NAMES[0],
            size as u64,
            entries,
            None,
        )),
        Step::Section(NewSection::new(
            ORC_SECTION_NAMES[1],
            4,
            vec![0; 4 * rows.len()],
            Some(relocs),
        )),
    ]
}

/// Returns the bytes of the new object: `obj` with `.orc_unwind`, `.orc_unwind_ip` and
/// `.rela.orc_unwind_ip` appended as objtool 6.12 does. Empty `rows` give the input back
/// unchanged (objtool writes nothing then, and does not check for existing ORC).
pub fn add_orc(obj: &Object<'_>, rows: &[OrcRow], opts: &WriteOptions) -> Result<Vec<u8>> {
    if rows.is_empty() {
        return Ok(obj.data().to_vec());
    }
    let edits = Edits {
        steps: orc_steps(rows).into(),
        patches: Vec::new(),
    };
    apply(obj, &edits, opts)
}

/// Returns the bytes of `obj` with `edits` applied.
pub fn apply(obj: &Object<'_>, edits: &Edits, opts: &WriteOptions) -> Result<Vec<u8>> {
    with_image(obj, edits, opts, |image| image.to_vec())
}

/// The new file as an [`Image`], handed to `use_image`: laid out again as libelf does
/// whenever anything changes (patches alone included), the input as it is otherwise.
fn with_image<T>(
    obj: &Object<'_>,
    edits: &Edits,
    opts: &WriteOptions,
    use_image: impl FnOnce(&Image<'_>) -> Result<T>,
) -> Result<T> {
    let layout = if edits.is_empty() {
        None
    } else {
        Some(plan(obj, &edits.steps, opts)?)
    };
    let mut buffer = SparseBuffer::default();
    let mut image = image_of(obj, layout.as_ref(), &mut buffer)?;
    add_patches(obj, layout.as_ref(), edits, &mut image)?;
    use_image(&image)
}

fn plan<'data>(
    obj: &Object<'data>,
    steps: &'data [Step],
    opts: &WriteOptions,
) -> Result<Layout<'data>> {
    if obj.kind() != ObjectKind::Relocatable {
        return Err(WriteError::NotRelocatable.into());
    }
    if obj.header().e_phnum(LE) != 0 {
        return Err(Error::malformed("relocatable object with program headers"));
    }
    let mut plan = plan::Plan::new(obj, opts)?;
    plan.add_steps(steps)?;
    let layout = plan.finish()?;
    // Only hostile alignments make the output much larger than the input plus the table.
    let limit = obj.data().len().saturating_mul(2).saturating_add(1 << 28);
    if layout.total > limit {
        return Err(Error::malformed(format!(
            "the output would be {} bytes for a {}-byte input (section alignments?)",
            layout.total,
            obj.data().len()
        )));
    }
    Ok(layout)
}

fn image_of<'a>(
    obj: &'a Object<'a>,
    layout: Option<&'a Layout<'a>>,
    buffer: &'a mut SparseBuffer,
) -> Result<Image<'a>> {
    Ok(match layout {
        Some(l) => {
            let elsewhere = l.emit(obj, buffer)?;
            buffer.image(elsewhere, obj.data())
        }
        None => Image::unchanged(obj.data()),
    })
}

/// `edits.patches` (at section offsets of the input) as patches of the output image.
fn add_patches(
    obj: &Object<'_>,
    layout: Option<&Layout<'_>>,
    edits: &Edits,
    image: &mut Image<'_>,
) -> Result<()> {
    for p in &edits.patches {
        let h = obj.section(p.section)?;
        let at = h
            .sh_offset(LE)
            .checked_add(p.offset)
            .filter(|&s| {
                p.offset
                    .checked_add(p.bytes.len() as u64)
                    .is_some_and(|end| end <= h.sh_size(LE))
                    && h.sh_type(LE) != elf::SHT_NOBITS
                    && s.checked_add(p.bytes.len() as u64).is_some()
            })
            .ok_or(WriteError::PatchOutside(p.offset))?;
        let to = match layout {
            Some(l) => l.output_offset(at).ok_or(WriteError::PatchOutside(at))?,
            None => at,
        };
        image.patches.push((to, p.bytes.clone()));
    }
    Ok(())
}

/// Writes `obj` with `edits` applied to `dest` (see `elf::output`). `input` is the open
/// file `obj` was mapped from, when there is one: unchanged sections are read from it (not
/// from the map: its pages would count as this process's memory), and it is the file an
/// in-place update changes.
pub fn write_file(
    obj: &Object<'_>,
    edits: &Edits,
    opts: &WriteOptions,
    input: Option<&File>,
    dest: Destination<'_>,
) -> Result<Method> {
    write_file_prefilled(obj, edits, opts, input, dest, None)
}

/// Objects smaller than this are not prefilled (copying them takes a few milliseconds).
const PREFILL_MIN_BYTES: usize = 16 << 20;

/// Starts copying, on a thread of `scope`, the sections of `obj` (mapped from `path`, to be
/// changed in place) that no edit can move to the temporary file the write will switch in
/// (see `elf::output::Prefill`). `None` when that would not pay: a small object, or one
/// the write will update in place (hard links, an owner a new file would not keep, or a
/// layout that keeps most sections where they are).
pub fn start_prefill<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    obj: &'scope Object<'scope>,
    path: &Path,
    opts: &WriteOptions,
) -> Option<output::Prefill<'scope>> {
    if obj.data().len() < PREFILL_MIN_BYTES {
        return None;
    }
    let input = File::open(path).ok()?;
    let meta = input.metadata().ok()?;
    if meta.len() != obj.data().len() as u64 || !output::replaced_whole(&meta) {
        return None;
    }
    let opts = *opts;
    output::Prefill::start(scope, path, input, move || {
        // the object with nothing added: where its sections go
        let layout = plan(obj, &[], &opts).ok()?;
        let mut buffer = SparseBuffer::default();
        let image = image_of(obj, Some(&layout), &mut buffer).ok()?;
        let mut plan = output::PrefillPlan {
            len: image.len,
            ranges: Vec::new(),
        };
        let mut moved = 0;
        for s in &image.segments {
            if let output::Source::Input(from) = s.source {
                plan.ranges.push((s.at, s.len, from));
                moved += if from != s.at { s.len } else { 0 };
            }
        }
        (2 * moved > image.len).then_some(plan)
    })
}

/// [`write_file`], with the temporary file a prefill filled (see [`start_prefill`]).
pub fn write_file_prefilled(
    obj: &Object<'_>,
    edits: &Edits,
    opts: &WriteOptions,
    input: Option<&File>,
    dest: Destination<'_>,
    prefilled: Option<output::Prefilled>,
) -> Result<Method> {
    let settings = WriteSettings {
        sync: opts.sync,
        no_in_place: false,
    };
    with_image(obj, edits, opts, |image| {
        output::write_image_prefilled(image, input, dest, settings, prefilled)
    })
}

/// The ORC rows of an object that has ORC sections (objtool's or the linker's), in table
/// order: the section of each relocation's symbol, the addend (plus the symbol's value for
/// a non-section symbol), the entry bytes. Empty when the object has no `.orc_unwind`.
/// This is what [`add_orc`] needs to write the same table again.
pub fn orc_rows(obj: &Object<'_>) -> Result<Vec<OrcRow>> {
    let Some(orc) = crate::orc::dump::OrcSections::find(obj)? else {
        return Ok(Vec::new());
    };
    let rela = orc.rela.ok_or(WriteError::NoOrcRelocations)?;
    let relas = obj.rela_records(rela)?;
    let mut rows = Vec::with_capacity(orc.len());
    for (i, rela) in relas.iter().enumerate() {
        let sym_id = obj.rela_symbol(rela)?;
        let sym = obj.symbol(sym_id)?;
        let section = obj.symbol_section(sym_id)?.ok_or_else(|| {
            Error::malformed(format!(
                "ORC relocation {i} refers to symbol {} which has no section",
                sym_id.0
            ))
        })?;
        let value = if sym.st_type() == elf::STT_SECTION {
            0
        } else {
            sym.st_value(LE)
        };
        rows.push(OrcRow {
            section,
            offset: value.wrapping_add(rela.r_addend(LE) as u64),
            entry: orc.entry(i),
        });
    }
    Ok(rows)
}

/// Writes `bytes` as the new contents of `path` through a temporary file renamed over it
/// (symbolic links followed; only a regular file is replaced; its mode, owner, group and
/// extended attributes are kept). On any error `path` is untouched and the temporary file
/// removed.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let image = Image {
        len: bytes.len() as u64,
        segments: vec![output::Segment {
            at: 0,
            len: bytes.len() as u64,
            source: output::Source::Bytes(bytes),
        }],
        patches: Vec::new(),
        input: &[],
    };
    output::write_image(
        &image,
        None,
        Destination::NewFile(path),
        WriteSettings {
            sync: true,
            no_in_place: true,
        },
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::SecId;

    /// The relocation sections renumbered because globals moved are recoded on their way to
    /// the file, not copied into memory; the file is still objtool's.
    #[test]
    fn renumbered_relocations_are_streamed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/write");
        let input = std::fs::read(dir.join("relocs.o")).unwrap();
        let expected = std::fs::read(dir.join("relocs.objtool.o")).unwrap();
        let out = Object::parse(&expected).unwrap();
        let rows = orc_rows(&out).unwrap();
        let obj = Object::parse(&input).unwrap();
        let edits = Edits {
            steps: orc_steps(&rows).into(),
            patches: Vec::new(),
        };
        // the relocation sections of the input, where they are in objtool's file
        let mut relocs = Vec::new();
        for i in 1..obj.section_count() {
            let h = obj.section(SecId(i as u32)).unwrap();
            if records::is_reloc(h) && h.sh_size(LE) > 0 {
                let name = obj.section_name(SecId(i as u32)).unwrap();
                let at = out.section(out.section_by_name(name).unwrap()).unwrap();
                let changed = obj.section_data(SecId(i as u32)).unwrap()
                    != out
                        .section_data(out.section_by_name(name).unwrap())
                        .unwrap();
                relocs.push((at.sh_offset(LE), at.sh_size(LE), changed));
            }
        }
        assert!(
            relocs.iter().any(|r| r.2),
            "no relocation section renumbered"
        );
        with_image(&obj, &edits, &WriteOptions::default(), |image| {
            for &(at, len, changed) in &relocs {
                let s = image
                    .segments
                    .iter()
                    .find(|s| s.at <= at && at < s.at + s.len);
                let s = s.expect("a segment");
                match s.source {
                    output::Source::Recoded(..) => assert!(changed && s.at == at && s.len == len),
                    output::Source::Input(_) => assert!(!changed),
                    output::Source::Bytes(_) => panic!("relocations at {at:#x} in memory"),
                }
            }
            assert!(image.to_vec()? == expected);
            Ok(())
        })
        .unwrap();
    }
}
