//! Verdicts, counts and the per-file report.

use std::fmt::Write as _;

use super::image::{Image, Loc};

/// Why the truth at an instruction cannot be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unprovable {
    /// Past an unwind hint: only the hint defines the state.
    Hint,
    /// The table's entry is a `regs` frame, which only a hint produces.
    RegsFrame,
    /// No path from the function's entry reaches it (an indirect jump without a table, code
    /// after a noreturn call, padding).
    Unreached,
    /// Paths bring different stack states (a loop moving rsp, a noreturn call the machine
    /// cannot see).
    Conflict,
    /// rsp is not known relative to the frame (stack realignment, variable allocation).
    SpUnknown,
    /// The entry takes the CFA from a register the machine does not follow (r10, r13, di,
    /// dx, an indirect one: DRAP and entry code).
    OtherCfaReg,
    /// STACK_FRAME_NON_STANDARD: the table declares the function unknown.
    NonStandard,
    /// rbp was loaded from memory outside the frame (a saved context restored): whether it
    /// is the caller's cannot be known.
    RbpReloaded,
    /// A linked image's assembly function (no compiler CFI covers it) where the machine
    /// disagrees with the table: its unwind hints are not in the image (`.discard`).
    AsmNoHints,
    /// A NOP reached only past a call (or `ud2`) whose entry is undefined: padding after a
    /// callee that may not return (an external noreturn function the machine cannot know).
    DeadPadding,
}

impl Unprovable {
    pub const ALL: [Unprovable; 10] = [
        Unprovable::Hint,
        Unprovable::RegsFrame,
        Unprovable::Unreached,
        Unprovable::Conflict,
        Unprovable::SpUnknown,
        Unprovable::OtherCfaReg,
        Unprovable::NonStandard,
        Unprovable::RbpReloaded,
        Unprovable::AsmNoHints,
        Unprovable::DeadPadding,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Unprovable::Hint => "unwind hint",
            Unprovable::RegsFrame => "regs frame",
            Unprovable::Unreached => "unreached",
            Unprovable::Conflict => "conflicting paths",
            Unprovable::SpUnknown => "sp unknown",
            Unprovable::OtherCfaReg => "other CFA register",
            Unprovable::NonStandard => "non-standard function",
            Unprovable::RbpReloaded => "rbp reloaded",
            Unprovable::AsmNoHints => "assembly, hints not in the image",
            Unprovable::DeadPadding => "padding after a call that may not return",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Right,
    Wrong(&'static str),
    Unprovable(Unprovable),
}

/// One wrong instruction.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Where it runs.
    pub at: Loc,
    /// The `.altinstructions` entry whose replacement it belongs to.
    pub alt: Option<u32>,
    pub why: String,
    pub expected: String,
    pub found: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub checked: u64,
    pub right: u64,
    pub wrong: u64,
    pub unprovable: [u64; Unprovable::ALL.len()],
    pub findings: Vec<Finding>,
    /// With `--verbose`: every unprovable instruction and why.
    pub notes: Vec<(Loc, Unprovable)>,
    /// With `--dwarf`: the machine's state at each instruction of the functions' own text
    /// where an ORC entry starts.
    pub truth: Vec<(Loc, super::machine::State)>,
}

impl Tally {
    pub fn add(&mut self, v: &Verdict) {
        self.checked += 1;
        match v {
            Verdict::Right => self.right += 1,
            Verdict::Wrong(_) => self.wrong += 1,
            Verdict::Unprovable(u) => self.unprovable[*u as usize] += 1,
        }
    }

    pub fn merge(&mut self, o: Tally) {
        self.checked += o.checked;
        self.right += o.right;
        self.wrong += o.wrong;
        for (a, b) in self.unprovable.iter_mut().zip(o.unprovable) {
            *a += b;
        }
        self.findings.extend(o.findings);
        self.notes.extend(o.notes);
        self.truth.extend(o.truth);
    }

    pub fn unprovable_total(&self) -> u64 {
        self.unprovable.iter().sum()
    }

    /// `checked N, right N, wrong N, unprovable N (hint N, …)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "checked {}, right {}, wrong {}, unprovable {}",
            self.checked,
            self.right,
            self.wrong,
            self.unprovable_total()
        );
        let parts: Vec<String> = Unprovable::ALL
            .iter()
            .filter(|u| self.unprovable[**u as usize] > 0)
            .map(|u| format!("{} {}", u.name(), self.unprovable[*u as usize]))
            .collect();
        if !parts.is_empty() {
            let _ = write!(s, " ({})", parts.join(", "));
        }
        s
    }
}

/// The lines of a file's report: each wrong instruction, then the summary.
pub fn render(name: &str, img: &Image<'_>, t: &Tally) -> String {
    let mut out = String::new();
    let mut findings = t.findings.clone();
    findings.sort_by_key(|f| (f.at, f.alt));
    for f in &findings {
        let alt = match f.alt {
            Some(k) => format!(" (alternative {k})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{name}: wrong: {}{alt} [0x{:x}]: {}: expected {}, table has {}",
            img.describe(f.at),
            img.addr(f.at),
            f.why,
            f.expected,
            f.found.as_deref().unwrap_or("no entry"),
        );
    }
    let mut notes = t.notes.clone();
    notes.sort();
    for (at, why) in notes {
        let _ = writeln!(
            out,
            "{name}: unprovable: {} [0x{:x}]: {}",
            img.describe(at),
            img.addr(at),
            why.name()
        );
    }
    let _ = writeln!(out, "{name}: {}", t.summary());
    out
}
