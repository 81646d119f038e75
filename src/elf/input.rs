//! Path → bytes: a memory map of the file, or its decompressed contents for
//! `.ko.xz`, `.ko.zst` and `.ko.gz` (recognised by their magic numbers, not their names).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::ops::Deref;
use std::path::Path;

use crate::error::{ReadError, Result};

/// Decompressed objects larger than this are refused (a decompression bomb guard).
const MAX_DECOMPRESSED: u64 = 8 << 30;

/// The bytes of one input file.
pub enum Input {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Owned(v) => v,
        }
    }
}

impl Input {
    /// Tells the kernel this process no longer needs the mapped pages resident: they leave
    /// the process's resident set (not the page cache) and are read again from the file
    /// if touched later. A no-op for decompressed (owned) inputs.
    pub fn release_pages(&self) {
        if let Input::Mapped(m) = self {
            // SAFETY: the map is read-only and never written, so dropping its pages loses
            // nothing: a later access faults the same file contents back in.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// The compression a file's first bytes announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

/// Maps an open file read-only (used to read back an output file for patching).
pub fn map_file(file: &File) -> Result<memmap2::Mmap> {
    // SAFETY: as in `open`: a private read-only map of a file this process controls.
    Ok(unsafe { memmap2::Mmap::map(file).map_err(ReadError::Os)? })
}

/// Opens `path`: maps it, or reads and decompresses it when it is compressed.
pub fn open(path: &Path) -> Result<Input> {
    let file = File::open(path).map_err(ReadError::Os)?;
    let meta = file.metadata().map_err(ReadError::Os)?;
    if meta.is_dir() {
        return Err(ReadError::IsDirectory.into());
    }
    if !meta.is_file() {
        return Err(ReadError::NotRegularFile.into());
    }
    let len = meta.len();
    if len == 0 {
        return Ok(Input::Owned(Vec::new()));
    }
    // SAFETY: the map is read-only and private; orctool never maps a file it writes.
    // Another process truncating the file while it is mapped is outside what the tool
    // can defend against, as for every program that maps its input.
    let map = unsafe { memmap2::Mmap::map(&file).map_err(ReadError::Os)? };
    match Compression::detect(&map) {
        None => Ok(Input::Mapped(map)),
        Some(c) => decompress(c, &map).map(Input::Owned),
    }
}

/// Decompresses a whole `.xz`, `.zst` or `.gz` stream held in memory.
pub fn decompress(c: Compression, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4));
    let format = c.name();
    let err = |message: String| ReadError::Decompress { format, message };
    // a stream that stops early shows as an unexpected end of its input
    let io_err = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ReadError::TruncatedCompressed { format },
        _ if e.to_string() == TOO_LARGE => ReadError::DecompressedTooLarge { format },
        _ => err(e.to_string()),
    };
    match c {
        Compression::Xz => {
            let mut r = BufReader::new(data);
            let mut w = Capped(&mut out);
            lzma_rs::xz_decompress(&mut r, &mut w).map_err(|e| match e {
                lzma_rs::error::Error::IoError(e) | lzma_rs::error::Error::HeaderTooShort(e) => {
                    io_err(e)
                }
                e => err(e.to_string()),
            })?;
        }
        Compression::Zstd => {
            let dec = ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| match e {
                ruzstd::decoding::errors::FrameDecoderError::ReadFrameHeaderError(_) => {
                    ReadError::TruncatedCompressed { format }
                }
                e => err(e.to_string()),
            })?;
            dec.take(MAX_DECOMPRESSED)
                .read_to_end(&mut out)
                .map_err(io_err)?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(MAX_DECOMPRESSED)
                .read_to_end(&mut out)
                .map_err(io_err)?;
        }
    }
    if out.len() as u64 >= MAX_DECOMPRESSED {
        return Err(ReadError::DecompressedTooLarge { format }.into());
    }
    Ok(out)
}

const TOO_LARGE: &str = "decompressed size exceeds 8 GiB";

/// A `Vec` writer that refuses to grow past [`MAX_DECOMPRESSED`].
struct Capped<'a>(&'a mut Vec<u8>);

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.0.len() + buf.len()) as u64 > MAX_DECOMPRESSED {
            return Err(std::io::Error::other(TOO_LARGE));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
