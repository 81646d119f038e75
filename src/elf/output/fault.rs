//! The test hook of the writer: every system call that changes a file goes through
//! [`syscall`], which counts it and, when a test asked, fails it, stops the writer after it
//! (as a SIGKILL would: nothing more reaches the disk, cleanup included) or raises a signal
//! before it. Also where held signals interrupt the writer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A fault to inject into the next writes, by the number (from 1) of the system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// System call N fails with an I/O error (the writer's own error handling runs).
    FailAt(u32),
    /// Nothing after system call N happens (a kill: no cleanup reaches the disk).
    StopAfter(u32),
    /// The signal is raised just before system call N.
    SignalAt(u32, i32),
}

impl Fault {
    /// `fail:N`, `stop:N` or `signal:N:SIG` (the hidden `--fault` option).
    pub fn parse(text: &str) -> Option<Fault> {
        let mut parts = text.split(':');
        let kind = parts.next()?;
        let n = parts.next()?.parse().ok()?;
        let fault = match kind {
            "fail" => Fault::FailAt(n),
            "stop" => Fault::StopAfter(n),
            "signal" => Fault::SignalAt(n, parts.next()?.parse().ok()?),
            _ => return None,
        };
        parts.next().is_none().then_some(fault)
    }
}

static PLAN: Mutex<Option<Fault>> = Mutex::new(None);
static COUNT: AtomicU32 = AtomicU32::new(0);
static STOPPED: AtomicBool = AtomicBool::new(false);
/// Set while undoing a failed write: held signals no longer interrupt.
static CLEANING: AtomicBool = AtomicBool::new(false);

/// Sets (or with `None` clears) the fault for the following writes and resets the count
/// of system calls. A test hook (also `orctool check --fault`, hidden).
#[doc(hidden)]
pub fn inject_fault(fault: Option<Fault>) -> u32 {
    *PLAN.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    STOPPED.store(false, Ordering::SeqCst);
    COUNT.swap(0, Ordering::SeqCst)
}

/// Runs one file-changing system call `f` (named `name`) under the hook.
pub(super) fn syscall<T>(
    name: &'static str,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    if STOPPED.load(Ordering::SeqCst) {
        return Err(std::io::Error::other(format!(
            "stopped before {name} (test hook)"
        )));
    }
    let plan = *PLAN.lock().unwrap_or_else(|e| e.into_inner());
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    match plan {
        Some(Fault::FailAt(k)) if k == n => {
            return Err(std::io::Error::other(format!(
                "injected failure of {name} (system call {n})"
            )));
        }
        Some(Fault::SignalAt(k, sig)) if k == n => {
            let _ = signal_hook::low_level::raise(sig);
        }
        _ => {}
    }
    if !CLEANING.load(Ordering::SeqCst) && super::signals::pending().is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "interrupted by a signal",
        ));
    }
    let result = f();
    if plan == Some(Fault::StopAfter(n)) {
        STOPPED.store(true, Ordering::SeqCst);
    }
    result
}

/// Runs `f` (undoing a failed write) with held signals no longer interrupting.
pub(super) fn cleaning<T>(f: impl FnOnce() -> T) -> T {
    CLEANING.store(true, Ordering::SeqCst);
    let r = f();
    CLEANING.store(false, Ordering::SeqCst);
    r
}
