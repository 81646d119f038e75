//! Decoding: every executable section, linearly from offset 0, into one instruction table.
//!
//! objtool: `decode_instructions()`. Instructions of a section get consecutive ids in
//! offset order, so "next instruction" is `id + 1` within the section and an address lookup
//! is a binary search.

pub mod regs;
mod sections;
pub mod x86;

pub use sections::{Threads, decode, is_exec, warm_up};

use crate::elf::SecId;
use crate::offsets::OffsetIndex;
use x86::DecodeNote;

/// objtool's `enum insn_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[repr(u8)]
pub enum InsnKind {
    JumpConditional,
    JumpUnconditional,
    JumpDynamic,
    JumpDynamicConditional,
    Call,
    CallDynamic,
    Return,
    ContextSwitch,
    Bug,
    Nop,
    Stac,
    Clac,
    Std,
    Cld,
    Trap,
    Endbr,
    #[default]
    Other,
}

impl InsnKind {
    pub fn is_static_jump(self) -> bool {
        matches!(
            self,
            InsnKind::JumpConditional | InsnKind::JumpUnconditional
        )
    }
    pub fn is_dynamic_jump(self) -> bool {
        matches!(
            self,
            InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional
        )
    }
}

/// An operand of a stack operation (objtool's `op_dest`/`op_src` kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A register (dest or src).
    Reg(i8),
    /// Memory at `reg + disp` (dest: store; src: load).
    RegIndirect(i8, i32),
    /// dest: some memory (pop to memory, popf).
    Mem,
    /// dest: push.
    Push,
    /// dest: pushf.
    PushF,
    /// src: a constant.
    Const,
    /// src: pop.
    Pop,
    /// src: popf.
    PopF,
    /// src: `reg + k`.
    Add(i8, i32),
    /// src: `reg & imm`.
    And(i8, i32),
}

/// One stack operation `dest ← src`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackOp {
    pub dest: Op,
    pub src: Op,
}

/// A [`StackOp`] as stored in the table: 8 bytes (two operand kinds, two registers, one
/// value; no stack operation has two operands that carry a value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackedOp {
    kinds: [u8; 2],
    regs: [i8; 2],
    value: i32,
}

const _: () = assert!(size_of::<PackedOp>() == 8);

impl Op {
    fn pack(self) -> (u8, i8, i32) {
        match self {
            Op::Reg(r) => (0, r, 0),
            Op::RegIndirect(r, v) => (1, r, v),
            Op::Mem => (2, 0, 0),
            Op::Push => (3, 0, 0),
            Op::PushF => (4, 0, 0),
            Op::Const => (5, 0, 0),
            Op::Pop => (6, 0, 0),
            Op::PopF => (7, 0, 0),
            Op::Add(r, v) => (8, r, v),
            Op::And(r, v) => (9, r, v),
        }
    }

    fn unpack(kind: u8, reg: i8, value: i32) -> Op {
        match kind {
            0 => Op::Reg(reg),
            1 => Op::RegIndirect(reg, value),
            2 => Op::Mem,
            3 => Op::Push,
            4 => Op::PushF,
            5 => Op::Const,
            6 => Op::Pop,
            7 => Op::PopF,
            8 => Op::Add(reg, value),
            _ => Op::And(reg, value),
        }
    }

    fn has_value(self) -> bool {
        matches!(self, Op::RegIndirect(..) | Op::Add(..) | Op::And(..))
    }
}

impl From<StackOp> for PackedOp {
    fn from(op: StackOp) -> Self {
        debug_assert!(!(op.dest.has_value() && op.src.has_value()));
        let (dk, dr, dv) = op.dest.pack();
        let (sk, sr, sv) = op.src.pack();
        PackedOp {
            kinds: [dk, sk],
            regs: [dr, sr],
            value: if op.dest.has_value() { dv } else { sv },
        }
    }
}

impl PackedOp {
    pub fn get(self) -> StackOp {
        StackOp {
            dest: Op::unpack(self.kinds[0], self.regs[0], self.value),
            src: Op::unpack(self.kinds[1], self.regs[1], self.value),
        }
    }
}

pub use crate::ids::InsnId;

/// One decoded instruction, as decoded (the analysis keeps its own, mutable, attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub offset: u32,
    pub len: u8,
    pub kind: InsnKind,
    /// `INSN_*` bits below.
    pub flags: u8,
    /// Relative branch displacement (0 when the instruction has none).
    pub immediate: i32,
    /// The first of this instruction's stack operations in [`InsnTable::ops`].
    pub ops_start: u32,
    pub ops_len: u8,
}

const _: () = assert!(size_of::<Insn>() <= 16);

/// `cf`: sync_core()'s iret inside a function, or a context switch.
pub const INSN_IRET: u8 = 1;
/// The first decoded instruction of its section.
const INSN_FIRST: u8 = 2;
/// The last decoded instruction of its section.
const INSN_LAST: u8 = 4;

impl Insn {
    pub fn is_iret(&self) -> bool {
        self.flags & INSN_IRET != 0
    }

    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.len)
    }
}

/// A diagnostic printed while decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub sec: SecId,
    pub offset: u32,
    pub note: DecodeNote,
}

/// The instructions of every executable section.
#[derive(Default)]
pub struct InsnTable {
    pub insns: Vec<Insn>,
    pub ops: Vec<PackedOp>,
    /// For each section: the range of its instructions in `insns`.
    pub by_section: Vec<(u32, u32)>,
    /// For each section: its instructions' offsets.
    starts: Vec<OffsetIndex>,
    /// (first instruction id, section) of each section with instructions, in id order.
    sec_starts: Vec<(u32, SecId)>,
    /// Number of decoded instructions; synthetic ones follow.
    real_len: usize,
    /// The sections of the synthetic instructions.
    synthetic_secs: Vec<SecId>,
    pub notes: Vec<Note>,
    /// The calls and direct jumps as decoded, in id order (the steps that resolve branch
    /// destinations visit these instead of every instruction).
    pub branches: Vec<InsnId>,
    /// The IRET instructions, in id order.
    pub irets: Vec<InsnId>,
    /// The indirect jumps, in id order.
    pub indirect_jumps: Vec<InsnId>,
}

/// A decode failure: objtool's fatal `can't decode instruction at <sec>:0x<off>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub sec: SecId,
    pub offset: u64,
}

impl InsnTable {
    pub fn get(&self, id: InsnId) -> &Insn {
        &self.insns[id.idx()]
    }

    pub fn ops_of(&self, id: InsnId) -> &[PackedOp] {
        let i = &self.insns[id.idx()];
        &self.ops[i.ops_start as usize..][..i.ops_len as usize]
    }

    /// The instructions of `sec`, in offset order.
    pub fn section_range(&self, sec: SecId) -> std::ops::Range<u32> {
        let (a, b) = self
            .by_section
            .get(sec.0 as usize)
            .copied()
            .unwrap_or((0, 0));
        a..b
    }

    /// The first instruction of `sec` at or after `offset` (the section's end if none).
    pub fn first_from(&self, sec: SecId, offset: u64) -> InsnId {
        let r = self.section_range(sec);
        let rank = self
            .starts
            .get(sec.0 as usize)
            .map_or(0, |s| s.rank(offset));
        InsnId(r.start + rank.min(r.end - r.start))
    }

    /// The instruction that starts exactly at `offset` in `sec`.
    pub fn at(&self, sec: SecId, offset: u64) -> Option<InsnId> {
        let ordinal = self.starts.get(sec.0 as usize)?.find(offset)?;
        Some(InsnId(self.section_range(sec).start + ordinal))
    }

    /// Builds the address index of `sec` from its decoded instructions (the decoder builds
    /// it from the starts it found; the tests check the two agree).
    #[cfg(test)]
    fn index_starts(&mut self, sec: SecId, size: u64) {
        let r = self.section_range(sec);
        let insns = &self.insns[r.start as usize..r.end as usize];
        let index = OffsetIndex::new(insns.len(), |k| u64::from(insns[k].offset), size);
        self.starts[sec.0 as usize] = index;
    }

    /// The next instruction in the same section (none for a synthetic one).
    pub fn next(&self, id: InsnId) -> Option<InsnId> {
        (id.idx() < self.real_len && self.insns[id.idx()].flags & INSN_LAST == 0)
            .then_some(InsnId(id.0 + 1))
    }

    /// The previous instruction in the same section (none for a synthetic one).
    pub fn prev(&self, id: InsnId) -> Option<InsnId> {
        (id.idx() < self.real_len && self.insns[id.idx()].flags & INSN_FIRST == 0)
            .then(|| InsnId(id.0 - 1))
    }

    /// The section of an instruction.
    pub fn sec_of(&self, id: InsnId) -> SecId {
        if id.idx() >= self.real_len {
            return self.synthetic_secs[id.idx() - self.real_len];
        }
        let i = self.sec_starts.partition_point(|&(start, _)| start <= id.0);
        self.sec_starts[i - 1].1
    }

    /// Appends an instruction that is not found by address and has no neighbours (an
    /// alternative's padding NOP), in section `sec`.
    pub fn push_synthetic(&mut self, sec: SecId, insn: Insn) -> InsnId {
        let id = InsnId(self.insns.len() as u32);
        self.insns.push(insn);
        self.synthetic_secs.push(sec);
        id
    }
}
