//! SIGINT, SIGTERM and SIGHUP while a file is being written: held (the write stops at its
//! next system call and undoes itself), then the process dies of the signal as it would
//! have without orctool's handler. Outside a write the default action runs at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

struct State {
    /// The signal received during a write (0: none).
    pending: Arc<AtomicUsize>,
    /// True outside a write: the signal's default action runs at once.
    default: Arc<AtomicBool>,
}

static STATE: OnceLock<Option<State>> = OnceLock::new();

fn state() -> Option<&'static State> {
    STATE
        .get_or_init(|| {
            let pending = Arc::new(AtomicUsize::new(0));
            let default = Arc::new(AtomicBool::new(true));
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal_hook::flag::register_conditional_default(sig, default.clone()).ok()?;
                signal_hook::flag::register_usize(sig, pending.clone(), sig as usize).ok()?;
            }
            Some(State { pending, default })
        })
        .as_ref()
}

/// The signal held since the write began, if any.
pub(super) fn pending() -> Option<i32> {
    let s = STATE.get()?.as_ref()?;
    match s.pending.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig as i32),
    }
}

/// Runs a write with the signals held; when one came, dies of it after the write (which
/// then failed and undid itself).
pub(super) fn holding<T>(f: impl FnOnce() -> T) -> T {
    let state = state();
    if let Some(s) = state {
        s.default.store(false, Ordering::SeqCst);
    }
    let result = f();
    if let Some(s) = state {
        s.default.store(true, Ordering::SeqCst);
        let sig = s.pending.swap(0, Ordering::SeqCst);
        if sig != 0 {
            let _ = signal_hook::low_level::emulate_default_handler(sig as i32);
        }
    }
    result
}
