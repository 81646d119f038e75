//! The program model the walk runs on: instructions with their attributes, owners,
//! destinations, alternatives and hints, and the questions asked of it.

use rustc_hash::FxHashMap as HashMap;

use object::elf;
use object::read::elf::SectionHeader as _;

use super::hints::Hint;
use super::relocs::Reloc;
use super::symbols::Symbols;
use crate::decode::{Insn, InsnId, InsnKind, InsnTable};
use crate::elf::{LE, Object, SecId};
use crate::ids::{AltGroupId, PackedSymId, StreamId, SymId, Table};
use crate::options::Options;
use crate::report::{FindingKind, LocatedSymbol, Location, Report, SectionOffset};

/// Objects with fewer instructions are built, walked and generated on one thread
/// ([`Program::parallel`]).
pub(super) const PARALLEL_MIN_INSNS: usize = 100_000;

/// A large section's owners are painted in this many stretches side by side (each
/// stretch looks at every owner's range).
pub(super) const OWNER_STRETCHES: usize = 16;
/// Instructions per batch of [`Program::lookups`] (and of the call step): small enough
/// that the records a batch's lookups touched are still cached when it is applied (1 << 18
/// cost vmlinux.o's build ~9 ms more), large enough for a few parallel tasks.
pub(super) const LOOKUP_BATCH: usize = 1 << 14;
/// Fewest lookups of a batch per parallel task.
pub(super) const LOOKUP_MIN_TASK: usize = 4096;

/// Why the analysis stopped: objtool's fatal `return -1`. The finding that says what
/// happened is already reported; the variant says which stage stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// A build pass met input it cannot model (bad special sections, annotations or
    /// hints, a jump or call it cannot resolve, …).
    #[error("the program model cannot be built")]
    Build,
    /// A recorded state has no ORC encoding.
    #[error("a state has no ORC entry")]
    Orc,
}

/// The result of a build pass.
pub type Step = Result<(), AnalysisError>;

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
    pub(super) flags: u16,
    /// The symbol containing the instruction (objtool's `insn->sym`).
    pub sym: PackedSymId,
    pub jump_dest: Packed,
    pub call_dest: PackedSymId,
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
    11 => unret, set_unret;
}

impl Default for Attr {
    fn default() -> Self {
        Attr {
            kind: InsnKind::Other,
            instr: 0,
            flags: 0,
            sym: PackedSymId::NONE,
            jump_dest: Packed::NONE,
            call_dest: PackedSymId::NONE,
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
    pub alts: HashMap<InsnId, Vec<Alt>>,
    /// The alternative stream of each instruction that has one (flagged in its `Attr`).
    pub(super) stream_of: HashMap<InsnId, StreamId>,
    /// The unwind hints, in file order (`cfi::hint` makes their states).
    pub hints: Vec<(InsnId, Hint)>,
    /// Switch tables of indirect jumps: (table section, relocation index).
    pub jump_tables: HashMap<InsnId, (SecId, u32)>,
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
    pub ignore_unreachables: bool,
    /// The call sites objtool's actions list, and the calls it rewrites.
    pub sites: super::sites::Sites,
    /// `--ibt`: the addresses of instructions that code and data take.
    pub ibt_refs: super::ibt::IbtRefs,
    /// `--noinstr`: the paravirt slots and the calls through them (none without a
    /// `pv_ops` table).
    pub pv_ops: Option<super::pv_ops::PvOps>,
}

impl<'a, 'data> Program<'a, 'data> {
    pub fn insn(&self, id: InsnId) -> &Insn {
        self.insns.get(id)
    }

    pub fn attr(&self, id: InsnId) -> &Attr {
        &self.attrs[id.idx()]
    }

    pub(super) fn attr_mut(&mut self, id: InsnId) -> &mut Attr {
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
    pub fn insn_func(&self, id: InsnId) -> Option<SymId> {
        self.attrs[id.idx()]
            .sym
            .get()
            .filter(|&s| self.syms.is_func(s))
    }

    /// objtool: `insn_call_dest()`.
    pub fn call_dest(&self, id: InsnId) -> Option<SymId> {
        let a = &self.attrs[id.idx()];
        if matches!(a.kind, InsnKind::JumpDynamic | InsnKind::CallDynamic) {
            None
        } else {
            a.call_dest.get()
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
        if self.insn_func(id).is_some() && kind == InsnKind::JumpDynamic {
            return !self.is_jump_table_jump(id);
        }
        kind.is_static_jump() && self.call_dest(id).is_some()
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
        let func = self.insn_func(id)?;
        let next = self.next_same_sec(id);
        if let Some(n) = next {
            if self.insn_func(n) == Some(func) {
                return Some(n);
            }
        }
        let cfunc = self.syms.get(func).cfunc?;
        if cfunc == func {
            return None;
        }
        let c = self.syms.get(cfunc);
        self.insns.at(c.sec, c.offset)
    }

    /// objtool: `next_insn_to_validate()` — the next instruction on a path: alternatives
    /// are patched in place, so the end of a replacement (or its padding NOP) continues
    /// after the original.
    pub fn next_to_validate(&self, insn: InsnId) -> Option<InsnId> {
        if let Some((stream, _)) = self.alt_site(insn) {
            let next_orig = || self.next_same_sec(self.streams[stream.parent?].last?);
            if let Some(nop) = stream.nop {
                if Some(insn) == stream.last {
                    return Some(nop);
                }
                if insn == nop {
                    return next_orig();
                }
            }
            if Some(insn) == stream.last && !stream.is_orig() {
                return next_orig();
            }
        }
        self.next_same_sec(insn)
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

    /// `range.filter_map(f).collect()` over instruction (or other) indices, on all threads
    /// when [`Program::parallel`] (in tasks of at least `min_len` indices), in order either
    /// way: [`Program::map_all`] for a range.
    pub fn filter_map_range<T: Send>(
        &self,
        range: std::ops::Range<u32>,
        min_len: usize,
        f: impl Fn(u32) -> Option<T> + Sync + Send,
    ) -> Vec<T> {
        if self.parallel() {
            use rayon::prelude::*;
            range
                .into_par_iter()
                .with_min_len(min_len)
                .filter_map(f)
                .collect()
        } else {
            range.filter_map(f).collect()
        }
    }

    /// [`Program::func_insns`] without collecting them: [`Program::next_same_func`] from the
    /// function's first instruction, with the function being followed kept from step to
    /// step (inside it, the next instruction is its own when it has the same symbol).
    pub fn func_insns_iter(&self, func: SymId) -> impl Iterator<Item = InsnId> + '_ {
        let f = self.syms.get(func);
        let mut cur = self.insns.at(f.sec, f.offset);
        // (objtool's `insn_func()` of `cur`: only a function symbol is followed)
        let mut owner = cur.and_then(|i| self.insn_func(i));
        let mut n = 0;
        let limit = self.insns.insns.len() + 1; // a cold-part cycle in hostile input
        std::iter::from_fn(move || {
            let i = cur?;
            n += 1;
            if n > limit {
                return None;
            }
            let Some(func) = owner else {
                cur = None;
                return Some(i);
            };
            cur = match self.next_same_sec(i) {
                Some(next) if self.attrs[next.idx()].sym.get() == Some(func) => Some(next),
                _ => {
                    let cfunc = self.syms.get(func).cfunc.filter(|&c| c != func);
                    let c = cfunc.and_then(|c| {
                        let c = self.syms.get(c);
                        self.insns.at(c.sec, c.offset)
                    });
                    owner = c.and_then(|c| self.insn_func(c));
                    c
                }
            };
            // (every test's functions are followed both ways)
            debug_assert_eq!(cur, self.next_same_func(i));
            Some(i)
        })
    }

    /// The instructions of a function and then of its `.cold` part (`func_for_each_insn`).
    pub fn func_insns(&self, func: SymId) -> Vec<InsnId> {
        self.func_insns_iter(func).collect()
    }

    /// The instructions starting inside a symbol's range, as consecutive ids (objtool's
    /// `sym_for_each_insn`).
    pub fn sym_range(&self, sym: SymId) -> std::ops::Range<u32> {
        let s = self.syms.get(sym);
        let Some(start) = self.insns.at(s.sec, s.offset) else {
            return 0..0;
        };
        let end = self.insns.first_from(s.sec, s.end());
        start.0..end.0.max(start.0)
    }

    /// objtool: `offstr()` — `func+0x12`, `sym+0x4`, or `sec+0x40`; with `--sec-address`
    /// the section form follows in parentheses.
    pub fn location(&self, sec: SecId, off: u64) -> Location {
        let mut sym = None;
        if self.sec_exec.get(sec.0 as usize).copied().unwrap_or(false) {
            sym = self.syms.func_containing(sec, off);
        }
        if sym.is_none() {
            sym = self.syms.containing(sec, off);
        }
        Location {
            section: sec,
            section_name: self.sec_names[sec.0 as usize].clone(),
            offset: off,
            function: sym.map(|s| {
                let sym = self.syms.get(s);
                LocatedSymbol {
                    id: s,
                    name: sym.name.to_string(),
                    offset: off.wrapping_sub(sym.offset),
                }
            }),
            sec_address: self.opts.sec_address,
        }
    }

    /// A section offset as a location without a symbol (objtool prints `sec+0xoff`).
    pub fn section_location(&self, sec: SecId, off: u64) -> Location {
        Location {
            section: sec,
            section_name: self.sec_names[sec.0 as usize].clone(),
            offset: off,
            function: None,
            sec_address: false,
        }
    }

    /// A section offset as text for a message (no symbol lookup).
    pub fn section_offset(&self, sec: SecId, off: u64) -> SectionOffset {
        SectionOffset {
            section: self.sec_names[sec.0 as usize].clone(),
            offset: off,
        }
    }

    /// [`Program::location`] as text.
    pub fn loc(&self, sec: SecId, off: u64) -> String {
        self.location(sec, off).to_string()
    }

    /// The location of an instruction.
    pub fn insn_location(&self, id: InsnId) -> Location {
        let i = self.insn(id);
        self.location(self.insns.sec_of(id), u64::from(i.offset))
    }

    pub fn insn_loc(&self, id: InsnId) -> String {
        let i = self.insn(id);
        self.loc(self.insns.sec_of(id), u64::from(i.offset))
    }

    /// `WARN_INSN(insn, …)`.
    pub fn warn_insn(&self, f: &mut impl Report, id: InsnId, what: impl Into<FindingKind>) {
        f.warn_insn(
            self.attrs[id.idx()].sym.get(),
            self.insn_location(id),
            what.into(),
        );
    }

    /// The static destination of a relative branch.
    pub fn jump_target_off(&self, id: InsnId) -> u64 {
        let i = self.insn(id);
        i.end().wrapping_add(i.immediate as i64 as u64)
    }

    pub(super) fn sym_sec_off(&self, r: &Reloc) -> (SecId, u64) {
        let s = self.syms.get(r.sym);
        (s.sec, s.offset.wrapping_add(r.addend as u64))
    }

    /// Is this one of the decoded instructions (not a synthetic NOP)?
    pub fn is_real(&self, id: InsnId) -> bool {
        id.idx() < self.nreal
    }
}

impl<'a, 'data> Program<'a, 'data> {
    /// The model before any pass: sections classified, one attribute record per
    /// instruction (its kind; `ud2` a dead end).
    pub(super) fn new(
        obj: &'a Object<'data>,
        opts: &'a Options,
        insns: InsnTable,
        syms: Symbols<'data>,
    ) -> Self {
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
        let nreal = insns.insns.len();
        Program {
            obj,
            opts,
            insns,
            attrs,
            syms,
            alts: HashMap::default(),
            stream_of: HashMap::default(),
            hints: Vec::new(),
            jump_tables: HashMap::default(),
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
            nreal,
            ignore_unreachables: opts.no_unreachable,
            sites: Default::default(),
            ibt_refs: Default::default(),
            pv_ops: None,
        }
    }
}
