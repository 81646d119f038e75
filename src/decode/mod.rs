//! Decoding: every executable section, linearly from offset 0, into one instruction table.
//!
//! objtool: `decode_instructions()`. Instructions of a section get consecutive ids in
//! offset order, so "next instruction" is `id + 1` within the section and an address lookup
//! is a binary search.

pub mod x86;

use iced_x86::{Decoder, DecoderOptions, EncodingKind, Instruction, OpKind};
use object::elf;
use object::read::elf::SectionHeader as _;

use crate::elf::{LE, Object, SecId};
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

/// Index of an instruction in [`InsnTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InsnId(pub u32);

impl InsnId {
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

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

/// Address-index granularity: 256-byte blocks.
const BLOCK_SHIFT: u32 = 8;

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
    pub ops: Vec<StackOp>,
    /// For each section: the range of its instructions in `insns`.
    pub by_section: Vec<(u32, u32)>,
    /// For each section: for each 256-byte block, the first instruction starting at or
    /// after the block's start (plus one final entry), so an address lookup searches a
    /// few dozen entries instead of the whole table.
    blocks: Vec<Vec<u32>>,
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

    pub fn ops_of(&self, id: InsnId) -> &[StackOp] {
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

    /// The instruction that starts exactly at `offset` in `sec`.
    pub fn at(&self, sec: SecId, offset: u64) -> Option<InsnId> {
        let r = self.section_range(sec);
        let blocks = self.blocks.get(sec.0 as usize)?;
        let b = usize::try_from(offset >> BLOCK_SHIFT).ok()?;
        let (lo, hi) = match (blocks.get(b), blocks.get(b + 1)) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => (r.start, r.end),
        };
        let slice = &self.insns[lo as usize..hi as usize];
        let i = slice.partition_point(|x| u64::from(x.offset) < offset);
        (i < slice.len() && u64::from(slice[i].offset) == offset).then(|| InsnId(lo + i as u32))
    }

    /// Builds the block index of `sec` (after its instructions were decoded).
    fn index_blocks(&mut self, sec: SecId, size: u64) {
        let r = self.section_range(sec);
        let nblocks = (size >> BLOCK_SHIFT) as usize + 1;
        let mut idx = Vec::with_capacity(nblocks + 1);
        let mut k = r.start;
        for b in 0..nblocks as u64 {
            let start = b << BLOCK_SHIFT;
            while k < r.end && u64::from(self.insns[k as usize].offset) < start {
                k += 1;
            }
            idx.push(k);
        }
        idx.push(r.end);
        self.blocks[sec.0 as usize] = idx;
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

/// Is this an executable section (decoded)?
pub fn is_exec(obj: &Object<'_>, sec: SecId) -> bool {
    obj.section(sec)
        .map(|s| {
            s.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0 && s.sh_type(LE) != elf::SHT_NOBITS
        })
        .unwrap_or(false)
}

/// Length of a Xen or KVM emulate prefix at the start of `bytes` (0 if none).
fn emulate_prefix_len(bytes: &[u8]) -> usize {
    const XEN: [u8; 5] = [0x0f, 0x0b, b'x', b'e', b'n'];
    const KVM: [u8; 5] = [0x0f, 0x0b, b'k', b'v', b'm'];
    if bytes.len() > 5 && (bytes[..5] == XEN || bytes[..5] == KVM) {
        5
    } else {
        0
    }
}

/// Decodes every executable section of `obj`.
pub fn decode(obj: &Object<'_>) -> Result<InsnTable, DecodeError> {
    let mut t = InsnTable {
        by_section: vec![(0, 0); obj.section_count()],
        blocks: vec![Vec::new(); obj.section_count()],
        ..Default::default()
    };
    // x86-64 kernel code averages 3.3 bytes an instruction and one stack operation per four
    // instructions: reserve for that, so the tables are not copied while they grow
    let exec_bytes: usize = obj
        .section_ids()
        .filter(|&sec| is_exec(obj, sec))
        .filter_map(|sec| obj.section_data(sec).ok())
        .map(<[u8]>::len)
        .sum();
    let _ = t.insns.try_reserve(exec_bytes / 3);
    let _ = t.ops.try_reserve(exec_bytes / 12);
    let mut ins = Instruction::default();
    for sec in obj.section_ids() {
        let start = t.insns.len() as u32;
        if is_exec(obj, sec) {
            let data = obj
                .section_data(sec)
                .map_err(|_| DecodeError { sec, offset: 0 })?;
            decode_section(sec, data, &mut t, &mut ins)?;
            let end = t.insns.len() as u32;
            t.by_section[sec.0 as usize] = (start, end);
            t.index_blocks(sec, data.len() as u64);
            if end > start {
                t.sec_starts.push((start, sec));
                t.insns[start as usize].flags |= INSN_FIRST;
                t.insns[end as usize - 1].flags |= INSN_LAST;
            }
        } else {
            t.by_section[sec.0 as usize] = (start, start);
        }
    }
    t.real_len = t.insns.len();
    Ok(t)
}

fn decode_section(
    sec: SecId,
    data: &[u8],
    t: &mut InsnTable,
    ins: &mut Instruction,
) -> Result<(), DecodeError> {
    let mut decoder = Decoder::with_ip(64, data, 0, DecoderOptions::NONE);
    while decoder.can_decode() {
        let offset = decoder.position();
        // The kernel's decoder reads Xen's and KVM's "emulate prefix" (`ud2; .ascii "xen"`
        // or `"kvm"`) as a prefix of the instruction that follows it.
        let prefix = emulate_prefix_len(&data[offset..]);
        if prefix > 0 {
            decoder
                .set_position(offset + prefix)
                .map_err(|_| DecodeError {
                    sec,
                    offset: offset as u64,
                })?;
            // the position moved without the instruction pointer: keep them equal
            decoder.set_ip((offset + prefix) as u64);
            if !decoder.can_decode() {
                return Err(DecodeError {
                    sec,
                    offset: offset as u64,
                });
            }
        }
        decoder.decode_out(ins);
        if ins.is_invalid() || offset > u32::MAX as usize {
            return Err(DecodeError {
                sec,
                offset: offset as u64,
            });
        }
        let len = prefix + ins.len();
        let bytes = &data[offset + prefix..offset + len];
        let immediate = match ins.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                ins.near_branch_target().wrapping_sub((offset + len) as u64) as i64
            }
            _ => 0,
        };
        let c = x86::classify(bytes, ins.encoding() == EncodingKind::Legacy, immediate);
        if let Some(note) = c.note {
            t.notes.push(Note {
                sec,
                offset: offset as u32,
                note,
            });
        }
        let ops_start = t.ops.len() as u32;
        let mut ops_len = 0;
        for op in c.ops.into_iter().flatten() {
            t.ops.push(op);
            ops_len += 1;
        }
        let id = InsnId(t.insns.len() as u32);
        if c.kind == InsnKind::Call || c.kind.is_static_jump() {
            t.branches.push(id);
        }
        if c.is_iret {
            t.irets.push(id);
        }
        t.insns.push(Insn {
            offset: offset as u32,
            len: len as u8,
            kind: c.kind,
            flags: if c.is_iret { INSN_IRET } else { 0 },
            immediate: c.immediate as i32,
            ops_start,
            ops_len,
        });
    }
    Ok(())
}
