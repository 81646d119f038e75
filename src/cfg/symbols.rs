//! Symbols as objtool sees them: per-section lists in objtool's order, aliases, `.cold`
//! parents, address lookups that only see sized symbols, and the name-based flags.
//!
//! objtool: `read_symbols()`, `elf_add_symbol()` (elf.c) and `classify_symbols()`.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use object::elf;
use object::read::elf::Sym as _;

use crate::elf::{LE, Object, SecId, SymId};
use crate::error::{Error, Result};

pub type SymIdx = u32;
pub const NO_SYM: SymIdx = u32::MAX;

#[derive(Clone, Debug, Default)]
pub struct Symbol {
    pub name: String,
    pub ty: u8,
    pub bind: u8,
    /// The section (0 for undefined and absolute symbols).
    pub sec: SecId,
    pub offset: u64,
    pub len: u64,
    /// The canonical alias (itself unless a later identical symbol exists).
    pub alias: SymIdx,
    pub pfunc: SymIdx,
    pub cfunc: SymIdx,
    pub local_label: bool,
    pub static_call_tramp: bool,
    pub retpoline_thunk: bool,
    pub return_thunk: bool,
    pub embedded_insn: bool,
    pub fentry: bool,
    pub profiling_func: bool,
}

impl Symbol {
    pub fn is_func(&self) -> bool {
        self.ty == elf::STT_FUNC
    }
    pub fn end(&self) -> u64 {
        self.offset.wrapping_add(self.len)
    }
}

/// Address index over the sized symbols of one section: sorted by (start, symtab index),
/// with the running maximum of ends, so "the lowest-starting symbol containing X" is two
/// binary searches.
#[derive(Default)]
struct Intervals {
    starts: Vec<u64>,
    ends: Vec<u64>,
    max_end: Vec<u64>,
    ids: Vec<SymIdx>,
}

impl Intervals {
    fn build(mut items: Vec<(u64, u64, SymIdx)>) -> Self {
        items.sort_by_key(|&(s, _, i)| (s, i));
        let mut iv = Intervals::default();
        let mut m = 0;
        for (s, e, i) in items {
            m = m.max(e);
            iv.starts.push(s);
            iv.ends.push(e);
            iv.max_end.push(m);
            iv.ids.push(i);
        }
        iv
    }

    fn containing(&self, x: u64) -> impl Iterator<Item = SymIdx> + '_ {
        let hi = self.starts.partition_point(|&s| s <= x);
        let lo = self.max_end[..hi].partition_point(|&m| m <= x);
        (lo..hi)
            .filter(move |&i| self.ends[i] > x)
            .map(move |i| self.ids[i])
    }
}

pub struct Symbols {
    pub syms: Vec<Symbol>,
    /// Per section: its symbols in objtool's list order.
    pub lists: Vec<Vec<SymIdx>>,
    /// Per section: sized non-section symbols.
    sized: Vec<Intervals>,
    /// Number of STT_FILE symbols.
    pub num_files: usize,
}

const STATIC_CALL_TRAMP_PREFIX: &str = "__SCT__";

fn is_profiling_func(name: &str) -> bool {
    name.starts_with("__sanitizer_cov_")
        || name.starts_with("__tsan_func_")
        || name == "__tsan_atomic_signal_fence"
}

impl Symbols {
    pub fn read(obj: &Object<'_>) -> Result<Self> {
        let nsec = obj.section_count();
        let n = obj.symbol_count();
        let mut syms = Vec::with_capacity(n);
        let mut lists_next: Vec<SymIdx> = vec![NO_SYM; n];
        let mut heads: Vec<SymIdx> = vec![NO_SYM; nsec];
        let mut trees: Vec<BTreeMap<(u64, SymIdx), ()>> =
            (0..nsec).map(|_| BTreeMap::new()).collect();
        // (sec, offset, type, len) -> the last sized symbol with that key: every earlier
        // one is its alias (objtool points all earlier ones at each new one)
        let mut alias_keys: FxHashMap<(u32, u64, u8, u64), SymIdx> = FxHashMap::default();
        let mut num_files = 0;
        for i in 0..n {
            let id = SymId(i as u32);
            let raw = obj.symbol(id)?;
            let sec = obj.symbol_section(id)?.unwrap_or(SecId(0));
            if sec.0 as usize >= nsec {
                return Err(Error::malformed(format!(
                    "symbol {i} has section index {} out of range",
                    sec.0
                )));
            }
            let ty = raw.st_type();
            let name = if ty == elf::STT_SECTION && sec.0 != 0 {
                String::from_utf8_lossy(obj.section_name(sec)?).into_owned()
            } else {
                String::from_utf8_lossy(obj.symbol_name(raw)?).into_owned()
            };
            if ty == elf::STT_FILE {
                num_files += 1;
            }
            let idx = i as SymIdx;
            let offset = raw.st_value(LE);
            let len = raw.st_size(LE);
            let sym = Symbol {
                name,
                ty,
                bind: raw.st_bind(),
                sec,
                offset,
                len,
                alias: idx,
                pfunc: NO_SYM,
                cfunc: NO_SYM,
                ..Default::default()
            };
            if len > 0 {
                alias_keys.insert((sec.0, offset, ty, len), idx);
            }
            // List position: right after the tree predecessor (ties go right).
            let tree = &mut trees[sec.0 as usize];
            let prev = tree
                .range(..(offset, idx))
                .next_back()
                .map(|(&(_, p), _)| p);
            match prev {
                Some(p) => {
                    lists_next[i] = lists_next[p as usize];
                    lists_next[p as usize] = idx;
                }
                None => {
                    lists_next[i] = heads[sec.0 as usize];
                    heads[sec.0 as usize] = idx;
                }
            }
            if len > 0 {
                tree.insert((offset, idx), ());
            }
            syms.push(sym);
        }
        for s in syms.iter_mut().filter(|s| s.len > 0) {
            if let Some(&last) = alias_keys.get(&(s.sec.0, s.offset, s.ty, s.len)) {
                s.alias = last;
            }
        }
        let mut lists = vec![Vec::new(); nsec];
        for (s, list) in lists.iter_mut().enumerate() {
            let mut cur = heads[s];
            while cur != NO_SYM {
                list.push(cur);
                cur = lists_next[cur as usize];
            }
        }
        let mut symbols = Symbols {
            syms,
            lists,
            sized: Vec::new(),
            num_files,
        };
        symbols.link_cold()?;
        symbols.classify();
        symbols.reindex();
        Ok(symbols)
    }

    /// `.cold` children and their parents (objtool: end of `read_symbols()`).
    fn link_cold(&mut self) -> Result<()> {
        // Last symbol of each name wins, as objtool's name hash returns the newest.
        // Parent lookup by name (the last symbol of a name wins, as objtool's name hash
        // returns the newest), built only for the names `.cold` children need.
        let wanted: FxHashMap<&str, ()> = self
            .syms
            .iter()
            .filter(|s| s.is_func())
            .filter_map(|s| s.name.find(".cold").map(|p| (&s.name[..p], ())))
            .collect();
        let mut by_name: FxHashMap<String, SymIdx> = FxHashMap::default();
        if !wanted.is_empty() {
            for (i, s) in self.syms.iter().enumerate() {
                if wanted.contains_key(s.name.as_str()) {
                    by_name.insert(s.name.clone(), i as SymIdx);
                }
            }
        }
        drop(wanted);
        for sec in 0..self.lists.len() {
            for k in 0..self.lists[sec].len() {
                let i = self.lists[sec][k] as usize;
                if !self.syms[i].is_func() {
                    continue;
                }
                if self.syms[i].pfunc == NO_SYM {
                    self.syms[i].pfunc = i as SymIdx;
                }
                if self.syms[i].cfunc == NO_SYM {
                    self.syms[i].cfunc = i as SymIdx;
                }
                let Some(pos) = self.syms[i].name.find(".cold") else {
                    continue;
                };
                let pname = &self.syms[i].name[..pos];
                let Some(&p) = by_name.get(pname) else {
                    return Err(Error::Other(format!(
                        "{}(): can't find parent function",
                        self.syms[i].name
                    )));
                };
                self.syms[i].pfunc = p;
                self.syms[p as usize].cfunc = i as SymIdx;
                let (c_sec, c_off, c_len) =
                    (self.syms[i].sec, self.syms[i].offset, self.syms[i].len);
                let parent = &mut self.syms[p as usize];
                if c_sec == parent.sec
                    && c_off >= parent.offset
                    && c_off.wrapping_add(c_len) == parent.end()
                {
                    parent.len -= c_len;
                }
            }
        }
        Ok(())
    }

    fn classify(&mut self) {
        for s in &mut self.syms {
            if s.ty == elf::STT_NOTYPE && s.name.starts_with(".L") {
                s.local_label = true;
            }
            if s.bind != elf::STB_GLOBAL {
                continue;
            }
            s.static_call_tramp = s.name.starts_with(STATIC_CALL_TRAMP_PREFIX);
            s.retpoline_thunk = s.name.starts_with("__x86_indirect_");
            s.return_thunk = s.name == "__x86_return_thunk";
            s.embedded_insn = s.name == "retbleed_return_thunk" || s.name == "srso_safe_ret";
            s.fentry = s.name == "__fentry__";
            s.profiling_func = is_profiling_func(&s.name);
        }
    }

    /// Rebuilds the address index (after lengths changed).
    pub fn reindex(&mut self) {
        let mut per: Vec<Vec<(u64, u64, SymIdx)>> = vec![Vec::new(); self.lists.len()];
        for (i, s) in self.syms.iter().enumerate() {
            if s.len > 0 && s.ty != elf::STT_SECTION {
                per[s.sec.0 as usize].push((s.offset, s.end(), i as SymIdx));
            }
        }
        self.sized = per.into_iter().map(Intervals::build).collect();
    }

    pub fn get(&self, i: SymIdx) -> &Symbol {
        &self.syms[i as usize]
    }

    /// objtool: `find_symbol_containing()` — sized, non-section.
    pub fn containing(&self, sec: SecId, off: u64) -> Option<SymIdx> {
        self.sized.get(sec.0 as usize)?.containing(off).next()
    }

    /// objtool: `find_func_containing()`.
    pub fn func_containing(&self, sec: SecId, off: u64) -> Option<SymIdx> {
        self.sized
            .get(sec.0 as usize)?
            .containing(off)
            .find(|&i| self.syms[i as usize].is_func())
    }

    /// objtool: `find_symbol_by_offset()` — sized, non-section, starting exactly at `off`.
    pub fn by_offset(&self, sec: SecId, off: u64) -> Option<SymIdx> {
        self.sized
            .get(sec.0 as usize)?
            .containing(off)
            .find(|&i| self.syms[i as usize].offset == off)
    }

    /// objtool: `find_func_by_offset()`.
    pub fn func_by_offset(&self, sec: SecId, off: u64) -> Option<SymIdx> {
        self.sized
            .get(sec.0 as usize)?
            .containing(off)
            .find(|&i| self.syms[i as usize].offset == off && self.syms[i as usize].is_func())
    }

    /// objtool: `find_symbol_hole_containing()`: 0 if `off` is inside a sized symbol or
    /// before the first one; -1 if no sized symbol follows; else the distance to the next
    /// symbol's start.
    pub fn hole_containing(&self, sec: SecId, off: u64) -> i64 {
        let Some(iv) = self.sized.get(sec.0 as usize) else {
            return 0;
        };
        if iv.containing(off).next().is_some() {
            return 0;
        }
        let hi = iv.starts.partition_point(|&s| s <= off);
        if hi == 0 {
            return 0; // before the first symbol: not a hole
        }
        match iv.starts.get(hi) {
            None => -1,
            Some(&next) => (next - off) as i64,
        }
    }
}
