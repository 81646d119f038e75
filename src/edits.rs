//! What a run adds to an object besides checking it, as plain data: the sections, symbols
//! and byte changes the actions (`--static-call`, `--retpoline`, `--rethunk`, `--ibt`,
//! `--prefix`, `--mcount`, `--cfi`, …) and ORC generation decide on, handed to the writer,
//! which lays them out as objtool 6.12's libelf does.
//!
//! objtool makes its changes in a fixed order (`check()`: static calls, retpolines, kCFI,
//! return sites, call sites, mcount, prefix symbols, IBT seal, then ORC), and the order is
//! visible in the output: section names are appended to `.shstrtab` and sections to the
//! header table in creation order, a created LOCAL symbol moves the first global to the end
//! of `.symtab`. So [`Edits::steps`] is ordered, and the writer replays it.

use crate::ids::{SecId, SymId};

/// One change, in objtool's creation order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// objtool's `elf_create_section()` or, with relocations, `elf_create_section_pair()`.
    Section(NewSection),
    /// objtool's `elf_create_symbol()` (e.g. `elf_create_prefix_symbol()`).
    Symbol(NewSymbol),
}

/// A section appended after every existing one (and the ones created before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSection {
    /// Its name, appended to the section name string table.
    pub name: Vec<u8>,
    /// `SHT_PROGBITS` for every section objtool creates.
    pub sh_type: u32,
    /// `SHF_ALLOC` as `elf_create_section()` sets it, plus what the action adds.
    pub flags: u64,
    /// 1 as `elf_create_section()` sets it, or what the action sets.
    pub align: u64,
    pub entsize: u64,
    pub data: Vec<u8>,
    /// `Some`: a `SHT_RELA` section `.rela` + name follows it at once, with these records
    /// in this order (its size fixed by their number, as `elf_create_section_pair()`'s
    /// `reloc_nr`; [`RelocTarget::Empty`] keeps a slot objtool never fills).
    pub relocs: Option<Vec<NewReloc>>,
}

impl NewSection {
    /// objtool's `elf_create_section(name, entsize, nr)` with its `data` and, if
    /// `relocs` is `Some`, `elf_create_section_pair()`: PROGBITS, `SHF_ALLOC`, align 1.
    pub fn new(name: &[u8], entsize: u64, data: Vec<u8>, relocs: Option<Vec<NewReloc>>) -> Self {
        NewSection {
            name: name.to_vec(),
            sh_type: object::elf::SHT_PROGBITS,
            flags: u64::from(object::elf::SHF_ALLOC),
            align: 1,
            entsize,
            data,
            relocs,
        }
    }
}

/// One relocation record of a created section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewReloc {
    /// Offset in the created section.
    pub offset: u64,
    /// `R_X86_64_*`.
    pub r_type: u32,
    pub target: RelocTarget,
    pub addend: i64,
}

/// The symbol a created relocation refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocTarget {
    /// objtool's `elf_init_reloc_text_sym()`: the STT_SECTION symbol of an input section
    /// (the last one `.symtab` has for it), created when the section has none.
    SectionSymbol(SecId),
    /// objtool's `elf_init_reloc_data_sym()`: an input symbol, by its `.symtab` index.
    Symbol(SymId),
    /// A symbol created by an earlier [`Step::Symbol`] (its number among those steps,
    /// from 0).
    Created(usize),
    /// A record objtool reserved and never filled: 24 zero bytes.
    Empty,
}

/// A symbol added to `.symtab`, its name appended to `.strtab`. A LOCAL one goes at
/// `sh_info` (the first global moving to the end), any other at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSymbol {
    pub name: Vec<u8>,
    pub st_info: u8,
    pub st_other: u8,
    pub section: SecId,
    pub value: u64,
    pub size: u64,
}

/// Bytes written over part of an input section (objtool's `elf_write_insn()`, or the
/// `r_info` word `set_reloc_type()` writes in a relocation section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub section: SecId,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Everything a run changes in an object. Empty: the object is left as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edits {
    pub steps: Vec<Step>,
    pub patches: Vec<Patch>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.patches.is_empty()
    }
}
