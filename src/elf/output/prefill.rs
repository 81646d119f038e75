//! Writing a large object's unchanged bytes while it is still being analysed.
//!
//! objtool's libelf lays a `vmlinux.o` out again (its relocation sections come after their
//! targets in index order, where `ld -r` put them at the end), so every byte of the file
//! moves and a new file is written whole: 853 MB for a Debian `vmlinux.o` with DWARF. Where
//! the bytes of an unchanged section land does not depend on the analysis (only the
//! sections after the symbol table, and new ones, move with what it adds), so a [`Prefill`]
//! started when the object is opened copies the input's sections to the temporary file at
//! their new offsets on a thread of its own, beside the analysis. The write then checks
//! which of those ranges the final image places the same way, writes only the rest (and the
//! patches over the reused ranges) and switches the file as usual: the same bytes, the same
//! old-or-new guarantee, the same naming and switch of the temporary file.
//!
//! The temporary file is anonymous while the analysis runs (`O_TMPFILE`; without it there
//! is no prefill): a run stopped by a signal, even SIGKILL, leaves nothing behind, and the
//! signals keep their default action until the write begins.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::replace::{self, Temporary};
use super::{Image, Segment, Source, resolve, write_at, write_range};
use crate::error::{Result, WriteError};

/// What a prefill writes: the new file's length and the input ranges it takes, as
/// `(at, len, from)` in file order (the image of the object with nothing added, as the
/// writer lays it out).
#[derive(Clone, Debug, Default)]
pub struct PrefillPlan {
    pub len: u64,
    pub ranges: Vec<(u64, u64, u64)>,
}

/// A temporary file filled with the input's ranges, ready for [`super::write_image`]. The
/// file is anonymous: dropped unused, it is gone with its descriptor.
#[derive(Debug)]
pub struct Prefilled {
    pub(super) temporary: Temporary,
    /// The target it was made for (canonical).
    pub(super) target: PathBuf,
    /// The ranges written, `(at, len, from)`, sorted by `at`.
    pub(super) done: Vec<(u64, u64, u64)>,
    /// Bytes copied, and the time the copy took (beside the analysis).
    pub copied: u64,
    pub elapsed: Duration,
}

/// A prefill running on a scoped thread. Dropped without [`Prefill::take`], it stops the
/// copy and removes its file.
pub struct Prefill<'scope> {
    thread: Option<ScopedJoinHandle<'scope, Option<Prefilled>>>,
    cancel: Arc<AtomicBool>,
}

/// The copy goes in steps of this many bytes, between which a cancelled prefill stops.
const STEP: u64 = 64 << 20;

impl<'scope> Prefill<'scope> {
    /// Starts copying, on a thread of `scope`, the ranges `plan` gives (`None`: nothing worth
    /// copying) from `input` to the temporary file of the object at `path` (to be replaced
    /// in place), which takes the input's mode, owner, group and extended attributes.
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        path: &Path,
        input: File,
        plan: impl FnOnce() -> Option<PrefillPlan> + Send + 'scope,
    ) -> Option<Prefill<'scope>> {
        let target = resolve(path, true).ok()?;
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let thread = scope.spawn(move || {
            // the analysis first: this thread takes the time it leaves
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
            let start = Instant::now();
            plan().and_then(|plan| fill(plan, &input, target, start, &stop))
        });
        Some(Prefill {
            thread: Some(thread),
            cancel,
        })
    }

    /// Waits for the copy and takes the file (`None`: nothing was copied, or the copy
    /// failed; the write then goes the usual way).
    pub fn take(mut self) -> Option<Prefilled> {
        self.thread.take()?.join().ok()?
    }
}

impl Drop for Prefill<'_> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates the anonymous temporary file of `target` and copies the plan's ranges into it.
/// `None` (and nothing left: the file goes with its descriptor) when it cannot, or when
/// `cancel` is set.
fn fill(
    plan: PrefillPlan,
    input: &File,
    target: PathBuf,
    start: Instant,
    cancel: &AtomicBool,
) -> Option<Prefilled> {
    let t = replace::create_temporary(&target).ok()?;
    if t.named {
        // (a named file would outlive a run stopped during the analysis)
        drop(t.file);
        replace::remove_name(&t.path);
        return None;
    }
    replace::prepare(&t.file, Some(input), plan.len).ok()?;
    let segments = (plan.ranges.iter())
        .map(|&(at, len, from)| Segment {
            at,
            len,
            source: Source::Input(from),
        })
        .collect();
    let image = Image {
        len: plan.len,
        segments,
        patches: Vec::new(),
        input: &[],
    };
    let whole = |from: u64, len: u64| vec![(from, len)];
    let mut at = 0;
    while at < plan.len {
        if cancel.load(Ordering::SeqCst) {
            return None;
        }
        let end = (at + STEP).min(plan.len);
        write_range(&image, &t.file, at, end, Some((input, &whole))).ok()?;
        at = end;
    }
    Some(Prefilled {
        temporary: t,
        target,
        copied: plan.ranges.iter().map(|r| r.1).sum(),
        done: plan.ranges,
        elapsed: start.elapsed(),
    })
}

/// The ranges of `image` that `done` already put in the file: input ranges at the same
/// place and taken from the same input offset (sorted, merged).
pub(super) fn reused_ranges(image: &Image<'_>, done: &[(u64, u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in &image.segments {
        let Source::Input(from) = s.source else {
            continue;
        };
        let (a, b) = (s.at, s.at + s.len);
        let first = done.partition_point(|d| d.0 + d.1 <= a);
        for &(at, len, dfrom) in &done[first..] {
            if at >= b {
                break;
            }
            // the same displacement: these bytes are the input's at the same offsets
            if dfrom.wrapping_sub(at) != from.wrapping_sub(s.at) {
                continue;
            }
            let (lo, hi) = (a.max(at), b.min(at + len).min(image.len));
            if lo >= hi {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 == lo => last.1 = hi,
                _ => out.push((lo, hi)),
            }
        }
    }
    out
}

/// Writes what `reused` (sorted) does not cover of `image`, and the patches over `reused`.
pub(super) fn write_rest(
    image: &Image<'_>,
    file: &File,
    input: &File,
    reused: &[(u64, u64)],
) -> Result<()> {
    let whole = |from: u64, len: u64| vec![(from, len)];
    let read = Some((input, &whole as &dyn Fn(u64, u64) -> Vec<(u64, u64)>));
    let mut at = 0;
    for &(a, b) in reused {
        if at < a {
            write_range(image, file, at, a, read)?;
        }
        at = b;
    }
    if at < image.len {
        write_range(image, file, at, image.len, read)?;
    }
    let io = |source| WriteError::Io {
        action: "write",
        path: PathBuf::from("the temporary file"),
        source,
    };
    // the patches over the reused ranges, in the image's order (a later one wins)
    for (pa, bytes) in &image.patches {
        let pb = pa + bytes.len() as u64;
        let first = reused.partition_point(|r| r.1 <= *pa);
        for &(a, b) in &reused[first..] {
            if a >= pb {
                break;
            }
            let (lo, hi) = (a.max(*pa), b.min(pb));
            write_at(file, &bytes[(lo - pa) as usize..(hi - pa) as usize], lo).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A range is reused only where the prefill put the same input bytes at the same place:
    /// the same displacement, clipped to what both cover.
    #[test]
    fn reused_ranges_need_the_same_bytes_at_the_same_place() {
        let new = [0u8; 10];
        let seg = |at, len, source| Segment { at, len, source };
        let image = Image {
            len: 200,
            segments: vec![
                seg(0, 60, Source::Input(0)),
                // the same place, other input bytes
                seg(60, 40, Source::Input(10)),
                seg(100, 20, Source::Input(500)),
                seg(120, 10, Source::Bytes(&new)),
                // past the end of the prefill's range
                seg(130, 40, Source::Input(530)),
                seg(190, 10, Source::Input(90)),
            ],
            patches: Vec::new(),
            input: &[],
        };
        let done = [(0, 100, 0), (100, 50, 500), (190, 10, 190)];
        assert_eq!(
            reused_ranges(&image, &done),
            vec![(0, 60), (100, 120), (130, 150)]
        );
    }
}
