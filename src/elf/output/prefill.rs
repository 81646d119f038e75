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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// The copy's steps, once the file is made: [`Prefill::take`] copies beside the thread.
    work: Arc<OnceLock<Arc<Steps>>>,
}

/// The copy goes in steps of this many bytes, taken in turn by the prefill's thread and,
/// once the analysis is done, by the thread that waits for it; a cancelled prefill stops
/// between two.
const STEP: u64 = 8 << 20;

/// The copy as steps that two threads take in turn: when the analysis ends before the copy
/// (a large object on a slow disk or a virtual machine whose memory the host must back
/// again), the waiting thread copies too. (Measured with this VM's free page reporting on:
/// 800 MB copied in 380-420 ms by one thread, 205 ms by two.)
struct Steps {
    /// The temporary file (a second descriptor of it) and the input.
    file: File,
    input: File,
    plan: PrefillPlan,
    /// The start of the next step not taken.
    next: AtomicU64,
    failed: AtomicBool,
}

impl Steps {
    /// Copies steps until none is left, the copy failed or `cancel` is set.
    fn run(&self, cancel: &AtomicBool) {
        let image = Image {
            len: self.plan.len,
            segments: (self.plan.ranges.iter())
                .map(|&(at, len, from)| Segment {
                    at,
                    len,
                    source: Source::Input(from),
                })
                .collect(),
            patches: Vec::new(),
            input: &[],
        };
        let whole = |from: u64, len: u64| vec![(from, len)];
        while !cancel.load(Ordering::SeqCst) && !self.failed.load(Ordering::SeqCst) {
            let at = self.next.fetch_add(STEP, Ordering::SeqCst);
            if at >= self.plan.len {
                return;
            }
            let end = (at + STEP).min(self.plan.len);
            if write_range(&image, &self.file, at, end, Some((&self.input, &whole))).is_err() {
                self.failed.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Every step copied and none failed.
    fn complete(&self) -> bool {
        !self.failed.load(Ordering::SeqCst) && self.next.load(Ordering::SeqCst) >= self.plan.len
    }
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
        let cancel = Arc::new(AtomicBool::new(false));
        let work = Arc::new(OnceLock::new());
        let (stop, steps) = (cancel.clone(), work.clone());
        let thread = scope.spawn(move || {
            // the analysis first: this thread takes the time it leaves
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
            let start = Instant::now();
            plan().and_then(|plan| fill(plan, input, target, start, &stop, &steps))
        });
        Some(Prefill {
            thread: Some(thread),
            cancel,
            work,
        })
    }

    /// Copies what is left of the copy beside its thread, waits for it and takes the file
    /// (`None`: nothing was copied, or the copy failed; the write then goes the usual way).
    pub fn take(mut self) -> Option<Prefilled> {
        let thread = self.thread.take()?;
        // the steps, once the prefill's thread has made the file (a run whose analysis
        // ends first waits for that; one that ends without making it has none)
        let steps = loop {
            if let Some(steps) = self.work.get() {
                break Some(steps.clone());
            }
            if thread.is_finished() {
                break self.work.get().cloned();
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if let Some(steps) = &steps {
            steps.run(&self.cancel);
        }
        let done = thread.join().ok()??;
        // (this thread's steps count too: the prefill's thread may have finished first)
        steps.is_none_or(|s| s.complete()).then_some(done)
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
    input: File,
    target: PathBuf,
    start: Instant,
    cancel: &AtomicBool,
    work: &OnceLock<Arc<Steps>>,
) -> Option<Prefilled> {
    let t = replace::create_temporary(&target).ok()?;
    if t.named {
        // (a named file would outlive a run stopped during the analysis)
        drop(t.file);
        replace::remove_name(&t.path);
        return None;
    }
    replace::prepare(&t.file, Some(&input), plan.len).ok()?;
    let steps = Arc::new(Steps {
        file: t.file.try_clone().ok()?,
        input,
        plan,
        next: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    });
    let _ = work.set(steps.clone());
    steps.run(cancel);
    if !steps.complete() {
        return None;
    }
    Some(Prefilled {
        temporary: t,
        target,
        copied: steps.plan.ranges.iter().map(|r| r.1).sum(),
        done: steps.plan.ranges.clone(),
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

    /// Two threads taking the steps of one copy in turn copy every range once, to its
    /// place; a step that fails marks the copy incomplete and stops both.
    #[test]
    fn steps_shared_by_two_threads() {
        let dir = std::env::temp_dir().join(format!("orctool-steps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let len = 5 * STEP + 12345;
        let input: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4093) as u8).collect();
        std::fs::write(dir.join("in"), &input).unwrap();
        // the input's halves swapped, with a gap between them in the new file
        let half = len / 2;
        let plan = PrefillPlan {
            len: len + 100,
            ranges: vec![(0, len - half, half), (len - half + 100, half, 0)],
        };
        let open = |name: &str, write: bool| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .create(write)
                .truncate(false)
                .open(dir.join(name))
                .unwrap()
        };
        let steps = |file: File| Steps {
            file,
            input: open("in", false),
            plan: plan.clone(),
            next: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        };
        let copy = steps(open("out", true));
        let cancel = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| copy.run(&cancel));
            copy.run(&cancel);
        });
        assert!(copy.complete());
        let out = std::fs::read(dir.join("out")).unwrap();
        let mut want = input[half as usize..].to_vec();
        want.extend_from_slice(&[0; 100]);
        want.extend_from_slice(&input[..half as usize]);
        assert!(out == want, "the copy is not the plan's");
        // a file open for reading only: every write fails
        std::fs::write(dir.join("ro"), b"").unwrap();
        let copy = steps(open("ro", false));
        std::thread::scope(|scope| {
            scope.spawn(|| copy.run(&cancel));
            copy.run(&cancel);
        });
        assert!(!copy.complete());
        assert!(
            copy.next.load(Ordering::SeqCst) < 4 * STEP,
            "went on after a failure"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
