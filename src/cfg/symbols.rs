//! Symbols as objtool sees them: per-section lists in objtool's order, aliases, `.cold`
//! parents, address lookups that only see sized symbols, and the name-based flags.
//!
//! objtool: `read_symbols()`, `elf_add_symbol()` (elf.c) and `classify_symbols()`.

use rustc_hash::FxHashMap;

use object::elf;
use object::read::elf::Sym as _;

use crate::elf::{LE, Object, SecId, SymId};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct Symbol<'data> {
    /// The name, borrowed from the object's string table (copied only when it is not
    /// UTF-8).
    pub name: std::borrow::Cow<'data, str>,
    pub ty: u8,
    pub bind: u8,
    /// The section (0 for undefined and absolute symbols).
    pub sec: SecId,
    pub offset: u64,
    pub len: u64,
    /// The canonical alias (itself unless a later identical symbol exists).
    pub alias: SymId,
    /// The function this one is a part of (itself unless a `.cold` part); none if not a
    /// function.
    pub pfunc: Option<SymId>,
    /// The `.cold` part of this function (itself if none); none if not a function.
    pub cfunc: Option<SymId>,
    pub local_label: bool,
    pub static_call_tramp: bool,
    pub retpoline_thunk: bool,
    pub return_thunk: bool,
    pub embedded_insn: bool,
    pub fentry: bool,
    pub profiling_func: bool,
    /// May be called with AC set (objtool's `uaccess_safe_builtin`; only with --uaccess).
    pub uaccess_safe: bool,
}

impl Symbol<'_> {
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
    ids: Vec<SymId>,
}

impl Intervals {
    /// `items` in (start, index) order.
    fn build(items: Vec<(u64, u64, SymId)>) -> Self {
        debug_assert!(items.is_sorted_by_key(|&(s, _, i)| (s, i)));
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

    fn containing(&self, x: u64) -> impl Iterator<Item = SymId> + '_ {
        let hi = self.starts.partition_point(|&s| s <= x);
        let lo = self.max_end[..hi].partition_point(|&m| m <= x);
        (lo..hi)
            .filter(move |&i| self.ends[i] > x)
            .map(move |i| self.ids[i])
    }
}

pub struct Symbols<'data> {
    pub syms: Vec<Symbol<'data>>,
    /// Per symbol: a function? (A compact copy of the type test: the analysis asks it of
    /// an instruction's owner at every step, and a symbol record is a cache miss.)
    funcs: Vec<bool>,
    /// Per section: its symbols in objtool's list order.
    pub lists: Vec<Vec<SymId>>,
    /// Per section: its symbols in (offset, index) order.
    by_addr: Vec<Vec<SymId>>,
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

/// Where `.cold` starts in a symbol name (objtool: `strstr(name, ".cold")`).
fn cold_suffix(name: &str) -> Option<usize> {
    memchr::memmem::find(name.as_bytes(), b".cold")
}

/// Each section's symbols in (offset, index) order: the one sort the aliases, the list
/// order and the address index all read.
fn address_order(syms: &[Symbol<'_>], nsec: usize) -> Vec<Vec<SymId>> {
    let mut per_sec: Vec<Vec<(u64, SymId)>> = vec![Vec::new(); nsec];
    for (i, s) in syms.iter().enumerate() {
        per_sec[s.sec.0 as usize].push((s.offset, SymId(i as u32)));
    }
    per_sec
        .into_iter()
        .map(|mut keyed| {
            // (a stable sort: a section's symbols come in a few runs of rising offsets, one
            // per object file that went into it and one for the globals)
            keyed.sort_by_key(|&(offset, _)| offset);
            keyed.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// Points each sized symbol at the last symbol with its section, offset, type and size
/// (objtool points all earlier ones at each new one): in each run of symbols at one
/// offset of a section (`by_addr`, [`address_order`]), the last of each type and size is
/// the alias of all of them.
fn link_aliases(syms: &mut [Symbol<'_>], by_addr: &[Vec<SymId>]) {
    // (type, size, alias) of the run's symbols seen so far, last first
    let mut seen: Vec<(u8, u64, SymId)> = Vec::new();
    for order in by_addr {
        let mut start = 0;
        while start < order.len() {
            let offset = syms[order[start].index()].offset;
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|i| syms[i.index()].offset == offset)
                    .count();
            let run = &order[start..end];
            start = end;
            if run.len() == 1 {
                continue; // its own alias
            }
            // (a run is a few symbols; a long one, only in a made-up object, goes through
            // a map)
            let mut map: FxHashMap<(u8, u64), SymId> = FxHashMap::default();
            seen.clear();
            for &i in run.iter().rev() {
                let key = (syms[i.index()].ty, syms[i.index()].len);
                if key.1 == 0 {
                    continue;
                }
                let alias = if run.len() > 16 {
                    *map.entry(key).or_insert(i)
                } else if let Some(e) = seen.iter().find(|e| (e.0, e.1) == key) {
                    e.2
                } else {
                    seen.push((key.0, key.1, i));
                    i
                };
                syms[i.index()].alias = alias;
            }
        }
    }
}

/// Each section's symbols in objtool's list order.
///
/// objtool adds symbols in symbol-table order, each right after its predecessor in the
/// section's address tree: the sized symbol with the greatest (offset, index) below its own
/// (ties go right). Equivalently: symbol `i`'s predecessor is the latest-added sized symbol
/// `j < i` with the greatest (offset, `j`) not above (offset of `i`, `i`); inserting after
/// the predecessor puts later children before earlier ones, so the list is a depth-first
/// walk of the predecessor tree with children in descending index order. Predecessors are
/// found in (offset, index) order with a Fenwick tree of prefix maxima over indices.
fn list_order(syms: &[Symbol<'_>], by_addr: &[Vec<SymId>]) -> Vec<Vec<SymId>> {
    let nsec = by_addr.len();
    let mut per_sec: Vec<Vec<SymId>> = vec![Vec::new(); nsec];
    // each symbol's place among its section's symbols in index order
    let mut pos_of: Vec<u32> = vec![0; syms.len()];
    for (i, s) in syms.iter().enumerate() {
        let members = &mut per_sec[s.sec.0 as usize];
        pos_of[i] = members.len() as u32;
        members.push(SymId(i as u32));
    }
    let mut parent: Vec<Option<SymId>> = vec![None; syms.len()];
    let mut first_child: Vec<Option<SymId>> = vec![None; syms.len()];
    let mut next_sibling: Vec<Option<SymId>> = vec![None; syms.len()];
    // Fenwick tree over positions in the section's index-ordered list: the highest rank
    // (position in address order, +1) of an added sized symbol at or before a position
    let mut tree: Vec<u32> = Vec::new();
    let mut lists = Vec::with_capacity(nsec);
    for (members, order) in per_sec.into_iter().zip(by_addr) {
        // members are in index order; `pos` is a symbol's place among them
        let by_addr: Vec<u32> = order.iter().map(|i| pos_of[i.index()]).collect();
        tree.clear();
        tree.resize(members.len() + 1, 0);
        for (rank, &pos) in by_addr.iter().enumerate() {
            // predecessor: the best added symbol at a position before `pos`
            let mut best = 0;
            let mut k = pos as usize;
            while k > 0 {
                best = best.max(tree[k]);
                k &= k - 1;
            }
            let i = members[pos as usize];
            if best > 0 {
                parent[i.index()] = Some(members[by_addr[best as usize - 1] as usize]);
            }
            if syms[i.index()].len > 0 {
                let mut k = pos as usize + 1;
                while k < tree.len() {
                    tree[k] = tree[k].max(rank as u32 + 1);
                    k += k & k.wrapping_neg();
                }
            }
        }
        // children in descending index order (each new child goes first), then a
        // depth-first walk
        let mut roots = None;
        for &i in &members {
            let head = match parent[i.index()] {
                None => &mut roots,
                Some(p) => &mut first_child[p.index()],
            };
            next_sibling[i.index()] = *head;
            *head = Some(i);
        }
        let mut list = Vec::with_capacity(members.len());
        let mut stack = vec![roots];
        while let Some(top) = stack.last_mut() {
            let Some(i) = *top else {
                stack.pop();
                continue;
            };
            *top = next_sibling[i.index()];
            list.push(i);
            stack.push(first_child[i.index()]);
        }
        lists.push(list);
    }
    lists
}

impl<'data> Symbols<'data> {
    pub fn read(obj: &Object<'data>) -> Result<Self> {
        let nsec = obj.section_count();
        let n = obj.symbol_count();
        let mut syms = Vec::with_capacity(n);
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
                String::from_utf8_lossy(obj.section_name(sec)?)
            } else {
                String::from_utf8_lossy(obj.symbol_name(raw)?)
            };
            if ty == elf::STT_FILE {
                num_files += 1;
            }
            let idx = SymId(i as u32);
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
                pfunc: None,
                cfunc: None,
                ..Default::default()
            };
            syms.push(sym);
        }
        let by_addr = address_order(&syms, nsec);
        link_aliases(&mut syms, &by_addr);
        let lists = list_order(&syms, &by_addr);
        let funcs = syms.iter().map(Symbol::is_func).collect();
        let mut symbols = Symbols {
            syms,
            funcs,
            lists,
            by_addr,
            sized: Vec::new(),
            num_files,
        };
        symbols.link_cold()?;
        symbols.classify();
        symbols.reindex();
        Ok(symbols)
    }

    /// `.cold` children and their parents (objtool: end of `read_symbols()`).
    ///
    /// objtool visits the functions in list order, making each its own parent and child
    /// unless a `.cold` part already named it, and linking each `.cold` part with the
    /// function its name starts with. Parent names never contain `.cold`, so the defaults
    /// can come first, in any order; the parts are then linked in list order.
    fn link_cold(&mut self) -> Result<()> {
        let mut is_cold = vec![false; self.syms.len()];
        for (i, s) in self.syms.iter_mut().enumerate() {
            if s.is_func() {
                s.pfunc = Some(SymId(i as u32));
                s.cfunc = Some(SymId(i as u32));
                is_cold[i] = cold_suffix(&s.name).is_some();
            }
        }
        if !is_cold.contains(&true) {
            return Ok(());
        }
        // Parent lookup by name (the last symbol of a name wins, as objtool's name hash
        // returns the newest), built only for the names `.cold` children need.
        let wanted: FxHashMap<&str, ()> = self
            .syms
            .iter()
            .zip(&is_cold)
            .filter(|&(_, &c)| c)
            .filter_map(|(s, _)| cold_suffix(&s.name).map(|p| (&s.name[..p], ())))
            .collect();
        let mut by_name: FxHashMap<String, SymId> = FxHashMap::default();
        for (i, s) in self.syms.iter().enumerate() {
            if wanted.contains_key(&*s.name) {
                by_name.insert(s.name.to_string(), SymId(i as u32));
            }
        }
        drop(wanted);
        for sec in 0..self.lists.len() {
            for k in 0..self.lists[sec].len() {
                let i = self.lists[sec][k].index();
                if !is_cold[i] {
                    continue;
                }
                let Some(pos) = cold_suffix(&self.syms[i].name) else {
                    continue;
                };
                let pname = &self.syms[i].name[..pos];
                let Some(&p) = by_name.get(pname) else {
                    return Err(Error::NoParentFunction(self.syms[i].name.to_string()));
                };
                self.syms[i].pfunc = Some(p);
                self.syms[p.index()].cfunc = Some(SymId(i as u32));
                let (c_sec, c_off, c_len) =
                    (self.syms[i].sec, self.syms[i].offset, self.syms[i].len);
                let parent = &mut self.syms[p.index()];
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

    /// objtool: `add_uaccess_safe()` — the last symbol of each listed name.
    pub fn mark_uaccess_safe(&mut self) {
        let wanted: FxHashMap<&str, ()> = UACCESS_SAFE_BUILTIN.iter().map(|n| (*n, ())).collect();
        let mut last: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, s) in self.syms.iter().enumerate() {
            if let Some((name, ())) = wanted.get_key_value(&*s.name) {
                last.insert(name, i);
            }
        }
        let hits: Vec<usize> = last.into_values().collect();
        for i in hits {
            self.syms[i].uaccess_safe = true;
        }
    }

    /// Rebuilds the address index (after lengths changed).
    pub fn reindex(&mut self) {
        let syms = &self.syms;
        self.sized = (self.by_addr.iter())
            .map(|order| {
                Intervals::build(
                    order
                        .iter()
                        .map(|&i| (&syms[i.index()], i))
                        .filter(|(s, _)| s.len > 0 && s.ty != elf::STT_SECTION)
                        .map(|(s, i)| (s.offset, s.end(), i))
                        .collect(),
                )
            })
            .collect();
    }

    pub fn get(&self, i: SymId) -> &Symbol<'data> {
        &self.syms[i.index()]
    }

    /// Whether symbol `i` is a function (`get(i).is_func()`, from a compact table).
    pub fn is_func(&self, i: SymId) -> bool {
        self.funcs[i.index()]
    }

    /// objtool: `find_symbol_containing()` — sized, non-section.
    pub fn containing(&self, sec: SecId, off: u64) -> Option<SymId> {
        self.sized.get(sec.0 as usize)?.containing(off).next()
    }

    /// objtool: `find_func_containing()`.
    pub fn func_containing(&self, sec: SecId, off: u64) -> Option<SymId> {
        self.sized
            .get(sec.0 as usize)?
            .containing(off)
            .find(|&i| self.syms[i.index()].is_func())
    }

    /// objtool: `find_symbol_by_offset()` — sized, non-section, starting exactly at `off`.
    pub fn by_offset(&self, sec: SecId, off: u64) -> Option<SymId> {
        self.sized
            .get(sec.0 as usize)?
            .containing(off)
            .find(|&i| self.syms[i.index()].offset == off)
    }

    /// objtool: `find_func_by_offset()`.
    pub fn func_by_offset(&self, sec: SecId, off: u64) -> Option<SymId> {
        self.sized
            .get(sec.0 as usize)?
            .containing(off)
            .find(|&i| self.syms[i.index()].offset == off && self.syms[i.index()].is_func())
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

/// Functions allowed to be called with AC set (objtool 6.12's `uaccess_safe_builtin[]`).
const UACCESS_SAFE_BUILTIN: &[&str] = &[
    "kasan_report",
    "kasan_check_range",
    "__asan_loadN_noabort",
    "__asan_load1_noabort",
    "__asan_load2_noabort",
    "__asan_load4_noabort",
    "__asan_load8_noabort",
    "__asan_load16_noabort",
    "__asan_storeN_noabort",
    "__asan_store1_noabort",
    "__asan_store2_noabort",
    "__asan_store4_noabort",
    "__asan_store8_noabort",
    "__asan_store16_noabort",
    "__kasan_check_read",
    "__kasan_check_write",
    "__asan_report_load_n_noabort",
    "__asan_report_load1_noabort",
    "__asan_report_load2_noabort",
    "__asan_report_load4_noabort",
    "__asan_report_load8_noabort",
    "__asan_report_load16_noabort",
    "__asan_report_store_n_noabort",
    "__asan_report_store1_noabort",
    "__asan_report_store2_noabort",
    "__asan_report_store4_noabort",
    "__asan_report_store8_noabort",
    "__asan_report_store16_noabort",
    "__kcsan_check_access",
    "__kcsan_mb",
    "__kcsan_wmb",
    "__kcsan_rmb",
    "__kcsan_release",
    "kcsan_found_watchpoint",
    "kcsan_setup_watchpoint",
    "kcsan_check_scoped_accesses",
    "kcsan_disable_current",
    "kcsan_enable_current_nowarn",
    "__tsan_func_entry",
    "__tsan_func_exit",
    "__tsan_read_range",
    "__tsan_write_range",
    "__tsan_read1",
    "__tsan_read2",
    "__tsan_read4",
    "__tsan_read8",
    "__tsan_read16",
    "__tsan_write1",
    "__tsan_write2",
    "__tsan_write4",
    "__tsan_write8",
    "__tsan_write16",
    "__tsan_read_write1",
    "__tsan_read_write2",
    "__tsan_read_write4",
    "__tsan_read_write8",
    "__tsan_read_write16",
    "__tsan_volatile_read1",
    "__tsan_volatile_read2",
    "__tsan_volatile_read4",
    "__tsan_volatile_read8",
    "__tsan_volatile_read16",
    "__tsan_volatile_write1",
    "__tsan_volatile_write2",
    "__tsan_volatile_write4",
    "__tsan_volatile_write8",
    "__tsan_volatile_write16",
    "__tsan_atomic8_load",
    "__tsan_atomic16_load",
    "__tsan_atomic32_load",
    "__tsan_atomic64_load",
    "__tsan_atomic8_store",
    "__tsan_atomic16_store",
    "__tsan_atomic32_store",
    "__tsan_atomic64_store",
    "__tsan_atomic8_exchange",
    "__tsan_atomic16_exchange",
    "__tsan_atomic32_exchange",
    "__tsan_atomic64_exchange",
    "__tsan_atomic8_fetch_add",
    "__tsan_atomic16_fetch_add",
    "__tsan_atomic32_fetch_add",
    "__tsan_atomic64_fetch_add",
    "__tsan_atomic8_fetch_sub",
    "__tsan_atomic16_fetch_sub",
    "__tsan_atomic32_fetch_sub",
    "__tsan_atomic64_fetch_sub",
    "__tsan_atomic8_fetch_and",
    "__tsan_atomic16_fetch_and",
    "__tsan_atomic32_fetch_and",
    "__tsan_atomic64_fetch_and",
    "__tsan_atomic8_fetch_or",
    "__tsan_atomic16_fetch_or",
    "__tsan_atomic32_fetch_or",
    "__tsan_atomic64_fetch_or",
    "__tsan_atomic8_fetch_xor",
    "__tsan_atomic16_fetch_xor",
    "__tsan_atomic32_fetch_xor",
    "__tsan_atomic64_fetch_xor",
    "__tsan_atomic8_fetch_nand",
    "__tsan_atomic16_fetch_nand",
    "__tsan_atomic32_fetch_nand",
    "__tsan_atomic64_fetch_nand",
    "__tsan_atomic8_compare_exchange_strong",
    "__tsan_atomic16_compare_exchange_strong",
    "__tsan_atomic32_compare_exchange_strong",
    "__tsan_atomic64_compare_exchange_strong",
    "__tsan_atomic8_compare_exchange_weak",
    "__tsan_atomic16_compare_exchange_weak",
    "__tsan_atomic32_compare_exchange_weak",
    "__tsan_atomic64_compare_exchange_weak",
    "__tsan_atomic8_compare_exchange_val",
    "__tsan_atomic16_compare_exchange_val",
    "__tsan_atomic32_compare_exchange_val",
    "__tsan_atomic64_compare_exchange_val",
    "__tsan_atomic_thread_fence",
    "__tsan_atomic_signal_fence",
    "__tsan_unaligned_read16",
    "__tsan_unaligned_write16",
    "write_comp_data",
    "check_kcov_mode",
    "__sanitizer_cov_trace_pc",
    "__sanitizer_cov_trace_const_cmp1",
    "__sanitizer_cov_trace_const_cmp2",
    "__sanitizer_cov_trace_const_cmp4",
    "__sanitizer_cov_trace_const_cmp8",
    "__sanitizer_cov_trace_cmp1",
    "__sanitizer_cov_trace_cmp2",
    "__sanitizer_cov_trace_cmp4",
    "__sanitizer_cov_trace_cmp8",
    "__sanitizer_cov_trace_switch",
    "kmsan_copy_to_user",
    "kmsan_disable_current",
    "kmsan_enable_current",
    "kmsan_report",
    "kmsan_unpoison_entry_regs",
    "kmsan_unpoison_memory",
    "__msan_chain_origin",
    "__msan_get_context_state",
    "__msan_instrument_asm_store",
    "__msan_metadata_ptr_for_load_1",
    "__msan_metadata_ptr_for_load_2",
    "__msan_metadata_ptr_for_load_4",
    "__msan_metadata_ptr_for_load_8",
    "__msan_metadata_ptr_for_load_n",
    "__msan_metadata_ptr_for_store_1",
    "__msan_metadata_ptr_for_store_2",
    "__msan_metadata_ptr_for_store_4",
    "__msan_metadata_ptr_for_store_8",
    "__msan_metadata_ptr_for_store_n",
    "__msan_poison_alloca",
    "__msan_warning",
    "ubsan_type_mismatch_common",
    "__ubsan_handle_type_mismatch",
    "__ubsan_handle_type_mismatch_v1",
    "__ubsan_handle_shift_out_of_bounds",
    "__ubsan_handle_load_invalid_value",
    "stackleak_track_stack",
    "ftrace_likely_update",
    "__stack_chk_fail",
    "csum_partial_copy_generic",
    "copy_mc_fragile",
    "copy_mc_fragile_handle_tail",
    "copy_mc_enhanced_fast_string",
    "rep_stos_alternative",
    "rep_movs_alternative",
    "copy_to_nontemporal",
];

#[cfg(test)]
mod tests;
