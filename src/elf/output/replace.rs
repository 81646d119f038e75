//! A new file through a temporary file renamed over the target: `-o OUT`, and the in-place
//! update's fallback when most of the object changes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::prefill::{self, Prefilled};
use super::{Image, Method, WriteSettings, fault, sync, truncate, write_at, write_range};
use crate::error::{Result, WriteError};

/// Objects smaller than this are written from memory in one piece rather than copied
/// range by range from the input file.
const COPY_MIN_BYTES: u64 = 1 << 20;

/// The directory and file name of `target`.
fn split(target: &Path) -> (PathBuf, String) {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "object".into());
    (dir, name)
}

/// The temporary file beside `NAME`: one fixed name, so that the next run finds a killed
/// run's leftover with one `open` instead of reading the directory (a kernel build runs
/// orctool once per object of directories with thousands of files). The writer holds an
/// exclusive `flock` on it while it lives; a leftover nobody holds is stale.
fn temporary_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.orctool.tmp"))
}

/// The temporary file being written. Anonymous where the file system allows (`O_TMPFILE`:
/// a run that dies, even of SIGKILL, leaves nothing behind) until it is given the temporary
/// name just before the switch; named from the start elsewhere.
#[derive(Debug)]
pub(super) struct Temporary {
    pub(super) file: File,
    /// Its name (once given).
    pub(super) path: PathBuf,
    pub(super) named: bool,
}

/// Creates the temporary file of `target`: anonymous where possible, else by its name
/// (exclusively, locked; a stale one a killed run left is removed first).
pub(super) fn create_temporary(target: &Path) -> Result<Temporary> {
    let (dir, name) = split(target);
    let tmp = temporary_path(&dir, &name);
    let failed = |source| {
        Err(WriteError::Io {
            action: "create a temporary file in",
            path: dir.clone(),
            source,
        }
        .into())
    };
    match create_anonymous(&dir) {
        Ok(Some(file)) => {
            return Ok(Temporary {
                file,
                path: tmp,
                named: false,
            });
        }
        Ok(None) => {}
        Err(source) => return failed(source),
    }
    let create = || {
        fault::syscall("open", || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
        })
    };
    let file = match create() {
        // a killed run's leftover (the caller's recovery normally removed it already)
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && remove_if_stale(&tmp) => {
            create()
        }
        other => other,
    }
    .and_then(|f| {
        let locked = lock(&f);
        if locked.is_err() {
            remove_name(&tmp);
        }
        locked.map(|()| f)
    });
    match file {
        Ok(file) => Ok(Temporary {
            file,
            path: tmp,
            named: true,
        }),
        Err(source) => failed(source),
    }
}

/// An anonymous file in `dir` (`O_TMPFILE`), or `None` where the file system has none (or
/// `/proc`, through which it is named later, is missing).
fn create_anonymous(dir: &Path) -> std::io::Result<Option<File>> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    let opened = fault::syscall("open", || {
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        openat(CWD, dir, flags, Mode::from_raw_mode(0o666))
            .map(File::from)
            .map_err(Into::into)
    });
    match opened {
        Ok(f) => Ok(Some(f)),
        // (EISDIR, EINVAL, EOPNOTSUPP: no O_TMPFILE here)
        Err(e) if matches!(e.raw_os_error(), Some(21 | 22 | 95)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the temporary name `tmp` while undoing or finishing a write (held signals do not
/// interrupt it; a failure leaves the file to the next run's recovery).
pub(super) fn remove_name(tmp: &Path) {
    fault::cleaning(|| fault::syscall("unlink", || std::fs::remove_file(tmp)).ok());
}

/// The writer's exclusive `flock` on its temporary file: a named one nobody holds is stale.
fn lock(file: &File) -> std::io::Result<()> {
    fault::syscall("flock", || {
        rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(Into::into)
    })
}

/// Gives an anonymous temporary file its name (locked first), for the switch.
fn give_name(t: &mut Temporary) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    if t.named {
        return Ok(());
    }
    lock(&t.file)?;
    let fd = format!("/proc/self/fd/{}", t.file.as_raw_fd());
    let link = || {
        fault::syscall("linkat", || {
            use rustix::fs::{AtFlags, CWD, linkat};
            linkat(CWD, fd.as_str(), CWD, &t.path, AtFlags::SYMLINK_FOLLOW).map_err(Into::into)
        })
    };
    match link() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && remove_if_stale(&t.path) => {
            link()
        }
        other => other,
    }?;
    t.named = true;
    Ok(())
}

/// Writes `image` to a temporary file beside `target` and renames it over `target`. With
/// `original` (the object being replaced), the new file gets its mode, owner, group and
/// extended attributes first. On failure the temporary file is removed and `target` is as
/// it was.
pub(super) fn replace(
    image: &Image<'_>,
    input: Option<&File>,
    target: &Path,
    settings: WriteSettings,
    original: Option<&File>,
) -> Result<Method> {
    let t = create_temporary(target)?;
    let result = fill(image, input, &t.file, original, settings);
    finish(result, t, target, settings)?;
    Ok(Method::Renamed)
}

/// [`replace`] with the temporary file a [`Prefilled`] already holds: only what its copy
/// did not put in place is written.
pub(super) fn replace_prefilled(
    image: &Image<'_>,
    input: &File,
    settings: WriteSettings,
    pre: Prefilled,
) -> Result<Method> {
    let Prefilled {
        temporary: t,
        target,
        done,
        ..
    } = pre;
    let reused = prefill::reused_ranges(image, &done);
    let result = (|| {
        truncate(&t.file, image.len).map_err(io("size"))?;
        prefill::write_rest(image, &t.file, input, &reused)?;
        if settings.sync {
            sync(&t.file).map_err(io("flush"))?;
        }
        Ok(())
    })();
    finish(result, t, &target, settings)?;
    let reused: u64 = reused.iter().map(|r| r.1 - r.0).sum();
    Ok(Method::Prefilled {
        reused,
        written: image.len - reused,
    })
}

fn io(action: &'static str) -> impl Fn(std::io::Error) -> WriteError {
    move |source| WriteError::Io {
        action,
        path: PathBuf::from("the temporary file"),
        source,
    }
}

/// After the temporary file was filled (`filled`): names it, switches it into `target`'s
/// place and removes what is left under the temporary name; on failure only removes it.
fn finish(
    filled: Result<()>,
    mut t: Temporary,
    target: &Path,
    settings: WriteSettings,
) -> Result<()> {
    let result = match filled {
        Ok(()) => {
            let named = give_name(&mut t);
            drop(t.file);
            named
                .and_then(|()| switch(&t.path, target))
                .map_err(|source| {
                    WriteError::Io {
                        action: "rename over",
                        path: target.to_path_buf(),
                        source,
                    }
                    .into()
                })
        }
        Err(e) => Err(e),
    };
    match result {
        // the temporary name now holds the old object
        Ok(true) => remove_name(&t.path),
        Ok(false) => {}
        Err(e) => {
            // (an anonymous file is gone with its descriptor)
            if t.named {
                remove_name(&t.path);
            }
            return Err(e);
        }
    }
    // The rename itself is durable once the directory is flushed (best effort).
    if settings.sync
        && let Ok(d) = File::open(split(target).0)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Puts the temporary file in `target`'s place. An existing target is exchanged with it
/// (`RENAME_EXCHANGE`: the temporary name then holds the old file, returns true): ext4
/// flushes a file renamed over another one at once (`auto_da_alloc`), which costs a third of
/// a second for a `vmlinux.o`; an exchange is not flushed. Where the file system has no
/// exchange, a plain rename.
fn switch(tmp: &Path, target: &Path) -> std::io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if target.exists() {
        let exchanged = fault::syscall("renameat2", || {
            renameat_with(CWD, tmp, CWD, target, RenameFlags::EXCHANGE).map_err(Into::into)
        });
        match exchanged {
            Ok(()) => return Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(22 | 38 | 95)) => {}
            Err(e) => return Err(e),
        }
    }
    fault::syscall("rename", || std::fs::rename(tmp, target)).map(|()| false)
}

/// The temporary file's metadata and contents.
fn fill(
    image: &Image<'_>,
    input: Option<&File>,
    file: &File,
    original: Option<&File>,
    settings: WriteSettings,
) -> Result<()> {
    match input {
        Some(src) if image.len >= COPY_MIN_BYTES => {
            prepare(file, original, image.len)?;
            let whole = |from: u64, len: u64| vec![(from, len)];
            write_range(image, file, 0, image.len, Some((src, &whole)))?;
        }
        _ => {
            if let Some(orig) = original {
                keep_metadata(orig, file).map_err(io("set the owner and mode of"))?;
            }
            truncate(file, image.len).map_err(io("size"))?;
            let bytes = image.to_vec()?;
            write_at(file, &bytes, 0).map_err(io("write"))?;
        }
    }
    if settings.sync {
        sync(file).map_err(io("flush"))?;
    }
    Ok(())
}

/// A new temporary file for `len` bytes copied range by range: `original`'s metadata, its
/// length, its blocks reserved in one piece (the copy then fills them: a fifth faster for
/// the 853 MB of the Debian vmlinux.o than allocating as it goes; optional).
pub(super) fn prepare(file: &File, original: Option<&File>, len: u64) -> Result<()> {
    if let Some(orig) = original {
        keep_metadata(orig, file).map_err(io("set the owner and mode of"))?;
    }
    truncate(file, len).map_err(io("size"))?;
    let _ = fault::syscall("fallocate", || {
        use rustix::fs::{FallocateFlags, fallocate};
        fallocate(file, FallocateFlags::KEEP_SIZE, 0, len).map_err(Into::into)
    });
    Ok(())
}

/// Gives `to` the owner, group, mode and extended attributes of `from`, where permitted.
fn keep_metadata(from: &File, to: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = from.metadata()?;
    let mine = to.metadata()?;
    if meta.uid() != mine.uid() {
        // (an in-place update only comes here when the owner can be kept)
        let _ = fault::syscall("fchown", || {
            std::os::unix::fs::fchown(to, Some(meta.uid()), Some(meta.gid()))
        });
    } else if meta.gid() != mine.gid() {
        let _ = fault::syscall("fchown", || {
            std::os::unix::fs::fchown(to, None, Some(meta.gid()))
        });
    }
    // after fchown, which clears the set-id bits
    fault::syscall("fchmod", || {
        to.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
    })?;
    copy_xattrs(from, to);
    Ok(())
}

/// Copies the extended attributes (best effort: a file system without them, or a name
/// space this process may not write, is skipped).
fn copy_xattrs(from: &File, to: &File) {
    let Ok(size) = rustix::fs::flistxattr_query(from) else {
        return;
    };
    let mut names = vec![0u8; size];
    let Ok(n) = rustix::fs::flistxattr(from, &mut names[..]) else {
        return;
    };
    for name in names[..n.min(size)]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(name) = std::ffi::CString::new(name) else {
            continue;
        };
        let Ok(len) = rustix::fs::fgetxattr_query(from, name.as_c_str()) else {
            continue;
        };
        let mut value = vec![0u8; len];
        if let Ok(len) = rustix::fs::fgetxattr(from, name.as_c_str(), &mut value[..]) {
            let _ = fault::syscall("fsetxattr", || {
                rustix::fs::fsetxattr(
                    to,
                    name.as_c_str(),
                    &value[..len.min(value.len())],
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(std::io::Error::from)
            });
        }
    }
}

/// Whether a rename would keep `meta`'s owner: root may give files away; anyone else only
/// keeps files that are already theirs.
pub(super) fn can_keep_owner(meta: &std::fs::Metadata) -> bool {
    let me = rustix::process::geteuid();
    me.is_root() || me.as_raw() == meta.uid()
}

/// Removes the temporary files of `target` left by runs that no longer exist (killed before
/// their rename). Returns whether one was removed.
pub(super) fn remove_stale_temporaries(target: &Path) -> bool {
    let (dir, name) = split(target);
    remove_if_stale(&temporary_path(&dir, &name))
}

/// Removes the temporary file `tmp` unless a live run holds its lock.
fn remove_if_stale(tmp: &Path) -> bool {
    let Ok(file) = File::open(tmp) else {
        return false;
    };
    let unlocked =
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok();
    unlocked && std::fs::remove_file(tmp).is_ok()
}
