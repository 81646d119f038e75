//! Errors for input that cannot be analysed at all.
//!
//! Findings about the code (objtool's warnings) are not errors; they live in the report
//! module. An [`Error`] is one line of text without the file name: the caller adds the file
//! name once, at the top (`orctool: FILE: <error>`). Reading errors are a [`ReadError`],
//! one variant per case; an operating-system error is worded as `strerror` words it,
//! without Rust's `(os error N)`.

/// Why an object could not be read, dumped or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{}", os_message(.0))]
    Io(#[from] std::io::Error),
    #[error(".orc_unwind has {entries} entries but .orc_unwind_ip has {ips}")]
    OrcCountMismatch { entries: u64, ips: u64 },
    #[error(".rela.orc_unwind_ip has {relocs} relocations for {entries} ORC entries")]
    OrcRelocCountMismatch { entries: u64, relocs: u64 },
    /// objtool's fatal "FUNC.cold(): can't find parent function": a `.cold` part whose
    /// function is not in the object.
    #[error("{0}(): can't find parent function")]
    NoParentFunction(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why the bytes of a file are not an object orctool can read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read (no such file, permission denied, …).
    #[error("{}", os_message(.0))]
    Os(std::io::Error),
    #[error("is a directory")]
    IsDirectory,
    #[error("not a regular file")]
    NotRegularFile,
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
    /// The section headers (or a section's data) lie past the end of the file.
    #[error("truncated: {what} ends at byte {end} but the file has {size} bytes")]
    Truncated { what: String, end: u64, size: u64 },
    /// An executable or shared object where a `.o`/`.ko`/`vmlinux.o` is needed.
    #[error("not a relocatable object (ELF type {0}): check needs a .o, .ko or vmlinux.o")]
    NotRelocatable(&'static str),
    #[error("truncated {format} data: the compressed stream ends early")]
    TruncatedCompressed { format: &'static str },
    #[error("can't decompress {format} data: {message}")]
    Decompress {
        format: &'static str,
        message: String,
    },
    #[error("decompressed {format} data exceeds 8 GiB")]
    DecompressedTooLarge { format: &'static str },
    /// A compressed input cannot be replaced in place.
    #[error("is compressed: give -o OUT to write the result")]
    CompressedInPlace,
    #[error("{section} size {size:#x} is not a multiple of {entsize}")]
    BadSectionSize {
        section: String,
        size: u64,
        entsize: u64,
    },
    /// Any other structural defect of the ELF file, described in words.
    #[error("malformed ELF: {0}")]
    Malformed(String),
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
    #[error("bad relocation {index} of the new section {section}: {problem}")]
    BadReloc {
        section: String,
        index: usize,
        problem: BadRow,
    },
    #[error("no .strtab for the names of new symbols")]
    NoStrtab,
    #[error("a new symbol would be defined in {0}, which is not kept")]
    SymbolSection(String),
    #[error("the ORC table has no .rela.orc_unwind_ip (a linked object?)")]
    NoOrcRelocations,
    #[error("can't write the ELF header: {0}")]
    Header(String),
    #[error("a patch at input offset {0:#x} is outside every kept section")]
    PatchOutside(u64),
    #[error(
        "no encoding of {0} bytes to rewrite an instruction with (objtool has NOPs and `ret; int3` of 1 to 5 bytes)"
    )]
    BadNopSize(u8),
    #[error("can't allocate {0} bytes for the output")]
    OutOfMemory(u64),
    #[error("the input file changed while being read")]
    InputChanged,
    #[error("no open input file to update in place")]
    NoInputFile,
    /// objtool's wording when the object cannot be opened for writing.
    #[error("Can't open '{}': {}", .path.display(), os_message(.source))]
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
    #[error("can't {action} {}: {}", .path.display(), os_message(.source))]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What is wrong with one relocation (e.g. one ORC row) given to the writer.
#[derive(Debug, thiserror::Error)]
pub enum BadRow {
    #[error("no section {0}")]
    NoSection(u32),
    #[error("{0} is one of the ORC sections being replaced")]
    BeingReplaced(String),
    #[error("{0} is not executable")]
    NotExecutable(String),
    #[error("no symbol {0} in the input")]
    NoSymbol(u32),
    #[error("no created symbol number {0}")]
    NoCreatedSymbol(usize),
    #[error("{0}")]
    Symbol(String),
    #[error("offset {offset:#x} is outside {section} (size {size:#x})")]
    Outside {
        offset: u64,
        section: String,
        size: u64,
    },
}

impl Error {
    pub fn malformed(what: impl Into<String>) -> Self {
        Error::Read(ReadError::Malformed(what.into()))
    }
}

impl From<object::read::Error> for Error {
    fn from(e: object::read::Error) -> Self {
        Error::malformed(e.to_string())
    }
}

/// An OS error as `strerror` words it (`No such file or directory`), without the
/// `(os error 2)` Rust's `Display` adds.
pub fn os_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_owned),
        None => text,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_without_their_number() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(Error::Io(e).to_string(), "No such file or directory");
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(ReadError::Os(e).to_string(), "Permission denied");
    }
}
