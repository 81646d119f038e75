//! Following every path of one function (with its `.cold` parts) through the abstract
//! machine, in every alternative, with each jump label both ways and into exception fixups,
//! then judging each instruction against the entry the kernel's unwinder would use.
//!
//! A node is an instruction of the function's own text (variant 0) or of one replacement of
//! an alternative (variant k + 1 for `.altinstructions` entry k), which runs at the site's
//! address plus its offset in the replacement. Entering a site enters every variant;
//! leaving a replacement at its end continues after the site (through the NOP padding when
//! the replacement is shorter, checked at its first byte).
//!
//! A fall-through after a call or a `ud2` is a *weak* edge: the callee may not return (a
//! noreturn function, BUG). Each arrival carries the number of weak edges on its way (a
//! `ud2` counting 1024, a call 1); an instruction's state is the join of the arrivals with
//! the fewest, and a predecessor whose state changes replaces what it brought. States with rsp at different places make the
//! instruction unprovable.

use std::collections::HashMap;

use super::image::{Image, Loc};
use super::lookup::{Meaning, Table, meaning};
use super::machine::{self, Bp, Flow, State};
use super::report::{Finding, Tally, Unprovable, Verdict};
use super::special::Special;
use crate::orc::{OrcEntry, OrcReg, OrcType};

/// The weight of a fall-through after `ud2` (a BUG() ends there far more often than a
/// call does not return).
const TRAP_WEIGHT: u16 = 1024;

/// Changes of one node's state at one rank before it is declared a conflict (a loop that
/// keeps moving rsp); big functions with many paths need a few dozen.
const MAX_UPDATES: u8 = 250;

pub struct Ctx<'a, 'd> {
    pub img: &'a Image<'d>,
    pub special: &'a Special,
    pub table: &'a Table,
    /// Record every unprovable instruction (`--verbose`).
    pub verbose: bool,
    /// Keep the machine's states for the DWARF comparison (`--dwarf`).
    pub keep_truth: bool,
    /// Linked image: entries of functions without compiler CFI (assembly), whose hints
    /// the image no longer has.
    pub asm: std::collections::HashSet<Loc>,
}

/// A function and its cold parts: ranges of one or more sections.
pub struct Group {
    pub entry: Loc,
    pub parts: Vec<(Loc, u64)>,
}

impl Group {
    fn contains(&self, l: Loc) -> bool {
        self.parts
            .iter()
            .any(|(s, n)| s.sec == l.sec && l.off >= s.off && l.off < s.off + n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Node {
    /// 0: the function's text; k + 1: replacement of alternative k.
    var: u32,
    /// Where its bytes are.
    loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Known(State),
    Conflict,
}

struct Slot {
    /// The join of the strong arrivals, else of the weak ones.
    val: Val,
    /// What each predecessor brought, and whether over a weak edge.
    ins: Vec<(Node, Val, u16)>,
    /// The fewest weak edges on the way here, with which it passes its state on.
    rank: u16,
    updates: u8,
}

struct Walk<'c, 'a, 'd> {
    c: &'c Ctx<'a, 'd>,
    g: &'c Group,
    slots: HashMap<Node, Slot>,
    work: Vec<Node>,
    /// The instruction whose successors are being entered.
    cur: Node,
}

impl<'d> Walk<'_, '_, 'd> {
    fn arrive(&mut self, node: Node, mut val: Val, weak: u16) {
        if let Val::Known(s) = &mut val {
            if node.var == 0 && self.c.special.hints.contains(&node.loc) {
                s.hint = true;
            }
        }
        let pred = self.cur;
        let slot = self.slots.entry(node).or_insert_with(|| Slot {
            ins: Vec::new(),
            rank: 0,
            val: Val::Conflict,
            updates: 0,
        });
        match slot.ins.iter_mut().find(|(p, _, _)| *p == pred) {
            Some(i) if (i.1, i.2) == (val, weak) => return,
            Some(i) => *i = (pred, val, weak),
            None => slot.ins.push((pred, val, weak)),
        }
        // the arrivals over the fewest weak edges decide
        let best = slot.ins.iter().map(|i| i.2).min().unwrap_or(0);
        let new = slot
            .ins
            .iter()
            .filter(|i| i.2 == best)
            .map(|(_, v, _)| *v)
            .reduce(join)
            .unwrap_or(Val::Conflict);
        let first = slot.updates == 0;
        if first || new != slot.val || best != slot.rank {
            // a rank only falls; the cap guards against states that keep changing at one rank
            if first || (new != slot.val && best == slot.rank) {
                slot.updates += 1;
            }
            slot.rank = best;
            slot.val = if slot.updates > MAX_UPDATES {
                Val::Conflict
            } else {
                new
            };
            self.work.push(node);
        }
    }

    /// Arrives at `loc` of the function's text, and at every alternative of a site there.
    fn enter(&mut self, loc: Loc, val: Val, weak: u16) {
        self.arrive(Node { var: 0, loc }, val, weak);
        if let Some(alts) = self.c.special.alts_at.get(&loc) {
            for &k in alts {
                let a = self.c.special.alts[k as usize];
                self.arrive(
                    Node {
                        var: k + 1,
                        loc: a.repl,
                    },
                    val,
                    weak,
                );
            }
        }
    }

    /// The bytes a node decodes from (a replacement stops at its end).
    fn bytes(&self, node: Node) -> &'d [u8] {
        let data = self.c.img.data(node.loc.sec);
        let end = match node.var {
            0 => data.len() as u64,
            k => {
                let a = self.c.special.alts[k as usize - 1];
                (a.repl.off + a.repl_len).min(data.len() as u64)
            }
        };
        data.get(node.loc.off as usize..end as usize).unwrap_or(&[])
    }

    /// Where control goes at `off` bytes into a node's place (the next instruction, or a
    /// branch target given relative to its end).
    fn goto(&mut self, node: Node, to: Loc, name: &[u8], val: Val, weak: u16) {
        if node.var > 0 {
            let a = self.c.special.alts[node.var as usize - 1];
            if to.sec == a.repl.sec && to.off >= a.repl.off && to.off < a.repl.off + a.repl_len {
                self.arrive(
                    Node {
                        var: node.var,
                        loc: to,
                    },
                    val,
                    weak,
                );
                return;
            }
            if to.sec == a.repl.sec && to.off == a.repl.off + a.repl_len {
                // past the replacement: its NOP padding, then after the site
                if a.repl_len < a.orig_len {
                    self.arrive(
                        Node {
                            var: node.var,
                            loc: to,
                        },
                        val,
                        weak,
                    );
                } else {
                    self.enter(site_end(&a), val, weak);
                }
                return;
            }
        }
        if name == b"__x86_return_thunk" {
            return;
        }
        if self.g.contains(to) {
            self.enter(to, val, weak);
        }
    }

    fn step(&mut self, node: Node) {
        let Some(slot) = self.slots.get(&node) else {
            return;
        };
        let val = slot.val;
        let weak = slot.rank;
        self.cur = node;
        if node.var > 0 {
            let a = self.c.special.alts[node.var as usize - 1];
            if node.loc.off >= a.repl.off + a.repl_len {
                // the padding
                self.enter(site_end(&a), val, weak);
                return;
            }
        }
        let bytes = self.bytes(node);
        let Some(d) = machine::decode(bytes) else {
            return;
        };
        let next = Loc {
            sec: node.loc.sec,
            off: node.loc.off + d.len,
        };
        let after = match val {
            Val::Known(s) => Val::Known(machine::step(&s, &d.inst)),
            Val::Conflict => Val::Conflict,
        };
        // exception fixups: a fault here resumes there with this instruction's stack
        if node.var == 0 {
            if let Some(fixups) = self.c.special.ex_fixups.get(&node.loc).cloned() {
                for f in fixups {
                    self.goto(node, f, b"", val, weak);
                }
            }
            if let Some(&t) = self.c.special.jump_labels.get(&node.loc) {
                // a jump label: NOP or JMP to the target, both ways
                self.goto(node, t, b"", after, weak);
                self.goto(node, next, b"", after, weak);
                return;
            }
        }
        match machine::flow(&d.inst) {
            Flow::Next => self.goto(node, next, b"", after, weak),
            Flow::Trap => self.goto(node, next, b"", after, weak.saturating_add(TRAP_WEIGHT)),
            Flow::Jump(Some(disp)) => {
                let (to, name) = self.branch_target(node, next, d.len, disp);
                self.goto(node, to, name, after, weak);
            }
            Flow::Cond(disp) => {
                let (to, name) = self.branch_target(node, next, d.len, disp);
                self.goto(node, to, name, after, weak);
                self.goto(node, next, b"", after, weak);
            }
            Flow::Call(Some(disp)) => {
                let (to, _) = self.branch_target(node, next, d.len, disp);
                if self.is_local_call(node, to) {
                    // `call 1f` inside the function: pushes a return address nobody returns
                    // through (return-stack-buffer stuffing)
                    let pushed = match val {
                        Val::Known(mut s) => {
                            s.sp = s.sp.and_then(|v| v.checked_add(8));
                            Val::Known(s)
                        }
                        v => v,
                    };
                    self.goto(node, to, b"", pushed, weak);
                } else {
                    self.goto(node, next, b"", after, weak.saturating_add(1));
                }
            }
            Flow::Call(None) => self.goto(node, next, b"", after, weak.saturating_add(1)),
            Flow::Jump(None) | Flow::Ret | Flow::Stop => {}
        }
    }

    /// A branch's target: through its relocation in a relocatable object (a branch to
    /// another section or symbol), else `next + disp` (a linked image, or a branch inside
    /// the section). The name is the relocation symbol's (empty otherwise).
    fn branch_target(&self, node: Node, next: Loc, len: u64, disp: i64) -> (Loc, &'d [u8]) {
        let img = self.c.img;
        let none = Loc {
            sec: crate::elf::SecId(0),
            off: 0,
        };
        match img.kind {
            crate::elf::ObjectKind::Relocatable => {
                if len >= 5 {
                    if let Some(t) = img.rel32(next.sec, next.off - 4, next.off, &[]) {
                        return (t.loc.unwrap_or(none), t.name);
                    }
                }
                let _ = node;
                (
                    Loc {
                        sec: next.sec,
                        off: next.off.wrapping_add(disp as u64),
                    },
                    b"",
                )
            }
            crate::elf::ObjectKind::Linked => {
                let addr = img.addr(next).wrapping_add(disp as u64);
                (img.addr_loc(addr).unwrap_or(none), b"")
            }
        }
    }

    fn is_local_call(&self, node: Node, to: Loc) -> bool {
        if node.var > 0 {
            let a = self.c.special.alts[node.var as usize - 1];
            if to.sec == a.repl.sec && to.off >= a.repl.off && to.off <= a.repl.off + a.repl_len {
                return true;
            }
        }
        // a call to a labelled place is a real call (`call srso_safe_ret`)
        self.g.contains(to) && to != self.g.entry && !self.c.img.is_symbol(to)
    }
}

/// Two states at one instruction: the same frame (rsp in the same place) with rbp's value
/// known on one path only keeps what both agree on; a different rsp is a conflict.
fn join(a: Val, b: Val) -> Val {
    let (Val::Known(x), Val::Known(y)) = (a, b) else {
        return Val::Conflict;
    };
    if x.sp != y.sp || x.asp != y.asp || x.hint != y.hint {
        return Val::Conflict;
    }
    let same = |p: Option<i32>, q: Option<i32>| if p == q { p } else { None };
    Val::Known(State {
        bp: if x.bp == y.bp { x.bp } else { Bp::Other },
        saved_bp: same(x.saved_bp, y.saved_bp),
        saved_bp_a: same(x.saved_bp_a, y.saved_bp_a),
        drap: if x.drap == y.drap { x.drap } else { None },
        drap_saved: if x.drap_saved == y.drap_saved {
            x.drap_saved
        } else {
            None
        },
        sp_copy: if x.sp_copy == y.sp_copy {
            x.sp_copy
        } else {
            None
        },
        ..x
    })
}

fn site_end(a: &super::special::Alt) -> Loc {
    Loc {
        sec: a.site.sec,
        off: a.site.off + a.orig_len,
    }
}

/// The kernel address (as a location) where a node's instruction runs.
fn runtime(c: &Ctx<'_, '_>, node: Node) -> Loc {
    match node.var {
        0 => node.loc,
        k => {
            let a = c.special.alts[k as usize - 1];
            Loc {
                sec: a.site.sec,
                off: a.site.off + (node.loc.off - a.repl.off),
            }
        }
    }
}

const UNDEFINED: &str = "undefined entry in reachable code";

/// Whether an entry describes the state: `Ok(())`, or why not.
pub fn judge(abi: crate::orc::OrcAbi, e: Option<OrcEntry>, s: &State) -> Verdict {
    let Some(e) = e else {
        return Verdict::Wrong("no ORC entry covers it");
    };
    match meaning(abi, &e) {
        Meaning::Undefined => return Verdict::Wrong(UNDEFINED),
        Meaning::End => return Verdict::Wrong("end-of-stack entry inside a function"),
        Meaning::Frame => {}
    }
    match e.ty {
        OrcType::Regs | OrcType::RegsPartial => {
            return Verdict::Unprovable(Unprovable::RegsFrame);
        }
        OrcType::Call => {}
        _ => return Verdict::Wrong("unknown entry type"),
    }
    if abi == crate::orc::OrcAbi::V6_12 && e.flag {
        return Verdict::Wrong("signal bit on a call frame");
    }
    let off = i32::from(e.sp_offset);
    match e.sp_reg {
        OrcReg::SP => match s.sp {
            None => return Verdict::Unprovable(Unprovable::SpUnknown),
            Some(k) if k != off => return Verdict::Wrong("wrong sp offset"),
            Some(_) => {}
        },
        OrcReg::BP => match s.bp {
            Bp::Frame(k) if k == off => {}
            Bp::Frame(_) => return Verdict::Wrong("wrong bp offset"),
            Bp::Aligned(_) => return Verdict::Wrong("CFA from rbp in a realigned frame"),
            _ if s.sp.is_none() => return Verdict::Unprovable(Unprovable::SpUnknown),
            _ => return Verdict::Wrong("CFA from rbp, which holds no frame"),
        },
        OrcReg::R10 | OrcReg::R13 | OrcReg::DI | OrcReg::DX => {
            let reg = match e.sp_reg {
                OrcReg::R10 => 10,
                OrcReg::R13 => 13,
                OrcReg::DI => 7,
                _ => 2,
            };
            match s.drap {
                Some((r, k)) if r == reg && k == off => {}
                Some(_) => return Verdict::Wrong("wrong DRAP register or offset"),
                None => return Verdict::Unprovable(Unprovable::OtherCfaReg),
            }
        }
        OrcReg::BP_INDIRECT => match (s.bp, s.drap_saved) {
            // CFA = *(rbp + off): the DRAP copy (k = 0, the CFA itself) lies there
            (Bp::Aligned(b), Some((slot, 0))) if slot == b - off => {}
            (Bp::Aligned(_), Some(_)) => return Verdict::Wrong("wrong DRAP slot"),
            _ => return Verdict::Unprovable(Unprovable::OtherCfaReg),
        },
        _ => return Verdict::Unprovable(Unprovable::OtherCfaReg),
    }
    let bp_ok = match e.bp_reg {
        OrcReg::UNDEFINED => s.bp == Bp::Caller,
        OrcReg::PREV_SP => s.saved_bp == Some(-i32::from(e.bp_offset)),
        OrcReg::BP => match s.bp {
            Bp::Frame(k) => s.saved_bp == Some(k - i32::from(e.bp_offset)),
            Bp::Aligned(k) => s.saved_bp_a == Some(k - i32::from(e.bp_offset)),
            _ => false,
        },
        _ => false,
    };
    if !bp_ok {
        if s.bp == Bp::Loaded && s.saved_bp.is_none() {
            return Verdict::Unprovable(Unprovable::RbpReloaded);
        }
        return Verdict::Wrong("wrong rule for the caller's rbp");
    }
    Verdict::Right
}

/// The ORC text of the truth, in `dump` syntax (for reports).
pub fn expected(s: &State) -> String {
    let sp = match (s.sp, s.bp, s.drap) {
        (Some(k), _, _) => format!("sp:sp+{k}"),
        (None, Bp::Frame(k), _) => format!("sp:bp+{k}"),
        (None, _, Some((r, k))) => format!("sp:r{r}+{k}"),
        _ => "sp:?".into(),
    };
    let bp = match (s.bp, s.saved_bp, s.saved_bp_a) {
        (_, Some(k), _) => format!("bp:prevsp{}", -k),
        (Bp::Caller, None, _) => "bp:(und)".to_string(),
        (Bp::Aligned(b), None, Some(k)) => format!("bp:bp{:+}", b - k),
        _ => "bp:lost".into(),
    };
    format!("type:call {sp} {bp}")
}

/// Walks one group and judges every instruction it reaches; counts the rest.
pub fn verify_group(c: &Ctx<'_, '_>, g: &Group, tally: &mut Tally) {
    let mut w = Walk {
        c,
        g,
        slots: HashMap::new(),
        work: Vec::new(),
        cur: Node {
            var: u32::MAX,
            loc: g.entry,
        },
    };
    let non_standard = c.special.non_standard.contains(&g.entry);
    w.enter(g.entry, Val::Known(State::ENTRY), 0);
    while let Some(n) = w.work.pop() {
        w.step(n);
    }
    let abi = c.table.abi;
    let mut nodes: Vec<(Node, Val)> = w.slots.iter().map(|(n, s)| (*n, s.val)).collect();
    nodes.sort_by_key(|(n, _)| (n.var, n.loc));
    // a function the table declares unknown everywhere (STACK_FRAME_NON_STANDARD)
    let declared_unknown = non_standard
        || nodes.iter().all(|(n, _)| {
            c.table
                .find(c.img, runtime(c, *n))
                .is_some_and(|e| meaning(abi, &e) == Meaning::Undefined)
        });
    for &(node, val) in &nodes {
        if node.var == 0 && c.special.vanishing.contains(&node.loc) {
            continue;
        }
        let at = runtime(c, node);
        let verdict = match val {
            _ if declared_unknown => Verdict::Unprovable(Unprovable::NonStandard),
            Val::Conflict => Verdict::Unprovable(Unprovable::Conflict),
            Val::Known(s) if s.hint => Verdict::Unprovable(Unprovable::Hint),
            Val::Known(s) => {
                if c.keep_truth && node.var == 0 && c.table.has_entry(c.img, at) {
                    tally.truth.push((at, s));
                }
                let e = c.table.find(c.img, at);
                let mut v = judge(abi, e, &s);
                let mut what = "";
                let mut found = e;
                // a call's return address, looked up at itself − 1
                if v == Verdict::Right {
                    if let Some((ra1, e2)) = w.call_return(node, at) {
                        let v2 = judge(abi, e2, &s);
                        if v2 != Verdict::Right {
                            v = v2;
                            found = e2;
                            what = if ra1 == at.off {
                                ""
                            } else {
                                "return address − 1: "
                            };
                        }
                    }
                }
                if v == Verdict::Wrong(UNDEFINED) && w.dead_padding(node) {
                    v = Verdict::Unprovable(Unprovable::DeadPadding);
                }
                if matches!(v, Verdict::Wrong(_)) && c.asm.contains(&g.entry) {
                    v = Verdict::Unprovable(Unprovable::AsmNoHints);
                }
                if let Verdict::Wrong(why) = v {
                    tally.findings.push(Finding {
                        at,
                        alt: (node.var > 0).then(|| node.var - 1),
                        why: format!("{what}{why}"),
                        expected: expected(&s),
                        found: found.map(|e| e.dump_text(abi).to_string().trim().to_string()),
                    });
                }
                v
            }
        };
        if let (true, Verdict::Unprovable(u)) = (c.verbose, verdict) {
            tally.notes.push((at, u));
        }
        tally.add(&verdict);
    }
    // instructions of the function no path reaches
    for &(start, size) in &g.parts {
        let data = c.img.data(start.sec);
        let mut off = start.off;
        while off < start.off + size {
            let Some(d) = data.get(off as usize..).and_then(machine::decode) else {
                break;
            };
            let node = Node {
                var: 0,
                loc: Loc {
                    sec: start.sec,
                    off,
                },
            };
            if !w.slots.contains_key(&node) && !c.special.vanishing.contains(&node.loc) {
                let u = if non_standard {
                    Unprovable::NonStandard
                } else {
                    Unprovable::Unreached
                };
                if c.verbose {
                    tally.notes.push((node.loc, u));
                }
                tally.add(&Verdict::Unprovable(u));
            }
            off += d.len;
        }
    }
}

impl Walk<'_, '_, '_> {
    /// A NOP whose every arrival is the fall-through of a call or a `ud2` just before it:
    /// the alignment padding a compiler puts after a call that does not return. Whether
    /// the callee returns (an external one, `die()` of a host tool) cannot be known, so
    /// neither can whether an undefined entry there is a gap or dead code.
    fn dead_padding(&self, node: Node) -> bool {
        let Some(slot) = self.slots.get(&node) else {
            return false;
        };
        let weak_only = !slot.ins.is_empty()
            && slot.ins.iter().all(|(pred, _, _)| {
                pred.var == node.var
                    && machine::decode(self.bytes(*pred)).is_some_and(|d| {
                        pred.loc.off + d.len == node.loc.off
                            && matches!(machine::flow(&d.inst), Flow::Call(_) | Flow::Trap)
                    })
            });
        weak_only && machine::decode(self.bytes(node)).is_some_and(|d| machine::is_nop(&d.inst))
    }

    /// For a call that returns (not a local one): (return address − 1, its entry).
    fn call_return(&self, node: Node, at: Loc) -> Option<(u64, Option<OrcEntry>)> {
        if node.var > 0 {
            let a = self.c.special.alts[node.var as usize - 1];
            if node.loc.off >= a.repl.off + a.repl_len {
                return None;
            }
        }
        let d = machine::decode(self.bytes(node))?;
        let Flow::Call(disp) = machine::flow(&d.inst) else {
            return None;
        };
        if let Some(disp) = disp {
            let next = Loc {
                sec: node.loc.sec,
                off: node.loc.off + d.len,
            };
            let (to, _) = self.branch_target(node, next, d.len, disp);
            if self.is_local_call(node, to) {
                return None;
            }
        }
        let ra1 = Loc {
            sec: at.sec,
            off: at.off + d.len - 1,
        };
        Some((ra1.off, self.c.table.find(self.c.img, ra1)))
    }
}
