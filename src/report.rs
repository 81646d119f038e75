//! Findings: objtool's warnings as data, with its once-per-symbol rule, printed in objtool's
//! layout with orctool's name: `FILE: warning: orctool: LOC: message`.

use std::fmt::Write as _;

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
    /// The place of the explanation of the `stack layout conflict in alternatives`
    /// warning before it: `text` is the location until `alt::explain` fills it in after
    /// the walk (it becomes a [`Kind::Detail`]).
    ConflictDetail,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub kind: Kind,
    /// The text after `orctool: ` (for backtrace lines, after the two extra spaces).
    pub text: String,
}

/// The sink every stage reports into.
pub struct Findings {
    pub lines: Vec<Line>,
    /// objtool's `sym->warned`: one instruction warning per symbol.
    warned: Vec<bool>,
    /// objtool 6.1 had no such rule (`WARN_FUNC` always prints).
    pub dedup: bool,
}

impl Findings {
    pub fn new(nsyms: usize) -> Self {
        Findings {
            lines: Vec::new(),
            warned: vec![false; nsyms],
            dedup: true,
        }
    }

    /// A plain warning (never suppressed).
    pub fn warn(&mut self, text: impl Into<String>) {
        self.lines.push(Line {
            kind: Kind::Warning,
            text: text.into(),
        });
    }

    /// An instruction warning: printed unless the owner symbol already has one; marks it.
    pub fn warn_insn(&mut self, owner: Option<SymId>, loc: &str, msg: &str) {
        let slot = match owner {
            Some(s) if self.dedup => self.warned.get_mut(s.index()),
            _ => None,
        };
        match slot {
            Some(w) if *w => {}
            Some(w) => {
                *w = true;
                self.lines.push(Line {
                    kind: Kind::Warning,
                    text: format!("{loc}: {msg}"),
                });
            }
            None => self.lines.push(Line {
                kind: Kind::Warning,
                text: format!("{loc}: {msg}"),
            }),
        }
    }

    pub fn backtrace(&mut self, loc: &str, what: &str) {
        self.lines.push(Line {
            kind: Kind::Backtrace,
            text: format!("{loc}: {what}"),
        });
    }

    pub fn detail(&mut self, loc: &str, text: &str) {
        self.lines.push(Line {
            kind: Kind::Detail,
            text: format!("{loc}: {text}"),
        });
    }

    pub fn explain_later(&mut self, loc: &str) {
        self.lines.push(Line {
            kind: Kind::ConflictDetail,
            text: loc.to_owned(),
        });
    }

    pub fn is_warned(&self, owner: Option<SymId>) -> bool {
        owner.is_some_and(|s| self.warned.get(s.index()).copied().unwrap_or(false))
    }

    /// The text as printed on stderr for `file`.
    pub fn render(&self, file: &str, backtrace: bool, verbose: bool) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l.kind {
                Kind::Warning => {
                    let _ = writeln!(out, "{file}: warning: orctool: {}", l.text);
                }
                Kind::Backtrace if backtrace || verbose => {
                    let _ = writeln!(out, "{file}: warning: orctool:   {}", l.text);
                }
                Kind::Detail | Kind::ConflictDetail if verbose => {
                    let _ = writeln!(out, "{file}: warning: orctool:   {}", l.text);
                }
                Kind::Backtrace | Kind::Detail | Kind::ConflictDetail => {}
            }
        }
        out
    }

    /// Appends what a [`Local`] sink collected, as if it had been reported here.
    pub fn absorb(&mut self, lines: Vec<Line>, warned: &[SymId]) {
        self.lines.extend(lines);
        for &s in warned {
            if let Some(w) = self.warned.get_mut(s.index()) {
                *w = true;
            }
        }
    }

    pub fn warning_count(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.kind == Kind::Warning)
            .count()
    }
}

/// Where a stage reports: the whole file's [`Findings`], or a [`Local`] sink of one piece of
/// work done beside others.
pub trait Report {
    fn warn(&mut self, text: String);
    fn warn_insn(&mut self, owner: Option<SymId>, loc: &str, msg: &str);
    fn backtrace(&mut self, loc: &str, what: &str);
    fn detail(&mut self, loc: &str, text: &str);
    /// A place for the explanation of a conflict, filled in after the walk.
    fn explain_later(&mut self, loc: &str);
    fn is_warned(&self, owner: Option<SymId>) -> bool;
}

impl Report for Findings {
    fn warn(&mut self, text: String) {
        Findings::warn(self, text);
    }
    fn warn_insn(&mut self, owner: Option<SymId>, loc: &str, msg: &str) {
        Findings::warn_insn(self, owner, loc, msg);
    }
    fn backtrace(&mut self, loc: &str, what: &str) {
        Findings::backtrace(self, loc, what);
    }
    fn detail(&mut self, loc: &str, text: &str) {
        Findings::detail(self, loc, text);
    }
    fn explain_later(&mut self, loc: &str) {
        Findings::explain_later(self, loc);
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
    pub lines: Vec<Line>,
    pub warned: Vec<SymId>,
}

impl<'a> Local<'a> {
    pub fn new(base: &'a Findings) -> Self {
        Local {
            base,
            lines: Vec::new(),
            warned: Vec::new(),
        }
    }

    fn push(&mut self, kind: Kind, text: String) {
        self.lines.push(Line { kind, text });
    }
}

impl Report for Local<'_> {
    fn warn(&mut self, text: String) {
        self.push(Kind::Warning, text);
    }
    fn warn_insn(&mut self, owner: Option<SymId>, loc: &str, msg: &str) {
        if let Some(s) = owner.filter(|s| self.base.dedup && s.index() < self.base.warned.len()) {
            if self.is_warned(owner) {
                return;
            }
            self.warned.push(s);
        }
        self.push(Kind::Warning, format!("{loc}: {msg}"));
    }
    fn backtrace(&mut self, loc: &str, what: &str) {
        self.push(Kind::Backtrace, format!("{loc}: {what}"));
    }
    fn detail(&mut self, loc: &str, text: &str) {
        self.push(Kind::Detail, format!("{loc}: {text}"));
    }
    fn explain_later(&mut self, loc: &str) {
        self.push(Kind::ConflictDetail, loc.to_owned());
    }
    fn is_warned(&self, owner: Option<SymId>) -> bool {
        self.base.is_warned(owner) || owner.is_some_and(|s| self.warned.contains(&s))
    }
}
