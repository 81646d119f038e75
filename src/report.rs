//! Findings: objtool's warnings as data, with its once-per-symbol rule, printed in objtool's
//! layout with orctool's name: `FILE: warning: orctool: LOC: message`.

use std::fmt::Write as _;

use crate::cfg::symbols::{NO_SYM, SymIdx};

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
    pub fn warn_insn(&mut self, owner: SymIdx, loc: &str, msg: &str) {
        let slot = if owner == NO_SYM || !self.dedup {
            None
        } else {
            self.warned.get_mut(owner as usize)
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

    pub fn is_warned(&self, owner: SymIdx) -> bool {
        owner != NO_SYM && self.warned.get(owner as usize).copied().unwrap_or(false)
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
                Kind::Detail if verbose => {
                    let _ = writeln!(out, "{file}: warning: orctool:   {}", l.text);
                }
                Kind::Backtrace | Kind::Detail => {}
            }
        }
        out
    }

    pub fn warning_count(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.kind == Kind::Warning)
            .count()
    }
}
