//! One finding as data: where it is and what it is; its `Display` is objtool's text (the
//! part after `FILE: warning: orctool: `).

use std::fmt;

use crate::ids::{SecId, SymId};

/// Where a finding is: objtool's `offstr()` as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub section: SecId,
    pub section_name: String,
    /// Offset in the section.
    pub offset: u64,
    /// The function containing the offset (else any symbol containing it), if one does.
    pub function: Option<LocatedSymbol>,
    /// `--sec-address`: the section form follows the symbol form in parentheses.
    pub sec_address: bool,
}

/// The symbol of a [`Location`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedSymbol {
    pub id: SymId,
    pub name: String,
    /// The location's offset from the symbol's start.
    pub offset: u64,
}

impl fmt::Display for Location {
    /// `func+0x12`, `sym+0x4`, or `sec+0x40`; with `--sec-address`,
    /// `func+0x12 (sec+0x40)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.function {
            Some(s) if self.sec_address => write!(
                f,
                "{}+0x{:x} ({}+0x{:x})",
                s.name, s.offset, self.section_name, self.offset
            ),
            Some(s) => write!(f, "{}+0x{:x}", s.name, s.offset),
            None => write!(f, "{}+0x{:x}", self.section_name, self.offset),
        }
    }
}

/// A CFI location as objtool prints it in a mismatch: base register number (or negative
/// pseudo-base) and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CfiLoc {
    pub base: i8,
    pub offset: i32,
}

impl fmt::Display for CfiLoc {
    /// `4+8`, `-1+0`: objtool's `%d%+d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:+}", self.base, self.offset)
    }
}

/// Why two states differ at a merge point (objtool's `insn_cfi_match()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateMismatch {
    Cfa(CfiLoc, CfiLoc),
    Reg(usize, CfiLoc, CfiLoc),
    Type(u8, u8),
    /// (drap, drap register, drap offset) of each.
    Drap((bool, i8, i32), (bool, i8, i32)),
}

impl fmt::Display for StateMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateMismatch::Cfa(a, b) => write!(f, "cfa1={a} cfa2={b}"),
            StateMismatch::Reg(i, a, b) => write!(f, "reg1[{i}]={a} reg2[{i}]={b}"),
            StateMismatch::Type(a, b) => write!(f, "type1={a} type2={b}"),
            StateMismatch::Drap(a, b) => write!(
                f,
                "drap1={}({},{}) drap2={}({},{})",
                u8::from(a.0),
                a.1,
                a.2,
                u8::from(b.0),
                b.1,
                b.2
            ),
        }
    }
}

/// What a finding is: one variant per warning of the walk (objtool's `validate_branch()`
/// and friends) and orctool's own; the `Display` is objtool's wording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// `stack state mismatch: cfa1=… cfa2=…`
    StackStateMismatch(StateMismatch),
    CfiMissing,
    /// `FUNC() falls through to next function NEXT()`
    FallsThrough {
        function: String,
        next: String,
    },
    ValidatingIgnoredFunction,
    /// `SECTION: unexpected end of section`
    UnexpectedEndOfSection {
        section: String,
    },
    /// A stack operation the CFI rules cannot follow (`update_cfi_state()`'s messages).
    StackOperation(&'static str),
    PushfStackExhausted,
    UnsupportedInstructionInCallable,
    RecursiveUaccessEnable,
    RedundantUaccessDisable,
    UaccessSafeDisablesUaccess,
    RecursiveStd,
    RedundantCld,
    CallWithoutFramePointer,
    /// `call to DEST() with UACCESS enabled` (`{dynamic}` when the destination is unknown)
    CallWithUaccess {
        dest: Option<String>,
    },
    /// `call to DEST() with DF set`
    CallWithDf {
        dest: Option<String>,
    },
    SiblingCallWithModifiedFrame,
    ReturnWithInstrumentation,
    ReturnWithUaccess,
    ReturnWithoutUaccessFromSafe,
    ReturnWithDf,
    ReturnWithModifiedFrame,
    BpScratch,
    NoCfiSaveForRestore,
    CfiSaveRestoreCombo,
    /// `stack layout conflict in alternatives: LOC` (at the original's first instruction;
    /// `second` is the instruction that disagreed).
    StackLayoutConflict {
        second: Location,
    },
    /// `FUNC() is missing a __noreturn annotation`
    MissingNoreturn {
        function: String,
    },
    UnreachableInstruction,
    /// `FUNC() is missing an ELF size annotation`
    MissingSize {
        function: String,
    },
    /// A backtrace line: `(alt)`, `(branch)`, `<=== (sym)`, `<=== (hint)`.
    Backtrace(&'static str),
    /// orctool's explanation of the finding before it (`--verbose`).
    Explanation(String),
    /// The place of a conflict's explanation, filled in after the walk.
    PendingExplanation,
    /// A warning of the model's build passes, decoding, ORC generation or the unwind check,
    /// in objtool's words (these have no variant of their own yet).
    Message(String),
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FindingKind::*;
        let fixed = match self {
            StackStateMismatch(m) => return write!(f, "stack state mismatch: {m}"),
            FallsThrough { function, next } => {
                return write!(f, "{function}() falls through to next function {next}()");
            }
            UnexpectedEndOfSection { section } => {
                return write!(f, "{section}: unexpected end of section");
            }
            CallWithUaccess { dest } => {
                let d = dest.as_deref().unwrap_or("{dynamic}");
                return write!(f, "call to {d}() with UACCESS enabled");
            }
            CallWithDf { dest } => {
                let d = dest.as_deref().unwrap_or("{dynamic}");
                return write!(f, "call to {d}() with DF set");
            }
            StackLayoutConflict { second } => {
                return write!(f, "stack layout conflict in alternatives: {second}");
            }
            MissingNoreturn { function } => {
                return write!(f, "{function}() is missing a __noreturn annotation");
            }
            MissingSize { function } => {
                return write!(f, "{function}() is missing an ELF size annotation");
            }
            StackOperation(m) | Backtrace(m) => m,
            Explanation(m) | Message(m) => m.as_str(),
            PendingExplanation => "",
            CfiMissing => "CFI missing",
            ValidatingIgnoredFunction => "BUG: why am I validating an ignored function?",
            PushfStackExhausted => "PUSHF stack exhausted",
            UnsupportedInstructionInCallable => "unsupported instruction in callable function",
            RecursiveUaccessEnable => "recursive UACCESS enable",
            RedundantUaccessDisable => "redundant UACCESS disable",
            UaccessSafeDisablesUaccess => "UACCESS-safe disables UACCESS",
            RecursiveStd => "recursive STD",
            RedundantCld => "redundant CLD",
            CallWithoutFramePointer => "call without frame pointer save/setup",
            SiblingCallWithModifiedFrame => {
                "sibling call from callable instruction with modified stack frame"
            }
            ReturnWithInstrumentation => "return with instrumentation enabled",
            ReturnWithUaccess => "return with UACCESS enabled",
            ReturnWithoutUaccessFromSafe => {
                "return with UACCESS disabled from a UACCESS-safe function"
            }
            ReturnWithDf => "return with DF set",
            ReturnWithModifiedFrame => "return with modified stack frame",
            BpScratch => "BP used as a scratch register",
            NoCfiSaveForRestore => "no corresponding CFI save for CFI restore",
            CfiSaveRestoreCombo => {
                "objtool isn't smart enough to handle this CFI save/restore combo"
            }
            UnreachableInstruction => "unreachable instruction",
        };
        f.write_str(fixed)
    }
}

impl From<String> for FindingKind {
    fn from(s: String) -> Self {
        FindingKind::Message(s)
    }
}

impl From<&String> for FindingKind {
    fn from(s: &String) -> Self {
        FindingKind::Message(s.clone())
    }
}

impl From<&str> for FindingKind {
    fn from(s: &str) -> Self {
        FindingKind::Message(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(function: Option<(&str, u64)>, sec_address: bool) -> Location {
        Location {
            section: SecId(3),
            section_name: ".text".into(),
            offset: 0x40,
            function: function.map(|(n, o)| LocatedSymbol {
                id: SymId(7),
                name: n.into(),
                offset: o,
            }),
            sec_address,
        }
    }

    #[test]
    fn location_reads_as_objtool_offstr() {
        assert_eq!(loc(Some(("f", 0x12)), false).to_string(), "f+0x12");
        assert_eq!(
            loc(Some(("f", 0x12)), true).to_string(),
            "f+0x12 (.text+0x40)"
        );
        assert_eq!(loc(None, false).to_string(), ".text+0x40");
    }

    #[test]
    fn kinds_read_as_objtool_wording() {
        let m = StateMismatch::Cfa(
            CfiLoc { base: 4, offset: 8 },
            CfiLoc {
                base: 5,
                offset: -16,
            },
        );
        assert_eq!(
            FindingKind::StackStateMismatch(m).to_string(),
            "stack state mismatch: cfa1=4+8 cfa2=5-16"
        );
        assert_eq!(
            FindingKind::CallWithDf { dest: None }.to_string(),
            "call to {dynamic}() with DF set"
        );
        assert_eq!(
            FindingKind::StackLayoutConflict {
                second: loc(Some(("g", 4)), false)
            }
            .to_string(),
            "stack layout conflict in alternatives: g+0x4"
        );
        assert_eq!(
            FindingKind::MissingSize {
                function: "x".into()
            }
            .to_string(),
            "x() is missing an ELF size annotation"
        );
    }
}
