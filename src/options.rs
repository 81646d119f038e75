//! What a run checks and produces: a plain struct passed by reference (objtool's global
//! `opts`).

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--stackval`: the frame-pointer rules.
    pub stackval: bool,
    /// `--orc`: generate ORC.
    pub orc: bool,
    /// `--uaccess`: SMAP rules.
    pub uaccess: bool,
    pub module: bool,
    pub link: bool,
    pub noinstr: bool,
    pub ibt: bool,
    pub mcount: bool,
    pub mnop: bool,
    /// `--retpoline`: indirect branch rules and `.retpoline_sites`.
    pub retpoline: bool,
    /// `--rethunk`: return thunk rules and `.return_sites` (with `--hacks=skylake`,
    /// `.call_sites`).
    pub rethunk: bool,
    /// `--unret`: entry untrain-return validation.
    pub unret: bool,
    /// `--sls`: straight-line-speculation rules.
    pub sls: bool,
    /// `--static-call`: `.static_call_sites`.
    pub static_call: bool,
    /// `--cfi`: `.cfi_sites` (kCFI preambles).
    pub cfi: bool,
    /// `--backup`: keep the input as `FILE.orig` before changing it.
    pub backup: bool,
    /// `--hacks=jump_label`.
    pub hack_jump_label: bool,
    /// `--hacks=noinstr`.
    pub hack_noinstr: bool,
    /// `--hacks=skylake`.
    pub hack_skylake: bool,
    pub no_unreachable: bool,
    pub sec_address: bool,
    pub backtrace: bool,
    /// `--verbose`: backtraces and orctool's explanations.
    pub verbose: bool,
    /// Check that every alternative unwinds correctly with the merged table (orctool's
    /// own check; on by default).
    pub alt_unwind_check: bool,
    /// `--prefix=N`.
    pub prefix: Option<u32>,
    /// Read `.altinstructions` with the 12-byte layout of kernels before 6.3.
    pub alt_abi_6_1: bool,
    /// Follow objtool 6.1's rules where they differ from 6.12's and orctool knows them
    /// (so far: its noreturn list). For objects of kernels before 6.4.
    pub rules_6_1: bool,
    /// Run every parallel stage whatever the object's size (normally small objects run on
    /// one thread); for tests of the parallel paths.
    pub force_parallel: bool,
    /// Measure resident memory at each phase for `--stats`.
    pub stats: bool,
}

impl Options {
    /// Whether an action that can add sections or patch bytes runs (besides ORC).
    pub fn may_change_object(&self) -> bool {
        self.retpoline
            || self.rethunk
            || self.static_call
            || self.cfi
            || self.mcount
            || self.ibt
            || self.prefix.is_some()
            || self.hack_jump_label
            || self.hack_noinstr
    }

    /// Whether an action of `crate::actions` runs (anything besides the walk and ORC).
    pub fn any_action_besides_orc(&self) -> bool {
        self.retpoline
            || self.rethunk
            || self.unret
            || self.sls
            || self.static_call
            || self.cfi
            || self.mcount
            || self.ibt
            || self.prefix.is_some()
    }
}
