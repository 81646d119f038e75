//! The program model: instructions with their owners, control flow (jump and call
//! destinations, alternatives, jump tables, dead ends), unwind hints and annotations.
//!
//! objtool: `decode_sections()` in check.c. The steps run in objtool's order, each one a
//! function of this module; a fatal error (objtool's `return -1`) stops the build and is
//! returned as [`Fatal`] after being reported.

pub mod hints;
pub mod relocs;
pub mod special;
pub mod symbols;

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;

use object::elf;
use object::read::elf::SectionHeader as _;

use crate::decode::regs::CFI_SP;
use crate::decode::{Insn, InsnId, InsnKind, InsnTable, StackOp};
use crate::elf::{LE, Object, SecId};
use crate::ids::{AltGroupId, StreamId, SymId, Table};
use crate::options::Options;
use crate::report::{Findings, Report};
use hints::Hint;
use relocs::{Reloc, Relocs};
use symbols::{NO_SYM, SymIdx, Symbols};

/// Objects with fewer instructions are built, walked and generated on one thread
/// ([`Program::parallel`]).
const PARALLEL_MIN_INSNS: usize = 100_000;

/// A large section's owners are painted in this many stretches side by side (each
/// stretch looks at every owner's range).
const OWNER_STRETCHES: usize = 16;
/// Instructions per batch of [`Program::lookups`] (and of the call step): small enough
/// that the records a batch's lookups touched are still cached when it is applied (1 << 18
/// cost vmlinux.o's build ~9 ms more), large enough for a few parallel tasks.
const LOOKUP_BATCH: usize = 1 << 14;
/// Fewest lookups of a batch per parallel task.
const LOOKUP_MIN_TASK: usize = 4096;

/// The analysis stopped: objtool's fatal `return -1` (already reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fatal;

pub type Step = Result<(), Fatal>;

/// An optional index in 4 bytes (`u32::MAX` is none): per-instruction attributes are kept
/// for millions of instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed(u32);

impl Packed {
    pub const NONE: Packed = Packed(u32::MAX);

    pub fn some(v: u32) -> Self {
        Packed(v)
    }

    pub fn get(self) -> Option<u32> {
        (self.0 != u32::MAX).then_some(self.0)
    }
}

/// A direct jump's destination as found by [`Program::jump_target`].
#[derive(Clone, Copy)]
enum JumpTarget {
    /// Nothing to resolve.
    None,
    /// A jump to a retpoline thunk: an indirect jump.
    Retpoline,
    /// A jump to the return thunk: a return.
    Return,
    /// A relocation to a symbol from inside a function: a sibling call to it.
    Sibling(SymIdx),
    /// An address, and what is known of the instruction there if there is one.
    Addr(SecId, u64, Option<Dest>),
}

/// What a direct jump's destination instruction is, from data this step does not change.
#[derive(Clone, Copy)]
struct Dest {
    insn: InsnId,
    /// The destination starts a retpoline thunk or the return thunk.
    thunk: Option<Thunk>,
    /// The function of the destination.
    dfunc: SymIdx,
    /// The jump goes from a function into a `.cold` part: objtool links them.
    cold_link: bool,
    /// The symbols of the jump and of its destination when the jump is a sibling call
    /// unless both have the same parent function (`NO_SYM` otherwise).
    sibling: (SymIdx, SymIdx),
}

#[derive(Clone, Copy)]
enum Thunk {
    Retpoline,
    Return,
}

/// A call's destination as found by [`Program::call_target`].
#[derive(Clone, Copy)]
enum CallTarget {
    /// No relocation: the function at the displacement's target (or none).
    Direct(SymIdx),
    /// A section-relative relocation: the function there (or none).
    Section(SymIdx),
    Retpoline,
    Sym(SymIdx),
}

/// What adding a call's destination does to it ([`Program::call_effect`]).
struct CallEffect {
    attr: Attr,
    warning: Option<Cow<'static, str>>,
    /// The analysis stops after the warning.
    fatal: bool,
}

/// One way out of an instruction besides its normal flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alt {
    pub target: InsnId,
    pub skip_orig: bool,
}

/// One instruction stream of a patch site: the original byte range or one replacement
/// (objtool's `struct alt_group`).
#[derive(Clone, Debug)]
pub struct AltStream {
    /// The site it belongs to (whose CFI array it shares).
    pub group: AltGroupId,
    /// The stream whose bytes it replaces; `None` for an original. (A replacement of an
    /// instruction that is itself in a replacement has that replacement as parent.)
    pub parent: Option<StreamId>,
    /// 0 for an original; n for the n-th replacement of its parent, in `.altinstructions`
    /// order.
    pub number: u32,
    pub first: InsnId,
    pub last: Option<InsnId>,
    /// The synthetic NOP padding a shorter replacement to the original's length.
    pub nop: Option<InsnId>,
}

impl AltStream {
    pub fn is_orig(&self) -> bool {
        self.parent.is_none()
    }
}

/// One patch site of `.altinstructions`: the original and its replacements, which share
/// one CFI array of `len` slots (one per byte of the original). Built once by the
/// special-section pass; the walk, the unwind check and ORC generation read it.
#[derive(Clone, Debug)]
pub struct AltGroup {
    pub orig: StreamId,
    /// The replacements of `orig`, in `.altinstructions` order.
    pub alternatives: Vec<StreamId>,
    /// The original's length in bytes.
    pub len: u32,
}

/// Per-instruction analysis attributes (mutable while the model is built). 16 bytes: kept
/// for every instruction of a `vmlinux.o`.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub kind: InsnKind,
    pub instr: i8,
    flags: u16,
    pub sym: SymIdx,
    pub jump_dest: Packed,
    pub call_dest: SymIdx,
}

const _: () = assert!(size_of::<Attr>() <= 16);

macro_rules! flags {
    ($($bit:expr => $get:ident, $set:ident;)*) => {
        impl Attr {
            $(
                pub fn $get(&self) -> bool {
                    self.flags & (1 << $bit) != 0
                }
                pub fn $set(&mut self, v: bool) {
                    if v {
                        self.flags |= 1 << $bit;
                    } else {
                        self.flags &= !(1 << $bit);
                    }
                }
            )*
        }
    };
}

flags! {
    0 => ops_removed, set_ops_removed;
    1 => dead_end, set_dead_end;
    2 => ignore, set_ignore;
    3 => ignore_alts, set_ignore_alts;
    4 => has_alts, set_has_alts;
    5 => hint, set_hint;
    6 => save, set_save;
    7 => restore, set_restore;
    8 => retpoline_safe, set_retpoline_safe;
    9 => noendbr, set_noendbr;
    10 => in_alt_group, set_in_alt_group;
}

impl Default for Attr {
    fn default() -> Self {
        Attr {
            kind: InsnKind::Other,
            instr: 0,
            flags: 0,
            sym: NO_SYM,
            jump_dest: Packed::NONE,
            call_dest: NO_SYM,
        }
    }
}

/// The whole model the walk runs on.
pub struct Program<'a, 'data> {
    pub obj: &'a Object<'data>,
    pub opts: &'a Options,
    pub insns: InsnTable,
    pub attrs: Vec<Attr>,
    pub syms: Symbols<'data>,
    pub relocs: Relocs<'data>,
    pub alts: HashMap<InsnId, Vec<Alt>>,
    /// The alternative stream of each instruction that has one (flagged in its `Attr`).
    stream_of: HashMap<InsnId, StreamId>,
    /// The unwind hints, in file order (`cfi::hint` makes their states).
    pub hints: Vec<(InsnId, Hint)>,
    /// Switch tables of indirect jumps: (table section, relocation index).
    pub jump_tables: HashMap<InsnId, (SecId, u32)>,
    /// objtool's `first_jump_src`: the first forward jump to an instruction.
    first_jump_src: HashMap<InsnId, InsnId>,
    /// Memoised `dead_end_function()` results while call destinations are added.
    dead_end_memo: HashMap<SymIdx, bool>,
    /// The patch sites of `.altinstructions`.
    pub alt_groups: Table<AltGroupId, AltGroup>,
    /// Their instruction streams.
    pub streams: Table<StreamId, AltStream>,
    pub sec_names: Vec<String>,
    pub sec_exec: Vec<bool>,
    pub sec_text: Vec<bool>,
    pub sec_rodata: Vec<bool>,
    pub sec_noinstr: Vec<bool>,
    pub sec_size: Vec<u64>,
    pub has_rodata: bool,
    pub has_hints: bool,
    /// Number of decoded instructions; synthetic NOPs follow them in the table.
    pub nreal: usize,
    /// Jump-label `jmp`s that `--hacks=jump_label` turns into NOPs.
    pub nopped_jump_labels: Vec<InsnId>,
    pub ignore_unreachables: bool,
}

impl<'a, 'data> Program<'a, 'data> {
    pub fn insn(&self, id: InsnId) -> &Insn {
        self.insns.get(id)
    }

    pub fn attr(&self, id: InsnId) -> &Attr {
        &self.attrs[id.idx()]
    }

    fn attr_mut(&mut self, id: InsnId) -> &mut Attr {
        &mut self.attrs[id.idx()]
    }

    /// The alternative stream an instruction belongs to.
    pub fn alt_stream(&self, id: InsnId) -> Option<StreamId> {
        if self.attrs[id.idx()].in_alt_group() {
            self.stream_of.get(&id).copied()
        } else {
            None
        }
    }

    pub fn set_alt_stream(&mut self, id: InsnId, s: StreamId) {
        self.attrs[id.idx()].set_in_alt_group(true);
        self.stream_of.insert(id, s);
    }

    /// A stream's length in bytes: from its first instruction to the end of its last.
    pub fn stream_bytes(&self, s: &AltStream) -> u64 {
        let last = s.last.unwrap_or(s.first);
        self.insn(last).end() - u64::from(self.insn(s.first).offset)
    }

    /// The stream and site an instruction belongs to.
    pub fn alt_site(&self, id: InsnId) -> Option<(&AltStream, &AltGroup)> {
        let s = &self.streams[self.alt_stream(id)?];
        Some((s, &self.alt_groups[s.group]))
    }

    /// The stack operations the walk applies.
    pub fn ops(&self, id: InsnId) -> &[crate::decode::PackedOp] {
        if self.attrs[id.idx()].ops_removed() || !self.is_real(id) {
            &[]
        } else {
            self.insns.ops_of(id)
        }
    }

    /// objtool: `insn_func()` — the owner if it is a function.
    pub fn insn_func(&self, id: InsnId) -> SymIdx {
        let s = self.attrs[id.idx()].sym;
        if s != NO_SYM && self.syms.is_func(s) {
            s
        } else {
            NO_SYM
        }
    }

    /// objtool: `insn_call_dest()`.
    pub fn call_dest(&self, id: InsnId) -> SymIdx {
        let a = &self.attrs[id.idx()];
        if matches!(a.kind, InsnKind::JumpDynamic | InsnKind::CallDynamic) {
            NO_SYM
        } else {
            a.call_dest
        }
    }

    pub fn jump_table(&self, id: InsnId) -> Option<(SecId, u32)> {
        let a = &self.attrs[id.idx()];
        if matches!(a.kind, InsnKind::JumpDynamic | InsnKind::CallDynamic) {
            self.jump_tables.get(&id).copied()
        } else {
            None
        }
    }

    /// objtool: `is_jump_table_jump()`.
    pub fn is_jump_table_jump(&self, id: InsnId) -> bool {
        if self.jump_table(id).is_some() {
            return true;
        }
        match self.alt_site(id) {
            Some((s, _)) => s
                .parent
                .is_some_and(|p| self.jump_table(self.streams[p].first).is_some()),
            None => false,
        }
    }

    /// objtool: `is_sibling_call()`.
    pub fn is_sibling_call(&self, id: InsnId) -> bool {
        let kind = self.attrs[id.idx()].kind;
        if self.insn_func(id) != NO_SYM && kind == InsnKind::JumpDynamic {
            return !self.is_jump_table_jump(id);
        }
        kind.is_static_jump() && self.call_dest(id) != NO_SYM
    }

    pub fn next_same_sec(&self, id: InsnId) -> Option<InsnId> {
        if !self.is_real(id) {
            return None; // synthetic NOPs have no neighbours
        }
        self.insns.next(id)
    }

    pub fn prev_same_sec(&self, id: InsnId) -> Option<InsnId> {
        if !self.is_real(id) {
            return None;
        }
        self.insns.prev(id)
    }

    /// objtool: `next_insn_same_func()`.
    pub fn next_same_func(&self, id: InsnId) -> Option<InsnId> {
        let func = self.insn_func(id);
        if func == NO_SYM {
            return None;
        }
        let next = self.next_same_sec(id);
        if let Some(n) = next {
            if self.insn_func(n) == func {
                return Some(n);
            }
        }
        let f = self.syms.get(func);
        if f.cfunc == func {
            return None;
        }
        let c = self.syms.get(f.cfunc);
        self.insns.at(c.sec, c.offset)
    }

    /// The instructions of an alternative group: its byte range, then its padding NOP.
    pub fn group_insns(&self, grp: &AltStream) -> Vec<InsnId> {
        let mut insns = Vec::new();
        if let Some(last) = grp.last {
            let mut cur = Some(grp.first);
            while let Some(i) = cur {
                insns.push(i);
                if i == last {
                    break;
                }
                cur = self.next_same_sec(i);
            }
        }
        insns.extend(grp.nop);
        insns
    }

    /// Whether the stages after decoding use all threads: for a large object, or when
    /// `--force-parallel` asks (the output is the same either way).
    pub fn parallel(&self) -> bool {
        self.insns.insns.len() >= PARALLEL_MIN_INSNS || self.opts.force_parallel
    }

    /// `items.iter().map(f).collect()`, on all threads when [`Program::parallel`] (in
    /// tasks of at least `min_len` items); the result is in the order of `items` either way.
    pub fn map_all<I: Sync, T: Send>(
        &self,
        items: &[I],
        min_len: usize,
        f: impl Fn(&I) -> T + Sync + Send,
    ) -> Vec<T> {
        if self.parallel() {
            use rayon::prelude::*;
            items.par_iter().with_min_len(min_len).map(f).collect()
        } else {
            items.iter().map(f).collect()
        }
    }

    /// [`Program::func_insns`] without collecting them.
    pub fn func_insns_iter(&self, func: SymIdx) -> impl Iterator<Item = InsnId> + '_ {
        let f = self.syms.get(func);
        let mut cur = self.insns.at(f.sec, f.offset);
        let mut n = 0;
        let limit = self.insns.insns.len() + 1; // a cold-part cycle in hostile input
        std::iter::from_fn(move || {
            let i = cur?;
            n += 1;
            if n > limit {
                return None;
            }
            cur = self.next_same_func(i);
            Some(i)
        })
    }

    /// The instructions of a function and then of its `.cold` part (`func_for_each_insn`).
    pub fn func_insns(&self, func: SymIdx) -> Vec<InsnId> {
        self.func_insns_iter(func).collect()
    }

    /// The instructions starting inside a symbol's range, as consecutive ids (objtool's
    /// `sym_for_each_insn`).
    pub fn sym_range(&self, sym: SymIdx) -> std::ops::Range<u32> {
        let s = self.syms.get(sym);
        let Some(start) = self.insns.at(s.sec, s.offset) else {
            return 0..0;
        };
        let end = self.insns.first_from(s.sec, s.end());
        start.0..end.0.max(start.0)
    }

    /// objtool: `offstr()` — `func+0x12`, `sym+0x4`, or `sec+0x40`; with `--sec-address`
    /// the section form follows in parentheses.
    pub fn loc(&self, sec: SecId, off: u64) -> String {
        let mut sym = None;
        if self.sec_exec.get(sec.0 as usize).copied().unwrap_or(false) {
            sym = self.syms.func_containing(sec, off);
        }
        if sym.is_none() {
            sym = self.syms.containing(sec, off);
        }
        let secname = &self.sec_names[sec.0 as usize];
        match sym {
            Some(s) => {
                let s = self.syms.get(s);
                if self.opts.sec_address {
                    format!(
                        "{}+0x{:x} ({secname}+0x{off:x})",
                        s.name,
                        off.wrapping_sub(s.offset)
                    )
                } else {
                    format!("{}+0x{:x}", s.name, off.wrapping_sub(s.offset))
                }
            }
            None => format!("{secname}+0x{off:x}"),
        }
    }

    pub fn insn_loc(&self, id: InsnId) -> String {
        let i = self.insn(id);
        self.loc(self.insns.sec_of(id), u64::from(i.offset))
    }

    /// A symbol index as an optional [`SymId`] (`NO_SYM` is none).
    pub fn sym_id(&self, s: SymIdx) -> Option<SymId> {
        (s != NO_SYM).then_some(SymId(s))
    }

    /// `WARN_INSN(insn, …)`.
    pub fn warn_insn(&self, f: &mut impl Report, id: InsnId, msg: &str) {
        f.warn_insn(
            self.sym_id(self.attrs[id.idx()].sym),
            &self.insn_loc(id),
            msg,
        );
    }

    fn reloc_of(&self, id: InsnId) -> Option<Reloc> {
        let i = self.insn(id);
        self.relocs
            .in_range(self.insns.sec_of(id), u64::from(i.offset), u64::from(i.len))
    }

    /// The static destination of a relative branch.
    pub fn jump_target_off(&self, id: InsnId) -> u64 {
        let i = self.insn(id);
        i.end().wrapping_add(i.immediate as i64 as u64)
    }

    /// The relocation section called `name`, read in file order.
    fn rela_by_name(&self, name: &str) -> Option<(String, Vec<Reloc>)> {
        let rsec = self.obj.section_by_name(name.as_bytes())?;
        let target = SecId(self.obj.section(rsec).ok()?.sh_info(LE));
        let t = self.relocs.table(target)?;
        (t.rela_sec == rsec).then(|| (name.to_owned(), t.iter().collect()))
    }

    fn sym_sec_off(&self, r: &Reloc) -> (SecId, u64) {
        let s = self.syms.get(r.sym);
        (s.sec, s.offset.wrapping_add(r.addend as u64))
    }
}

/// Builds the model (objtool: `decode_sections()`), reporting into `findings`.
pub fn build<'a, 'data>(
    obj: &'a Object<'data>,
    opts: &'a Options,
    insns: InsnTable,
    syms: Symbols<'data>,
    relocs: Relocs<'data>,
    findings: &mut Findings,
) -> Result<Program<'a, 'data>, Fatal> {
    let nsec = obj.section_count();
    let mut sec_names = Vec::with_capacity(nsec);
    let mut sec_exec = vec![false; nsec];
    let mut sec_text = vec![false; nsec];
    let mut sec_rodata = vec![false; nsec];
    let mut sec_noinstr = vec![false; nsec];
    let mut sec_size = vec![0; nsec];
    for sec in obj.section_ids() {
        let name = obj.section_name_lossy(sec);
        let i = sec.0 as usize;
        if let Ok(h) = obj.section(sec) {
            sec_size[i] = h.sh_size(LE);
            sec_exec[i] = h.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0;
        }
        if sec_exec[i] {
            sec_text[i] = name != ".altinstr_replacement"
                && name != ".altinstr_aux"
                && !name.starts_with(".discard.");
            sec_noinstr[i] = matches!(
                name.as_str(),
                ".noinstr.text" | ".entry.text" | ".cpuidle.text"
            ) || name.starts_with(".text..__x86.");
        }
        sec_rodata[i] = (name.starts_with(".rodata") && !name.contains(".str1."))
            || name.starts_with(".data.rel.ro");
        sec_names.push(name);
    }
    let has_rodata = sec_rodata.iter().any(|&r| r);
    let attr_of = |i: &Insn| {
        let mut a = Attr {
            kind: i.kind,
            ..Attr::default()
        };
        a.set_dead_end(i.kind == InsnKind::Bug);
        a
    };
    let attrs: Vec<Attr> = if insns.insns.len() >= PARALLEL_MIN_INSNS || opts.force_parallel {
        use rayon::prelude::*;
        insns.insns.par_iter().map(attr_of).collect()
    } else {
        insns.insns.iter().map(attr_of).collect()
    };
    let mut p = Program {
        obj,
        opts,
        insns,
        attrs,
        syms,
        relocs,
        alts: HashMap::default(),
        stream_of: HashMap::default(),
        hints: Vec::new(),
        jump_tables: HashMap::default(),
        first_jump_src: HashMap::default(),
        dead_end_memo: HashMap::default(),
        alt_groups: Table::new(),
        streams: Table::new(),
        sec_names,
        sec_exec,
        sec_text,
        sec_rodata,
        sec_noinstr,
        sec_size,
        has_rodata,
        has_hints: false,
        nreal: 0,
        nopped_jump_labels: Vec::new(),
        ignore_unreachables: opts.no_unreachable,
    };
    p.nreal = p.insns.insns.len();
    p.assign_owners(findings)?;
    p.fix_iret();
    p.add_ignores(findings);
    if opts.uaccess {
        p.syms.mark_uaccess_safe();
    }
    p.add_ignore_alternatives(findings)?;
    p.read_noendbr_hints(findings)?;
    // Linux 6.13 and later: one `.discard.annotate_insn` section for all these annotations
    let annotations = p.read_annotate_insn(findings)?;
    p.annotate(&annotations, Phase::Early, findings)?;
    if opts.stackval || opts.orc || opts.uaccess || opts.noinstr || opts.hack_jump_label {
        special::add_special_section_alts(&mut p, findings)?;
    }
    let calls = p.add_jump_destinations(findings)?;
    p.read_intra_function_calls(findings)?;
    p.annotate(&annotations, Phase::IntraFunctionCalls, findings)?;
    p.add_call_destinations(calls, findings)?;
    p.add_dead_ends(findings)?;
    p.add_jump_table_alts(findings)?;
    p.read_unwind_hints(findings)?;
    p.read_retpoline_hints(findings)?;
    p.read_instr_hints(findings)?;
    p.read_validate_unret_hints(findings)?;
    p.annotate(&annotations, Phase::Late, findings)?;
    // What only the build needed: gone before the walk allocates its own tables.
    p.relocs = Relocs::default();
    p.insns.branches = Vec::new();
    p.insns.irets = Vec::new();
    p.first_jump_src = HashMap::default();
    p.dead_end_memo = HashMap::default();
    Ok(p)
}

/// `.discard.annotate_insn` types (include/linux/objtool_types.h of 6.13+); 9 and above
/// mean different things in different kernels and are ignored.
const ANNOTYPE_NOENDBR: u32 = 1;
const ANNOTYPE_RETPOLINE_SAFE: u32 = 2;
const ANNOTYPE_INSTR_BEGIN: u32 = 3;
const ANNOTYPE_INSTR_END: u32 = 4;
const ANNOTYPE_IGNORE_ALTS: u32 = 6;
const ANNOTYPE_INTRA_FUNCTION_CALL: u32 = 7;
const ANNOTYPE_REACHABLE: u32 = 8;

/// When an annotation of `.discard.annotate_insn` takes effect (objtool's
/// `__annotate_early`, `__annotate_ifc`, `__annotate_late`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Early,
    IntraFunctionCalls,
    Late,
}

impl Program<'_, '_> {
    /// objtool (6.13+): `read_annotate()` — (type, instruction) of each entry, 8 bytes
    /// each: `.long insn - .` (relocated) and the type; REACHABLE names the instruction
    /// after the dead end, so it resolves to the one before.
    fn read_annotate_insn(&self, f: &mut Findings) -> Result<Vec<(u32, InsnId)>, Fatal> {
        let Some(sec) = self.obj.section_by_name(b".discard.annotate_insn") else {
            return Ok(Vec::new());
        };
        let Some(t) = self.relocs.table(sec) else {
            return Ok(Vec::new());
        };
        let data = self.obj.section_data(sec).unwrap_or(&[]);
        let mut out = Vec::new();
        for (idx, r) in t.iter().enumerate() {
            let at = idx * 8 + 4;
            let ty = data
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let (rsec, off) = self.sym_sec_off(&r);
            let mut insn = self.insns.at(rsec, off);
            if ty == ANNOTYPE_REACHABLE {
                insn = match insn {
                    Some(i) => self.prev_same_sec(i),
                    None if off == self.sec_size[rsec.0 as usize] => self.last_insn(rsec),
                    None => None,
                };
            }
            let Some(insn) = insn else {
                f.warn(format!(
                    "bad .discard.annotate_insn entry: {idx} of type {ty}"
                ));
                return Err(Fatal);
            };
            out.push((ty, insn));
        }
        Ok(out)
    }

    /// The last instruction that starts within the last 10 bytes of a section
    /// (objtool: `find_last_insn()`).
    fn last_insn(&self, sec: SecId) -> Option<InsnId> {
        let size = self.sec_size[sec.0 as usize];
        let end = size.saturating_sub(10);
        let mut o = size.checked_sub(1)?;
        loop {
            if let Some(i) = self.insns.at(sec, o) {
                return Some(i);
            }
            if o == 0 || o <= end {
                return None;
            }
            o -= 1;
        }
    }

    fn annotate(&mut self, entries: &[(u32, InsnId)], phase: Phase, f: &mut Findings) -> Step {
        for &(ty, id) in entries {
            match (phase, ty) {
                (Phase::Early, ANNOTYPE_IGNORE_ALTS) => self.attrs[id.idx()].set_ignore_alts(true),
                (Phase::Early, ANNOTYPE_NOENDBR) => self.attrs[id.idx()].set_noendbr(true),
                (Phase::IntraFunctionCalls, ANNOTYPE_INTRA_FUNCTION_CALL) => {
                    self.intra_function_call(id, f)?
                }
                (Phase::Late, ANNOTYPE_RETPOLINE_SAFE) => {
                    if !matches!(
                        self.attrs[id.idx()].kind,
                        InsnKind::JumpDynamic
                            | InsnKind::CallDynamic
                            | InsnKind::Return
                            | InsnKind::Nop
                    ) {
                        self.warn_insn(
                            f,
                            id,
                            "retpoline_safe hint not an indirect jump/call/ret/nop",
                        );
                        return Err(Fatal);
                    }
                    self.attrs[id.idx()].set_retpoline_safe(true);
                }
                (Phase::Late, ANNOTYPE_INSTR_BEGIN) => {
                    let a = &mut self.attrs[id.idx()];
                    a.instr = a.instr.wrapping_add(1);
                }
                (Phase::Late, ANNOTYPE_INSTR_END) => {
                    let a = &mut self.attrs[id.idx()];
                    a.instr = a.instr.wrapping_sub(1);
                }
                (Phase::Late, ANNOTYPE_REACHABLE) => self.attrs[id.idx()].set_dead_end(false),
                _ => {}
            }
        }
        Ok(())
    }

    /// objtool: the body of `read_intra_function_calls()`: the call becomes a jump that
    /// keeps its push.
    fn intra_function_call(&mut self, id: InsnId, f: &mut Findings) -> Step {
        if self.attrs[id.idx()].kind != InsnKind::Call {
            self.warn_insn(f, id, "intra_function_call not a direct call");
            return Err(Fatal);
        }
        self.attrs[id.idx()].kind = InsnKind::JumpUnconditional;
        let sec = self.insns.sec_of(id);
        let dest_off = self.jump_target_off(id);
        match self.insns.at(sec, dest_off) {
            Some(d) => {
                self.attrs[id.idx()].jump_dest = Packed::some(d.0);
                Ok(())
            }
            None => {
                let msg = format!(
                    "can't find call dest at {}+0x{dest_off:x}",
                    self.sec_names[sec.0 as usize]
                );
                self.warn_insn(f, id, &msg);
                Err(Fatal)
            }
        }
    }

    /// objtool: the owner loop of `decode_instructions()`.
    fn assign_owners(&mut self, f: &mut Findings) -> Step {
        // the symbol types side by side (the lists are in address order: reading each
        // symbol for its type is a cache miss per symbol)
        let types: Vec<u8> = self.syms.syms.iter().map(|s| s.ty).collect();
        for sec in 0..self.sec_exec.len() {
            if !self.sec_exec[sec] {
                continue;
            }
            let secid = SecId(sec as u32);
            // each owner's instructions, in list order (a later symbol takes the
            // instructions of an earlier one it overlaps)
            let mut owners: Vec<(SymIdx, std::ops::Range<u32>)> = Vec::new();
            for &s in &self.syms.lists[sec] {
                if !matches!(types[s as usize], elf::STT_NOTYPE | elf::STT_FUNC) {
                    continue;
                }
                let sym = self.syms.get(s);
                if sym.offset == self.sec_size[sec] {
                    if sym.ty == elf::STT_NOTYPE {
                        continue;
                    }
                    f.warn(format!("{}(): STT_FUNC at end of section", sym.name));
                    return Err(Fatal);
                }
                if sym.embedded_insn || sym.alias != s {
                    continue;
                }
                if self.insns.at(secid, sym.offset).is_none() {
                    f.warn(format!("{}(): can't find starting instruction", sym.name));
                    return Err(Fatal);
                }
                owners.push((s, self.sym_range(s)));
            }
            let run = self.insns.section_range(secid);
            let parallel = self.parallel();
            let attrs = &mut self.attrs[run.start as usize..run.end as usize];
            // (in list order within each stretch of the section: the stretches side by
            // side for a large one)
            let paint = |first: u32, stretch: &mut [Attr]| {
                let end = first + stretch.len() as u32;
                for (s, r) in &owners {
                    let (a, b) = (r.start.max(first), r.end.min(end));
                    if a < b {
                        for attr in &mut stretch[(a - first) as usize..(b - first) as usize] {
                            attr.sym = *s;
                        }
                    }
                }
            };
            if parallel {
                use rayon::prelude::*;
                let len = attrs.len().div_ceil(OWNER_STRETCHES).max(1);
                attrs
                    .par_chunks_mut(len)
                    .enumerate()
                    .for_each(|(k, stretch)| paint(run.start + (k * len) as u32, stretch));
            } else {
                paint(run.start, attrs);
            }
        }
        Ok(())
    }

    /// `iret` inside a function is sync_core()'s IRET-to-self: `add $40,%rsp`.
    fn fix_iret(&mut self) {
        for n in 0..self.insns.irets.len() {
            let k = self.insns.irets[n].idx();
            let i = self.insns.insns[k];
            let sec = self.insns.sec_of(InsnId(k as u32));
            if let Some(s) = self.syms.containing(sec, u64::from(i.offset)) {
                if self.syms.is_func(s) {
                    self.attrs[k].kind = InsnKind::Other;
                    self.attrs[k].set_ops_removed(false);
                    self.insns.insns[k].ops_start = self.insns.ops.len() as u32;
                    self.insns.insns[k].ops_len = 1;
                    self.insns.ops.push(
                        StackOp {
                            dest: crate::decode::Op::Reg(CFI_SP),
                            src: crate::decode::Op::Add(CFI_SP, 40),
                        }
                        .into(),
                    );
                }
            }
        }
    }

    /// STACK_FRAME_NON_STANDARD (objtool: `add_ignores()`).
    fn add_ignores(&mut self, f: &mut Findings) {
        let Some((rname, relocs)) =
            self.rela_by_name(".rela.discard.func_stack_frame_non_standard")
        else {
            return;
        };
        for r in relocs {
            let s = self.syms.get(r.sym);
            let func = match s.ty {
                elf::STT_FUNC => r.sym,
                elf::STT_SECTION => match self.syms.func_by_offset(s.sec, r.addend as u64) {
                    Some(func) => func,
                    None => continue,
                },
                t => {
                    f.warn(format!("unexpected relocation symbol type in {rname}: {t}"));
                    continue;
                }
            };
            for i in self.func_insns(func) {
                self.attrs[i.idx()].set_ignore(true);
            }
        }
    }

    fn add_ignore_alternatives(&mut self, f: &mut Findings) -> Step {
        let bad = "bad .discard.ignore_alts entry";
        for i in self.read_section_annotations(".rela.discard.ignore_alts", bad, f)? {
            self.attrs[i.idx()].set_ignore_alts(true);
        }
        Ok(())
    }

    fn read_noendbr_hints(&mut self, f: &mut Findings) -> Step {
        let Some((_, relocs)) = self.rela_by_name(".rela.discard.noendbr") else {
            return Ok(());
        };
        for r in relocs {
            let (sec, off) = self.sym_sec_off(&r);
            let Some(i) = self.insns.at(sec, off) else {
                f.warn("bad .discard.noendbr entry");
                return Err(Fatal);
            };
            self.attrs[i.idx()].set_noendbr(true);
        }
        Ok(())
    }

    /// objtool: `add_call_dest()` — set the destination, drop the call's push, and do the
    /// call-site bookkeeping that matters for validation (dead ends, NOPed calls).
    fn add_call_dest(&mut self, id: InsnId, dest: SymIdx, sibling: bool, f: &mut Findings) {
        self.update_attr(id, f, |p, a| p.add_call_dest_to(id, a, dest, sibling));
    }

    fn add_retpoline_call(&mut self, id: InsnId, f: &mut Findings) {
        self.update_attr(id, f, |p, a| p.add_retpoline_call_to(id, a));
    }

    /// Applies `change` to a copy of `id`'s attributes, stores it, and prints the warning
    /// the change gives (the changes below read the model and change only `id`, so they
    /// can also be worked out side by side and stored in order).
    fn update_attr(
        &mut self,
        id: InsnId,
        f: &mut Findings,
        change: impl FnOnce(&Self, &mut Attr) -> Option<&'static str>,
    ) {
        let mut a = self.attrs[id.idx()];
        let warning = change(self, &mut a);
        self.attrs[id.idx()] = a;
        if let Some(w) = warning {
            self.warn_insn(f, id, w);
        }
    }

    /// [`Program::add_call_dest`] on `a`, a copy of `id`'s attributes.
    fn add_call_dest_to(
        &self,
        id: InsnId,
        a: &mut Attr,
        dest: SymIdx,
        sibling: bool,
    ) -> Option<&'static str> {
        a.call_dest = dest;
        if dest == NO_SYM {
            return None;
        }
        a.set_ops_removed(true);
        self.annotate_call_site_to(id, a, sibling)
    }

    /// [`Program::add_retpoline_call`] on `a`, a copy of `id`'s attributes.
    fn add_retpoline_call_to(&self, id: InsnId, a: &mut Attr) -> Option<&'static str> {
        a.kind = match a.kind {
            InsnKind::Call => InsnKind::CallDynamic,
            InsnKind::JumpUnconditional => InsnKind::JumpDynamic,
            InsnKind::JumpConditional => InsnKind::JumpDynamicConditional,
            _ => return None,
        };
        a.set_retpoline_safe(true);
        a.set_ops_removed(true);
        self.annotate_call_site_to(id, a, false)
    }

    /// objtool: `annotate_call_site()` on `a`, a copy of `id`'s attributes; returns its
    /// warning.
    fn annotate_call_site_to(
        &self,
        id: InsnId,
        a: &mut Attr,
        sibling: bool,
    ) -> Option<&'static str> {
        let mut sym = a.call_dest;
        if sym == NO_SYM {
            sym = self.reloc_of(id)?.sym;
        }
        let sec = self.insns.sec_of(id);
        if self.sec_names[sec.0 as usize] == ".altinstr_replacement" {
            return None;
        }
        let s = self.syms.get(sym);
        if s.static_call_tramp || s.retpoline_thunk {
            return None;
        }
        if self.opts.hack_noinstr && self.sec_noinstr[sec.0 as usize] && s.profiling_func {
            a.kind = if sibling {
                InsnKind::Return
            } else {
                InsnKind::Nop
            };
            if sibling {
                a.set_retpoline_safe(true);
            }
            return None;
        }
        if self.opts.mcount && s.fentry {
            if self.opts.mnop {
                a.kind = InsnKind::Nop;
            }
            return sibling.then_some("tail call to __fentry__ !?!?");
        }
        if !sibling {
            let dead = match self.dead_end_memo.get(&sym) {
                Some(&d) => d,
                None => self.dead_end_function(sym, 0),
            };
            if dead {
                a.set_dead_end(true);
            }
        }
        None
    }

    fn add_return_call(&mut self, id: InsnId) {
        let a = self.attr_mut(id);
        a.kind = InsnKind::Return;
        a.set_retpoline_safe(true);
    }

    /// objtool: `__dead_end_function()`.
    pub fn dead_end_function(&self, func: SymIdx, recursion: u32) -> bool {
        if func == NO_SYM {
            return false;
        }
        let s = self.syms.get(func);
        if self.opts.rules_6_1 {
            // objtool 6.1: its own list, for global symbols only
            if s.bind == elf::STB_GLOBAL && GLOBAL_NORETURNS_6_1.contains(&&*s.name) {
                return true;
            }
        } else if (s.bind == elf::STB_GLOBAL || s.bind == elf::STB_WEAK)
            && (is_rust_noreturn(&s.name) || GLOBAL_NORETURNS.contains(&&*s.name))
        {
            return true;
        }
        if s.bind == elf::STB_WEAK || s.len == 0 {
            return false;
        }
        let Some(first) = self.insns.at(s.sec, s.offset) else {
            return false;
        };
        if self.insn_func(first) == NO_SYM {
            return false;
        }
        // one pass: any return makes it return; else the first sibling call decides
        let mut any = false;
        let mut first_sibling = None;
        for i in self.func_insns_iter(func) {
            any = true;
            if self.attrs[i.idx()].kind == InsnKind::Return {
                return false;
            }
            if first_sibling.is_none() && self.is_sibling_call(i) {
                first_sibling = Some(i);
            }
        }
        if !any {
            return false;
        }
        if let Some(i) = first_sibling {
            let Some(dest) = self.attrs[i.idx()].jump_dest.get().map(InsnId) else {
                return false;
            };
            if recursion == 5 {
                return false;
            }
            return self.dead_end_function(self.insn_func(dest), recursion + 1);
        }
        true
    }

    /// objtool: `is_first_func_insn()`, for `id` at `offset`.
    fn is_first_func_insn(&self, id: InsnId, offset: u64, sym: SymIdx) -> bool {
        let s = self.syms.get(sym);
        if offset == s.offset {
            return true;
        }
        if self.opts.ibt {
            let i = self.insn(id);
            if let Some(prev) = self.prev_same_sec(id) {
                if self.attrs[prev.idx()].sym == self.attrs[id.idx()].sym
                    && self.attrs[prev.idx()].kind == InsnKind::Endbr
                    && u64::from(i.offset) == s.offset + u64::from(self.insn(prev).len)
                {
                    return true;
                }
            }
        }
        false
    }

    /// A batch at a time: `prepare` (in order), then `lookup` on each of the batch's items
    /// (read-only: on several threads for a large object), then `apply` on the results in
    /// the order of `items`, stopping at the first error.
    fn lookups<I: Copy + Sync, T: Send>(
        &mut self,
        items: &[I],
        mut prepare: impl FnMut(&mut Self, &[I]),
        lookup: impl Fn(&Self, I) -> T + Sync + Send,
        mut apply: impl FnMut(&mut Self, I, T) -> Step,
    ) -> Step {
        for batch in items.chunks(LOOKUP_BATCH) {
            prepare(self, batch);
            let this = &*self;
            let found = this.map_all(batch, LOOKUP_MIN_TASK, |&i| lookup(this, i));
            for (&i, t) in batch.iter().zip(found) {
                apply(self, i, t)?;
            }
        }
        Ok(())
    }

    /// Where a direct jump goes, from its relocation or its displacement.
    fn jump_target(&self, id: InsnId) -> JumpTarget {
        let func = self.insn_func(id);
        let (sec, off) = match self.reloc_of(id) {
            None => (self.insns.sec_of(id), self.jump_target_off(id)),
            Some(r) => {
                let s = self.syms.get(r.sym);
                if s.ty == elf::STT_SECTION {
                    (s.sec, (r.addend as u64).wrapping_add(4))
                } else if s.retpoline_thunk {
                    return JumpTarget::Retpoline;
                } else if s.return_thunk {
                    return JumpTarget::Return;
                } else if func != NO_SYM {
                    return JumpTarget::Sibling(r.sym);
                } else if s.sec.0 != 0 {
                    (
                        s.sec,
                        s.offset.wrapping_add((r.addend as u64).wrapping_add(4)),
                    )
                } else {
                    return JumpTarget::None;
                }
            }
        };
        // (the destination starts at `off`: its record is not read)
        let dest = self.insns.at(sec, off).map(|dest| {
            let dsym = self.attrs[dest.idx()].sym;
            let thunk = if dsym != NO_SYM && off == self.syms.get(dsym).offset {
                let ds = self.syms.get(dsym);
                if ds.retpoline_thunk {
                    Some(Thunk::Retpoline)
                } else if ds.return_thunk {
                    Some(Thunk::Return)
                } else {
                    None
                }
            } else {
                None
            };
            let dfunc = self.insn_func(dest);
            let cold_link = func != NO_SYM
                && dfunc != NO_SYM
                && func != dfunc
                && !self.syms.get(func).name.contains(".cold")
                && self.syms.get(dfunc).name.contains(".cold");
            // objtool: `jump_is_sibling_call()` up to its parent comparison
            let (fs, ts) = (self.attrs[id.idx()].sym, dsym);
            let sibling = if fs != NO_SYM
                && ts != NO_SYM
                && self.is_first_func_insn(dest, off, ts)
                && self.syms.get(ts).ty != elf::STT_NOTYPE
            {
                (fs, ts)
            } else {
                (NO_SYM, NO_SYM)
            };
            Dest {
                insn: dest,
                thunk,
                dfunc,
                cold_link,
                sibling,
            }
        });
        JumpTarget::Addr(sec, off, dest)
    }

    /// objtool: `add_jump_destinations()`. The destinations are looked up in parallel and
    /// applied in order. The call destinations are looked up in the same pass (they read
    /// nothing the analysis changes, and the lookup of an instruction is mostly the cache
    /// misses of reaching it) and returned, in order, for [`Program::add_call_destinations`].
    fn add_jump_destinations(
        &mut self,
        f: &mut Findings,
    ) -> Result<Vec<(InsnId, CallTarget)>, Fatal> {
        enum Target {
            Jump(JumpTarget),
            Call(CallTarget),
            Neither,
        }
        let branches = std::mem::take(&mut self.insns.branches);
        let lookup = |p: &Self, id: InsnId| {
            let a = &p.attrs[id.idx()];
            if a.kind == InsnKind::Call {
                Target::Call(p.call_target(id))
            } else if a.jump_dest.get().is_some() || !a.kind.is_static_jump() {
                Target::Neither
            } else {
                Target::Jump(p.jump_target(id))
            }
        };
        // the parent functions, which this step changes, kept compact for the sibling test
        let mut pfunc: Vec<SymIdx> = self.syms.syms.iter().map(|s| s.pfunc).collect();
        let mut calls = Vec::new();
        let r = self.lookups(
            &branches,
            |_, _| {},
            lookup,
            |p, id, target| match target {
                Target::Jump(t) => p.add_jump_destination(id, t, &mut pfunc, f),
                Target::Call(t) => {
                    calls.push((id, t));
                    Ok(())
                }
                Target::Neither => Ok(()),
            },
        );
        self.insns.branches = branches;
        r.map(|()| calls)
    }

    fn add_jump_destination(
        &mut self,
        id: InsnId,
        target: JumpTarget,
        pfunc: &mut [SymIdx],
        f: &mut Findings,
    ) -> Step {
        let k = id.idx();
        let func = self.insn_func(id);
        if self.attrs[k].jump_dest.get().is_some() || !self.attrs[k].kind.is_static_jump() {
            return Ok(());
        }
        let (dest_sec, dest_off, dest) = match target {
            JumpTarget::None => return Ok(()),
            JumpTarget::Retpoline => {
                self.add_retpoline_call(id, f);
                return Ok(());
            }
            JumpTarget::Return => {
                self.add_return_call(id);
                return Ok(());
            }
            JumpTarget::Sibling(sym) => {
                self.add_call_dest(id, sym, true, f);
                return Ok(());
            }
            JumpTarget::Addr(sec, off, dest) => (sec, off, dest),
        };
        let Some(dest) = dest else {
            if let Some(s) = self.syms.by_offset(dest_sec, dest_off) {
                if self.syms.get(s).embedded_insn {
                    self.add_return_call(id);
                    return Ok(());
                }
            }
            if self.ignore_unreachables
                && func != NO_SYM
                && dest_sec == self.insns.sec_of(id)
                && dest_off == self.syms.get(func).end()
            {
                return Ok(());
            }
            let msg = format!(
                "can't find jump dest instruction at {}+0x{dest_off:x}",
                self.sec_names[dest_sec.0 as usize]
            );
            self.warn_insn(f, id, &msg);
            return Err(Fatal);
        };
        match dest.thunk {
            Some(Thunk::Retpoline) => {
                self.add_retpoline_call(id, f);
                return Ok(());
            }
            Some(Thunk::Return) => {
                self.add_return_call(id);
                return Ok(());
            }
            None => {}
        }
        let dfunc = dest.dfunc;
        if dest.cold_link {
            self.syms.syms[func as usize].cfunc = dfunc;
            self.syms.syms[dfunc as usize].pfunc = func;
            pfunc[dfunc as usize] = func;
        }
        let (fs, ts) = dest.sibling;
        if fs != NO_SYM && pfunc[fs as usize] != pfunc[ts as usize] {
            self.add_call_dest(id, dfunc, true, f);
            return Ok(());
        }
        self.attrs[k].jump_dest = Packed::some(dest.insn.0);
        Ok(())
    }

    fn read_intra_function_calls(&mut self, f: &mut Findings) -> Step {
        let bad = "bad .discard.intra_function_call entry";
        for id in self.read_section_annotations(".rela.discard.intra_function_calls", bad, f)? {
            self.intra_function_call(id, f)?;
        }
        Ok(())
    }

    fn find_call_destination(&self, sec: SecId, off: u64) -> SymIdx {
        self.syms
            .func_by_offset(sec, off)
            .or_else(|| self.syms.by_offset(sec, off))
            .unwrap_or(NO_SYM)
    }

    /// Where a call goes, from its relocation or its displacement.
    fn call_target(&self, id: InsnId) -> CallTarget {
        match self.reloc_of(id) {
            None => {
                let sec = self.insns.sec_of(id);
                CallTarget::Direct(self.find_call_destination(sec, self.jump_target_off(id)))
            }
            Some(r) => {
                let s = self.syms.get(r.sym);
                if s.ty == elf::STT_SECTION {
                    let off = (r.addend as u64).wrapping_add(4);
                    CallTarget::Section(self.find_call_destination(s.sec, off))
                } else if s.retpoline_thunk {
                    CallTarget::Retpoline
                } else {
                    CallTarget::Sym(r.sym)
                }
            }
        }
    }

    /// objtool: `add_call_destinations()`, with the destinations [`Program::add_jump_destinations`]
    /// looked up. Whether each called function returns is answered once per function (in
    /// parallel) before the calls are annotated in order (it depends on returns and sibling
    /// calls only, which this step does not change).
    fn add_call_destinations(
        &mut self,
        calls: Vec<(InsnId, CallTarget)>,
        f: &mut Findings,
    ) -> Step {
        // each call's effect reads the model and changes only that call
        self.lookups(
            &calls,
            |p, batch| p.precompute_dead_ends(batch),
            |p, (id, target)| p.call_effect(id, target),
            |p, (id, _), e| {
                p.attrs[id.idx()] = e.attr;
                if let Some(w) = e.warning {
                    p.warn_insn(f, id, &w);
                }
                if e.fatal { Err(Fatal) } else { Ok(()) }
            },
        )
    }

    /// Answers "does this function never return" for the call targets of a batch not yet
    /// in the memo, in parallel (`dead_end_function()` reads returns and sibling calls,
    /// which the call step does not change, so answering early is answering the same).
    fn precompute_dead_ends(&mut self, calls: &[(InsnId, CallTarget)]) {
        let mut todo: Vec<SymIdx> = calls
            .iter()
            .filter_map(|&(_, t)| match t {
                CallTarget::Direct(s) | CallTarget::Section(s) | CallTarget::Sym(s) => Some(s),
                CallTarget::Retpoline => None,
            })
            .filter(|&s| s != NO_SYM && !self.dead_end_memo.contains_key(&s))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        let answers = self.map_all(&todo, 1, |&s| self.dead_end_function(s, 0));
        self.dead_end_memo.extend(todo.into_iter().zip(answers));
    }

    /// What adding the destination of call `id` does: its new attributes, and the warning
    /// it gives (and whether the analysis stops there). Reads the model, changes nothing.
    fn call_effect(&self, id: InsnId, target: CallTarget) -> CallEffect {
        let mut a = self.attrs[id.idx()];
        let effect = |warning: Option<Cow<'static, str>>, fatal: bool, a: Attr| CallEffect {
            attr: a,
            warning,
            fatal,
        };
        if a.kind != InsnKind::Call {
            return effect(None, false, a);
        }
        let warning = match target {
            CallTarget::Direct(dest) => {
                let w = self
                    .add_call_dest_to(id, &mut a, dest, false)
                    .map(Cow::Borrowed);
                if a.ignore() {
                    return effect(w, false, a);
                }
                if a.call_dest == NO_SYM {
                    return effect(Some("unannotated intra-function call".into()), true, a);
                }
                if self.insn_func(id) != NO_SYM && !self.syms.is_func(a.call_dest) {
                    return effect(Some("unsupported call to non-function".into()), true, a);
                }
                w
            }
            CallTarget::Section(dest) => {
                if dest == NO_SYM {
                    // (the address again from the relocation, for the message)
                    let (sec, off) = self
                        .reloc_of(id)
                        .map(|r| (self.syms.get(r.sym).sec, (r.addend as u64).wrapping_add(4)))
                        .unwrap_or_default();
                    let msg = format!(
                        "can't find call dest symbol at {}+0x{off:x}",
                        self.sec_names[sec.0 as usize]
                    );
                    return effect(Some(msg.into()), true, a);
                }
                self.add_call_dest_to(id, &mut a, dest, false)
                    .map(Cow::Borrowed)
            }
            CallTarget::Retpoline => self.add_retpoline_call_to(id, &mut a).map(Cow::Borrowed),
            CallTarget::Sym(sym) => self
                .add_call_dest_to(id, &mut a, sym, false)
                .map(Cow::Borrowed),
        };
        effect(warning, false, a)
    }

    /// Where a hint's or an annotation's relocation points: a section symbol plus addend,
    /// or a local label (`.L…`) itself; any other symbol is objtool's fatal error.
    fn label_target(
        &self,
        r: &Reloc,
        rname: &str,
        f: &mut Findings,
    ) -> Result<(SecId, u64), Fatal> {
        let s = self.syms.get(r.sym);
        if s.ty == elf::STT_SECTION {
            Ok((s.sec, r.addend as u64))
        } else if s.local_label {
            Ok((s.sec, s.offset))
        } else {
            f.warn(format!("unexpected relocation symbol type in {rname}"));
            Err(Fatal)
        }
    }

    /// `.discard.reachable` (objtool: `add_dead_ends()`).
    fn add_dead_ends(&mut self, f: &mut Findings) -> Step {
        let Some((rname, relocs)) = self.rela_by_name(".rela.discard.reachable") else {
            return Ok(());
        };
        for r in relocs {
            let (sec, off) = self.label_target(&r, &rname, f)?;
            let target = match self.insns.at(sec, off) {
                Some(i) => self.prev_same_sec(i),
                None if off == self.sec_size[sec.0 as usize] => {
                    let found = self.last_insn(sec);
                    if found.is_none() {
                        f.warn(format!(
                            "can't find reachable insn at {}+0x{off:x}",
                            self.sec_names[sec.0 as usize]
                        ));
                        return Err(Fatal);
                    }
                    found
                }
                None => {
                    f.warn(format!(
                        "can't find reachable insn at {}+0x{off:x}",
                        self.sec_names[sec.0 as usize]
                    ));
                    return Err(Fatal);
                }
            };
            if let Some(t) = target {
                self.attrs[t.idx()].set_dead_end(false);
            }
        }
        Ok(())
    }

    /// objtool: `arch_find_switch_table()`.
    fn find_switch_table(&mut self, id: InsnId) -> Option<(SecId, u32)> {
        let text = self.reloc_of(id)?;
        let s = self.syms.get(text.sym);
        if s.ty != elf::STT_SECTION || !self.sec_rodata[s.sec.0 as usize] {
            return None;
        }
        let table_sec = s.sec;
        let mut table_off = text.addend as u64;
        if text.ty == elf::R_X86_64_PC32 {
            table_off = table_off.wrapping_add(4);
        }
        if self.syms.containing(table_sec, table_off).is_some()
            && self.sec_names[table_sec.0 as usize] != ".data.rel.ro.c_jump_table"
        {
            return None;
        }
        let t = self.relocs.table(table_sec)?;
        let k = t.at(table_off)?;
        if text.ty == elf::R_X86_64_PC32 {
            self.ignore_unreachables = true;
        }
        Some((table_sec, k))
    }

    fn table_reloc(&self, t: (SecId, u32)) -> Reloc {
        self.relocs
            .table(t.0)
            .map(|tt| tt.get(t.1 as usize))
            .unwrap_or(Reloc {
                offset: 0,
                sym: 0,
                ty: 0,
                addend: 0,
            })
    }

    /// objtool: `find_jump_table()`.
    fn find_jump_table(&mut self, func: SymIdx, jump: InsnId) -> Option<(SecId, u32)> {
        let mut cur = Some(jump);
        let mut steps = 0usize;
        while let Some(id) = cur {
            let f = self.insn_func(id);
            if f == NO_SYM || self.syms.get(f).pfunc != func {
                break;
            }
            steps += 1;
            if steps > self.insns.insns.len() {
                break;
            }
            let a = &self.attrs[id.idx()];
            if id != jump && a.kind == InsnKind::JumpDynamic {
                break;
            }
            if a.kind == InsnKind::JumpUnconditional {
                if let Some(d) = a.jump_dest.get().map(InsnId) {
                    let doff = self.insn(d).offset;
                    if doff <= self.insn(id).offset || doff > self.insn(jump).offset {
                        break;
                    }
                }
            }
            let next = match self.first_jump_src.get(&id).copied() {
                Some(src) => Some(src),
                None => self
                    .prev_same_sec(id)
                    .filter(|&p| self.insn_func(p) == self.insn_func(id)),
            };
            if let Some(table) = self.find_switch_table(id) {
                let r = self.table_reloc(table);
                let (sec, off) = (self.syms.get(r.sym).sec, r.addend as u64);
                if let Some(d) = self.insns.at(sec, off) {
                    let df = self.insn_func(d);
                    if df != NO_SYM && self.syms.get(df).pfunc == func {
                        return Some(table);
                    }
                }
            }
            cur = next;
        }
        None
    }

    fn add_jump_table(
        &mut self,
        jump: InsnId,
        next_table: Option<(SecId, u32)>,
        f: &mut Findings,
    ) -> Step {
        let pfunc = self.syms.get(self.insn_func(jump)).pfunc;
        let (psec, poff, pend) = {
            let p = self.syms.get(pfunc);
            (p.sec, p.offset, p.end())
        };
        let Some(table) = self.jump_table(jump) else {
            return Ok(());
        };
        let Some(t) = self.relocs.table(table.0) else {
            return Ok(());
        };
        let mut prev_offset = 0u64;
        let mut targets = Vec::new();
        for k in table.1..t.len() as u32 {
            let r = t.get(k as usize);
            if k != table.1 && Some((table.0, k)) == next_table {
                break;
            }
            if prev_offset != 0 && r.offset != prev_offset + 8 {
                break;
            }
            let rs = self.syms.get(r.sym);
            if rs.sec == psec && r.addend as u64 == poff {
                break;
            }
            if rs.sec == psec && r.addend as u64 == pend {
                prev_offset = r.offset;
                continue;
            }
            let Some(d) = self.insns.at(rs.sec, r.addend as u64) else {
                break;
            };
            let df = self.insn_func(d);
            if df == NO_SYM || self.syms.get(df).pfunc != pfunc {
                break;
            }
            targets.push(Alt {
                target: d,
                skip_orig: false,
            });
            prev_offset = r.offset;
        }
        if prev_offset == 0 {
            self.warn_insn(f, jump, "can't find switch jump table");
            return Err(Fatal);
        }
        if !targets.is_empty() {
            self.attrs[jump.idx()].set_has_alts(true);
            self.alts.entry(jump).or_default().extend(targets);
        }
        Ok(())
    }

    /// objtool: `add_jump_table_alts()` (with `mark_func_jump_tables()`).
    ///
    /// objtool walks every function in symbol-list order, leaving on each forward jump's
    /// destination a back-pointer to the jump (the first one stays) and, at each dynamic
    /// jump, backtracking through those back-pointers to find its switch table. Only a
    /// function whose walk can meet a dynamic jump searches, and a search reads only
    /// back-pointers inside its own family ([`JumpTableScope`]). So only those functions
    /// are walked here in full, in order; every other function replays, at its turn, the
    /// back-pointers it leaves inside such families, collected beforehand on all threads.
    /// Every back-pointer a search can read is written in objtool's order.
    fn add_jump_table_alts(&mut self, f: &mut Findings) -> Step {
        if !self.has_rodata {
            return Ok(());
        }
        // the functions in walk order
        let order: Vec<SymIdx> = self
            .syms
            .lists
            .iter()
            .flatten()
            .copied()
            .filter(|&s| self.syms.is_func(s))
            .collect();
        let scope = JumpTableScope::new(self);
        let replay = |p: &Self, func: SymIdx| -> Vec<(InsnId, InsnId)> {
            if scope.search[func as usize] || !scope.writes_into_searched(p, func) {
                return Vec::new();
            }
            let run = p.insns.section_range(p.syms.get(func).sec);
            p.func_insns_iter(func)
                .filter_map(|id| {
                    let d = p.forward_dest(&run, id)?;
                    scope.readable(p, d).then_some((d, id))
                })
                .collect()
        };
        let replays = self.map_all(&order, 1, |&func| replay(self, func));
        let mut dynamic = Vec::new();
        for (&func, writes) in order.iter().zip(replays) {
            if !scope.search[func as usize] {
                // (no dynamic jump, so no table for pass 2 either)
                for (d, src) in writes {
                    self.first_jump_src.entry(d).or_insert(src);
                }
                continue;
            }
            // pass 1: back-pointers and table discovery (and the dynamic branches, the
            // only instructions that can have a table)
            dynamic.clear();
            let fs = self.syms.get(func);
            let mut cur = self.insns.at(fs.sec, fs.offset);
            let run = self.insns.section_range(fs.sec);
            let mut n = 0;
            while let Some(id) = cur {
                n += 1;
                if n > self.insns.insns.len() + 1 {
                    break; // a cold-part cycle in hostile input
                }
                cur = self.next_same_func(id);
                if let Some(d) = self.forward_dest(&run, id) {
                    self.first_jump_src.entry(d).or_insert(id);
                }
                match self.attrs[id.idx()].kind {
                    InsnKind::JumpDynamic => {}
                    InsnKind::CallDynamic => {
                        dynamic.push(id);
                        continue;
                    }
                    _ => continue,
                }
                dynamic.push(id);
                if let Some(t) = self.find_jump_table(func, id) {
                    self.jump_tables.insert(id, t);
                }
            }
            // pass 2: table contents
            let jumps: Vec<InsnId> = dynamic
                .iter()
                .copied()
                .filter(|&i| self.jump_table(i).is_some())
                .collect();
            for (n, &j) in jumps.iter().enumerate() {
                let next = jumps.get(n + 1).and_then(|&nj| self.jump_table(nj));
                self.add_jump_table(j, next, f)?;
            }
        }
        Ok(())
    }

    /// The destination of `id` if it is a forward jump: the back-pointer the jump-table
    /// walk of a function in the section whose instructions are `run` leaves.
    fn forward_dest(&self, run: &std::ops::Range<u32>, id: InsnId) -> Option<InsnId> {
        let d = self.attrs[id.idx()].jump_dest.get().map(InsnId)?;
        // a later offset: within one section, a later id (no lookup of `d`)
        let same_sec = run.contains(&id.0) && run.contains(&d.0);
        let later = if self.is_real(id) && self.is_real(d) && same_sec {
            d.0 > id.0
        } else {
            self.insn(d).offset > self.insn(id).offset
        };
        later.then_some(d)
    }

    /// Whether the instructions a function's walk visits (`func_for_each_insn`: from its
    /// first instruction through its owner's run, then each `.cold` part's) may include
    /// one that `insn` says yes to, or one owned by a symbol `owner` says yes to. Errs
    /// on the side of yes: an owner stands for all its instructions, and a long chain of
    /// parts (hostile input) is a yes.
    fn func_walk_may_meet(
        &self,
        func: SymIdx,
        insn: impl Fn(InsnId) -> bool,
        owner: impl Fn(SymIdx) -> bool,
    ) -> bool {
        let f = self.syms.get(func);
        let mut cur = self.insns.at(f.sec, f.offset);
        for _ in 0..JUMP_TABLE_CHAIN_LIMIT {
            let Some(id) = cur else { return false };
            if insn(id) {
                return true;
            }
            let o = self.insn_func(id);
            if o == NO_SYM {
                return false;
            }
            if owner(o) {
                return true;
            }
            let c = self.syms.get(o).cfunc;
            if c == o {
                return false;
            }
            let cs = self.syms.get(c);
            cur = self.insns.at(cs.sec, cs.offset);
        }
        true
    }

    /// objtool: `read_unwind_hints()`.
    /// The instructions an annotation section's relocations point at (section symbol +
    /// addend, as objtool requires); `bad` is objtool's message for one that points
    /// nowhere.
    fn read_section_annotations(
        &self,
        name: &str,
        bad: &str,
        f: &mut Findings,
    ) -> Result<Vec<InsnId>, Fatal> {
        let Some((rname, relocs)) = self.rela_by_name(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in relocs {
            let s = self.syms.get(r.sym);
            if s.ty != elf::STT_SECTION {
                f.warn(format!("unexpected relocation symbol type in {rname}"));
                return Err(Fatal);
            }
            match self.insns.at(s.sec, r.addend as u64) {
                Some(i) => out.push(i),
                None => {
                    f.warn(bad);
                    return Err(Fatal);
                }
            }
        }
        Ok(out)
    }

    fn read_retpoline_hints(&mut self, f: &mut Findings) -> Step {
        for id in self.read_section_annotations(
            ".rela.discard.retpoline_safe",
            "bad .discard.retpoline_safe entry",
            f,
        )? {
            if !matches!(
                self.attrs[id.idx()].kind,
                InsnKind::JumpDynamic | InsnKind::CallDynamic | InsnKind::Return | InsnKind::Nop
            ) {
                self.warn_insn(
                    f,
                    id,
                    "retpoline_safe hint not an indirect jump/call/ret/nop",
                );
                return Err(Fatal);
            }
            self.attrs[id.idx()].set_retpoline_safe(true);
        }
        Ok(())
    }

    fn read_instr_hints(&mut self, f: &mut Findings) -> Step {
        if self
            .obj
            .section_by_name(b".rela.discard.instr_end")
            .is_none()
        {
            return Ok(());
        }
        for id in self.read_section_annotations(
            ".rela.discard.instr_end",
            "bad .discard.instr_end entry",
            f,
        )? {
            self.attrs[id.idx()].instr = self.attrs[id.idx()].instr.wrapping_sub(1);
        }
        for id in self.read_section_annotations(
            ".rela.discard.instr_begin",
            "bad .discard.instr_begin entry",
            f,
        )? {
            self.attrs[id.idx()].instr = self.attrs[id.idx()].instr.wrapping_add(1);
        }
        Ok(())
    }

    fn read_validate_unret_hints(&mut self, f: &mut Findings) -> Step {
        self.read_section_annotations(
            ".rela.discard.validate_unret",
            "bad .discard.instr_end entry", // (sic: objtool's text)
            f,
        )
        .map(|_| ())
    }

    /// Adds a synthetic instruction (an alternative's padding NOP); it is not found by
    /// address and has no neighbours.
    pub fn add_synthetic_nop(&mut self, sec: SecId, offset: u32, len: u8) -> InsnId {
        let id = self.insns.push_synthetic(
            sec,
            Insn {
                offset,
                len,
                kind: InsnKind::Nop,
                flags: 0,
                immediate: 0,
                ops_start: 0,
                ops_len: 0,
            },
        );
        self.attrs.push(Attr {
            kind: InsnKind::Nop,
            ..Attr::default()
        });
        id
    }

    /// Is this one of the decoded instructions (not a synthetic NOP)?
    pub fn is_real(&self, id: InsnId) -> bool {
        id.idx() < self.nreal
    }
}

/// Longest chain of `.cold` parts [`Program::func_walk_may_meet`] follows before it
/// answers yes.
const JUMP_TABLE_CHAIN_LIMIT: usize = 32;

/// Which functions' jump-table walks matter (see [`Program::add_jump_table_alts`]).
struct JumpTableScope {
    /// Per symbol: a function whose walk may meet a dynamic jump, and so searches for
    /// switch tables.
    search: Vec<bool>,
    /// Per symbol: its instructions may be visited by a search (its parent function
    /// searches: a search stays among instructions whose function's parent is the
    /// searching function).
    readable: Vec<bool>,
    /// Per symbol: owns a jump whose destination is readable.
    writes: Vec<bool>,
}

impl JumpTableScope {
    fn new(p: &Program<'_, '_>) -> Self {
        let n = p.syms.syms.len();
        let func_of = |id: InsnId| Some(p.insn_func(id)).filter(|&s| s != NO_SYM);
        // One look at each instruction that can matter: a dynamic jump is an indirect jump
        // as decoded or a jump to a retpoline thunk (a branch), and only branches have a
        // jump destination. Kept: the dynamic jumps, and the jumps into another symbol's
        // instructions.
        let is_dynamic = |id: InsnId| p.attrs[id.idx()].kind == InsnKind::JumpDynamic;
        let jumps_across = |id: InsnId| {
            let a = &p.attrs[id.idx()];
            a.jump_dest
                .get()
                .is_some_and(|d| p.attrs[d as usize].sym != a.sym)
        };
        let look = |&id: &InsnId| (is_dynamic(id) || jumps_across(id)).then_some(id);
        let ids = [&p.insns.indirect_jumps[..], &p.insns.branches[..]];
        let seen: Vec<InsnId> = if p.parallel() {
            use rayon::prelude::*;
            ids.par_iter()
                .flat_map(|list| list.par_iter().filter_map(look))
                .collect()
        } else {
            ids.iter()
                .flat_map(|list| list.iter().filter_map(look))
                .collect()
        };
        let mut has_dynamic = vec![false; n];
        for &id in &seen {
            if let Some(o) = func_of(id).filter(|_| is_dynamic(id)) {
                has_dynamic[o as usize] = true;
            }
        }
        let searches = |s: SymIdx| {
            p.syms.is_func(s) && p.func_walk_may_meet(s, is_dynamic, |o| has_dynamic[o as usize])
        };
        let search: Vec<bool> = if p.parallel() {
            use rayon::prelude::*;
            (0..n as SymIdx).into_par_iter().map(searches).collect()
        } else {
            (0..n as SymIdx).map(searches).collect()
        };
        // (with the function test folded in)
        let readable: Vec<bool> = p
            .syms
            .syms
            .iter()
            .enumerate()
            .map(|(i, s)| {
                p.syms.is_func(i as SymIdx) && s.pfunc != NO_SYM && search[s.pfunc as usize]
            })
            .collect();
        let mut scope = JumpTableScope {
            search,
            readable,
            writes: Vec::new(),
        };
        // a jump into its own symbol's instructions writes where they are readable
        let mut writes = scope.readable.clone();
        for &id in &seen {
            let Some(d) = p.attrs[id.idx()].jump_dest.get() else {
                continue;
            };
            if let Some(o) = func_of(id).filter(|_| scope.readable(p, InsnId(d))) {
                writes[o as usize] = true;
            }
        }
        scope.writes = writes;
        scope
    }

    /// Whether a search may visit `id`.
    fn readable(&self, p: &Program<'_, '_>, id: InsnId) -> bool {
        let o = p.attrs[id.idx()].sym;
        o != NO_SYM && self.readable[o as usize]
    }

    /// Whether the walk of `func` may leave a back-pointer a search can read.
    fn writes_into_searched(&self, p: &Program<'_, '_>, func: SymIdx) -> bool {
        let jumps_in = |id: InsnId| {
            p.attrs[id.idx()]
                .jump_dest
                .get()
                .is_some_and(|d| self.readable(p, InsnId(d)))
        };
        p.func_walk_may_meet(func, jumps_in, |o| self.writes[o as usize])
    }
}

/// objtool: `is_rust_noreturn()`.
fn is_rust_noreturn(name: &str) -> bool {
    if !name.starts_with("_R") {
        return false;
    }
    const ENDS: [&str; 17] = [
        "_4core3num22from_ascii_radix_panic",
        "_4core5sliceSp15copy_from_slice17len_mismatch_fail",
        "_4core6option13expect_failed",
        "_4core6option13unwrap_failed",
        "_4core6result13unwrap_failed",
        "_4core6result13unwrap_failed19unwrap_failed_inner",
        "_4core9panicking5panic",
        "_4core9panicking9panic_fmt",
        "_4core9panicking14panic_explicit",
        "_4core9panicking14panic_nounwind",
        "_4core9panicking18panic_bounds_check",
        "_4core9panicking18panic_nounwind_fmt",
        "_4core9panicking19assert_failed_inner",
        "_4core9panicking30panic_null_pointer_dereference",
        "_4core9panicking32panic_null_reference_constructed",
        "_4core9panicking36panic_misaligned_pointer_dereference",
        "_7___rustc17rust_begin_unwind",
    ];
    ENDS.iter().any(|e| name.ends_with(e))
        || name.contains("_4core9panicking13assert_failed")
        || name.contains("_4core9panicking11panic_const24panic_const_")
        || (name.contains("_4core5slice5index")
            && name.contains("slice_")
            && name.ends_with("_fail"))
}

/// objtool 6.1's `global_noreturns[]`.
pub const GLOBAL_NORETURNS_6_1: [&str; 25] = [
    "__invalid_creds",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__ubsan_handle_builtin_unreachable",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "fortify_panic",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "lbug_with_loc",
    "machine_real_restart",
    "make_task_dead",
    "panic",
    "rewind_stack_and_make_dead",
    "sev_es_terminate",
    "snp_abort",
    "stop_this_cpu",
    "usercopy_abort",
    "xen_start_kernel",
];

/// objtool's noreturns.h (6.12).
pub const GLOBAL_NORETURNS: [&str; 45] = [
    "__fortify_panic",
    "__ia32_sys_exit",
    "__ia32_sys_exit_group",
    "__kunit_abort",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__tdx_hypercall_failed",
    "__ubsan_handle_builtin_unreachable",
    "__x64_sys_exit",
    "__x64_sys_exit_group",
    "arch_cpu_idle_dead",
    "bch2_trans_in_restart_error",
    "bch2_trans_restart_error",
    "bch2_trans_unlocked_error",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "hlt_play_dead",
    "hv_ghcb_terminate",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "machine_real_restart",
    "make_task_dead",
    "mpt_halt_firmware",
    "nmi_panic_self_stop",
    "panic",
    "panic_smp_self_stop",
    "rest_init",
    "rewind_stack_and_make_dead",
    "rust_begin_unwind",
    "rust_helper_BUG",
    "sev_es_terminate",
    "snp_abort",
    "start_kernel",
    "stop_this_cpu",
    "usercopy_abort",
    "x86_64_start_kernel",
    "x86_64_start_reservations",
    "xen_cpu_bringup_again",
    "xen_start_kernel",
];
