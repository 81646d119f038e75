//! The verifier's abstract machine: what each instruction does to the stack frame.
//!
//! Instructions are decoded with `yaxpeax-x86`, a decoder that shares no code with the
//! iced-x86 decoder `check` uses, and interpreted by the rules below, written for this module
//! from the x86-64 semantics (not from objtool's `arch_decode_instruction()` or orctool's
//! `decode`/`cfi` rules). The state is measured from the CFA, the caller's stack pointer
//! before its `call` (so the return address lies at CFA − 8):
//!
//! * `sp`: rsp = CFA − `sp` (8 at a function's first instruction), or unknown;
//! * `bp`: whether rbp holds the caller's value, a frame address CFA − k, or anything else;
//! * `saved_bp`: where on the stack (CFA − k) a copy of the caller's rbp lies, if any;
//! * `hint`: the state past an unwind hint, which only the hint defines (unprovable).

use yaxpeax_x86::long_mode::{InstDecoder, Instruction, Opcode, Operand, RegSpec};

/// rbp's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bp {
    /// The caller's rbp (not changed, or restored).
    Caller,
    /// A frame pointer: rbp = CFA − k.
    Frame(i32),
    /// A frame pointer in a realigned frame: rbp = A − k (see [`State::asp`]).
    Aligned(i32),
    /// Loaded from memory the machine does not follow (a stack slot it did not see written
    /// with the caller's rbp, a global, through a pointer): a saved context being restored,
    /// perhaps the caller's — the machine cannot tell.
    Loaded,
    /// Anything else.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub sp: Option<i32>,
    /// After `and $-N,%rsp` (stack realignment) rsp is no longer known from the CFA, but from
    /// the aligned address A it was given: rsp = A − `asp`.
    pub asp: Option<i32>,
    pub bp: Bp,
    pub saved_bp: Option<i32>,
    /// A copy of the caller's rbp at A − k (realigned frame).
    pub saved_bp_a: Option<i32>,
    /// gcc's DRAP register (`lea 0x8(%rsp),%r10` before realigning): (register number,
    /// k) with its value CFA − k.
    pub drap: Option<(u8, i32)>,
    /// A copy of the DRAP register at A − slot: (slot, k).
    pub drap_saved: Option<(i32, i32)>,
    /// A register holding a copy of rsp (`mov %rsp,%r14` before a variable-size
    /// allocation, `mov %r14,%rsp` after): (register number, k) with its value CFA − k.
    pub sp_copy: Option<(u8, i32)>,
    pub hint: bool,
}

impl State {
    /// At a function's entry: the return address on top, every register the caller's.
    pub const ENTRY: State = State {
        sp: Some(8),
        asp: None,
        bp: Bp::Caller,
        saved_bp: None,
        saved_bp_a: None,
        drap: None,
        drap_saved: None,
        sp_copy: None,
        hint: false,
    };
}

/// How control leaves an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// To the next instruction.
    Next,
    /// Unconditional jump; `None`: indirect.
    Jump(Option<i64>),
    /// Conditional jump (both ways).
    Cond(i64),
    /// A call (`None`: indirect); control comes back after it when the callee returns.
    Call(Option<i64>),
    Ret,
    /// `ud2`: a BUG() ends here, a WARN() resumes after it.
    Trap,
    /// int3, iret, sysret, …: the path ends.
    Stop,
}

pub struct Decoded {
    pub inst: Instruction,
    pub len: u64,
}

pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    let inst = InstDecoder::default().decode_slice(bytes).ok()?;
    let len = yaxpeax_arch::LengthedInstruction::len(&inst).to_const();
    (len > 0).then_some(Decoded { inst, len })
}

fn rel(inst: &Instruction) -> Option<i64> {
    match inst.operand(0) {
        Operand::ImmediateI8 { imm } => Some(imm as i64),
        Operand::ImmediateI16 { imm } => Some(imm as i64),
        Operand::ImmediateI32 { imm } => Some(imm as i64),
        _ => None,
    }
}

/// A no-op of any length (`nop`, `nopw 0x0(%rax,%rax,1)`, `xchg %ax,%ax`).
pub fn is_nop(inst: &Instruction) -> bool {
    inst.opcode() == Opcode::NOP
}

pub fn flow(inst: &Instruction) -> Flow {
    let op = inst.opcode();
    match op {
        Opcode::JMP => Flow::Jump(rel(inst)),
        Opcode::CALL => Flow::Call(rel(inst)),
        Opcode::RETURN => Flow::Ret,
        _ if op.is_jcc() => rel(inst).map_or(Flow::Stop, Flow::Cond),
        Opcode::JRCXZ | Opcode::JECXZ | Opcode::LOOP | Opcode::LOOPZ | Opcode::LOOPNZ => {
            rel(inst).map_or(Flow::Stop, Flow::Cond)
        }
        Opcode::UD2 | Opcode::UD1 | Opcode::UD0 => Flow::Trap,
        Opcode::INT
        | Opcode::INTO
        | Opcode::IRET
        | Opcode::IRETD
        | Opcode::IRETQ
        | Opcode::RETF
        | Opcode::SYSRET
        | Opcode::SYSEXIT
        | Opcode::SYSCALL
        | Opcode::SYSENTER
        | Opcode::JMPF
        | Opcode::CALLF
        | Opcode::Invalid => Flow::Stop,
        _ => Flow::Next,
    }
}

fn is(r: RegSpec, q: RegSpec, d: RegSpec, w: RegSpec, b: RegSpec) -> bool {
    r == q || r == d || r == w || r == b
}

fn is_sp(r: RegSpec) -> bool {
    is(
        r,
        RegSpec::rsp(),
        RegSpec::esp(),
        RegSpec::sp(),
        RegSpec::spl(),
    )
}

fn is_bp(r: RegSpec) -> bool {
    is(
        r,
        RegSpec::rbp(),
        RegSpec::ebp(),
        RegSpec::bp(),
        RegSpec::bpl(),
    )
}

fn imm(op: &Operand) -> Option<i64> {
    Some(match *op {
        Operand::ImmediateI8 { imm } => imm as i64,
        Operand::ImmediateU8 { imm } => imm as i64,
        Operand::ImmediateI16 { imm } => imm as i64,
        Operand::ImmediateU16 { imm } => imm as i64,
        Operand::ImmediateI32 { imm } => imm as i64,
        Operand::ImmediateU32 { imm } => imm as i64,
        Operand::ImmediateI64 { imm } => imm,
        _ => return None,
    })
}

/// The CFA-relative slot (CFA − k) a memory operand names, when its base is rsp or rbp and
/// that register's place is known.
fn slot(s: &State, op: &Operand) -> Option<i32> {
    let (base, disp) = match *op {
        Operand::MemDeref { base } => (base, 0),
        Operand::Disp { base, disp } => (base, disp),
        _ => return None,
    };
    if base == RegSpec::rsp() {
        s.sp?.checked_sub(disp)
    } else if base == RegSpec::rbp() {
        match s.bp {
            Bp::Frame(k) => k.checked_sub(disp),
            _ => None,
        }
    } else {
        None
    }
}

fn add(v: Option<i32>, d: i64) -> Option<i32> {
    let d = i32::try_from(d).ok()?;
    v?.checked_add(d)
}

/// A write to memory that may have overwritten the saved rbp: the copy is lost unless the
/// write is to another known slot.
fn store(s: &mut State, dst: &Operand, value_is_caller_bp: bool) {
    if !dst.is_memory() {
        return;
    }
    match slot(s, dst) {
        // a second copy: the first stays valid (and is the one objtool names)
        Some(k) if value_is_caller_bp && s.saved_bp.is_none() => s.saved_bp = Some(k),
        Some(_) if value_is_caller_bp => {}
        Some(k) if s.saved_bp == Some(k) => s.saved_bp = None,
        Some(_) => {}
        // a store through another register: the kernel does not write over its own frame
        None => {}
    }
}

/// Pops 8 bytes into `dst`.
fn pop_into(s: &mut State, dst: &Operand) {
    let (top, atop) = (s.sp, s.asp);
    match *dst {
        Operand::Register { reg } if is_bp(reg) => {
            let from_cfa = top.is_some() && s.saved_bp == top;
            let from_a = atop.is_some() && s.saved_bp_a == atop;
            s.bp = if from_cfa || from_a {
                Bp::Caller
            } else {
                Bp::Loaded
            };
        }
        Operand::Register { reg } if is_sp(reg) => {
            s.sp = None;
            s.asp = None;
            return;
        }
        Operand::Register { reg } => {
            s.drap = match s.drap_saved {
                Some((slot, k)) if atop == Some(slot) && gpr(reg).is_some() => {
                    gpr(reg).map(|r| (r, k))
                }
                _ if s.drap.is_some() && s.drap.map(|d| d.0) == gpr_any(reg) => None,
                _ => s.drap,
            };
        }
        _ => {}
    }
    s.sp = add(s.sp, -8);
    s.asp = add(s.asp, -8);
}

/// A 64-bit general register's number (rax 0 … r15 15); `None` for anything else.
fn gpr(r: RegSpec) -> Option<u8> {
    (r.class() == yaxpeax_x86::long_mode::register_class::Q).then(|| r.num())
}

/// The number of the 64-bit register a write to `r` changes (any width but ah…bh).
fn gpr_any(r: RegSpec) -> Option<u8> {
    use yaxpeax_x86::long_mode::register_class as c;
    let class = r.class();
    (class == c::Q || class == c::D || class == c::W || class == c::RB).then(|| r.num())
}

/// After the stack pointer rose, copies below it are gone (an interrupt may overwrite them:
/// the kernel has no red zone).
fn drop_dead(s: &mut State) {
    if let (Some(sp), Some(k)) = (s.sp, s.saved_bp) {
        if k > sp {
            s.saved_bp = None;
        }
    }
    if let (Some(sp), Some(k)) = (s.asp, s.saved_bp_a) {
        if k > sp {
            s.saved_bp_a = None;
        }
    }
    if let (Some(sp), Some((k, _))) = (s.asp, s.drap_saved) {
        if k > sp {
            s.drap_saved = None;
        }
    }
}

/// The state after `inst` (for a call: after the callee returned).
pub fn step(s: &State, inst: &Instruction) -> State {
    let mut n = *s;
    let op = inst.opcode();
    let cnt = inst.operand_count();
    let o0 = if cnt > 0 {
        inst.operand(0)
    } else {
        Operand::Nothing
    };
    let o1 = if cnt > 1 {
        inst.operand(1)
    } else {
        Operand::Nothing
    };
    match op {
        Opcode::PUSH => {
            let caller_bp = matches!(o0, Operand::Register { reg } if reg == RegSpec::rbp())
                && s.bp == Bp::Caller;
            n.sp = add(s.sp, 8);
            n.asp = add(s.asp, 8);
            // a second copy: the first stays valid (and is the one objtool names)
            if caller_bp && s.saved_bp.is_none() && n.sp.is_some() {
                n.saved_bp = n.sp;
            } else if caller_bp && n.sp.is_none() && s.saved_bp_a.is_none() {
                n.saved_bp_a = n.asp;
            }
            if let (Operand::Register { reg }, Some((r, k)), Some(slot)) = (&o0, s.drap, n.asp) {
                if gpr(*reg) == Some(r) {
                    n.drap_saved = Some((slot, k));
                }
            }
        }
        Opcode::PUSHF => {
            n.sp = add(s.sp, 8);
            n.asp = add(s.asp, 8);
        }
        Opcode::POPF => {
            n.sp = add(s.sp, -8);
            n.asp = add(s.asp, -8);
        }
        Opcode::POP => pop_into(&mut n, &o0),
        Opcode::LEAVE => {
            (n.sp, n.asp) = match s.bp {
                Bp::Frame(k) => (Some(k), None),
                Bp::Aligned(k) => (None, Some(k)),
                _ => (None, None),
            };
            pop_into(
                &mut n,
                &Operand::Register {
                    reg: RegSpec::rbp(),
                },
            );
        }
        Opcode::ENTER => {
            n.sp = None;
            n.bp = Bp::Other;
        }
        Opcode::MOV
            if matches!(o0, Operand::Register { reg }
            if s.drap.is_some_and(|d| d.0 == reg.num()) && !is_sp(reg) && !is_bp(reg)) =>
        {
            n.drap = None;
        }
        Opcode::MOV => match (&o0, &o1) {
            (Operand::Register { reg: d }, Operand::Register { reg: r }) if is_sp(*d) => {
                (n.sp, n.asp) = match s.bp {
                    Bp::Frame(k) if *r == RegSpec::rbp() => (Some(k), None),
                    Bp::Aligned(k) if *r == RegSpec::rbp() => (None, Some(k)),
                    _ if *r == RegSpec::rsp() => (s.sp, s.asp),
                    _ if s.sp_copy.is_some() && gpr(*r) == s.sp_copy.map(|c| c.0) => {
                        (s.sp_copy.map(|c| c.1), None)
                    }
                    _ => (None, None),
                };
            }
            (Operand::Register { reg: d }, src) if is_bp(*d) => {
                n.bp = match src {
                    Operand::Register { reg } if *reg == RegSpec::rsp() => {
                        s.sp.map(Bp::Frame)
                            .or(s.asp.map(Bp::Aligned))
                            .unwrap_or(Bp::Other)
                    }
                    Operand::Register { reg } if *reg == RegSpec::rbp() => s.bp,
                    // from memory the machine does not follow (a stack slot it did not see
                    // written with the caller's rbp, a global, through a pointer): perhaps a
                    // copy of the caller's rbp being restored (ftrace's pt_regs), perhaps not
                    m if m.is_memory() && *d == RegSpec::rbp() => match slot(s, m) {
                        Some(k) if s.saved_bp == Some(k) => Bp::Caller,
                        _ => Bp::Loaded,
                    },
                    _ => Bp::Other,
                };
            }
            (dst, Operand::Register { reg }) => {
                store(&mut n, dst, *reg == RegSpec::rbp() && s.bp == Bp::Caller)
            }
            (dst, _) => store(&mut n, dst, false),
        },
        Opcode::LEA => {
            if let Operand::Register { reg: d } = o0 {
                let src = match o1 {
                    Operand::Disp { base, disp } => Some((base, disp)),
                    Operand::MemDeref { base } => Some((base, 0)),
                    _ => None,
                };
                // (CFA-relative, A-relative) distance below the base of the address
                let value = src.map_or((None, None), |(base, disp)| {
                    if base == RegSpec::rsp() {
                        (
                            s.sp.and_then(|v| v.checked_sub(disp)),
                            s.asp.and_then(|v| v.checked_sub(disp)),
                        )
                    } else if base == RegSpec::rbp() {
                        match s.bp {
                            Bp::Frame(k) => (k.checked_sub(disp), None),
                            Bp::Aligned(k) => (None, k.checked_sub(disp)),
                            _ => (None, None),
                        }
                    } else if s.drap.is_some() && gpr(base) == s.drap.map(|d| d.0) {
                        (s.drap.and_then(|(_, k)| k.checked_sub(disp)), None)
                    } else {
                        (None, None)
                    }
                });
                if is_sp(d) {
                    (n.sp, n.asp) = value;
                } else if is_bp(d) {
                    n.bp = match value {
                        (Some(k), _) => Bp::Frame(k),
                        (None, Some(k)) => Bp::Aligned(k),
                        _ => Bp::Other,
                    };
                } else if let (Some(r), Some(k)) = (gpr(d), value.0) {
                    // lea 0x8(%rsp),%r10: the DRAP register
                    n.drap = Some((r, k));
                } else if s.drap.is_some() && gpr_any(d) == s.drap.map(|x| x.0) {
                    n.drap = None;
                }
            }
        }
        Opcode::ADD | Opcode::SUB => {
            if let Operand::Register { reg } = o0 {
                if is_sp(reg) {
                    let sign = if op == Opcode::SUB { 1 } else { -1 };
                    n.sp = imm(&o1).and_then(|v| add(s.sp, sign * v));
                    n.asp = imm(&o1).and_then(|v| add(s.asp, sign * v));
                } else if is_bp(reg) {
                    n.bp = Bp::Other;
                } else if s.drap.is_some() && gpr_any(reg) == s.drap.map(|d| d.0) {
                    n.drap = None;
                }
            } else {
                store(&mut n, &o0, false);
            }
        }
        Opcode::AND if matches!(o0, Operand::Register { reg } if reg == RegSpec::rsp()) => {
            // realignment: a new base A, whatever rsp was relative to before
            n.sp = None;
            n.asp = Some(0);
            n.saved_bp_a = None;
            n.drap_saved = None;
            if let Bp::Aligned(_) = s.bp {
                n.bp = Bp::Other;
            }
        }
        Opcode::CALL | Opcode::NOP => {}
        _ => {
            // anything else that writes rsp or rbp loses track of it
            let writes0 = inst
                .behavior()
                .operand_access(0)
                .is_some_and(|a| a.is_write());
            if writes0 {
                match o0 {
                    Operand::Register { reg } if is_sp(reg) => {
                        n.sp = None;
                        n.asp = None;
                    }
                    Operand::Register { reg }
                        if s.drap.is_some() && gpr_any(reg) == s.drap.map(|d| d.0) =>
                    {
                        n.drap = None
                    }
                    Operand::Register { reg } if is_bp(reg) => n.bp = Bp::Other,
                    ref m if m.is_memory() => store(&mut n, m, false),
                    _ => {}
                }
            }
            if op == Opcode::XCHG {
                for o in [&o0, &o1] {
                    match *o {
                        Operand::Register { reg } if is_sp(reg) => n.sp = None,
                        Operand::Register { reg } if is_bp(reg) => n.bp = Bp::Other,
                        _ => {}
                    }
                }
            }
        }
    }
    // the copy of rsp in another register: made by `mov %rsp,%reg`, ended by any write
    if let Operand::Register { reg } = o0 {
        let written = inst
            .behavior()
            .operand_access(0)
            .is_some_and(|a| a.is_write())
            || op == Opcode::POP;
        if written && s.sp_copy.is_some() && gpr_any(reg) == s.sp_copy.map(|c| c.0) {
            n.sp_copy = None;
        }
        if op == Opcode::MOV
            && !is_sp(reg)
            && !is_bp(reg)
            && o1
                == (Operand::Register {
                    reg: RegSpec::rsp(),
                })
        {
            n.sp_copy = match (gpr(reg), s.sp) {
                (Some(r), Some(k)) => Some((r, k)),
                _ => None,
            };
        }
    }
    if op == Opcode::XCHG {
        n.sp_copy = None;
    }
    drop_dead(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &[&[u8]]) -> State {
        let mut s = State::ENTRY;
        for c in code {
            let d = decode(c).expect("decodes");
            assert_eq!(d.len as usize, c.len(), "{:?}", d.inst);
            s = step(&s, &d.inst);
        }
        s
    }

    #[test]
    fn frame_pointer_prologue_and_epilogue() {
        // push %rbp; mov %rsp,%rbp
        let s = run(&[&[0x55], &[0x48, 0x89, 0xe5]]);
        assert_eq!(s.sp, Some(16));
        assert_eq!(s.bp, Bp::Frame(16));
        assert_eq!(s.saved_bp, Some(16));
        // sub $0x20,%rsp; leave
        let s = run(&[
            &[0x55],
            &[0x48, 0x89, 0xe5],
            &[0x48, 0x83, 0xec, 0x20],
            &[0xc9],
        ]);
        assert_eq!(s, State::ENTRY);
        // push %rbp; mov %rsp,%rbp; xor %ebp,%ebp  → rbp clobbered, the copy stays
        let s = run(&[&[0x55], &[0x48, 0x89, 0xe5], &[0x31, 0xed]]);
        assert_eq!(s.bp, Bp::Other);
        assert_eq!(s.saved_bp, Some(16));
    }

    #[test]
    fn pushes_pops_and_lea() {
        // push %rbx; push %r12; pop %r12; pop %rbx
        let s = run(&[&[0x53], &[0x41, 0x54]]);
        assert_eq!(s.sp, Some(24));
        let s = run(&[&[0x53], &[0x41, 0x54], &[0x41, 0x5c], &[0x5b]]);
        assert_eq!(s, State::ENTRY);
        // lea -0x8(%rsp),%rsp
        let s = run(&[&[0x48, 0x8d, 0x64, 0x24, 0xf8]]);
        assert_eq!(s.sp, Some(16));
        // sub $0x88,%rsp
        let s = run(&[&[0x48, 0x81, 0xec, 0x88, 0, 0, 0]]);
        assert_eq!(s.sp, Some(0x90));
        // and $-16,%rsp
        let s = run(&[&[0x48, 0x83, 0xe4, 0xf0]]);
        assert_eq!(s.sp, None);
        // pushf; pop %rax
        let s = run(&[&[0x9c], &[0x58]]);
        assert_eq!(s, State::ENTRY);
    }

    #[test]
    fn drap_realignment() {
        // lea 0x8(%rsp),%r10; and $-16,%rsp; push -0x8(%r10); push %rbp; mov %rsp,%rbp;
        // push %r10; lea -0x90(%rbp),%r12
        let s = run(&[
            &[0x4c, 0x8d, 0x54, 0x24, 0x08],
            &[0x48, 0x83, 0xe4, 0xf0],
            &[0x41, 0xff, 0x72, 0xf8],
            &[0x55],
            &[0x48, 0x89, 0xe5],
            &[0x41, 0x52],
            &[0x4c, 0x8d, 0xa5, 0x70, 0xff, 0xff, 0xff],
        ]);
        assert_eq!(s.sp, None);
        assert_eq!(s.asp, Some(24));
        assert_eq!(s.bp, Bp::Aligned(16));
        assert_eq!(s.saved_bp_a, Some(16));
        assert_eq!(s.drap, Some((10, 0)));
        assert_eq!(s.drap_saved, Some((24, 0)));
        // lea -0x8(%rbp),%rsp; pop %r10; pop %rbp; lea -0x8(%r10),%rsp
        let s2 = {
            let mut st = s;
            for c in [
                &[0x48, 0x8d, 0x65, 0xf8][..],
                &[0x41, 0x5a],
                &[0x5d],
                &[0x49, 0x8d, 0x62, 0xf8],
            ] {
                st = step(&st, &decode(c).unwrap().inst);
            }
            st
        };
        assert_eq!(s2.sp, Some(8));
        assert_eq!(s2.bp, Bp::Caller);
    }

    #[test]
    fn rsp_copied_and_restored() {
        // push %rbx; mov %rsp,%r14; sub %rax,%rsp; mov %r14,%rsp
        let s = run(&[
            &[0x53],
            &[0x49, 0x89, 0xe6],
            &[0x48, 0x29, 0xc4],
            &[0x4c, 0x89, 0xf4],
        ]);
        assert_eq!(s.sp, Some(16));
        // … unless r14 was written in between (xor %r14d,%r14d)
        let s = run(&[
            &[0x53],
            &[0x49, 0x89, 0xe6],
            &[0x45, 0x31, 0xf6],
            &[0x4c, 0x89, 0xf4],
        ]);
        assert_eq!(s.sp, None);
    }

    #[test]
    fn flows() {
        assert_eq!(flow(&decode(&[0xcc]).unwrap().inst), Flow::Stop);
        assert_eq!(flow(&decode(&[0xc3]).unwrap().inst), Flow::Ret);
        assert_eq!(flow(&decode(&[0x0f, 0x0b]).unwrap().inst), Flow::Trap);
        assert_eq!(
            flow(&decode(&[0xeb, 0x05]).unwrap().inst),
            Flow::Jump(Some(5))
        );
        assert_eq!(flow(&decode(&[0x74, 0xfe]).unwrap().inst), Flow::Cond(-2));
        assert_eq!(
            flow(&decode(&[0xe8, 0, 0, 0, 0]).unwrap().inst),
            Flow::Call(Some(0))
        );
        assert_eq!(flow(&decode(&[0xff, 0xe0]).unwrap().inst), Flow::Jump(None));
    }
}
