//! Paravirt targets for `--noinstr`: which functions each `pv_ops[N]` slot may hold, and
//! which instructions call through a slot.
//!
//! objtool: `init_pv_ops()`, `add_pv_ops()`, `objtool_pv_add()`, the `mov $func,
//! pv_ops[N]` case of `arch_decode_instruction()` (in `.init.text`), and the relocation
//! lookup of `pv_call_dest()`.

use rustc_hash::FxHashMap as HashMap;

use object::elf;

use super::builder::Builder;
use super::program::{AnalysisError, Step};
use crate::decode::{InsnId, InsnKind};
use crate::ids::SymId;
use crate::report::{FindingKind, Findings};

/// objtool's `file->pv_ops`.
#[derive(Debug, Default)]
pub struct PvOps {
    /// Per slot: the functions assigned to it, in objtool's list order (the latest added
    /// first); a function is listed once, in the first slot it was seen in.
    pub targets: Vec<Vec<SymId>>,
    /// Indirect calls and jumps through `pv_ops`: their slot (`(addend + 4) / 8`).
    pub calls: HashMap<InsnId, i64>,
}

/// The tables `add_pv_ops()` reads, in its order.
const PV_OPS_TABLES: [&str; 4] = ["pv_ops", "xen_cpu_ops", "xen_irq_ops", "xen_mmu_ops"];

impl Builder<'_, '_> {
    /// objtool: the last symbol of a name (its name hash returns the newest).
    fn symbol_by_name(&self, name: &str) -> Option<SymId> {
        self.syms
            .syms
            .iter()
            .rposition(|s| s.name == name)
            .map(|i| SymId(i as u32))
    }

    /// objtool: `init_pv_ops()` and `add_pv_ops()` (with `--noinstr` only): a slot per
    /// 8 bytes of `pv_ops`, filled from the relocations of each table.
    pub(super) fn init_pv_ops(&mut self) {
        if !self.opts.noinstr {
            return;
        }
        let Some(pv) = self.symbol_by_name("pv_ops") else {
            return;
        };
        let nr = (self.syms.get(pv).len / 8) as usize;
        let mut ops = PvOps {
            targets: vec![Vec::new(); nr],
            calls: HashMap::default(),
        };
        let mut added = vec![false; self.syms.syms.len()];
        for table in PV_OPS_TABLES {
            let Some(sym) = self.symbol_by_name(table) else {
                continue;
            };
            let s = self.syms.get(sym);
            let (sec, start, end) = (s.sec, s.offset, s.end());
            let Some(t) = self.relocs.table(sec) else {
                continue;
            };
            let mut off = start;
            while off < end {
                let Some(k) = t.in_range(off, end - off) else {
                    break;
                };
                let r = t.get(k as usize);
                let target = self.syms.get(r.sym);
                let func = if target.ty == elf::STT_SECTION {
                    self.syms.by_offset(target.sec, r.addend as u64)
                } else {
                    Some(r.sym)
                };
                let idx = (r.offset - start) / 8;
                if let Some(func) = func {
                    pv_add(
                        &mut ops,
                        &mut added,
                        &self.syms.get(func).name,
                        idx as usize,
                        func,
                    );
                }
                off = r.offset + 1;
            }
        }
        self.pv_ops = Some(ops);
    }

    /// objtool: the `mov $func, pv_ops+N(%rip)` case of `arch_decode_instruction()`: in
    /// `.init.text*`, an 11-byte `movq $imm32, disp32(%rip)` whose displacement points into
    /// `pv_ops` assigns the immediate's function to slot `(addend + 8) / 8`.
    pub(super) fn decode_pv_assignments(&mut self, f: &mut Findings) -> Step {
        if !self.opts.noinstr {
            return Ok(());
        }
        let mut added = match &self.pv_ops {
            Some(ops) => {
                let mut added = vec![false; self.syms.syms.len()];
                for &t in ops.targets.iter().flatten() {
                    added[t.index()] = true;
                }
                added
            }
            None => Vec::new(),
        };
        for sec in self.obj.section_ids() {
            let i = sec.0 as usize;
            if !self.sec_exec[i] || !self.sec_names[i].starts_with(".init.text") {
                continue;
            }
            let Some(t) = self.relocs.table(sec) else {
                continue;
            };
            let data = self.obj.section_data(sec).unwrap_or(&[]);
            for k in self.insns.section_range(sec) {
                let insn = self.insn(InsnId(k));
                if insn.len != 11 {
                    continue;
                }
                let off = u64::from(insn.offset);
                let Some(bytes) = data.get(off as usize..off as usize + 11) else {
                    continue;
                };
                if opcode(bytes) != Some(0xc7) {
                    continue;
                }
                let (Some(immr), disp) = (t.at(off + 3), t.at(off + 7)) else {
                    continue;
                };
                let immr = t.get(immr as usize);
                if self.syms.get(immr.sym).name != "pv_ops" {
                    continue;
                }
                // (a negative slot is far past the table in objtool's unsigned division)
                let Ok(idx) = usize::try_from((immr.addend + 8) / 8) else {
                    continue;
                };
                let func = disp.and_then(|d| {
                    let d = t.get(d as usize);
                    let s = self.syms.get(d.sym);
                    if s.ty == elf::STT_SECTION {
                        self.syms.by_offset(s.sec, d.addend as u64)
                    } else {
                        Some(d.sym)
                    }
                });
                let Some(func) = func else {
                    f.warn(FindingKind::NoFuncForPvOps);
                    return Err(AnalysisError::Build);
                };
                let Some(ops) = self.p.pv_ops.as_mut() else {
                    f.warn(FindingKind::ParavirtConfusion);
                    continue;
                };
                let name = self.p.syms.get(func).name.clone();
                pv_add(ops, &mut added, &name, idx, func);
            }
        }
        Ok(())
    }

    /// The `pv_ops` slot of each indirect call or jump whose relocation names `pv_ops`
    /// (objtool looks it up when the walk meets one; the answer is the same).
    pub(super) fn find_pv_calls(&mut self) {
        if self.pv_ops.is_none() {
            return;
        }
        let mut calls = HashMap::default();
        for k in 0..self.nreal {
            let id = InsnId(k as u32);
            let through_reloc = match self.attr(id).kind {
                InsnKind::CallDynamic | InsnKind::JumpDynamic => true,
                InsnKind::Call => self.call_dest(id).is_none(),
                _ => false,
            };
            if !through_reloc {
                continue;
            }
            if let Some(r) = self.reloc_of(id) {
                if self.syms.get(r.sym).name == "pv_ops" {
                    calls.insert(id, (r.addend + 4).div_euclid(8));
                }
            }
        }
        if let Some(ops) = self.pv_ops.as_mut() {
            ops.calls = calls;
        }
    }
}

/// objtool: `objtool_pv_add()`.
fn pv_add(ops: &mut PvOps, added: &mut [bool], name: &str, idx: usize, func: SymId) {
    if name == "_paravirt_nop" || name == "_paravirt_ident_64" || added[func.index()] {
        return;
    }
    let Some(slot) = ops.targets.get_mut(idx) else {
        return; // (objtool writes past its table)
    };
    added[func.index()] = true;
    slot.insert(0, func);
}

/// The opcode byte after legacy prefixes and REX.
fn opcode(bytes: &[u8]) -> Option<u8> {
    bytes
        .iter()
        .copied()
        .find(|b| !matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0x64..=0x67 | 0xf0 | 0xf2 | 0xf3 | 0x40..=0x4f))
}
