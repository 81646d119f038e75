//! Errors for input that cannot be analysed at all.
//!
//! Findings about the code (objtool's warnings) are not errors; they live in the report
//! module. An [`Error`] is one line of text without the file name: the caller adds the file
//! name once, at the top (`orctool: FILE: <error>`).

use std::fmt;

/// Why an object could not be read, dumped or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit ELF file (ELF class {0})")]
    NotElf64(u8),
    #[error("not a little-endian ELF file (ELF data encoding {0})")]
    NotLittleEndian(u8),
    #[error("not an x86-64 object (e_machine {0})")]
    WrongMachine(u16),
    #[error("truncated ELF header ({0} bytes)")]
    TruncatedHeader(usize),
    #[error("can't decompress {format} data: {message}")]
    Decompress {
        format: &'static str,
        message: String,
    },
    #[error("malformed ELF: {0}")]
    Malformed(Malformed),
    #[error("{section} size {size:#x} is not a multiple of {entsize}")]
    BadSectionSize {
        section: String,
        size: u64,
        entsize: u64,
    },
    #[error(".orc_unwind has {entries} entries but .orc_unwind_ip has {ips}")]
    OrcCountMismatch { entries: u64, ips: u64 },
    #[error(".rela.orc_unwind_ip has {relocs} relocations for {entries} ORC entries")]
    OrcRelocCountMismatch { entries: u64, relocs: u64 },
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why an object could not be written (its input was readable).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("ORC sections can only be added to a relocatable object (ET_REL)")]
    NotRelocatable,
    #[error("no .symtab")]
    NoSymtab,
    #[error("file already has {0} section (--force replaces it)")]
    AlreadyHasOrc(String),
    #[error("--force would remove {0}, which the object needs")]
    ForceRemovesNeeded(String),
    #[error("symbol '{name}' is defined in {section}, which --force would remove")]
    SymbolInRemovedSection { name: String, section: String },
    #[error("{what} refers to symbol {index}, defined in a section --force removes")]
    RefersToRemovedSymbol { what: String, index: u32 },
    #[error("{section} is linked to section {link}, which --force removes")]
    LinkRemoved { section: String, link: u32 },
    #[error("{section} refers to section {info}, which --force removes")]
    InfoRemoved { section: String, info: u32 },
    #[error("section {0} needs an extended section index but there is no .symtab_shndx")]
    NoSymtabShndx(u32),
    #[error("bad ORC row {index}: {problem}")]
    BadOrcRow { index: usize, problem: BadRow },
    #[error("the ORC table has no .rela.orc_unwind_ip (a linked object?)")]
    NoOrcRelocations,
    #[error("can't write the ELF header: {0}")]
    Header(String),
    #[error("a patch at input offset {0:#x} is outside every kept section")]
    PatchOutside(u64),
    #[error("can't allocate {0} bytes for the output")]
    OutOfMemory(u64),
    #[error("the input file changed while being read")]
    InputChanged,
    #[error("no open input file to update in place")]
    NoInputFile,
    /// objtool's wording when the object cannot be opened for writing.
    #[error("Can't open '{}': {}", .path.display(), strerror(.source))]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("can't write to {}: it is {kind}, not a regular file (-o - writes to standard output)", .path.display())]
    NotRegularFile {
        path: std::path::PathBuf,
        kind: &'static str,
    },
    #[error("{}: the tail left by an interrupted orctool run does not match the ELF header; not changed", .path.display())]
    UnknownLeftover { path: std::path::PathBuf },
    #[error("can't {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What is wrong with one ORC row given to the writer.
#[derive(Debug, thiserror::Error)]
pub enum BadRow {
    #[error("no section {0}")]
    NoSection(u32),
    #[error("{0} is one of the ORC sections being replaced")]
    BeingReplaced(String),
    #[error("{0} is not executable")]
    NotExecutable(String),
    #[error("offset {offset:#x} is outside {section} (size {size:#x})")]
    Outside {
        offset: u64,
        section: String,
        size: u64,
    },
}

/// The text of an I/O error as C's `strerror` gives it (objtool's wording): without Rust's
/// " (os error N)".
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A structural defect of the ELF file, described in words.
#[derive(Debug)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error {
    pub fn malformed(what: impl Into<String>) -> Self {
        Error::Malformed(Malformed(what.into()))
    }
}

impl From<object::read::Error> for Error {
    fn from(e: object::read::Error) -> Self {
        Error::malformed(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
