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
//! old-or-new guarantee, the same temporary file (so a killed run's leftover is found the
//! same way).
//!
//! The temporary file exists while the analysis runs: SIGINT, SIGTERM and SIGHUP are held
//! from the start; the prefill thread, while it copies or waits for the verdict, notices a
//! held signal within 20 ms, removes its file and dies of the signal.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::signals::{self, Hold};
use super::{Image, Segment, Source, fault, replace, resolve, write_at, write_range};
use crate::error::Result;

/// What a prefill writes: the new file's length and the input ranges it takes, as
/// `(at, len, from)` in file order (the image of the object with nothing added, as the
/// writer lays it out).
#[derive(Clone, Debug, Default)]
pub struct PrefillPlan {
    pub len: u64,
    pub ranges: Vec<(u64, u64, u64)>,
}

/// A temporary file filled with the input's ranges, ready for [`super::write_image`].
#[derive(Debug)]
pub struct Prefilled {
    /// (taken by the write that uses it; while here, dropping removes the file)
    pub(super) file: Option<File>,
    pub(super) tmp: PathBuf,
    /// The target it was made for (canonical).
    pub(super) target: PathBuf,
    /// The ranges written, `(at, len, from)`, sorted by `at`.
    pub(super) done: Vec<(u64, u64, u64)>,
    /// Bytes copied, and the time the copy took (beside the analysis).
    pub copied: u64,
    pub elapsed: Duration,
    /// The signals stay held until the write that uses this file ends.
    pub(super) _hold: Option<Hold>,
}

impl Drop for Prefilled {
    /// Removes the temporary file unless a write took it.
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            fault::cleaning(|| fault::syscall("unlink", || std::fs::remove_file(&self.tmp)).ok());
        }
    }
}

/// A prefill running on a scoped thread. Dropped without [`Prefill::take`], it removes its
/// file.
pub struct Prefill<'scope> {
    thread: Option<ScopedJoinHandle<'scope, Option<Prefilled>>>,
    verdict: Option<mpsc::Sender<()>>,
    hold: Option<Hold>,
}

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
        let hold = Hold::new();
        let (tx, rx) = mpsc::channel();
        let thread = scope.spawn(move || {
            // the analysis first: this thread takes the time it leaves
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
            let start = Instant::now();
            let mut filled = plan().and_then(|plan| fill(plan, &input, target, start).ok());
            // the verdict, watching for a held signal meanwhile
            loop {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(()) => return filled,
                    // (dropped: the file is removed)
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(sig) = signals::pending() {
                            drop(filled.take());
                            signals::die(sig);
                        }
                    }
                }
            }
        });
        Some(Prefill {
            thread: Some(thread),
            verdict: Some(tx),
            hold: Some(hold),
        })
    }

    /// Waits for the copy and takes the file (`None`: nothing was copied, or the copy
    /// failed and removed its file; the write then goes the usual way).
    pub fn take(mut self) -> Option<Prefilled> {
        let verdict = self.verdict.take()?;
        let _ = verdict.send(());
        let mut filled = self.thread.take()?.join().ok()??;
        filled._hold = self.hold.take();
        Some(filled)
    }
}

impl Drop for Prefill<'_> {
    fn drop(&mut self) {
        // the thread removes its file when the channel closes
        drop(self.verdict.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Creates the temporary file of `target` and copies the plan's ranges into it. On failure
/// the file is removed.
fn fill(plan: PrefillPlan, input: &File, target: PathBuf, start: Instant) -> Result<Prefilled> {
    let (file, tmp) = replace::create_temporary(&target)?;
    let copy = || -> Result<()> {
        replace::prepare(&file, Some(input), plan.len)?;
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
        write_range(&image, &file, 0, plan.len, Some((input, &whole)))
    };
    let copied = copy();
    // (from here, dropping it removes the file)
    let filled = Prefilled {
        file: Some(file),
        tmp,
        target,
        copied: plan.ranges.iter().map(|r| r.1).sum(),
        done: plan.ranges,
        elapsed: start.elapsed(),
        _hold: None,
    };
    copied.map(|()| filled)
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
    let io = |source| super::WriteError::Io {
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
