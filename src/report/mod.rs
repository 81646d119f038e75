//! Findings: objtool's warnings as data ([`finding`]), with its once-per-symbol rule,
//! printed in objtool's layout with orctool's name: `FILE: warning: orctool: LOC: message`.

pub mod finding;

use std::fmt::{self, Write as _};

pub use finding::{CfiLoc, FindingKind, LocatedSymbol, Location, SectionOffset, StateMismatch};

use crate::ids::SymId;

/// What a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A warning (`WARN`/`WARN_INSN`).
    Warning,
    /// A backtrace line (`BT_INSN`), printed with `--backtrace`.
    Backtrace,
    /// orctool's explanation of the warning before it, printed with `--verbose`.
    Detail,
}

/// One finding: a line of objtool's output as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub at: Option<Location>,
    pub what: FindingKind,
}

impl fmt::Display for Finding {
    /// The text after `orctool: ` (for backtrace and detail lines, after two more spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{at}: {}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

/// The sink every stage reports into.
pub struct Findings {
    findings: Vec<Finding>,
    /// objtool's `sym->warned`: one instruction warning per symbol.
    warned: Vec<bool>,
    /// objtool 6.1 had no such rule (`WARN_FUNC` always prints).
    pub dedup: bool,
}

impl Findings {
    pub fn new(nsyms: usize) -> Self {
        Findings {
            findings: Vec::new(),
            warned: vec![false; nsyms],
            dedup: true,
        }
    }

    /// Everything reported, in objtool's order.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The findings, to change in place (the conflicts' explanations are filled in after
    /// the walk).
    pub fn findings_mut(&mut self) -> &mut [Finding] {
        &mut self.findings
    }

    fn push(&mut self, kind: Kind, at: Option<Location>, what: FindingKind) {
        self.findings.push(Finding { kind, at, what });
    }

    /// A plain warning (never suppressed).
    pub fn warn(&mut self, what: impl Into<FindingKind>) {
        self.push(Kind::Warning, None, what.into());
    }

    /// A plain warning at a location (never suppressed).
    pub fn warn_at(&mut self, at: Location, what: impl Into<FindingKind>) {
        self.push(Kind::Warning, Some(at), what.into());
    }

    /// An instruction warning: printed unless the owner symbol already has one; marks it.
    pub fn warn_insn(&mut self, owner: Option<SymId>, at: Location, what: FindingKind) {
        let slot = match owner {
            Some(s) if self.dedup => self.warned.get_mut(s.index()),
            _ => None,
        };
        match slot {
            Some(w) if *w => {}
            Some(w) => {
                *w = true;
                self.push(Kind::Warning, Some(at), what);
            }
            None => self.push(Kind::Warning, Some(at), what),
        }
    }

    pub fn backtrace(&mut self, at: Location, what: &'static str) {
        self.push(Kind::Backtrace, Some(at), FindingKind::Backtrace(what));
    }

    pub fn explain_later(&mut self, at: Location) {
        self.push(Kind::Detail, Some(at), FindingKind::PendingExplanation);
    }

    pub fn is_warned(&self, owner: Option<SymId>) -> bool {
        owner.is_some_and(|s| self.warned.get(s.index()).copied().unwrap_or(false))
    }

    /// The text as printed on stderr for `file`.
    pub fn render(&self, file: &str, backtrace: bool, verbose: bool) -> String {
        let mut out = String::new();
        for l in &self.findings {
            match l.kind {
                Kind::Warning => {
                    let _ = writeln!(out, "{file}: warning: orctool: {l}");
                }
                Kind::Backtrace if backtrace || verbose => {
                    let _ = writeln!(out, "{file}: warning: orctool:   {l}");
                }
                Kind::Detail if verbose => {
                    let _ = writeln!(out, "{file}: warning: orctool:   {l}");
                }
                Kind::Backtrace | Kind::Detail => {}
            }
        }
        out
    }

    /// Appends what a [`Local`] sink collected, as if it had been reported here.
    pub fn absorb(&mut self, findings: Vec<Finding>, warned: &[SymId]) {
        self.findings.extend(findings);
        for &s in warned {
            if let Some(w) = self.warned.get_mut(s.index()) {
                *w = true;
            }
        }
    }

    pub fn warning_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|l| l.kind == Kind::Warning)
            .count()
    }
}

/// Where a stage reports: the whole file's [`Findings`], or a [`Local`] sink of one piece of
/// work done beside others.
pub trait Report {
    fn warn(&mut self, what: FindingKind);
    fn warn_insn(&mut self, owner: Option<SymId>, at: Location, what: FindingKind);
    fn backtrace(&mut self, at: Location, what: &'static str);
    /// A place for the explanation of a conflict, filled in after the walk.
    fn explain_later(&mut self, at: Location);
    fn is_warned(&self, owner: Option<SymId>) -> bool;
}

impl Report for Findings {
    fn warn(&mut self, what: FindingKind) {
        Findings::warn(self, what);
    }
    fn warn_insn(&mut self, owner: Option<SymId>, at: Location, what: FindingKind) {
        Findings::warn_insn(self, owner, at, what);
    }
    fn backtrace(&mut self, at: Location, what: &'static str) {
        Findings::backtrace(self, at, what);
    }
    fn explain_later(&mut self, at: Location) {
        Findings::explain_later(self, at);
    }
    fn is_warned(&self, owner: Option<SymId>) -> bool {
        Findings::is_warned(self, owner)
    }
}

/// The findings of one piece of work run beside others, to be appended to the file's
/// [`Findings`] in order ([`Findings::absorb`]). It sees the once-per-symbol marks made
/// before it started plus its own; the work must only warn about symbols no other
/// concurrent piece warns about.
pub struct Local<'a> {
    base: &'a Findings,
    pub findings: Vec<Finding>,
    pub warned: Vec<SymId>,
}

impl<'a> Local<'a> {
    pub fn new(base: &'a Findings) -> Self {
        Local {
            base,
            findings: Vec::new(),
            warned: Vec::new(),
        }
    }

    fn push(&mut self, kind: Kind, at: Option<Location>, what: FindingKind) {
        self.findings.push(Finding { kind, at, what });
    }
}

impl Report for Local<'_> {
    fn warn(&mut self, what: FindingKind) {
        self.push(Kind::Warning, None, what);
    }
    fn warn_insn(&mut self, owner: Option<SymId>, at: Location, what: FindingKind) {
        if let Some(s) = owner.filter(|s| self.base.dedup && s.index() < self.base.warned.len()) {
            if self.is_warned(owner) {
                return;
            }
            self.warned.push(s);
        }
        self.push(Kind::Warning, Some(at), what);
    }
    fn backtrace(&mut self, at: Location, what: &'static str) {
        self.push(Kind::Backtrace, Some(at), FindingKind::Backtrace(what));
    }
    fn explain_later(&mut self, at: Location) {
        self.push(Kind::Detail, Some(at), FindingKind::PendingExplanation);
    }
    fn is_warned(&self, owner: Option<SymId>) -> bool {
        self.base.is_warned(owner) || owner.is_some_and(|s| self.warned.contains(&s))
    }
}
