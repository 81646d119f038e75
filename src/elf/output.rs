//! Bytes → file: writing an object image to standard output, to a new file, or over the
//! object it was read from, so that the file is the old object or the new one at every
//! instant, never a mix, never missing.
//!
//! An [`Image`] says what the new file holds: byte segments (new data in memory, or ranges of
//! the input file), zeros between them, and small patches over them. [`write_image`] puts it
//! where [`Destination`] says:
//!
//! * `Stdout`: streamed, in chunks.
//! * `NewFile`: `-o OUT`. Only a regular file (or a new name) is replaced, through a
//!   temporary file renamed over it; a device, FIFO, socket or directory is an error; a
//!   symbolic link is followed and its target replaced.
//! * `InPlace`: over the input. When the change is small compared to the file (objtool's
//!   libelf keeps sections in index order and puts new sections and the section header table
//!   at the end, so usually only the last few sections change), the file is updated in place
//!   with the protocol of `inplace`; it keeps the inode, so mode, owner, extended
//!   attributes and hard links stay as they are. Otherwise (a `vmlinux.o` that `ld -r` laid
//!   out with its relocation sections at the end: libelf moves every section) a temporary
//!   file is written and renamed over the object, after taking the object's mode, owner,
//!   group and extended attributes.
//!
//! The temporary file is anonymous (`O_TMPFILE`) until it is named for the switch, where
//! the file system allows: a run that dies before then, of any signal, leaves nothing.
//! SIGINT, SIGTERM and SIGHUP during a write are held until the next step boundary; the
//! writer then undoes what it did (removes its temporary file, or puts the old object back)
//! and dies of the same signal. A run killed outright (SIGKILL, power loss) between the
//! naming and the switch, or without anonymous files, leaves a temporary file, which
//! [`recover`] removes on the next run on the same file; one killed during an in-place
//! update leaves an object with a marked tail, which [`recover`] turns back into the old or
//! the new object.

mod backup;
mod fault;
mod inplace;
mod prefill;
mod recode;
mod replace;
mod signals;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use backup::{BackupError, backup, backup_path};
pub use fault::{Fault, inject_fault};
pub use inplace::RECOVERY_MAGIC;
pub use prefill::{Prefill, PrefillPlan, Prefilled};
pub use recode::Recode;

use crate::error::{Result, WriteError};

/// Where the new file's bytes come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// The input file's bytes from this offset.
    Input(u64),
    /// The input file's bytes from this offset, recoded record by record on their way out
    /// (in chunks: never whole in memory).
    Recoded(u64, &'a dyn Recode),
}

/// A run of bytes of the new file.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub at: u64,
    pub len: u64,
    pub source: Source<'a>,
}

/// The new file: `len` bytes, made of `segments` (sorted, not overlapping; what they do not
/// cover is zero) with `patches` written over them.
#[derive(Clone, Debug)]
pub struct Image<'a> {
    pub len: u64,
    pub segments: Vec<Segment<'a>>,
    pub patches: Vec<(u64, Vec<u8>)>,
    /// The input file's bytes (what `Source::Input` refers to).
    pub input: &'a [u8],
}

impl<'a> Image<'a> {
    /// The input unchanged.
    pub fn unchanged(input: &'a [u8]) -> Self {
        Image {
            len: input.len() as u64,
            segments: vec![Segment {
                at: 0,
                len: input.len() as u64,
                source: Source::Input(0),
            }],
            patches: Vec::new(),
            input,
        }
    }

    /// The bytes `source` gives for `len` bytes, from memory (not for `Recoded`).
    fn source_bytes(&self, source: Source<'a>, skip: u64, len: u64) -> Result<&'a [u8]> {
        let (data, start) = match source {
            Source::Bytes(b) => (b, skip),
            Source::Input(from) | Source::Recoded(from, _) => {
                (self.input, from.saturating_add(skip))
            }
        };
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(s, l)| data.get(s..s.checked_add(l)?))
            .ok_or(WriteError::InputChanged.into())
    }

    /// Fills `buf` with the new file's bytes from offset `start`.
    pub fn render(&self, start: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        let end = start + buf.len() as u64;
        let first = self.segments.partition_point(|s| s.at + s.len <= start);
        for s in &self.segments[first..] {
            if s.at >= end {
                break;
            }
            let a = s.at.max(start);
            let b = (s.at + s.len).min(end);
            if let Source::Recoded(..) = s.source {
                recode::each_chunk(s, a, b, &mut self.read_memory(), &mut |at, bytes| {
                    let to = (at - start) as usize;
                    buf[to..to + bytes.len()].copy_from_slice(bytes);
                    Ok(())
                })?;
                continue;
            }
            let bytes = self.source_bytes(s.source, a - s.at, b - a)?;
            buf[(a - start) as usize..(b - start) as usize].copy_from_slice(bytes);
        }
        for (at, bytes) in &self.patches {
            let (a, b) = (*at, at + bytes.len() as u64);
            if a < end && b > start {
                let (lo, hi) = (a.max(start), b.min(end));
                buf[(lo - start) as usize..(hi - start) as usize]
                    .copy_from_slice(&bytes[(lo - a) as usize..(hi - a) as usize]);
            }
        }
        Ok(())
    }

    /// Reads input bytes from memory (for `recode::each_chunk`).
    fn read_memory(&self) -> impl FnMut(u64, &mut [u8]) -> Result<()> + use<'_, 'a> {
        |at, buf| {
            let bytes = self.source_bytes(Source::Input(at), 0, buf.len() as u64)?;
            buf.copy_from_slice(bytes);
            Ok(())
        }
    }

    /// The whole new file in memory.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.len).map_err(|_| WriteError::OutOfMemory(self.len))?;
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| WriteError::OutOfMemory(self.len))?;
        v.resize(len, 0);
        self.render(0, &mut v)?;
        Ok(v)
    }
}

/// Where [`write_image`] puts the image.
#[derive(Clone, Copy, Debug)]
pub enum Destination<'p> {
    /// Standard output (`-o -`).
    Stdout,
    /// `-o OUT`: a new file, or a regular file replaced.
    NewFile(&'p Path),
    /// Over the input object itself.
    InPlace(&'p Path),
}

/// How the file was written (for tests and `--stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Stdout,
    /// A temporary file renamed over the target.
    Renamed,
    /// A temporary file renamed over the target, `reused` bytes of which a [`Prefill`]
    /// had copied beside the analysis; `written` bytes written then.
    Prefilled {
        reused: u64,
        written: u64,
    },
    /// Updated in place: `shadowed` old bytes copied aside, `written` new bytes written.
    InPlace {
        shadowed: u64,
        written: u64,
    },
    /// The new file equals the old one: nothing written.
    Unchanged,
}

/// What [`write_image`] needs besides the image.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteSettings {
    /// fsync the data before each switch (and the directory after a rename).
    pub sync: bool,
    /// Never update in place (always a temporary file and a rename).
    pub no_in_place: bool,
}

/// Writes `image` to `dest`. `input` is the open input file (for the copies of
/// unchanged ranges; required for `InPlace`, where it must be the file the image's input
/// bytes were mapped from).
pub fn write_image(
    image: &Image<'_>,
    input: Option<&File>,
    dest: Destination<'_>,
    settings: WriteSettings,
) -> Result<Method> {
    write_image_prefilled(image, input, dest, settings, None)
}

/// [`write_image`], with the temporary file a [`Prefill`] filled for an in-place
/// destination (used when the object is replaced through a new file, else removed).
pub fn write_image_prefilled(
    image: &Image<'_>,
    input: Option<&File>,
    dest: Destination<'_>,
    settings: WriteSettings,
    prefilled: Option<Prefilled>,
) -> Result<Method> {
    signals::holding(|| write_to(image, input, dest, settings, prefilled))
}

fn write_to(
    image: &Image<'_>,
    input: Option<&File>,
    dest: Destination<'_>,
    settings: WriteSettings,
    prefilled: Option<Prefilled>,
) -> Result<Method> {
    // (a prefilled file not used is removed when dropped)
    match dest {
        Destination::Stdout => {
            write_stdout(image)?;
            Ok(Method::Stdout)
        }
        Destination::NewFile(path) => {
            let target = resolve(path, false)?;
            // an existing file keeps its mode, owner, group and attributes
            let original = File::open(&target).ok();
            replace::replace(image, input, &target, settings, original.as_ref())
        }
        Destination::InPlace(path) => {
            let target = resolve(path, true)?;
            let file = input.ok_or(WriteError::NoInputFile)?;
            // (made for this file, or not used)
            let prefilled = prefilled.filter(|p| p.target == target);
            inplace::update(image, file, &target, settings, prefilled)
        }
    }
}

/// Whether an object with this metadata may be replaced by a new file (else it is
/// updated in place): one link, and an owner the new file can keep.
pub fn replaced_whole(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    meta.nlink() <= 1 && replace::can_keep_owner(meta)
}

/// objtool opens the object for writing before reading it: the same check, with its
/// wording ("Can't open 'FILE': Permission denied"), for an object to be changed in place.
pub fn check_writable(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|source| {
            WriteError::Open {
                path: path.to_path_buf(),
                source,
            }
            .into()
        })
}

/// Cleans what an interrupted earlier run left behind for `path`: its temporary files
/// (`.NAME.orctool.tmp` whose `flock` no live run holds) and an unfinished in-place
/// update (the file is made the old or the new object, whichever the run had reached).
/// Returns whether something was cleaned.
pub fn recover(path: &Path) -> Result<bool> {
    let target = match std::fs::canonicalize(path) {
        Ok(t) => t,
        Err(_) => return Ok(false),
    };
    let temps = replace::remove_stale_temporaries(&target);
    let tail = inplace::recover(&target)?;
    Ok(temps || tail)
}

/// The path to write: symbolic links followed; the file, when it exists, must be a regular
/// file. `must_exist`: the object itself (in place).
fn resolve(path: &Path, must_exist: bool) -> Result<PathBuf> {
    let target = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            // A new name (or a dangling link: its target is created, as `>` does).
            match std::fs::read_link(path) {
                Ok(to) if to.is_absolute() => to,
                Ok(to) => path.parent().unwrap_or(Path::new(".")).join(to),
                Err(_) => path.to_path_buf(),
            }
        }
        Err(source) => {
            return Err(WriteError::Io {
                action: "resolve",
                path: path.to_path_buf(),
                source,
            }
            .into());
        }
    };
    match std::fs::metadata(&target) {
        Ok(m) if !m.file_type().is_file() => Err(WriteError::NotRegularFile {
            path: path.to_path_buf(),
            kind: file_kind(&m),
        }
        .into()),
        _ => Ok(target),
    }
}

fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Streams the image to standard output in 1 MiB chunks.
fn write_stdout(image: &Image<'_>) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = vec![0u8; CHUNK.min(image.len) as usize];
    let mut at = 0;
    while at < image.len {
        let n = CHUNK.min(image.len - at) as usize;
        image.render(at, &mut buf[..n])?;
        out.write_all(&buf[..n]).map_err(|source| WriteError::Io {
            action: "write to",
            path: PathBuf::from("standard output"),
            source,
        })?;
        at += n as u64;
    }
    out.flush().map_err(|source| WriteError::Io {
        action: "write to",
        path: PathBuf::from("standard output"),
        source,
    })?;
    Ok(())
}

/// Copies `len` bytes from `src` at `from` to `dst` at `to` inside the kernel (in place:
/// the old bytes aside and back, at the same offsets modulo 4096).
fn copy_range(src: &File, from: u64, dst: &File, to: u64, len: u64) -> std::io::Result<()> {
    let (mut from, mut to, mut left) = (from, to, len);
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        let n = fault::syscall("copy_file_range", || {
            rustix::fs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), chunk)
                .map_err(std::io::Error::from)
        })?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the input file is shorter than when it was read",
            ));
        }
        left -= n as u64;
    }
    Ok(())
}

/// `pwrite` of all of `bytes` at `at`, through the fault hook.
fn write_at(file: &File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    fault::syscall("pwrite", || file.write_all_at(bytes, at))
}

/// `pread` of all of `buf` at `at`, through the fault hook.
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    fault::syscall("pread", || file.read_exact_at(buf, at))
}

/// Input ranges are copied to the new file through a buffer of this size (`pread`, `pwrite`):
/// on ext4 that is a quarter to a third faster than `copy_file_range`, which splices page by
/// page (`--orc --link` on the Debian `vmlinux.o`, 796 MB copied: write phase 268-295 ms
/// against 413-433 ms, 3 runs each; 256 KiB and 128 KiB buffers were slower, 4 MiB ones
/// much slower).
const COPY_CHUNK: u64 = 1 << 20;

/// Where input bytes are read from, for [`write_range`]: the file, and the (offset, length)
/// pieces the function gives for an input range (in place, the old bytes copied aside).
type ReadInput<'r> = Option<(&'r File, &'r dyn Fn(u64, u64) -> Vec<(u64, u64)>)>;

/// Reads input range `[at, at + buf.len())` into `buf`, at the pieces `pieces` gives.
fn read_input(
    src: &File,
    pieces: &dyn Fn(u64, u64) -> Vec<(u64, u64)>,
    at: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let mut k = 0;
    for (off, len) in pieces(at, buf.len() as u64) {
        read_at(src, &mut buf[k..k + len as usize], off)?;
        k += len as usize;
    }
    Ok(())
}

/// Writes the segments of `image` in `[start, end)` (and the patches there) to `file` at the
/// same offsets. With `read`, input bytes are read from that file (through a buffer, in
/// [`COPY_CHUNK`]s), else from memory.
fn write_range(
    image: &Image<'_>,
    file: &File,
    start: u64,
    end: u64,
    read: ReadInput<'_>,
) -> Result<()> {
    let io = |source| WriteError::Io {
        action: "write",
        path: PathBuf::from("the output"),
        source,
    };
    let first = image.segments.partition_point(|s| s.at + s.len <= start);
    let mut zero_from = start;
    let mut buf = Vec::new();
    let mut patches = Patches::new(image, start, end);
    for s in &image.segments[first..] {
        if s.at >= end {
            break;
        }
        let (a, b) = (s.at.max(start), (s.at + s.len).min(end));
        write_zeros(file, zero_from, a).map_err(io)?;
        zero_from = b;
        match (s.source, read) {
            (Source::Recoded(..), read) => {
                // the input records from the file (at its pieces) or from memory
                let mut from_file;
                let mut from_memory;
                let read_records: &mut dyn FnMut(u64, &mut [u8]) -> Result<()> = match read {
                    Some((src, pieces)) => {
                        from_file = move |at: u64, buf: &mut [u8]| -> Result<()> {
                            read_input(src, pieces, at, buf).map_err(|e| io(e).into())
                        };
                        &mut from_file
                    }
                    None => {
                        from_memory = image.read_memory();
                        &mut from_memory
                    }
                };
                recode::each_chunk(s, a, b, read_records, &mut |at, bytes| {
                    patches.apply(at, bytes);
                    write_at(file, bytes, at).map_err(|e| io(e).into())
                })?;
                patches.covered.push((a, b));
            }
            (Source::Input(from), Some((src, pieces))) => {
                // in chunks ending at multiples of COPY_CHUNK in the new file
                let mut x = a;
                while x < b {
                    let n = ((x / COPY_CHUNK + 1) * COPY_CHUNK).min(b) - x;
                    if (buf.len() as u64) < n {
                        buf.resize(COPY_CHUNK.min(end - start) as usize, 0);
                    }
                    let chunk = &mut buf[..n as usize];
                    read_input(src, pieces, from + (x - s.at), chunk).map_err(io)?;
                    patches.apply(x, chunk);
                    write_at(file, chunk, x).map_err(io)?;
                    x += n;
                }
                patches.covered.push((a, b));
            }
            _ => {
                let bytes = image.source_bytes(s.source, a - s.at, b - a)?;
                write_at(file, bytes, a).map_err(io)?;
            }
        }
    }
    write_zeros(file, zero_from, end).map_err(io)?;
    // the patches, except where they were written with the chunks they fall in
    for (lo, bytes) in patches.rest() {
        write_at(file, bytes, lo).map_err(io)?;
    }
    Ok(())
}

/// The patches of an image in `[start, end)`, written over the chunks that go through a
/// buffer (a kernel build's line makes thousands of 2- and 5-byte patches in `.text`: one
/// `pwrite` each cost tens of ms), the rest written alone at the end.
struct Patches<'i> {
    /// (offset, bytes) clipped to `[start, end)`, in the image's order (a later patch wins
    /// where two overlap).
    list: Vec<(u64, &'i [u8])>,
    /// Indices into `list` by offset.
    by_offset: Vec<usize>,
    longest: u64,
    /// The ranges written through a buffer, in order.
    covered: Vec<(u64, u64)>,
}

impl<'i> Patches<'i> {
    fn new(image: &'i Image<'_>, start: u64, end: u64) -> Self {
        let list: Vec<(u64, &[u8])> = (image.patches.iter())
            .filter_map(|(at, bytes)| {
                let (pa, pb) = (*at, at + bytes.len() as u64);
                let (lo, hi) = (pa.max(start), pb.min(end));
                (lo < hi).then(|| (lo, &bytes[(lo - pa) as usize..(hi - pa) as usize]))
            })
            .collect();
        let mut by_offset: Vec<usize> = (0..list.len()).collect();
        by_offset.sort_by_key(|&i| list[i].0);
        let longest = list.iter().map(|p| p.1.len() as u64).max().unwrap_or(0);
        Patches {
            list,
            by_offset,
            longest,
            covered: Vec::new(),
        }
    }

    /// Writes the patches over `chunk`, the new file's bytes at `at`.
    fn apply(&self, at: u64, chunk: &mut [u8]) {
        let end = at + chunk.len() as u64;
        let first = (self.by_offset).partition_point(|&i| self.list[i].0 + self.longest <= at);
        let mut hits: Vec<usize> = (self.by_offset[first..].iter())
            .take_while(|&&i| self.list[i].0 < end)
            .filter(|&&i| self.list[i].0 + self.list[i].1.len() as u64 > at)
            .copied()
            .collect();
        hits.sort_unstable();
        for i in hits {
            let (pa, bytes) = self.list[i];
            let (lo, hi) = (pa.max(at), (pa + bytes.len() as u64).min(end));
            chunk[(lo - at) as usize..(hi - at) as usize]
                .copy_from_slice(&bytes[(lo - pa) as usize..(hi - pa) as usize]);
        }
    }

    /// The parts of the patches outside the covered ranges, in the image's order.
    fn rest(&self) -> Vec<(u64, &'i [u8])> {
        let mut out = Vec::new();
        for &(pa, bytes) in &self.list {
            let pb = pa + bytes.len() as u64;
            let mut x = pa;
            let k = self.covered.partition_point(|r| r.1 <= x);
            for &(ca, cb) in &self.covered[k..] {
                if ca >= pb {
                    break;
                }
                if ca > x {
                    out.push((x, &bytes[(x - pa) as usize..(ca - pa) as usize]));
                }
                x = x.max(cb);
            }
            if x < pb {
                out.push((x, &bytes[(x - pa) as usize..]));
            }
        }
        out
    }
}

/// Zeros in `[from, to)` (the gaps between sections).
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let mut at = from;
    let zeros = [0u8; 4096];
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        write_at(file, &zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// `fsync`, through the fault hook.
fn sync(file: &File) -> std::io::Result<()> {
    fault::syscall("fsync", || file.sync_all())
}

/// `ftruncate`, through the fault hook.
fn truncate(file: &File, len: u64) -> std::io::Result<()> {
    fault::syscall("ftruncate", || file.set_len(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written through the file path (input ranges read from the file in chunks, patches
    /// folded into them or written alone), an image is what `render` gives: patches that
    /// overlap each other (the later wins), straddle a chunk boundary, a segment's end, a
    /// gap or new bytes.
    #[test]
    fn patches_over_chunks_are_the_rendered_bytes() {
        let dir = std::env::temp_dir().join(format!("orctool-patches-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input: Vec<u8> = (0..3 * COPY_CHUNK as usize)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(dir.join("in"), &input).unwrap();
        let new = vec![0xabu8; 100];
        let c = COPY_CHUNK;
        let image = Image {
            len: 2 * c + 400,
            segments: vec![
                Segment {
                    at: 0,
                    len: c + 10,
                    source: Source::Input(5),
                },
                Segment {
                    at: c + 10,
                    len: 100,
                    source: Source::Bytes(&new),
                },
                Segment {
                    at: c + 200,
                    len: c,
                    source: Source::Input(c + 300),
                },
            ],
            patches: vec![
                (3, vec![1, 2, 3]),
                (4, vec![9; 5]),
                (c - 2, vec![4; 5]),
                (c + 8, vec![5; 4]),
                (c + 105, vec![6; 100]),
                (2 * c + 190, vec![7; 20]),
                (3, vec![8]),
                (2, vec![8; 4]),
            ],
            input: &input,
        };
        let src = File::open(dir.join("in")).unwrap();
        let whole = |from: u64, len: u64| vec![(from, len)];
        for (start, end) in [(0, image.len), (2, c + 150), (c + 9, 2 * c + 300)] {
            let out = File::create(dir.join("out")).unwrap();
            out.set_len(image.len).unwrap();
            write_range(&image, &out, start, end, Some((&src, &whole))).unwrap();
            let got = std::fs::read(dir.join("out")).unwrap();
            let mut want = vec![0u8; (end - start) as usize];
            image.render(start, &mut want).unwrap();
            assert!(
                got[start as usize..end as usize] == want[..],
                "[{start}, {end})"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
