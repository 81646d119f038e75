//! Updating an object in place, so that the file is the old object or the new one at every
//! instant.
//!
//! The new image is compared with the file: `changed` are the byte ranges that differ (for
//! objtool's layout usually the last sections, the new ORC sections and the section header
//! table; plus the sections whose relocations were renumbered and the jump-label NOPs).
//! Then:
//!
//! 1. Every old section that a changed range touches (and every other old byte there) is
//!    copied after the end of both files, with a copy of the old section headers that points
//!    at those copies, a table of the copies and a trailer ending in [`RECOVERY_MAGIC`]
//!    (written first: it marks the file as being updated). Then the ELF header is switched
//!    to the copied section headers: one 64-byte write. The file is still the old object.
//! 2. The changed ranges are written (unchanged input bytes that moved are copied from the
//!    copies of step 1, or from where they are when untouched).
//! 3. The new ELF header is written: the file is the new object (with a tail).
//! 4. The file is truncated to the new length: byte for byte objtool's file.
//!
//! With `--sync` the file is flushed before each header switch and at the end. A failure
//! (or a held signal) before step 3 puts the old bytes back and truncates the file to its old
//! length; a run killed outright leaves the trailer, which [`recover`] reads on the next run
//! to finish the old object (steps 1-2) or the new one (steps 3-4).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader as _, SectionHeader as _};

use super::{
    Image, Method, Prefilled, Source, WriteSettings, copy_range, fault, sync, truncate, write_at,
};
use crate::elf::{FileHeader, LE, Object, SecId, SectionHeader};
use crate::error::{Result, WriteError};

/// The last 16 bytes of a file whose in-place update did not finish.
pub const RECOVERY_MAGIC: [u8; 16] = *b"\0orctool-update\0";

/// old length, new length, switched section header offset, copies table offset, number of
/// copies, old ELF header, new ELF header, magic.
const TRAILER_LEN: usize = 5 * 8 + 64 + 64 + 16;
const HEADER_LEN: u64 = size_of::<FileHeader>() as u64;

/// One old range copied aside: (where it was, where its copy is, length).
type Shadow = (u64, u64, u64);

/// Updates `target` (whose bytes `image.input` are, opened as `input`) to `image`.
pub(super) fn update(
    image: &Image<'_>,
    input: &File,
    target: &Path,
    settings: WriteSettings,
    prefilled: Option<Prefilled>,
) -> Result<Method> {
    // through a new file: the prefilled one when there is one
    let replace = |prefilled: Option<Prefilled>| match prefilled {
        Some(p) => super::replace::replace_prefilled(image, input, settings, p),
        None => super::replace::replace(image, Some(input), target, settings, Some(input)),
    };
    let old = image.input;
    let meta = input.metadata().map_err(io("read", target))?;
    if meta.len() != old.len() as u64 {
        return Err(WriteError::InputChanged.into());
    }
    let new_header = {
        let mut h = [0u8; HEADER_LEN as usize];
        image.render(0, &mut h)?;
        h
    };
    let old_header: [u8; HEADER_LEN as usize] = old
        .get(..HEADER_LEN as usize)
        .and_then(|h| h.try_into().ok())
        .ok_or(WriteError::InputChanged)?;
    // Moved input ranges are rewritten whatever else changes: when they alone outweigh a
    // new file, don't compare the rest.
    let must = !super::replaced_whole(&meta);
    let moved: u64 = (image.segments.iter())
        .filter(|s| matches!(s.source, Source::Input(from) if from != s.at))
        .map(|s| s.len)
        .sum();
    if settings.no_in_place || (!must && 2 * moved > image.len) {
        return replace(prefilled);
    }
    let changed = changed_ranges(image)?;
    if changed.is_empty() && new_header == old_header && image.len == old.len() as u64 {
        return Ok(Method::Unchanged);
    }
    let shadows = shadow_ranges(old, &changed)?;
    let shadowed: u64 = shadows.iter().map(|r| r.1 - r.0).sum();
    let written: u64 = changed.iter().map(|r| r.1 - r.0).sum();
    // In place writes `shadowed + written` bytes, a rename `image.len` (into new blocks).
    // Hard links and an owner a rename would not keep need the update in place.
    // (The recovery tells the steps apart by the ELF header: an unchanged one needs the
    // rename.)
    let same_header = new_header == old_header;
    if same_header || (!must && shadowed + written > image.len) {
        return replace(prefilled);
    }
    // in place after all: the prefilled file is not needed (removed when dropped)
    drop(prefilled);
    let file = fault::syscall("open", || {
        OpenOptions::new().read(true).write(true).open(target)
    })
    .map_err(io("open", target))?;
    let plan = Plan::new(old, image.len, &shadows, &old_header, &new_header)?;
    let mut switched = false;
    let result = plan.run(image, &file, &changed, settings, &mut switched);
    if let Err(e) = result {
        fault::cleaning(|| plan.undo(&file, switched));
        return Err(e);
    }
    Ok(Method::InPlace { shadowed, written })
}

fn io(action: &'static str, path: &Path) -> impl Fn(std::io::Error) -> crate::Error {
    let path = path.to_path_buf();
    move |source| {
        WriteError::Io {
            action,
            path: path.clone(),
            source,
        }
        .into()
    }
}

/// The ranges in `[64, len)` where the new image differs from the old file (sorted,
/// merged). Input ranges left where they were are the same; moved ones count as changed.
fn changed_ranges(image: &Image<'_>) -> Result<Vec<(u64, u64)>> {
    let old = image.input;
    let old_len = old.len() as u64;
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut push = |a: u64, b: u64| {
        if a >= b {
            return;
        }
        // (joined with the last range only when it continues it: patches come unsorted)
        match out.last_mut() {
            Some(last) if last.0 <= a && a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    };
    let old_at = |a: u64, b: u64| -> &[u8] {
        let (a, b) = (a.min(old_len) as usize, b.min(old_len) as usize);
        &old[a..b]
    };
    // a differing sub-range of [a, b) whose new bytes are `new`
    let diff = |a: u64, new: &[u8], push: &mut dyn FnMut(u64, u64)| {
        let b = a + new.len() as u64;
        let was = old_at(a, b);
        let common = was.len().min(new.len());
        let first = first_difference(&new[..common], &was[..common]).unwrap_or(common);
        if first == new.len() {
            return;
        }
        let last = if was.len() < new.len() {
            new.len()
        } else {
            new.len() - same_suffix(&new[first..], &was[first..])
        };
        push(a + first as u64, a + last as u64);
    };
    let mut at = HEADER_LEN;
    let zeros = [0u8; 4096];
    let gap = |from: u64, to: u64, push: &mut dyn FnMut(u64, u64)| {
        let mut x = from;
        while x < to {
            let n = (to - x).min(zeros.len() as u64);
            diff(x, &zeros[..n as usize], push);
            x += n;
        }
    };
    for s in &image.segments {
        let (a, b) = (s.at.max(HEADER_LEN), s.at + s.len);
        if b <= a {
            continue;
        }
        gap(at, a, &mut push);
        at = b;
        match s.source {
            Source::Input(from) if from == s.at && b <= old_len => {}
            Source::Input(_) => push(a, b),
            Source::Bytes(bytes) => diff(a, &bytes[(a - s.at) as usize..], &mut push),
            Source::Recoded(..) => {
                // from the first to the last differing byte, as for bytes in memory
                let mut span: Option<(u64, u64)> = None;
                let mut widen = |p: u64, q: u64| {
                    span = Some(span.map_or((p, q), |(x, y)| (x.min(p), y.max(q))));
                };
                super::recode::each_chunk(s, a, b, &mut image.read_memory(), &mut |x, bytes| {
                    diff(x, bytes, &mut widen);
                    Ok(())
                })?;
                if let Some((p, q)) = span {
                    push(p, q);
                }
            }
        }
    }
    gap(at, image.len, &mut push);
    for (pa, bytes) in &image.patches {
        if *pa >= HEADER_LEN {
            diff(*pa, bytes, &mut push);
        }
    }
    Ok(merge_ranges(out))
}

/// Byte ranges `[a, b)` sorted, with overlapping and touching ones joined.
fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The first index where `a` and `b` (of one length) differ, compared in blocks (`memcmp`).
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 4096;
    let mut at = 0;
    for (x, y) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        if x != y {
            return Some(at + x.iter().zip(y).position(|(p, q)| p != q).unwrap_or(0));
        }
        at += x.len();
    }
    None
}

/// How many bytes at the end of `a` and `b` (of one length) are the same.
fn same_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let mut same = 0;
    for (x, y) in a.rchunks(BLOCK).zip(b.rchunks(BLOCK)) {
        if x != y {
            return same
                + x.iter()
                    .rev()
                    .zip(y.iter().rev())
                    .take_while(|(p, q)| p == q)
                    .count();
        }
        same += x.len();
    }
    same
}

/// The old ranges to copy aside: the changed ranges inside the old file, widened to every
/// old section (and the old section header table) they touch.
fn shadow_ranges(old: &[u8], changed: &[(u64, u64)]) -> Result<Vec<(u64, u64)>> {
    let old_len = old.len() as u64;
    let obj = Object::parse(old)?;
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for i in 1..obj.section_count() {
        let h = obj.section(SecId(i as u32))?;
        let (off, size) = (h.sh_offset(LE), h.file_range(LE).map_or(0, |r| r.1));
        if size > 0 {
            spans.push((off, off.saturating_add(size).min(old_len)));
        }
    }
    let shoff = obj.header().e_shoff(LE);
    let shsize = obj.section_count() as u64 * size_of::<SectionHeader>() as u64;
    spans.push((shoff, shoff.saturating_add(shsize).min(old_len)));
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(a, b) in changed {
        let (a, b) = (a, b.min(old_len));
        if a >= b {
            continue;
        }
        let (mut lo, mut hi) = (a, b);
        for &(sa, sb) in &spans {
            if sa < b && sb > a {
                lo = lo.min(sa);
                hi = hi.max(sb);
            }
        }
        out.push((lo.max(HEADER_LEN), hi));
    }
    Ok(merge_ranges(out))
}

/// Where everything of step 1 goes.
struct Plan {
    old_len: u64,
    new_len: u64,
    shadows: Vec<Shadow>,
    /// The old section headers, pointing at the copies.
    headers: Vec<u8>,
    headers_at: u64,
    table_at: u64,
    trailer_at: u64,
    old_header: [u8; 64],
    new_header: [u8; 64],
    switched_header: [u8; 64],
}

impl Plan {
    fn new(
        old: &[u8],
        new_len: u64,
        ranges: &[(u64, u64)],
        old_header: &[u8; 64],
        new_header: &[u8; 64],
    ) -> Result<Self> {
        let obj = Object::parse(old)?;
        let old_len = old.len() as u64;
        // Each copy at the same offset modulo 4096 as the original: alignments stay.
        let mut at = old_len.max(new_len);
        let mut shadows = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges {
            at += (a % 4096 + 4096 - at % 4096) % 4096;
            shadows.push((a, at, b - a));
            at += b - a;
        }
        let moved = |off: u64| {
            shadows
                .iter()
                .find(|&&(o, _, len)| off >= o && off < o + len)
                .map_or(off, |&(o, s, _)| s + (off - o))
        };
        // section 0 as it is (it may hold the extended section count)
        let shoff = obj.header().e_shoff(LE) as usize;
        let mut headers = (shoff.checked_add(64))
            .and_then(|end| old.get(shoff..end))
            .ok_or(WriteError::InputChanged)?
            .to_vec();
        for i in 1..obj.section_count() {
            let mut h = *obj.section(SecId(i as u32))?;
            if h.file_range(LE).is_some_and(|r| r.1 > 0) {
                h.sh_offset.set(LE, moved(h.sh_offset(LE)));
            }
            headers.extend_from_slice(object::bytes_of(&h));
        }
        let headers_at = at.next_multiple_of(8);
        let table_at = headers_at + headers.len() as u64;
        let trailer_at = table_at + 24 * shadows.len() as u64;
        let mut switched_header = *old_header;
        switched_header[0x28..0x30].copy_from_slice(&headers_at.to_le_bytes());
        Ok(Plan {
            old_len,
            new_len,
            shadows,
            headers,
            headers_at,
            table_at,
            trailer_at,
            old_header: *old_header,
            new_header: *new_header,
            switched_header,
        })
    }

    fn trailer(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(TRAILER_LEN);
        for v in [
            self.old_len,
            self.new_len,
            self.headers_at,
            self.table_at,
            self.shadows.len() as u64,
        ] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        t.extend_from_slice(&self.old_header);
        t.extend_from_slice(&self.new_header);
        t.extend_from_slice(&RECOVERY_MAGIC);
        t
    }

    /// Steps 1 to 4.
    fn run(
        &self,
        image: &Image<'_>,
        file: &File,
        changed: &[(u64, u64)],
        settings: WriteSettings,
        switched: &mut bool,
    ) -> Result<()> {
        let path = PathBuf::from("the object");
        let io = |action| io(action, &path);
        // 1. the old bytes aside, the old headers pointing at them, the header switched
        write_at(file, &self.trailer(), self.trailer_at).map_err(io("write"))?;
        for &(orig, copy, len) in &self.shadows {
            copy_range(file, orig, file, copy, len).map_err(io("copy inside"))?;
        }
        write_at(file, &self.headers, self.headers_at).map_err(io("write"))?;
        let table: Vec<u8> = (self.shadows.iter())
            .flat_map(|&(o, c, l)| [o, c, l])
            .flat_map(u64::to_le_bytes)
            .collect();
        write_at(file, &table, self.table_at).map_err(io("write"))?;
        if settings.sync {
            sync(file).map_err(io("flush"))?;
        }
        write_at(file, &self.switched_header, 0).map_err(io("write"))?;
        *switched = true;
        if settings.sync {
            sync(file).map_err(io("flush"))?;
        }
        // 2. the changed ranges; moved input bytes from their copies
        let pieces = |from: u64, len: u64| split_source(&self.shadows, from, len);
        for &(a, b) in changed {
            super::write_range(image, file, a, b, Some((file, &pieces)))?;
        }
        if settings.sync {
            sync(file).map_err(io("flush"))?;
        }
        // 3. the new header: the new object
        write_at(file, &self.new_header, 0).map_err(io("write"))?;
        *switched = false;
        // 4. objtool's length
        truncate(file, self.new_len).map_err(io("truncate"))?;
        if settings.sync {
            sync(file).map_err(io("flush"))?;
        }
        Ok(())
    }

    /// After a failure: the old object back (or, past step 3, the new one without its tail).
    fn undo(&self, file: &File, switched: bool) {
        if self.new_header_written(file) {
            let _ = truncate(file, self.new_len);
            return;
        }
        if switched {
            restore(file, &self.shadows, &self.old_header, self.old_len).ok();
        } else {
            let _ = truncate(file, self.old_len);
        }
    }

    fn new_header_written(&self, file: &File) -> bool {
        let mut h = [0u8; 64];
        file.read_exact_at(&mut h, 0).is_ok() && h == self.new_header && h != self.old_header
    }
}

/// The (offset, length) pieces of the old range `[from, from + len)` as they can be read
/// now: from the copies where the range was copied aside, from where it is elsewhere.
fn split_source(shadows: &[Shadow], from: u64, len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut x, end) = (from, from + len);
    while x < end {
        match shadows.iter().find(|&&(o, _, l)| x >= o && x < o + l) {
            Some(&(o, c, l)) => {
                let n = (o + l).min(end) - x;
                out.push((c + (x - o), n));
                x += n;
            }
            None => {
                let next = shadows
                    .iter()
                    .map(|&(o, _, _)| o)
                    .filter(|&o| o > x)
                    .min()
                    .unwrap_or(end)
                    .min(end);
                out.push((x, next - x));
                x = next;
            }
        }
    }
    out
}

/// The old object back from its copies: bytes, then the old header, then the old length.
fn restore(
    file: &File,
    shadows: &[Shadow],
    old_header: &[u8; 64],
    old_len: u64,
) -> std::io::Result<()> {
    for &(orig, copy, len) in shadows {
        copy_range(file, copy, file, orig, len)?;
    }
    write_at(file, old_header, 0)?;
    truncate(file, old_len)
}

/// Finishes an update a killed run left (see the module doc). Returns whether there was one.
pub(super) fn recover(target: &Path) -> Result<bool> {
    let Ok(reader) = File::open(target) else {
        return Ok(false);
    };
    let len = reader.metadata().map_err(io("read", target))?.len();
    if len < TRAILER_LEN as u64 + 64 {
        return Ok(false);
    }
    let mut t = [0u8; TRAILER_LEN];
    reader
        .read_exact_at(&mut t, len - TRAILER_LEN as u64)
        .map_err(io("read", target))?;
    if t[TRAILER_LEN - 16..] != RECOVERY_MAGIC {
        return Ok(false);
    }
    let word = |i: usize| u64::from_le_bytes(t[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (old_len, new_len, headers_at, table_at, count) =
        (word(0), word(1), word(2), word(3), word(4));
    let old_header: [u8; 64] = t[40..104].try_into().unwrap_or([0; 64]);
    let new_header: [u8; 64] = t[104..168].try_into().unwrap_or([0; 64]);
    let bad = || -> crate::Error {
        WriteError::UnknownLeftover {
            path: target.to_path_buf(),
        }
        .into()
    };
    if old_len > len || new_len > len || count > len / 24 || table_at + 24 * count > len {
        return Err(bad());
    }
    let mut header = [0u8; 64];
    reader
        .read_exact_at(&mut header, 0)
        .map_err(io("read", target))?;
    let mut switched = old_header;
    switched[0x28..0x30].copy_from_slice(&headers_at.to_le_bytes());
    let file = fault::syscall("open", || {
        OpenOptions::new().read(true).write(true).open(target)
    })
    .map_err(io("open", target))?;
    if header == switched {
        let mut table = vec![0u8; 24 * count as usize];
        reader
            .read_exact_at(&mut table, table_at)
            .map_err(io("read", target))?;
        let shadows: Vec<Shadow> = table
            .chunks_exact(24)
            .map(|c| {
                let w = |i: usize| u64::from_le_bytes(c[i..i + 8].try_into().unwrap_or([0; 8]));
                (w(0), w(8), w(16))
            })
            .collect();
        if shadows
            .iter()
            .any(|&(o, c, l)| o + l > old_len || c + l > len)
        {
            return Err(bad());
        }
        restore(&file, &shadows, &old_header, old_len).map_err(io("restore", target))?;
    } else if header == new_header {
        truncate(&file, new_len).map_err(io("truncate", target))?;
    } else if header == old_header {
        truncate(&file, old_len).map_err(io("truncate", target))?;
    } else {
        return Err(bad());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::output::Segment;

    /// A range read back after step 2 comes from the copies where it was copied aside.
    #[test]
    fn sources_come_from_the_copies_where_there_are_copies() {
        let shadows = [(100, 1000, 50), (200, 2000, 10)];
        assert_eq!(split_source(&shadows, 0, 50), [(0, 50)]);
        assert_eq!(split_source(&shadows, 90, 20), [(90, 10), (1000, 10)]);
        assert_eq!(
            split_source(&shadows, 140, 80),
            [(1040, 10), (150, 50), (2000, 10), (210, 10)]
        );
    }

    #[test]
    fn differences_across_blocks() {
        let a = vec![7u8; 10_000];
        let mut b = a.clone();
        assert_eq!(first_difference(&a, &b), None);
        assert_eq!(same_suffix(&a, &b), 10_000);
        b[5000] = 0;
        b[9000] = 0;
        assert_eq!(first_difference(&a, &b), Some(5000));
        assert_eq!(same_suffix(&a, &b), 999);
    }

    /// Only the bytes that differ count as changed; moved input ranges always do.
    #[test]
    fn changed_ranges_are_the_differing_bytes() {
        let old: Vec<u8> = (0..200u8).collect();
        let mut new_tail = old[150..].to_vec();
        new_tail[10] ^= 1;
        new_tail[20] ^= 1;
        let image = Image {
            len: 210,
            segments: vec![
                Segment {
                    at: 0,
                    len: 100,
                    source: Source::Input(0),
                },
                Segment {
                    at: 100,
                    len: 20,
                    source: Source::Input(120),
                },
                Segment {
                    at: 150,
                    len: 50,
                    source: Source::Bytes(&new_tail),
                },
            ],
            patches: vec![(70, vec![70, 0])],
            input: &old,
        };
        // [100,120) moved; [120,150) zeros where old had bytes; 160..171 differ; the
        // patch's second byte differs; [200,210) is past the old end
        assert_eq!(
            changed_ranges(&image).unwrap(),
            [(71, 72), (100, 150), (160, 171), (200, 210)]
        );
    }
}
