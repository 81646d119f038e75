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
    #[error("file already has {0} section (--force replaces it)")]
    AlreadyHasOrc(String),
    #[error("bad ORC row {index}: {what}")]
    BadOrcRow { index: usize, what: String },
    #[error("can't {action} {path}: {source}")]
    Write {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
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
