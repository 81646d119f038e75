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
    // The model's build passes (objtool's `decode_sections()`).
    /// `bad .discard.annotate_insn entry: N of type T`
    BadAnnotateInsnEntry {
        index: usize,
        ty: u32,
    },
    RetpolineSafeNotIndirect,
    IntraFunctionCallNotDirect,
    /// `can't find call dest at SEC+0xOFF`
    CantFindCallDest {
        at: SectionOffset,
    },
    /// `unexpected relocation symbol type in RELA` (`: TYPE` when given)
    UnexpectedRelocSymbolType {
        rela_section: String,
        ty: Option<u8>,
    },
    /// An annotation that points at no instruction (objtool's message for its section).
    AnnotationWithoutInstruction(&'static str),
    BadNoendbrEntry,
    MissingUnwindHintsRela,
    UnwindHintSizeMismatch,
    /// `can't find reloc for unwind_hints[N]`
    UnwindHintWithoutReloc {
        index: usize,
    },
    /// `can't find insn for unwind_hints[N]`
    UnwindHintWithoutInstruction {
        index: usize,
    },
    IretRegsWithoutEndbr,
    /// `unsupported unwind_hint sp base reg N`
    UnsupportedHintSpReg {
        reg: u8,
    },
    NoSwitchJumpTable,
    /// `can't find jump dest instruction at SEC+0xOFF`
    CantFindJumpDest {
        at: SectionOffset,
    },
    /// `can't find reachable insn at SEC+0xOFF`
    CantFindReachableInsn {
        at: SectionOffset,
    },
    /// `FUNC(): STT_FUNC at end of section`
    FuncAtEndOfSection {
        function: String,
    },
    /// `FUNC(): can't find starting instruction`
    NoStartingInstruction {
        function: String,
    },
    /// `SECTION size not a multiple of N`
    SpecialSizeNotMultiple {
        section: String,
        size: usize,
    },
    /// `can't find orig reloc` / `new` / `key` (at the special section entry's field)
    SpecialWithoutReloc {
        field: &'static str,
    },
    /// `special: can't find orig instruction` / `new`
    SpecialWithoutInstruction {
        field: &'static str,
    },
    EmptyAlternative,
    /// `weirdly overlapping alternative! LEN != ORIG_LEN`
    WeirdlyOverlapping {
        len: u64,
        orig_len: u8,
    },
    NoAlternativeJumpDest,
    NoLastNewAlternativeInstruction,
    UnsupportedJumpLabelInstruction,
    TailCallToFentry,
    UnannotatedIntraFunctionCall,
    UnsupportedCallToNonFunction,
    /// `can't find call dest symbol at SEC+0xOFF`
    CantFindCallDestSymbol {
        at: SectionOffset,
    },
    // Decoding.
    /// `can't decode instruction at SEC:0xOFF`
    CantDecode {
        section: String,
        offset: u64,
    },
    /// `invalid LEA encoding at SEC:0xOFF`
    InvalidLea {
        section: String,
        offset: u64,
    },
    /// `ENQCMD instruction at SEC:OFF` (objtool prints no `0x` here)
    Enqcmd {
        section: String,
        offset: u64,
    },
    /// `notrack prefix found at SEC:0xOFF`
    NotrackPrefix {
        section: String,
        offset: u64,
    },
    // ORC generation (objtool's `init_orc_entry()`).
    /// `unknown unwind hint type N`
    UnknownHintType(u8),
    /// `unknown CFA base reg N`
    UnknownCfaBase(i8),
    /// `unknown BP base reg N`
    UnknownBpBase(i8),
    /// `file already has .orc_unwind section, skipping`
    OrcAlreadyPresent,
    /// orctool's own check (`orc::unwind_check`): the return address of a call in an
    /// alternative is unwound with another entry than the call's own state; the entries
    /// in objtool's dump format.
    AltReturnAddress {
        call: Location,
        stream: String,
        /// The group offset of the slot the unwinder uses (`None`: the entry before the
        /// group).
        slot: Option<usize>,
        got: String,
        want: String,
    },
    // The site-list actions (`--retpoline`, `--rethunk`, `--static-call`, `--cfi`,
    // `--mcount`; src/actions/): objtool's `validate_retpoline()` and the `create_*`
    // functions of the sections.
    /// `indirect jump found in MITIGATION_RETPOLINE build` (`call` when not a jump)
    IndirectInRetpolineBuild {
        jump: bool,
    },
    /// `'naked' return found in MITIGATION_RETHUNK build`
    NakedReturn,
    /// `file already has .retpoline_sites, skipping` and the like (objtool's words per
    /// section).
    SiteSectionPresent(&'static str),
    /// `static_call: trampoline name malformed: NAME`
    StaticCallTrampolineMalformed(String),
    /// `static_call: can't find static_call_key symbol: NAME`
    StaticCallKeyMissing(String),
    // --ibt (actions::ibt: objtool's validate_ibt(), create_ibt_endbr_seal_sections()).
    /// `relocation to !ENDBR: LOC` (an instruction takes the address of `dest`)
    RelocationToNoEndbr {
        dest: Location,
    },
    /// `data relocation to !ENDBR: LOC`
    DataRelocationToNoEndbr {
        dest: Location,
    },
    /// `file already has .ibt_endbr_seal, skipping`
    IbtSealAlreadyPresent,
    /// `FUNC(): not an indirect call target`
    NotIndirectCallTarget {
        function: String,
    },
    // --noinstr, --unret, --sls (noinstr helper): objtool's `validate_call()`,
    // `pv_call_dest()`, `validate_unret()`, `validate_unrets()`, `validate_sls()`.
    /// `call to DEST() leaves .noinstr.text section` (`{dynamic}` when unknown)
    CallLeavesNoinstr {
        dest: Option<String>,
    },
    /// `pv_ops[N]: TARGET`: a paravirt target outside the noinstr sections
    PvOpsTarget {
        index: i64,
        target: String,
    },
    /// `paravirt confusion`: a `pv_ops` assignment without a `pv_ops` table
    ParavirtConfusion,
    /// `no func for pv_ops[]`
    NoFuncForPvOps,
    EarlyIndirectCall,
    UnresolvedJumpTarget,
    /// `Unresolved function after linking!?: NAME`
    UnresolvedFunction {
        name: String,
    },
    RetBeforeUntrain,
    /// objtool's `teh end!`: an unret path runs off the end of its section
    UnretEndOfSection,
    FailedUnretValidation,
    MissingInt3AfterRet,
    MissingInt3AfterIndirectJump,
}

/// A section offset as objtool prints it without looking for a symbol: `SEC+0xOFF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionOffset {
    pub section: String,
    pub offset: u64,
}

impl fmt::Display for SectionOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+0x{:x}", self.section, self.offset)
    }
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
            BadAnnotateInsnEntry { index, ty } => {
                return write!(f, "bad .discard.annotate_insn entry: {index} of type {ty}");
            }
            CantFindCallDest { at } => return write!(f, "can't find call dest at {at}"),
            UnexpectedRelocSymbolType { rela_section, ty } => {
                write!(f, "unexpected relocation symbol type in {rela_section}")?;
                return match ty {
                    Some(t) => write!(f, ": {t}"),
                    None => Ok(()),
                };
            }
            UnwindHintWithoutReloc { index } => {
                return write!(f, "can't find reloc for unwind_hints[{index}]");
            }
            UnwindHintWithoutInstruction { index } => {
                return write!(f, "can't find insn for unwind_hints[{index}]");
            }
            UnsupportedHintSpReg { reg } => {
                return write!(f, "unsupported unwind_hint sp base reg {reg}");
            }
            CantFindJumpDest { at } => {
                return write!(f, "can't find jump dest instruction at {at}");
            }
            CantFindReachableInsn { at } => return write!(f, "can't find reachable insn at {at}"),
            FuncAtEndOfSection { function } => {
                return write!(f, "{function}(): STT_FUNC at end of section");
            }
            NoStartingInstruction { function } => {
                return write!(f, "{function}(): can't find starting instruction");
            }
            SpecialSizeNotMultiple { section, size } => {
                return write!(f, "{section} size not a multiple of {size}");
            }
            SpecialWithoutReloc { field } => return write!(f, "can't find {field} reloc"),
            SpecialWithoutInstruction { field } => {
                return write!(f, "special: can't find {field} instruction");
            }
            WeirdlyOverlapping { len, orig_len } => {
                return write!(f, "weirdly overlapping alternative! {len} != {orig_len}");
            }
            CantFindCallDestSymbol { at } => {
                return write!(f, "can't find call dest symbol at {at}");
            }
            TailCallToFentry => "tail call to __fentry__ !?!?",
            UnannotatedIntraFunctionCall => "unannotated intra-function call",
            UnsupportedCallToNonFunction => "unsupported call to non-function",
            RetpolineSafeNotIndirect => "retpoline_safe hint not an indirect jump/call/ret/nop",
            IntraFunctionCallNotDirect => "intra_function_call not a direct call",
            AnnotationWithoutInstruction(m) => m,
            BadNoendbrEntry => "bad .discard.noendbr entry",
            MissingUnwindHintsRela => "missing .rela.discard.unwind_hints section",
            UnwindHintSizeMismatch => "struct unwind_hint size mismatch",
            IretRegsWithoutEndbr => "UNWIND_HINT_IRET_REGS without ENDBR",
            NoSwitchJumpTable => "can't find switch jump table",
            EmptyAlternative => "empty alternative entry",
            NoAlternativeJumpDest => "can't find alternative jump destination",
            NoLastNewAlternativeInstruction => "can't find last new alternative instruction",
            UnsupportedJumpLabelInstruction => "unsupported instruction at jump label",
            StackOperation(m) | Backtrace(m) => m,
            Explanation(m) => m.as_str(),
            CantDecode { section, offset } => {
                return write!(f, "can't decode instruction at {section}:0x{offset:x}");
            }
            InvalidLea { section, offset } => {
                return write!(f, "invalid LEA encoding at {section}:0x{offset:x}");
            }
            Enqcmd { section, offset } => {
                return write!(f, "ENQCMD instruction at {section}:{offset:x}");
            }
            NotrackPrefix { section, offset } => {
                return write!(f, "notrack prefix found at {section}:0x{offset:x}");
            }
            UnknownHintType(t) => return write!(f, "unknown unwind hint type {t}"),
            UnknownCfaBase(b) => return write!(f, "unknown CFA base reg {b}"),
            UnknownBpBase(b) => return write!(f, "unknown BP base reg {b}"),
            OrcAlreadyPresent => "file already has .orc_unwind section, skipping",
            AltReturnAddress {
                call,
                stream,
                slot,
                got,
                want,
            } => {
                write!(
                    f,
                    "alternatives: the return address of the call at {call} in {stream} is unwound with "
                )?;
                match slot {
                    Some(j) => write!(f, "the entry at group offset 0x{j:x}")?,
                    None => write!(f, "the entry before the group")?,
                }
                return write!(f, " ({got}) instead of its own state ({want})");
            }
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
            // the site-list actions
            IndirectInRetpolineBuild { jump } => {
                let what = if *jump { "jump" } else { "call" };
                return write!(f, "indirect {what} found in MITIGATION_RETPOLINE build");
            }
            NakedReturn => "'naked' return found in MITIGATION_RETHUNK build",
            SiteSectionPresent(m) => m,
            StaticCallTrampolineMalformed(name) => {
                return write!(f, "static_call: trampoline name malformed: {name}");
            }
            StaticCallKeyMissing(name) => {
                return write!(f, "static_call: can't find static_call_key symbol: {name}");
            }
            // --ibt
            RelocationToNoEndbr { dest } => return write!(f, "relocation to !ENDBR: {dest}"),
            DataRelocationToNoEndbr { dest } => {
                return write!(f, "data relocation to !ENDBR: {dest}");
            }
            IbtSealAlreadyPresent => "file already has .ibt_endbr_seal, skipping",
            NotIndirectCallTarget { function } => {
                return write!(f, "{function}(): not an indirect call target");
            }
            // --noinstr, --unret, --sls
            CallLeavesNoinstr { dest } => {
                let d = dest.as_deref().unwrap_or("{dynamic}");
                return write!(f, "call to {d}() leaves .noinstr.text section");
            }
            PvOpsTarget { index, target } => return write!(f, "pv_ops[{index}]: {target}"),
            ParavirtConfusion => "paravirt confusion",
            NoFuncForPvOps => "no func for pv_ops[]",
            EarlyIndirectCall => "early indirect call",
            UnresolvedJumpTarget => "unresolved jump target after linking?!?",
            UnresolvedFunction { name } => {
                return write!(f, "Unresolved function after linking!?: {name}");
            }
            RetBeforeUntrain => "RET before UNTRAIN",
            UnretEndOfSection => "teh end!",
            FailedUnretValidation => "Failed UNRET validation",
            MissingInt3AfterRet => "missing int3 after ret",
            MissingInt3AfterIndirectJump => "missing int3 after indirect jump",
        };
        f.write_str(fixed)
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
